"""``pseval sweep --executor ray``: a sweep's hook groups as Ray tasks, the figures once on the driver.

The driver validates the sweep (every hook and width against the model, on its CPU), leaves out the hooks
whose SAEs are all trained and evaluated already, splits the rest into hook groups of neighbouring layers
(one per task the cluster runs at once, unless ``n_groups`` says otherwise), and submits one task per group.
Each task runs :func:`pseval.sweep.runner.run_hook_group` — exactly what the local executor runs for all
hooks at once — so every SAE folder and result file is the one the local executor writes, written
atomically into the same output folder (which every node must see at the same path).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from pseval.distributed.cluster import RayOptions, check_resources, cluster_gpus, connect, slots, split_hooks
from pseval.distributed.progress import GroupTask, ProgressBoard, raise_first_error, run_tasks, where_text
from pseval.distributed.tasks import TaskContext, sweep_group_task
from pseval.errors import ConfigError
from pseval.sweep.config import SweepConfig, SweepRun
from pseval.sweep.runner import (
    SweepSummary,
    check_runs_fit,
    eval_config_of,
    finish_sweep,
    prepare_sweep,
    resolve_device,
    results_folder,
    sae_folder,
    train_configs_of,
)


def run_sweep_ray(
    config: SweepConfig,
    options: RayOptions | None = None,
    force_rerun: bool = False,
    plots: bool = True,
    status: Callable[[str], None] = print,
) -> SweepSummary:
    """Run ``config`` on a Ray cluster, one task per hook group; return the same summary as the local run."""
    options = options or RayOptions()
    started = time.time()
    config = config.model_copy(update={"out": config.output_dir().resolve()})
    if not force_rerun and config.device != "auto" and _all_finished(config, config.device):
        # Nothing to do: no cluster is needed to say so (the figures and summary are still rebuilt).
        return _finish_without_tasks(config, options, plots, started, status)
    with connect(options) as ray:
        device = resolve_device(config.device, cuda_available=lambda: cluster_gpus(ray) > 0)
        num_cpus, num_gpus = options.resources(device, ray)
        check_resources(ray, num_cpus, num_gpus)
        out = prepare_sweep(config)
        runs = config.runs()
        train_configs = train_configs_of(config, device, force_rerun)
        finished = (
            set()
            if force_rerun
            else {run.name for run in runs if _run_finished(config, run, device, train_configs)}
        )
        todo_hooks = list(dict.fromkeys(run.hook_name for run in runs if run.name not in finished))
        # SAEs at hooks with nothing left to do are counted here; a task counts those of its own hooks.
        untouched = [run for run in runs if run.hook_name not in todo_hooks]
        status(
            f"sweep {config.name}: {len(runs)} SAEs over {len(config.hook_names())} hooks → {out}; "
            f"{len(runs) - len(finished)} to do at {len(todo_hooks)} hook(s)"
        )
        tasks: list[GroupTask] = []
        if todo_hooks:
            _check_fit(config, [run for run in runs if run.hook_name in todo_hooks], train_configs)
            weights = {hook: sum(run.hook_name == hook for run in runs) for hook in todo_hooks}
            n_groups = options.n_groups or slots(ray, num_cpus, num_gpus)
            groups = split_hooks(weights, n_groups)
            status(
                f"{len(groups)} hook group(s) as Ray tasks of {num_cpus:g} CPU"
                + (f" and {num_gpus:g} GPU" if num_gpus else "")
                + f" each, on {device}"
            )
            board = ray.remote(num_cpus=0)(ProgressBoard).remote()
            remote = ray.remote(sweep_group_task).options(
                num_cpus=num_cpus, num_gpus=num_gpus, max_retries=options.max_retries
            )
            results_dir = results_folder(config)
            from pseval.evals.runner import result_path

            for index, hooks in enumerate(groups):
                group_runs = [run for run in runs if run.hook_name in hooks and run.name not in finished]
                task = GroupTask(
                    index=index,
                    hooks=hooks,
                    result_files=[result_path(results_dir, run.name) for run in group_runs],
                )
                context = TaskContext.from_driver(index, num_cpus)
                task.ref = remote.remote(config, hooks, device, force_rerun, context, board)
                tasks.append(task)
            run_tasks(
                ray,
                tasks,
                board,
                n_total=len(runs),
                n_done_before=len(finished),
                started_at=started,
                show=options.progress,
                status=status,
                title=f"sweep {config.name}",
            )
            raise_first_error(tasks)
    outcomes = [task.outcome for task in tasks]
    base = {"trained": 0, "reused": len(untouched), "evaluated": 0, "skipped": len(untouched)}
    base["n_results"] = len(untouched)
    placement = _placement(tasks, status)
    return finish_sweep(
        config,
        [base, *outcomes],
        device=device,
        plots=plots,
        started=started,
        extra={"executor": "ray", "ray_address": options.address, "groups": placement},
    )


def _finish_without_tasks(
    config: SweepConfig, options: RayOptions, plots: bool, started: float, status: Callable[[str], None]
) -> SweepSummary:
    """The summary of a sweep whose SAEs are all trained and evaluated (figures and summary rebuilt)."""
    runs = config.runs()
    status(f"sweep {config.name}: all {len(runs)} SAEs are trained and evaluated; nothing to run")
    prepare_sweep(config)
    done = {
        "trained": 0,
        "reused": len(runs),
        "evaluated": 0,
        "skipped": len(runs),
        "n_results": len(runs),
    }
    extra = {"executor": "ray", "ray_address": options.address, "groups": []}
    return finish_sweep(config, [done], device=config.device, plots=plots, started=started, extra=extra)


def _check_fit(config: SweepConfig, runs: list[SweepRun], train_configs: dict[str, Any]) -> None:
    """Check the runs' widths against their hooks on the driver, before any task starts."""
    from pseval.models.loading import load_model

    loaded = load_model(config.model, device="cpu")  # validation only; exports the model once
    check_runs_fit(loaded, runs, train_configs)
    del loaded


