"""The ``pseval`` command line: a thin layer over the Python API.

Every command turns a :class:`pseval.errors.PsevalError` (or an invalid option value) into one line on
stderr and exit code 2, without a traceback.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console

from pseval.cli_options import PsevalTyper
from pseval.errors import PsevalError

app = PsevalTyper(
    name="pseval",
    help="PS-Eval: do an SAE's features separate the meanings of polysemous words?",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
# Piped or captured output gets a wide, fixed width so tables are never cut into unreadable columns.
# COLUMNS, when set, is honoured either way.
_FIXED_WIDTH = None if os.environ.get("COLUMNS", "").isdigit() else 200
console = Console(width=None if sys.stdout.isatty() else _FIXED_WIDTH)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else _FIXED_WIDTH)

F = TypeVar("F", bound=Callable[..., Any])


_FIELD_OPTIONS = {"model_name": "--model", "bootstrap_resamples": "--bootstrap", "hook_name": "--hook"}
"""Config fields whose option is not the field name with dashes."""


def _option_names() -> dict[str, str]:
    """Config field names → the option a user types (``batch_size`` → ``--batch-size``)."""
    import typer.main

    commands = getattr(typer.main.get_command(app), "commands", {})
    flags = {
        opt
        for command in commands.values()
        for param in command.params
        for opt in (*param.opts, *param.secondary_opts)
        if opt.startswith("--") and not opt.startswith("--no-")
    }
    return {flag[2:].replace("-", "_"): flag for flag in flags} | _FIELD_OPTIONS


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, ValidationError):
        # Raised while building a config from this command's options: name the options.
        from pseval.errors import validation_details

        details = validation_details(exc, _option_names())
        return f"invalid option value: {details}. Fix: pass valid values for the options named above."
    return str(exc)


def handle_errors(func: F) -> F:
    """Report user errors as one line and exit 2; keep tracebacks for genuine bugs."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (PsevalError, ValidationError) as exc:
            from rich.markup import escape  # messages may hold brackets, e.g. pip install 'pseval[ray]'

            err_console.print(
                f"[bold red]error:[/] {escape(_one_line(exc))}", highlight=False, soft_wrap=True
            )
            raise typer.Exit(code=2) from None
        except KeyboardInterrupt:
            err_console.print("interrupted: finished results are kept; rerun the command to continue")
            raise typer.Exit(code=130) from None

    return wrapper  # type: ignore[return-value]


def print_results(results: list[Any], title: str, fmt: str = "table") -> None:
    """An evaluation's results, baselines and dropped-pair counts in ``fmt`` (see pseval.report.tables)."""
    from pseval.report.tables import print_results as print_tables

    print_tables(results, console, title, fmt)


def _title(results: list[Any], model: str, dataset: str, split: str) -> str:
    n_pairs = results[0].eval_result_metrics["ps_eval"]["n_pairs"] if results else 0
    return f"PS-Eval on {model} · {dataset} {split} · {n_pairs} pairs"


def _note(message: str) -> None:
    """A line about what was done (files written): on stderr, so stdout stays the table or data."""
    err_console.print(message, highlight=False, soft_wrap=True)


ModelOpt = Annotated[str, typer.Option("--model", "-m", help="Model alias, Hugging Face id or local folder.")]
AllowMismatchOpt = Annotated[
    bool,
    typer.Option(
        "--allow-model-mismatch",
        help="Score SAEs whose config records another model than --model (refused by default).",
    ),
]
FORMAT_HELP = "How to print the results: table (fits the terminal), markdown, csv or json."
FormatOpt = Annotated[Literal["table", "markdown", "csv", "json"], typer.Option("--format", help=FORMAT_HELP)]
DATASET_HELP = (
    "'wic', 'wordnet', 'wordnet-senses' (within-lemma sense retrieval), 'wordnet-2x2' (word form x "
    "meaning, docs/wordnet-dataset.md) or a .jsonl file of pairs or of sense items."
)
MULTI_TOKEN_HELP = (
    "Words of several tokens: drop (the paper), last (read the last sub-token) or mean (mean of the "
    "sub-tokens, encoded after pooling)."
)
ExecutorOpt = Annotated[
    Literal["local", "ray"],
    typer.Option(
        help="local (this process) or ray (one task per hook group on a Ray cluster, docs/distributed.md)."
    ),
]
RayAddressOpt = Annotated[
    str,
    typer.Option(
        help="With --executor ray: local (start a cluster here), auto (the running one) or HOST:PORT."
    ),
]
RayCpusOpt = Annotated[
    float | None,
    typer.Option(
        help="With --executor ray: CPUs per task. Default: a whole node's on the CPU, a GPU's share on cuda."
    ),
]
RayGpusOpt = Annotated[
    float | None,
    typer.Option(help="With --executor ray on cuda: GPUs per task (0.5 = two per GPU). Default: 1."),
]
RayGroupsOpt = Annotated[
    int | None,
    typer.Option(min=1, help="With --executor ray: hook groups (tasks). Default: as many as run at once."),
]


