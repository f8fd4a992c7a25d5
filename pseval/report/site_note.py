"""The hook-site check (category ``site_check``) in the report: its verdict, FVU and L0 as flat row fields, one
note line under the tables, and a compact column of the HTML summary.

The check measures each SAE where it is read before scoring (:mod:`pseval.evals.site_check`). Its numbers are
short enough for a note, so the 80-column table keeps its layout: SAEs that pass share one line (the range of
their numbers), and each one that does not gets its own line with the limit it crossed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pseval._format import finite_number
from pseval.evals.categories import EvalResultMetrics

SITE_FIELDS = ("site_check_verdict", "site_check_fvu", "site_check_l0", "site_check_reason")
"""The flat row fields of the check (absent when the result has none)."""


def site_check_fields(metrics: EvalResultMetrics) -> dict[str, Any]:
    """The ``site_check`` verdict, FVU, L0 and reason of one result as flat row fields (empty without one)."""
    check = metrics.site_check
    if check is None:
        return {}
    return {
        "site_check_verdict": check.verdict,
        "site_check_fvu": finite_number(check.fvu),
        "site_check_l0": finite_number(check.l0),
        "site_check_reason": check.reason,
    }


def site_summary(row: dict[str, Any]) -> str:
    """``pass · FVU 0.123 · L0 31.0`` (– for a number not measured), or "" without a check."""
    verdict = row.get("site_check_verdict")
    if verdict is None:
        return ""
    fvu, l0 = row.get("site_check_fvu"), row.get("site_check_l0")
    fvu_text = "–" if fvu is None else f"{fvu:.3f}"
    l0_text = "–" if l0 is None else f"{l0:.1f}"
    return f"{verdict} · FVU {fvu_text} · L0 {l0_text}"


def _span(values: list[float | None], digits: int) -> str:
    """``0.125`` for one value (or equal ones), ``0.100–0.300`` for several, ``–`` when none was measured."""
    known = [value for value in values if value is not None]
    if not known:
        return "–"
    low, high = f"{min(known):.{digits}f}", f"{max(known):.{digits}f}"
    return low if low == high else f"{low}–{high}"


def site_notes(rows: Sequence[dict[str, Any]]) -> list[str]:
    """One line for the SAEs that pass the check (the range of their FVU and L0; each SAE's numbers are in the
    CSV and JSON rows), one per SAE that does not (none without checks)."""
    checked = [row for row in rows if row.get("site_check_verdict") is not None]
    passed = [row for row in checked if row["site_check_verdict"] == "pass"]
    lines = []
    if passed:
        fvu = _span([row.get("site_check_fvu") for row in passed], 3)
        l0 = _span([row.get("site_check_l0") for row in passed], 1)
        lines.append(f"site check passed ({len(passed)} of {len(checked)} SAEs): FVU {fvu} · L0 {l0}")
    for row in checked:
        if row["site_check_verdict"] != "pass":
            reason = row.get("site_check_reason")
            lines.append(
                f"! {row['sae']}: site check {site_summary(row)}" + (f" ({reason})" if reason else "")
            )
    return lines


__all__ = ["SITE_FIELDS", "site_check_fields", "site_notes", "site_summary"]
