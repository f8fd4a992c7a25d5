"""docs/sweeps.md states how many SAEs each preset trains: the numbers are the presets' own."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pseval.sweep.config import preset

SWEEPS_DOC = Path(__file__).resolve().parents[2] / "docs" / "sweeps.md"
ROW = re.compile(r"^\| (paper-[a-z]+) \| (\d+)\b[^|]*\| ([^|]+) \|", re.M)


def test_every_preset_row_states_the_presets_number_of_saes() -> None:
    if not SWEEPS_DOC.is_file():
        pytest.skip("docs/sweeps.md is not in this checkout")
    rows = ROW.findall(SWEEPS_DOC.read_text(encoding="utf-8"))
    assert {name for name, _, _ in rows} == {
        "paper-layers",
        "paper-expansion",
        "paper-activation",
        "paper-all",
    }
    for name, count, budget_cell in rows:
        budgets = [b for b in ("tiny", "small", "full") if b in budget_cell]
        assert budgets, budget_cell
        for budget in budgets:
            assert len(preset(name, budget).runs()) == int(count), (name, budget)  # type: ignore[arg-type]
