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
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import matplotlib
from matplotlib import colors as mcolors
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

from pseval._format import format_number
from pseval._io import atomic_path, write_text_atomic
from pseval.evals.schema import PSEvalResult
from pseval.report.figure_style import FigureSpec, Row, figure_subtitle, new_figure, set_title, style
from pseval.report.load import (
    architecture_label,
    architecture_rank,
    group_results,
    hook_kind_rank,
    load_results,
    summary_table,
    table_columns,
)
from pseval.report.wordform_plot import wordform_figure

ARCH_COLOURS: dict[str, str] = {
    "standard": "#4C72B0",
    "topk": "#DD8452",
    "batchtopk": "#8172B3",
    "jumprelu": "#55A868",
    "gated": "#C44E52",
}
ARCH_MARKERS: dict[str, str] = {"standard": "o", "topk": "s", "batchtopk": "D", "jumprelu": "^", "gated": "v"}
HOOK_COLOURS: tuple[str, ...] = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
)  # fmt: skip
BASELINE_GREY = "#6b6b6b"
MAX_LINES = 12
"""At most this many (architecture, hook) lines in the expansion-ratio figure (the best-covered ones)."""

METRIC_LABELS: dict[str, str] = {
    "specificity": "Specificity",
    "recall": "Recall",
    "accuracy": "Accuracy",
    "f1": "F1",
    "precision": "Precision",
}

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


def arch_colour(architecture: str | None) -> str:
    """Colour of an architecture (unknown ones are brown)."""
    return ARCH_COLOURS.get(architecture or "", "#937860")


def arch_marker(architecture: str | None) -> str:
    """Marker of an architecture (unknown ones are a plus)."""
    return ARCH_MARKERS.get(architecture or "", "P")


def architecture_handles(archs: Iterable[str]) -> list[Line2D]:
    """Legend entries: one hollow marker per architecture, in its shape."""
    return [
        Line2D(
            [],
            [],
            color="#222222",
            marker=arch_marker(a),
            linestyle="none",
            markerfacecolor="white",
            label=architecture_label(a),
        )
        for a in archs
    ]


def _hook_key(row: Row) -> tuple[Any, ...]:
    layer = row.get("layer")
    return (row["model"], -1 if layer is None else layer, hook_kind_rank(row.get("hook_kind")), row["hook"])


def _err(row: Row, metric: str) -> tuple[float, float]:
    """Distances from the value to its interval bounds (0 where the interval is unknown)."""
    value, low, high = row.get(metric), row.get(f"{metric}_low"), row.get(f"{metric}_high")
    if value is None or low is None or high is None:
        return 0.0, 0.0
    return max(value - low, 0.0), max(high - value, 0.0)


def _ratio_text(value: float | None) -> str:
    return "–" if value is None else f"×{value:g}"


def _first(rows: Sequence[Row], key: str) -> float | None:
    for row in rows:
        if row.get(key) is not None:
            return float(row[key])
    return None


# ---------------------------------------------------------------------------------------------------------
# Specificity, recall and F1 against the expansion ratio
# ---------------------------------------------------------------------------------------------------------


