"""Within-lemma sense retrieval of one SAE, its random-SAE control and the dense activation, on the same items.

:func:`sense_plan` picks the lemmas with an anchor and lists the prompt pairs inside each; the runner's one
block-wise pass over the SAE's latents (:func:`pseval.metrics.blockwise.code_stats`) gets those pairs after
the PS-Eval pairs, so the per-lemma Gram entries (dot products and squared norms, accumulated in float64
block by block) come with no second encode and for any width: cosine = dot / (norm · norm). The top-k
Jaccard comes from the same pass's top-k latents. The dense activation is compared raw and centred (minus
the mean hook vector over the dataset's sense items). :func:`sense_retrieval` turns the similarities into
the per-anchor rows and the ``sense_retrieval`` category (:mod:`pseval.metrics.sense_retrieval`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from pseval.data.senses import SenseGroup, SenseItem, SenseSet
from pseval.errors import DataError
from pseval.evals.config import PSEvalConfig
from pseval.metrics.blockwise import CodeStats
from pseval.metrics.sense_retrieval import (
    AnchorDetail,
    group_matrices,
    score_anchors,
    summarize,
    within_group_pairs,
)
from pseval.metrics.threshold_free import cosine_from_sums, cosine_rows

SENSE_CATEGORY = "sense_retrieval"
ANCHORS_KEY = "sense_retrieval_anchors"
"""Key under which :func:`pseval.evals.scoring.score_sae` hands the per-anchor rows to the runner."""


@dataclass
class SensePlan:
    """The lemmas with an anchor, their items' prompts and the prompt pairs compared."""

    groups: list[SenseGroup]
    items: list[SenseItem]
    prompt_of_item: list[int]
    pairs: list[tuple[int, int]]
    """Within-lemma prompt pairs, in :func:`~pseval.metrics.sense_retrieval.within_group_pairs` order."""
    all_item_prompts: list[int]
    """Prompts of every sense item of the dataset (the dense activation is centred on their mean)."""

    @property
    def n_items(self) -> int:
        return sum(len(g.items) for g in self.groups)


def sense_plan(data: Any) -> SensePlan | None:
    """The plan for ``data`` (a :class:`~pseval.evals.scoring.PromptActivations`); None when no lemma has an anchor."""
    senses = getattr(data, "senses", None)
    if senses is None or not senses.items:
        return None
    groups = [g for g in senses.groups() if g.has_anchor()]
    if not groups:
        return None
    prompt_of_item = list(data.item_index)
    return SensePlan(
        groups=groups,
        items=list(senses.items),
        prompt_of_item=prompt_of_item,
        pairs=within_group_pairs(groups, prompt_of_item),
        all_item_prompts=sorted(set(prompt_of_item)),
    )


def count_anchors(senses: SenseSet | None) -> int:
    """Items with a known same-sense and a known different-sense partner of their lemma."""
    return 0 if senses is None else sum(len(g.anchors()) for g in senses.groups())


def no_anchor_note(dataset: Any, split: str, anchors_of_all_splits: Callable[[], int]) -> str | None:
    """Why a pair dataset gets no sense-retrieval table (None when it gets one, or has no sense items).

    Senses derived from pair labels need a sentence labelled against two partners, one same-sense and one
    different-sense; WiC reuses no sentence within a split, so its splits alone have no such anchor. The note
    counts those of ``--split all`` (``anchors_of_all_splits`` counts them, loading it with the same options),
    where they exist.
    """
    senses = dataset.senses
    if senses is None or senses.source != "pairs" or not senses.items or count_anchors(senses):
        return None
    why = (
        f"no within-lemma sense retrieval: no sentence of the {dataset.name} {split} split has both a "
        "same-sense and a different-sense labelled partner (no anchor)"
    )
    if split == "all":
        return why
    try:
        n_all = anchors_of_all_splits()
    except DataError:
        return why
    return f"{why}; --split all has {n_all:,} anchor{'' if n_all == 1 else 's'}" if n_all else why


def split_stats(stats: CodeStats, n_pairs: int) -> tuple[CodeStats, torch.Tensor]:
    """(the PS-Eval pairs' stats, the sense pairs' dot products) of stats computed on both pair lists."""
    return replace(stats, pair_dot_N=stats.pair_dot_N[:n_pairs]), stats.pair_dot_N[n_pairs:]


def code_similarities(
    stats: CodeStats, sense_dot_M: torch.Tensor, plan: SensePlan, name: str
) -> dict[str, list[np.ndarray]]:
    """``{name}_cosine`` and ``{name}_jaccard`` matrices of every group, from block-wise code statistics."""
    idx1 = torch.tensor([a for a, _ in plan.pairs], dtype=torch.long)
    idx2 = torch.tensor([b for _, b in plan.pairs], dtype=torch.long)
    cosine = cosine_from_sums(sense_dot_M, stats.sq_norm_P[idx1], stats.sq_norm_P[idx2]).numpy()
    jaccard = stats.jaccard(idx1, idx2).numpy()
    return {
        f"{name}_cosine": group_matrices(plan.groups, cosine.astype(np.float64)),
        f"{name}_jaccard": group_matrices(plan.groups, jaccard.astype(np.float64)),
    }


def dense_similarities(acts_PD: torch.Tensor, plan: SensePlan) -> dict[str, list[np.ndarray]]:
    """Raw and centred cosine of the hook vectors (centred on the mean over the dataset's sense items)."""
    idx1 = torch.tensor([a for a, _ in plan.pairs], dtype=torch.long)
    idx2 = torch.tensor([b for _, b in plan.pairs], dtype=torch.long)
    acts = acts_PD.float()
    mean_D = acts[torch.tensor(plan.all_item_prompts, dtype=torch.long)].double().mean(0).float()
    raw = cosine_rows(acts[idx1], acts[idx2]).numpy()
    centred = cosine_rows(acts[idx1] - mean_D, acts[idx2] - mean_D).numpy()
    return {
        "dense_cosine": group_matrices(plan.groups, raw.astype(np.float64)),
        "dense_centred_cosine": group_matrices(plan.groups, centred.astype(np.float64)),
    }


def sense_retrieval(
    plan: SensePlan, similarities: dict[str, list[np.ndarray]], config: PSEvalConfig
) -> tuple[dict[str, Any], list[AnchorDetail]]:
    """The flat ``sense_retrieval`` category and the per-anchor rows."""
    rows = score_anchors(plan.groups, plan.items, similarities)
    metrics = summarize(
        rows,
        n_items=plan.n_items,
        n_resamples=config.bootstrap_resamples,
        confidence_level=config.confidence_level,
        seed=config.seed,
    )
    return metrics.flat(), rows
