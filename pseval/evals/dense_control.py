"""The dense cosine baseline pair by pair, and the SAE against it on the same pairs (category ``vs_dense``).

The dense baseline reads the hook vectors the SAE encodes and predicts "same meaning" when the cosine of a
pair's two vectors reaches a threshold. That threshold is never fitted on the pairs it predicts: it is the
accuracy-best threshold on the held-out split (``threshold_selection`` "dev split"), or, when there is no
held-out split, each pair is predicted with the threshold that is best on the other folds of a seeded
cross-validation (``cv5``, :mod:`pseval.evals.threshold_cv`). The SAE's top-1 test has no threshold at all.
So the comparison is fair in the sense that neither side has seen the evaluated pairs' labels; it is not
symmetric, since the dense side may use labelled held-out pairs to place its one threshold and the SAE none.

The dense decisions get one row per pair (the SAE's pair ids), stored under
``eval_result_unstructured.dense_details``, and the SAE is compared with them by the same paired tests as
with its random control (:func:`pseval.evals.random_control.compare_with_control`): the exact McNemar test
on the pairs only one of the two classifies correctly, and the paired word-clustered bootstrap of the
difference in Youden's J (and, here, in accuracy), Holm-adjusted as one family.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from numpy.typing import ArrayLike
from pydantic import BaseModel, Field

from pseval.evals.random_control import compare_with_control
from pseval.evals.threshold_cv import cv_decisions, pair_cosines
from pseval.evals.versus import ALPHA, VsDense
from pseval.metrics.ps_eval import confusion_counts
from pseval.metrics.uncertainty import ClusterBootstrap, resampled_metrics

DENSE_DETAILS_KEY = "dense_details"
"""Where the dense baseline's per-pair rows are stored in ``eval_result_unstructured``."""

IN_SAMPLE = "evaluated pairs (in-sample)"
"""``threshold_selection`` of a dense threshold fitted on the very pairs it predicts (favours the dense side)."""


class DensePairDetail(BaseModel):
    """The dense baseline's outcome on one pair (the SAE's own row has the same id)."""

    id: str = Field(description="Pair id.")
    cosine: float = Field(description="Cosine of the two contexts' hook vectors.")
    threshold: float = Field(
        description="The threshold this pair was predicted with (the dev split's, or its fold's under "
        "cross-validation)."
    )
    predicted_same: bool = Field(description="cosine >= threshold.")
    correct: bool = Field(description="predicted_same == (label == 1).")


