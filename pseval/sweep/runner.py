"""Run a sweep: harvest every hook once, train what is missing, evaluate everything, draw the figures.

Resumable at SAE granularity: a trained SAE is a finished folder (written atomically) whose config is
checked before reuse, and a PS-Eval result is a finished JSON file; an interrupted sweep redoes neither,
and a finished sweep does nothing unless ``force_rerun``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pseval._io import write_json_atomic
from pseval.evals.config import PSEvalConfig
from pseval.evals.schema import PSEvalResult
from pseval.sweep.config import SweepConfig, SweepRun, _train_kwargs


class SweepSummary(dict[str, Any]):
    """What a sweep did: counts of trained/reused SAEs and evaluated/skipped results, timings, paths."""


def sae_folder(config: SweepConfig, run: SweepRun) -> Path:
    """Where a run's SAE lives."""
    return config.output_dir() / "saes" / run.name


def run_sweep(
    config: SweepConfig,
    force_rerun: bool = False,
    plots: bool = True,
    status: Callable[[str], None] = print,
    train_fn: Callable[..., Any] | None = None,
) -> SweepSummary:
    """Train the missing SAEs of ``config`` and evaluate all of them; return a summary.

    ``train_fn`` (default :func:`pseval.training.trainer.train_sae`) is injectable for tests.
    """
    from pseval.evals.runner import evaluate
    from pseval.models.loading import load_model
    from pseval.training.config import TrainConfig
    from pseval.training.trainer import make_store, train_sae

    train = train_fn or train_sae

    out = config.output_dir()
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "sweep_config.json", config.model_dump(mode="json"))
    runs = config.runs()
    summary = SweepSummary(name=config.name, n_runs=len(runs), trained=0, reused=0, evaluated=0, skipped=0)
    timings: dict[str, float] = {}
    started = time.time()

    device = (
        "cuda"
        if config.device == "auto" and _cuda()
        else ("cpu" if config.device == "auto" else config.device)
    )
    status(f"sweep {config.name}: {len(runs)} SAEs over {len(config.hook_names())} hooks → {out}")
    loaded = load_model(config.model, device=device)

    train_configs: dict[str, TrainConfig] = {}
    for run in runs:
        kwargs = _train_kwargs(config, run, out=sae_folder(config, run))
        kwargs["device"] = device
        kwargs["eval_tokens"] = 0  # standard metrics are measured by the evaluation, on held-out text
        if force_rerun:
            kwargs["overwrite"] = True
        train_configs[run.name] = TrainConfig(**kwargs)

    # Every width is checked against its hook before anything is trained (e.g. k larger than the width).
    from pseval.models.hooks import hook_width, parse_hook_name

    for run in runs:
        parse_hook_name(run.hook_name, loaded.model)
        train_configs[run.name].resolve_d_sae(hook_width(loaded.model, run.hook_name))

    def finished(run: SweepRun) -> bool:
        return (sae_folder(config, run) / "cfg.json").is_file() and not force_rerun

    missing = [run for run in runs if not finished(run)]
    n_tokens = config.training_tokens
    store = make_store(train_configs[missing[0].name], loaded) if missing else None
    groups = (
        store.plan_harvest(list(dict.fromkeys(run.hook_name for run in missing)), n_tokens) if store else []
    )
    if len(groups) == 1:
        status(f"harvesting {n_tokens:,} tokens at {len(groups[0])} hook(s) in one pass")
    elif groups:
        assert store is not None
        needed = store.harvest_bytes([hook for group in groups for hook in group], n_tokens)
        free, folder = store.free_bytes()
        status(
            f"the activations of {sum(map(len, groups))} hooks need {needed / 1e9:,.1f} GB, more than the "
            f"{free / 1e9:,.1f} GB free at {folder}: harvesting in {len(groups)} groups, each group's cache "
            "deleted once its SAEs are trained"
        )
    timings["harvest_s"] = timings["train_s"] = 0.0
    done: set[str] = set()

    def train_runs(hooks: set[str] | None) -> None:
        """Train (or reuse) the runs at ``hooks`` (all remaining runs when None), in grid order."""
        t0 = time.time()
        for i, run in enumerate(runs, 1):
            if run.name in done or (hooks is not None and run.hook_name not in hooks):
                continue
            result = train(train_configs[run.name], progress=False, loaded=loaded)
            done.add(run.name)
            if getattr(result, "reused", False):
                summary["reused"] += 1
            else:
                summary["trained"] += 1
                status(f"[{i}/{len(runs)}] trained {run.name}")
        timings["train_s"] += time.time() - t0

    for index, group in enumerate(groups):
        assert store is not None
        t0 = time.time()
        store.harvest(group, n_tokens)
        timings["harvest_s"] += time.time() - t0
        if len(groups) > 1:
            train_runs(set(group))
            if index < len(groups) - 1:  # the last group's cache stays for reruns and interpretation
                store.delete_cache(group, n_tokens)
    train_runs(None)

    t0 = time.time()
    eval_config = PSEvalConfig(model_name=config.model, device=device, **config.eval_overrides)
    results_dir = out / "results"
    run_log: dict[str, list[str]] = {}
    results: list[PSEvalResult] = evaluate(
        loaded,
        [str(sae_folder(config, run)) for run in runs],
        config=eval_config,
        output_folder=results_dir,
        force_rerun=force_rerun,
        standard_metrics_tokens=config.standard_metrics_tokens,
        standard_metrics_ce_tokens=config.standard_metrics_ce_tokens,
        on_status=status,
        run_log=run_log,
    )
    summary["evaluated"] = len(run_log.get("evaluated", []))
    summary["skipped"] = len(run_log.get("skipped", []))
    summary["n_results"] = len(results)
    timings["eval_s"] = time.time() - t0

    if plots:
        from pseval.report.plots import make_figures

        t0 = time.time()
        summary["figures"] = [str(p) for p in make_figures(results_dir, out / "figures")]
        timings["plots_s"] = time.time() - t0
    timings["total_s"] = time.time() - started
    summary["timings"] = {k: round(v, 1) for k, v in timings.items()}
    summary["results_dir"] = str(results_dir)
    summary["device"] = device
    write_json_atomic(out / "sweep_summary.json", dict(summary))
    return summary


def _cuda() -> bool:
    import torch

    return bool(torch.cuda.is_available())
