"""The ``layer_hook_heatmap`` figure: specificity per layer × hook kind, one panel per architecture."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import matplotlib

from pseval.evals.schema import PSEvalResult
from pseval.report.figure_labels import ratio_text
from pseval.report.figure_style import FigureSpec, Row, figure_subtitle, new_figure, set_title
from pseval.report.load import architecture_label, architecture_rank, hook_kind_rank


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
            label = f"{architecture_label(key[3])}, expansion {ratio_text(ratio)}"
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
