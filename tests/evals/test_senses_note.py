"""A pair dataset whose split has no sense-retrieval anchor says so, and how many ``--split all`` has."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pseval.cli import app
from pseval.data.sense_pairs import senses_from_pairs
from pseval.data.wic import read_wic_split
from pseval.evals.senses import count_anchors
from tests.evals.conftest import make_sae

HOOK = "blocks.1.hook_resid_post"
RIVER, WATER, MONEY = "he sat on the bank of the river", "the bank was by the water", "money in the bank"
GAME, NIGHT, BRIGHT = "they play the game", "we play the game at night", "the play was bright"
# The test split uses each sentence once; the dev split relabels two of them against a third sentence, so
# only both splits together give a sentence a same-sense and a different-sense partner.
PAIRS = [
    ("test", "bank", RIVER, WATER, 1),
    ("test", "play", GAME, BRIGHT, 0),
    ("test", "bark", "the dog bark was fast", "the tree bark was green", 0),
    ("test", "light", "the light was bright", "a bright light at night", 1),
    ("dev", "bank", RIVER, MONEY, 0),
    ("dev", "play", GAME, NIGHT, 1),
]


def _span(text: str, word: str) -> list[int]:
    start = f" {text} ".index(f" {word} ")
    return [start, start + len(word)]


def _write(path: Path) -> Path:
    rows = [
        {
            "id": f"{split}-{i}", "word": word, "pos": "N", "context_1": c1, "context_2": c2,
            "span_1": _span(c1, word), "span_2": _span(c2, word), "label": label, "split": split,
        }
        for i, (split, word, c1, c2, label) in enumerate(PAIRS)
    ]  # fmt: skip
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_wic_splits_alone_have_no_anchor_and_all_splits_have_some() -> None:
    def anchors(*splits: str) -> int:
        pairs = [r.to_word_pair() for s in splits for r in read_wic_split(s) if r.indices_valid]
        return count_anchors(senses_from_pairs(pairs, "wic"))

    assert anchors("test") == 0 and anchors("dev") == 0
    assert anchors("train", "dev", "test") > 0


def test_eval_says_why_a_split_gets_no_sense_retrieval(
    tmp_path: Path, tmp_cache: Path, tiny_model_dir: Path
) -> None:
    dataset = _write(tmp_path / "pairs.jsonl")
    sae = make_sae(tmp_path / "sae", "topk", HOOK, seed=3)
    args = [
        "eval",
        "--model",
        str(tiny_model_dir),
        "--dataset",
        str(dataset),
        "--sae",
        str(sae),
        "--no-balance",
    ]
    args += ["--bootstrap", "0", "--no-baselines"]
    result = CliRunner().invoke(app, [*args, "--output-folder", str(tmp_path / "test")])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "Within-lemma sense retrieval" not in text
    assert (
        "no within-lemma sense retrieval: no sentence of the pairs test split has both a same-sense and a "
        "different-sense labelled partner (no anchor); --split all has 4 anchors"
    ) in text
    every = CliRunner().invoke(app, [*args, "--split", "all", "--output-folder", str(tmp_path / "all")])
    assert every.exit_code == 0, every.output
    assert "Within-lemma sense retrieval" in every.output and "no within-lemma" not in every.output


def test_the_count_of_all_splits_is_loaded_once_per_dataset_content(
    tmp_path: Path, tmp_cache: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The note's count loads every split (a second on WiC): a rerun reads it back, an edited dataset recounts."""
    import pseval.data.datasets as datasets

    dataset = _write(tmp_path / "pairs.jsonl")
    sae = make_sae(tmp_path / "sae", "topk", HOOK, seed=3)
    loads: list[str] = []
    real_load = datasets.load_dataset
    monkeypatch.setattr(
        datasets, "load_dataset", lambda *a, **k: loads.append(k["split"]) or real_load(*a, **k)
    )
    args = ["eval", "--model", str(tiny_model_dir), "--dataset", str(dataset), "--sae", str(sae)]
    args += ["--no-balance", "--bootstrap", "0", "--no-baselines", "--force-rerun"]

    def note() -> str:
        result = CliRunner().invoke(app, [*args, "--output-folder", str(tmp_path / "out")])
        assert result.exit_code == 0, result.output
        return " ".join(result.output.split())

    assert "--split all has 4 anchors" in note() and loads == ["test", "all"]
    loads.clear()
    assert "--split all has 4 anchors" in note() and loads == ["test"]
    # One more dev pair gives GAME a different-sense partner too: a fifth anchor, counted afresh.
    PAIRS.append(("dev", "play", GAME, BRIGHT, 0))
    try:
        _write(dataset)
    finally:
        PAIRS.pop()
    loads.clear()
    assert "--split all has" in note() and loads == ["test", "all"]
