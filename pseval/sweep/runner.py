"""Run a sweep: harvest every hook once, train what is missing, evaluate everything, draw the figures.

Resumable at SAE granularity: a trained SAE is a finished folder (written atomically) whose config is
checked before reuse, and a PS-Eval result is a finished JSON file; an interrupted sweep redoes neither,
and a finished sweep does nothing unless ``force_rerun``.

The work splits into hook groups (:func:`run_hook_group`): the SAEs of a set of hooks share one harvest and
one evaluation pass. The local executor (:func:`run_sweep`) runs all hooks as one group in this process;
:mod:`pseval.distributed` runs several groups as tasks on a Ray cluster. Both prepare the sweep with
:func:`prepare_sweep` and finish it with :func:`finish_sweep`, so their outputs are the same files.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pseval._io import check_writable, write_json_atomic
from pseval.evals.config import PSEvalConfig
from pseval.sweep.config import SweepConfig, SweepRun, _train_kwargs

STAGE_TIMINGS = ("harvest_s", "train_s", "eval_s")
"""The per-group stage times a sweep summary adds up."""


class SweepSummary(dict[str, Any]):
    """What a sweep did: counts of trained/reused SAEs and evaluated/skipped results, timings, paths."""


def sae_folder(config: SweepConfig, run: SweepRun) -> Path:
    """Where a run's SAE lives."""
    return config.output_dir() / "saes" / run.name


def results_folder(config: SweepConfig) -> Path:
    """Where the sweep's PS-Eval results go (``<out>/results``)."""
    return config.output_dir() / "results"


def resolve_device(requested: str, cuda_available: Callable[[], bool] | None = None) -> str:
    """The device a sweep runs on: ``auto`` becomes ``cuda`` when ``cuda_available()``, else ``cpu``."""
    if requested != "auto":
        return requested
    return "cuda" if (cuda_available or _cuda)() else "cpu"


def eval_config_of(config: SweepConfig, device: str) -> PSEvalConfig:
    """The evaluation config of a sweep on ``device`` (its standard-metrics tokens from the budget)."""
    return PSEvalConfig(
        model_name=config.model,
        device=device,
        standard_metrics_tokens=config.standard_metrics_tokens,
        standard_metrics_ce_tokens=config.standard_metrics_ce_tokens,
        **config.eval_overrides,
    )


def train_configs_of(config: SweepConfig, device: str, force_rerun: bool = False) -> dict[str, Any]:
    """The TrainConfig of every run, by run name."""
    from pseval.training.config import TrainConfig

    configs: dict[str, Any] = {}
    for run in config.runs():
        kwargs = _train_kwargs(config, run, out=sae_folder(config, run))
        kwargs["device"] = device
        kwargs["eval_tokens"] = 0  # standard metrics are measured by the evaluation, on held-out text
        if force_rerun:
            kwargs["overwrite"] = True
        configs[run.name] = TrainConfig(**kwargs)
    return configs


def check_runs_fit(loaded: Any, runs: Sequence[SweepRun], train_configs: dict[str, Any]) -> None:
    """Check every hook exists and every width fits its hook before anything is trained (e.g. k > width)."""
    from pseval.models.hooks import hook_width, parse_hook_name

    for run in runs:
        parse_hook_name(run.hook_name, loaded.model)
        train_configs[run.name].resolve_d_sae(hook_width(loaded.model, run.hook_name))


def prepare_sweep(config: SweepConfig) -> Path:
    """Create the output folder and record the sweep's config there; return the folder."""
    out = check_writable(config.output_dir(), "--out")
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "sweep_config.json", config.model_dump(mode="json"))
    return out


def run_sweep(
    config: SweepConfig,
    force_rerun: bool = False,
    plots: bool = True,
    status: Callable[[str], None] = print,
    train_fn: Callable[..., Any] | None = None,
) -> SweepSummary:
    """Train the missing SAEs of ``config`` and evaluate all of them in this process; return a summary.

    ``train_fn`` (default :func:`pseval.training.trainer.train_sae`) is injectable for tests.
    """
    from pseval.models.loading import load_model

    started = time.time()
    out = prepare_sweep(config)
    runs = config.runs()
    device = resolve_device(config.device)
    status(f"sweep {config.name}: {len(runs)} SAEs over {len(config.hook_names())} hooks → {out}")
    loaded = load_model(config.model, device=device)
    group = run_hook_group(
        config,
        loaded,
        device,
        hooks=None,
        force_rerun=force_rerun,
        status=status,
        train_fn=train_fn,
    )
    return finish_sweep(config, [group], device=device, plots=plots, started=started)


