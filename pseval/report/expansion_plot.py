"""The ``expansion_ratio`` figure: specificity, recall and F1 against the expansion ratio."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

from pseval.evals.schema import PSEvalResult
from pseval.report.figure_labels import (
    BASELINE_GREY,
    HOOK_COLOURS,
    METRIC_LABELS,
    arch_colour,
    arch_marker,
    hook_sort_key,
    interval_errors,
)
from pseval.report.figure_style import FigureSpec, Row, figure_subtitle, new_figure, set_title
from pseval.report.load import architecture_label, architecture_rank

MAX_LINES = 12
"""At most this many (architecture, hook) lines in the expansion-ratio figure (the best-covered ones)."""


def _first(rows: Sequence[Row], key: str) -> float | None:
    for row in rows:
        if row.get(key) is not None:
            return float(row[key])
    return None


LineKey = tuple[Any, ...]
"""One line of the figure: (hook sort key, architecture rank, architecture, hook)."""


def expansion_lines(rows: Sequence[Row]) -> tuple[dict[LineKey, list[Row]], int]:
    """The (architecture, hook) lines with two or more widths, at most :data:`MAX_LINES` of them (the
    best-covered), each sorted by expansion ratio; and how many lines were left out."""
    groups: dict[LineKey, list[Row]] = defaultdict(list)
    for row in rows:
        if row.get("expansion_ratio"):
            arch = row.get("architecture") or ""
            groups[(hook_sort_key(row), architecture_rank(arch), arch, row["hook"])].append(row)
    lines = {
        key: sorted(group, key=lambda r: r["expansion_ratio"])
        for key, group in groups.items()
        if len({r["expansion_ratio"] for r in group}) >= 2
    }
    if len(lines) <= MAX_LINES:
        return lines, 0
    keep = sorted(lines, key=lambda k: (-len(lines[k]), k))[:MAX_LINES]
    return {k: lines[k] for k in keep}, len(lines) - MAX_LINES


def expansion_figure(results: Sequence[PSEvalResult], rows: Sequence[Row]) -> FigureSpec | None:
    """Metrics against the expansion ratio; ``None`` unless some (architecture, hook) has two or more widths."""
    lines, dropped = expansion_lines(rows)
    if not lines:
        return None
    keys = sorted(lines)
    hooks = sorted({(k[0], k[3]) for k in keys})
    archs = sorted({k[2] for k in keys}, key=architecture_rank)
    by_hook = len(hooks) > 1
    hook_colour = {hook: HOOK_COLOURS[i % len(HOOK_COLOURS)] for i, (_, hook) in enumerate(hooks)}

    def colour(key: LineKey) -> str:
        return hook_colour[key[3]] if by_hook else arch_colour(key[2])

    metrics = ("specificity", "recall", "f1")
    ratios = sorted({r["expansion_ratio"] for k in keys for r in lines[k]})
    fig = new_figure((11, 4.4))
    axes = fig.subplots(1, len(metrics), sharey=True)
    has_dense = has_random = False
    for ax, metric in zip(axes, metrics, strict=True):
        has_random |= _draw_lines(ax, metric, keys, lines, colour)
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
        _ratio_axis(ax, ratios)
        ax.set_title(METRIC_LABELS[metric])
    axes[0].set_ylabel("score (95 % bootstrap interval)")
    handles = _legend_handles(archs, [h for _, h in hooks] if by_hook else [], hook_colour)
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


def _draw_lines(
    ax: Any,
    metric: str,
    keys: Sequence[LineKey],
    lines: dict[LineKey, list[Row]],
    colour: Callable[[LineKey], str],
) -> bool:
    """Each line's ``metric`` with its intervals, and its random SAE's dotted; whether any random SAE was drawn."""
    n = len(keys)
    has_random = False
    for i, key in enumerate(keys):
        group = lines[key]
        shift = 2 ** (0.06 * (i - (n - 1) / 2)) if n > 1 else 1.0
        pts = [r for r in group if r.get(metric) is not None]
        if pts:
            errs = [interval_errors(r, metric) for r in pts]
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
    return has_random


def _ratio_axis(ax: Any, ratios: Sequence[float]) -> None:
    """A log2 x axis with a tick at each expansion ratio."""
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_locator(FixedLocator(ratios))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlim(min(ratios) / 1.35, max(ratios) * 1.35)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("expansion ratio (d_sae / d_in)")


def _legend_handles(archs: Sequence[str], hooks: Sequence[str], hook_colour: dict[str, str]) -> list[Any]:
    """Colour by hook and marker by architecture when there are ``hooks``, else both by architecture."""
    if hooks:
        return [Line2D([], [], color=hook_colour[h], linewidth=2, label=h) for h in hooks] + [
            Line2D(
                [], [], color="#333333", marker=arch_marker(a), linestyle="none", label=architecture_label(a)
            )
            for a in archs
        ]
    return [
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
