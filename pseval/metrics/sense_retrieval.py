"""Within-lemma sense retrieval: do an item's nearest items of the same lemma share its sense?

Pure functions on similarity matrices (one per lemma) and relation matrices (:class:`SenseGroup`):

- an *anchor* is an item with at least one positive (same sense, same lemma) and one negative (another
  sense of the same lemma); the relation may be partial (pair-derived senses, e.g. WiC), and only known
  positives and negatives count;
- **anchor AUROC** = P(sim(a, p) > sim(a, n)) over all its (positive, negative) pairs, ties counting ½;
- **1-NN sense accuracy**: among the anchor's positives and negatives, the most similar one shares its
  sense. Ties at the top count fractionally (the share of positives among the tied candidates, which is
  the expected accuracy of a uniformly random tie break); the recorded neighbour is the first tied one in
  item order. Chance is ``n_positive / (n_positive + n_negative)``, i.e. (items of the anchor's sense − 1)
  / (items of the lemma − 1) when the relation is complete;
- a lemma's score is the mean over its anchors; the headline is the mean over lemmas (macro), with
  lemma-clustered bootstrap intervals (:mod:`pseval.metrics.cluster_bootstrap`).

Holding the lemma fixed removes the word-form term (every item has the same word in the same template),
and ranking needs no threshold.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, Field

from pseval.data.senses import DIFFERENT, SAME, SenseGroup, SenseItem
from pseval.metrics.cluster_bootstrap import Interval, cluster_bootstrap
from pseval.metrics.registry import metric_field

DIFFERENCES: tuple[tuple[str, str], ...] = (
    ("sae_cosine", "random_sae_cosine"),
    ("sae_cosine", "dense_centred_cosine"),
    ("sae_jaccard", "random_sae_jaccard"),
)
"""Paired differences reported (similarity minus control), each with its lemma-clustered interval."""

SCORES: tuple[str, ...] = ("auroc", "nn_accuracy")


class AnchorScore(BaseModel):
    """One anchor's retrieval outcome under one similarity."""

    auroc: float = Field(description="P(sim(anchor, positive) > sim(anchor, negative)), ties counting 1/2.")
    nn_id: str = Field(description="Item id of the most similar positive or negative (first in item order).")
    nn_sense: str = Field(description="That item's sense.")
    nn_correct: float = Field(description="Share of positives among the items tied for most similar (0..1).")


class AnchorDetail(BaseModel):
    """One anchor of within-lemma sense retrieval, with its outcome under every similarity."""

    id: str = Field(description="Item id of the anchor.")
    lemma: str = Field(description="Lemma (the template's {word}).")
    pos: str = Field(description="Part of speech.")
    sense: str = Field(
        description="The anchor's sense (WordNet synset, or a class derived from pair labels)."
    )
    context: str = Field(description="The anchor's sentence.")
    positive_ids: list[str] = Field(description="Items of the same lemma known to share the anchor's sense.")
    negative_ids: list[str] = Field(description="Items of the same lemma known to have another sense.")
    chance: float = Field(
        description="1-NN accuracy of a random neighbour: n_positive / (n_positive + n_negative)."
    )
    scores: dict[str, AnchorScore] = Field(
        description="Per similarity ('sae_cosine', 'sae_jaccard', 'random_sae_cosine', ..., "
        "'dense_cosine', 'dense_centred_cosine')."
    )

    @property
    def group(self) -> str:
        return f"{self.lemma}/{self.pos}"


class SimilarityScore(BaseModel):
    """Macro (mean over lemmas) anchor AUROC and 1-NN accuracy of one similarity."""

    auroc: Interval = metric_field(
        "AUROC",
        "Macro anchor AUROC with its lemma-clustered interval.",
        direction="higher",
        aggregation="macro mean over lemmas",
        interval=True,
        default=...,
    )
    nn_accuracy: Interval = metric_field(
        "1-NN",
        "Macro 1-NN sense accuracy with its lemma-clustered interval.",
        direction="higher",
        aggregation="macro mean over lemmas",
        interval=True,
        default=...,
    )