def expansion_figure(results: Sequence[PSEvalResult], rows: Sequence[Row]) -> FigureSpec | None:
    """Metrics against the expansion ratio; ``None`` unless some (architecture, hook) has two or more widths."""
    groups: dict[tuple[Any, ...], list[Row]] = defaultdict(list)
    for row in rows:
        if row.get("expansion_ratio"):
            arch = row.get("architecture") or ""
            groups[(_hook_key(row), architecture_rank(arch), arch, row["hook"])].append(row)
    lines = {
        key: sorted(group, key=lambda r: r["expansion_ratio"])
        for key, group in groups.items()
        if len({r["expansion_ratio"] for r in group}) >= 2
    }
    if not lines:
        return None
    dropped = 0
    if len(lines) > MAX_LINES:
        keep = sorted(lines, key=lambda k: (-len(lines[k]), k))[:MAX_LINES]
        dropped = len(lines) - MAX_LINES
        lines = {k: lines[k] for k in keep}
    keys = sorted(lines)
    hooks = sorted({(k[0], k[3]) for k in keys})
    archs = sorted({k[2] for k in keys}, key=architecture_rank)
    by_hook = len(hooks) > 1
    hook_colour = {hook: HOOK_COLOURS[i % len(HOOK_COLOURS)] for i, (_, hook) in enumerate(hooks)}

    def colour(key: tuple[Any, ...]) -> str:
        return hook_colour[key[3]] if by_hook else arch_colour(key[2])

    metrics = ("specificity", "recall", "f1")
    ratios = sorted({r["expansion_ratio"] for k in keys for r in lines[k]})
    fig = new_figure((11, 4.4))
    axes = fig.subplots(1, len(metrics), sharey=True)
    n = len(keys)
    has_dense = has_random = False
    for ax, metric in zip(axes, metrics, strict=True):
        for i, key in enumerate(keys):
            group = lines[key]
            shift = 2 ** (0.06 * (i - (n - 1) / 2)) if n > 1 else 1.0
            pts = [r for r in group if r.get(metric) is not None]
            if pts:
                errs = [_err(r, metric) for r in pts]
                ax.errorbar(
                    [r["expansion_ratio"] * shift for r in pts],
                    [r[metric] for r in pts],
                    yerr=[[e[0] for e in errs], [e[1] for e in errs]],
                    color=colour(key),
                    marker=arch_marker(key[2]),
                    markersize=5,
                    linewidth=1.4,
                    capsize=2.5,
                    elinewidth=0.9,
                )
            rnd = [r for r in group if r.get(f"random_{metric}") is not None]
            if rnd:
                has_random = True
                ax.plot(
                    [r["expansion_ratio"] * shift for r in rnd],
                    [r[f"random_{metric}"] for r in rnd],
                    color=colour(key),
                    marker=arch_marker(key[2]),
                    markerfacecolor="white",
                    markersize=4,
                    linestyle=":",
                    linewidth=1.0,
                    alpha=0.65,
                )
        for model_hook in hooks:
            hook_rows = [r for k in keys if (k[0], k[3]) == model_hook for r in lines[k]]
            dense = _first(hook_rows, f"dense_{metric}")
            if dense is not None:
                has_dense = True
                ax.axhline(
                    dense,
                    color=hook_colour[model_hook[1]] if by_hook else BASELINE_GREY,
                    linestyle="--",
                    linewidth=1.0,
                    alpha=0.8,
                )
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_locator(FixedLocator(ratios))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xlim(min(ratios) / 1.35, max(ratios) * 1.35)
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(METRIC_LABELS[metric])
        ax.set_xlabel("expansion ratio (d_sae / d_in)")
    axes[0].set_ylabel("score (95 % bootstrap interval)")

    handles: list[Any] = []
    if by_hook:
        handles += [Line2D([], [], color=hook_colour[h], linewidth=2, label=h) for _, h in hooks]
        handles += [
            Line2D(
                [], [], color="#333333", marker=arch_marker(a), linestyle="none", label=architecture_label(a)
            )
            for a in archs
        ]
    else:
        handles += [
            Line2D(
                [],
                [],
                color=arch_colour(a),
                marker=arch_marker(a),
                linewidth=1.4,
                label=architecture_label(a),
            )
            for a in archs
        ]
    if has_dense:
        handles.append(
            Line2D([], [], color=BASELINE_GREY, linestyle="--", label="dense activations (cosine)")
        )
    if has_random:
        handles.append(
            Line2D(
                [],
                [],
                color=BASELINE_GREY,
                linestyle=":",
                marker="o",
                markerfacecolor="white",
                label="random SAE",
            )
        )
    fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 6))
    extra = f"{dropped} more lines not shown" if dropped else ""
    hook_text = "" if by_hook else f" at {hooks[0][1]}"
    set_title(
        fig,
        f"Specificity, recall and F1 against the expansion ratio{hook_text}",
        figure_subtitle(results, extra),
    )
    return FigureSpec(
        name="expansion_ratio",
        title="Metrics against the expansion ratio",
        caption=(
            "One line per architecture and hook point; error bars are 95 % bootstrap intervals over pairs. "
            "Dashed: the model's dense activations (cosine similarity, threshold chosen on held-out pairs); "
            "dotted, hollow markers: a random SAE of the same shape."
        ),
        figure=fig,
    )


# ---------------------------------------------------------------------------------------------------------
# Metrics per activation function at a matched setting
# ---------------------------------------------------------------------------------------------------------


