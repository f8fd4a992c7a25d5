"""Between the two views of one dataset: PS-Eval pairs of sense items, and sense items derived from pairs.

Apart from :mod:`pseval.data.senses` because it needs both the pair schema and the sense schema, and the pair
schema (:class:`pseval.data.schema.PSEvalDataset`) carries a :class:`~pseval.data.senses.SenseSet`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from pseval.data.schema import DIFFERENT_MEANING, SAME_MEANING, WordPair
from pseval.data.senses import SENSE_DATASET, SenseItem, SenseSet, SenseStats


def pairs_of_items(items: Sequence[SenseItem]) -> list[WordPair]:
    """Every pair of two items of one lemma, labelled 1 when they share a sense (PS-Eval on the same items)."""
    members: dict[tuple[str, str], list[SenseItem]] = defaultdict(list)
    for item in items:
        members[item.group].append(item)
    pairs: list[WordPair] = []
    for group in members.values():
        for i, a in enumerate(group):
            for b in group[i + 1 :]:
                pairs.append(
                    WordPair(
                        id=f"{a.id}~{b.id}",
                        word=a.lemma,
                        pos=a.pos,
                        context_1=a.context,
                        context_2=b.context,
                        span_1=a.span,
                        span_2=b.span,
                        label=SAME_MEANING if a.sense == b.sense else DIFFERENT_MEANING,
                        source=SENSE_DATASET,
                        split=a.split,
                    )
                )
    return pairs


def senses_from_pairs(pairs: Sequence[WordPair], dataset: str) -> SenseSet:
    """Sense items and classes derived from labelled pairs (see the module docstring)."""
    index: dict[tuple[str, str, str, tuple[int, int]], int] = {}
    records: list[tuple[str, str, str, tuple[int, int], str]] = []
    edges: list[tuple[int, int, int]] = []
    for pair in pairs:
        if pair.word_2 is not None and pair.word_2 != pair.word:
            continue
        ends = []
        for context, span in ((pair.context_1, pair.span_1), (pair.context_2, pair.span_2)):
            at = (int(span[0]), int(span[1]))
            key = (pair.word, pair.pos, context, at)
            if key not in index:
                index[key] = len(records)
                records.append((pair.word, pair.pos, context, at, pair.split))
            ends.append(index[key])
        if ends[0] != ends[1]:
            edges.append((ends[0], ends[1], pair.label))

    parent = list(range(len(records)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b, label in edges:
        if label == SAME_MEANING:
            parent[root(a)] = root(b)
    conflicting = {records[a][:2] for a, b, label in edges if label != SAME_MEANING and root(a) == root(b)}
    class_name: dict[int, str] = {}
    classes_in_group: dict[tuple[str, str], int] = defaultdict(int)
    items: list[SenseItem] = []
    item_of_record: dict[int, str] = {}
    per_group: dict[tuple[str, str], int] = defaultdict(int)
    for i, (word, pos, context, span, split) in enumerate(records):
        if (word, pos) in conflicting:
            continue
        r = root(i)
        if r not in class_name:
            class_name[r] = f"{dataset}:{word}:{pos}:{classes_in_group[(word, pos)]}"
            classes_in_group[(word, pos)] += 1
        n = per_group[(word, pos)]
        per_group[(word, pos)] += 1
        item_of_record[i] = f"{dataset}-{word}-{pos}-{n:03d}"
        items.append(
            SenseItem(
                id=item_of_record[i], lemma=word, pos=pos, sense=class_name[r], context=context, span=span,
                split=split,
            )
        )  # fmt: skip
    different = sorted(
        {
            tuple(sorted((class_name[root(a)], class_name[root(b)])))
            for a, b, label in edges
            if label != SAME_MEANING and a in item_of_record
        }
    )
    return SenseSet(
        source="pairs",
        items=items,
        different=[(a, b) for a, b in different],
        stats=SenseStats(n_raw=len(records), n_conflicting_lemmas=len(conflicting)),
    )
