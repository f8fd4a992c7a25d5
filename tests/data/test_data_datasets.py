"""load_dataset: the single-token filter, balancing, drop reasons, and the other dataset sources."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pseval.data import datasets as datasets_module
from pseval.data.datasets import dataset_summary, load_dataset
from pseval.data.schema import WordPair
from pseval.errors import ConfigError, DataError


def _ids(ds: Any) -> list[str]:
    return [p.id for p in ds.pairs]


def test_wic_counts_with_gpt2(gpt2_tokenizer: Any) -> None:
    """The single-token filter keeps the counts measured on WiC with GPT-2's tokenizer."""
    test = load_dataset(gpt2_tokenizer, split="test")
    assert test.stats.n_raw == 1400
    assert test.stats.kept_before_balance == {0: 619, 1: 572}
    assert test.stats.dropped == {
        "multi_token_word": 1400 - 619 - 572,
        "span_not_word": 0,
        "target_not_found": 0,
    }
    assert test.stats.kept_by_token_count == {"single": 1144, "multi": 0}
    assert test.stats.kept == {0: 572, 1: 572}
    assert len(test) == 1144
    assert test.balanced and test.name == "wic" and test.split == "test"

    train = load_dataset(gpt2_tokenizer, split="train", balance=False)
    # wic-train-1556 ("call", label 0) marks "round" in "The engineer called round ...": span_not_word
    assert train.stats.dropped["span_not_word"] == 1
    assert train.stats.kept_before_balance == {0: 2657, 1: 2527}
    assert len(train) == 2657 + 2527
    dev = load_dataset(gpt2_tokenizer, split="dev")
    assert dev.stats.kept_before_balance == {0: 272, 1: 258}
    assert dev.stats.kept == {0: 258, 1: 258}


def test_balancing_is_seeded_and_keeps_order(gpt2_tokenizer: Any) -> None:
    a = load_dataset(gpt2_tokenizer, split="test", seed=0)
    b = load_dataset(gpt2_tokenizer, split="test", seed=0)
    c = load_dataset(gpt2_tokenizer, split="test", seed=1)
    assert _ids(a) == _ids(b)
    assert _ids(a) != _ids(c)
    for ds in (a, c):
        indices = [int(i.rsplit("-", 1)[1]) for i in _ids(ds)]
        assert indices == sorted(indices)
    # only the larger class (label 0) is downsampled
    full = load_dataset(gpt2_tokenizer, split="test", balance=False)
    assert len(full) == 1191
    same_full = [p.id for p in full.pairs if p.label == 1]
    assert [p.id for p in a.pairs if p.label == 1] == same_full
    assert set(_ids(a)) <= set(_ids(full))
    assert all(len(" " + p.word) > 1 for p in full.pairs)


def test_split_all_and_ids(gpt2_tokenizer: Any) -> None:
    ds = load_dataset(gpt2_tokenizer, split="all", balance=False)
    assert len(ds) == 619 + 572 + 2657 + 2527 + 272 + 258
    assert ds.stats.n_raw == 1400 + 5428 + 638
    assert len(set(_ids(ds))) == len(ds)
    assert {p.split for p in ds.pairs} == {"train", "dev", "test"}
    assert _ids(ds)[0].startswith("wic-train-")


def test_max_pairs(gpt2_tokenizer: Any) -> None:
    ds = load_dataset(gpt2_tokenizer, split="test", max_pairs=101)
    assert ds.stats.kept == {0: 50, 1: 50}
    assert set(_ids(ds)) <= set(_ids(load_dataset(gpt2_tokenizer, split="test")))
    ds = load_dataset(gpt2_tokenizer, split="test", balance=False, max_pairs=7)
    assert len(ds) == 7
    with pytest.raises(ConfigError, match="max_pairs"):
        load_dataset(gpt2_tokenizer, split="test", max_pairs=1)


def test_summary(gpt2_tokenizer: Any) -> None:
    summary = dataset_summary(load_dataset(gpt2_tokenizer, split="test"))
    assert summary["n_pairs"] == 1144
    assert summary["by_label"] == {"0": 572, "1": 572}
    assert summary["kept_before_balance"] == {"0": 619, "1": 572}
    assert summary["dropped"] == {"multi_token_word": 209, "span_not_word": 0, "target_not_found": 0}
    assert summary["multi_token"] == "drop"
    assert summary["by_token_count"] == {"single": 1144, "multi": 0}
    assert sum(summary["by_pos"].values()) == 1144
    json.dumps(summary)


