"""The ``pseval`` command line: a thin layer over the Python API.

Every command turns a :class:`pseval.errors.PsevalError` (or an invalid option value) into one line on
stderr and exit code 2, without a traceback.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from pseval._format import format_number
from pseval.errors import PsevalError

app = typer.Typer(
    name="pseval",
    help="PS-Eval: do an SAE's features separate the meanings of polysemous words?",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
# Piped or captured output gets a wide, fixed width so tables are never cut into unreadable columns.
console = Console(width=None if sys.stdout.isatty() else 200)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 200)

F = TypeVar("F", bound=Callable[..., Any])


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, ValidationError):
        parts = []
        for error in exc.errors():
            where = ".".join(str(x) for x in error.get("loc", ())) or "value"
            parts.append(f"{where}: {error.get('msg', 'invalid')}")
        return "invalid configuration: " + "; ".join(parts) + ". Fix: correct the value(s) named above."
    return str(exc)


def handle_errors(func: F) -> F:
    """Report user errors as one line and exit 2; keep tracebacks for genuine bugs."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (PsevalError, ValidationError) as exc:
            err_console.print(f"[bold red]error:[/] {_one_line(exc)}", highlight=False, soft_wrap=True)
            raise typer.Exit(code=2) from None
        except KeyboardInterrupt:
            err_console.print("interrupted: finished results are kept; rerun the command to continue")
            raise typer.Exit(code=130) from None

    return wrapper  # type: ignore[return-value]


def _with_ci(metrics: dict[str, Any], name: str) -> str:
    value = metrics.get("ps_eval", {}).get(name)
    ci = metrics.get("ps_eval_ci", {})
    low, high = ci.get(f"{name}_low"), ci.get(f"{name}_high")
    if value is None:
        return "–"
    if low is None or high is None:
        return f"{value:.3f}"
    return f"{value:.3f} [{low:.2f}, {high:.2f}]"


def results_table(results: list[Any], title: str = "PS-Eval") -> Table:
    """One row per SAE: the headline metric with its interval, the others, and the baselines."""
    table = Table(title=title, title_justify="left")
    for column in ("SAE", "hook", "arch", "width", "specificity", "recall", "accuracy", "F1", "no-active"):
        table.add_column(column, justify="left" if column in ("SAE", "hook", "arch") else "right")
    has_std = any("standard" in r.eval_result_metrics for r in results)
    if has_std:
        table.add_column("FVU", justify="right")
        table.add_column("L0", justify="right")
        table.add_column("CE rec.", justify="right")
    for r in results:
        m = r.eval_result_metrics
        sae = m.get("sae", {})
        row = [
            r.sae_name,
            r.hook_name,
            str(sae.get("architecture", "")),
            str(sae.get("d_sae", "")),
            _with_ci(m, "specificity"),
            _with_ci(m, "recall"),
            _with_ci(m, "accuracy"),
            format_number(m["ps_eval"].get("f1")),
            str(m["ps_eval"].get("n_pairs_no_active", 0)),
        ]
        if has_std:
            std = m.get("standard", {})
            row += [
                format_number(std.get("fvu")),
                format_number(std.get("l0"), 1),
                format_number(std.get("ce_loss_recovered")),
            ]
        table.add_row(*row)
    return table


def baselines_table(results: list[Any]) -> Table | None:
    """Baselines per hook: dense cosine (held-out threshold) and a random SAE of the same width."""
    rows = []
    seen: set[object] = set()
    for r in results:
        m = r.eval_result_metrics
        if "baseline_dense" in m and r.hook_name not in seen:
            seen.add(r.hook_name)
            d = m["baseline_dense"]
            rows.append(
                [
                    r.hook_name,
                    "dense cosine",
                    format_number(d.get("specificity")),
                    format_number(d.get("recall")),
                    format_number(d.get("accuracy")),
                    format_number(d.get("f1")),
                    format_number(d.get("roc_auc")),
                ]
            )
        if "baseline_neurons" in m and (r.hook_name, "neurons") not in seen:
            seen.add((r.hook_name, "neurons"))
            d = m["baseline_neurons"]
            rows.append(
                [
                    r.hook_name,
                    f"MLP neurons ({d.get('n_neurons', '?')})",
                    *(format_number(d.get(key)) for key in ("specificity", "recall", "accuracy", "f1")),
                    "–",
                ]
            )
        random_key = (r.hook_name, m.get("sae", {}).get("d_sae"))
        if "baseline_random_sae" in m and random_key not in seen:
            seen.add(random_key)
            d = m["baseline_random_sae"]
            rows.append(
                [
                    r.hook_name,
                    f"random SAE ({m['sae']['d_sae']})",
                    format_number(d.get("specificity")),
                    format_number(d.get("recall")),
                    format_number(d.get("accuracy")),
                    format_number(d.get("f1")),
                    "–",
                ]
            )
    if not rows:
        return None
    table = Table(title="Baselines", title_justify="left")
    for column in ("hook", "baseline", "specificity", "recall", "accuracy", "F1", "ROC-AUC"):
        table.add_column(column, justify="left" if column in ("hook", "baseline") else "right")
    for row in rows:
        table.add_row(*row)
    return table


