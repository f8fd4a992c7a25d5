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
from pathlib import Path

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
    from pseval.evals.runner import plan_run, result_path

    status = on_status or (lambda _msg: None)
    options = options or RayOptions()
    if not saes:
        raise ConfigError("no SAE to evaluate", "pass at least one SAE with --sae PATH")
    from pseval.evals.multilayer import is_multilayer_spec

    if any(not isinstance(spec, (str, os.PathLike)) or is_multilayer_spec(spec) for spec in saes):
        raise ConfigError(
            "--executor ray scores SAE folders and saelens: specs, not cross-layer transcoders or crosscoders",
            "score those with --executor local",
        )
    started = time.time()
    output = Path(output_folder).resolve()
    # The same SAE given twice (``DIR``, ``DIR/``, ``x/../DIR``) is one spec once its path is resolved.
    given = [_absolute_spec(str(spec)) for spec in saes]
    specs = list(dict.fromkeys(given))
    if len(specs) < len(given):
        status(f"{len(given) - len(specs)} SAE(s) given more than once: each is scored once")

    def plan(
        config: PSEvalConfig, quiet: bool = False
    ) -> tuple[list[str], list[str], dict[int, PSEvalResult]]:
        """Result names and hooks decided as the local executor decides them, and the finished results."""
        made = plan_run(
            specs, config, hook_name, output, force_rerun, (lambda _msg: None) if quiet else status
        )
        names = [item.name for item in made.items]
        hooks = [item.hook for item in made.items]
        stored = {i: made.finished[name] for i, name in enumerate(names) if name in made.finished}
        if run_log is not None:
            run_log["skipped"] = [names[i] for i in sorted(stored)]
            run_log["evaluated"] = [name for i, name in enumerate(names) if i not in stored]
        return names, hooks, stored

    if config.device != "auto":
        _names, _hooks, stored = plan(config)
        if len(stored) == len(specs):  # nothing to run: no cluster is needed to say so
            return [stored[i] for i in range(len(specs))]
    with connect(options) as ray:
        device = config.device
        if device == "auto":
            device = "cuda" if cluster_gpus(ray) > 0 else "cpu"
        config = config.model_copy(update={"device": device})
        num_cpus, num_gpus = options.resources(device, ray)
        check_resources(ray, num_cpus, num_gpus)

        names, hooks, stored = plan(config, quiet=config.device != "auto")
        todo = [i for i in range(len(specs)) if i not in stored]
        tasks: list[GroupTask] = []
        members: dict[int, list[int]] = {}
        if todo:
            weights: dict[str, int] = {}
            for i in todo:
                weights[hooks[i]] = weights.get(hooks[i], 0) + 1
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
                task = GroupTask(
                    index=index,
                    hooks=group_hooks,
                    result_files=[result_path(output, names[i]) for i in members[index]],
                )
                task.ref = remote.remote(
                    model,
                    [(names[i], specs[i]) for i in members[index]],
                    config,
                    hook_name,
                    str(output),
                    force_rerun,
                    TaskContext.from_driver(index, num_cpus),
                    board,
                )
                tasks.append(task)
            run_tasks(
                ray,
                tasks,
                board,
                n_total=len(specs),
                n_done_before=len(stored),
                started_at=started,
                show=options.progress,
                status=status,
                title="eval",
            )
            raise_first_error(tasks)
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
    return [results[i] for i in range(len(specs))]


def _absolute_spec(spec: str) -> str:
    """A path spec made absolute (tasks may run elsewhere); other specs unchanged."""
    path = Path(spec).expanduser()
    return str(path.resolve()) if path.exists() else spec
