"""Within-lemma sense retrieval on hand-built similarity matrices, and the lemma-clustered bootstrap."""

from __future__ import annotations

import numpy as np
import pytest

from pseval.data.senses import DIFFERENT, SAME, UNKNOWN, SenseItem, SenseSet, SenseStats
from pseval.metrics.cluster_bootstrap import cluster_bootstrap, cluster_means
from pseval.metrics.sense_retrieval import (
    anchor_outcomes,
    group_matrices,
    score_anchors,
    summarize,
    within_group_pairs,
)


def _items(lemma: str, senses: list[str]) -> list[SenseItem]:
    return [
        SenseItem(
            id=f"{lemma}-{i}", lemma=lemma, pos="N", sense=s, context=f"{lemma} {i}", span=(0, len(lemma))
        )
        for i, s in enumerate(senses)
    ]


def _set(*lemmas: tuple[str, list[str]]) -> SenseSet:
    items = [item for lemma, senses in lemmas for item in _items(lemma, senses)]
    return SenseSet(source="test", items=items, different=None, stats=SenseStats(n_raw=len(items)))


def test_auroc_counts_ties_as_half_and_nn_with_chance() -> None:
    # Items: a (sense x), p1, p2 (sense x), n1, n2 (sense y).
    relation = _set(("w", ["x", "x", "x", "y", "y"])).groups()[0].relation_GG
    sim = np.zeros((5, 5))
    # Anchor 0: s(p1)=0.9, s(p2)=0.5; s(n1)=0.5, s(n2)=0.1.
    # pairs: (0.9>0.5) (0.9>0.1) (0.5=0.5 -> 1/2) (0.5>0.1) -> 3.5 / 4.
    sim[0, 1:] = sim[1:, 0] = [0.9, 0.5, 0.5, 0.1]
    outcomes = {a: (auroc, nn, correct) for a, auroc, nn, correct in anchor_outcomes(sim, relation)}
    assert set(outcomes) == {0, 1, 2, 3, 4}
    assert outcomes[0] == (pytest.approx(3.5 / 4), 1, 1.0)
    # Anchor 3 (sense y): one positive (4, sim 0) and negatives 0 (0.5), 1 (0), 2 (0): the positive ties
    # with two negatives and loses to one -> (0 + 0.5 + 0.5) / 3; nearest is item 0, a negative.
    assert outcomes[3][0] == pytest.approx(1 / 3)
    assert outcomes[3][1:] == (0, 0.0)


def test_nn_ties_count_fractionally_and_name_the_first() -> None:
    relation = _set(("w", ["x", "x", "y", "y", "y"])).groups()[0].relation_GG
    sim = np.zeros((5, 5))  # everything ties
    (a, auroc, nn, correct), *_ = anchor_outcomes(sim, relation)
    assert (a, auroc, nn) == (0, 0.5, 1)
    assert correct == pytest.approx(1 / 4)  # one positive among the four tied candidates = chance


def test_perfect_code_gives_one_and_identical_codes_give_half_and_chance() -> None:
    sets = _set(("bank", ["a", "a", "a", "b", "b", "c"]), ("bat", ["x", "x", "y"]))
    groups = sets.groups()
    senses = [[sets.items[i].sense for i in g.items] for g in groups]
    perfect = [np.equal.outer(s, s).astype(float) for s in senses]
    identical = [np.ones((len(s), len(s))) for s in senses]
    rows = score_anchors(groups, sets.items, {"perfect": perfect, "identical": identical})
    summary = summarize(rows, n_items=len(sets.items), n_resamples=0)
    assert summary.scores["perfect"].auroc.value == 1.0
    assert summary.scores["perfect"].nn_accuracy.value == 1.0
    assert summary.scores["identical"].auroc.value == 0.5
    # Chance: bank anchors (3 of 'a': 2/5 each, 2 of 'b': 1/5 each) -> 8/25; bat anchors (2 of 'x': 1/2).
    chance = (8 / 25 + 1 / 2) / 2
    assert summary.mean_chance == pytest.approx(chance)
    assert summary.scores["identical"].nn_accuracy.value == pytest.approx(chance)
    # 'c' (one example) is no anchor; it is a negative of the others.
    assert summary.n_anchors == 5 + 2 and summary.n_lemmas == 2
    assert all("bank-5" in r.negative_ids for r in rows if r.lemma == "bank")