def matched_setting(rows: Sequence[Row]) -> list[Row]:
    """The SAEs of the (model, dataset, split, hook, width) setting that covers the most architectures.

    Ties go to the widest SAEs, then the deepest hook, so the comparison is between SAEs that differ only
    in their activation function.
    """
    groups: dict[tuple[Any, ...], list[Row]] = defaultdict(list)
    for row in rows:
        groups[(row["model"], row["dataset"], row["split"], row["hook"], row.get("expansion_ratio"))].append(
            row
        )

    def score(key: tuple[Any, ...]) -> tuple[Any, ...]:
        group = groups[key]
        return (
            len({r.get("architecture") for r in group}),
            key[4] or 0.0,
            _hook_key(group[0]),
            len(group),
        )

    if not groups:
        return []
    best = max(sorted(groups, key=str), key=score)
    return sorted(
        groups[best], key=lambda r: (architecture_rank(r.get("architecture")), r.get("k") or 0, r["name"])
    )


def _bar_label(row: Row, rows: Sequence[Row]) -> str:
    label = architecture_label(row.get("architecture"))
    twins = [r for r in rows if r.get("architecture") == row.get("architecture")]
    if len(twins) > 1:
        label += f" (k={row['k']:g})" if row.get("k") is not None else f" ({row['name']})"
    return label


ARCH_METRICS: tuple[str, ...] = ("specificity", "recall", "accuracy", "f1")


def architecture_tables(chosen: Sequence[Row]) -> dict[str, str]:
    """The bars of :func:`architecture_figure` as a Markdown and a CSV table."""
    header = [
        "SAE",
        "architecture",
        "hook",
        "expansion_ratio",
        "k",
        *[f"{m}{suffix}" for m in ARCH_METRICS for suffix in ("", "_low", "_high")],
        "n_pairs",
        "n_pairs_no_active",
    ]
    records: list[list[Any]] = []
    for row in chosen:
        records.append(
            [
                row["name"],
                architecture_label(row.get("architecture")),
                row["hook"],
                row.get("expansion_ratio"),
                row.get("k"),
                *[row.get(f"{m}{suffix}") for m in ARCH_METRICS for suffix in ("", "_low", "_high")],
                row.get("n_pairs"),
                row.get("n_pairs_no_active"),
            ]
        )
    for prefix, label in (("random", "baseline: random SAE"), ("dense", "baseline: dense activations")):
        values = [_mean([r.get(f"{prefix}_{m}") for r in chosen]) for m in ARCH_METRICS]
        if any(v is not None for v in values):
            records.append(
                [
                    label,
                    "",
                    chosen[0]["hook"],
                    chosen[0].get("expansion_ratio") if prefix == "random" else None,
                    None,
                ]
                + [x for v in values for x in (v, None, None)]
                + [chosen[0].get("n_pairs"), None]
            )
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([["" if v is None else v for v in record] for record in records])

    md_header = [
        "SAE",
        "architecture",
        "hook",
        "expansion",
        *[METRIC_LABELS[m] for m in ARCH_METRICS],
        "no-active pairs",
    ]
    lines = [
        "| " + " | ".join(md_header) + " |",
        "|" + "|".join(["---"] * 4 + ["---:"] * (len(md_header) - 4)) + "|",
    ]
    for record in records:
        cells = [str(record[0]).replace("|", "\\|"), str(record[1]), str(record[2]), _ratio_text(record[3])]
        for j in range(len(ARCH_METRICS)):
            value, low, high = record[5 + 3 * j : 8 + 3 * j]
            cells.append(
                "–"
                if value is None
                else f"{value:.3f}"
                + (f" [{low:.3f}, {high:.3f}]" if low is not None and high is not None else "")
            )
        cells.append(format_number(record[-1]))
        lines.append("| " + " | ".join(cells) + " |")
    return {"architectures.csv": buffer.getvalue(), "architectures.md": "\n".join(lines) + "\n"}


def _mean(values: Sequence[Any]) -> float | None:
    numbers = [float(v) for v in values if v is not None]
    return sum(numbers) / len(numbers) if numbers else None