def _placement(tasks: list[GroupTask], status: Callable[[str], None]) -> list[dict[str, Any]]:
    """Where and how long each group ran, for the summary, each also reported through ``status``."""
    placement = [
        {
            "group": task.index,
            "hooks": task.hooks,
            "n_saes": task.outcome["n_runs"],
            "where": task.outcome["where"],
            "attempts": task.outcome.get("attempts", 1),
            "seconds": task.outcome["seconds"],
        }
        for task in tasks
    ]
    for entry in placement:
        status(
            f"group {entry['group']} ({entry['n_saes']} SAEs, {len(entry['hooks'])} hooks) ran on "
            f"{where_text(entry['where'])} in {entry['seconds']:.0f} s"
            + (f" after {entry['attempts'] - 1} retry(ies)" if entry["attempts"] > 1 else "")
        )
    return placement


def _all_finished(config: SweepConfig, device: str) -> bool:
    train_configs = train_configs_of(config, device)
    return all(_run_finished(config, run, device, train_configs) for run in config.runs())


def _run_finished(config: SweepConfig, run: SweepRun, device: str, train_configs: dict[str, Any]) -> bool:
    """Whether the run's SAE would be reused and its result skipped (so no task needs to touch it)."""
    from pseval.evals.runner import plan_run
    from pseval.training.trainer import check_output_dir

    folder = sae_folder(config, run)
    try:
        if check_output_dir(train_configs[run.name], folder) != "reuse":
            return False
        plan = plan_run(
            [str(folder)],
            eval_config_of(config, device),
            output_folder=results_folder(config),
        )
    except ConfigError:
        return False  # the task raises it with its own message
    return len(plan.finished) == 1


__all__ = ["run_sweep_ray"]
