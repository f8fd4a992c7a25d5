"""Span validation (the span must point at the word), drop reasons in the stats, and multi-token policies."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pseval.data.datasets import DROP_REASONS, dataset_summary, load_dataset
from pseval.data.inflection import span_matches_word
from pseval.errors import ConfigError, DataError

LONG = "antidisestablishmentarianism"
"""Several tokens in GPT-2's vocabulary."""


@pytest.mark.parametrize(
    ("span_text", "word"),
    [
        ("curious", "curious"),
        ("Curious", "curious"),
        ("CURIOUS", "curious"),
        ("banks", "bank"),
        ("bank's", "bank"),
        ("Bank’s", "bank"),
        ("ran", "run"),
        ("went", "go"),
        ("geese", "goose"),
        ("cities", "city"),
        ("stopped", "stop"),
        ("dying", "die"),
        ("better", "good"),
        ("bigger", "big"),
        ("happiest", "happy"),
        ("undid", "undo"),
        ("overrode", "override"),
        ("hewn", "hew"),
        ("'ve", "have"),
        ("curiously", "curious"),  # shared stem
        ("criteria", "criterion"),
        ("banking", "bank"),
        ("ice creams", "ice cream"),
    ],
)
def test_forms_of_the_word_are_accepted(span_text: str, word: str) -> None:
    assert span_matches_word(span_text, word)


@pytest.mark.parametrize(
    ("span_text", "word"),
    [
        ("nothing", "curious"),
        ("bath", "bank"),  # a 4-letter stem must be the whole word
        ("carpet", "car"),  # no stem rule below 4 letters
        ("art", "party"),
        ("round", "call"),
        ("curiousnesses", "curious"),  # more than 4 letters added
        ("cream", "ice cream"),
        ("hot creams", "ice cream"),
        ("", "bank"),
    ],
)
def test_other_words_are_rejected(span_text: str, word: str) -> None:
    assert not span_matches_word(span_text, word)


def _record(
    i: int, word: str, label: int, context_1: str, context_2: str, target_1: str, target_2: str
) -> str:
    start_1, start_2 = context_1.index(target_1), context_2.index(target_2)
    return json.dumps(
        {
            "id": f"p{i}",
            "word": word,
            "pos": "A",
            "context_1": context_1,
            "context_2": context_2,
            "span_1": [start_1, start_1 + len(target_1)],
            "span_2": [start_2, start_2 + len(target_2)],
            "label": label,
        }
    )


def test_span_on_another_word_is_dropped_and_counted(gpt2_tokenizer: Any, tmp_path: Path) -> None:
    """Word 'curious' with span text 'nothing' was scored before; now it is dropped as span_not_word."""
    lines = [
        _record(0, "curious", 1, "A curious cat.", "She was curious about it.", "curious", "curious"),
        _record(1, "curious", 0, "Nothing is curious.", "Curious minds ask.", "Nothing", "Curious"),
        _record(2, "curious", 0, "A curious case.", "He knew nothing at all.", "curious", "nothing"),
        _record(3, "bank", 0, "The bank is open.", "Banks are shut.", "bank", "Banks"),
    ]
    path = tmp_path / "mine.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    ds = load_dataset(gpt2_tokenizer, name=str(path), split="all", balance=False)
    assert [p.id for p in ds.pairs] == ["p0", "p3"]
    assert ds.stats.dropped == {"multi_token_word": 0, "span_not_word": 2, "target_not_found": 0}
    assert ds.stats.n_raw == 4
    assert dataset_summary(ds)["dropped"]["span_not_word"] == 2


def test_every_drop_reason_is_in_the_stats(gpt2_tokenizer: Any, tmp_path: Path) -> None:
    lines = [
        _record(0, "bank", 0, "The bank is open.", "Banks are shut.", "bank", "Banks"),
        _record(1, "bank", 1, "The bank is open.", "A bank again.", "bank", "bank"),
        _record(2, "bank", 1, "The bank is open.", "A river again.", "bank", "river"),  # span_not_word
        _record(3, LONG, 1, f"{LONG} is a word.", f"an {LONG} view", LONG, LONG),  # multi-token
    ]
    bad_span = json.loads(lines[1])
    bad_span.update(id="p4", span_2=[3, 3])  # empty span: target_not_found
    path = tmp_path / "mine.jsonl"
    path.write_text("\n".join([*lines, json.dumps(bad_span)]) + "\n", encoding="utf-8")
    ds = load_dataset(gpt2_tokenizer, name=str(path), split="all", balance=False)
    assert set(ds.stats.dropped) == set(DROP_REASONS)
    assert ds.stats.dropped == {"multi_token_word": 1, "span_not_word": 1, "target_not_found": 1}
    assert [p.id for p in ds.pairs] == ["p0", "p1"]


