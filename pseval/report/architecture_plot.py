"""The ``architectures`` figure and its tables: the metrics per activation function at one matched setting."""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from pseval._format import format_number
from pseval.evals.schema import PSEvalResult
from pseval.report.figure_labels import (
    HOOK_COLOURS,
    METRIC_LABELS,
    arch_colour,
    hook_sort_key,
    interval_errors,
    ratio_text,
)
from pseval.report.figure_style import FigureSpec, Row, figure_subtitle, new_figure, set_title
from pseval.report.load import architecture_label, architecture_rank


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
            hook_sort_key(group[0]),
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
        cells = [str(record[0]).replace("|", "\\|"), str(record[1]), str(record[2]), ratio_text(record[3])]
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


BarSeries = tuple[str, list[float | None], list[tuple[float, float]], str, str | None]
"""One series of bars: label, a value per metric, its interval errors, colour, hatch (references only)."""


def bar_series(chosen: Sequence[Row]) -> list[BarSeries]:
    """One series per SAE (coloured by architecture when each has one SAE), then the references."""
    series: list[BarSeries] = []
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
                [interval_errors(row, m) for m in ARCH_METRICS],
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
    return series


def architecture_figure(results: Sequence[PSEvalResult], rows: Sequence[Row]) -> FigureSpec | None:
    """Grouped bars of the four metrics per activation function (and baselines) at a matched setting."""
    chosen = [r for r in matched_setting(rows) if any(r.get(m) is not None for m in ARCH_METRICS)]
    if not chosen:
        return None
    series = bar_series(chosen)
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
    setting = f"{chosen[0]['hook']}, expansion {ratio_text(chosen[0].get('expansion_ratio'))}"
    references = [label for label, *_rest in series if label in ("random SAE", "dense activations")]
    title, caption = _title_and_caption(chosen, setting, references)
    set_title(fig, f"{title} at {setting}", figure_subtitle(results))
    return FigureSpec(
        name="architectures",
        title=title,
        caption=caption,
        figure=fig,
        tables=architecture_tables(chosen),
    )


def _title_and_caption(chosen: Sequence[Row], setting: str, references: Sequence[str]) -> tuple[str, str]:
    if len({r.get("architecture") for r in chosen}) > 1:
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
    return title, caption
