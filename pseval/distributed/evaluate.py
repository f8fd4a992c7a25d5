"""``pseval eval --executor ray``: the SAEs grouped by hook, each group evaluated by one Ray task.

The driver opens every SAE cheaply (:func:`pseval.sae.formats.loader.open_sae`: configs and headers, no weights)
to learn its hook, leaves out the SAEs whose result file is finished, splits the hooks of the rest into
groups of neighbouring layers and runs :func:`pseval.evals.runner.evaluate` on each group in a task. Every
task writes its result files atomically into the one output folder; the driver returns the results in the
order the SAEs were given, as the local executor does.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pseval.distributed.cluster import RayOptions, check_resources, cluster_gpus, connect, slots, split_hooks
from pseval.distributed.progress import GroupTask, ProgressBoard, raise_first_error, run_tasks, where_text
from pseval.distributed.tasks import TaskContext, eval_group_task
from pseval.errors import ConfigError
from pseval.evals.config import PSEvalConfig
from pseval.evals.schema import PSEvalResult


def evaluate_ray(
    model: str,
    saes: Sequence[str],
    config: PSEvalConfig,
    options: RayOptions | None = None,
    hook_name: str | None = None,
    output_folder: str | Path = "results",
    force_rerun: bool = False,
    on_status: Callable[[str], None] | None = None,
    run_log: dict[str, list[str]] | None = None,
) -> list[PSEvalResult]:
    """:func:`pseval.evals.runner.evaluate` on a Ray cluster, one task per hook group; same result files.

    ``run_log``, when given, receives the names of the SAEs ``evaluated`` and ``skipped`` (finished).
    """
    status = on_status or (lambda _msg: None)
    options = options or RayOptions()
    started = time.time()
    run = _RayRun(
        model=model,
        specs=_unique_specs(saes, status),
        hook_name=hook_name,
        output=Path(output_folder).resolve(),
        force_rerun=force_rerun,
        status=status,
        run_log=run_log,
    )
    planned_before_connecting = config.device != "auto"
    if planned_before_connecting:
        _names, _hooks, stored = run.plan(config)
        if len(stored) == len(run.specs):  # nothing to run: no cluster is needed to say so
            return [stored[i] for i in range(len(run.specs))]
    with connect(options) as ray:
        device = config.device
        if device == "auto":
            device = "cuda" if cluster_gpus(ray) > 0 else "cpu"
        config = config.model_copy(update={"device": device})
        num_cpus, num_gpus = options.resources(device, ray)
        check_resources(ray, num_cpus, num_gpus)

        # Planned a second time only to place the tasks: what it skips was said the first time.
        names, hooks, stored = run.plan(config, quiet=planned_before_connecting)
        todo = [i for i in range(len(run.specs)) if i not in stored]
        tasks: list[GroupTask] = []
        members: dict[int, list[int]] = {}
        if todo:
            weights = _hook_weights([hooks[i] for i in todo])
            groups = split_hooks(weights, options.n_groups or slots(ray, num_cpus, num_gpus))
            status(
                f"{len(todo)} SAE(s) at {len(weights)} hook(s) in {len(groups)} hook group(s) as Ray tasks of "
                f"{num_cpus:g} CPU" + (f" and {num_gpus:g} GPU" if num_gpus else "") + f" each, on {device}"
            )
            board = ray.remote(num_cpus=0)(ProgressBoard).remote()
            remote = ray.remote(eval_group_task).options(
                num_cpus=num_cpus, num_gpus=num_gpus, max_retries=options.max_retries
            )
            for index, group_hooks in enumerate(groups):
                members[index] = [i for i in todo if hooks[i] in group_hooks]
                tasks.append(
                    run.submit(remote, board, config, index, group_hooks, members[index], names, num_cpus)
                )
            run_tasks(
                ray,
                tasks,
                board,
                n_total=len(run.specs),
                n_done_before=len(stored),
                started_at=started,
                show=options.progress,
                status=status,
                title="eval",
            )
            raise_first_error(tasks)
    return _gather_results(len(run.specs), stored, tasks, members, status)


def _hook_weights(todo_hooks: list[str]) -> dict[str, int]:
    """SAEs to evaluate per hook, hooks in first-seen order: what :func:`split_hooks` balances the groups by."""
    weights: dict[str, int] = {}
    for hook in todo_hooks:
        weights[hook] = weights.get(hook, 0) + 1
    return weights


def _unique_specs(saes: Sequence[str], status: Callable[[str], None]) -> list[str]:
    """The SAE specs made absolute and given once each; those Ray cannot score are refused up front."""
    if not saes:
        raise ConfigError("no SAE to evaluate", "pass at least one SAE with --sae PATH")
    from pseval.evals.multilayer import is_multilayer_spec

    if any(not isinstance(spec, (str, os.PathLike)) or is_multilayer_spec(spec) for spec in saes):
        raise ConfigError(
            "--executor ray scores SAE folders and saelens: specs, not cross-layer transcoders or crosscoders",
            "score those with --executor local",
        )
    # The same SAE given twice (``DIR``, ``DIR/``, ``x/../DIR``) is one spec once its path is resolved.
    given = [_absolute_spec(str(spec)) for spec in saes]
    specs = list(dict.fromkeys(given))
    if len(specs) < len(given):
        status(f"{len(given) - len(specs)} SAE(s) given more than once: each is scored once")
    return specs


@dataclass(frozen=True)
class _RayRun:
    """What every planning and task-submitting step of one :func:`evaluate_ray` call shares."""

    model: str
    specs: list[str]
    hook_name: str | None
    output: Path
    force_rerun: bool
    status: Callable[[str], None]
    run_log: dict[str, list[str]] | None

    def plan(
        self, config: PSEvalConfig, quiet: bool = False
    ) -> tuple[list[str], list[str], dict[int, PSEvalResult]]:
        """Result names and hooks decided as the local executor decides them, and the finished results."""
        from pseval.evals.runner import plan_run

        made = plan_run(
            self.specs,
            config,
            self.hook_name,
            self.output,
            self.force_rerun,
            (lambda _msg: None) if quiet else self.status,
        )
        if config.site_check:  # a BOS policy an SAE's config contradicts stops the run before any task starts
            from pseval.evals.site_check import refuse_bos_contradictions

            refuse_bos_contradictions([item for item in made.items if item.name not in made.finished])
        names = [item.name for item in made.items]
        hooks = [item.hook for item in made.items]
        stored = {i: made.finished[name] for i, name in enumerate(names) if name in made.finished}
        if self.run_log is not None:
            self.run_log["skipped"] = [names[i] for i in sorted(stored)]
            self.run_log["evaluated"] = [name for i, name in enumerate(names) if i not in stored]
        return names, hooks, stored

    def submit(
        self,
        remote: Any,
        board: Any,
        config: PSEvalConfig,
        index: int,
        group_hooks: list[str],
        members: list[int],
        names: list[str],
        num_cpus: float,
    ) -> GroupTask:
        """One hook group started as a Ray task that evaluates its SAEs (``members``: their spec indices)."""
        from pseval.evals.runner import result_path

        task = GroupTask(
            index=index,
            hooks=group_hooks,
            result_files=[result_path(self.output, names[i]) for i in members],
        )
        task.ref = remote.remote(
            self.model,
            [(names[i], self.specs[i]) for i in members],
            config,
            self.hook_name,
            str(self.output),
            self.force_rerun,
            TaskContext.from_driver(index, num_cpus),
            board,
        )
        return task


def _gather_results(
    n_specs: int,
    stored: dict[int, PSEvalResult],
    tasks: list[GroupTask],
    members: dict[int, list[int]],
    status: Callable[[str], None],
) -> list[PSEvalResult]:
    """The finished and the newly evaluated results in the order the SAEs were given; where each group ran."""
    results: dict[int, PSEvalResult] = dict(stored)
    for task in tasks:
        for i, result in zip(members[task.index], task.outcome["results"], strict=True):
            results[i] = result
        status(
            f"group {task.index} ({len(members[task.index])} SAEs) ran on {where_text(task.outcome['where'])} "
            f"in {task.outcome['seconds']:.0f} s"
            + (
                f" after {task.outcome['attempts'] - 1} retry(ies)"
                if task.outcome.get("attempts", 1) > 1
                else ""
            )
        )
    return [results[i] for i in range(n_specs)]


def _absolute_spec(spec: str) -> str:
    """A path spec made absolute (tasks may run elsewhere); other specs unchanged."""
    path = Path(spec).expanduser()
    return str(path.resolve()) if path.exists() else spec