def architecture_figure(results: Sequence[PSEvalResult], rows: Sequence[Row]) -> FigureSpec | None:
    """Grouped bars of the four metrics per activation function (and baselines) at a matched setting."""
    chosen = [r for r in matched_setting(rows) if any(r.get(m) is not None for m in ARCH_METRICS)]
    if not chosen:
        return None
    series: list[tuple[str, list[float | None], list[tuple[float, float]], str, str | None]] = []
    arch_counts: dict[str | None, int] = defaultdict(int)
    for row in chosen:
        arch_counts[row.get("architecture")] += 1
    for i, row in enumerate(chosen):
        colour = (
            arch_colour(row.get("architecture"))
            if all(c == 1 for c in arch_counts.values())
            else HOOK_COLOURS[i % len(HOOK_COLOURS)]
        )
        series.append(
            (
                _bar_label(row, chosen),
                [row.get(m) for m in ARCH_METRICS],
                [_err(row, m) for m in ARCH_METRICS],
                colour,
                None,
            )
        )
    random_values = [_mean([r.get(f"random_{m}") for r in chosen]) for m in ARCH_METRICS]
    if any(v is not None for v in random_values):
        series.append(("random SAE", random_values, [(0.0, 0.0)] * len(ARCH_METRICS), "#d9d9d9", "///"))
    dense_values = [_mean([r.get(f"dense_{m}") for r in chosen]) for m in ARCH_METRICS]
    if any(v is not None for v in dense_values):
        series.append(("dense activations", dense_values, [(0.0, 0.0)] * len(ARCH_METRICS), "#a6a6a6", "xx"))

    fig = new_figure((max(6.5, 1.1 + 0.55 * len(series) * len(ARCH_METRICS)), 4.4))
    ax = fig.subplots()
    width = 0.8 / len(series)
    for j, (label, values, errs, colour, hatch) in enumerate(series):
        xs = [i - 0.4 + width * (j + 0.5) for i in range(len(ARCH_METRICS))]
        present = [(x, v, e) for x, v, e in zip(xs, values, errs, strict=True) if v is not None]
        if not present:
            continue
        bars = ax.bar(
            [p[0] for p in present],
            [p[1] for p in present],
            width=width * 0.92,
            color=colour,
            edgecolor="#555555" if hatch else "none",
            hatch=hatch,
            linewidth=0.6,
            label=label,
            yerr=None if hatch else [[p[2][0] for p in present], [p[2][1] for p in present]],
            capsize=2.5,
            error_kw={"elinewidth": 0.9, "ecolor": "#222222"},
        )
        if len(series) * len(ARCH_METRICS) <= 24:
            ax.bar_label(bars, labels=[f"{p[1]:.2f}" for p in present], fontsize=6.5, padding=2)
    ax.set_xticks(range(len(ARCH_METRICS)), [METRIC_LABELS[m] for m in ARCH_METRICS])
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("score (95 % bootstrap interval)")
    ax.grid(axis="x", visible=False)
    fig.legend(loc="outside lower center", ncol=min(len(series), 6))
    setting = f"{chosen[0]['hook']}, expansion {_ratio_text(chosen[0].get('expansion_ratio'))}"
    several = len({r.get("architecture") for r in chosen}) > 1
    references = [label for label, *_rest in series if label in ("random SAE", "dense activations")]
    if several:
        title = "Metrics per activation function"
        caption = f"SAEs that differ only in their activation function ({setting})"
    else:
        title = "PS-Eval metrics" if len(chosen) == 1 else "PS-Eval metrics of SAEs at one setting"
        caption = f"{title} at {setting}"
    caption += "; error bars are 95 % bootstrap intervals."
    if references:
        caption += (
            " Hatched bars are references: "
            + " and ".join(
                "a random SAE of the same shape" if r == "random SAE" else "the model's dense activations"
                for r in references
            )
            + "."
        )
    caption += " The same numbers are in architectures.md and architectures.csv."
    set_title(fig, f"{title} at {setting}", figure_subtitle(results))
    return FigureSpec(
        name="architectures",
        title=title,
        caption=caption,
        figure=fig,
        tables=architecture_tables(chosen),
    )


# ---------------------------------------------------------------------------------------------------------
# Layer × hook-kind heatmap
# ---------------------------------------------------------------------------------------------------------


