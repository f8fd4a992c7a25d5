"""What a Ray worker runs: one hook group of a sweep or of an evaluation.

These functions run inside a worker process. They take the driver's working directory and the pseval
environment variables with them (so relative paths and ``$PSEVAL_CACHE`` mean on the worker what they mean
on the driver, given a shared filesystem), report their progress to the driver's
:class:`~pseval.distributed.progress.ProgressBoard`, and return where they ran.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

FORWARDED_ENV = (
    "PSEVAL_CACHE",
    "HF_HUB_OFFLINE",
    "HF_HOME",
    "TOKENIZERS_PARALLELISM",
)
"""Environment variables the driver hands to every task."""


@dataclass(frozen=True)
class TaskContext:
    """What a task needs from the driver besides its work."""

    group: int
    cwd: str
    env: dict[str, str] = field(default_factory=dict)
    num_threads: int | None = None
    """torch threads on the CPU (the task's reserved CPUs); None leaves torch's default."""

    @classmethod
    def from_driver(cls, group: int, num_cpus: float) -> TaskContext:
        env = {key: os.environ[key] for key in FORWARDED_ENV if key in os.environ}
        return cls(
            group=group, cwd=os.getcwd(), env=env, num_threads=max(1, int(num_cpus)) if num_cpus else None
        )


@contextlib.contextmanager
def task_environment(context: TaskContext, device: str) -> Iterator[dict[str, Any]]:
    """Enter the driver's folder and environment for the task; yield where it runs; restore afterwards."""
    import torch

    saved_env = {key: os.environ.get(key) for key in context.env}
    saved_cwd = os.getcwd()
    saved_threads = torch.get_num_threads()
    os.environ.update(context.env)
    if os.path.isdir(context.cwd):
        os.chdir(context.cwd)
    if context.num_threads is not None and not device.startswith("cuda"):
        torch.set_num_threads(context.num_threads)
    try:
        yield where_am_i(device)
    finally:
        os.chdir(saved_cwd)
        torch.set_num_threads(saved_threads)
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def where_am_i(device: str) -> dict[str, Any]:
    """The node, host, process and device this task runs on."""
    import ray
    import torch

    where: dict[str, Any] = {
        "node_ip": ray.util.get_node_ip_address(),
        "hostname": socket.gethostname(),
        "pid": os.getpid(),
        "device": device,
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        where["gpu_ids"] = [str(i) for i in ray.get_gpu_ids()]
        where["device_name"] = torch.cuda.get_device_name(torch.device(device))
    else:
        where["torch_threads"] = torch.get_num_threads()
    return where


def _started(board: Any, group: int, where: dict[str, Any]) -> int:
    """Tell the board this attempt started; its number (1 when there is no board)."""
    if board is None:
        return 1
    import ray

    return int(ray.get(board.started.remote(group, where)))


def _reporter(board: Any, group: int) -> Callable[[str], None]:
    def report(message: str) -> None:
        if board is not None:
            board.message.remote(group, message)

    return report


@contextlib.contextmanager
def _node_lock(name: str) -> Iterator[None]:
    """An exclusive lock shared by the tasks of one node (the model's first export is not safe to race)."""
    from pseval._io import cache_dir

    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    folder = cache_dir() / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"{name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def load_model_once_per_node(name: str, device: str, dtype: str = "float32") -> Any:
    """Load the model; its one-time export to the cache is done under a node-wide lock."""
    from pseval.models.loading import load_model, load_tokenizer

    with _node_lock("model-export"):
        load_tokenizer(name)  # exports a packaged/GGUF model once; cheap when already exported
    return load_model(name, device=device, dtype=dtype)


def sweep_group_task(
    config: Any, hooks: Sequence[str], device: str, force_rerun: bool, context: TaskContext, board: Any
) -> dict[str, Any]:
    """Harvest, train and evaluate one hook group of a sweep (:func:`pseval.sweep.runner.run_hook_group`)."""
    from pseval.sweep.runner import run_hook_group
    from pseval.training.trainer import train_sae

    with task_environment(context, device) as where:
        attempt = _started(board, context.group, where)
        started = time.time()
        loaded = load_model_once_per_node(config.model, device)
        counts = run_hook_group(
            config,
            loaded,
            device,
            hooks=list(hooks),
            force_rerun=force_rerun,
            status=_reporter(board, context.group),
            train_fn=train_sae,
        )
        counts["where"] = where
        counts["attempts"] = attempt
        counts["hooks"] = list(hooks)
        counts["seconds"] = round(time.time() - started, 1)
        return counts


def eval_group_task(
    model: str,
    specs: Sequence[Any],
    config: Any,
    hook_name: str | None,
    output_folder: str,
    force_rerun: bool,
    context: TaskContext,
    board: Any,
) -> dict[str, Any]:
    """Evaluate one hook group of SAEs (:func:`pseval.evals.runner.evaluate`) and return their results."""
    from pseval.evals.runner import evaluate

    with task_environment(context, config.device) as where:
        attempt = _started(board, context.group, where)
        started = time.time()
        loaded = load_model_once_per_node(model, config.device, config.dtype)
        status = _reporter(board, context.group)
        run_log: dict[str, list[str]] = {}
        results = evaluate(
            loaded,
            list(specs),
            config=config,
            hook_name=hook_name,
            output_folder=output_folder,
            force_rerun=force_rerun,
            on_status=status,
            run_log=run_log,
        )
        return {
            "results": results,
            "evaluated": len(run_log.get("evaluated", [])),
            "skipped": len(run_log.get("skipped", [])),
            "where": where,
            "attempts": attempt,
            "seconds": round(time.time() - started, 1),
        }
