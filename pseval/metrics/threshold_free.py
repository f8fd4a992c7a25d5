"""Threshold-free similarity scores of the two contexts of a pair, scored with ROC-AUC and average precision.

PS-Eval's top-1 comparison is a hard decision. These scores ask the same question without it: the more
similar the two contexts' codes, the more likely the word means the same in both (label 1).
"""

from __future__ import annotations

import numpy as np
import torch
from numpy.typing import ArrayLike
from pydantic import BaseModel, Field
from sklearn.metrics import average_precision_score, roc_auc_score


def topk_jaccard(feats_a_NF: torch.Tensor, feats_b_NF: torch.Tensor, k: int) -> torch.Tensor:
    """Jaccard overlap of the sets of the k most active (and active, > 0) latents of each row."""
    k = min(k, feats_a_NF.shape[-1])
    top_a = feats_a_NF.topk(k, dim=-1)
    top_b = feats_b_NF.topk(k, dim=-1)
    # Inactive slots get distinct negative ids so they never match anything.
    slots_K = torch.arange(1, k + 1)
    ids_a_NK = torch.where(top_a.values > 0, top_a.indices, -slots_K)
    ids_b_NK = torch.where(top_b.values > 0, top_b.indices, -(slots_K + k))
    inter_N = (ids_a_NK.unsqueeze(-1) == ids_b_NK.unsqueeze(-2)).sum((-1, -2)).float()
    size_a_N = (top_a.values > 0).sum(-1).float()
    size_b_N = (top_b.values > 0).sum(-1).float()
    union_N = size_a_N + size_b_N - inter_N
    return torch.where(union_N > 0, inter_N / union_N.clamp_min(1), torch.zeros_like(union_N))


def cosine_rows(a_ND: torch.Tensor, b_ND: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of corresponding rows (0 where a row is all zero)."""
    dot_N = torch.einsum("nd,nd->n", a_ND, b_ND)
    norms_N = torch.linalg.vector_norm(a_ND, dim=-1) * torch.linalg.vector_norm(b_ND, dim=-1)
    return dot_N / norms_N.clamp_min(1e-12)


class RankingScores(BaseModel):
    """How well a similarity score ranks same-meaning pairs above different-meaning pairs."""

    roc_auc: float | None = Field(
        description="ROC-AUC of the score against label 1 = same meaning (0.5 = chance)."
    )
    average_precision: float | None = Field(
        description="Average precision for label 1 (chance = share of label 1)."
    )


def ranking_scores(labels: ArrayLike, scores: ArrayLike) -> RankingScores:
    """ROC-AUC and average precision (scikit-learn), ``None`` when only one class is present."""
    y = np.asarray(labels).astype(int)
    s = np.asarray(scores, dtype=np.float64)
    if y.size == 0 or np.unique(y).size < 2:
        return RankingScores(roc_auc=None, average_precision=None)
    return RankingScores(
        roc_auc=float(roc_auc_score(y, s)), average_precision=float(average_precision_score(y, s))
    )


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
