"""The dense cosine baseline pair by pair, and the paired comparison of the SAE with it (``vs_dense``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pseval.evals.config import PSEvalConfig
from pseval.evals.dense_control import IN_SAMPLE, compare_with_dense, dense_decisions
from pseval.evals.runner import evaluate
from pseval.evals.scoring import dense_baseline
from pseval.evals.threshold_cv import cv_dense_baseline, pair_cosines
from pseval.metrics.ps_eval import confusion_counts, metrics_from_counts
from pseval.metrics.uncertainty import mcnemar_exact
from tests.evals.conftest import make_sae


def test_sae_against_dense_on_a_hand_example() -> None:
    # 24 pairs, two per word. The dense baseline is right on all; the SAE on the first 10 only.
    labels = np.array([1, 0] * 12)
    dense_same = labels == 1
    sae_same = dense_same.copy()
    sae_same[10:] = ~sae_same[10:]
    words = [f"w{i // 2}" for i in range(24)]
    vs = compare_with_dense(labels, sae_same, dense_same, words, 2000, 0.95, 0, "dev split")
    assert (vs.sae_only_correct, vs.dense_only_correct) == (0, 14)
    assert vs.accuracy_p_value == pytest.approx(2 * 0.5**14)
    assert vs.accuracy_difference == pytest.approx(-14 / 24)
    # SAE: recall 5/12, specificity 5/12 → J = -1/6; the dense J is 1.
    assert vs.youden_j_difference == pytest.approx(-1 - 1 / 6)
    assert vs.youden_j_difference_high is not None and vs.youden_j_difference_high < 0
    assert vs.accuracy_difference_high is not None and vs.accuracy_difference_high < 0
    assert vs.accuracy_difference_low is not None and vs.accuracy_difference_low <= -14 / 24
    assert vs.below_on_accuracy and vs.below_on_youden_j
    assert not vs.beats_on_accuracy and vs.beats_on_youden_j is False
    assert vs.threshold_selection == "dev split" and vs.n_pairs == 24


def test_no_verdict_on_a_tie_and_none_without_resamples() -> None:
    labels = np.array([1, 0] * 12)
    right = labels == 1
    words = [f"w{i // 2}" for i in range(24)]
    tie = compare_with_dense(labels, right, right, words, 500, 0.95, 0, "cv5")
    assert tie.accuracy_p_value == 1.0 and not tie.below_on_accuracy and tie.below_on_youden_j is False
    no_bootstrap = compare_with_dense(labels, right, ~right, words, 0, 0.95, 0, "cv5")
    assert no_bootstrap.beats_on_accuracy and no_bootstrap.below_on_youden_j is None
    assert no_bootstrap.accuracy_difference_low is None and no_bootstrap.youden_j_p_value is None


def _acts_and_pairs(seed: int = 0) -> tuple[torch.Tensor, list[tuple[int, int]], np.ndarray]:
    gen = torch.Generator().manual_seed(seed)
    acts = torch.randn(80, 16, generator=gen)
    pairs = [(i, i + 1) for i in range(0, 80, 2)]
    labels = np.array([1 if i % 3 else 0 for i in range(40)])
    acts[1::2][labels == 1] += 1.5 * acts[0::2][labels == 1]  # same-meaning pairs point the same way
    return acts, pairs, labels


def test_cross_validated_decisions_are_the_ones_behind_the_dense_metrics() -> None:
    acts, pairs, labels = _acts_and_pairs()
    dense = cv_dense_baseline(acts, pairs, labels, seed=3)
    assert dense is not None
    scores, used, same = dense_decisions(acts, pairs, labels, dense, seed=3)
    assert metrics_from_counts(*confusion_counts(labels, same)).accuracy == dense["accuracy"]
    assert set(np.unique(used)) <= set(dense["fold_thresholds"])
    assert np.array_equal(same, scores >= used)
    # Per-pair rows that disagree with the reported metrics are refused.
    tampered = dense | {"tp": dense["tp"] + 1, "fn": dense["fn"] - 1}
    with pytest.raises(RuntimeError, match="dense baseline"):
        dense_decisions(acts, pairs, labels, tampered, seed=3)


def test_dev_split_decisions_reuse_the_stored_threshold() -> None:
    acts, pairs, labels = _acts_and_pairs(1)
    held = PromptActivationsLike(acts, pairs, labels)
    dense = dense_baseline(held, held, "h")  # type: ignore[arg-type]
    _, used, same = dense_decisions(acts, pairs, labels, dense, seed=0)
    assert np.array_equal(same, pair_cosines(acts, pairs) >= dense["threshold"])
    assert np.all(used == pytest.approx(dense["threshold"]))
    with pytest.raises(RuntimeError, match="different threshold"):
        dense_decisions(acts, pairs, labels, dense | {"threshold": dense["threshold"] + 0.3}, seed=0)


class PromptActivationsLike:
    def __init__(self, acts: torch.Tensor, pairs: list[tuple[int, int]], labels: np.ndarray) -> None:
        self.acts = {"h": acts}
        self.pair_index = pairs
        self.labels = labels


@pytest.mark.parametrize("split", ["test", "all"])
def test_results_hold_dense_rows_and_the_paired_comparison(
    tmp_path: Path, tmp_cache: Path, tiny_model_dir: Path, tiny_dataset_file: Path, split: str
) -> None:
    sae = make_sae(tmp_path / "saes" / "topk-L1", "topk", "blocks.1.hook_resid_post", seed=1)
    config = PSEvalConfig(
        model_name=str(tiny_model_dir), dataset=str(tiny_dataset_file), split=split, bootstrap_resamples=200
    )
    (result,) = evaluate(str(tiny_model_dir), [sae], config=config, output_folder=tmp_path / "out")
    metrics = result.eval_result_metrics
    dense, vs = metrics["baseline_dense"], metrics["vs_dense"]
    rows = (result.eval_result_unstructured or {})["dense_details"]
    details = result.eval_result_details
    assert [row["id"] for row in rows] == [d.id for d in details]
    labels = np.array([d.label for d in details])
    same_dense = np.array([row["predicted_same"] for row in rows])
    counts = dict(zip(("tp", "fp", "tn", "fn"), confusion_counts(labels, same_dense), strict=True))
    assert counts == {key: dense[key] for key in counts}
    assert all(
        row["correct"] == (row["predicted_same"] == (d.label == 1))
        for row, d in zip(rows, details, strict=True)
    )
    test = mcnemar_exact([d.correct for d in details], [row["correct"] for row in rows])
    assert (vs["sae_only_correct"], vs["dense_only_correct"]) == (test.a_only_correct, test.b_only_correct)
    assert vs["accuracy_p_value"] == test.p_value
    assert vs["threshold_selection"] == dense["threshold_selection"] != IN_SAMPLE
    assert vs["threshold_selection"] == ("dev split" if split == "test" else "cv5")