def print_results(results: list[Any], model: str, dataset: str, split: str) -> None:
    """The results table (with intervals) and the baselines table of an evaluation."""
    n_pairs = results[0].eval_result_metrics["ps_eval"]["n_pairs"] if results else 0
    console.print(results_table(results, title=f"PS-Eval on {model} · {dataset} {split} · {n_pairs} pairs"))
    base = baselines_table(results)
    if base is not None:
        console.print(base)


ModelOpt = Annotated[str, typer.Option("--model", "-m", help="Model alias, Hugging Face id or local folder.")]


@app.command()
@handle_errors
def dataset(
    model: ModelOpt = "smollm2-135m",
    name: Annotated[
        str, typer.Option("--dataset", help="'wic', 'wordnet' or a .jsonl file of pairs.")
    ] = "wic",
    seed: Annotated[int, typer.Option(help="Seed of the balancing downsample.")] = 0,
    balance: Annotated[bool, typer.Option("--balance/--no-balance", help="Balance the labels.")] = True,
) -> None:
    """Print pair counts per split and label, and how many pairs were dropped for which reason."""
    from pseval.data.datasets import load_dataset
    from pseval.models.loading import load_tokenizer

    tokenizer = load_tokenizer(model)
    table = Table(title=f"{name} pairs for {model} (' ' + word must be one token)", title_justify="left")
    for column in ("split", "raw", "dropped", "different (0)", "same (1)", "kept"):
        table.add_column(column, justify="left" if column in ("split", "dropped") else "right")
    for split in ("train", "dev", "test"):
        try:
            ds = load_dataset(tokenizer, name=name, split=split, balance=balance, seed=seed)
        except PsevalError as exc:
            table.add_row(split, "–", str(exc), "–", "–", "0")
            continue
        st = ds.stats
        dropped = ", ".join(f"{k}: {v}" for k, v in st.dropped.items() if v) or "none"
        before = st.kept_before_balance
        table.add_row(
            split,
            str(st.n_raw),
            dropped,
            f"{st.kept.get(0, 0)} (of {before.get(0, 0)})",
            f"{st.kept.get(1, 0)} (of {before.get(1, 0)})",
            str(len(ds)),
        )
    console.print(table)
    console.print(f"balanced: {balance} (seed {seed}); counts in parentheses are before balancing")