def _multi_file(tmp_path: Path) -> Path:
    """Six single-token pairs (3 per label) and four multi-token pairs (1 same, 3 different) in GPT-2."""
    long = LONG
    lines = []
    for i, label in enumerate((1, 0, 1, 0, 1, 0)):
        lines.append(_record(i, "bank", label, f"The bank {i} is open.", "Banks are shut.", "bank", "Banks"))
    for i, label in enumerate((0, 1, 0, 0), start=10):
        lines.append(_record(i, long, label, f"{long} {i} here.", f"Some {long}.", long, long))
    path = tmp_path / "multi.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_multi_token_policies_keep_the_single_token_pairs_of_drop(
    gpt2_tokenizer: Any, tmp_path: Path
) -> None:
    path = str(_multi_file(tmp_path))
    drop = load_dataset(gpt2_tokenizer, name=path, split="all", multi_token="drop", seed=3)
    assert drop.stats.dropped["multi_token_word"] == 4
    assert drop.stats.kept_by_token_count == {"single": 6, "multi": 0}
    assert drop.word_n_tokens == [1] * 6
    for policy in ("last", "mean"):
        ds = load_dataset(gpt2_tokenizer, name=path, split="all", multi_token=policy, seed=3)  # type: ignore[arg-type]
        assert ds.stats.multi_token == policy == ds.multi_token
        assert ds.stats.dropped["multi_token_word"] == 0
        assert ds.stats.kept_before_balance == {0: 3 + 3, 1: 3 + 1}
        # the multi-token pairs are balanced on their own: 1 same + 1 of the 3 different
        assert ds.stats.kept_by_token_count == {"single": 6, "multi": 2}
        assert ds.stats.kept == {0: 4, 1: 4}
        groups = ds.token_count_groups()
        assert [ds.pairs[i] for i in groups["single"]] == drop.pairs
        multi_ids = {ds.pairs[i].id for i in groups["multi"]}
        assert "p11" in multi_ids and len(multi_ids & {"p10", "p12", "p13"}) == 1
        assert all(n > 1 for n in (ds.word_n_tokens[i] for i in groups["multi"]))
        ids = [int(p.id[1:]) for p in ds.pairs]
        assert ids == sorted(ids)  # file order
        summary = dataset_summary(ds)
        assert summary["by_token_count"] == {"single": 6, "multi": 2} and summary["multi_token"] == policy


@pytest.mark.parametrize("policy", ["last", "mean"])
def test_max_pairs_caps_single_and_multi_token_pairs_together(
    gpt2_tokenizer: Any, tmp_path: Path, policy: str
) -> None:
    path = str(_multi_file(tmp_path))
    balanced = load_dataset(gpt2_tokenizer, name=path, split="all")
    ds = load_dataset(gpt2_tokenizer, name=path, split="all", max_pairs=4, multi_token=policy)  # type: ignore[arg-type]
    assert len(ds) == 4 and ds.stats.kept == {0: 2, 1: 2}
    # 6 single- and 2 multi-token pairs share the cap; each group keeps one pair per label
    assert ds.stats.kept_by_token_count == {"single": 2, "multi": 2}
    assert {ds.pairs[i].id for i in ds.token_count_groups()["single"]} <= {p.id for p in balanced.pairs}
    unbalanced = load_dataset(
        gpt2_tokenizer,
        name=path,
        split="all",
        balance=False,
        max_pairs=5,
        multi_token=policy,  # type: ignore[arg-type]
    )
    assert len(unbalanced) == 5 and unbalanced.stats.kept_by_token_count == {"single": 3, "multi": 2}
    # a cap above the pairs there are keeps them all
    everything = load_dataset(gpt2_tokenizer, name=path, split="all", max_pairs=100, multi_token=policy)  # type: ignore[arg-type]
    assert everything.stats.kept_by_token_count == {"single": 6, "multi": 2}


def test_max_pairs_under_drop_draws_as_before(gpt2_tokenizer: Any) -> None:
    # The draw of --multi-token drop is unchanged: stored results keep their pairs.
    ds = load_dataset(gpt2_tokenizer, split="test", max_pairs=101, seed=7)
    assert len(ds) == 100 and ds.stats.kept == {0: 50, 1: 50}
    again = load_dataset(gpt2_tokenizer, split="test", max_pairs=100, seed=7)
    assert [p.id for p in again.pairs] == [p.id for p in ds.pairs]


def test_multi_token_policy_errors(gpt2_tokenizer: Any, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--multi-token"):
        load_dataset(gpt2_tokenizer, multi_token="first")  # type: ignore[arg-type]
    path = tmp_path / "only-multi.jsonl"
    long = LONG
    path.write_text(
        _record(0, long, 0, f"{long} here.", f"Some {long}.", long, long) + "\n", encoding="utf-8"
    )
    with pytest.raises(DataError, match="--multi-token mean"):
        load_dataset(gpt2_tokenizer, name=str(path), split="all")
    assert (
        len(load_dataset(gpt2_tokenizer, name=str(path), split="all", balance=False, multi_token="last")) == 1
    )


def test_wic_multi_token_counts_with_gpt2(gpt2_tokenizer: Any) -> None:
    """WiC test with GPT-2: 209 pairs have a multi-token word; last/mean recover them, balanced on their own."""
    drop = load_dataset(gpt2_tokenizer, split="test")
    mean = load_dataset(gpt2_tokenizer, split="test", multi_token="mean")
    assert mean.stats.dropped == {"multi_token_word": 0, "span_not_word": 0, "target_not_found": 0}
    assert mean.stats.kept_before_balance[0] + mean.stats.kept_before_balance[1] == 1400
    groups = mean.token_count_groups()
    assert [mean.pairs[i] for i in groups["single"]] == drop.pairs
    assert mean.stats.kept_by_token_count["single"] == 1144
    multi_labels = [mean.pairs[i].label for i in groups["multi"]]
    assert multi_labels.count(0) == multi_labels.count(1) > 0