def _ray_options(address: str, cpus: float | None, gpus: float | None, groups: int | None) -> Any:
    from pseval.distributed.cluster import RayOptions

    return RayOptions(address=address, cpus_per_task=cpus, gpus_per_task=gpus, n_groups=groups)


@app.command()
@handle_errors
def dataset(
    model: ModelOpt = "smollm2-135m",
    name: Annotated[str, typer.Option("--dataset", help=DATASET_HELP)] = "wic",
    seed: Annotated[int, typer.Option(help="Seed of the balancing downsample (>= 0).")] = 0,
    balance: Annotated[bool, typer.Option("--balance/--no-balance", help="Balance the labels.")] = True,
    multi_token: Annotated[str, typer.Option(help=MULTI_TOKEN_HELP)] = "drop",
) -> None:
    """Print pair counts per split and label, and how many pairs were dropped for which reason.

    \b
    Example:
      pseval dataset --dataset my_pairs.jsonl --no-balance
    """
    from pseval.data.datasets import check_multi_token
    from pseval.evals.checks import check_seed
    from pseval.models.loading import load_tokenizer
    from pseval.report.tables import dataset_table

    check_seed(seed)
    policy = check_multi_token(multi_token)
    console.print(dataset_table(load_tokenizer(model), model, name, balance, seed, policy))
    console.print(f"balanced: {balance} (seed {seed}); counts in parentheses are before balancing")
    if policy != "drop":
        console.print(
            f"--multi-token {policy}: the single-token pairs are those of --multi-token drop; "
            "multi-token pairs are balanced on their own"
        )


