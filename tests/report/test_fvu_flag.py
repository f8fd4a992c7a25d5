"""An SAE whose FVU at its own hook is above 1 is flagged in every table layout, not printed as one more number."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from pseval.evals.schema import PSEvalResult
from pseval.report.fvu_flag import training_fvu_note
from pseval.report.tables import markdown_tables, print_results
from tests.report.fabricate import FakeSAE, fake_result


def _results() -> list[PSEvalResult]:
    out = []
    for i, (name, fvu) in enumerate((("over-sae", 2.433), ("fine-sae", 0.593))):
        r = fake_result(FakeSAE("batchtopk", 8, 6, "resid_post"), n_pairs=40, seed=i)
        r.sae_name = name
        r.eval_result_metrics["standard"] = {**r.eval_result_metrics["standard"], "fvu": fvu}
        out.append(r)
    return out


@pytest.mark.parametrize("width", [250, 80, 40])
def test_fvu_above_one_is_flagged_at_every_width(width: int) -> None:
    console = Console(width=width, record=True, file=io.StringIO(), color_system=None)
    print_results(_results(), console, "PS-Eval", "table", baselines=False)
    text = " ".join(console.export_text().split())
    assert "! over-sae: FVU 2.433 > 1 at its hook" in text
    assert "fine-sae: FVU" not in text
    if width >= 250:
        assert "2.433 > 1!" in text and "0.593 > 1" not in text


def test_markdown_flags_it_too() -> None:
    md = markdown_tables(_results(), "t")
    assert "2.433 > 1!" in md and "! over-sae: FVU 2.433 > 1" in md and "0.593 > 1" not in md


def test_training_summary_says_it() -> None:
    assert training_fvu_note(0.2) == ""
    assert "FVU 2.439 > 1" in training_fvu_note(-1.439)
