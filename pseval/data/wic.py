"""Read the vendored WiC dataset and turn its space-tokenised sentences into natural text.

WiC ships every sentence tokenised (``It 's a narrow defeat .``) with the target given as a token index.
Language models see natural text, so each sentence is detokenised (``It's a narrow defeat.``) while the
character offsets of every token are tracked: the target's span in the natural text then comes straight
from its token index, and later stages locate it through the tokenizer's offset mapping instead of
searching for the word (which would hit "art" inside "party", or miss "ran" for "run").

The detokeniser is a small rule set in the spirit of the Moses/Treebank detokenisers, written for what
WiC contains; sacremoses is not used because it does not report offsets. Hyphens are kept exactly as in
the data: WiC has both "well-known" and "well - known", and a spaced hyphen is as often a dash
("a bum - he's") as a split compound, so joining it would sometimes glue two words together.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from pseval.data.schema import DIFFERENT_MEANING, SAME_MEANING, WordPair
from pseval.errors import DataError

if sys.version_info >= (3, 11):
    from importlib.resources.abc import Traversable
else:  # pragma: no cover
    from importlib.abc import Traversable

WIC_SPLITS: tuple[str, ...] = ("train", "dev", "test")
"""The splits of the WiC release, in the order ``split="all"`` concatenates them."""

# Punctuation that sticks to the token before it: "word ." -> "word.", "( or presence )" -> "(or presence)".
_ATTACH_LEFT_RE = re.compile(r"^[.,?!:;%)\]}…]+$")
# Tokens that stick to the token after them: "$ 5" -> "$5", "( or" -> "(or".
_ATTACH_RIGHT = frozenset({"(", "[", "{", "$", "£", "€", "¥", "¿", "¡"})
# Clitics split off by the tokenizer: "It 's" -> "It's", "do n't" -> "don't", "she ′s" -> "she′s".
_CLITIC_RE = re.compile(r"^(?:['’′][A-Za-z]+|n['’′]t)$", re.IGNORECASE)
# Quote marks whose direction is fixed by their shape.
_OPENING_QUOTES = frozenset({"“", "‘", "`", "``", "«"})
_CLOSING_QUOTES = frozenset({"”", "’", "''", "»"})
# Treebank splits "gonna", "wanna" and "gotta" in two.
_SPLIT_WORDS = {("gon", "na"), ("wan", "na"), ("got", "ta")}


@dataclass(frozen=True)
class Detokenized:
    """A detokenised sentence and, for every input token, its character span ``[start, end)`` in ``text``."""

    text: str
    offsets: tuple[tuple[int, int], ...]


def detokenize(tokens: Sequence[str]) -> Detokenized:
    """Join space-separated tokens into natural text, keeping each token's character span.

    Each token is copied verbatim (so ``text[start:end] == token`` for every token); only the spaces between
    tokens are decided here. Straight double quotes alternate between opening and closing; a straight single
    quote closes an open single quote (opened by ``'`` or a backtick), attaches to a preceding word ending in
    "s" as a possessive ("parents' influence") or before punctuation or the end, and otherwise opens a quote.
    """
    pieces: list[str] = []
    offsets: list[tuple[int, int]] = []
    length = 0
    glue_next = True  # no space before the first token
    double_open = False
    single_open = False
    for i, token in enumerate(tokens):
        prev = tokens[i - 1] if i > 0 else ""
        attach_left = False
        attach_right = False
        if _ATTACH_LEFT_RE.match(token) or _CLITIC_RE.match(token):
            attach_left = True
        elif token in _ATTACH_RIGHT:
            attach_right = True
        elif token == '"':
            if double_open:
                attach_left = True
            else:
                attach_right = True
            double_open = not double_open
        elif token == "'":
            nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
            if single_open:
                attach_left = True
                single_open = False
            elif prev[-1:] in ("s", "S") or not nxt or _ATTACH_LEFT_RE.match(nxt):
                attach_left = True
            else:
                attach_right = True
                single_open = True
        elif token in _OPENING_QUOTES:
            attach_right = True
            if token in ("`", "‘"):
                single_open = True
        elif token in _CLOSING_QUOTES:
            attach_left = True
            if token == "’":
                single_open = False
        elif (prev.lower(), token.lower()) in _SPLIT_WORDS:
            attach_left = True

        if not (glue_next or attach_left):
            pieces.append(" ")
            length += 1
        pieces.append(token)
        offsets.append((length, length + len(token)))
        length += len(token)
        glue_next = attach_right
    return Detokenized(text="".join(pieces), offsets=tuple(offsets))


@dataclass(frozen=True)
class WicRecord:
    """One line of a WiC split, as released (tokenised sentences, token indices, T/F label)."""

    split: str
    index: int
    word: str
    pos: str
    tokens_1: tuple[str, ...]
    tokens_2: tuple[str, ...]
    index_1: int
    index_2: int
    label: int

    @property
    def id(self) -> str:
        """Stable identifier: split and line number in the original file, e.g. ``wic-test-0042``."""
        return f"wic-{self.split}-{self.index:04d}"

    @property
    def indices_valid(self) -> bool:
        """Whether both target indices point at a token of their sentence."""
        return 0 <= self.index_1 < len(self.tokens_1) and 0 <= self.index_2 < len(self.tokens_2)

    def to_word_pair(self) -> WordPair:
        """Detokenise both sentences and return the pair with the target's character spans."""
        if not self.indices_valid:
            raise DataError(
                f"WiC pair {self.id}: target index {self.index_1}-{self.index_2} is outside its sentences",
                "fix or remove that line of the WiC file",
            )
        context_1, span_1 = _context_and_span(self.tokens_1, self.index_1, self.id)
        context_2, span_2 = _context_and_span(self.tokens_2, self.index_2, self.id)
        return WordPair(
            id=self.id,
            word=self.word,
            pos=self.pos,
            context_1=context_1,
            context_2=context_2,
            span_1=span_1,
            span_2=span_2,
            label=self.label,
            source="wic",
            split=self.split,
        )


def _context_and_span(tokens: Sequence[str], index: int, pair_id: str) -> tuple[str, tuple[int, int]]:
    detok = detokenize(tokens)
    start, end = detok.offsets[index]
    if detok.text[start:end] != tokens[index]:  # pragma: no cover - guaranteed by detokenize()
        raise AssertionError(
            f"{pair_id}: span {start}-{end} does not hold the target token {tokens[index]!r}"
        )
    return detok.text, (start, end)


def wic_root() -> Traversable:
    """The folder of the vendored WiC files inside the installed package."""
    return resources.files("pseval").joinpath("resources").joinpath("wic")


def read_wic_split(split: str, root: str | Path | Traversable | None = None) -> list[WicRecord]:
    """Read one WiC split (``train``, ``dev`` or ``test``) into raw records, in file order.

    ``root`` defaults to the copy shipped with pseval; pass a folder holding ``{split}.data.txt`` and
    ``{split}.gold.txt`` to read another copy.
    """
    if split not in WIC_SPLITS:
        raise DataError(f"unknown WiC split {split!r}", f"use one of {', '.join(WIC_SPLITS)}")
    folder: Traversable = wic_root() if root is None else (Path(root) if isinstance(root, str) else root)
    data_file = folder.joinpath(f"{split}.data.txt")
    gold_file = folder.joinpath(f"{split}.gold.txt")
    for f in (data_file, gold_file):
        if not f.is_file():
            raise DataError(
                f"WiC file {f} is missing",
                "reinstall pseval, or pass a folder that holds the WiC release",
            )
    data_lines = data_file.read_text(encoding="utf-8").splitlines()
    gold_lines = gold_file.read_text(encoding="utf-8").splitlines()
    if len(data_lines) != len(gold_lines):
        raise DataError(
            f"WiC {split}: {len(data_lines)} data lines but {len(gold_lines)} gold labels",
            "use matching .data.txt and .gold.txt files from one WiC release",
        )
    records: list[WicRecord] = []
    for i, (line, gold) in enumerate(zip(data_lines, gold_lines, strict=True)):
        records.append(_parse_line(split, i, line, gold.strip()))
    return records


def _parse_line(split: str, i: int, line: str, gold: str) -> WicRecord:
    where = f"{split}.data.txt line {i + 1}"
    fields = line.split("\t")
    if len(fields) != 5:
        raise DataError(
            f"WiC {where} has {len(fields)} tab-separated fields, expected 5",
            "use an unmodified WiC release file",
        )
    word, pos, idx, sentence_1, sentence_2 = fields
    match = re.fullmatch(r"(\d+)-(\d+)", idx.strip())
    if match is None:
        raise DataError(
            f"WiC {where}: index field {idx!r} is not 'i-j'", "use an unmodified WiC release file"
        )
    if gold not in ("T", "F"):
        raise DataError(
            f"WiC {split}.gold.txt line {i + 1}: label {gold!r} is not T or F",
            "use an unmodified WiC release file",
        )
    return WicRecord(
        split=split,
        index=i,
        word=word.strip(),
        pos=pos.strip(),
        tokens_1=tuple(sentence_1.split()),
        tokens_2=tuple(sentence_2.split()),
        index_1=int(match.group(1)),
        index_2=int(match.group(2)),
        label=SAME_MEANING if gold == "T" else DIFFERENT_MEANING,
    )
