"""`compare_results`: exact McNemar tests on all shared pairs and within each class, hand-counted."""

from __future__ import annotations

from pathlib import Path

import pytest

from pseval.errors import DataError
from pseval.evals.compare import compare_results
from pseval.evals.schema import PSEvalResult
from tests.report.fabricate import FakeSAE, fake_result


def _with_outcomes(result: PSEvalResult, correct_by_label: dict[int, list[bool]]) -> PSEvalResult:
    """A copy of ``result`` whose pairs of each label are correct as listed, in order."""
    copy = result.model_copy(deep=True)
    seen = {0: 0, 1: 0}
    for row in copy.eval_result_details:
        row.correct = correct_by_label[row.label][seen[row.label]]
        seen[row.label] += 1
    return copy


def test_mcnemar_overall_and_per_class(tmp_path: Path) -> None:
    base = fake_result(FakeSAE("topk", 8, 12, "resid_post"), n_pairs=40, seed=0)
    n = {label: sum(r.label == label for r in base.eval_result_details) for label in (0, 1)}
    assert n[0] >= 8 and n[1] >= 8
    # Different-meaning pairs: A alone is right on 6, B alone on 1. Same-meaning pairs: identical outcomes.
    a_diff = [True] * 6 + [False] + [True] * (n[0] - 7)
    b_diff = [False] * 6 + [True] + [True] * (n[0] - 7)
    same = [i % 2 == 0 for i in range(n[1])]
    a = _with_outcomes(base, {0: a_diff, 1: same})
    b = _with_outcomes(base, {0: b_diff, 1: same})
    path_a, path_b = tmp_path / "a.json", tmp_path / "b.json"
    path_a.write_text(a.model_dump_json())
    path_b.write_text(b.model_dump_json())

    out = compare_results(path_a, path_b)
    rows = {row["metric"]: row for row in out["by_class"]}
    assert [row["metric"] for row in out["by_class"]] == ["accuracy", "specificity", "recall"]
    assert (rows["accuracy"]["a_only_correct"], rows["accuracy"]["b_only_correct"]) == (6, 1)
    spec = rows["specificity"]
    assert spec["n_pairs"] == n[0] and (spec["a_only_correct"], spec["b_only_correct"]) == (6, 1)
    assert (spec["correct_a"], spec["correct_b"]) == (n[0] - 1, n[0] - 6)
    # Two-sided exact binomial test of 6 successes in 7 at 1/2: 2 × (C(7,6) + C(7,7)) / 2^7 = 16 / 128.
    assert spec["p_value"] == pytest.approx(16 / 128)
    spec_a, spec_b = (n[0] - 1) / n[0], (n[0] - 6) / n[0]
    assert spec["difference"] == pytest.approx(spec_b - spec_a)
    # Not significant: the verdict names no winner.
    assert spec["verdict"].startswith(
        f"specificity: no significant difference at 0.05, {spec_a:.3f} (A) vs {spec_b:.3f} (B), "
        "exact McNemar p = 0.125 (Holm-adjusted "
    )
    assert spec["p_value_holm"] >= spec["p_value"]
    assert "more accurate" not in str(out) and " is higher" not in str(out)
    recall = rows["recall"]
    assert recall["n_pairs"] == n[1] and recall["p_value"] == 1.0
    assert recall["verdict"] == f"recall: identical outcome on all {n[1]} pairs"
    assert out["same_result"] is False


def test_significant_difference_names_the_higher_side(tmp_path: Path) -> None:
    base = fake_result(FakeSAE("topk", 8, 12, "resid_post"), n_pairs=40, seed=0)
    n = {label: sum(r.label == label for r in base.eval_result_details) for label in (0, 1)}
    a = _with_outcomes(base, {0: [True] * n[0], 1: [True] * n[1]})
    b = _with_outcomes(base, {0: [False] * n[0], 1: [True] * n[1]})
    (tmp_path / "a.json").write_text(a.model_dump_json())
    (tmp_path / "b.json").write_text(b.model_dump_json())
    spec = compare_results(tmp_path / "a.json", tmp_path / "b.json")["by_class"][1]
    assert spec["verdict"].startswith("specificity: A is higher, 1.000 (A) vs 0.000 (B)")


def test_verdicts_use_holm_adjusted_p_values_over_the_family(tmp_path: Path) -> None:
    base = fake_result(FakeSAE("topk", 8, 12, "resid_post"), n_pairs=40, seed=0)
    n = {label: sum(r.label == label for r in base.eval_result_details) for label in (0, 1)}
    # Different-meaning pairs: A alone right on 6, B alone on 0 → exact p = 2 / 64 = 0.03125 < 0.05 alone.
    a = _with_outcomes(base, {0: [True] * 6 + [True] * (n[0] - 6), 1: [True] * n[1]})
    b = _with_outcomes(base, {0: [False] * 6 + [True] * (n[0] - 6), 1: [True] * n[1]})
    for row in b.eval_result_details:  # keep predicted_same consistent with correct for the J comparison
        row.predicted_same = row.correct == (row.label == 1)
    for row in a.eval_result_details:
        row.predicted_same = row.correct == (row.label == 1)
    (tmp_path / "a.json").write_text(a.model_dump_json())
    (tmp_path / "b.json").write_text(b.model_dump_json())
    out = compare_results(tmp_path / "a.json", tmp_path / "b.json")
    rows = {row["metric"]: row for row in out["by_class"]}
    spec = rows["specificity"]
    assert spec["p_value"] == pytest.approx(2 / 64)
    # Holm over the family {accuracy, specificity, recall, J}: the two smallest p = 1/32 become ≥ 3/32 > 0.05.
    assert spec["p_value_holm"] >= 3 / 32 and "no significant difference" in spec["verdict"]
    j = out["youden_j"]
    assert j["difference"] == pytest.approx(-6 / n[0])
    assert j["difference_low"] is not None and j["difference_low"] <= j["difference"] <= j["difference_high"]
    assert j["verdict"].startswith("Youden's J: ")


def test_same_result_is_flagged(tmp_path: Path) -> None:
    a = fake_result(FakeSAE("topk", 8, 12, "resid_post"), n_pairs=10, seed=0)
    (tmp_path / "a.json").write_text(a.model_dump_json())
    (tmp_path / "copy.json").write_text(a.model_dump_json())
    assert compare_results(tmp_path / "a.json", tmp_path / "a.json")["same_result"] is True
    assert compare_results(tmp_path / "a.json", tmp_path / "copy.json")["same_result"] is True


def test_results_without_shared_pairs_are_refused(tmp_path: Path) -> None:
    a = fake_result(FakeSAE("topk", 8, 12, "resid_post"), n_pairs=10, seed=0)
    b = a.model_copy(deep=True)
    for row in b.eval_result_details:
        row.id = f"other-{row.id}"
    (tmp_path / "a.json").write_text(a.model_dump_json())
    (tmp_path / "b.json").write_text(b.model_dump_json())
    with pytest.raises(DataError, match="share no pair"):
        compare_results(tmp_path / "a.json", tmp_path / "b.json")