@app.command("eval")
@handle_errors
def eval_command(
    sae: Annotated[
        list[str] | None,
        typer.Option(
            "--sae",
            "-s",
            metavar="SAE",
            help="SAE folder/file or saelens:RELEASE/ID; repeat for several (or use --release).",
        ),
    ] = None,
    model: ModelOpt = "smollm2-135m",
    allow_model_mismatch: AllowMismatchOpt = False,
    hook: Annotated[
        str | None, typer.Option(help="Hook point; defaults to the one in each SAE's config.")
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
    output_folder: Annotated[
        Path, typer.Option("--out", "--output-folder", "-o", help="Where the JSON results go (in ps_eval/).")
    ] = Path("results"),
    force_rerun: Annotated[bool, typer.Option("--force-rerun", help="Recompute finished results.")] = False,
    name: Annotated[str, typer.Option("--dataset", help=DATASET_HELP)] = "wic",
    split: Annotated[Literal["train", "dev", "test", "all"], typer.Option(help="Dataset split.")] = "test",
    balance: Annotated[bool, typer.Option("--balance/--no-balance", help="Balance the labels.")] = True,
    seed: Annotated[int, typer.Option(help="Seed of balancing and bootstrap (>= 0).")] = 0,
    max_pairs: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Score a seeded random subset of N pairs in all (drawn with --seed after balancing: the same "
            "N and seed give the same pairs; with --multi-token last/mean shared between single- and "
            "multi-token pairs in proportion to their counts). Default: every pair.",
        ),
    ] = None,
    template: Annotated[str | None, typer.Option(help="Prompt template with {context} and {word}.")] = None,
    position: Annotated[
        Literal["template", "context"],
        typer.Option(help="Read the word's token in the template or in the context sentence."),
    ] = "template",
    prepend_bos: Annotated[
        bool | None,
        typer.Option(
            "--prepend-bos/--no-prepend-bos",
            help="Force BOS on or off. Default: what each SAE's config records, else the tokenizer's default.",
        ),
    ] = None,
    multi_token: Annotated[str, typer.Option(help=MULTI_TOKEN_HELP)] = "drop",
    batch_size: Annotated[int, typer.Option(help="Prompts per forward pass.")] = 32,
    device: Annotated[
        Literal["auto", "cpu", "cuda"],
        typer.Option(help="Device of the model and the SAEs (auto: cuda when present)."),
    ] = "cpu",
    dtype: Annotated[
        Literal["float32", "bfloat16", "float16"], typer.Option(help="dtype of the model and the SAEs.")
    ] = "float32",
    fold_decoder_norms: Annotated[
        bool, typer.Option("--fold-decoder-norms", help="Scale latents by decoder norms first.")
    ] = False,
    bootstrap: Annotated[
        int,
        typer.Option(min=0, help="Bootstrap resamples for the 95% intervals (>= 200; 0 = no intervals)."),
    ] = 2000,
    topk_overlap_k: Annotated[
        int, typer.Option(help="k of the top-k Jaccard score (at most each SAE's width).")
    ] = 16,
    baselines: Annotated[
        bool, typer.Option("--baselines/--no-baselines", help="Score the baselines.")
    ] = True,
    controls: Annotated[
        bool,
        typer.Option(
            "--controls",
            help="Also train (once, cached) and score each pseval-trained SAE's controls: a frozen random "
            "decoder with a trained encoder, and a frozen random encoder with a trained decoder.",
        ),
    ] = False,
    standard_metrics_tokens: Annotated[
        int, typer.Option(help="Also measure MSE/L0/CE-recovered on this many held-out corpus tokens.")
    ] = 0,
    interpret_tokens: Annotated[
        int,
        typer.Option(
            help="Corpus tokens for the chosen latents' firing frequency and top contexts (0 = skip)."
        ),
    ] = 16384,
    logit_lens_tokens: Annotated[
        int,
        typer.Option(
            help="Logit-lens tokens listed per chosen latent (0 = skip; costly on big vocabularies)."
        ),
    ] = 8,
    output_format: FormatOpt = "table",
    executor: ExecutorOpt = "local",
    ray_address: RayAddressOpt = "local",
    ray_cpus_per_task: RayCpusOpt = None,
    ray_gpus_per_task: RayGpusOpt = None,
    ray_groups: RayGroupsOpt = None,
) -> None:
    """Evaluate one or many SAEs with PS-Eval (one activation pass per hook) and write one JSON per SAE.

    \b
    Example:
      pseval eval --sae saes/topk-4608 --sae saelens:RELEASE/ID --out results
    """
    from pseval._io import check_writable
    from pseval.evals.checks import check_count, check_seed

    check_seed(seed)
    check_count(standard_metrics_tokens, "--standard-metrics-tokens", "no standard metrics")
    from pseval.metrics.uncertainty import check_bootstrap_resamples

    check_bootstrap_resamples(bootstrap)
    check_writable(output_folder, "--out")
    sae = _expand_release(sae, release, sae_pattern)
    from pseval.data.datasets import check_multi_token
    from pseval.evals.config import PSEvalConfig
    from pseval.evals.runner import evaluate, result_path
    from pseval.models.loading import resolve_device

    overrides: dict[str, Any] = {"multi_token": check_multi_token(multi_token)}
    if template is not None:
        overrides["template"] = template
    config = PSEvalConfig(
        model_name=model,
        dataset=name,
        split=split,  # type: ignore[arg-type]
        balance=balance,
        seed=seed,
        max_pairs=max_pairs,
        position=position,  # type: ignore[arg-type]
        prepend_bos=prepend_bos,
        batch_size=batch_size,
        device=resolve_device(device) if executor == "local" else device,  # ray: the cluster's devices
        dtype=dtype,
        fold_decoder_norms=fold_decoder_norms,
        bootstrap_resamples=bootstrap,
        topk_overlap_k=topk_overlap_k,
        baselines=baselines,
        controls=controls,
        interpret_tokens=interpret_tokens,
        logit_lens_tokens=logit_lens_tokens,
        allow_model_mismatch=allow_model_mismatch,
        **overrides,
    )
    run_log: dict[str, list[str]] = {}
    if executor == "ray":
        from pseval.distributed.evaluate import evaluate_ray

        results = evaluate_ray(
            model,
            sae,
            config=config,
            options=_ray_options(ray_address, ray_cpus_per_task, ray_gpus_per_task, ray_groups),
            hook_name=hook,
            output_folder=output_folder,
            force_rerun=force_rerun,
            standard_metrics_tokens=standard_metrics_tokens,
            on_status=lambda msg: err_console.print(f"[dim]{msg}[/]"),
            run_log=run_log,
        )
    else:
        results = evaluate(
            model,
            sae,
            config=config,
            hook_name=hook,
            output_folder=output_folder,
            force_rerun=force_rerun,
            standard_metrics_tokens=standard_metrics_tokens,
            on_status=lambda msg: err_console.print(f"[dim]{msg}[/]"),
            run_log=run_log,
        )
    print_results(results, _title(results, model, name, split), output_format)
    from pseval.report.wordform_table import print_wordform

    print_wordform(results, console, output_format)
    from pseval.report.senses_table import print_senses

    print_senses(results, console, output_format)
    kept = set(run_log.get("skipped", []))
    for r in results:
        # a finished result found on disk was kept as it is, not written again
        _note(f"{'kept' if r.sae_name in kept else 'wrote'} {result_path(output_folder, r.sae_name)}")


