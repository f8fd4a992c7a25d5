"""build_prompts: templates, target positions from offsets, BOS handling and de-duplication."""

from __future__ import annotations

from typing import Any

import pytest

from pseval.data.datasets import load_dataset
from pseval.data.prompts import DEFAULT_TEMPLATE, build_prompts, render_template, validate_template
from pseval.data.schema import DatasetStats, PSEvalDataset, WordPair
from pseval.errors import ConfigError, DataError


def _pair(
    pid: str, word: str, c1: str, s1: tuple[int, int], c2: str, s2: tuple[int, int], label: int = 1
) -> WordPair:
    return WordPair(id=pid, word=word, pos="N", context_1=c1, context_2=c2, span_1=s1, span_2=s2, label=label)


def _at(context: str, needle: str, occurrence: int = 0) -> tuple[int, int]:
    """Span of the n-th whole-word occurrence; test-side helper that states spans readably."""
    start = -1
    for _ in range(occurrence + 1):
        start = context.index(needle, start + 1)
    return start, start + len(needle)


def _dataset(*pairs: WordPair) -> PSEvalDataset:
    return PSEvalDataset(
        name="test",
        split="test",
        balanced=False,
        seed=0,
        pairs=list(pairs),
        stats=DatasetStats(n_raw=len(pairs)),
    )


# --- templates -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "template",
    [
        "{context} The means",
        "The {word} means",
        "{context} {context} The {word}",
        "{context} {word} {word}",
        "{context} The {target} means {word}",
    ],
)
def test_invalid_templates(template: str) -> None:
    with pytest.raises(ConfigError):
        validate_template(template)


def test_render_template() -> None:
    assert validate_template(DEFAULT_TEMPLATE) == DEFAULT_TEMPLATE
    text, word_span, context_start = render_template(DEFAULT_TEMPLATE, "A {word} here.", "bank")
    assert text == "A {word} here. The bank means"
    assert text[slice(*word_span)] == "bank"
    assert context_start == 0
    text, word_span, context_start = render_template("Word: {word}. Context: {context}", "It is {x}.", "run")
    assert text == "Word: run. Context: It is {x}."
    assert text[slice(*word_span)] == "run"
    assert text[context_start:] == "It is {x}."


# --- positions ---------------------------------------------------------------------------------------------


def test_art_inside_party_is_never_matched(gpt2_tokenizer: Any) -> None:
    c1 = "We had a party with some art."
    c2 = "The art of war."
    pair = _pair("p0", "art", c1, _at(c1, "art", occurrence=1), c2, _at(c2, "art"))
    assert c1[slice(*pair.span_1)] == "art" and pair.span_1[0] > c1.index("party")
    for position in ("template", "context"):
        ps = build_prompts(gpt2_tokenizer, _dataset(pair), position=position)
        first = ps.prompts[ps.pair_index[0][0]]
        assert first.target_token == " art"
        expected = 6 if position == "context" else 9  # We had a party with some art . The art means
        assert first.target_index == expected
        assert gpt2_tokenizer.decode(first.input_ids[3:4]) == " party"


def test_capitalised_target_via_span(gpt2_tokenizer: Any) -> None:
    c1 = "Bank of England is old."
    c2 = "We sat on the river bank."
    pair = _pair("p0", "bank", c1, (0, 4), c2, _at(c2, "bank"), label=0)
    ps = build_prompts(gpt2_tokenizer, _dataset(pair), position="context")
    first, second = (ps.prompts[i] for i in ps.pair_index[0])
    assert (first.target_index, first.target_token) == (0, "Bank")
    assert second.target_token == " bank"
    ps = build_prompts(gpt2_tokenizer, _dataset(pair), position="context", prepend_bos=True)
    first = ps.prompts[ps.pair_index[0][0]]
    assert first.input_ids[0] == gpt2_tokenizer.bos_token_id
    assert (first.target_index, first.target_token) == (1, "Bank")
    ps = build_prompts(gpt2_tokenizer, _dataset(pair), position="template")
    assert {ps.prompts[i].target_token for i in ps.pair_index[0]} == {" bank"}


