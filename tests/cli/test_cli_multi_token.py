"""`--multi-token drop|last|mean` on `pseval dataset` and `pseval eval`, and span validation drop counts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pseval.cli import app
from tests.evals.conftest import make_sae

runner = CliRunner()

# In the tiny word-level tokenizer " river.bank" is three tokens: river . bank
_MULTI = [
    ("the river.bank was green", "he sat on the river.bank", 1),
    ("the river.bank was green", "the river.bank of the water", 1),
    ("money in the river.bank", "the river.bank was green", 0),
    ("a river.bank and a tree", "the river.bank at night", 0),
]


@pytest.fixture
def data_file(tmp_path: Path, tiny_dataset_file: Path) -> Path:
    rows = [json.loads(line) for line in tiny_dataset_file.read_text(encoding="utf-8").splitlines()]
    for i, (c1, c2, label) in enumerate(_MULTI):
        word = "river.bank"
        rows.append(
            {
                "id": f"multi-{i}",
                "word": word,
                "pos": "N",
                "context_1": c1,
                "context_2": c2,
                "span_1": [c1.index(word), c1.index(word) + len(word)],
                "span_2": [c2.index(word), c2.index(word) + len(word)],
                "label": label,
                "split": "test",
            }
        )
    # a span on another word: dropped as span_not_word
    bad = dict(rows[0], id="bad-span", span_2=[0, 2])
    rows.append(bad)
    path = tmp_path / "pairs.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


def test_dataset_command_counts_per_policy(tiny_model_dir: Path, data_file: Path) -> None:
    base = ["dataset", "--model", str(tiny_model_dir), "--dataset", str(data_file), "--no-balance"]
    drop = runner.invoke(app, base)
    assert drop.exit_code == 0, drop.output
    assert "multi_token_word: 4" in drop.output and "span_not_word: 1" in drop.output
    mean = runner.invoke(app, [*base, "--multi-token", "mean"])
    assert mean.exit_code == 0, mean.output
    assert "12 + 4" in mean.output  # test split: 12 single-token pairs + 4 recovered
    assert "multi_token_word" not in mean.output
    bad = runner.invoke(app, [*base, "--multi-token", "first"])
    assert bad.exit_code == 2 and "--multi-token" in bad.output and "Traceback" not in bad.output


def test_eval_multi_token_mean_reports_by_token_count(
    tmp_path: Path, tmp_cache: Path, tiny_model_dir: Path, data_file: Path
) -> None:
    sae = make_sae(tmp_path / "sae", "topk", "blocks.1.hook_resid_post", seed=3)
    out = tmp_path / "results"
    args = ["eval", "--model", str(tiny_model_dir), "--dataset", str(data_file), "--sae", str(sae)]
    args += ["--bootstrap", "0", "--no-balance", "--output-folder", str(out), "--multi-token", "mean"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    (path,) = (out / "ps_eval").glob("*_eval_results.json")
    saved = json.loads(path.read_text(encoding="utf-8"))
    groups = saved["eval_result_unstructured"]["by_token_count"]
    assert groups["single"]["n_pairs"] == 12 and groups["multi"]["n_pairs"] == 4
    assert saved["eval_result_metrics"]["ps_eval"]["n_pairs"] == 16
    assert set(saved["eval_result_unstructured"]["by_token_count_ci"]) == {"single", "multi"}
    text = json.dumps(saved)
    assert '"multi_token": "mean"' in text
    assert '"span_not_word": 1' in text
    bad = runner.invoke(app, [*args[:-1], "nope"])
    assert bad.exit_code == 2 and "--multi-token" in bad.output