def _expand_release(saes: list[str] | None, release: str | None, pattern: str | None) -> list[str]:
    """The --sae specs followed by those of --release matching --sae-pattern (each once)."""
    from pseval.errors import ConfigError

    specs = list(saes or [])
    if pattern is not None and release is None:
        raise ConfigError(
            "--sae-pattern needs --release", "add --release RELEASE, e.g. gemma-scope-2-270m-pt-res"
        )
    if release is not None:
        from pseval.sae.pretrained import release_specs

        specs += [spec for spec in release_specs(release, pattern) if spec not in specs]
    if not specs:
        raise ConfigError("no SAE to evaluate", "pass --sae PATH (repeat for several) or --release RELEASE")
    return specs


@app.command()
@handle_errors
def compare(
    result_a: Annotated[Path, typer.Argument(help="A PS-Eval result JSON.")],
    result_b: Annotated[Path, typer.Argument(help="Another PS-Eval result JSON on the same pairs.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the comparison as JSON.")] = False,
) -> None:
    """Paired exact McNemar test between two SAEs' PS-Eval results on the same pairs.

    One row per class: pairs, each side's metric, the difference, the pairs only one side gets right and
    the exact two-sided p-value.

    \b
    Example:
      pseval compare results/ps_eval/A_eval_results.json B_eval_results.json
    """
    from pseval.evals.compare import compare_results
    from pseval.report.inspect import print_comparison

    print_comparison(compare_results(result_a, result_b), console, err_console, as_json)


@app.command()
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
    print_results(results, _title(results, "smollm2-135m", "wic", "test"), output_format)
    if report_html:
        from pseval.report.html import write_report
        from pseval.report.plots import make_figures

        make_figures(output_folder)
        _note(f"report: {write_report(output_folder)}")
    _note(f"results: {output_folder / 'ps_eval'}")
    _note(f"took {timings['total_s']:.0f} s")


@app.command()
@handle_errors
def plot(
    results_dir: Annotated[
        Path, typer.Argument(help="A folder of PS-Eval result JSON files (searched recursively).")
    ],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Folder for the figures. Default: RESULTS_DIR/figures.")
    ] = None,
) -> None:
    """Regenerate every figure (PNG and SVG) from a results folder alone.

    \b
    Example:
      pseval plot runs/paper-layers --out figures
    """
    from pseval._io import check_writable
    from pseval.report.plots import make_figures

    check_writable(out if out is not None else results_dir / "figures", "--out")
    paths = make_figures(results_dir, out)
    for path in paths:
        console.print(f"wrote {path}")


