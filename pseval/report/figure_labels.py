"""How the figures name and draw things: metric and axis labels, architecture colours and markers.

Kept apart from the figures so the tables can be replaced (e.g. by labels from a metric registry)
without touching any figure's code.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from matplotlib.lines import Line2D

from pseval.metrics.ps_eval import METRIC_NAMES
from pseval.metrics.registry import metric_label
from pseval.report.figure_style import Row
from pseval.report.load import architecture_label, hook_kind_rank

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

METRIC_LABELS: dict[str, str] = {key: metric_label(key) for key in METRIC_NAMES}
"""Display names of the PS-Eval ratios, from the metric registry."""

AXIS_LABELS = {
    "l0": "L0 (active latents per token)",
    "l0_normalised": "normalised L0 (L0 / d_sae)",
    "fvu": "fraction of variance unexplained (FVU)",
    "mse": "MSE",
}


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


def hook_sort_key(row: Row) -> tuple[Any, ...]:
    """Orders a row's hook point: by model, then layer, then where the hook kind fires in a block."""
    layer = row.get("layer")
    return (row["model"], -1 if layer is None else layer, hook_kind_rank(row.get("hook_kind")), row["hook"])


def interval_errors(row: Row, metric: str) -> tuple[float, float]:
    """Distances from the value to its interval bounds (0 where the interval is unknown)."""
    value, low, high = row.get(metric), row.get(f"{metric}_low"), row.get(f"{metric}_high")
    if value is None or low is None or high is None:
        return 0.0, 0.0
    return max(value - low, 0.0), max(high - value, 0.0)


def ratio_text(value: float | None) -> str:
    """An expansion ratio as ``×8`` (a dash when unknown)."""
    return "–" if value is None else f"×{value:g}"
