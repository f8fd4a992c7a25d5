"""The SAE against the dense cosine baseline on the same pairs (category ``vs_dense``), for the tables.

Flat fields for CSV and JSON, and the cells of the terminal and Markdown tables: the paired difference in
Youden's J (SAE − dense) with its word-clustered interval, marked ``<`` where the dense baseline is
significantly better and ``>`` where the SAE is (Holm-adjusted with the McNemar test of accuracy).
"""

from __future__ import annotations

from typing import Any

from pseval._format import finite_number
from pseval.evals.categories import CATEGORIES, EvalResultMetrics
from pseval.evals.versus import VS_DENSE, VsDense

VS_DENSE_CAPTION = "J − dense = SAE J − dense cosine J on the same pairs (< / > dense: paired, Holm p < 0.05)"


def verdict(vs: VsDense, side: str) -> str:
    """On which of J and accuracy the SAE is significantly ``side`` ("beats" or "below") the dense baseline."""
    return ", ".join(
        label
        for key, label in (("youden_j", "J"), ("accuracy", "acc."))
        if getattr(vs, f"{side}_on_{key}", None)
    )


def vs_dense_fields(metrics: EvalResultMetrics) -> dict[str, Any]:
    """The ``vs_dense`` numbers of one result as flat row fields (empty when the result has none)."""
    vs = metrics.vs_dense
    if vs is None:
        return {}
    prefix = CATEGORIES[VS_DENSE].row_prefix
    return {
        f"{prefix}youden_j_difference": finite_number(vs.youden_j_difference),
        f"{prefix}youden_j_difference_low": finite_number(vs.youden_j_difference_low),
        f"{prefix}youden_j_difference_high": finite_number(vs.youden_j_difference_high),
        f"{prefix}accuracy_difference": finite_number(vs.accuracy_difference),
        f"{prefix}accuracy_p_holm": finite_number(vs.accuracy_p_holm),
        f"{prefix}youden_j_p_holm": finite_number(vs.youden_j_p_holm),
        f"{prefix}threshold_selection": vs.threshold_selection,
        "beats_dense_on": verdict(vs, "beats"),
        "below_dense_on": verdict(vs, "below"),
    }


def has_vs_dense(rows: list[dict[str, Any]]) -> bool:
    return any("dense_youden_j_difference" in r for r in rows)


def mark(row: dict[str, Any]) -> str:
    """``< dense`` / ``> dense`` where the J difference is significant, else ""."""
    if "J" in (row.get("below_dense_on") or "").split(", "):
        return "< dense"
    if "J" in (row.get("beats_dense_on") or "").split(", "):
        return "> dense"
    return ""


def difference_cell(row: dict[str, Any]) -> str:
    """The J difference with its interval and its mark, one line (the full and Markdown tables)."""
    value = row.get("dense_youden_j_difference")
    if value is None:
        return "–"
    low, high = row.get("dense_youden_j_difference_low"), row.get("dense_youden_j_difference_high")
    text = f"{value:+.3f}" if low is None or high is None else f"{value:+.3f} [{low:.2f}, {high:.2f}]"
    sign = mark(row)
    return f"{sign[0]} {text}" if sign else text


def stacked_line(row: dict[str, Any]) -> str | None:
    """One line of the narrowest layout, or None without a comparison."""
    if row.get("dense_youden_j_difference") is None:
        return None
    p = row.get("dense_accuracy_p_holm")
    acc = row.get("dense_accuracy_difference")
    accuracy = "" if acc is None else f" · accuracy {acc:+.3f} (Holm p {p:.2g})" if p is not None else ""
    return f"  J − dense {difference_cell(row)}{accuracy}"