def heatmap_panels(rows: Sequence[Row]) -> list[tuple[str, dict[tuple[int, str], Row]]]:
    """Per (model, dataset, split, architecture): the width covering most (layer, hook kind) cells, if ≥ 2."""
    grouped: dict[tuple[Any, ...], dict[Any, dict[tuple[int, str], Row]]] = defaultdict(
        lambda: defaultdict(dict)
    )
    for row in rows:
        if row.get("layer") is None or row.get("hook_kind") is None or row.get("specificity") is None:
            continue
        key = (row["model"], row["dataset"], row["split"], row.get("architecture") or "")
        cells = grouped[key][row.get("expansion_ratio")]
        cell = (row["layer"], row["hook_kind"])
        if cell in cells:
            # Several SAEs share the cell (other seeds, k, ...): show the first by name and say so.
            names = sorted([*cells[cell]["cell_names"], row["name"]])
            shown = min((cells[cell], row), key=lambda r: r["name"])
            cells[cell] = {**shown, "cell_names": names}
        else:
            cells[cell] = {**row, "cell_names": [row["name"]]}
    panels: list[tuple[str, dict[tuple[int, str], Row]]] = []
    multi_model = len({k[0] for k in grouped}) > 1
    for key in sorted(grouped, key=lambda k: (k[:3], architecture_rank(k[3]))):
        by_ratio = grouped[key]
        ratio = max(by_ratio, key=lambda r: (len(by_ratio[r]), r or 0.0))
        cells = by_ratio[ratio]
        if len(cells) >= 2:
            label = f"{architecture_label(key[3])}, expansion {_ratio_text(ratio)}"
            panels.append((f"{key[0]}: {label}" if multi_model else label, cells))
    return panels[:4]


def heatmap_figure(results: Sequence[PSEvalResult], rows: Sequence[Row]) -> FigureSpec | None:
    """Specificity per layer × hook kind; ``None`` unless some architecture covers two or more cells."""
    panels = heatmap_panels(rows)
    if not panels:
        return None
    layers_all = [sorted({c[0] for c in cells}) for _, cells in panels]
    kinds_all = [sorted({c[1] for c in cells}, key=hook_kind_rank) for _, cells in panels]
    height = 1.8 + 0.55 * max(len(layers) for layers in layers_all)
    widths = [1.0 + 1.45 * len(kinds) for kinds in kinds_all]
    fig = new_figure((min(max(sum(widths) + 1.4, 6.5), 16), max(height, 3.6)))
    axes = fig.subplots(1, len(panels), squeeze=False, width_ratios=widths)[0]
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="#eeeeee")
    image = None
    for ax, (label, cells), layers, kinds in zip(axes, panels, layers_all, kinds_all, strict=True):
        grid = [
            [cells[(layer, kind)]["specificity"] if (layer, kind) in cells else math.nan for kind in kinds]
            for layer in layers
        ]
        image = ax.imshow(grid, cmap=cmap, vmin=0.0, vmax=1.0, aspect="auto")
        for yi, layer in enumerate(layers):
            for xi, kind in enumerate(kinds):
                row = cells.get((layer, kind))
                value = None if row is None else row["specificity"]
                text = "–" if value is None else f"{value:.2f}"
                if (
                    row is not None
                    and row.get("specificity_low") is not None
                    and row.get("specificity_high") is not None
                ):
                    text += f"\n[{row['specificity_low']:.2f}, {row['specificity_high']:.2f}]"
                if row is not None and len(row["cell_names"]) > 1:
                    text += f"\n1 of {len(row['cell_names'])} SAEs"
                colour = "#444444" if value is None else ("black" if value > 0.6 else "white")
                ax.text(xi, yi, text, ha="center", va="center", fontsize=8, color=colour, linespacing=1.25)
        ax.set_xticks(range(len(kinds)), kinds)
        ax.set_yticks(range(len(layers)), [str(layer) for layer in layers])
        ax.set_xlabel("hook kind")
        ax.set_ylabel("layer")
        ax.set_title(label)
        ax.grid(False)
        for spine in ax.spines.values():
            spine.set_visible(False)
    if image is not None:
        fig.colorbar(image, ax=list(axes), label="specificity", shrink=0.9)
    set_title(fig, "Specificity per layer and hook kind", figure_subtitle(results))
    shared = [
        f"{label}, layer {layer} {kind}: {row['name']} (of {', '.join(row['cell_names'])})"
        for label, cells in panels
        for (layer, kind), row in sorted(cells.items())
        if len(row["cell_names"]) > 1
    ]
    return FigureSpec(
        name="layer_hook_heatmap",
        title="Specificity per layer and hook kind",
        caption=(
            "Specificity (different meanings given different top latents) of SAEs of one architecture and width "
            "across hook points, with its 95 % bootstrap interval; grey cells were not evaluated."
            + (
                " Cells marked “1 of n SAEs” hold several SAEs; the one shown is the first by name: "
                + "; ".join(shared[:8])
                + (f"; and {len(shared) - 8} more" if len(shared) > 8 else "")
                + "."
                if shared
                else ""
            )
        ),
        figure=fig,
    )


