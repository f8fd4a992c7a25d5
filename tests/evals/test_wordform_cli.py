"""`pseval eval` on a tiny word form x meaning (2 x 2) dataset: the wordform category, its table and numbers."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console
from typer.testing import CliRunner

from pseval.cli import app
from pseval.data.schema import WORDFORM_CELLS
from pseval.report.load import load_results
from pseval.report.wordform_table import print_wordform
from tests.evals.conftest import make_sae

runner = CliRunner()

SW_SS, SW_DS, DW_SS, DW_DS, SUB = WORDFORM_CELLS

# (cell, word, context_1, word_2, context_2, label); same-word same-sense pairs repeat one sentence, so both
# contexts are one prompt: every representation gives them cosine 1 and the same top latent.
_ROWS = [
    (SW_SS, "bank", "the bank of the river", None, "the bank of the river", 1),
    (SW_SS, "tree", "the tree was green", None, "the tree was green", 1),
    (SW_SS, "plant", "a plant in the water", None, "a plant in the water", 1),
    (SW_DS, "bank", "the bank of the river", None, "money in the bank", 0),
    (SW_DS, "plant", "a plant in the water", None, "the plant and the factory", 0),
    (SW_DS, "bat", "the bat and the ball", None, "the bat was an animal", 0),
    (DW_SS, "rose", "the rose was green", "flower", "a flower in the water", 1),
    (DW_SS, "plant", "a plant in the water", "tree", "the tree was green", 1),
    (DW_SS, "game", "the game at night", "match", "the match at night", 1),
    (DW_DS, "rose", "the rose was green", "money", "money in the bank", 0),
    (DW_DS, "plant", "a plant in the water", "chair", "he sat on the chair", 0),
    (DW_DS, "game", "the game at night", "price", "the price of the book", 0),
    (SUB, "game", "the game at night", "match", "the match at night", 1),
    (SUB, "rose", "the rose was green", "flower", "the flower was green", 1),
]


def _span(context: str, word: str) -> list[int]:
    start = context.index(word)
    return [start, start + len(word)]


@pytest.fixture
def wordform_file(tmp_path: Path) -> Path:
    rows = []
    for split in ("test", "dev"):
        for i, (cell, word, c1, word_2, c2, label) in enumerate(_ROWS):
            row = {
                "id": f"wf-{split}-{i:02d}",
                "word": word,
                "pos": "N",
                "context_1": c1,
                "context_2": c2,
                "span_1": _span(c1, word),
                "span_2": _span(c2, word_2 or word),
                "label": label,
                "source": "wordnet-2x2",
                "split": split,
                "cell": cell,
            }
            if word_2 is not None:
                row["word_2"] = word_2
            rows.append(row)
    path = tmp_path / "wordform.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


def test_eval_prints_and_saves_the_wordform_cells_and_effects(
    tmp_path: Path, tmp_cache: Path, tiny_model_dir: Path, wordform_file: Path
) -> None:
    sae = make_sae(tmp_path / "sae", "topk", "blocks.1.hook_resid_post", seed=3)
    out = tmp_path / "results"
    args = ["eval", "--model", str(tiny_model_dir), "--dataset", str(wordform_file), "--sae", str(sae)]
    args += ["--bootstrap", "200", "--no-balance", "--output-folder", str(out), "--interpret-tokens", "0"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    text = result.output
    for needle in ("same word", "different word", "same sense", "different sense", "synonym substitution"):
        assert needle in text
    assert "word effect" in text and "meaning effect" in text
    assert "random SAE" in text and "dense activations" in text

    (path,) = (out / "ps_eval").glob("*_eval_results.json")
    saved = json.loads(path.read_text(encoding="utf-8"))
    wordform = saved["eval_result_unstructured"]["wordform"]
    # the metric categories hold the same numbers, flat (SAEBench refuses nested metrics)
    flat = saved["eval_result_metrics"]
    assert (
        flat["wordform"]["meaning_effect_code_cosine"]
        == wordform["sae"]["effects"]["meaning_effect"]["code_cosine"]
    )
    assert flat["wordform_dense"][f"{SW_SS}_n_pairs"] == wordform["dense"]["cells"][SW_SS]["n_pairs"]
    assert (
        flat["wordform_random_sae"]["word_effect_topk_overlap_low"]
        == (wordform["random_sae"]["effects"]["word_effect"]["topk_overlap_low"])
    )
    assert all(not isinstance(v, (dict, list)) for category in flat.values() for v in category.values())
    by_cell = {c: [i for i, r in enumerate(_ROWS) if r[0] == c] for c in WORDFORM_CELLS}
    details = saved["eval_result_details"]
    assert [d["id"] for d in details] == [f"wf-test-{i:02d}" for i in range(len(_ROWS))]

    sae_scores = wordform["sae"]
    for cell in WORDFORM_CELLS:
        assert sae_scores["cells"][cell]["n_pairs"] == len(by_cell[cell])

    def share(cell: str) -> float:
        return float(np.mean([details[i]["predicted_same"] for i in by_cell[cell]]))

    # identical contexts: the same top latent (when one is active) and cosine 1
    assert sae_scores["cells"][SW_SS]["code_cosine"] == pytest.approx(1.0)
    meaning = sae_scores["effects"]["meaning_effect"]
    assert meaning["share_same_top_latent"] == pytest.approx(share(SW_SS) - share(SW_DS))
    assert meaning["share_same_top_latent_low"] <= meaning["share_same_top_latent"]
    assert meaning["share_same_top_latent"] <= meaning["share_same_top_latent_high"]
    word = sae_scores["effects"]["word_effect"]
    assert word["share_same_top_latent"] == pytest.approx(share(SW_SS) - share(DW_SS))
    cosine_dw_ss = float(np.mean([details[i]["code_cosine"] for i in by_cell[DW_SS]]))
    assert word["code_cosine"] == pytest.approx(1.0 - cosine_dw_ss, abs=1e-6)

    dense = wordform["dense"]
    assert dense["cells"][SW_SS]["code_cosine"] == pytest.approx(1.0)
    assert dense["cells"][SW_SS]["topk_overlap"] == pytest.approx(1.0)
    assert dense["cells"][SW_SS]["share_same_top_latent"] is None
    assert dense["effects"]["word_effect"]["share_same_top_latent"] is None
    assert dense["effects"]["word_effect"]["code_cosine"] is not None
    # the same contrasts on scales free of the base rate: AUC per measure, log odds of the same top latent
    sae_word = sae_scores["separation"]["word_effect"]
    assert (sae_word["higher_cell"], sae_word["lower_cell"]) == (SW_SS, DW_SS)
    assert set(sae_word["auc"]) == {"share_same_top_latent", "topk_overlap", "code_cosine"}
    share_auc = 0.5 + (share(SW_SS) - share(DW_SS)) / 2  # the AUC of a 0/1 measure
    assert sae_word["auc"]["share_same_top_latent"]["value"] == pytest.approx(share_auc)
    assert sae_word["log_odds_ratio_same_top_latent"]["value"] is not None
    dense_word = dense["separation"]["word_effect"]
    assert set(dense_word["auc"]) == {"topk_overlap", "code_cosine"}
    assert dense_word["log_odds_ratio_same_top_latent"] is None
    # the blocks fit an 80-column terminal
    console = Console(width=80, record=True, file=io.StringIO())
    print_wordform(load_results(out), console)
    printed = console.export_text()
    assert "meaning effect" in printed and max(len(line) for line in printed.splitlines()) <= 80
    random_sae = wordform["random_sae"]
    assert random_sae["cells"][SW_SS]["code_cosine"] == pytest.approx(1.0)
    assert random_sae["effects"]["meaning_effect"]["code_cosine_low"] is not None


def test_no_wordform_without_cells(tmp_path: Path, tmp_cache: Path, tiny_model_dir: Path,
                                   tiny_dataset_file: Path) -> None:  # fmt: skip
    sae = make_sae(tmp_path / "sae", "topk", "blocks.1.hook_resid_post", seed=3)
    out = tmp_path / "results"
    args = ["eval", "--model", str(tiny_model_dir), "--dataset", str(tiny_dataset_file), "--sae", str(sae)]
    args += ["--bootstrap", "0", "--no-balance", "--output-folder", str(out), "--interpret-tokens", "0"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "Word form" not in result.output
    (path,) = (out / "ps_eval").glob("*_eval_results.json")
    saved = json.loads(path.read_text(encoding="utf-8"))
    assert not any(category.startswith("wordform") for category in saved["eval_result_metrics"])
    assert "wordform" not in (saved["eval_result_unstructured"] or {})
