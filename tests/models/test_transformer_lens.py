"""pseval's hook values (raw and processed) against TransformerLens's HookedTransformer, offline.

A tiny random-weight model is saved to a temporary folder, converted with TransformerLens's own
weight conversion and processed by ``load_and_process_state_dict`` exactly as ``from_pretrained`` (or
SAELens's ``from_pretrained_no_processing(**model_from_pretrained_kwargs)``) would; no network.
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from pseval.models.hooks import run_with_cache
from pseval.models.processing import ActivationProcessing, apply_processing
from tests.helpers import random_batch, tiny_model

pytest.importorskip("transformer_lens")

RESIDUAL = ("hook_resid_pre", "hook_attn_out", "hook_resid_mid", "hook_mlp_out", "hook_resid_post")
AFTER_NORM = ("ln2.hook_normalized", "mlp.hook_post")
FULL = {"fold_ln": True, "center_writing_weights": True, "center_unembed": True, "fold_value_biases": True}
NONE = {
    "fold_ln": False,
    "center_writing_weights": False,
    "center_unembed": False,
    "fold_value_biases": False,
}
SAELENS_CWW = {**NONE, "center_writing_weights": True}


def _hooked(model: nn.Module, processing: dict[str, bool]) -> Any:

    # TransformerLens picks some architectures from the *path* (any "llama" or "gemma" in it), so the
    # folder must not be named after the test.
    with tempfile.TemporaryDirectory(prefix="tl-model-") as tmp:
        folder = Path(tmp)
        model.save_pretrained(folder)
        return _convert(model, folder, processing)


def _convert(model: nn.Module, folder: Path, processing: dict[str, bool]) -> Any:
    from transformer_lens import HookedTransformer
    from transformer_lens import loading_from_pretrained as loading

    cfg = loading.get_pretrained_model_config(str(folder), hf_model=model, fold_ln=processing["fold_ln"])
    cfg.tokenizer_name = None  # the tiny models have no tokenizer files; ids are passed directly
    state_dict = loading.get_pretrained_state_dict(str(folder), cfg, hf_model=model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        hooked = HookedTransformer(cfg, tokenizer=None, move_to_device=False)
    hooked.load_and_process_state_dict(state_dict, **processing)
    return hooked.eval()


def _model(family: str) -> nn.Module:
    extra = {"n_ctx": 128} if family == "gpt2" else {}  # TransformerLens reads GPT-2's n_ctx
    return tiny_model(family, n_layers=2, **extra)


def _compare(family: str, tl_kwargs: dict[str, bool], hooks: tuple[str, ...]) -> None:
    model = _model(family)
    hooked = _hooked(model, tl_kwargs)
    processing = ActivationProcessing(center_writing_weights=tl_kwargs["center_writing_weights"])
    ids, mask = random_batch(n=2, t=6)
    names = [f"blocks.{layer}.{hook}" for layer in range(2) for hook in hooks]
    ours = run_with_cache(model, ids, mask, names)
    with torch.no_grad():
        _, cache = hooked.run_with_cache(ids)
    for name in names:
        expected = cache[name].reshape(*ids.shape, -1)  # hook_z: [B, T, heads, d_head] flattened
        got = apply_processing(model, name, ours[name], processing)
        torch.testing.assert_close(got, expected, atol=2e-5, rtol=1e-4, msg=lambda m, n=name: f"{n}: {m}")


@pytest.mark.parametrize("family", ["gpt2", "gpt_neox_sequential", "llama"])
def test_raw_hooks_match_unprocessed_transformer_lens(family: str) -> None:
    _compare(family, NONE, (*RESIDUAL, *AFTER_NORM, "attn.hook_z"))


@pytest.mark.parametrize("family", ["gpt2", "gpt_neox_sequential", "llama"])
def test_processed_hooks_match_from_pretrained(family: str) -> None:
    """``from_pretrained``'s default processing: centred residual writes (LayerNorm models only)."""
    hooks = (*RESIDUAL, *AFTER_NORM)
    if family == "llama":  # no value biases, so folding them leaves hook_z unchanged
        hooks = (*hooks, "attn.hook_z")
    _compare(family, FULL, hooks)


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_saelens_center_writing_weights_only(family: str) -> None:
    """``from_pretrained_no_processing(center_writing_weights=True)``, as gpt2-small-res-jb records it."""
    _compare(family, SAELENS_CWW, (*RESIDUAL, *AFTER_NORM, "attn.hook_z"))


def test_centring_is_not_a_no_op_on_gpt2() -> None:
    """Guard: the processed residual really differs from the raw one, so the checks above mean something."""
    model = _model("gpt2")
    hooked = _hooked(model, FULL)
    ids, mask = random_batch(n=2, t=6)
    raw = run_with_cache(model, ids, mask, ["blocks.1.hook_resid_post"])["blocks.1.hook_resid_post"]
    with torch.no_grad():
        _, cache = hooked.run_with_cache(ids)
    assert (raw - cache["blocks.1.hook_resid_post"]).abs().max() > 1e-2


# --------------------------------------------------------------------------------------------------
# TransformerBridge (raw Hugging Face weights, TransformerLens hook names) on every decoder family

BRIDGE_HOOKS = {
    **{hook: hook for hook in (*RESIDUAL, *AFTER_NORM, "attn.hook_z")},
    "hook_mlp_in": "mlp.hook_in",  # the MLP module's input; the bridge names it mlp.hook_in
}


def _bridge(model: nn.Module) -> Any:
    from transformer_lens.model_bridge import TransformerBridge
    from transformers import AutoTokenizer

    from tests.helpers import tiny_tokenizer

    with tempfile.TemporaryDirectory(prefix="tl-bridge-") as tmp:
        model.save_pretrained(tmp)
        tiny_tokenizer().save_pretrained(tmp)
        tokenizer = AutoTokenizer.from_pretrained(tmp)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return TransformerBridge.boot_transformers(tmp, hf_model=model, tokenizer=tokenizer, device="cpu")


@pytest.mark.parametrize(
    "family", ["llama", "qwen3", "gemma", "gemma2", "gemma3_text", "gpt2", "gpt_neox_sequential"]
)
def test_hooks_match_transformer_bridge(family: str) -> None:
    model = tiny_model(family, n_layers=2, attn_implementation="eager")
    ids, mask = random_batch(n=2, t=6)
    names = {
        f"blocks.{layer}.{ours}": f"blocks.{layer}.{theirs}"
        for layer in range(2)
        for ours, theirs in BRIDGE_HOOKS.items()
    }
    acts = run_with_cache(model, ids, mask, list(names))
    bridge = _bridge(model)  # after ours: the bridge replaces the model's modules in place
    with torch.no_grad():
        _, cache = bridge.run_with_cache(ids)
    for ours, theirs in names.items():
        expected = cache[theirs].reshape(*ids.shape, -1)
        torch.testing.assert_close(
            acts[ours], expected, atol=1e-5, rtol=1e-5, msg=lambda m, n=ours: f"{n}: {m}"
        )
