"""Result files written before Youden's J, balanced accuracy and the paired random control still read back."""

from __future__ import annotations

from pathlib import Path

import pytest

from pseval.evals.compare import compare_results
from pseval.evals.schema import PSEvalResult
from pseval.report.html import render_summary_table
from pseval.report.load import summary_row
from pseval.report.tables import baseline_rows, result_rows
from tests.report.fabricate import FakeSAE, fake_result

NEW_RATIOS = ("youden_j", "balanced_accuracy")


def _as_written_before(result: PSEvalResult) -> PSEvalResult:
    """``result`` without any field this version adds (as today's files on disk are)."""
    old = result.model_dump(mode="json")
    metrics = old["eval_result_metrics"]
    metrics.pop("vs_random_sae", None)
    for category in ("ps_eval", "baseline_random_sae", "baseline_dense"):
        for name in NEW_RATIOS:
            metrics.get(category, {}).pop(name, None)
    for name in NEW_RATIOS:
        for side in ("low", "high"):
            metrics["ps_eval_ci"].pop(f"{name}_{side}", None)
    metrics["ps_eval_ci"].pop("interval_method", None)
    (old["eval_result_unstructured"] or {}).pop("random_sae_details", None)
    return PSEvalResult.model_validate(old)


def test_old_results_show_j_derived_from_recall_and_specificity(tmp_path: Path) -> None:
    old = _as_written_before(fake_result(FakeSAE("topk", 8, 12, "resid_post"), n_pairs=40, seed=0))
    ps = old.eval_result_metrics["ps_eval"]
    assert "youden_j" not in ps
    (row,) = result_rows([old])
    assert row["youden_j"] == pytest.approx(ps["recall"] + ps["specificity"] - 1)
    assert row["youden_j_low"] is None and row["beats_random_on"] == ""
    summary = summary_row(old)
    assert summary["balanced_accuracy"] == pytest.approx((ps["recall"] + ps["specificity"]) / 2)
    assert summary["beats_random_on"] is None
    random = next(r for r in baseline_rows([old]) if r["baseline"].startswith("random SAE"))
    control = old.eval_result_metrics["baseline_random_sae"]
    assert random["youden_j"] == pytest.approx(control["recall"] + control["specificity"] - 1)
    assert "Youden J" in render_summary_table([summary])
    (tmp_path / "a.json").write_text(old.model_dump_json())
    assert compare_results(tmp_path / "a.json", tmp_path / "a.json")["same_result"] is True
