"""The flag of results whose pairs mostly have no active latent (a dead or nearly dead SAE).

Such a pair has no top-1 latent, so it is predicted "different" whatever its meaning: when most pairs are
like that, specificity is close to 1 and recall to 0 because the SAE is silent, not because its features
separate meanings. The tables keep the numbers and put :data:`FLAG` beside them, with one line per flagged
SAE saying why (threshold: :data:`pseval.metrics.ps_eval.MOSTLY_NO_ACTIVE` of the pairs).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pseval.metrics.ps_eval import MOSTLY_NO_ACTIVE, mostly_no_active

FLAG = "!"
"""Marks a score most of whose pairs have no active latent."""


def no_active_fields(ps_eval: dict[str, Any]) -> dict[str, Any]:
    """Share of pairs without a top latent and whether it flags the result (also for results stored before
    the share was recorded, from ``n_pairs_no_active`` and ``n_pairs``)."""
    n_silent, n_pairs = ps_eval.get("n_pairs_no_active"), ps_eval.get("n_pairs")
    share = ps_eval.get("share_pairs_no_active")
    if share is None and n_pairs and n_silent is not None:
        share = n_silent / n_pairs
    return {"share_pairs_no_active": share, "mostly_no_active": mostly_no_active(n_silent, n_pairs)}


def flag(row: dict[str, Any]) -> str:
    """`` !`` after a flagged row's score, else nothing."""
    return f" {FLAG}" if row.get("mostly_no_active") else ""


def no_active_cell(row: dict[str, Any]) -> str:
    """The no-active column: pairs without a top latent, with their share when it is known."""
    share = row.get("share_pairs_no_active")
    count = str(row.get("n_pairs_no_active", 0))
    return (f"{count} ({share:.0%})" if share else count) + flag(row)


def no_active_notes(rows: Sequence[dict[str, Any]]) -> list[str]:
    """One line per flagged SAE: how many of its pairs had no active latent and what that does to its scores."""
    return [
        f"{FLAG} {row['sae']}: no active latent: {row['share_pairs_no_active']:.0%} of pairs (over "
        f"{MOSTLY_NO_ACTIVE:.0%}): they count as 'different' whatever their meaning, so its scores "
        "describe a silent SAE, not its features"
        for row in rows
        if row.get("mostly_no_active")
    ]


__all__ = ["FLAG", "flag", "no_active_cell", "no_active_fields", "no_active_notes"]
