"""The report stage: figures and a self-contained HTML page, built from a results folder alone."""

from __future__ import annotations

from pseval.report.html import write_report
from pseval.report.load import load_results, summary_table
from pseval.report.plots import make_figures

__all__ = ["load_results", "make_figures", "summary_table", "write_report"]
