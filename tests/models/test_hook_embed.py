"""``hook_embed``: the token embedding as block 0 reads it, where no position embedding is added to it."""

from __future__ import annotations

import math

import pytest
import torch

from pseval.errors import ModelError
from pseval.models.hooks import ADAPTERS, FamilyAdapter, hook_width, parse_hook_name, run_with_cache
from tests.helpers import random_batch, tiny_model

ROTARY_FAMILIES = ("llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3_text", "gpt_neox")
GEMMA_FAMILIES = ("gemma", "gemma2", "gemma3_text")


@pytest.mark.parametrize("family", ROTARY_FAMILIES)
def test_hook_embed_is_the_input_of_block_0(family: str) -> None:
    model = tiny_model(family, n_layers=2)
    ids, mask = random_batch()
    acts = run_with_cache(model, ids, mask, ["hook_embed", "blocks.0.hook_resid_pre"])
    assert list(acts) == ["hook_embed", "blocks.0.hook_resid_pre"]
    assert torch.equal(acts["hook_embed"], acts["blocks.0.hook_resid_pre"])
    assert hook_width(model, "hook_embed") == 32
    rows = model.get_input_embeddings().weight[ids]
    if family in GEMMA_FAMILIES:
        # Gemma scales the embedding by sqrt(d_model) before block 0, as TransformerLens's hook_embed does.
        torch.testing.assert_close(acts["hook_embed"], rows * math.sqrt(32))
    else:
        torch.testing.assert_close(acts["hook_embed"], rows)


@pytest.mark.parametrize("family", ["gpt2", "bert"])
def test_hook_embed_is_refused_where_positions_are_added(family: str) -> None:
    model = tiny_model(family, n_layers=2)
    with pytest.raises(ModelError, match=r"position embedding.*blocks\.0\.hook_resid_pre") as info:
        parse_hook_name("hook_embed", model)
    assert "\n" not in str(info.value)
    with pytest.raises(ModelError, match="hook_embed"):
        run_with_cache(model, *random_batch(), ["hook_embed"])
    parse_hook_name("blocks.0.hook_resid_pre", model)  # the sum itself stays available


def test_a_registered_family_with_a_position_table_is_refused_too(monkeypatch: pytest.MonkeyPatch) -> None:
    import transformers as tf

    config = tf.OPTConfig(
        vocab_size=64, hidden_size=32, num_hidden_layers=2, ffn_dim=64, num_attention_heads=4,
        max_position_embeddings=64, word_embed_proj_dim=32,
    )  # fmt: skip
    model = tf.OPTForCausalLM(config).eval()
    adapter = FamilyAdapter(
        families=("opt",),
        layers=("model.decoder.layers",),
        attn_out="self_attn",
        mlp_out="fc2",
        resid_mid_input="final_layer_norm",
    )
    monkeypatch.setitem(ADAPTERS, "opt", adapter)
    assert parse_hook_name("blocks.0.hook_resid_pre", model).layer == 0
    with pytest.raises(ModelError, match="position embedding"):
        parse_hook_name("hook_embed", model)


def test_hook_embed_without_a_model_parses_as_block_0_input() -> None:
    point = parse_hook_name(" hook_embed ")
    assert (point.layer, point.kind, point.name) == (0, "resid_pre", "blocks.0.hook_resid_pre")
    with pytest.raises(ModelError, match=r"unknown hook name.*hook_embed"):
        parse_hook_name("blocks.0.hook_embed")
