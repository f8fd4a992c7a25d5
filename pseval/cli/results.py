"""Commands that read finished results: ``compare``, ``plot``, ``reliability``, ``report``, ``inspect``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Literal

import typer

from pseval.cli.app import console, err_console, handle_errors


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