def test_split_word_uses_last_subtoken(gpt2_tokenizer: Any) -> None:
    c1 = "He doesn't care."
    c2 = "She does."
    pair = _pair("p0", "do", c1, (3, 7), c2, (4, 8))
    ps = build_prompts(gpt2_tokenizer, _dataset(pair), position="context")
    first, second = (ps.prompts[i] for i in ps.pair_index[0])
    assert first.target_token == " doesn"  # "does" is inside " doesn"+"'t": the token overlapping its end
    assert second.target_token == " does"


def test_prepend_bos_modes(gpt2_tokenizer: Any) -> None:
    c = "The bank was closed."
    pair = _pair("p0", "bank", c, _at(c, "bank"), c, _at(c, "bank"))
    default = build_prompts(gpt2_tokenizer, _dataset(pair))  # GPT-2 adds no special token by default
    off = build_prompts(gpt2_tokenizer, _dataset(pair), prepend_bos=False)
    on = build_prompts(gpt2_tokenizer, _dataset(pair), prepend_bos=True)
    assert default.prompts == off.prompts
    assert on.prompts[0].input_ids == [gpt2_tokenizer.bos_token_id, *off.prompts[0].input_ids]
    assert on.prompts[0].target_index == off.prompts[0].target_index + 1
    assert on.prepend_bos is True and default.prepend_bos is None


def test_dedup_of_identical_prompts(gpt2_tokenizer: Any) -> None:
    shared = "The bank was closed."
    other_1 = "We sat on the bank."
    other_2 = "The bank raised rates."
    pairs = [
        _pair("a", "bank", shared, _at(shared, "bank"), other_1, _at(other_1, "bank"), label=0),
        _pair("b", "bank", shared, _at(shared, "bank"), other_2, _at(other_2, "bank"), label=1),
        _pair("c", "bank", other_2, _at(other_2, "bank"), shared, _at(shared, "bank"), label=1),
    ]
    ps = build_prompts(gpt2_tokenizer, _dataset(*pairs))
    assert len(ps.prompts) == 3
    assert len({p.text for p in ps.prompts}) == 3
    assert ps.pair_index == [(0, 1), (0, 2), (2, 0)]
    assert ps.pair_ids == ["a", "b", "c"]


def test_same_text_different_target_is_kept_twice(gpt2_tokenizer: Any) -> None:
    c = "A bank by the bank."
    pair = _pair("p0", "bank", c, _at(c, "bank"), c, _at(c, "bank", occurrence=1))
    ps = build_prompts(gpt2_tokenizer, _dataset(pair), position="context")
    assert len(ps.prompts) == 2
    assert ps.prompts[0].text == ps.prompts[1].text
    assert ps.prompts[0].target_index < ps.prompts[1].target_index
    assert len(build_prompts(gpt2_tokenizer, _dataset(pair), position="template").prompts) == 1


def test_offsets_with_and_without_leading_space(gpt2_tokenizer: Any, gpt2_trimmed_tokenizer: Any) -> None:
    enc = gpt2_trimmed_tokenizer("The bank", add_special_tokens=False, return_offsets_mapping=True)
    assert enc["offset_mapping"][1] == (4, 8)
    ds = load_dataset(gpt2_tokenizer, split="dev")
    for position in ("template", "context"):
        a = build_prompts(gpt2_tokenizer, ds, position=position)
        b = build_prompts(gpt2_trimmed_tokenizer, ds, position=position)
        assert [(p.input_ids, p.target_index) for p in a.prompts] == [
            (p.input_ids, p.target_index) for p in b.prompts
        ]
        assert a.pair_index == b.pair_index


def test_wic_test_split_with_gpt2(gpt2_tokenizer: Any) -> None:
    ds = load_dataset(gpt2_tokenizer, split="test")
    ps = build_prompts(gpt2_tokenizer, ds)
    assert len(ps.pair_index) == 1144
    assert len(ps.prompts) == 2288
    for pair, (i, j) in zip(ds.pairs, ps.pair_index, strict=True):
        for k in (i, j):
            prompt = ps.prompts[k]
            assert prompt.target_token == " " + pair.word
            assert prompt.input_ids[prompt.target_index + 1 :] == gpt2_tokenizer(" means")["input_ids"]
    ps = build_prompts(gpt2_tokenizer, ds, position="context")
    for pair, (i, j) in zip(ds.pairs, ps.pair_index, strict=True):
        for k, (context, span) in zip(
            (i, j), ((pair.context_1, pair.span_1), (pair.context_2, pair.span_2)), strict=True
        ):
            word = context[slice(*span)]
            token = ps.prompts[k].target_token.strip()
            assert word.endswith(token) or word in token


