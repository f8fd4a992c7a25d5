"""Figures of a results folder (matplotlib, Agg; PNG and SVG of each), drawn only where the data exists.

- ``expansion_ratio``: specificity, recall and F1 against the expansion ratio (log2 axis), one line per
  (architecture, hook), 95 % bootstrap intervals as error bars, dense and random-SAE reference lines.
- ``architectures``: the four metrics per activation function at one matched setting (same hook and
  width), with intervals and the baselines as hatched bars; a Markdown and a CSV table are written beside.
- ``layer_hook_heatmap``: specificity per layer × hook kind (one panel per architecture).
- ``mse_l0_frontier``: the reconstruction–sparsity trade-off with each SAE coloured by specificity, the
  paper's central point in one picture (a better frontier does not mean better meaning separation).
- ``recall_specificity``: where each SAE lies against the chance line ``specificity = 1 − recall``.
- ``wordform_2x2``: the word form × meaning cells and effects (:mod:`pseval.report.wordform_plot`), for
  results of ``--dataset wordnet-2x2``.

Figures are built on :class:`matplotlib.figure.Figure` with an Agg canvas (no pyplot state) inside a fixed
``rc_context``; SVG ids are salted with a constant and dates are left out, so regenerating from the same
folder gives byte-identical files.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from pseval._io import atomic_path, write_text_atomic
from pseval.evals.schema import PSEvalResult
from pseval.report.architecture_plot import architecture_figure, matched_setting
from pseval.report.expansion_plot import expansion_figure
from pseval.report.figure_style import FigureSpec, Row, style
from pseval.report.frontier_plot import frontier_figure, recall_specificity_figure
from pseval.report.heatmap_plot import heatmap_figure
from pseval.report.load import group_results, load_results, summary_table, table_columns
from pseval.report.wordform_plot import wordform_figure

FIGURE_NAMES: tuple[str, ...] = (
    "expansion_ratio",
    "architectures",
    "layer_hook_heatmap",
    "mse_l0_frontier",
    "recall_specificity",
    "wordform_2x2",
)
"""Stems of the figures this module can write (files of these names that a rerun does not produce are removed)."""

TABLE_FILES: tuple[str, ...] = ("architectures.md", "architectures.csv", "summary.csv")


BUILDERS = (expansion_figure, architecture_figure, heatmap_figure, frontier_figure, recall_specificity_figure)


def build_figures(results: Sequence[PSEvalResult], rows: Sequence[Row] | None = None) -> list[FigureSpec]:
    """Every figure the results have data for (call inside :func:`style` to save them as built)."""
    rows = summary_table(results) if rows is None else rows
    with style():
        specs = [builder(results, rows) for builder in (*BUILDERS, wordform_figure)]
    return [spec for spec in specs if spec is not None]


def figure_bytes(figure: Figure, fmt: str) -> bytes:
    """The figure encoded as ``png`` or ``svg``, reproducibly (no date, fixed SVG ids)."""
    buffer = io.BytesIO()
    metadata: dict[str, Any] = {"Date": None} if fmt == "svg" else {"Software": None}
    with style():
        figure.savefig(buffer, format=fmt, metadata=metadata, facecolor="white")
    return buffer.getvalue()


def summary_csv(rows: Sequence[Row]) -> str:
    """All SAEs' key numbers (:func:`pseval.report.load.summary_table`) as CSV."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=table_columns(rows), lineterminator="\n", restval="")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return buffer.getvalue()


def make_figures(results_folder: str | Path, out_folder: str | Path | None = None) -> list[Path]:
    """Write every figure the results have data for as PNG and SVG, plus the tables, and return the paths.

    ``out_folder`` defaults to ``<results_folder>/figures``. Results scored on different pairs (dataset, split
    or pair count, :func:`pseval.report.load.group_results`) never share a figure: with several groups each
    gets its own subfolder (``figures/wic-test-1144pairs/``), titled with its group, and ``summary.csv`` of
    the top folder lists every SAE. Each file is written atomically; figure and table files of this
    module's names that this run does not produce (their data is gone) are removed.
    """
    results = load_results(results_folder)
    root = Path(results_folder)
    out = (
        Path(out_folder) if out_folder is not None else (root.parent if root.is_file() else root) / "figures"
    )
    groups = group_results(results)
    if len(groups) == 1:
        return _write_figure_set(results, summary_table(results), out)
    written = _write_figure_set([], [], out)  # clears a previous single-group run's figures
    for group in groups:
        # Each figure's subtitle names its group's dataset, split and pair count.
        written += _write_figure_set(group.results, summary_table(group.results), out / group.slug)
    written.append(write_text_atomic(out / "summary.csv", summary_csv(summary_table(results))))
    return written


def _write_figure_set(results: Sequence[PSEvalResult], rows: Sequence[Row], out: Path) -> list[Path]:
    """The figures, tables and ``summary.csv`` of comparable results in ``out``; stale ones removed."""
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for spec in build_figures(results, rows) if results else []:
        for fmt in ("png", "svg"):
            path = out / f"{spec.name}.{fmt}"
            data = figure_bytes(spec.figure, fmt)
            with atomic_path(path) as tmp:
                tmp.write_bytes(data)
            written.append(path)
        for filename, text in spec.tables.items():
            written.append(write_text_atomic(out / filename, text))
    if rows:
        written.append(write_text_atomic(out / "summary.csv", summary_csv(rows)))
    produced = {p.name for p in written}
    for stale in [f"{n}.{ext}" for n in FIGURE_NAMES for ext in ("png", "svg")] + list(TABLE_FILES):
        if stale not in produced and (out / stale).exists():
            (out / stale).unlink()
    return written


__all__ = [
    "FIGURE_NAMES",
    "FigureSpec",
    "build_figures",
    "figure_bytes",
    "make_figures",
    "matched_setting",
    "summary_csv",
]
