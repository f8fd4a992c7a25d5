"""Items for within-lemma sense retrieval: sentences of one lemma, each with the sense it is used in.

Two sources:

- ``wordnet-senses`` (``pseval/resources/wordnet/senses.jsonl``, built by
  ``scripts/build_wordnet_senses.py``): every usable WordNet 3.1 example sentence of a (lemma, part of
  speech) with at least two synsets that have examples, labelled by its synset. Every two senses of one
  lemma differ, so the same-sense relation inside a lemma is complete.
- any pair dataset (WiC, the WordNet pairs, a ``.jsonl`` of pairs): the items are the pairs' sentences,
  one per (word, part of speech, sentence, span), and the relation comes from the labels. Sense identity is
  an equivalence relation, so same-sense (label 1) pairs are merged transitively (union-find) into sense
  classes, and a different-sense (label 0) pair makes its two classes differ; nothing else is assumed
  (two classes never paired stay unrelated). A lemma whose labels contradict each other (a label-0 pair
  inside one class) is left out and counted in ``SenseStats.n_conflicting_lemmas``. Pairs of two different
  words (``word_2``, the word form x meaning dataset) are skipped.

Items of one lemma (word and part of speech) form one group; only pairs of items inside a group are ever
compared (:mod:`pseval.metrics.sense_retrieval`).
"""

from __future__ import annotations

import json
from collections import defaultdict
from importlib import resources
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pseval.errors import DataError

SENSE_DATASET = "wordnet-senses"
"""The shipped sense-retrieval dataset; its PS-Eval pairs are every pair of items of one lemma."""

SAME, DIFFERENT, UNKNOWN = 1, -1, 0
"""Entries of a group's relation matrix."""


class SenseItem(BaseModel):
    """One sentence with a target lemma and the sense the lemma has in it."""

    model_config = ConfigDict(frozen=True)

    id: str = Field(description="Stable identifier, e.g. 'wnsense-bank-N-0003'.")
    lemma: str = Field(description="The target lemma, inserted into the prompt template's {word}.")
    pos: str = Field(description="Part of speech: 'N', 'V', 'A' or 'R'.")
    sense: str = Field(
        description="Sense label: the WordNet synset ('N:09213565'), or a sense class derived from pair "
        "labels ('wic:bank:N:0')."
    )
    context: str = Field(description="The sentence.")
    span: tuple[int, int] = Field(description="Character span [start, end) of the target in the sentence.")
    split: str = Field(default="test", description="Split; a lemma's items are all in one split.")

    @property
    def group(self) -> tuple[str, str]:
        """The (lemma, part of speech) the item is compared within."""
        return (self.lemma, self.pos)


class SenseStats(BaseModel):
    """How the sense items were read and filtered."""

    n_raw: int = Field(description="Items before filtering.")
    dropped: dict[str, int] = Field(
        default_factory=dict,
        description="Items dropped, by the PS-Eval pair-filter reasons ('target_not_found', 'span_not_word', "
        "'multi_token_word').",
    )
    n_conflicting_lemmas: int = Field(
        default=0, description="Lemmas left out because their pair labels contradict each other."
    )


class SenseSet(BaseModel):
    """The sense items of a dataset and which of their senses are known to differ."""

    source: str = Field(description="'wordnet-senses' (synset labels) or 'pairs' (derived from pair labels).")
    items: list[SenseItem] = Field(description="Items kept, in file order.")
    different: list[tuple[str, str]] | None = Field(
        default=None,
        description="Sense pairs known to differ; None means every two senses of one lemma differ.",
    )
    stats: SenseStats

    def groups(self) -> list[SenseGroup]:
        """One group per (lemma, part of speech), with its relation matrix, in first-seen order."""
        members: dict[tuple[str, str], list[int]] = defaultdict(list)
        for i, item in enumerate(self.items):
            members[item.group].append(i)
        known = None if self.different is None else {frozenset(p) for p in self.different}
        out: list[SenseGroup] = []
        for (lemma, pos), index in members.items():
            senses = [self.items[i].sense for i in index]
            same_GG = np.equal.outer(np.array(senses, dtype=object), np.array(senses, dtype=object))
            if known is None:
                relation_GG = np.where(same_GG, SAME, DIFFERENT)
            else:
                differ_GG = np.array([[frozenset((a, b)) in known for b in senses] for a in senses])
                relation_GG = np.where(same_GG, SAME, np.where(differ_GG, DIFFERENT, UNKNOWN))
            np.fill_diagonal(relation_GG, UNKNOWN)
            out.append(SenseGroup(lemma=lemma, pos=pos, items=index, relation_GG=relation_GG.astype(np.int8)))
        return out


class SenseGroup(BaseModel):
    """The items of one lemma and what is known of each two: same sense, different sense, or unknown."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    lemma: str
    pos: str
    items: list[int] = Field(description="Indices into SenseSet.items.")
    relation_GG: np.ndarray = Field(description="SAME (1), DIFFERENT (-1) or UNKNOWN (0); 0 on the diagonal.")

    @property
    def key(self) -> str:
        """'lemma/POS', the lemma's name in results."""
        return f"{self.lemma}/{self.pos}"

    def anchors(self) -> list[int]:
        """Local indices of the items with a same-sense and a different-sense item in the group."""
        rel = self.relation_GG
        return np.flatnonzero((rel == SAME).any(1) & (rel == DIFFERENT).any(1)).tolist()

    def has_anchor(self) -> bool:
        """Some item has a same-sense and a different-sense item in the group."""
        return bool(self.anchors())


def wordnet_senses_path() -> Path:
    """Where the shipped WordNet sense items live (``pseval/resources/wordnet/senses.jsonl``)."""
    return Path(str(resources.files("pseval").joinpath("resources").joinpath("wordnet"))) / "senses.jsonl"


def read_sense_items(path: Path, split: str) -> list[SenseItem]:
    """The items of ``split`` (``all``: every split) of a sense-items ``.jsonl`` file."""
    if not path.is_file():
        raise DataError(
            f"the WordNet sense items file {path} is not part of this installation",
            "reinstall pseval (the file ships with it), or use --dataset wordnet",
        )
    items: list[SenseItem] = []
    seen: set[str] = set()
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                item = SenseItem.model_validate(json.loads(line))
            except (json.JSONDecodeError, ValidationError) as exc:
                raise DataError(
                    f"{path}:{lineno} is not a valid SenseItem record ({str(exc).splitlines()[0]})",
                    "write one JSON object per line with id, lemma, pos, sense, context, span, split",
                ) from None
            if item.id in seen:
                raise DataError(
                    f"{path}:{lineno}: duplicate item id {item.id!r}", "give every item a unique id"
                )
            seen.add(item.id)
            if split in ("all", item.split):
                items.append(item)
    return items
