"""``attn.hook_z``, ``hook_mlp_in`` and ``ln2.hook_normalized`` on tiny random models of every family."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pseval.errors import ModelError
from pseval.models.hooks import (
    ATTN_Z,
    LN2_NORMALIZED,
    MLP_IN,
    get_layers,
    hook_width,
    parse_hook_name,
    patch_hook,
    run_with_cache,
)
from tests.helpers import DECODER_FAMILIES, FAMILIES, random_batch, tiny_model

GEMMA_POST_NORM = ("gemma2", "gemma3_text")
SEQUENTIAL = tuple(f for f in DECODER_FAMILIES if f != "gpt_neox")


@pytest.fixture(scope="module")
def models() -> dict[str, nn.Module]:
    return {family: tiny_model(family, n_layers=2) for family in FAMILIES}


def _o_proj(family: str, layer: nn.Module) -> nn.Module:
    if family == "gpt2":
        return layer.attn.c_proj
    if family.startswith("gpt_neox"):
        return layer.attention.dense
    if family == "bert":
        return layer.attention.output.dense
    return layer.self_attn.o_proj


def _mlp_norm(family: str, layer: nn.Module) -> nn.Module:
    if family == "gpt2":
        return layer.ln_2
    if family in GEMMA_POST_NORM:
        return layer.pre_feedforward_layernorm
    return layer.post_attention_layernorm


@pytest.mark.parametrize("family", FAMILIES)
def test_parse_and_width(models: dict[str, nn.Module], family: str) -> None:
    model = models[family]
    for suffix, kind in (
        ("attn.hook_z", ATTN_Z),
        ("hook_mlp_in", MLP_IN),
        ("ln2.hook_normalized", LN2_NORMALIZED),
    ):
        name = f"blocks.1.{suffix}"
        point = parse_hook_name(name)
        assert (point.layer, point.kind, point.name) == (1, kind, name)
        if family == "bert" and kind == LN2_NORMALIZED:
            continue
        assert parse_hook_name(name, model) == point
        expected = 32  # d_model, and n_heads * d_head of the tiny configs
        assert hook_width(model, name) == expected


def test_hook_z_width_follows_head_dim_not_d_model() -> None:
    model = tiny_model("gemma3_text", n_layers=2, head_dim=16)  # 4 heads x 16 = 64 != d_model 32
    assert hook_width(model, "blocks.0.attn.hook_z") == 64
    ids, mask = random_batch()
    assert run_with_cache(model, ids, mask, ["blocks.0.attn.hook_z"])["blocks.0.attn.hook_z"].shape == (
        3,
        7,
        64,
    )


def test_bert_has_no_ln2_normalized(models: dict[str, nn.Module]) -> None:
    with pytest.raises(ModelError, match="hook_mlp_in"):
        parse_hook_name("blocks.0.ln2.hook_normalized", models["bert"])


def test_ordering_and_forms() -> None:
    z, mid, norm, mlp_in, post = (
        parse_hook_name(f"blocks.2.{s}")
        for s in ("attn.hook_z", "hook_resid_mid", "ln2.hook_normalized", "hook_mlp_in", "mlp.hook_post")
    )
    assert (
        parse_hook_name("blocks.2.hook_resid_pre").order
        < z.order
        < parse_hook_name("blocks.2.hook_attn_out").order
    )
    assert mid.order < norm.order < mlp_in.order < post.order
    with pytest.raises(ModelError, match=r"attn\.hook_z"):
        parse_hook_name("blocks.2.attn.hook_q")


@pytest.mark.parametrize("family", FAMILIES)
def test_hook_z_through_the_output_projection_gives_attn_out(
    models: dict[str, nn.Module], family: str
) -> None:
    """``o_proj(hook_z)`` is what attention writes (Gemma 2/3: after the post-attention norm)."""
    model = models[family]
    ids, mask = random_batch()
    for index, layer in enumerate(get_layers(model)):
        z_name = f"blocks.{index}.attn.hook_z"
        if family == "bert":  # post-LN: LayerNorm(dense(z) + resid_pre) is the MLP's input
            acts = run_with_cache(
                model, ids, mask, [z_name, f"blocks.{index}.hook_resid_pre", f"blocks.{index}.hook_mlp_in"]
            )
            with torch.no_grad():
                out = layer.attention.output
                expected = out.LayerNorm(out.dense(acts[z_name]) + acts[f"blocks.{index}.hook_resid_pre"])
            torch.testing.assert_close(expected, acts[f"blocks.{index}.hook_mlp_in"], atol=1e-5, rtol=0)
            continue
        attn_name = f"blocks.{index}.hook_attn_out"
        acts = run_with_cache(model, ids, mask, [z_name, attn_name])
        assert acts[z_name].abs().max() > 1e-3
        with torch.no_grad():
            written = _o_proj(family, layer)(acts[z_name])
            if family in GEMMA_POST_NORM:
                written = layer.post_attention_layernorm(written)
        torch.testing.assert_close(written, acts[attn_name], atol=1e-5, rtol=0)


@pytest.mark.parametrize("family", DECODER_FAMILIES)
def test_mlp_in_is_the_normed_input_and_gives_mlp_out(models: dict[str, nn.Module], family: str) -> None:
    model = models[family]
    ids, mask = random_batch()
    for index, layer in enumerate(get_layers(model)):
        reads = (
            "hook_resid_mid" if family in SEQUENTIAL else "hook_resid_pre"
        )  # parallel: MLP reads resid_pre
        names = [f"blocks.{index}.{s}" for s in (reads, "hook_mlp_in", "ln2.hook_normalized", "hook_mlp_out")]
        source, mlp_in, normalized, mlp_out = run_with_cache(model, ids, mask, names).values()
        norm = _mlp_norm(family, layer)
        with torch.no_grad():
            torch.testing.assert_close(mlp_in, norm(source), atol=1e-5, rtol=0)
            written = layer.mlp(mlp_in)
            if family in GEMMA_POST_NORM:
                written = layer.post_feedforward_layernorm(written)
        torch.testing.assert_close(written, mlp_out, atol=1e-5, rtol=0)
        # ln2.hook_normalized: the norm's input scaled to unit RMS (centred first for LayerNorm),
        # a positive multiple of that input per token, and the norm's output before its weight.
        centred = isinstance(norm, nn.LayerNorm)
        base = source - source.mean(-1, keepdim=True) if centred else source
        rms = normalized.pow(2).mean(-1).sqrt()
        torch.testing.assert_close(rms, torch.ones_like(rms), atol=1e-2, rtol=0)  # eps
        ratio = normalized / base
        torch.testing.assert_close(ratio, ratio[..., :1].expand_as(ratio), atol=1e-3, rtol=1e-3)
        assert bool((ratio > 0).all())
        weight = norm.weight.detach()
        scale = 1.0 + weight if family.startswith("gemma") else weight
        expected_in = normalized * scale + (
            norm.bias.detach() if getattr(norm, "bias", None) is not None else 0.0
        )
        torch.testing.assert_close(expected_in, mlp_in, atol=1e-5, rtol=0)


def test_patching_hook_z_and_mlp_in(models: dict[str, nn.Module]) -> None:
    model = models["llama"]
    ids, mask = random_batch()
    with patch_hook(model, "blocks.0.attn.hook_z", torch.zeros_like):
        after = run_with_cache(model, ids, mask, ["blocks.0.hook_attn_out"])["blocks.0.hook_attn_out"]
    assert after.abs().max() == 0  # Llama's o_proj has no bias
    with patch_hook(model, "blocks.1.hook_mlp_in", torch.zeros_like):
        after = run_with_cache(model, ids, mask, ["blocks.1.hook_mlp_out"])["blocks.1.hook_mlp_out"]
    assert after.abs().max() == 0  # SwiGLU of zero is zero
    with (
        pytest.raises(ModelError, match="not patched"),
        patch_hook(model, "blocks.0.ln2.hook_normalized", torch.zeros_like),
    ):
        pass


def test_early_stop_after_hook_z(models: dict[str, nn.Module]) -> None:
    """Capturing only ``attn.hook_z`` of layer 0 never runs layer 0's MLP."""
    model = models["llama"]
    ran: list[bool] = []
    handle = get_layers(model)[0].mlp.register_forward_hook(lambda *_: ran.append(True))
    try:
        ids, mask = random_batch()
        run_with_cache(model, ids, mask, ["blocks.0.attn.hook_z"])
    finally:
        handle.remove()
    assert not ran
