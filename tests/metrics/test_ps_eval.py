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