@app.command()
@handle_errors
def reliability(
    results_dir: Annotated[
        Path, typer.Argument(help="A folder of PS-Eval result JSON files (searched recursively).")
    ],
    output_format: Annotated[
        Literal["table", "json", "csv"], typer.Option("--format", help="table (terminal), json or csv.")
    ] = "table",
    level: Annotated[
        float, typer.Option(help="Confidence level of the two-sided test behind the MDD.")
    ] = 0.95,
    metric: Annotated[
        list[str] | None, typer.Option(help="Report only this metric (repeatable). Default: every metric.")
    ] = None,
) -> None:
    """Training noise: reseed spread, minimum detectable difference and order stability per metric.

    Groups the results of SAEs that differ only by training seed (`pseval sweep --seeds N`).

    \b
    Example:
      pseval reliability runs/paper-activation-tiny/results
    """
    from pseval.report.load import load_results
    from pseval.report.reliability import (
        reliability_csv,
        reliability_json,
        reliability_report,
        reliability_table,
    )

    found = reliability_report(load_results(results_dir), level, metric)
    if output_format == "json":
        sys.stdout.write(reliability_json(found) + "\n")
    elif output_format == "csv":
        sys.stdout.write(reliability_csv(found))
    else:
        console.print(reliability_table(found))


@app.command()
@handle_errors
def report(
    results_dir: Annotated[
        Path, typer.Argument(help="A folder of PS-Eval result JSON files (searched recursively).")
    ],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="The HTML file. Default: RESULTS_DIR/report.html.")
    ] = None,
    figures: Annotated[
        bool,
        typer.Option("--figures/--no-figures", help="Also write the figure files (RESULTS_DIR/figures)."),
    ] = True,
) -> None:
    """Write one self-contained HTML report (opens offline) with the table, figures and per-word drill-down.

    \b
    Example:
      pseval report results --out report.html
    """
    from pseval._io import check_writable
    from pseval.report.html import write_report
    from pseval.report.plots import make_figures

    check_writable(out if out is not None else results_dir / "report.html", "--out", kind="file")
    if figures:
        check_writable(results_dir / "figures", "RESULTS_DIR")

    if figures:
        make_figures(results_dir)
    path = write_report(results_dir, out)
    console.print(f"wrote {path}")


@app.command()
@handle_errors
def inspect(
    result: Annotated[Path, typer.Argument(help="A PS-Eval result JSON.")],
    by: Annotated[
        Literal["pos", "word", "frequency"],
        typer.Option(
            help="Breakdown by part of speech, word, or the chosen latent's corpus firing frequency."
        ),
    ] = "pos",
    word: Annotated[
        str | None,
        typer.Option(
            help="Show every pair of this word (any case): marked sentences, latents, logit lens, top contexts."
        ),
    ] = None,
    top: Annotated[int, typer.Option(min=1, help="Rows of the word breakdown (most pairs first).")] = 25,
) -> None:
    """Breakdowns of one result (by part of speech, word or latent frequency) and a per-word drill-down.

    \b
    Example:
      pseval inspect results/ps_eval/sae_eval_results.json --word bank
    """
    from pseval.evals.compare import load_result
    from pseval.report.inspect import breakdown_table, frequency_table, print_word

    res = load_result(result)
    if word is not None:
        print_word(res, word, console, str(result))
    elif by == "frequency":
        console.print(frequency_table(res, str(result)))
    else:
        console.print(breakdown_table(res, by, top, width=console.width))