# --- other tokenizers and errors ---------------------------------------------------------------------------


def test_wordpiece_cls_shift(wordpiece_tokenizer: Any) -> None:
    c1 = "We went to the river bank."
    c2 = "The banking party."
    pair = _pair("p0", "bank", c1, _at(c1, "bank"), c2, _at(c2, "banking"))
    default = build_prompts(wordpiece_tokenizer, _dataset(pair))
    first = default.prompts[default.pair_index[0][0]]
    # [CLS] we went to the river bank . the bank means [SEP]
    assert first.input_ids[0] == wordpiece_tokenizer.cls_token_id
    assert first.input_ids[-1] == wordpiece_tokenizer.sep_token_id
    assert first.target_index == 9
    plain = build_prompts(wordpiece_tokenizer, _dataset(pair), prepend_bos=False)
    assert plain.prompts[plain.pair_index[0][0]].target_index == 8
    context = build_prompts(wordpiece_tokenizer, _dataset(pair), position="context")
    first, second = (context.prompts[i] for i in context.pair_index[0])
    assert first.target_index == 6
    # [CLS] the bank ##ing party . ...: the last sub-token of "banking"
    assert second.target_index == 3
    assert wordpiece_tokenizer.convert_ids_to_tokens(second.input_ids[second.target_index]) == "##ing"
    with pytest.raises(ConfigError, match="no BOS"):
        build_prompts(wordpiece_tokenizer, _dataset(pair), prepend_bos=True)


def test_errors(gpt2_tokenizer: Any) -> None:
    c = "The bank."
    bad = _pair("wic-test-0042", "bank", c, (4, 40), c, (4, 8))
    with pytest.raises(DataError, match="wic-test-0042"):
        build_prompts(gpt2_tokenizer, _dataset(bad))
    empty = _pair("wic-test-0043", "bank", c, (4, 4), c, (4, 8))
    with pytest.raises(DataError, match="wic-test-0043"):
        build_prompts(gpt2_tokenizer, _dataset(empty), position="context")
    good = _pair("p0", "bank", c, (4, 8), c, (4, 8))
    with pytest.raises(ConfigError, match="position"):
        build_prompts(gpt2_tokenizer, _dataset(good), position="middle")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="exactly once"):
        build_prompts(gpt2_tokenizer, _dataset(good), template="{context} means")

    class SlowTokenizer:
        is_fast = False

    with pytest.raises(ConfigError, match="not a fast tokenizer"):
        build_prompts(SlowTokenizer(), _dataset(good))  # type: ignore[arg-type]


def test_empty_dataset(gpt2_tokenizer: Any) -> None:
    ps = build_prompts(gpt2_tokenizer, _dataset())
    assert ps.prompts == [] and ps.pair_index == []


@pytest.mark.slow
def test_smollm2_tokenizer(smollm2_tokenizer: Any) -> None:
    ds = load_dataset(smollm2_tokenizer, split="test", max_pairs=200)
    ps = build_prompts(smollm2_tokenizer, ds, prepend_bos=True)
    for pair, (i, j) in zip(ds.pairs, ps.pair_index, strict=True):
        for k in (i, j):
            assert ps.prompts[k].input_ids[0] == smollm2_tokenizer.bos_token_id
            assert ps.prompts[k].target_token == " " + pair.word
    c = "Bank of England is old."
    pair = _pair("p0", "bank", c, (0, 4), c, (0, 4))
    ps = build_prompts(smollm2_tokenizer, _dataset(pair), position="context", prepend_bos=False)
    assert (ps.prompts[0].target_index, ps.prompts[0].target_token) == (0, "Bank")
