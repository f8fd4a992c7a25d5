"""`pseval eval` reports Youden's J beside specificity, the random control's J, and the paired SAE-vs-control test."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from pseval import cli
from pseval.cli import app
from pseval.metrics.uncertainty import WORD_CLUSTERED, mcnemar_exact
from tests.evals.conftest import make_sae

runner = CliRunner()


@pytest.fixture
def result_and_output(
    tmp_path: Path,
    tmp_cache: Path,
    tiny_model_dir: Path,
    tiny_dataset_file: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[dict, str]:
    monkeypatch.setattr(cli.console, "width", 80)  # an 80-column terminal
    sae = make_sae(tmp_path / "sae-j", "standard", "blocks.1.hook_resid_post", seed=5)
    args = ["eval", "--model", str(tiny_model_dir), "--dataset", str(tiny_dataset_file), "--sae", str(sae)]
    args += ["--out", str(tmp_path / "out"), "--bootstrap", "200", "--interpret-tokens", "0"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    (path,) = (tmp_path / "out" / "ps_eval").glob("*_eval_results.json")
    return json.loads(path.read_text()), result.stdout


def test_table_shows_j_with_its_interval_and_the_controls_j(result_and_output: tuple[dict, str]) -> None:
    data, output = result_and_output
    metrics = data["eval_result_metrics"]
    ps, ci, control = metrics["ps_eval"], metrics["ps_eval_ci"], metrics["baseline_random_sae"]
    assert max(len(line) for line in output.splitlines()) <= 80, output
    assert f"{ps['youden_j']:.3f}" in output
    assert f"[{ci['youden_j_low']:.2f}, {ci['youden_j_high']:.2f}]" in output
    random_line = next(line for line in output.splitlines() if "random SAE (" in line)
    assert f"{control['youden_j']:.3f}" in random_line, output
    assert "J = recall + specificity − 1" in output


def test_json_carries_j_balanced_accuracy_and_word_clustered_intervals(
    result_and_output: tuple[dict, str],
) -> None:
    data, _ = result_and_output
    metrics = data["eval_result_metrics"]
    ps, ci = metrics["ps_eval"], metrics["ps_eval_ci"]
    assert ps["youden_j"] == pytest.approx(ps["recall"] + ps["specificity"] - 1)
    assert ps["balanced_accuracy"] == pytest.approx((ps["recall"] + ps["specificity"]) / 2)
    assert ci["interval_method"] == WORD_CLUSTERED
    for name in ("youden_j", "balanced_accuracy", "specificity"):
        assert ci[f"{name}_low"] <= ps[name] <= ci[f"{name}_high"], name
    free = metrics["threshold_free"]
    assert free["code_cosine_roc_auc_low"] <= free["code_cosine_roc_auc"] <= free["code_cosine_roc_auc_high"]
    dense = metrics["baseline_dense"]
    assert dense["roc_auc_low"] <= dense["roc_auc"] <= dense["roc_auc_high"]
    control = metrics["baseline_random_sae"]
    assert control["centring"] == "sae_b_dec"  # pseval's test SAEs subtract b_dec from their input
    assert control["youden_j"] == pytest.approx(control["recall"] + control["specificity"] - 1)


def test_the_control_has_per_pair_rows_and_an_exact_paired_test(result_and_output: tuple[dict, str]) -> None:
    data, _ = result_and_output
    sae_rows = data["eval_result_details"]
    control_rows = data["eval_result_unstructured"]["random_sae_details"]
    assert [r["id"] for r in control_rows] == [r["id"] for r in sae_rows]
    labels = np.array([r["label"] for r in sae_rows])
    for row, label in zip(control_rows, labels, strict=True):
        same = row["latent_1"] == row["latent_2"] and row["latent_1"] != -1
        assert row["predicted_same"] == same and row["correct"] == (same == (label == 1))
    versus = data["eval_result_metrics"]["vs_random_sae"]
    want = mcnemar_exact([r["correct"] for r in sae_rows], [r["correct"] for r in control_rows])
    assert (versus["sae_only_correct"], versus["random_only_correct"]) == (
        want.a_only_correct,
        want.b_only_correct,
    )
    assert versus["accuracy_p_value"] == pytest.approx(want.p_value)
    # A verdict only where the adjusted test is significant and the SAE is ahead.
    assert versus["beats_on_accuracy"] == (
        versus["accuracy_p_holm"] < 0.05 and versus["sae_only_correct"] > versus["random_only_correct"]
    )