class SenseRetrievalMetrics(BaseModel):
    """The ``sense_retrieval`` category: every similarity's macro scores and the paired differences."""

    n_items: int = Field(description="Items of the lemmas that have an anchor.")
    n_lemmas: int = Field(description="Lemmas (word + part of speech) with at least one anchor.")
    n_anchors: int = Field(description="Anchors: items with a known positive and a known negative.")
    mean_chance: float | None = Field(description="Macro 1-NN chance level (same averaging as the accuracy).")
    confidence_level: float = Field(description="Confidence level of the intervals.")
    n_resamples: int = Field(description="Lemma-clustered bootstrap resamples (seeded with the run's seed).")
    scores: dict[str, SimilarityScore] = Field(description="Per similarity.")
    differences: dict[str, SimilarityScore] = Field(
        description="Paired differences 'A_minus_B' over the same anchors, intervals from the same resamples."
    )

    def flat(self) -> dict[str, float | int | None]:
        """The flat category stored in ``eval_result_metrics`` (``sae_cosine_auroc``, ``..._low``, ...)."""
        out: dict[str, float | int | None] = {
            "n_items": self.n_items,
            "n_lemmas": self.n_lemmas,
            "n_anchors": self.n_anchors,
            "mean_chance": self.mean_chance,
            "confidence_level": self.confidence_level,
            "n_resamples": self.n_resamples,
        }
        for table in (self.scores, self.differences):
            for name, score in table.items():
                for metric in SCORES:
                    interval: Interval = getattr(score, metric)
                    out[f"{name}_{metric}"] = interval.value
                    out[f"{name}_{metric}_low"] = interval.low
                    out[f"{name}_{metric}_high"] = interval.high
        return out


def within_group_pairs(groups: Sequence[SenseGroup], prompt_of_item: Sequence[int]) -> list[tuple[int, int]]:
    """Prompt-index pairs (i < j inside each group, row-major), the order :func:`group_matrices` reads."""
    pairs: list[tuple[int, int]] = []
    for group in groups:
        prompts = [prompt_of_item[i] for i in group.items]
        rows, cols = np.triu_indices(len(prompts), k=1)
        pairs.extend((prompts[r], prompts[c]) for r, c in zip(rows.tolist(), cols.tolist(), strict=True))
    return pairs


def group_matrices(groups: Sequence[SenseGroup], pair_sims: np.ndarray) -> list[np.ndarray]:
    """Symmetric similarity matrices of each group from the flat :func:`within_group_pairs` similarities."""
    out: list[np.ndarray] = []
    at = 0
    for group in groups:
        n = len(group.items)
        rows, cols = np.triu_indices(n, k=1)
        sim_GG = np.zeros((n, n))
        sim_GG[rows, cols] = pair_sims[at : at + rows.size]
        sim_GG[cols, rows] = pair_sims[at : at + rows.size]
        at += rows.size
        out.append(sim_GG)
    if at != len(pair_sims):
        raise ValueError(f"{len(pair_sims)} similarities for {at} within-group pairs")
    return out


def anchor_outcomes(sim_GG: np.ndarray, relation_GG: np.ndarray) -> list[tuple[int, float, int, float]]:
    """(anchor, AUROC, nearest neighbour, 1-NN correctness) of every anchor of one group (local indices)."""
    out: list[tuple[int, float, int, float]] = []
    for a in range(len(relation_GG)):
        pos_mask, neg_mask = relation_GG[a] == SAME, relation_GG[a] == DIFFERENT
        if not (pos_mask.any() and neg_mask.any()):
            continue
        s_pos, s_neg = sim_GG[a, pos_mask], sim_GG[a, neg_mask]
        greater = (s_pos[:, None] > s_neg[None, :]).mean()
        tied = (s_pos[:, None] == s_neg[None, :]).mean()
        candidates = np.flatnonzero(pos_mask | neg_mask)
        sims = sim_GG[a, candidates]
        top = candidates[sims == sims.max()]
        out.append((a, float(greater + 0.5 * tied), int(top[0]), float(pos_mask[top].mean())))
    return out