@app.command("eval")
@handle_errors
def eval_command(
    sae: Annotated[
        list[str], typer.Option("--sae", "-s", help="SAE folder/file or saelens:RELEASE/ID; repeatable.")
    ],
    model: ModelOpt = "smollm2-135m",
    hook: Annotated[
        str | None, typer.Option(help="Hook point; defaults to the one in each SAE's config.")
    ] = None,
    output_folder: Annotated[Path, typer.Option(help="Where the JSON results go.")] = Path("results"),
    force_rerun: Annotated[bool, typer.Option("--force-rerun", help="Recompute finished results.")] = False,
    name: Annotated[
        str, typer.Option("--dataset", help="'wic', 'wordnet' or a .jsonl file of pairs.")
    ] = "wic",
    split: Annotated[str, typer.Option(help="train, dev, test or all.")] = "test",
    balance: Annotated[bool, typer.Option("--balance/--no-balance", help="Balance the labels.")] = True,
    seed: Annotated[int, typer.Option(help="Seed of balancing and bootstrap.")] = 0,
    max_pairs: Annotated[int | None, typer.Option(help="Keep only the first N pairs.")] = None,
    template: Annotated[str | None, typer.Option(help="Prompt template with {context} and {word}.")] = None,
    position: Annotated[
        str, typer.Option(help="'template' (the template's word token) or 'context'.")
    ] = "template",
    prepend_bos: Annotated[
        bool | None, typer.Option("--prepend-bos/--no-prepend-bos", help="Force BOS on or off.")
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Prompts per forward pass.")] = 32,
    device: Annotated[str, typer.Option(help="cpu, cuda or auto.")] = "cpu",
    fold_decoder_norms: Annotated[
        bool, typer.Option("--fold-decoder-norms", help="Scale latents by decoder norms first.")
    ] = False,
    bootstrap: Annotated[int, typer.Option(help="Bootstrap resamples for the intervals (0 = off).")] = 2000,
    topk_overlap_k: Annotated[int, typer.Option(help="k of the top-k Jaccard score.")] = 16,
    baselines: Annotated[
        bool, typer.Option("--baselines/--no-baselines", help="Score the baselines.")
    ] = True,
    standard_metrics_tokens: Annotated[
        int, typer.Option(help="Also measure MSE/L0/CE-recovered on this many held-out corpus tokens.")
    ] = 0,
    interpret_tokens: Annotated[
        int,
        typer.Option(
            help="Corpus tokens for the chosen latents' firing frequency and top contexts (0 = skip)."
        ),
    ] = 16384,
) -> None:
    """Evaluate one or many SAEs with PS-Eval (one activation pass per hook) and write one JSON per SAE."""
    from pseval.evals.config import PSEvalConfig
    from pseval.evals.runner import evaluate, result_path

    overrides: dict[str, Any] = {}
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
        device=_resolve_device(device),
        fold_decoder_norms=fold_decoder_norms,
        bootstrap_resamples=bootstrap,
        topk_overlap_k=topk_overlap_k,
        baselines=baselines,
        interpret_tokens=interpret_tokens,
        **overrides,
    )
    results = evaluate(
        model,
        sae,
        config=config,
        hook_name=hook,
        output_folder=output_folder,
        force_rerun=force_rerun,
        standard_metrics_tokens=standard_metrics_tokens,
        on_status=lambda msg: err_console.print(f"[dim]{msg}[/]"),
    )
    print_results(results, model, name, split)
    for r in results:
        console.print(f"wrote {result_path(output_folder, r.sae_name)}")


def _resolve_device(device: str) -> str:
    if device == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


@app.command()
@handle_errors
def compare(
    result_a: Annotated[Path, typer.Argument(help="A PS-Eval result JSON.")],
    result_b: Annotated[Path, typer.Argument(help="Another PS-Eval result JSON on the same pairs.")],
) -> None:
    """Paired exact McNemar test between two SAEs' PS-Eval results on the same pairs."""
    from pseval.evals.compare import compare_results

    out = compare_results(result_a, result_b)
    console.print_json(json.dumps(out))


@app.command()
@handle_errors
def demo(
    output_folder: Annotated[Path, typer.Option(help="Where the JSON results go.")] = Path("results/demo"),
    force_rerun: Annotated[bool, typer.Option("--force-rerun", help="Re-evaluate finished results.")] = False,
    report_html: Annotated[
        bool, typer.Option("--report/--no-report", help="Also write the HTML report.")
    ] = True,
) -> None:
    """Train (first time only) and evaluate the default SAE suite on the embedded SmolLM2."""
    from pseval.demo import run_demo

    results, timings = run_demo(
        output_folder=output_folder,
        force_rerun=force_rerun,
        status=lambda msg: err_console.print(f"[dim]{msg}[/]"),
    )
    print_results(results, "smollm2-135m", "wic", "test")
    if report_html:
        from pseval.report.html import write_report
        from pseval.report.plots import make_figures

        make_figures(output_folder)
        console.print(f"report: {write_report(output_folder)}")
    console.print(f"results: {output_folder / 'ps_eval'}")
    console.print(f"took {timings['total_s']:.0f} s")


@app.command()
@handle_errors
def plot(
    results_dir: Annotated[
        Path, typer.Argument(help="A folder of PS-Eval result JSON files (searched recursively).")
    ],
    out: Annotated[
        Path | None, typer.Option(help="Where the figures go (default RESULTS_DIR/figures).")
    ] = None,
) -> None:
    """Regenerate every figure (PNG and SVG) from a results folder alone."""
    from pseval.report.plots import make_figures

    paths = make_figures(results_dir, out)
    for path in paths:
        console.print(f"wrote {path}")


@app.command()
@handle_errors
def report(
    results_dir: Annotated[
        Path, typer.Argument(help="A folder of PS-Eval result JSON files (searched recursively).")
    ],
    out: Annotated[Path | None, typer.Option(help="The HTML file (default RESULTS_DIR/report.html).")] = None,
    figures: Annotated[
        bool, typer.Option("--figures/--no-figures", help="Also write the figure files.")
    ] = True,
) -> None:
    """Write one self-contained HTML report (opens offline) with the table, figures and per-word drill-down."""
    from pseval.report.html import write_report
    from pseval.report.plots import make_figures

    if figures:
        make_figures(results_dir)
    path = write_report(results_dir, out)
    console.print(f"wrote {path}")