def test_partial_relation_ignores_unknown_pairs() -> None:
    relation = np.array(
        [
            [UNKNOWN, SAME, DIFFERENT, UNKNOWN],
            [SAME, UNKNOWN, UNKNOWN, UNKNOWN],
            [DIFFERENT, UNKNOWN, UNKNOWN, UNKNOWN],
            [UNKNOWN, UNKNOWN, UNKNOWN, UNKNOWN],
        ],
        dtype=np.int8,
    )
    sim = np.array([[1, 0.2, 0.1, 0.99], [0.2, 1, 0, 0], [0.1, 0, 1, 0], [0.99, 0, 0, 1]])
    # Item 3 is most similar to the anchor but its sense is unknown: it is neither a candidate nor a pair.
    assert anchor_outcomes(sim, relation) == [(0, 1.0, 1, 1.0)]


def test_group_matrices_round_trip_within_group_pairs() -> None:
    sets = _set(("a", ["x", "x", "y"]), ("b", ["x", "y", "y", "z"]))
    groups = sets.groups()
    prompt_of_item = [10, 11, 12, 20, 21, 22, 23]
    pairs = within_group_pairs(groups, prompt_of_item)
    assert len(pairs) == 3 + 6 and pairs[0] == (10, 11) and pairs[3] == (20, 21)
    sims = np.array([a * 100 + b for a, b in pairs], dtype=float)
    mats = group_matrices(groups, sims)
    assert mats[1][2, 1] == mats[1][1, 2] == 21 * 100 + 22
    with pytest.raises(ValueError):
        group_matrices(groups, sims[:-1])


def test_macro_mean_weighs_lemmas_equally_and_rows_recompute_it() -> None:
    sets = _set(("big", ["x"] * 6 + ["y"]), ("small", ["x", "x", "y"]))
    groups = sets.groups()
    rng = np.random.default_rng(0)
    mats = []
    for g in groups:
        m = rng.random((len(g.items), len(g.items)))
        mats.append((m + m.T) / 2)
    rows = score_anchors(groups, sets.items, {"s": mats, "t": [np.zeros_like(m) for m in mats]})
    summary = summarize(rows, n_items=len(sets.items), n_resamples=200, seed=1, differences=[("s", "t")])
    per_lemma = {}
    for r in rows:
        per_lemma.setdefault(r.lemma, []).append(r.scores["s"].auroc)
    assert summary.scores["s"].auroc.value == pytest.approx(np.mean([np.mean(v) for v in per_lemma.values()]))
    diff = summary.differences["s_minus_t"].auroc
    assert diff.value == pytest.approx(summary.scores["s"].auroc.value - 0.5)
    assert diff.low is not None and diff.high is not None and diff.low <= diff.value <= diff.high
    flat = summary.flat()
    assert flat["s_minus_t_auroc"] == diff.value and flat["n_anchors"] == len(rows)


def test_cluster_bootstrap_resamples_clusters_and_is_paired() -> None:
    values = np.array([1.0, 1.0, 1.0, 1.0, 0.0])
    clusters = np.array(["a", "a", "a", "a", "b"])
    labels, means = cluster_means(values, clusters)
    assert labels.tolist() == ["a", "b"] and means.tolist() == [1.0, 0.0]
    (one,) = cluster_bootstrap(values, clusters, n_resamples=500, seed=0)
    assert one.value == 0.5 and one.low == 0.0 and one.high == 1.0
    again = cluster_bootstrap(values, clusters, n_resamples=500, seed=0)[0]
    assert again == one
    # A constant paired difference has a zero-width interval, whatever the spread of each row.
    spread = np.arange(5.0)
    a, _, d = cluster_bootstrap(np.stack([spread + 1, spread, np.ones(5)]), np.arange(5), n_resamples=300)
    assert d.low == d.high == 1.0 and a.low is not None and a.low < a.high  # type: ignore[operator]
    assert cluster_bootstrap(np.zeros(0), np.zeros(0))[0].value is None
