"""Commands that train and evaluate in one go: ``demo``, ``sweep`` and ``train``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from pseval.cli.app import (
    ExecutorOpt,
    FormatOpt,
    RayAddressOpt,
    RayCpusOpt,
    RayGpusOpt,
    RayGroupsOpt,
    console,
    err_console,
    handle_errors,
    note,
    print_results,
    ray_options,
    title_of,
)


@handle_errors
def demo(
    output_folder: Annotated[
        Path, typer.Option("--out", "--output-folder", "-o", help="Where the results and the report go.")
    ] = Path("results/demo"),
    force_rerun: Annotated[bool, typer.Option("--force-rerun", help="Re-evaluate finished results.")] = False,
    report_html: Annotated[
        bool, typer.Option("--report/--no-report", help="Also write the HTML report.")
    ] = True,
    output_format: FormatOpt = "table",
) -> None:
    """Train (first time only) and evaluate the default SAE suite on the embedded SmolLM2.

    \b
    Example:
      pseval demo --out results/demo
    """
    from pseval._io import check_writable
    from pseval.demo import run_demo

    check_writable(output_folder, "--out")

    results, timings = run_demo(
        output_folder=output_folder,
        force_rerun=force_rerun,
        status=lambda msg: err_console.print(f"[dim]{msg}[/]"),
    )
    print_results(results, title_of(results, "smollm2-135m", "wic", "test"), output_format)
    if report_html:
        from pseval.report.html import write_report
        from pseval.report.plots import make_figures

        make_figures(output_folder)
        note(f"report: {write_report(output_folder)}")
    note(f"results: {output_folder / 'ps_eval'}")
    note(f"took {timings['total_s']:.0f} s")


@handle_errors
def sweep(
    config_file: Annotated[
        Path | None, typer.Argument(help="A sweep YAML file (see docs/sweeps.md).")
    ] = None,
    preset: Annotated[
        Literal["paper-layers", "paper-expansion", "paper-activation", "paper-all"] | None,
        typer.Option(help="A sweep of the paper's figures, instead of a CONFIG_FILE."),
    ] = None,
    budget: Annotated[
        Literal["tiny", "small", "full"], typer.Option(help="Token budget of the presets.")
    ] = "small",
    out: Annotated[
        Path | None,
        typer.Option("--out", "--output-folder", "-o", help="Output folder. Default: runs/<sweep name>."),
    ] = None,
    device: Annotated[str | None, typer.Option(help="auto (GPU when present), cpu or cuda.")] = None,
    seeds: Annotated[
        int | None,
        typer.Option(
            help="Train every SAE with N seeds (seed, seed+1, ...; replicates after the first are named "
            "...-seed<S>); then `pseval reliability OUT/results`. Default: the config's seeds (1)."
        ),
    ] = None,
    force_rerun: Annotated[
        bool, typer.Option("--force-rerun", help="Retrain and re-evaluate everything.")
    ] = False,
    plots: Annotated[bool, typer.Option("--plots/--no-plots", help="Draw the figures at the end.")] = True,
    output_format: FormatOpt = "table",
    executor: ExecutorOpt = "local",
    ray_address: RayAddressOpt = "local",
    ray_cpus_per_task: RayCpusOpt = None,
    ray_gpus_per_task: RayGpusOpt = None,
    ray_groups: RayGroupsOpt = None,
) -> None:
    """Train what is missing of a grid of SAEs, evaluate everything, draw the figures (resumable).

    \b
    Example:
      pseval sweep --preset paper-layers --budget tiny --out runs/layers
    """
    from pseval._io import check_writable
    from pseval.errors import ConfigError
    from pseval.sweep.config import load_sweep_config
    from pseval.sweep.config import preset as make_preset
    from pseval.sweep.runner import run_sweep

    if (config_file is None) == (preset is None):
        raise ConfigError(
            "give either a sweep CONFIG.yaml or --preset, not both or neither",
            "e.g. pseval sweep --preset paper-layers --budget tiny",
        )
    if budget not in ("tiny", "small", "full"):
        raise ConfigError(f"unknown budget {budget!r}", "use tiny, small or full")
    config = load_sweep_config(config_file) if config_file is not None else make_preset(preset or "", budget)  # type: ignore[arg-type]
    updates: dict[str, Any] = {}
    if out is not None:
        updates["out"] = out
    if device is not None:
        updates["device"] = device
    if seeds is not None:
        if seeds < 1:
            raise ConfigError(f"--seeds {seeds} is not a number of replicates", "pass --seeds 1 or more")
        updates["seeds"] = seeds
    if updates:
        config = config.model_copy(update=updates)
    check_writable(config.output_dir(), "--out")
    if executor == "ray":
        from pseval.distributed.sweep import run_sweep_ray

        summary = run_sweep_ray(
            config,
            ray_options(ray_address, ray_cpus_per_task, ray_gpus_per_task, ray_groups),
            force_rerun=force_rerun,
            plots=plots,
            status=lambda m: err_console.print(f"[dim]{m}[/]"),
        )
    else:
        summary = run_sweep(
            config, force_rerun=force_rerun, plots=plots, status=lambda m: err_console.print(f"[dim]{m}[/]")
        )
    from pseval.report.load import load_results

    results = load_results(summary["results_dir"])
    print_results(results, f"Sweep {config.name}", output_format)
    note(
        f"trained {summary['trained']}, reused {summary['reused']}, evaluated {summary['evaluated']}, "
        f"skipped {summary['skipped']} · {summary['timings']['total_s']:.0f} s on {summary['device']}"
    )
    note(f"results: {summary['results_dir']}")


def _train(**params: Any) -> None:
    from pseval._io import check_writable
    from pseval.cli_options import passed_values
    from pseval.report.fvu_flag import training_fvu_note
    from pseval.training.config import TrainConfig
    from pseval.training.replicates import replicate_seeds, train_replicates

    config_path = params.pop("config", None)
    values = passed_values(params)
    if config_path is not None:
        base = TrainConfig.from_file(config_path).model_dump(exclude_none=True)
        config = TrainConfig(**{**base, **values})
    else:
        config = TrainConfig(**values)
    check_writable(config.output_dir(), "--out")
    width = f"{config.d_sae} latents" if config.d_sae else f"expansion x{config.expansion_factor or 8}"
    note(
        f"training a {config.architecture} SAE ({width}) at {config.hook_name} of {config.model} on "
        f"{config.training_tokens:,} tokens of the {config.corpus} corpus → {config.output_dir()}"
        + ("" if values or config_path else " (all defaults; see pseval train --help for the options)")
    )
    if config.seeds > 1:
        note(
            f"{config.seeds} replicates, seeds {', '.join(map(str, replicate_seeds(config.seed, config.seeds)))}"
        )
    for result in train_replicates(config, progress=True):
        verb = "reused" if result.reused else "trained"
        seed = f" (seed {result.config.seed})" if config.seeds > 1 else ""
        console.print(f"{verb} {config.architecture} SAE at {config.hook_name}{seed} → {result.out}")
        if result.eval is not None:
            e = result.eval
            console.print(
                f"held-out {e.n_tokens:,} tokens (raw activation units): MSE {e.mse:.4g} · explained variance "
                f"{e.explained_variance:.3f} · L0 {e.l0:.1f} · dead {e.dead_fraction:.1%} · dense {e.dense_fraction:.1%}"
                + training_fvu_note(e.explained_variance),
                highlight=False,
            )


def register_train(app: typer.Typer) -> None:
    """``pseval train``: its options are the documented fields of TrainConfig."""
    import inspect

    from pseval.cli_options import add_config_command
    from pseval.training.config import TrainConfig

    config_option = inspect.Parameter(
        "config",
        inspect.Parameter.KEYWORD_ONLY,
        default=None,
        annotation=Annotated[
            Path | None, typer.Option(help="A JSON/YAML file of TrainConfig fields; options override it.")
        ],
    )
    add_config_command(
        app,
        "train",
        TrainConfig,
        handle_errors(_train),
        help_text="Train an SAE (standard, topk, batchtopk, matryoshka_batchtopk, jumprelu, gated) on a "
        "model's activations; "
        "writes an SAELens-format folder that pseval and sae_lens both load. The progress bar and the "
        "final summary report MSE in raw activation units.\n\n\b\nExample:\n"
        "  pseval train --hook blocks.3.hook_resid_post --arch topk --out saes/topk-L3",
        aliases={
            "hook_name": ["--hook"],
            "expansion_factor": ["--expansion"],
            "training_tokens": ["--tokens"],
            "architecture": ["--arch"],
            "out": ["--output-folder", "-o"],
        },
        extra=[config_option],
    )
