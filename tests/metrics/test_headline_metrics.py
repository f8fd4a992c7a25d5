"""Youden's J and balanced accuracy, word-clustered bootstrap intervals, ROC-AUC intervals and Holm's correction."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score

from pseval.metrics.ps_eval import metric_arrays, metrics_from_counts, ps_eval_metrics
from pseval.metrics.threshold_free import resampled_roc_auc, roc_auc_interval
from pseval.metrics.uncertainty import (
    PAIR_RESAMPLED,
    WORD_CLUSTERED,
    ClusterBootstrap,
    bootstrap_intervals,
    holm,
)


def test_youden_j_and_balanced_accuracy_from_confusion_counts() -> None:
    # recall = 30 / 50 = 0.6, specificity = 40 / 50 = 0.8.
    m = metrics_from_counts(tp=30, fp=10, tn=40, fn=20)
    assert m.youden_j == pytest.approx(0.4)
    assert m.balanced_accuracy == pytest.approx(0.7)
    # The paper's ratios are unchanged by the new fields.
    assert (m.recall, m.specificity, m.precision) == (0.6, 0.8, 0.75)
    assert m.f1 == pytest.approx(60 / 90) and m.accuracy == 0.7


@pytest.mark.parametrize(("tp", "fp", "tn", "fn"), [(0, 0, 50, 50), (50, 50, 0, 0), (10, 10, 40, 40)])
def test_specificity_bought_with_recall_scores_zero(tp: int, fp: int, tn: int, fn: int) -> None:
    # Never "same" (specificity 1), always "same" (specificity 0), or a coin saying "same" one time in five (recall 0.2, specificity 0.8): all blind to meaning.
    m = metrics_from_counts(tp=tp, fp=fp, tn=tn, fn=fn)
    assert m.youden_j == pytest.approx(0.0) and m.balanced_accuracy == pytest.approx(0.5)


def test_undefined_when_a_class_is_missing() -> None:
    m = metrics_from_counts(tp=3, fp=0, tn=0, fn=1)
    assert m.specificity is None and m.youden_j is None and m.balanced_accuracy is None


def test_vectorised_metrics_agree_with_the_scalar_ones() -> None:
    rng = np.random.default_rng(0)
    labels = rng.random((5, 60)) < 0.5
    same = rng.random((5, 60)) < 0.4
    arrays = metric_arrays(labels, same)
    for r in range(5):
        scalar = ps_eval_metrics(labels[r].astype(int), np.where(same[r], 1, 2), np.ones(60, dtype=int))
        for name in ("youden_j", "balanced_accuracy", "specificity", "f1"):
            assert arrays[name][r] == pytest.approx(getattr(scalar, name))


def _words_with_identical_pairs(n_words: int, pairs_per_word: int, seed: int) -> tuple[np.ndarray, ...]:
    """Each word's pairs share one label and one prediction: the pairs of a word carry one observation."""
    rng = np.random.default_rng(seed)
    word_label = rng.random(n_words) < 0.5
    word_same = np.where(word_label, rng.random(n_words) < 0.7, rng.random(n_words) < 0.3)
    words = np.repeat(np.arange(n_words), pairs_per_word)
    return word_label[words], word_same[words], words


def _width(interval: object) -> float:
    low, high = interval.low, interval.high  # type: ignore[attr-defined]
    assert low is not None and high is not None
    return float(high - low)


def test_clustered_intervals_are_wider_when_a_words_pairs_move_together() -> None:
    labels, same, words = _words_with_identical_pairs(n_words=60, pairs_per_word=8, seed=1)
    pairs = bootstrap_intervals(labels, same, n_resamples=2000, seed=0)
    clustered = bootstrap_intervals(labels, same, n_resamples=2000, seed=0, clusters=words)
    for name in ("accuracy", "specificity", "recall", "youden_j", "balanced_accuracy"):
        # Eight copies of one observation: the pair bootstrap's interval is about sqrt(8) ≈ 2.8 times too narrow.
        assert _width(clustered[name]) > 2.0 * _width(pairs[name]), name


