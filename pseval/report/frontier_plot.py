"""The trade-off scatters: ``mse_l0_frontier`` (reconstruction against L0, coloured by specificity) and
``recall_specificity`` (each SAE against the chance line)."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import matplotlib
from matplotlib import colors as mcolors
from matplotlib.lines import Line2D

from pseval.evals.schema import PSEvalResult
from pseval.report.figure_labels import (
    AXIS_LABELS,
    BASELINE_GREY,
    arch_colour,
    arch_marker,
    architecture_handles,
    hook_sort_key,
    ratio_text,
)
from pseval.report.figure_style import FigureSpec, Row, figure_subtitle, new_figure, set_title
from pseval.report.load import architecture_rank


def frontier_axes(rows: Sequence[Row]) -> tuple[str, str] | None:
    """The (x, y) keys of the frontier: L0 (else normalised L0) and FVU (else MSE), if two SAEs have both."""
    for x_key in ("l0", "l0_normalised"):
        for y_key in ("fvu", "mse"):
            if sum(1 for r in rows if r.get(x_key) is not None and r.get(y_key) is not None) >= 2:
                return x_key, y_key
    return None


MAX_FRONTIER_PANELS = 9
"""Hook panels of the frontier figure at most (hooks with the most SAEs first)."""


def frontier_panels(rows: Sequence[Row], x_key: str, y_key: str) -> list[tuple[str, list[Row]]]:
    """SAEs with both axes, one group per hook (an MSE–L0 trade-off only compares SAEs at one hook).

    Hooks with the most SAEs come first (then in block order), at most :data:`MAX_FRONTIER_PANELS`.
    """
    by_hook: dict[tuple[Any, ...], list[Row]] = defaultdict(list)
    for row in rows:
        if row.get(x_key) is not None and row.get(y_key) is not None:
            by_hook[hook_sort_key(row)].append(row)
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
                ratio_text(row["expansion_ratio"]),
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