@app.command()
@handle_errors
def metrics(
    sae: Annotated[
        list[str], typer.Option("--sae", "-s", metavar="SAE", help="SAE folder/file; repeat for several.")
    ],
    model: ModelOpt = "smollm2-135m",
    allow_model_mismatch: AllowMismatchOpt = False,
    hook: Annotated[
        str | None, typer.Option(help="Hook point; defaults to the one in each SAE's config.")
    ] = None,
    corpus: Annotated[str, typer.Option(help="Held-out text: 'bundled' or a .txt/.jsonl file.")] = "bundled",
    tokens: Annotated[int, typer.Option(help="Held-out tokens for MSE/FVU/L0.")] = 16384,
    ce_tokens: Annotated[
        int | None,
        typer.Option(help="Tokens for CE loss recovered and KL (0 = skip; default min(tokens, 4096))."),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("--out", "--output", "-o", help="Also write the metrics as JSON to this file."),
    ] = None,
) -> None:
    """Standard SAE metrics on held-out corpus text: MSE, FVU, L0, dead/dense latents, CE loss recovered, KL.

    \b
    Example:
      pseval metrics --sae saes/topk-4608 --tokens 16384 --out metrics.json
    """
    from pseval._io import check_writable, write_json_atomic
    from pseval.evals.runner import check_sae_fits, hook_for, resolve_saes
    from pseval.metrics.standard import standard_metrics
    from pseval.models.hooks import parse_hook_name
    from pseval.models.loading import load_model

    if tokens < 1:
        from pseval.errors import ConfigError

        raise ConfigError(f"--tokens must be positive (got {tokens})", "pass e.g. --tokens 16384")
    from pseval.evals.checks import check_count, check_model_matches

    check_count(ce_tokens, "--ce-tokens", "no CE loss or KL")
    if output is not None:
        check_writable(output, "--out", kind="file")
    named = resolve_saes(sae)
    for item in named:
        if isinstance(item.sae.cfg.metadata.get("transcoder"), dict):
            from pseval.errors import SAEError

            out_hook = item.sae.cfg.metadata["transcoder"].get("hook_name_out")
            raise SAEError(
                f"{item.name} is a transcoder (it predicts {out_hook}, not its input): reconstruction metrics "
                "do not apply to it",
                "run pseval eval on it (PS-Eval reads its encoder side), or pass an SAE to pseval metrics",
            )
        check_model_matches(item.name, item.sae.cfg.model_name, model, allow_model_mismatch, _note)
    loaded = load_model(model)
    rows = {}
    for item in named:
        hook_name = hook_for(item, hook)
        parse_hook_name(hook_name, loaded.model)
        check_sae_fits(loaded, item, hook_name)
        result = standard_metrics(
            loaded, item.sae, hook_name, corpus=corpus, n_tokens=tokens, n_tokens_ce=ce_tokens
        )
        rows[item.name] = result.model_dump(mode="json")
    from pseval.report.tables import metrics_renderable

    title = f"Standard metrics on held-out {corpus} text ({tokens:,} tokens)"
    console.print(metrics_renderable(rows, console, title))
    if output is not None:
        write_json_atomic(output, rows)
        _note(f"wrote {output}")


@app.command()
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
            _ray_options(ray_address, ray_cpus_per_task, ray_gpus_per_task, ray_groups),
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
    _note(
        f"trained {summary['trained']}, reused {summary['reused']}, evaluated {summary['evaluated']}, "
        f"skipped {summary['skipped']} · {summary['timings']['total_s']:.0f} s on {summary['device']}"
    )
    _note(f"results: {summary['results_dir']}")


def _train(**params: Any) -> None:
    from pseval._io import check_writable
    from pseval.cli_options import passed_values
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
    _note(
        f"training a {config.architecture} SAE ({width}) at {config.hook_name} of {config.model} on "
        f"{config.training_tokens:,} tokens of the {config.corpus} corpus → {config.output_dir()}"
        + ("" if values or config_path else " (all defaults; see pseval train --help for the options)")
    )
    if config.seeds > 1:
        _note(
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
                f"{e.explained_variance:.3f} · L0 {e.l0:.1f} · dead {e.dead_fraction:.1%} · dense {e.dense_fraction:.1%}",
                highlight=False,
            )


def _register_train_command() -> None:
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


_register_train_command()


def _quiet_transformers() -> None:
    """Hide transformers' per-load progress bars and advisory warnings; pseval reports its own progress."""
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
    except Exception:  # transformers missing or changed: nothing to quiet
        pass


def main() -> None:
    """Console-script entry point."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    _quiet_transformers()
    from pseval._progress import set_reporter, stderr_reporter

    set_reporter(stderr_reporter)
    try:
        app(prog_name="pseval")
    except SystemExit:
        raise
    except BrokenPipeError:  # e.g. `pseval ... | head`
        sys.exit(0)


if __name__ == "__main__":
    main()
