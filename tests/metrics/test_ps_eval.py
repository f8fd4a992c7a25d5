"""PS-Eval metric formulas on hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pseval.metrics.ps_eval import (
    NO_LATENT,
    confusion_counts,
    metrics_from_counts,
    predict_same,
    ps_eval_metrics,
    top1_latents,
)
from pseval.metrics.threshold_free import best_threshold, ranking_scores, topk_jaccard
from pseval.metrics.uncertainty import bootstrap_intervals, mcnemar_exact


def test_hand_computed_confusion() -> None:
    # labels: 1 = same meaning. latents chosen so that TP=2, FN=1, FP=1, TN=3.
    labels = [1, 1, 1, 0, 0, 0, 0]
    lat1 = [5, 7, 1, 3, 2, 4, 9]
    lat2 = [5, 7, 2, 3, 1, 6, 8]
    m = ps_eval_metrics(labels, lat1, lat2)
    assert (m.tp, m.fn, m.fp, m.tn) == (2, 1, 1, 3)
    assert m.accuracy == pytest.approx(5 / 7)
    assert m.precision == pytest.approx(2 / 3)
    assert m.recall == pytest.approx(2 / 3)
    assert m.specificity == pytest.approx(3 / 4)
    assert m.f1 == pytest.approx(4 / 6)
    assert m.n_pairs == 7 and m.n_same_meaning == 3 and m.n_different_meaning == 4


def test_no_active_latent_never_counts_as_same() -> None:
    # Both contexts silent: the original code's argmax gave latent 0 twice, i.e. "same".
    labels = [1, 0, 1]
    lat1 = [NO_LATENT, NO_LATENT, 4]
    lat2 = [NO_LATENT, NO_LATENT, NO_LATENT]
    m = ps_eval_metrics(labels, lat1, lat2)
    assert m.tp == 0 and m.fp == 0 and m.tn == 1 and m.fn == 2
    assert m.n_pairs_no_active == 3
    assert list(predict_same(lat1, lat2)) == [False, False, False]


def test_top1_of_all_zero_row_is_no_latent() -> None:
    feats = torch.tensor([[0.0, 0.0, 0.0], [0.0, 2.0, 1.0], [3.0, 0.0, 3.5]])
    idx, val = top1_latents(feats)
    assert idx.tolist() == [NO_LATENT, 1, 2]
    assert val.tolist() == pytest.approx([0.0, 2.0, 3.5])


@pytest.mark.parametrize(
    ("counts", "none_fields"),
    [
        ((0, 0, 0, 0), {"accuracy", "precision", "recall", "specificity", "f1"}),
        ((0, 0, 5, 0), {"precision", "recall", "f1"}),  # no same-meaning pairs, nothing predicted same
        ((3, 0, 0, 2), {"specificity"}),  # no different-meaning pairs
    ],
)
def test_empty_denominators_are_none(counts: tuple[int, int, int, int], none_fields: set[str]) -> None:
    m = metrics_from_counts(*counts)
    for name in ("accuracy", "precision", "recall", "specificity", "f1"):
        assert (getattr(m, name) is None) == (name in none_fields), name


def test_confusion_shape_mismatch() -> None:
    with pytest.raises(ValueError):
        confusion_counts([1, 0], [True])


def test_always_same_and_never_same() -> None:
    labels = [1, 1, 0, 0]
    always = ps_eval_metrics(labels, [1, 1, 1, 1], [1, 1, 1, 1])
    assert always.recall == 1.0 and always.specificity == 0.0
    never = ps_eval_metrics(labels, [1, 2, 3, 4], [5, 6, 7, 8])
    assert never.recall == 0.0 and never.specificity == 1.0 and never.precision is None


def test_bootstrap_interval_contains_point_and_is_seeded() -> None:
    rng = np.random.default_rng(1)
    labels = rng.random(400) < 0.5
    same = np.where(labels, rng.random(400) < 0.7, rng.random(400) < 0.2)
    a = bootstrap_intervals(labels, same, n_resamples=500, seed=3)
    b = bootstrap_intervals(labels, same, n_resamples=500, seed=3)
    assert a == b
    point = ps_eval_metrics(labels.astype(int), np.where(same, 1, 2), np.ones(400, dtype=int))
    for name in ("accuracy", "specificity", "recall"):
        low, high = a[name].low, a[name].high
        assert low is not None and high is not None
        assert low <= getattr(point, name) <= high
        assert high - low < 0.2


def test_mcnemar_exact() -> None:
    a = [True] * 10 + [False] * 0 + [True] * 5
    b = [False] * 10 + [True] * 5
    r = mcnemar_exact(a, b)
    assert r.a_only_correct == 10 and r.b_only_correct == 0
    assert r.p_value == pytest.approx(2 * 0.5**10)
    assert mcnemar_exact([True, False], [True, False]).p_value == 1.0


def test_topk_jaccard_hand_computed() -> None:
    a = torch.tensor([[3.0, 2.0, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    b = torch.tensor([[3.0, 0.0, 2.0, 1.0], [0.0, 0.0, 0.0, 0.0]])
    # top-2 of a = {0, 1}, of b = {0, 2}: |∩| = 1, |∪| = 3.
    assert topk_jaccard(a, b, k=2).tolist() == pytest.approx([1 / 3, 0.0])


def test_ranking_scores_and_threshold() -> None:
    labels = [0, 0, 1, 1]
    scores = [0.1, 0.2, 0.8, 0.9]
    r = ranking_scores(labels, scores)
    assert r.roc_auc == 1.0 and r.average_precision == 1.0
    assert 0.2 < best_threshold(labels, scores) < 0.8
    assert ranking_scores([1, 1], [0.1, 0.2]).roc_auc is None


def test_ranking_scores_are_scikit_learns_to_the_last_bits() -> None:
    """The counts-based ROC-AUC and average precision equal scikit-learn's (ties included) to rounding."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    rng = np.random.default_rng(0)
    for trial in range(300):
        n = int(rng.integers(2, 300))
        labels = rng.integers(0, 2, n)
        labels[:2] = [0, 1]
        # Scores with many ties (a few integer values), with none, and rounded (some ties).
        scores = [rng.integers(0, 4, n).astype(float), rng.random(n), np.round(rng.random(n), 2)][trial % 3]
        got = ranking_scores(labels, scores)
        assert got.roc_auc == pytest.approx(roc_auc_score(labels, scores), rel=0, abs=1e-15)
        assert got.average_precision == pytest.approx(
            average_precision_score(labels, scores), rel=0, abs=1e-14
        )


def test_ranking_scores_refuse_non_finite_scores_as_scikit_learn_did() -> None:
    """A NaN or infinite similarity is a bug upstream: ranking it as the highest score would give a number."""
    for bad in (float("nan"), float("inf"), -float("inf")):
        with pytest.raises(ValueError, match="NaN or infinite"):
            ranking_scores([0, 1, 1, 0], [0.1, bad, 0.3, 0.2])


def test_ranking_scores_hand_computed_with_ties() -> None:
    # Same-meaning pairs score 0.9, 0.5; different-meaning 0.5, 0.1: of 4 couples, 3 ordered right, 1 tied.
    r = ranking_scores([1, 1, 0, 0], [0.9, 0.5, 0.5, 0.1])
    assert r.roc_auc == 3.5 / 4
    # Thresholds 0.9 (recall 1/2, precision 1), 0.5 (recall 1, precision 2/3), 0.1 (no recall gained).
    assert r.average_precision == 0.5 * 1 + 0.5 * 2 / 3