# ---------------------------------------------------------------------------------------------------------
# MSE–L0 frontier coloured by specificity
# ---------------------------------------------------------------------------------------------------------


def frontier_axes(rows: Sequence[Row]) -> tuple[str, str] | None:
    """The (x, y) keys of the frontier: L0 (else normalised L0) and FVU (else MSE), if two SAEs have both."""
    for x_key in ("l0", "l0_normalised"):
        for y_key in ("fvu", "mse"):
            if sum(1 for r in rows if r.get(x_key) is not None and r.get(y_key) is not None) >= 2:
                return x_key, y_key
    return None


AXIS_LABELS = {
    "l0": "L0 (active latents per token)",
    "l0_normalised": "normalised L0 (L0 / d_sae)",
    "fvu": "fraction of variance unexplained (FVU)",
    "mse": "MSE",
}


MAX_FRONTIER_PANELS = 9
"""Hook panels of the frontier figure at most (hooks with the most SAEs first)."""


def frontier_panels(rows: Sequence[Row], x_key: str, y_key: str) -> list[tuple[str, list[Row]]]:
    """SAEs with both axes, one group per hook (an MSE–L0 trade-off only compares SAEs at one hook).

    Hooks with the most SAEs come first (then in block order), at most :data:`MAX_FRONTIER_PANELS`.
    """
    by_hook: dict[tuple[Any, ...], list[Row]] = defaultdict(list)
    for row in rows:
        if row.get(x_key) is not None and row.get(y_key) is not None:
            by_hook[_hook_key(row)].append(row)
    multi_model = len({key[0] for key in by_hook}) > 1
    ranked = sorted(by_hook, key=lambda key: (-len(by_hook[key]), key))[:MAX_FRONTIER_PANELS]
    return [
        (f"{key[0]}: {key[3]}" if multi_model else key[3], by_hook[key])
        for key in sorted(ranked)  # block order on the page
    ]


def _frontier_panel(ax: Any, pts: Sequence[Row], x_key: str, y_key: str, norm: Any, cmap: Any) -> Any:
    """One hook's SAEs: grey lines join one architecture's widths; returns a colour-mapped scatter."""
    scatter = None
    archs = sorted({r.get("architecture") or "" for r in pts}, key=architecture_rank)
    for arch in archs:
        group = sorted((r for r in pts if (r.get("architecture") or "") == arch), key=lambda r: r[x_key])
        if len(group) > 1:
            ax.plot(
                [r[x_key] for r in group], [r[y_key] for r in group], color="#bbbbbb", linewidth=0.9, zorder=1
            )
        scored = [r for r in group if r.get("specificity") is not None]
        unscored = [r for r in group if r.get("specificity") is None]
        style = {
            "marker": arch_marker(arch),
            "s": 70,
            "edgecolors": "#222222",
            "linewidths": 0.6,
            "zorder": 3,
        }
        if scored:
            scatter = ax.scatter(
                [r[x_key] for r in scored],
                [r[y_key] for r in scored],
                c=[r["specificity"] for r in scored],
                cmap=cmap,
                norm=norm,
                **style,
            )
        if unscored:
            ax.scatter(
                [r[x_key] for r in unscored], [r[y_key] for r in unscored], facecolors="white", **style
            )
    for row in pts:
        if row.get("expansion_ratio"):
            ax.annotate(
                _ratio_text(row["expansion_ratio"]),
                (row[x_key], row[y_key]),
                xytext=(6, 4),
                textcoords="offset points",
                fontsize=7,
                color="#444444",
            )
    xs = [r[x_key] for r in pts]
    if min(xs) > 0 and max(xs) / min(xs) > 8:
        ax.set_xscale("log")
    ys = [r[y_key] for r in pts]
    if min(ys) > 0 and max(ys) / min(ys) > 8:
        ax.set_yscale("log")
    return scatter


