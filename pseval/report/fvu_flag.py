"""The plain warning for an SAE whose fraction of variance unexplained (FVU) at its own hook is above 1.

FVU > 1 means the SAE's reconstruction is further from the activations than their mean is: splicing it in
is worse than predicting the mean activation. At SmolLM2's residual stream a few massive-activation tokens
(nearly all at the first text position of a context; 1 in 2,000 to 3,000 tokens) hold most of the variance, so
an SAE that overshoots on them has FVU > 1 while it reconstructs ordinary tokens with FVU well below 1
(docs/methodology.md, "FVU above 1"). Either way the number must not pass unremarked.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pseval._format import finite_number

FVU_LIMIT = 1.0
"""Above this, the reconstruction is worse than predicting the mean activation."""

FVU_HELP = "docs/methodology.md#fvu-above-1"


def fvu_above_one(value: Any) -> bool:
    number = finite_number(value)
    return number is not None and number > FVU_LIMIT


def fvu_cell(value: Any) -> str:
    """The FVU, three decimals, with ``> 1!`` after it when it is above 1 (– when missing)."""
    number = finite_number(value)
    if number is None:
        return "–"
    return f"{number:.3f} > 1!" if number > FVU_LIMIT else f"{number:.3f}"


def fvu_notes(rows: Sequence[dict[str, Any]]) -> list[str]:
    """One line per SAE whose held-out FVU at its hook is above 1 (rows with ``sae`` and ``fvu``)."""
    return [
        f"! {row['sae']}: FVU {row['fvu']:.3f} > 1 at its hook: its reconstruction is worse than predicting "
        f"the mean activation (see {FVU_HELP})"
        for row in rows
        if fvu_above_one(row.get("fvu"))
    ]


def training_fvu_note(explained_variance: float) -> str:
    """What ``pseval train`` adds to its held-out summary when the explained variance is negative."""
    if explained_variance >= 0:
        return ""
    return f" · FVU {1 - explained_variance:.3f} > 1: worse than predicting the mean (see {FVU_HELP})"


__all__ = ["FVU_LIMIT", "fvu_above_one", "fvu_cell", "fvu_notes", "training_fvu_note"]
