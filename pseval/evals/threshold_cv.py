"""The dense baseline's cosine threshold chosen by seeded k-fold cross-validation on the evaluated pairs.

Used when no held-out split exists (``--split all``, or a custom ``.jsonl`` with only test pairs): each pair is
predicted with the threshold that is best on the other folds, so no pair is scored by a threshold fitted on
itself. The reported threshold is the median of the folds' thresholds.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from pseval.metrics.ps_eval import NO_ACTIVE_FIELDS, confusion_counts, metrics_from_counts
from pseval.metrics.threshold_free import best_threshold, cosine_rows, ranking_scores

CV_FOLDS = 5
"""Folds of the cross-validated threshold (fewer when a label has fewer pairs)."""


def pair_cosines(acts_PD: torch.Tensor, pair_index: list[tuple[int, int]]) -> np.ndarray:
    """Cosine of the two contexts' hook vectors, per pair."""
    i1 = torch.tensor([a for a, _ in pair_index], dtype=torch.long)
    i2 = torch.tensor([b for _, b in pair_index], dtype=torch.long)
    return cosine_rows(acts_PD[i1], acts_PD[i2]).numpy()


def cv_decisions(
    scores: np.ndarray, labels: np.ndarray, seed: int, n_splits: int
) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """Each pair's "same" decision by the threshold best on the other folds: (decisions, the threshold each
    pair was predicted with, the folds' thresholds)."""
    from sklearn.model_selection import StratifiedKFold

    labels = np.asarray(labels, dtype=np.int64)
    same = np.zeros(len(labels), dtype=bool)
    used = np.zeros(len(labels), dtype=np.float64)
    thresholds = []
    splitter = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    for fit_idx, test_idx in splitter.split(scores.reshape(-1, 1), labels):
        threshold = best_threshold(labels[fit_idx], scores[fit_idx])
        thresholds.append(float(threshold))
        same[test_idx] = scores[test_idx] >= threshold
        used[test_idx] = threshold
    return same, used, thresholds


def cv_dense_baseline(
    acts_PD: torch.Tensor,
    pair_index: list[tuple[int, int]],
    labels: np.ndarray,
    seed: int,
    folds: int = CV_FOLDS,
) -> dict[str, Any] | None:
    """The dense baseline with a cross-validated threshold; None when a label has fewer than two pairs."""
    labels = np.asarray(labels, dtype=np.int64)
    n_splits = min(folds, int(np.bincount(labels, minlength=2).min()))
    if n_splits < 2:
        return None
    scores = pair_cosines(acts_PD, pair_index)
    same, _, thresholds = cv_decisions(scores, labels, seed, n_splits)
    metrics = metrics_from_counts(*confusion_counts(labels, same))
    ranking = ranking_scores(labels, scores)
    return {
        **{k: v for k, v in metrics.model_dump().items() if k not in NO_ACTIVE_FIELDS},
        "threshold": float(np.median(thresholds)),
        "fold_thresholds": thresholds,
        "threshold_selection": f"cv{n_splits}",
        "roc_auc": ranking.roc_auc,
        "average_precision": ranking.average_precision,
        "cosine_mean": float(scores.mean()) if scores.size else None,
        "cosine_std": float(scores.std()) if scores.size else None,
    }
