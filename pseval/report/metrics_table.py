"""The table of ``pseval metrics``: standard metrics per SAE, one table when it fits, else one metric per line."""

from __future__ import annotations

from typing import Any

from rich.console import Console, RenderableType
from rich.table import Table
from rich.text import Text

from pseval._format import format_number


def _natural_width(console: Console, renderable: RenderableType) -> int:
    """The width ``renderable`` takes unwrapped, not clamped to the console."""
    return console.measure(renderable, options=console.options.update_width(1_000_000)).maximum


STANDARD_COLUMNS: tuple[str, ...] = (
    "mse",
    "fvu",
    "explained_variance",
    "l0",
    "l0_normalised",
    "dead_fraction",
    "dense_fraction",
    "cosine",
    "ce_loss_recovered",
    "kl_div_with_sae",
)
"""Columns of ``pseval metrics``, in print order."""


def metrics_renderable(rows: dict[str, dict[str, Any]], console: Console, title: str) -> RenderableType:
    """Standard metrics per SAE: one table when it fits ``console``, else one metric per line per SAE."""
    table = Table(title=title, title_justify="left")
    table.add_column("SAE", overflow="fold")
    for column in STANDARD_COLUMNS:
        table.add_column(column, justify="right", no_wrap=True)
    for name, row in rows.items():
        table.add_row(name, *[format_number(row.get(c), 4) for c in STANDARD_COLUMNS])
    if _natural_width(console, table) <= console.width:
        return table
    per_sae = Table(title=title, title_justify="left", show_header=False, box=None, padding=(0, 1))
    per_sae.add_column("metric")
    per_sae.add_column("value", justify="right", no_wrap=True)
    for name, row in rows.items():
        per_sae.add_row(Text(name, style="bold", overflow="fold"), "")
        for column in STANDARD_COLUMNS:
            per_sae.add_row(f"  {column}", format_number(row.get(column), 4))
    return per_sae