def frontier_figure(results: Sequence[PSEvalResult], rows: Sequence[Row]) -> FigureSpec | None:
    """Reconstruction error against L0 at each hook, SAEs coloured by specificity and shaped by architecture."""
    keys = frontier_axes(rows)
    if keys is None:
        return None
    x_key, y_key = keys
    panels = frontier_panels(rows, x_key, y_key)
    pts = [r for _, group in panels for r in group]
    specs = [r["specificity"] for r in pts if r.get("specificity") is not None]
    low, high = (min(specs), max(specs)) if specs else (0.0, 1.0)
    if high - low < 0.05:
        low, high = max(0.0, low - 0.05), min(1.0, high + 0.05)
    norm = mcolors.Normalize(vmin=low, vmax=high)
    cmap = matplotlib.colormaps["viridis"]
    n_cols = {1: 1, 2: 2, 4: 2}.get(len(panels), 3)
    n_rows = math.ceil(len(panels) / n_cols)
    fig = new_figure((7.8 if n_cols == 1 else 4.4 * n_cols + 1.2, 5.0 if n_rows == 1 else 3.9 * n_rows + 1.0))
    axes = fig.subplots(n_rows, n_cols, squeeze=False).ravel()
    scatter = None
    for ax, (label, group) in zip(axes, panels, strict=False):
        scatter = _frontier_panel(ax, group, x_key, y_key, norm, cmap) or scatter
        ax.set_title(label, fontsize=9.5)
        ax.set_xlabel(AXIS_LABELS[x_key])
        ax.set_ylabel(AXIS_LABELS[y_key])
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    if scatter is not None:
        fig.colorbar(scatter, ax=list(axes[: len(panels)]), label="PS-Eval specificity", shrink=0.9)
    archs = sorted({r.get("architecture") or "" for r in pts}, key=architecture_rank)
    axes[0].legend(handles=architecture_handles(archs), title="architecture", loc="best", fontsize=7.5)
    n_hooks = len({r["hook"] for r in rows if r.get(x_key) is not None and r.get(y_key) is not None})
    where = panels[0][0] if len(panels) == 1 else "one panel per hook point"
    if len(panels) < n_hooks:
        where += f", {len(panels)} of {n_hooks}"
    set_title(
        fig, f"Reconstruction against sparsity, coloured by specificity ({where})", figure_subtitle(results)
    )
    left_out = n_hooks - len(panels)
    return FigureSpec(
        name="mse_l0_frontier",
        title="Reconstruction–sparsity frontier and specificity",
        caption=(
            "One panel per hook point, since reconstruction error is only comparable between SAEs reading the "
            "same activations. Each marker is an SAE (shape: architecture; label: expansion ratio; colour: "
            "PS-Eval specificity, one scale for all panels); grey lines join one architecture's widths. "
            "Lower-left is a better reconstruction at fewer active latents, which need not come with better "
            "separation of meanings."
            + (f" {left_out} hook point(s) with fewer SAEs are not shown." if left_out > 0 else "")
        ),
        figure=fig,
    )


# ---------------------------------------------------------------------------------------------------------
# Recall against specificity
# ---------------------------------------------------------------------------------------------------------


def _recall_panel(ax: Any, pts: Sequence[Row], norm: Any) -> tuple[Any, bool, bool]:
    """One hook's SAEs in the (recall, specificity) plane; returns (colour-mapped scatter, dense?, random?)."""
    ax.plot([0, 1], [1, 0], color="#999999", linestyle="--", linewidth=1.0, zorder=1)
    ax.text(
        0.06,
        0.975,
        "chance: specificity = 1 − recall",
        rotation=-45,
        transform_rotates_text=True,
        rotation_mode="anchor",
        fontsize=7,
        color="#777777",
    )
    scatter = None
    archs = sorted({r.get("architecture") or "" for r in pts}, key=architecture_rank)
    for arch in archs:
        group = [r for r in pts if (r.get("architecture") or "") == arch]
        kwargs: dict[str, Any] = {
            "marker": arch_marker(arch),
            "s": 55,
            "edgecolors": "#222222",
            "linewidths": 0.6,
            "zorder": 3,
        }
        if norm is not None and all(r.get("expansion_ratio") for r in group):
            scatter = ax.scatter(
                [r["recall"] for r in group],
                [r["specificity"] for r in group],
                c=[r["expansion_ratio"] for r in group],
                cmap="plasma",
                norm=norm,
                **kwargs,
            )
        else:
            ax.scatter(
                [r["recall"] for r in group],
                [r["specificity"] for r in group],
                color=arch_colour(arch),
                **kwargs,
            )
    dense = sorted(
        {
            (r["dense_recall"], r["dense_specificity"])
            for r in pts
            if r.get("dense_recall") is not None and r.get("dense_specificity") is not None
        }
    )
    if dense:
        ax.scatter([d[0] for d in dense], [d[1] for d in dense], marker="*", s=140, color="black", zorder=4)
    rnd = sorted(
        {
            (r["random_recall"], r["random_specificity"])
            for r in pts
            if r.get("random_recall") is not None and r.get("random_specificity") is not None
        }
    )
    if rnd:
        ax.scatter([d[0] for d in rnd], [d[1] for d in rnd], marker="x", s=50, color=BASELINE_GREY, zorder=4)
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.02)
    ax.set_aspect("equal")
    ax.set_xlabel("recall (same meaning → same top latent)")
    ax.set_ylabel("specificity (different meanings → different top latents)")
    return scatter, bool(dense), bool(rnd)


