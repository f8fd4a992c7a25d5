"""The ``wordform`` result category: word form vs meaning (WordNet 2 x 2 design) for one SAE and its baselines.

Computed when the evaluated pairs carry a ``cell`` (``--dataset wordnet-2x2``), from per-pair values only:

- ``sae``: the SAE's codes, from the values its ``eval_result_details`` record (``predicted_same``,
  ``jaccard``, ``code_cosine``, rounded to 1e-6), so the category can be recomputed from the result file;
- ``dense``: the raw hook vectors: top-k overlap (the k largest positive coordinates, as for codes) and
  cosine. ``share_same_top_latent`` is null: a dense vector has no sparse top latent, and the argmax
  coordinate of a residual vector is not a comparable "same feature" test;
- ``random_sae``: the random SAE of the same width (present with the baselines).

Each holds the per-cell means and the effects with bootstrap intervals of :mod:`pseval.metrics.wordform`.

The nested category is stored in ``eval_result_unstructured["wordform"]``; ``eval_result_metrics`` gets it
flattened (:func:`flat_wordform_metrics`: ``wordform`` for the SAE, ``wordform_dense`` and
``wordform_random_sae``, one number per key), because SAEBench's metric categories must be flat. Files
written before kept the nested category in ``eval_result_metrics``;
:func:`pseval.evals.schema.stored_wordform` reads both.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel, Field

from pseval.evals.config import PSEvalConfig
from pseval.evals.schema import PairDetail
from pseval.metrics.threshold_free import cosine_rows, topk_jaccard
from pseval.metrics.wordform import wordform_metrics

DENSE_TOP1_NOTE = (
    "share_same_top_latent is null for the dense activations: a dense vector has no sparse top latent"
)


class Estimate(BaseModel):
    """A point estimate with its interval (all null where a cell has no pair)."""

    value: float | None = Field(description="The estimate.")
    low: float | None = Field(description="Lower bound of its interval (the category's confidence level).")
    high: float | None = Field(description="Upper bound of its interval.")


class Separation(BaseModel):
    """One two-cell effect on scales that do not depend on the base rate (see :mod:`pseval.metrics.wordform`)."""

    higher_cell: str = Field(description="The cell expected to overlap more (the effect's minuend).")
    lower_cell: str = Field(description="The cell expected to overlap less (the effect's subtrahend).")
    n_higher: int = Field(description="Pairs in the higher cell.")
    n_lower: int = Field(description="Pairs in the lower cell.")
    auc: dict[str, Estimate] = Field(
        description="Measure -> ROC-AUC of telling a higher-cell pair from a lower-cell pair by the measure "
        "(0.5: no separation; ties count half), with a DeLong interval."
    )
    log_odds_ratio_same_top_latent: Estimate | None = Field(
        description="Log odds ratio of 'same top-1 latent' in the higher vs the lower cell (0.5 added to each "
        "count), with Woolf's interval; null for representations without a top latent (dense)."
    )


class WordformScores(BaseModel):
    """Per-cell overlap and the effects of one representation (see :mod:`pseval.metrics.wordform`)."""

    cells: dict[str, dict[str, Any]] = Field(
        description="Cell -> n_pairs and, per measure (share_same_top_latent, topk_overlap, code_cosine), the "
        "mean with <measure>_low/<measure>_high bootstrap bounds (null where a cell has no pair)."
    )
    effects: dict[str, dict[str, Any]] = Field(
        description="Effect -> minuend and subtrahend cells and, per measure, the difference of cell means "
        "with bounds. word_effect = same_word_same_sense - different_word_same_sense (sharing the word at a "
        "fixed meaning); meaning_effect = same_word_same_sense - same_word_different_sense (sharing the "
        "meaning at a fixed word)."
    )
    separation: dict[str, Separation] | None = Field(
        default=None,
        description="Effect -> the same contrast as a ROC-AUC per measure and a log odds ratio of the same "
        "top latent, which unlike a difference of shares do not depend on the base rate (null in results "
        "stored before they were computed; word_effect_substitution, against a constant, has none).",
    )


class WordformCategory(BaseModel):
    """The ``wordform`` category of a result."""

    topk_overlap_k: int = Field(description="k of the top-k overlap.")
    confidence_level: float = Field(description="Confidence level of the intervals.")
    n_resamples: int = Field(description="Bootstrap resamples (cells resampled independently, seeded).")
    sae: WordformScores = Field(description="The SAE's codes.")
    dense: WordformScores | None = Field(
        default=None, description="Raw hook vectors (top-1 share null: " + DENSE_TOP1_NOTE + ")."
    )
    random_sae: WordformScores | None = Field(
        default=None, description="Random SAE of the same width (with the baselines)."
    )
    note: str = Field(default=DENSE_TOP1_NOTE, description="How to read the dense scores.")


def has_wordform_cells(pairs: Sequence[Any]) -> bool:
    """Whether any evaluated pair belongs to a cell of the word form x meaning design."""
    return any(getattr(pair, "cell", None) for pair in pairs)


def wordform_scores(
    cells: Sequence[str | None],
    topk_overlap: Sequence[float] | np.ndarray,
    code_cosine: Sequence[float] | np.ndarray,
    same_top_latent: Sequence[bool] | np.ndarray | None,
    config: PSEvalConfig,
) -> WordformScores:
    """:class:`WordformScores` from per-pair values (``same_top_latent`` None: that measure is null)."""
    overlaps: dict[str, Any] = {"topk_overlap": topk_overlap, "code_cosine": code_cosine}
    if same_top_latent is not None:
        overlaps["share_same_top_latent"] = np.asarray(same_top_latent, dtype=np.float64)
    out = wordform_metrics(
        cells,
        overlaps,
        n_resamples=config.bootstrap_resamples,
        confidence_level=config.confidence_level,
        seed=config.seed,
    )
    if same_top_latent is None:
        for row in (*out["cells"].values(), *out["effects"].values()):
            for suffix in ("", "_low", "_high"):
                row[f"share_same_top_latent{suffix}"] = None
    separation = out["separation"]
    if same_top_latent is None:
        for row in separation.values():
            row["auc"].pop("share_same_top_latent", None)
            row["log_odds_ratio_same_top_latent"] = None
    return WordformScores(cells=out["cells"], effects=out["effects"], separation=separation)


def _from_details(cells: Sequence[str | None], details: Sequence[PairDetail], config: PSEvalConfig) -> Any:
    return wordform_scores(
        cells,
        [d.jaccard for d in details],
        [d.code_cosine for d in details],
        [d.predicted_same for d in details],
        config,
    )


def dense_scores(acts_PD: torch.Tensor, pair_index: Sequence[tuple[int, int]], cells: Sequence[str | None],
                 config: PSEvalConfig) -> WordformScores:  # fmt: skip
    """Top-k overlap and cosine of the raw hook vectors of each pair's two prompts."""
    idx_1 = torch.tensor([a for a, _ in pair_index], dtype=torch.long)
    idx_2 = torch.tensor([b for _, b in pair_index], dtype=torch.long)
    acts_1, acts_2 = acts_PD[idx_1].float(), acts_PD[idx_2].float()
    jaccard = topk_jaccard(acts_1, acts_2, config.topk_overlap_k).numpy()
    cosine = cosine_rows(acts_1, acts_2).numpy()
    return wordform_scores(cells, jaccard, cosine, None, config)


