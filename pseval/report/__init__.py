"""The report stage: figures and a self-contained HTML page, built from a results folder alone.

The names below are imported on first use: the CLI's result tables (:mod:`pseval.report.tables`) load
without the figure modules and matplotlib.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pseval.report.html import write_report
    from pseval.report.load import load_results, summary_table
    from pseval.report.plots import make_figures

_HOME = {
    "load_results": "pseval.report.load",
    "make_figures": "pseval.report.plots",
    "summary_table": "pseval.report.load",
    "write_report": "pseval.report.html",
}


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(_HOME[name]), name)


__all__ = ["load_results", "make_figures", "summary_table", "write_report"]