@app.command()
@handle_errors
def inspect(
    result: Annotated[Path, typer.Argument(help="A PS-Eval result JSON.")],
    by: Annotated[
        str, typer.Option(help="Breakdown: pos, word or frequency (of the chosen latent on the corpus).")
    ] = "pos",
    word: Annotated[
        str | None,
        typer.Option(help="Show every pair of this word: sentences, latents, logit lens, top contexts."),
    ] = None,
    top: Annotated[int, typer.Option(help="Rows of the word breakdown to show (most pairs first).")] = 25,
) -> None:
    """Breakdowns of one result (by part of speech, word or latent frequency) and a per-word drill-down."""
    from pseval.errors import DataError
    from pseval.evals.compare import load_result

    res = load_result(result)
    un = res.eval_result_unstructured or {}
    if word is not None:
        rows = [d for d in res.eval_result_details if d.word == word]
        if not rows:
            raise DataError(f"no pair of the word {word!r} in {result}", "pick a word listed by --by word")
        lens = un.get("logit_lens", {})
        contexts = un.get("top_contexts", {})
        freq = un.get("firing_frequency", {})
        for d in rows:
            verdict = "correct" if d.correct else "wrong"
            meaning = "same meaning" if d.label == 1 else "different meanings"
            console.print(
                f"[bold]{d.id}[/] · {meaning} · predicted {'same' if d.predicted_same else 'different'} ({verdict})"
            )
            for ctx, latent, act in (
                (d.context_1, d.latent_1, d.activation_1),
                (d.context_2, d.latent_2, d.activation_2),
            ):
                console.print(f"  {ctx or '(context not recorded)'}", highlight=False)
                if latent < 0:
                    console.print("    no active latent")
                    continue
                f = freq.get(str(latent))
                console.print(
                    f"    latent {latent} ({act:.2f}; fires on {f:.2%} of corpus tokens)"
                    if f is not None
                    else f"    latent {latent} ({act:.2f})",
                    highlight=False,
                )
                if str(latent) in lens:
                    console.print(
                        "    logit lens: " + " · ".join(repr(t) for t in lens[str(latent)]), highlight=False
                    )
                for c in contexts.get(str(latent), [])[:3]:
                    console.print(f"    top context ({c['activation']:.2f}): {c['text']}", highlight=False)
        return
    if by == "word":
        table = Table(title=f"{res.sae_name}: by word", title_justify="left")
        for column in ("word", "pairs", "same meaning", "same latent", "accuracy", "latents"):
            table.add_column(column, justify="left" if column in ("word", "latents") else "right")
        words = sorted(un.get("by_word", {}).items(), key=lambda kv: (-kv[1]["n_pairs"], kv[0]))[:top]
        for name, w in words:
            table.add_row(
                name,
                str(w["n_pairs"]),
                str(w["n_same_meaning"]),
                format_number(w["share_same_latent"], 2),
                format_number(w["accuracy"], 2),
                ", ".join(map(str, w["latents"][:6])),
            )
        console.print(table)
        return
    key = {"pos": "by_pos", "frequency": "by_frequency"}.get(by)
    if key is None:
        raise DataError(f"unknown breakdown {by!r}", "use --by pos, --by word or --by frequency")
    groups = un.get(key)
    if not groups:
        raise DataError(
            f"{result} has no {by} breakdown", "re-run `pseval eval` (frequency needs --interpret-tokens > 0)"
        )
    table = Table(title=f"{res.sae_name}: by {by}", title_justify="left")
    for column in (by, "pairs", "specificity", "recall", "accuracy", "F1"):
        table.add_column(column, justify="left" if column == by else "right")
    for group, m in groups.items():
        table.add_row(
            group,
            str(m["n_pairs"]),
            format_number(m.get("specificity")),
            format_number(m.get("recall")),
            format_number(m.get("accuracy")),
            format_number(m.get("f1")),
        )
    console.print(table)


