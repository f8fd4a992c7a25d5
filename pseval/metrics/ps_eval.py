"""PS-Eval's confusion metrics from the top-1 latents of the two contexts of each pair.

Positive class = same meaning (label 1). A pair is *predicted same* when both contexts have an active latent
and their top-1 latents are equal. A context where no latent is active has no top feature: unlike the
original code (where ``argmax`` of an all-zero vector is latent 0, so two silent contexts counted as "same"),
such a pair is always predicted *different*, and it is counted in ``n_pairs_no_active``.

When more than :data:`MOSTLY_NO_ACTIVE` of the pairs have no top latent, the confusion metrics describe the
forced "different" rather than the SAE (a dead SAE scores specificity 1 and recall 0):
:func:`mostly_no_active` marks such a result and the tables flag it beside the score.

Every ratio with an empty denominator is ``None`` (JSON ``null``), never a division by zero.

Specificity, recall, precision and F1 are the paper's. Specificity alone rewards a code that rarely gives two
contexts the same top latent, whatever their meaning: it rises as recall falls. Youden's J (recall +
specificity − 1) and balanced accuracy (their mean) weigh both classes, so a specificity bought with recall
does not read as a better SAE: J = 0 is a classifier that ignores the meaning (a constant answer, or a coin
of any bias), whatever its specificity.
"""

from __future__ import annotations

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray
from pydantic import BaseModel, Field

from pseval.metrics.registry import metric_field, register_metrics

NO_LATENT = -1
"""Top-latent index of a context where no latent is active."""

MOSTLY_NO_ACTIVE = 0.5
"""Share of pairs without a top latent above which a result is flagged: most of its predictions are forced."""


def mostly_no_active(n_pairs_no_active: int | None, n_pairs: int | None) -> bool:
    """Whether more than :data:`MOSTLY_NO_ACTIVE` of the pairs have a context with no active latent."""
    if not n_pairs or n_pairs_no_active is None:
        return False
    return n_pairs_no_active / n_pairs > MOSTLY_NO_ACTIVE


class TopLatents(BaseModel):
    """Top-1 latent of each context, as plain lists (index -1 = no active latent)."""

    index: list[int]
    value: list[float]