def run_hook_group(
    config: SweepConfig,
    loaded: Any,
    device: str,
    hooks: Sequence[str] | None = None,
    force_rerun: bool = False,
    status: Callable[[str], None] = print,
    train_fn: Callable[..., Any] | None = None,
) -> dict[str, Any]:
    """Harvest, train and evaluate the runs at ``hooks`` (all of the sweep's when None); return the counts.

    Every width is checked against its hook first. The hooks are harvested together (in groups that fit the
    free disk), their SAEs trained or reused, and all of them evaluated in one activation pass, each result
    written atomically into the sweep's results folder.
    """
    from pseval.evals.runner import evaluate
    from pseval.training.trainer import make_store, train_sae

    train = train_fn or train_sae
    selected = None if hooks is None else set(hooks)
    runs = [run for run in config.runs() if selected is None or run.hook_name in selected]
    counts: dict[str, Any] = {"n_runs": len(runs), "trained": 0, "reused": 0, "evaluated": 0, "skipped": 0}
    timings = dict.fromkeys(STAGE_TIMINGS, 0.0)
    all_configs = train_configs_of(config, device, force_rerun)
    train_configs = {run.name: all_configs[run.name] for run in runs}
    check_runs_fit(loaded, runs, train_configs)

    def finished(run: SweepRun) -> bool:
        return (sae_folder(config, run) / "cfg.json").is_file() and not force_rerun

    missing = [run for run in runs if not finished(run)]
    store = make_store(train_configs[missing[0].name], loaded) if missing else None
    trainer = _GroupTrainer(runs, train_configs, loaded, train, status, counts, timings)
    if store is not None:
        _harvest_and_train(store, missing, config.training_tokens, trainer, status)
    trainer.train(None)

    t0 = time.time()
    run_log: dict[str, list[str]] = {}
    results = evaluate(
        loaded,
        [str(sae_folder(config, run)) for run in runs],
        config=eval_config_of(config, device),
        output_folder=results_folder(config),
        force_rerun=force_rerun,
        on_status=status,
        run_log=run_log,
    )
    counts["evaluated"] = len(run_log.get("evaluated", []))
    counts["skipped"] = len(run_log.get("skipped", []))
    counts["n_results"] = len(results)
    timings["eval_s"] = time.time() - t0
    counts["timings"] = timings
    return counts


class _GroupTrainer:
    """Trains (or reuses) a hook group's runs in grid order, counting and timing them."""

    def __init__(
        self,
        runs: Sequence[SweepRun],
        train_configs: dict[str, Any],
        loaded: Any,
        train: Callable[..., Any],
        status: Callable[[str], None],
        counts: dict[str, Any],
        timings: dict[str, float],
    ) -> None:
        self.runs = runs
        self.train_configs = train_configs
        self.loaded = loaded
        self.train_fn = train
        self.status = status
        self.counts = counts
        self.timings = timings
        self.done: set[str] = set()

    def train(self, hooks_now: set[str] | None) -> None:
        """Train (or reuse) the runs at ``hooks_now`` (all remaining runs when None), in grid order."""
        t0 = time.time()
        runs = self.runs
        for i, run in enumerate(runs, 1):
            if run.name in self.done or (hooks_now is not None and run.hook_name not in hooks_now):
                continue
            result = self.train_fn(self.train_configs[run.name], progress=False, loaded=self.loaded)
            self.done.add(run.name)
            if getattr(result, "reused", False):
                self.counts["reused"] += 1
            else:
                self.counts["trained"] += 1
                self.status(f"[{i}/{len(runs)}] trained {run.name}")
        self.timings["train_s"] += time.time() - t0


def _harvest_and_train(
    store: Any,
    missing: Sequence[SweepRun],
    n_tokens: int,
    trainer: _GroupTrainer,
    status: Callable[[str], None],
) -> None:
    """Harvest the missing runs' hooks in groups that fit the free disk; with several groups, train each
    group's runs and delete its cache before the next (the last group's cache stays)."""
    groups = store.plan_harvest(list(dict.fromkeys(run.hook_name for run in missing)), n_tokens)
    if len(groups) == 1:
        status(f"harvesting {n_tokens:,} tokens at {len(groups[0])} hook(s) in one pass")
    elif groups:
        needed = store.harvest_bytes([hook for group in groups for hook in group], n_tokens)
        free, folder = store.free_bytes()
        status(
            f"the activations of {sum(map(len, groups))} hooks need {needed / 1e9:,.1f} GB, more than the "
            f"{free / 1e9:,.1f} GB free at {folder}: harvesting in {len(groups)} groups, each group's cache "
            "deleted once its SAEs are trained"
        )
    for index, group in enumerate(groups):
        t0 = time.time()
        store.harvest(group, n_tokens)
        trainer.timings["harvest_s"] += time.time() - t0
        if len(groups) > 1:
            trainer.train(set(group))
            if index < len(groups) - 1:  # the last group's cache stays for reruns and interpretation
                store.delete_cache(group, n_tokens)


def finish_sweep(
    config: SweepConfig,
    groups: Sequence[dict[str, Any]],
    device: str,
    plots: bool,
    started: float,
    extra: dict[str, Any] | None = None,
) -> SweepSummary:
    """Add up the groups' counts and stage times, draw the figures once and write ``sweep_summary.json``."""
    out = config.output_dir()
    results_dir = results_folder(config)
    summary = SweepSummary(name=config.name, n_runs=len(config.runs()), trained=0, reused=0, evaluated=0)
    summary["skipped"] = 0
    summary["n_results"] = 0
    timings = dict.fromkeys(STAGE_TIMINGS, 0.0)
    for group in groups:
        for key in ("trained", "reused", "evaluated", "skipped", "n_results"):
            summary[key] += int(group.get(key, 0))
        for key in STAGE_TIMINGS:
            timings[key] += float(group.get("timings", {}).get(key, 0.0))
    if plots:
        from pseval.report.plots import make_figures

        t0 = time.time()
        summary["figures"] = [str(p) for p in make_figures(results_dir, out / "figures")]
        timings["plots_s"] = time.time() - t0
    timings["total_s"] = time.time() - started
    summary["timings"] = {k: round(v, 1) for k, v in timings.items()}
    summary["results_dir"] = str(results_dir)
    summary["device"] = device
    summary.update(extra or {})
    write_json_atomic(out / "sweep_summary.json", dict(summary))
    return summary


def _cuda() -> bool:
    import torch

    return bool(torch.cuda.is_available())