def test_one_pair_per_word_is_the_pair_bootstrap() -> None:
    rng = np.random.default_rng(2)
    labels = rng.random(500) < 0.5
    same = np.where(labels, rng.random(500) < 0.6, rng.random(500) < 0.3)
    words = [f"w{i}" for i in rng.permutation(500)]
    clustered = bootstrap_intervals(labels, same, n_resamples=2000, seed=5, clusters=words)
    plain = bootstrap_intervals(labels, same, n_resamples=2000, seed=5)

    def statistic(y: np.ndarray, p: np.ndarray, axis: int = -1) -> np.ndarray:
        values = metric_arrays(np.moveaxis(y, axis, -1), np.moveaxis(p, axis, -1))
        return np.stack([values["youden_j"], values["accuracy"]])

    reference = stats.bootstrap(
        (labels, same), statistic, paired=True, vectorized=True, n_resamples=4000, method="percentile",
        rng=np.random.default_rng(11),
    ).confidence_interval  # fmt: skip
    for i, name in enumerate(("youden_j", "accuracy")):
        # Same resampling distribution as an independent pair bootstrap (scipy's), to Monte Carlo error.
        assert clustered[name].low == pytest.approx(reference.low[i], abs=0.02)
        assert clustered[name].high == pytest.approx(reference.high[i], abs=0.02)
        assert _width(clustered[name]) == pytest.approx(_width(plain[name]), abs=0.02)


def test_resamples_keep_words_whole_and_are_seeded() -> None:
    words = np.array(["a", "a", "a", "b", "c", "c"])
    boot = ClusterBootstrap(6, words, n_resamples=300, seed=4)
    assert boot.method == WORD_CLUSTERED and ClusterBootstrap(6, None).method == PAIR_RESAMPLED
    weights = np.concatenate(list(boot.weights()))
    assert weights.shape == (300, 3) and np.all(weights.sum(1) == 3)  # three words drawn per resample
    # A resample's count of a word's pairs is its draws times its pairs: "a" always contributes 3 at a time.
    per_pair = boot.resampled_sums(np.ones(6))
    assert np.array_equal(per_pair, weights @ np.array([3.0, 1.0, 2.0]))
    again = np.concatenate(list(ClusterBootstrap(6, words, n_resamples=300, seed=4).weights()))
    assert np.array_equal(weights, again)


def test_resampled_roc_auc_is_the_weighted_roc_auc() -> None:
    rng = np.random.default_rng(3)
    labels = rng.random(200) < 0.5
    scores = np.round(rng.random(200) + 0.4 * labels, 1)  # rounding makes ties
    words = rng.integers(0, 40, 200)
    boot = ClusterBootstrap(200, words, n_resamples=20, seed=0)
    got = resampled_roc_auc(boot, labels, scores)
    weights = next(boot.weights())[:, boot.cluster_of_pair]
    want = [roc_auc_score(labels, scores, sample_weight=w) for w in weights]
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_roc_auc_interval_is_clustered_and_contains_the_point() -> None:
    labels, _, words = _words_with_identical_pairs(n_words=50, pairs_per_word=6, seed=7)
    rng = np.random.default_rng(8)
    word_score = rng.random(50)
    scores = word_score[words] + 0.6 * labels  # pairs of a word share their score
    point = roc_auc_score(labels, scores)
    clustered = roc_auc_interval(labels, scores, ClusterBootstrap(300, words, 2000, 0))
    plain = roc_auc_interval(labels, scores, ClusterBootstrap(300, None, 2000, 0))
    assert clustered.low is not None and clustered.high is not None
    assert clustered.low <= point <= clustered.high
    assert _width(clustered) > 1.8 * _width(plain)
    assert roc_auc_interval(labels, scores, ClusterBootstrap(300, words, 0, 0)).low is None


def test_holm_on_a_hand_example() -> None:
    # Sorted: 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04; made monotone: 0.06 for the last.
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(holm([0.5, 0.9]), [1.0, 1.0])  # capped at 1
    assert holm([]).size == 0
    with pytest.raises(ValueError, match="p-values"):
        holm([0.2, 1.5])
