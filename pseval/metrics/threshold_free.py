"""Threshold-free similarity scores of the two contexts of a pair, scored with ROC-AUC and average precision.

PS-Eval's top-1 comparison is a hard decision. These scores ask the same question without it: the more
similar the two contexts' codes, the more likely the word means the same in both (label 1).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray
from pydantic import BaseModel, Field

from pseval.metrics.uncertainty import ClusterBootstrap, Interval

# scipy is imported where it is used (the bootstrap): every eval imports this module, and scipy takes half a
# second to import.


def topk_jaccard(feats_a_NF: torch.Tensor, feats_b_NF: torch.Tensor, k: int) -> torch.Tensor:
    """Jaccard overlap of the sets of the k most active (and active, > 0) latents of each row.

    Ties at the k-th value go to the lower latent index (as in the block-wise computation).
    """
    from pseval.sae.lazy import block_topk

    top_a = block_topk(feats_a_NF, 0, k, positive_only=True)
    top_b = block_topk(feats_b_NF, 0, k, positive_only=True)
    return jaccard_of_top(*top_a, *top_b)


def jaccard_of_top(
    values_a_NK: torch.Tensor, ids_a_NK: torch.Tensor, values_b_NK: torch.Tensor, ids_b_NK: torch.Tensor
) -> torch.Tensor:
    """Jaccard overlap of two rows' top latents (``ids``), counting only those with value > 0."""
    k_a, k_b = ids_a_NK.shape[-1], ids_b_NK.shape[-1]
    # Inactive slots get distinct negative ids so they never match anything.
    ids_a_NK = torch.where(values_a_NK > 0, ids_a_NK, -torch.arange(1, k_a + 1))
    ids_b_NK = torch.where(values_b_NK > 0, ids_b_NK, -torch.arange(k_a + 1, k_a + k_b + 1))
    inter_N = (ids_a_NK.unsqueeze(-1) == ids_b_NK.unsqueeze(-2)).sum((-1, -2)).float()
    size_a_N = (values_a_NK > 0).sum(-1).float()
    size_b_N = (values_b_NK > 0).sum(-1).float()
    union_N = size_a_N + size_b_N - inter_N
    return torch.where(union_N > 0, inter_N / union_N.clamp_min(1), torch.zeros_like(union_N))


def cosine_from_sums(dot_N: torch.Tensor, sq_a_N: torch.Tensor, sq_b_N: torch.Tensor) -> torch.Tensor:
    """Cosine from float64 sums of products and of squares (0 where a row is all zero), as float32."""
    norms_N = sq_a_N.sqrt() * sq_b_N.sqrt()
    return (dot_N / norms_N.clamp_min(1e-12)).float()