@app.command()
@handle_errors
def metrics(
    sae: Annotated[list[str], typer.Option("--sae", "-s", help="SAE folder/file; repeatable.")],
    model: ModelOpt = "smollm2-135m",
    hook: Annotated[
        str | None, typer.Option(help="Hook point; defaults to the one in each SAE's config.")
    ] = None,
    corpus: Annotated[str, typer.Option(help="Held-out text: 'bundled' or a .txt/.jsonl file.")] = "bundled",
    tokens: Annotated[int, typer.Option(help="Held-out tokens for MSE/FVU/L0.")] = 16384,
    ce_tokens: Annotated[
        int | None, typer.Option(help="Tokens for CE loss recovered and KL (default min(tokens, 4096)).")
    ] = None,
    output: Annotated[Path | None, typer.Option(help="Also write the metrics as JSON to this file.")] = None,
) -> None:
    """Standard SAE metrics on held-out corpus text: MSE, FVU, L0, dead/dense latents, CE loss recovered, KL."""
    from pseval._io import write_json_atomic
    from pseval.evals.runner import check_sae_fits, hook_for, resolve_saes
    from pseval.metrics.standard import standard_metrics
    from pseval.models.hooks import parse_hook_name
    from pseval.models.loading import load_model

    if tokens < 1:
        from pseval.errors import ConfigError

        raise ConfigError(f"--tokens must be positive (got {tokens})", "pass e.g. --tokens 16384")
    named = resolve_saes(sae)
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
    table = Table(
        title=f"Standard metrics on held-out {corpus} text ({tokens:,} tokens)", title_justify="left"
    )
    columns = [
        "mse",
        "fvu",
        "explained_variance",
        "l0",
        "l0_normalised",
        "dead_fraction",
        "dense_fraction",
        "cosine",
        "ce_loss_recovered",
        "kl_div_with_sae",
    ]
    table.add_column("SAE")
    for column in columns:
        table.add_column(column, justify="right")
    for name, row in rows.items():
        table.add_row(name, *[format_number(row.get(c), 4) for c in columns])
    console.print(table)
    if output is not None:
        write_json_atomic(output, rows)
        console.print(f"wrote {output}")


@app.command()
@handle_errors
def sweep(
    config_file: Annotated[
        Path | None, typer.Argument(help="A sweep YAML file (see docs/sweeps.md).")
    ] = None,
    preset: Annotated[
        str | None, typer.Option(help="paper-layers, paper-expansion, paper-activation or paper-all.")
    ] = None,
    budget: Annotated[str, typer.Option(help="Token budget of the presets: tiny, small or full.")] = "small",
    out: Annotated[Path | None, typer.Option(help="Output folder (default runs/<name>).")] = None,
    device: Annotated[str | None, typer.Option(help="auto (GPU when present), cpu or cuda.")] = None,
    force_rerun: Annotated[
        bool, typer.Option("--force-rerun", help="Retrain and re-evaluate everything.")
    ] = False,
    plots: Annotated[bool, typer.Option("--plots/--no-plots", help="Draw the figures at the end.")] = True,
) -> None:
    """Train what is missing of a grid of SAEs, evaluate everything, draw the figures (resumable)."""
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
    if updates:
        config = config.model_copy(update=updates)
    summary = run_sweep(
        config, force_rerun=force_rerun, plots=plots, status=lambda m: err_console.print(f"[dim]{m}[/]")
    )
    from pseval.report.load import load_results

    results = load_results(summary["results_dir"])
    console.print(results_table(results, title=f"Sweep {config.name}"))
    console.print(
        f"trained {summary['trained']}, reused {summary['reused']}, evaluated {summary['evaluated']}, "
        f"skipped {summary['skipped']} · {summary['timings']['total_s']:.0f} s on {summary['device']}"
    )
    console.print(f"results: {summary['results_dir']}")


def _train(**params: Any) -> None:
    from pseval.cli_options import passed_values
    from pseval.training.config import TrainConfig
    from pseval.training.trainer import train_sae

    config_path = params.pop("config", None)
    values = passed_values(params)
    if config_path is not None:
        base = TrainConfig.from_file(config_path).model_dump(exclude_none=True)
        config = TrainConfig(**{**base, **values})
    else:
        config = TrainConfig(**values)
    result = train_sae(config, progress=True)
    verb = "reused" if result.reused else "trained"
    console.print(f"{verb} {config.architecture} SAE at {config.hook_name} → {result.out}")
    if result.eval is not None:
        console.print(result.eval.model_dump_json(indent=2))


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
        help_text="Train an SAE (standard, topk, batchtopk, jumprelu, gated) on a model's activations; "
        "writes an SAELens-format folder that pseval and sae_lens both load.",
        aliases={
            "hook_name": ["--hook"],
            "expansion_factor": ["--expansion"],
            "training_tokens": ["--tokens"],
            "architecture": ["--arch"],
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
    try:
        app(prog_name="pseval")
    except SystemExit:
        raise
    except BrokenPipeError:  # e.g. `pseval ... | head`
        sys.exit(0)


if __name__ == "__main__":
    main()