def wordform_category(
    data: Any,
    hook: str,
    config: PSEvalConfig,
    details: Sequence[PairDetail],
    random_details: Sequence[PairDetail] | None = None,
) -> dict[str, Any]:
    """The ``wordform`` category of one SAE: its codes, the dense vectors (with the baselines), the random SAE.

    ``data`` is the scoring's :class:`~pseval.evals.scoring.PromptActivations`; ``details`` and
    ``random_details`` are the per-pair rows of the SAE and of the random SAE, in pair order.
    """
    cells = [getattr(pair, "cell", None) for pair in data.pairs]
    if len(details) != len(cells) or (random_details is not None and len(random_details) != len(cells)):
        raise ValueError("per-pair details and pairs differ in length")
    category = WordformCategory(
        topk_overlap_k=config.topk_overlap_k,
        confidence_level=config.confidence_level,
        n_resamples=config.bootstrap_resamples,
        sae=_from_details(cells, details, config),
        dense=dense_scores(data.acts[hook], data.pair_index, cells, config) if config.baselines else None,
        random_sae=_from_details(cells, random_details, config) if random_details is not None else None,
    )
    return category.model_dump(mode="json")


WORDFORM_REPRESENTATIONS: dict[str, str] = {
    "sae": "wordform",
    "dense": "wordform_dense",
    "random_sae": "wordform_random_sae",
}
"""Representation of the nested category -> its flat metric category."""


def _flat_separation(separation: dict[str, Any]) -> dict[str, Any]:
    """``<effect>_auc_<measure>`` and ``<effect>_log_odds_ratio_same_top_latent``, each with ``_low``/``_high``."""
    flat: dict[str, Any] = {}
    for effect, row in separation.items():
        estimates = {f"auc_{measure}": est for measure, est in (row.get("auc") or {}).items()}
        estimates["log_odds_ratio_same_top_latent"] = row.get("log_odds_ratio_same_top_latent")
        for key, estimate in estimates.items():
            if estimate is None:
                continue
            flat[f"{effect}_{key}"] = estimate.get("value")
            flat[f"{effect}_{key}_low"] = estimate.get("low")
            flat[f"{effect}_{key}_high"] = estimate.get("high")
    return flat


def flat_wordform_metrics(category: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The flat metric categories of a ``wordform`` category: ``<cell>_<measure>``, ``<effect>_<measure>``.

    Effects' ``minuend``/``subtrahend`` (which cells an effect subtracts) are fixed by the design and stay in
    the nested category only.
    """
    flat: dict[str, dict[str, Any]] = {}
    for representation, name in WORDFORM_REPRESENTATIONS.items():
        scores = category.get(representation)
        if not isinstance(scores, dict):
            continue
        metrics: dict[str, Any] = {}
        if representation == "sae":
            metrics.update(
                {key: category[key] for key in ("topk_overlap_k", "confidence_level", "n_resamples")}
            )
        for group in ("cells", "effects"):
            for row_name, row in scores[group].items():
                for key, value in row.items():
                    if key not in ("minuend", "subtrahend"):
                        metrics[f"{row_name}_{key}"] = value
        metrics.update(_flat_separation(scores.get("separation") or {}))
        flat[name] = metrics
    return flat