def top1_latents(feats_NF: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Index and value of the most active latent of each row; index ``NO_LATENT`` where none is active (> 0)."""
    value_N, index_N = feats_NF.max(dim=-1)
    index_N = torch.where(value_N > 0, index_N, torch.full_like(index_N, NO_LATENT))
    return index_N, value_N


def predict_same(latent_1: ArrayLike, latent_2: ArrayLike) -> NDArray[np.bool_]:
    """Same top latent, and an active one, in both contexts."""
    l1 = np.asarray(latent_1)
    l2 = np.asarray(latent_2)
    return (l1 == l2) & (l1 != NO_LATENT) & (l2 != NO_LATENT)


NO_ACTIVE_FIELDS = frozenset({"n_pairs_no_active", "share_pairs_no_active"})
"""The fields about contexts without an active latent (absent from scores that have no latents)."""


class ConfusionRatios(BaseModel):
    """PS-Eval's ratios (positive class = same meaning): what the SAE, its baselines and controls are scored by."""

    accuracy: float | None = metric_field("Accuracy", "(TP + TN) / pairs.", direction="higher", interval=True)
    precision: float | None = metric_field(
        "Precision",
        "TP / (TP + FP): of the pairs given one latent, how many mean the same.",
        direction="higher",
        interval=True,
    )
    recall: float | None = metric_field(
        "Recall",
        "TP / (TP + FN): same-meaning pairs given the same latent.",
        direction="higher",
        interval=True,
    )
    specificity: float | None = metric_field(
        "Specificity",
        "TN / (TN + FP): different-meaning pairs given different latents (the headline metric).",
        direction="higher",
        interval=True,
    )
    f1: float | None = metric_field("F1", "2TP / (2TP + FP + FN).", direction="higher", interval=True)
    youden_j: float | None = metric_field(
        "Youden's J",
        "Youden's J = recall + specificity − 1: 0 for any predictor blind to the meaning (however "
        "specific), 1 for a perfect one, < 0 worse than chance. Null when a class has no pair.",
        direction="higher",
        format="signed_ratio",
        interval=True,
    )
    balanced_accuracy: float | None = metric_field(
        "Balanced accuracy",
        "(recall + specificity) / 2 = (J + 1) / 2: accuracy with both classes weighted equally "
        "(0.5 = chance). Null when a class has no pair.",
        direction="higher",
        interval=True,
    )


class PSEvalMetrics(ConfusionRatios):
    """PS-Eval's metrics for one SAE (positive class = same meaning)."""

    tp: int = Field(description="Same meaning, same top latent.")
    fp: int = Field(description="Different meaning, same top latent.")
    tn: int = Field(description="Different meaning, different top latents.")
    fn: int = Field(description="Same meaning, different top latents.")
    n_pairs: int = Field(description="Pairs evaluated.")
    n_same_meaning: int = Field(description="Pairs with label 1 (same meaning).")
    n_different_meaning: int = Field(description="Pairs with label 0 (different meaning).")
    n_pairs_no_active: int = Field(
        description="Pairs where at least one context has no active latent (always predicted 'different')."
    )
    share_pairs_no_active: float | None = Field(
        default=None,
        description="n_pairs_no_active / n_pairs; above 0.5 the metrics mostly count forced 'different' "
        "predictions and the result is flagged.",
    )


def _ratio(numerator: int, denominator: int) -> float | None:
    return None if denominator == 0 else numerator / denominator


def confusion_counts(labels: ArrayLike, same: ArrayLike) -> tuple[int, int, int, int]:
    """``(tp, fp, tn, fn)`` with label 1 = same meaning and ``same`` = predicted same latent."""
    y = np.asarray(labels).astype(bool)
    p = np.asarray(same).astype(bool)
    if y.shape != p.shape:
        raise ValueError(f"labels {y.shape} and predictions {p.shape} differ in shape")
    tp = int(np.sum(y & p))
    fp = int(np.sum(~y & p))
    tn = int(np.sum(~y & ~p))
    fn = int(np.sum(y & ~p))
    return tp, fp, tn, fn


def youden_j(recall: float | None, specificity: float | None) -> float | None:
    """Recall + specificity − 1 (``None`` when either is undefined)."""
    return None if recall is None or specificity is None else recall + specificity - 1.0


def balanced_accuracy(recall: float | None, specificity: float | None) -> float | None:
    """(Recall + specificity) / 2 (``None`` when either is undefined)."""
    return None if recall is None or specificity is None else (recall + specificity) / 2.0


def metrics_from_counts(tp: int, fp: int, tn: int, fn: int, n_pairs_no_active: int = 0) -> PSEvalMetrics:
    """All PS-Eval metrics from the four confusion counts."""
    n = tp + fp + tn + fn
    recall = _ratio(tp, tp + fn)
    specificity = _ratio(tn, tn + fp)
    return PSEvalMetrics(
        accuracy=_ratio(tp + tn, n),
        precision=_ratio(tp, tp + fp),
        recall=recall,
        specificity=specificity,
        f1=_ratio(2 * tp, 2 * tp + fp + fn),
        youden_j=youden_j(recall, specificity),
        balanced_accuracy=balanced_accuracy(recall, specificity),
        tp=tp,
        fp=fp,
        tn=tn,
        fn=fn,
        n_pairs=n,
        n_same_meaning=tp + fn,
        n_different_meaning=tn + fp,
        n_pairs_no_active=n_pairs_no_active,
        share_pairs_no_active=_ratio(n_pairs_no_active, n),
    )


def ps_eval_metrics(labels: ArrayLike, latent_1: ArrayLike, latent_2: ArrayLike) -> PSEvalMetrics:
    """PS-Eval metrics from labels and the top-1 latent index of each context (``NO_LATENT`` = none active)."""
    l1 = np.asarray(latent_1)
    l2 = np.asarray(latent_2)
    same = predict_same(l1, l2)
    no_active = int(np.sum((l1 == NO_LATENT) | (l2 == NO_LATENT)))
    return metrics_from_counts(*confusion_counts(labels, same), n_pairs_no_active=no_active)


METRIC_NAMES: tuple[str, ...] = tuple(
    key for key, spec in register_metrics(ConfusionRatios).items() if spec.interval
)
"""Every ratio of :class:`PSEvalMetrics` (the metrics it declares with an interval), in the order intervals are
reported."""


def metrics_from_count_arrays(
    tp: NDArray[np.float64], fp: NDArray[np.float64], tn: NDArray[np.float64], fn: NDArray[np.float64]
) -> dict[str, NDArray[np.float64]]:
    """Every ratio of :data:`METRIC_NAMES` from arrays of (possibly weighted) counts; NaN where undefined."""
    with np.errstate(divide="ignore", invalid="ignore"):
        recall = tp / (tp + fn)
        specificity = tn / (tn + fp)
        return {
            "accuracy": (tp + tn) / (tp + fp + tn + fn),
            "precision": tp / (tp + fp),
            "recall": recall,
            "specificity": specificity,
            "f1": 2 * tp / (2 * tp + fp + fn),
            "youden_j": recall + specificity - 1.0,
            "balanced_accuracy": (recall + specificity) / 2.0,
        }


def confusion_indicators(labels: ArrayLike, same: ArrayLike) -> NDArray[np.float64]:
    """One row per pair, one column per count ``(tp, fp, tn, fn)``: 1 where the pair is of that kind."""
    y = np.asarray(labels).astype(bool)
    p = np.asarray(same).astype(bool)
    if y.shape != p.shape:
        raise ValueError(f"labels {y.shape} and predictions {p.shape} differ in shape")
    return np.stack([y & p, ~y & p, ~y & ~p, y & ~p], axis=-1).astype(np.float64)


def metric_arrays(labels_RN: NDArray[np.bool_], same_RN: NDArray[np.bool_]) -> dict[str, NDArray[np.float64]]:
    """Vectorised metrics over R resamples (rows) of N pairs; NaN where a denominator is zero."""
    counts = confusion_indicators(labels_RN, same_RN).sum(axis=-2)
    return metrics_from_count_arrays(*np.moveaxis(counts, -1, 0))
