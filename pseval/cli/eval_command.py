"""``pseval eval``: its options are the documented fields of PSEvalConfig plus the run's own options below.

A new evaluation setting is one documented field of :class:`pseval.evals.config.PSEvalConfig`: it becomes
an option here named by the field (``max_pairs``: ``--max-pairs``, help and default from the field), a key
of ``--config eval.yaml`` and of a sweep's ``eval_overrides``, and a keyword of
:func:`pseval.evals.runner.evaluate`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

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
from pseval.sae.allocator import keep_large_buffers

EVAL_FLAGS: dict[str, list[str]] = {"model_name": ["--model", "-m"], "bootstrap_resamples": ["--bootstrap"]}
"""PSEvalConfig fields whose option is not the field name with dashes (the first name is the long option)."""

FILE_ONLY: frozenset[str] = frozenset()
"""PSEvalConfig fields deliberately settable only in a ``--config`` file (none: every field has an option)."""

EVAL_HELP = (
    "Evaluate one or many SAEs with PS-Eval (one activation pass per hook) and write one JSON per SAE.\n\n"
    "Settings come from the options, then the --config file, then the defaults shown.\n\n"
    "\b\nExample:\n  pseval eval --sae saes/topk-4608 --sae saelens:RELEASE/ID --out results"
)


def _run_options(
    sae: Annotated[
        list[str] | None,
        typer.Option(
            "--sae",
            "-s",
            metavar="SAE",
            help="SAE folder/file or saelens:RELEASE/ID; repeat for several (or use --release).",
        ),
    ] = None,
    release: Annotated[
        str | None,
        typer.Option(
            "--release",
            metavar="RELEASE",
            help="Also evaluate the SAEs of this SAELens registry release, e.g. gemma-scope-2-270m-pt-res "
            "(all of them, or those --sae-pattern matches).",
        ),
    ] = None,
    sae_pattern: Annotated[
        str | None,
        typer.Option(
            "--sae-pattern",
            metavar="REGEX",
            help="Regular expression the whole SAE id must match within --release, e.g. 'layer_1[25]_.*'.",
        ),
    ] = None,
    hook: Annotated[
        str | None, typer.Option("--hook", help="Hook point; defaults to the one in each SAE's config.")
    ] = None,
    output_folder: Annotated[
        Path, typer.Option("--out", "--output-folder", "-o", help="Where the JSON results go (in ps_eval/).")
    ] = Path("results"),
    force_rerun: Annotated[bool, typer.Option("--force-rerun", help="Recompute finished results.")] = False,
    config_file: Annotated[
        Path | None,
        typer.Option(
            "--config",
            metavar="FILE",
            help="A YAML or JSON file of the settings below, keyed by field name (as in a result's "
            "eval_config, e.g. bootstrap_resamples: 0); the options given here override it.",
        ),
    ] = None,
    output_format: FormatOpt = "table",
) -> None:
    """The options of ``pseval eval`` that are no PSEvalConfig field: which SAEs, where results go, output."""


def _executor_options(
    executor: ExecutorOpt = "local",
    ray_address: RayAddressOpt = "local",
    ray_cpus_per_task: RayCpusOpt = None,
    ray_gpus_per_task: RayGpusOpt = None,
    ray_groups: RayGroupsOpt = None,
) -> None:
    """The options of ``pseval eval`` that choose where it runs (listed after the settings)."""


def eval_config(config_file: Path | None, values: dict[str, Any]) -> Any:
    """The PSEvalConfig of a run: ``values`` (the options given) over ``config_file`` over the defaults."""
    from pseval.evals.config import PSEvalConfig

    base = PSEvalConfig.from_file(config_file).model_dump() if config_file is not None else {}
    return PSEvalConfig(**{**base, **values})


def expand_release(saes: list[str] | None, release: str | None, pattern: str | None) -> list[Any]:
    """The --sae specs followed by those of --release matching --sae-pattern (each once); without --release,
    --sae-pattern chooses the views of the cross-layer transcoder and crosscoder folders among them."""
    from pseval.errors import ConfigError
    from pseval.evals.multilayer import expand_multilayer, is_multilayer_spec

    specs: list[Any] = list(saes or [])
    if pattern is not None and release is None:
        if any(is_multilayer_spec(spec) for spec in specs):
            return expand_multilayer(specs, pattern)
        raise ConfigError(
            "--sae-pattern needs --release (or a cross-layer transcoder or crosscoder folder as --sae)",
            "add --release RELEASE, e.g. gemma-scope-2-270m-pt-res",
        )
    if release is not None:
        from pseval.sae.pretrained import release_specs

        specs += [spec for spec in release_specs(release, pattern) if spec not in specs]
    if not specs:
        raise ConfigError("no SAE to evaluate", "pass --sae PATH (repeat for several) or --release RELEASE")
    return specs


def _evaluate(
    config: Any, specs: list[str], run: dict[str, Any], ray: dict[str, Any]
) -> tuple[list[Any], set[str]]:
    """Score ``specs`` here or on Ray; the results and the names of those kept from an earlier run."""
    run_log: dict[str, list[str]] = {}
    common: dict[str, Any] = {
        "config": config,
        "hook_name": run["hook"],
        "output_folder": run["output_folder"],
        "force_rerun": run["force_rerun"],
        "on_status": lambda msg: err_console.print(f"[dim]{msg}[/]"),
        "run_log": run_log,
    }
    if ray["executor"] == "ray":
        from pseval.distributed.evaluate import evaluate_ray

        options = ray_options(
            ray["ray_address"], ray["ray_cpus_per_task"], ray["ray_gpus_per_task"], ray["ray_groups"]
        )
        results = evaluate_ray(config.model_name, specs, options=options, **common)
    else:
        from pseval.evals.runner import evaluate

        results = evaluate(config.model_name, specs, **common)
    return results, set(run_log.get("skipped", []))


def _eval(**params: Any) -> None:
    from pseval._io import check_writable
    from pseval.cli_options import passed_values
    from pseval.evals.runner import result_path
    from pseval.models.loading import resolve_device

    run = {name: params.pop(name) for name in RUN_OPTIONS}
    ray = {name: params.pop(name) for name in EXECUTOR_OPTIONS}
    config = eval_config(run["config_file"], passed_values(params))
    if ray["executor"] == "local":  # on Ray, "auto" is decided by the cluster's devices
        config = config.model_copy(update={"device": resolve_device(config.device)})
    check_writable(run["output_folder"], "--out")
    specs = expand_release(run["sae"], run["release"], run["sae_pattern"])
    keep_large_buffers()  # each SAE's scoring buffers reuse the last one's memory (pseval.sae.allocator)
    results, kept = _evaluate(config, specs, run, ray)
    title = title_of(results, config.model_name, config.dataset, config.split)
    print_results(results, title, run["output_format"])
    from pseval.report.senses_table import print_senses
    from pseval.report.wordform_table import print_wordform

    print_wordform(results, console, run["output_format"])
    print_senses(results, console, run["output_format"])
    for r in results:  # a finished result found on disk was kept as it is, not written again
        note(f"{'kept' if r.sae_name in kept else 'wrote'} {result_path(run['output_folder'], r.sae_name)}")


def _names(declared: Any) -> tuple[str, ...]:
    import inspect

    return tuple(inspect.signature(declared).parameters)


RUN_OPTIONS = _names(_run_options)
EXECUTOR_OPTIONS = _names(_executor_options)


def register_eval(app: typer.Typer) -> None:
    """``pseval eval``: the run's options, then one option per PSEvalConfig field, then the executor's."""
    from pseval.cli_options import add_config_command, typed_extras
    from pseval.evals.config import PSEvalConfig

    add_config_command(
        app,
        "eval",
        PSEvalConfig,
        handle_errors(_eval),
        help_text=EVAL_HELP,
        flags=EVAL_FLAGS,
        exclude=FILE_ONLY,
        extra=typed_extras(_run_options),
        extra_last=typed_extras(_executor_options),
    )