def test_bad_arguments(gpt2_tokenizer: Any, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown split"):
        load_dataset(gpt2_tokenizer, split="validation")
    with pytest.raises(DataError, match="unknown dataset"):
        load_dataset(gpt2_tokenizer, name="semcor")
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(gpt2_tokenizer, name=str(tmp_path / "nope.jsonl"))


def _pair(i: int, word: str, label: int, split: str = "test", **kw: Any) -> dict[str, Any]:
    context_1 = f"The {word} was here."
    context_2 = f"A {word} again."
    record = {
        "id": f"my-{i}",
        "word": word,
        "pos": "N",
        "context_1": context_1,
        "context_2": context_2,
        "span_1": [4, 4 + len(word)],
        "span_2": [2, 2 + len(word)],
        "label": label,
        "source": "mine",
        "split": split,
    }
    record.update(kw)
    return record


def _write_jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def test_jsonl_file(gpt2_tokenizer: Any, tmp_path: Path) -> None:
    records = [
        _pair(0, "bank", 0),
        _pair(1, "bank", 1),
        _pair(2, "river", 0),
        _pair(3, "antidisestablishmentarianism", 1),  # several tokens
        _pair(4, "bank", 1, span_1=[40, 44]),  # span outside the context
        _pair(5, "bank", 1, split="train"),
    ]
    path = _write_jsonl(tmp_path / "pairs.jsonl", records)
    ds = load_dataset(gpt2_tokenizer, name=str(path), split="test", balance=False)
    assert _ids(ds) == ["my-0", "my-1", "my-2"]
    assert ds.stats.n_raw == 5
    assert ds.stats.dropped == {"multi_token_word": 1, "span_not_word": 0, "target_not_found": 1}
    assert ds.name == "pairs"
    balanced = load_dataset(gpt2_tokenizer, name=str(path), split="test")
    assert balanced.stats.kept == {0: 1, 1: 1}
    assert "my-1" in _ids(balanced)
    assert len(load_dataset(gpt2_tokenizer, name=str(path), split="all", balance=False)) == 4
    with pytest.raises(DataError, match="splits present"):
        load_dataset(gpt2_tokenizer, name=str(path), split="dev")


def test_jsonl_problems(gpt2_tokenizer: Any, tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"id": "x"}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"bad.jsonl:1 is not a valid WordPair"):
        load_dataset(gpt2_tokenizer, name=str(path))
    path.write_text("not json\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"bad\.jsonl:1 is not JSON"):
        load_dataset(gpt2_tokenizer, name=str(path))
    _write_jsonl(path, [_pair(0, "bank", 2)])
    with pytest.raises(DataError, match="not 0 or 1"):
        load_dataset(gpt2_tokenizer, name=str(path))
    _write_jsonl(path, [_pair(0, "bank", 0), _pair(0, "bank", 1)])
    with pytest.raises(DataError, match="duplicate"):
        load_dataset(gpt2_tokenizer, name=str(path))
    _write_jsonl(path, [_pair(0, "antidisestablishmentarianism", 0)])
    with pytest.raises(DataError, match=r"no pair left.*multi_token_word: 1"):
        load_dataset(gpt2_tokenizer, name=str(path))
    _write_jsonl(path, [_pair(0, "bank", 0), _pair(1, "river", 0)])
    with pytest.raises(DataError, match="balancing leaves none"):
        load_dataset(gpt2_tokenizer, name=str(path))
    assert len(load_dataset(gpt2_tokenizer, name=str(path), balance=False)) == 2


def test_wordnet(gpt2_tokenizer: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "wordnet" / "pairs.jsonl"
    monkeypatch.setattr(datasets_module, "wordnet_pairs_path", lambda: missing)
    with pytest.raises(DataError, match="WordNet pairs file"):
        load_dataset(gpt2_tokenizer, name="wordnet")
    missing.parent.mkdir()
    _write_jsonl(missing, [_pair(0, "bank", 0, source="wordnet"), _pair(1, "bank", 1, source="wordnet")])
    ds = load_dataset(gpt2_tokenizer, name="wordnet")
    assert ds.name == "wordnet"
    assert [WordPair.model_validate(p.model_dump()) for p in ds.pairs] == ds.pairs


def test_shipped_wordnet_pairs_if_present(gpt2_tokenizer: Any) -> None:
    if not datasets_module.wordnet_pairs_path().is_file():
        pytest.skip("the WordNet pairs are not built yet")
    ds = load_dataset(gpt2_tokenizer, name="wordnet", split="all")
    assert len(ds) > 0
    for pair in ds.pairs:
        assert 0 <= pair.span_1[0] < pair.span_1[1] <= len(pair.context_1)
        assert 0 <= pair.span_2[0] < pair.span_2[1] <= len(pair.context_2)


@pytest.mark.slow
def test_wic_counts_with_smollm2(smollm2_tokenizer: Any) -> None:
    ds = load_dataset(smollm2_tokenizer, split="test")
    assert ds.stats.kept_before_balance == {0: 611, 1: 572}
    assert len(ds) == 1144