def score_anchors(
    groups: Sequence[SenseGroup],
    items: Sequence[SenseItem],
    similarities: dict[str, list[np.ndarray]],
) -> list[AnchorDetail]:
    """Per-anchor rows under every similarity (``similarities[name][g]`` is group g's matrix)."""
    rows: list[AnchorDetail] = []
    for g, group in enumerate(groups):
        outcomes = {name: anchor_outcomes(mats[g], group.relation_GG) for name, mats in similarities.items()}
        ids = [items[i].id for i in group.items]
        for k, a in enumerate(group.anchors()):
            rel = group.relation_GG[a]
            anchor = items[group.items[a]]
            n_pos, n_neg = int((rel == SAME).sum()), int((rel == DIFFERENT).sum())
            rows.append(
                AnchorDetail(
                    id=anchor.id,
                    lemma=anchor.lemma,
                    pos=anchor.pos,
                    sense=anchor.sense,
                    context=anchor.context,
                    positive_ids=[ids[j] for j in np.flatnonzero(rel == SAME)],
                    negative_ids=[ids[j] for j in np.flatnonzero(rel == DIFFERENT)],
                    chance=n_pos / (n_pos + n_neg),
                    scores={
                        name: AnchorScore(
                            auroc=auroc,
                            nn_id=ids[nn],
                            nn_sense=items[group.items[nn]].sense,
                            nn_correct=correct,
                        )
                        for name, (_, auroc, nn, correct) in ((n, o[k]) for n, o in outcomes.items())
                    },
                )
            )
    return rows


def summarize(
    rows: Sequence[AnchorDetail],
    n_items: int,
    n_resamples: int = 2000,
    confidence_level: float = 0.95,
    seed: int = 0,
    differences: Sequence[tuple[str, str]] = DIFFERENCES,
) -> SenseRetrievalMetrics:
    """Macro scores of every similarity and the paired differences, from the per-anchor rows alone."""
    names = list(rows[0].scores) if rows else []
    lemmas = np.array([r.group for r in rows], dtype=object)
    table: dict[str, np.ndarray] = {}
    for name in names:
        table[f"{name}|auroc"] = np.array([r.scores[name].auroc for r in rows])
        table[f"{name}|nn_accuracy"] = np.array([r.scores[name].nn_correct for r in rows])
    wanted = [(a, b) for a, b in differences if a in names and b in names]
    keys = [f"{n}|{m}" for n in names for m in SCORES]
    values = [table[k] for k in keys]
    diff_keys = [f"{a}_minus_{b}|{m}" for a, b in wanted for m in SCORES]
    values += [table[f"{a}|{m}"] - table[f"{b}|{m}"] for a, b in wanted for m in SCORES]
    chance = np.array([r.chance for r in rows])
    intervals = cluster_bootstrap(
        np.stack([*values, chance]) if rows else np.zeros((len(values) + 1, 0)),
        lemmas if rows else np.zeros(0),
        n_resamples=n_resamples,
        confidence_level=confidence_level,
        seed=seed,
    )
    by_key = dict(zip([*keys, *diff_keys], intervals, strict=False))

    def scores(prefixes: list[str]) -> dict[str, SimilarityScore]:
        return {p: SimilarityScore(**{m: by_key[f"{p}|{m}"] for m in SCORES}) for p in prefixes}

    return SenseRetrievalMetrics(
        n_items=n_items,
        n_lemmas=len(set(lemmas.tolist())),
        n_anchors=len(rows),
        mean_chance=intervals[-1].value,
        confidence_level=confidence_level,
        n_resamples=n_resamples,
        scores=scores(names),
        differences=scores([f"{a}_minus_{b}" for a, b in wanted]),
    )
