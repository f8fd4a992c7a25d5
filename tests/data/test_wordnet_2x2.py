"""The shipped WordNet word form x meaning (2 x 2) pairs and the builder pieces that make them."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from pseval.data.datasets import load_dataset, wordnet_2x2_pairs_path
from pseval.data.inflection import span_matches_word
from pseval.data.schema import WORDFORM_CELLS, WordPair
from tests.data.test_wordnet_dataset import build

RESOURCE_DIR = Path(__file__).resolve().parents[2] / "pseval" / "resources" / "wordnet"
two = sys.modules["wordnet_2x2"]  # imported by the build script


@pytest.fixture(scope="module")
def pairs() -> list[WordPair]:
    lines = wordnet_2x2_pairs_path().read_text(encoding="utf-8").splitlines()
    return [WordPair.model_validate_json(line) for line in lines]


def test_shipped_file_parses_and_matches_its_stats(pairs: list[WordPair]) -> None:
    assert wordnet_2x2_pairs_path().stat().st_size < 3_000_000
    stats = json.loads((RESOURCE_DIR / "stats_2x2.json").read_text(encoding="utf-8"))
    assert stats["n_pairs"] == len(pairs) == len({p.id for p in pairs})
    assert stats["cells"] == dict(Counter(p.cell for p in pairs))
    assert set(stats["cells"]) == set(WORDFORM_CELLS)
    assert min(stats["cells"].values()) >= 1000
    # WordNet's natural different-word same-sense pairs are counted before capping
    assert (
        stats["available"]["different_word_same_sense_pairs"] >= stats["cells"]["different_word_same_sense"]
    )
    assert {p.split for p in pairs} == {"dev", "test"}


def test_cells_labels_words_and_spans(pairs: list[WordPair]) -> None:
    for p in pairs:
        assert p.source == "wordnet-2x2" and p.cell in WORDFORM_CELLS
        assert p.label == (1 if p.cell.endswith("same_sense") or p.cell == "synonym_substitution" else 0)
        same_word = p.cell.startswith("same_word")
        assert (p.word_2 is None) == same_word, p.id
        assert span_matches_word(p.context_1[slice(*p.span_1)], p.word), p.id
        assert span_matches_word(p.context_2[slice(*p.span_2)], p.target_2), p.id
        if p.cell == "synonym_substitution":
            # the same sentence with the word replaced: identical outside the spans
            assert p.context_1[: p.span_1[0]] == p.context_2[: p.span_2[0]]
            assert p.context_1[p.span_1[1] :] == p.context_2[p.span_2[1] :]
            assert p.context_1[slice(*p.span_1)].lower() == p.word
        elif p.cell != "same_word_same_sense":
            assert p.context_1 != p.context_2


def test_loads_for_a_tokenizer_with_both_words_single_tokens(gpt2_tokenizer: Any) -> None:
    ds = load_dataset(gpt2_tokenizer, name="wordnet-2x2", split="test", balance=False)
    assert ds.name == "wordnet-2x2"
    assert set(Counter(p.cell for p in ds.pairs)) == set(WORDFORM_CELLS)
    for pair in ds.pairs[:200]:
        for word in (pair.word, pair.target_2):
            assert len(gpt2_tokenizer(" " + word, add_special_tokens=False)["input_ids"]) == 1
    assert ds.stats.dropped["span_not_word"] == 0
    assert ds.stats.dropped["multi_token_word"] > 0


def test_prompts_use_each_contexts_own_word(gpt2_tokenizer: Any) -> None:
    from pseval.data.prompts import build_prompts

    ds = load_dataset(gpt2_tokenizer, name="wordnet-2x2", split="dev", balance=False, max_pairs=50)
    prompt_set = build_prompts(gpt2_tokenizer, ds)
    for pair, (i, j) in zip(ds.pairs, prompt_set.pair_index, strict=True):
        assert prompt_set.prompts[i].text.endswith(f"The {pair.word} means")
        assert prompt_set.prompts[j].text.endswith(f"The {pair.target_2} means")
        assert prompt_set.prompts[j].target_token.strip() == pair.target_2


def _synsets() -> list[Any]:
    s = build.Synset
    return [
        s("1", "V", ("breathe", "respire"), ("I can breathe better now", "The patient is respiring slowly")),
        s("2", "V", ("breathe",), ("he could breathe fire at them", "she did breathe a sigh")),
        s("3", "N", ("tree",), ("a tall tree in the park", "the tree fell down")),
        s("4", "V", ("run",), ("they run every morning here",)),
        s("5", "V", ("walk",), ("we walk to school daily",)),
    ]


def test_builder_cells_on_synthetic_synsets() -> None:
    config = two.Build2x2Config(seed=0)
    counts = {("respire", "V"): 3, ("breathe", "V"): 5, ("run", "V"): 3, ("walk", "V"): 6}
    pairs = two.build_2x2_pairs(_synsets(), counts, config)
    assert pairs == two.build_2x2_pairs(_synsets(), counts, config)  # deterministic
    by_cell = {cell: [p for p in pairs if p.cell == cell] for cell in WORDFORM_CELLS}
    (dwss,) = by_cell["different_word_same_sense"]
    assert {dwss.word, dwss.word_2} == {"breathe", "respire"}
    # the control keeps the first use and swaps the second for a verb of the same frequency bin
    (control,) = by_cell["different_word_different_sense"]
    assert control.context_1 == dwss.context_1 and control.pos == "V"
    second_bin = two.frequency_bin(counts[(dwss.target_2, "V")])
    assert two.frequency_bin(counts.get((control.target_2, "V"), 0)) == second_bin
    assert control.target_2 not in ("breathe", "respire")
    (sub,) = by_cell["synonym_substitution"]
    assert sub.context_1 == "I can breathe better now" and sub.context_2 == "I can respire better now"
    assert all(p.word == "breathe" for p in by_cell["same_word_different_sense"])
    assert {p.word for p in by_cell["same_word_same_sense"]} <= {"breathe", "tree"}


def test_frequency_bins() -> None:
    assert [two.frequency_bin(n) for n in (0, 1, 2, 3, 4, 7, 8)] == [0, 1, 2, 2, 3, 3, 4]