def dense_decisions(
    acts_PD: torch.Tensor,
    pair_index: list[tuple[int, int]],
    labels: ArrayLike,
    dense: dict[str, Any],
    seed: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per pair: the dense cosine, the threshold it was predicted with, and the decision (cosine >= threshold).

    Rebuilt from the ``baseline_dense`` category exactly as it was computed (its threshold, or its
    cross-validation folds from ``seed``); a decision set whose confusion counts differ from the category's
    raises, so per-pair rows never disagree with the reported dense metrics.
    """
    y = np.asarray(labels)
    scores = pair_cosines(acts_PD, pair_index)
    folds = dense.get("fold_thresholds")
    if folds is not None:
        same, used, _ = cv_decisions(scores, y, seed, len(folds))
    else:
        threshold = dense["threshold"]
        same = scores >= threshold  # the comparison baseline_dense made, in the same dtype
        used = np.full(len(scores), float(threshold))
    counts = dict(zip(("tp", "fp", "tn", "fn"), confusion_counts(y, same), strict=True))
    stored = {key: dense.get(key) for key in counts}
    if counts != stored:
        raise RuntimeError(
            f"the dense baseline's per-pair decisions give {counts}, its metrics say {stored}: "
            "they were computed on different pairs or with a different threshold"
        )
    return scores, used, same


def dense_details(
    pair_ids: Sequence[str], labels: ArrayLike, scores: np.ndarray, used: np.ndarray, same: np.ndarray
) -> list[dict[str, object]]:
    """The dense baseline's per-pair rows, as stored under ``eval_result_unstructured.dense_details``."""
    y = np.asarray(labels)
    return [
        DensePairDetail(
            id=pair_id,
            cosine=round(float(scores[i]), 6),
            threshold=round(float(used[i]), 6),
            predicted_same=bool(same[i]),
            correct=bool(same[i] == (y[i] == 1)),
        ).model_dump()
        for i, pair_id in enumerate(pair_ids)
    ]


def compare_with_dense(
    labels: ArrayLike,
    same_sae: ArrayLike,
    same_dense: ArrayLike,
    words: Sequence[str],
    n_resamples: int,
    confidence_level: float,
    seed: int,
    threshold_selection: str,
) -> VsDense:
    """Paired tests of the SAE against the dense baseline: the random control's tests, plus an accuracy interval."""
    # compare_with_control records which centring its control had; the dense baseline has none.
    tests = compare_with_control(
        labels, same_sae, same_dense, words, n_resamples, confidence_level, seed, "dataset_mean"
    )
    y = np.asarray(labels).astype(bool)
    boot = ClusterBootstrap(y.size, list(words), n_resamples, seed)
    # Same seed and clusters as the J interval: both intervals come from the same paired resamples.
    difference_R = (
        resampled_metrics(boot, y, same_sae)["accuracy"] - resampled_metrics(boot, y, same_dense)["accuracy"]
    )
    accuracy = boot.interval(difference_R, confidence_level)
    j_p = tests.youden_j_p_holm
    j_difference = tests.youden_j_difference
    return VsDense(
        n_pairs=tests.n_pairs,
        threshold_selection=threshold_selection,
        accuracy_difference=tests.accuracy_difference,
        accuracy_difference_low=accuracy.low,
        accuracy_difference_high=accuracy.high,
        sae_only_correct=tests.sae_only_correct,
        dense_only_correct=tests.random_only_correct,
        accuracy_p_value=tests.accuracy_p_value,
        youden_j_difference=j_difference,
        youden_j_difference_low=tests.youden_j_difference_low,
        youden_j_difference_high=tests.youden_j_difference_high,
        youden_j_p_value=tests.youden_j_p_value,
        accuracy_p_holm=tests.accuracy_p_holm,
        youden_j_p_holm=j_p,
        beats_on_accuracy=tests.beats_on_accuracy,
        beats_on_youden_j=tests.beats_on_youden_j,
        below_on_accuracy=bool(
            tests.accuracy_p_holm < ALPHA and tests.random_only_correct > tests.sae_only_correct
        ),
        below_on_youden_j=None
        if j_p is None or j_difference is None
        else bool(j_p < ALPHA and j_difference < 0),
        confidence_level=confidence_level,
        n_resamples=n_resamples,
    )


def score_dense_control(
    acts_PD: torch.Tensor,
    pair_index: list[tuple[int, int]],
    labels: ArrayLike,
    pairs: Sequence[Any],
    same_sae: ArrayLike,
    dense: dict[str, Any],
    config: Any,
    in_sample: bool = False,
) -> tuple[dict[str, Any], list[dict[str, object]]]:
    """The ``vs_dense`` category and the dense baseline's per-pair rows, for one SAE's decisions ``same_sae``.

    ``config`` is the run's :class:`~pseval.evals.config.PSEvalConfig` (seed, resamples, confidence level).
    ``in_sample``: the dense threshold was fitted on the evaluated pairs themselves (a caller that passes the
    evaluated pairs as their own held-out split); said so in ``threshold_selection``, since it favours the
    dense side.
    """
    scores, used, same_dense = dense_decisions(acts_PD, pair_index, labels, dense, config.seed)
    words = [pair.word for pair in pairs]
    selection = str(dense.get("threshold_selection") or _selection_of(dense, in_sample))
    vs = compare_with_dense(
        labels,
        same_sae,
        same_dense,
        words,
        config.bootstrap_resamples,
        config.confidence_level,
        config.seed,
        selection,
    )
    rows = dense_details([pair.id for pair in pairs], labels, scores, used, same_dense)
    return vs.model_dump(), rows


def _selection_of(dense: dict[str, Any], in_sample: bool) -> str:
    folds = dense.get("fold_thresholds")
    if folds is not None:
        return f"cv{len(folds)}"
    return IN_SAMPLE if in_sample else "dev split"
