"""The word form × meaning (2 × 2) figure of the results that hold the ``wordform`` category.

One line per representation: every SAE, then the random SAE of its width and the dense activations of its
hook (each baseline once), grouped by hook. For each overlap measure (share of pairs with the same top
latent, top-k overlap, code cosine) one panel holds the four cells of the design (colour: same / different
word; filled / hollow: same / different sense) and the next the two effects (word effect at a fixed
meaning, meaning effect at a fixed word), each a point with the bootstrap interval the result file records.
Points rather than bars keep a line's word and meaning effects side by side and scale to many hooks.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from matplotlib.axes import Axes
from matplotlib.lines import Line2D

from pseval._format import finite_number
from pseval.evals.schema import PSEvalResult, stored_wordform
from pseval.report.figure_style import FigureSpec, Row, figure_subtitle, new_figure, set_title
from pseval.report.load import architecture_label, display_names

FIGURE_NAME = "wordform_2x2"

CELL_ORDER: tuple[tuple[str, str], ...] = (
    ("same_word_same_sense", "same word · same sense"),
    ("same_word_different_sense", "same word · diff. sense"),
    ("different_word_same_sense", "diff. word · same sense"),
    ("different_word_different_sense", "diff. word · diff. sense"),
)
"""The four cells of the 2 × 2 design, as the figure orders and labels them."""

EFFECT_ORDER: tuple[tuple[str, str], ...] = (
    ("word_effect", "word effect (same sense)"),
    ("meaning_effect", "meaning effect (same word)"),
)

MEASURES: tuple[tuple[str, str, str], ...] = (
    ("share_same_top_latent", "same top latent", "share of pairs"),
    ("topk_overlap", "top-{k} overlap", "mean Jaccard"),
    ("code_cosine", "code cosine", "mean cosine"),
)
"""Overlap measures: key in the result, panel title, axis label of the cells."""

MAX_SAES = 16
"""At most this many SAEs in the figure (the first in the results' order), with the baselines of their hooks."""


@dataclass(frozen=True)
class WordformSeries:
    """One representation's ``wordform`` scores: an SAE's codes, a random SAE's or the dense activations."""

    label: str
    kind: str  # "sae", "random_sae" or "dense"
    short_label: str  # the label without the hook, for a figure that groups by hook
    scores: dict[str, Any]
    hook: str
    model: str
    architecture: str | None
    confidence_level: float
    topk_overlap_k: int | None


def wordform_results(results: Sequence[PSEvalResult]) -> list[PSEvalResult]:
    """The results that hold a ``wordform`` category (with the SAE's scores)."""
    return [r for r in results if stored_wordform(r) is not None]


def wordform_series(results: Sequence[PSEvalResult]) -> list[WordformSeries]:
    """Per hook, every SAE with a ``wordform`` category, then its baselines (a baseline with equal scores once).

    Labels are unique: an SAE's display name (see :func:`pseval.report.load.display_names`), a baseline's
    kind and width, followed by its hook (and model) when the series span several.
    """
    chosen = wordform_results(results)
    names = dict(zip((id(r) for r in results), display_names(results), strict=True))
    # Grouped by hook, so each SAE stands beside its own baselines: SAEs, random SAEs, dense vectors.
    groups: dict[tuple[str, str], dict[str, list[WordformSeries]]] = {}
    seen: set[tuple[Any, ...]] = set()
    hooks = {r.hook_name for r in chosen}
    models = {r.model_name for r in chosen}

    def where(result: PSEvalResult) -> str:
        parts = [result.hook_name] if len(hooks) > 1 else []
        parts += [result.model_name] if len(models) > 1 else []
        return f" @ {' · '.join(parts)}" if parts else ""

    for result in chosen:
        category = stored_wordform(result) or {}
        level = finite_number(category.get("confidence_level")) or 0.95
        k_value = finite_number(category.get("topk_overlap_k"))
        k = None if k_value is None else int(k_value)
        architecture = result.eval_result_metrics.get("sae", {}).get("architecture")
        group = groups.setdefault(
            (result.model_name, result.hook_name), {"sae": [], "random_sae": [], "dense": []}
        )
        group["sae"].append(
            WordformSeries(
                label=names[id(result)],
                kind="sae",
                short_label=names[id(result)],
                scores=category["sae"],
                architecture=architecture,
                hook=result.hook_name,
                model=result.model_name,
                confidence_level=level,
                topk_overlap_k=k,
            )
        )
        d_sae = finite_number(result.eval_result_metrics.get("sae", {}).get("d_sae"))
        width = f"{int(d_sae):,}" if d_sae is not None else "same width"
        # The random SAE has the SAE's activation function: its codes (not its top latents) differ by it.
        random_label = f"random {architecture_label(architecture) + ' ' if architecture else ''}SAE ({width})"
        for kind, label in (("random_sae", random_label), ("dense", "dense activations")):
            scores = category.get(kind)
            if not scores:
                continue
            key = (kind, result.model_name, result.hook_name, json.dumps(scores, sort_keys=True))
            if key in seen:
                continue
            seen.add(key)
            group[kind].append(
                WordformSeries(
                    label=label + where(result),
                    kind=kind,
                    short_label=label,
                    scores=scores,
                    architecture=None,
                    hook=result.hook_name,
                    model=result.model_name,
                    confidence_level=level,
                    topk_overlap_k=k,
                )
            )
    series = [s for group in groups.values() for kind in ("sae", "random_sae", "dense") for s in group[kind]]
    counts: dict[str, int] = {}
    unique: list[WordformSeries] = []
    for s in series:
        counts[s.label] = counts.get(s.label, 0) + 1
        label = s.label if counts[s.label] == 1 else f"{s.label} ({counts[s.label]})"
        unique.append(replace(s, label=label))
    return unique


def _value_and_error(row: dict[str, Any] | None, measure: str) -> tuple[float | None, tuple[float, float]]:
    """A cell's or effect's value and its distances to the interval bounds (0 where none is recorded)."""
    if not row:
        return None, (0.0, 0.0)
    value = finite_number(row.get(measure))
    low, high = finite_number(row.get(f"{measure}_low")), finite_number(row.get(f"{measure}_high"))
    if value is None:
        return None, (0.0, 0.0)
    if low is None or high is None:
        return value, (0.0, 0.0)
    return value, (max(value - low, 0.0), max(high - value, 0.0))


CELL_STYLE: dict[str, tuple[str, str, bool]] = {
    "same_word_same_sense": ("#1f5fa8", "o", True),
    "same_word_different_sense": ("#1f5fa8", "o", False),
    "different_word_same_sense": ("#d0661c", "s", True),
    "different_word_different_sense": ("#d0661c", "s", False),
}
"""(colour, marker, filled) per cell: colour = same / different word, filled = same sense."""
EFFECT_STYLE: dict[str, tuple[str, str]] = {
    "word_effect": ("#7b3294", "D"),
    "meaning_effect": ("#1b7837", "^"),
}
CELL_OFFSETS = (-0.27, -0.09, 0.09, 0.27)
EFFECT_OFFSETS = (-0.13, 0.13)


@dataclass(frozen=True)
class _Row:
    """One line of the figure: a representation (``series``) or the header of a hook's group."""

    y: float
    label: str
    series: WordformSeries | None


def _layout(series: Sequence[WordformSeries]) -> list[_Row]:
    """Rows top to bottom; with several hooks each hook's group starts with a header line."""
    several = len({(s.model, s.hook) for s in series}) > 1
    rows: list[_Row] = []
    y = 0.0
    previous: tuple[str, str] | None = None
    for s in series:
        if several and (s.model, s.hook) != previous:
            if previous is not None:
                y -= 0.4
            rows.append(_Row(y, s.hook, None))
            y -= 1.0
            previous = (s.model, s.hook)
        rows.append(_Row(y, s.short_label if several else s.label, s))
        y -= 1.0
    return rows


def _points(
    ax: Axes,
    rows: Sequence[_Row],
    section: str,
    keys: Sequence[str],
    offsets: Sequence[float],
    styles: Sequence[tuple[str, str, bool]],
    measure: str,
) -> list[float]:
    """One marker with its interval per row and key (cell or effect); returns every drawn bound."""
    bounds: list[float] = []
    for key, offset, (colour, marker, filled) in zip(keys, offsets, styles, strict=True):
        xs, ys, below, above = [], [], [], []
        for row in rows:
            if row.series is None:
                continue
            value, (low_err, high_err) = _value_and_error(
                row.series.scores.get(section, {}).get(key), measure
            )
            if value is None:
                continue
            xs.append(value)
            ys.append(row.y - offset)
            below.append(low_err)
            above.append(high_err)
            bounds += [value - low_err, value + high_err]
        if xs:
            ax.errorbar(
                xs,
                ys,
                xerr=[below, above],
                fmt=marker,
                color=colour,
                markerfacecolor=colour if filled else "white",
                markersize=4.5,
                elinewidth=1.0,
                capsize=1.5,
                linestyle="none",
            )
    return bounds


def _cell_legend_label(cell: str, label: str, series: Sequence[WordformSeries]) -> str:
    """A cell's legend entry, with its number of pairs when every representation has the same."""
    counts = {finite_number((s.scores.get("cells", {}).get(cell) or {}).get("n_pairs")) for s in series}
    count = counts.pop() if len(counts) == 1 else None
    return label if count is None else f"{label} (n = {int(count):,})"


def _measure_panels(
    subfig: Any,
    measure: str,
    heading: str,
    unit: str,
    layout: Sequence[_Row],
    styles: tuple[list[Any], list[Any]],
    y_limits: tuple[float, float],
    first: bool,
) -> None:
    """One measure's two panels, the four cells and the two effects; ``first`` carries the row labels."""
    cell_styles, effect_styles = styles
    y_low, y_high = y_limits
    ax_cells, ax_effects = subfig.subplots(1, 2, sharey=True)
    subfig.suptitle(heading, fontsize=9.5)
    bounds = _points(
        ax_cells, layout, "cells", [c for c, _ in CELL_ORDER], CELL_OFFSETS, cell_styles, measure
    )
    low = min([0.0, *bounds])
    ax_cells.set_xlim(low - 0.05 if low < 0 else -0.02, max(1.0, *bounds) + 0.03)
    ax_cells.set_title("cells", fontsize=8.5)
    ax_cells.set_xlabel(unit)
    effect_bounds = _points(
        ax_effects,
        layout,
        "effects",
        [e for e, _ in EFFECT_ORDER],
        EFFECT_OFFSETS,
        effect_styles,
        measure,
    )
    ax_effects.axvline(0.0, color="#333333", linewidth=0.8)
    span = max([0.05, *(abs(b) for b in effect_bounds)])
    ax_effects.set_xlim(min(-0.05, *effect_bounds) - 0.08 * span, max(0.05, *effect_bounds) + 0.08 * span)
    ax_effects.set_title("effects", fontsize=8.5)
    ax_effects.set_xlabel("difference")
    for ax in (ax_cells, ax_effects):
        ax.set_ylim(y_low, y_high)
        ax.grid(axis="y", visible=False)
        for row in layout:
            if row.series is None:
                ax.axhline(row.y, color="#cccccc", linewidth=0.6)
    ax_cells.set_yticks([row.y for row in layout], [row.label for row in layout] if first else [])
    ax_cells.tick_params(axis="y", length=0)
    ax_effects.tick_params(axis="y", length=0, labelleft=False)
    if first:
        for tick, row in zip(ax_cells.get_yticklabels(), layout, strict=True):
            if row.series is None:
                tick.set_fontweight("bold")
            elif row.series.kind != "sae":
                tick.set_color("#555555")
                tick.set_fontstyle("italic")
    if measure == "share_same_top_latent":
        for row in layout:
            if row.series is not None and row.series.kind == "dense":
                ax_cells.text(
                    0.5, row.y, "no top latent", ha="center", va="center", fontsize=7, color="#666666"
                )


def _legend_handles(
    series: Sequence[WordformSeries], cell_styles: list[Any], effect_styles: list[Any]
) -> list[Line2D]:
    """One entry per cell (with its pair count when all representations agree), then one per effect."""
    handles = [
        Line2D(
            [],
            [],
            color=colour,
            marker=marker,
            markerfacecolor=colour if filled else "white",
            linestyle="none",
            label=_cell_legend_label(cell, label, series),
        )
        for (cell, label), (colour, marker, filled) in zip(CELL_ORDER, cell_styles, strict=True)
    ]
    handles += [
        Line2D([], [], color=colour, marker=marker, linestyle="none", label=label)
        for (_, label), (colour, marker, _) in zip(EFFECT_ORDER, effect_styles, strict=True)
    ]
    return handles


def wordform_figure(results: Sequence[PSEvalResult], rows: Sequence[Row]) -> FigureSpec | None:
    """The 2 × 2 cells and the two effects per measure; ``None`` unless some result has the category."""
    del rows  # the figure reads the wordform category itself; the signature is the figure builders'
    all_series = wordform_series(results)
    if not all_series:
        return None
    sae_series = [s for s in all_series if s.kind == "sae"]
    kept = {id(s) for s in sae_series[:MAX_SAES]}
    kept_hooks = {(s.model, s.hook) for s in sae_series[:MAX_SAES]}
    series = [s for s in all_series if id(s) in kept or (s.kind != "sae" and (s.model, s.hook) in kept_hooks)]
    layout = _layout(series)
    levels = {s.confidence_level for s in series}
    level_text = f"{levels.pop() * 100:g} %" if len(levels) == 1 else "bootstrap"
    ks = {s.topk_overlap_k for s in series if s.topk_overlap_k is not None}
    k_text = str(ks.pop()) if len(ks) == 1 else "k"
    # The row labels sit left of the first measure's panels: its column is wider by their width.
    label_in = 0.3 + 0.068 * max(len(row.label) for row in layout)
    panel_in = 3.5
    height = max(4.4, 2.3 + 0.34 * len(layout))
    fig = new_figure((min(label_in + 3 * panel_in + 0.4, 16.0), height))
    ratios = [(panel_in + label_in) / panel_in, 1.0, 1.0]
    grid: Any = fig.subfigures(1, len(MEASURES), wspace=0.02, width_ratios=ratios)
    subfigs = list(grid)
    y_low, y_high = layout[-1].y - 0.6, layout[0].y + 0.6
    cell_styles = [CELL_STYLE[c] for c, _ in CELL_ORDER]
    effect_styles = [(*EFFECT_STYLE[e], True) for e, _ in EFFECT_ORDER]
    for m, (subfig, (measure, title, unit)) in enumerate(zip(subfigs, MEASURES, strict=True)):
        heading = title.format(k=k_text)
        _measure_panels(
            subfig, measure, heading, unit, layout, (cell_styles, effect_styles), (y_low, y_high), m == 0
        )
    handles = _legend_handles(series, cell_styles, effect_styles)
    fig.legend(handles=handles, loc="outside lower center", ncol=3)
    shown = wordform_results(results)
    set_title(fig, "Word form vs meaning (2 × 2)", figure_subtitle(shown))
    caption = (
        "One line per representation (each SAE, then the random SAE of its width and the dense activations "
        "of its hook, in grey): for each measure, the mean overlap of a pair's two contexts in the four cells "
        "of the word form × meaning design (blue: same word, orange: different word; filled: same sense, "
        "hollow: different sense) and the two effects: the word effect is same word − different word at the "
        "same sense, the meaning effect same sense − different sense for the same word. Measures: the share "
        f"of pairs whose contexts have the same top latent, the top-{k_text} overlap (Jaccard) and the cosine "
        f"of the codes. Error bars are {level_text} bootstrap intervals (cells resampled independently). The "
        "dense activations have no sparse top latent, so no marker for the first measure."
    )
    if len(sae_series) > MAX_SAES:
        caption += (
            f" The first {MAX_SAES} of {len(sae_series)} SAEs are shown, with the baselines of their hooks; "
            "the report's tables and the result files hold them all."
        )
    return FigureSpec(name=FIGURE_NAME, title="Word form vs meaning (2 × 2)", caption=caption, figure=fig)


__all__ = ["FIGURE_NAME", "WordformSeries", "wordform_figure", "wordform_results", "wordform_series"]