def cosine_rows(a_ND: torch.Tensor, b_ND: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of corresponding rows (0 where a row is all zero).

    Products in the inputs' dtype, sums in float64: the same number, to float32 rounding, whether a row is
    summed at once or in blocks.
    """
    dot_N = (a_ND * b_ND).sum(-1, dtype=torch.float64)
    sq_a_N = (a_ND * a_ND).sum(-1, dtype=torch.float64)
    sq_b_N = (b_ND * b_ND).sum(-1, dtype=torch.float64)
    return cosine_from_sums(dot_N, sq_a_N, sq_b_N)


class RankingScores(BaseModel):
    """How well a similarity score ranks same-meaning pairs above different-meaning pairs."""

    roc_auc: float | None = Field(
        description="ROC-AUC of the score against label 1 = same meaning (0.5 = chance)."
    )
    average_precision: float | None = Field(
        description="Average precision for label 1 (chance = share of label 1)."
    )


def ranking_scores(labels: ArrayLike, scores: ArrayLike) -> RankingScores:
    """ROC-AUC and average precision, ``None`` when only one class is present.

    The same quantities as scikit-learn's ``roc_auc_score`` and ``average_precision_score`` (the tests hold
    them to it), computed here from integer counts per distinct score: every eval scores a few of these, and
    importing scikit-learn's metrics takes about a second, a tenth of a one-SAE run.
    """
    y = np.asarray(labels).astype(int)
    s = np.asarray(scores, dtype=np.float64)
    if not np.isfinite(s).all():  # scikit-learn refused them too; ranked, a NaN would count as the top score
        raise ValueError("ranking scores hold NaN or infinite values")
    if y.size == 0 or np.unique(y).size < 2:
        return RankingScores(roc_auc=None, average_precision=None)
    # Pairs of each class per distinct score, in increasing score order.
    _, bin_of_pair = np.unique(s, return_inverse=True)
    bin_of_pair = bin_of_pair.reshape(-1)
    pos_K = np.bincount(bin_of_pair[y == 1], minlength=int(bin_of_pair.max()) + 1).astype(np.int64)
    neg_K = np.bincount(bin_of_pair[y != 1], minlength=pos_K.size).astype(np.int64)
    return RankingScores(roc_auc=_roc_auc(pos_K, neg_K), average_precision=_average_precision(pos_K, neg_K))


def _roc_auc(pos_K: NDArray[np.int64], neg_K: NDArray[np.int64]) -> float:
    """The Mann–Whitney form: the share of (positive, negative) couples the score orders right, ties one half.

    Twice the count is an integer, so the result is the exact ratio rounded once.
    """
    neg_below_K = np.cumsum(neg_K) - neg_K
    twice_right = int(np.sum(pos_K * (2 * neg_below_K + neg_K)))
    return twice_right / (2 * int(pos_K.sum()) * int(neg_K.sum()))


def _average_precision(pos_K: NDArray[np.int64], neg_K: NDArray[np.int64]) -> float:
    """Step-wise area under the precision-recall curve: the sum over thresholds (each distinct score, highest
    first) of the recall gained times the precision there. Each term is a ratio of integers rounded once, and
    the terms are summed exactly (``math.fsum``)."""
    tp_K = np.cumsum(pos_K[::-1])  # predicted positive: the score at or above each threshold
    fp_K = np.cumsum(neg_K[::-1])
    gained_K = pos_K[::-1]
    n_pos = int(tp_K[-1])
    return math.fsum(
        int(g) * int(tp) / (n_pos * int(tp + fp)) for g, tp, fp in zip(gained_K, tp_K, fp_K, strict=True) if g
    )


def resampled_roc_auc(boot: ClusterBootstrap, labels: ArrayLike, scores: ArrayLike) -> NDArray[np.float64]:
    """ROC-AUC on every resample of ``boot`` (``R`` values; NaN where a resample lacks a class).

    The Mann–Whitney form with each pair weighted by how often its word was drawn: the share of
    (same, different) pair couples whose same-meaning pair scores higher, ties counting one half. Scores
    are binned by distinct value once; a resample's weight per bin is one sparse matrix product.
    """
    from scipy import sparse

    y = np.asarray(labels).astype(bool)
    s = np.asarray(scores, dtype=np.float64)
    distinct, bin_of_pair = np.unique(s, return_inverse=True)
    n_bins = distinct.size
    samples: list[NDArray[np.float64]] = []
    if n_bins == 0:
        return np.full(boot.n_resamples, np.nan)

    def per_cluster_bins(mask: NDArray[np.bool_]) -> sparse.csr_matrix:
        # Cluster × bin: how many pairs of the class in that cluster score that value.
        shape = (boot.n_clusters, n_bins)
        ones = np.ones(int(mask.sum()))
        return sparse.csr_matrix(
            (ones, (boot.cluster_of_pair[mask], bin_of_pair.reshape(-1)[mask])), shape=shape
        )

    pos_CK, neg_CK = per_cluster_bins(y), per_cluster_bins(~y)
    for w_RC in boot.weights(width=n_bins):
        pos_RK = np.asarray((pos_CK.T @ w_RC.T).T)
        neg_RK = np.asarray((neg_CK.T @ w_RC.T).T)
        neg_below_RK = np.cumsum(neg_RK, axis=1) - neg_RK / 2.0
        with np.errstate(divide="ignore", invalid="ignore"):
            samples.append((pos_RK * neg_below_RK).sum(1) / (pos_RK.sum(1) * neg_RK.sum(1)))
    return np.concatenate(samples) if samples else np.zeros(0)


def roc_auc_interval(
    labels: ArrayLike, scores: ArrayLike, boot: ClusterBootstrap, confidence_level: float = 0.95
) -> Interval:
    """Percentile bootstrap interval of the ROC-AUC over the resamples of ``boot`` (null bounds if undefined)."""
    if boot.n_resamples <= 0 or boot.n_pairs < 2:
        return Interval(low=None, high=None)
    return boot.interval(resampled_roc_auc(boot, labels, scores), confidence_level)


def best_threshold(labels: ArrayLike, scores: ArrayLike) -> float:
    """The threshold on ``scores`` (predict same when score >= threshold) that maximises accuracy."""
    y = np.asarray(labels).astype(bool)
    s = np.asarray(scores, dtype=np.float64)
    if s.size == 0:
        return 0.0
    candidates = np.unique(s)
    # Midpoints between consecutive distinct scores, plus both ends, cover every distinct decision.
    mids = (candidates[:-1] + candidates[1:]) / 2 if candidates.size > 1 else candidates
    grid = np.concatenate([[candidates[0] - 1e-9], mids, [candidates[-1] + 1e-9]])
    acc = [(np.mean((s >= t) == y), -abs(t)) for t in grid]
    return float(grid[int(np.argmax([a for a, _ in acc]))])
