"""What every report figure shares: the fixed style, a pyplot-free figure, its heading and its record.

Kept apart from :mod:`pseval.report.plots` so that figure modules (``wordform_plot``) and the module that
collects every figure (``plots``) both build on it without importing each other.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import matplotlib
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from pseval.evals.schema import PSEvalResult
from pseval.report.load import context_line

Row = dict[str, Any]
"""One SAE's key numbers (:func:`pseval.report.load.summary_table`)."""

RC: dict[str, Any] = {
    "svg.hashsalt": "pseval-report",
    "svg.fonttype": "path",
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.6,
    "legend.frameon": False,
    "legend.fontsize": 8,
    "figure.dpi": 100,
    "savefig.dpi": 150,
}
"""Fixed style; ``svg.hashsalt`` makes SVG ids reproducible."""


@dataclass
class FigureSpec:
    """One figure, with what the report says about it and the tables written beside it."""

    name: str
    title: str
    caption: str
    figure: Figure
    tables: dict[str, str] = field(default_factory=dict)


@contextmanager
def style() -> Iterator[None]:
    """The fixed matplotlib style every figure is built and saved in."""
    with matplotlib.rc_context(RC):  # type: ignore[arg-type]
        yield


def new_figure(figsize: tuple[float, float]) -> Figure:
    """A figure on its own Agg canvas: no pyplot, so the caller's backend (e.g. a notebook's) is untouched."""
    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def set_title(fig: Figure, title: str, subtitle: str) -> None:
    """A figure's two-line heading: its title, and the run it shows."""
    fig.suptitle(f"{title}\n{subtitle}", fontsize=10.5, linespacing=1.5)


def figure_subtitle(results: Sequence[PSEvalResult], extra: str = "") -> str:
    """The model, dataset and split of ``results`` (:func:`pseval.report.load.context_line`), then ``extra``."""
    line = context_line(results)
    return f"{line} · {extra}" if extra else line