def recall_specificity_figure(results: Sequence[PSEvalResult], rows: Sequence[Row]) -> FigureSpec | None:
    """Each SAE's (recall, specificity) against the chance line, one panel per hook; baselines as references."""
    panels = frontier_panels(rows, "recall", "specificity")
    if not panels:
        return None
    pts = [r for _, group in panels for r in group]
    ratios = sorted({r["expansion_ratio"] for r in pts if r.get("expansion_ratio")})
    norm = mcolors.LogNorm(vmin=ratios[0], vmax=ratios[-1]) if len(ratios) > 1 else None
    n_cols = {1: 1, 2: 2, 4: 2}.get(len(panels), 3)
    n_rows = math.ceil(len(panels) / n_cols)
    fig = new_figure((6.8, 5.4) if len(panels) == 1 else (4.3 * n_cols + 1.2, 4.4 * n_rows + 0.9))
    axes = fig.subplots(n_rows, n_cols, squeeze=False).ravel()
    scatter, dense, rnd = None, False, False
    for ax, (label, group) in zip(axes, panels, strict=False):
        panel_scatter, panel_dense, panel_rnd = _recall_panel(ax, group, norm)
        scatter, dense, rnd = panel_scatter or scatter, dense or panel_dense, rnd or panel_rnd
        if len(panels) > 1:
            ax.set_title(label, fontsize=9.5)
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    archs = sorted({r.get("architecture") or "" for r in pts}, key=architecture_rank)
    handles = architecture_handles(archs)
    if dense:
        handles.append(
            Line2D(
                [], [], color="black", marker="*", markersize=10, linestyle="none", label="dense activations"
            )
        )
    if rnd:
        handles.append(Line2D([], [], color=BASELINE_GREY, marker="x", linestyle="none", label="random SAE"))
    axes[0].legend(handles=handles, loc="lower left", fontsize=7.5 if len(panels) > 1 else None)
    if scatter is not None:
        cbar = fig.colorbar(scatter, ax=list(axes[: len(panels)]), label="expansion ratio", shrink=0.9)
        cbar.set_ticks(ratios)
        cbar.set_ticklabels([f"{r:g}" for r in ratios])
        cbar.ax.minorticks_off()
    hook_text = panels[0][0] if len(panels) == 1 else "one panel per hook point"
    n_hooks = len(
        {r["hook"] for r in rows if r.get("recall") is not None and r.get("specificity") is not None}
    )
    set_title(fig, f"Recall against specificity ({hook_text})", figure_subtitle(results))
    return FigureSpec(
        name="recall_specificity",
        title="Recall against specificity",
        caption=(
            "An SAE that always gives a word one latent sits at the bottom right, pure noise at the top left; "
            "points above the dashed chance line separate meanings better than a coin flip of the same bias."
            + (" One panel per hook point, each with its own baselines." if len(panels) > 1 else "")
            + (
                f" {n_hooks - len(panels)} hook point(s) with fewer SAEs are not shown."
                if n_hooks > len(panels)
                else ""
            )
            + (" Star: dense activations." if dense else "")
            + (" Cross: a random SAE of each width." if rnd else "")
        ),
        figure=fig,
    )


# ---------------------------------------------------------------------------------------------------------
# Building and writing
# ---------------------------------------------------------------------------------------------------------

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
