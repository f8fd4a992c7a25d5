"""``blocks.L.mlp.hook_post``: the MLP's hidden activation, checked against a manual computation per family."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import nn

from pseval.errors import ModelError
from pseval.models.hooks import (
    HOOK_KINDS,
    get_layers,
    hook_width,
    parse_hook_name,
    patch_hook,
    run_with_cache,
)
from tests.helpers import random_batch, tiny_model

FAMILIES = ("llama", "gpt2", "gpt_neox", "gemma2")


@pytest.fixture(scope="module")
def models() -> dict[str, nn.Module]:
    return {family: tiny_model(family) for family in (*FAMILIES, "bert")}


def _manual_hidden(family: str, mlp: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """The MLP's hidden activation computed by hand from its submodules (what the down projection reads)."""
    if family in ("llama", "gemma2"):  # SwiGLU / GeGLU: act(gate(x)) * up(x)
        return lambda x: mlp.act_fn(mlp.gate_proj(x)) * mlp.up_proj(x)
    if family == "gpt2":
        return lambda x: mlp.act(mlp.c_fc(x))
    if family == "gpt_neox":
        return lambda x: mlp.act(mlp.dense_h_to_4h(x))
    raise AssertionError(family)


def _down(family: str, mlp: nn.Module) -> nn.Module:
    name = {"llama": "down_proj", "gemma2": "down_proj", "gpt2": "c_proj", "gpt_neox": "dense_4h_to_h"}[
        family
    ]
    module: nn.Module = getattr(mlp, name)
    return module


def _capture_mlp_input(model: nn.Module, layer: int, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The input of layer ``layer``'s MLP module, read with a plain PyTorch hook in a full forward pass."""
    seen: dict[str, torch.Tensor] = {}
    mlp = get_layers(model)[layer].mlp

    def grab(_m: nn.Module, args: tuple[Any, ...]) -> None:
        seen["x"] = args[0].detach().clone()

    handle = mlp.register_forward_pre_hook(grab)
    try:
        with torch.no_grad():
            model(input_ids=ids, attention_mask=mask)
    finally:
        handle.remove()
    return seen["x"]


@pytest.mark.parametrize("family", FAMILIES)
def test_mlp_post_equals_the_manual_hidden_activation(models: dict[str, nn.Module], family: str) -> None:
    model = models[family]
    ids, mask = random_batch()
    for layer in range(len(get_layers(model))):
        name = f"blocks.{layer}.mlp.hook_post"
        acts = run_with_cache(model, ids, mask, [name, f"blocks.{layer}.hook_mlp_out"])
        mlp = get_layers(model)[layer].mlp
        with torch.no_grad():
            expected = _manual_hidden(family, mlp)(_capture_mlp_input(model, layer, ids, mask))
        assert acts[name].shape == (*ids.shape, hook_width(model, name))
        assert acts[name].abs().max() > 1e-3
        torch.testing.assert_close(acts[name], expected, atol=1e-5, rtol=0)
        if family != "gemma2":  # Gemma 2's mlp_out is after its post-feedforward norm
            with torch.no_grad():
                torch.testing.assert_close(
                    _down(family, mlp)(acts[name]), acts[f"blocks.{layer}.hook_mlp_out"], atol=1e-5, rtol=0
                )


def test_hook_width_is_the_mlp_hidden_size(models: dict[str, nn.Module]) -> None:
    assert hook_width(models["llama"], "blocks.0.mlp.hook_post") == 64  # intermediate_size = 2 * d_model
    assert hook_width(models["gpt2"], "blocks.2.mlp.hook_post") == 128  # GPT-2: n_inner unset = 4 * n_embd
    assert hook_width(models["gpt_neox"], "blocks.1.mlp.hook_post") == 64
    assert hook_width(models["gemma2"], "blocks.1.hook_mlp_out") == 32
    assert hook_width(tiny_model("gpt2", n_inner=48), "blocks.0.mlp.hook_post") == 48


def test_bert_mlp_post_is_the_intermediate_output(models: dict[str, nn.Module]) -> None:
    model = models["bert"]
    ids, mask = random_batch()
    acts = run_with_cache(model, ids, mask, ["blocks.1.mlp.hook_post"])["blocks.1.mlp.hook_post"]
    seen: dict[str, torch.Tensor] = {}
    handle = get_layers(model)[1].intermediate.register_forward_hook(
        lambda _m, _a, out: seen.setdefault("x", out.detach().clone())
    )
    try:
        with torch.no_grad():
            model(input_ids=ids, attention_mask=mask)
    finally:
        handle.remove()
    torch.testing.assert_close(acts, seen["x"], atol=1e-5, rtol=0)


def test_early_exit_stops_at_the_down_projection(models: dict[str, nn.Module]) -> None:
    model = models["llama"]
    ids, mask = random_batch()
    layers = get_layers(model)
    calls: list[str] = []
    handles = [
        layers[0].mlp.down_proj.register_forward_hook(lambda *_: calls.append("down_proj_0")),
        layers[1].register_forward_pre_hook(lambda *_: calls.append("layer_1")),
        model.get_output_embeddings().register_forward_hook(lambda *_: calls.append("head")),
    ]
    try:
        run_with_cache(model, ids, mask, ["blocks.0.hook_resid_pre", "blocks.0.mlp.hook_post"])
    finally:
        for handle in handles:
            handle.remove()
    assert calls == []  # the down projection itself never ran, nor anything after it
    # requested together with a later point, it fires first and the pass goes on to the later point
    acts = run_with_cache(model, ids, mask, ["blocks.1.mlp.hook_post", "blocks.0.mlp.hook_post"])
    assert list(acts) == ["blocks.1.mlp.hook_post", "blocks.0.mlp.hook_post"]


def test_patching_mlp_post_changes_mlp_out(models: dict[str, nn.Module]) -> None:
    model = models["gpt2"]
    ids, mask = random_batch()
    with patch_hook(model, "blocks.1.mlp.hook_post", torch.zeros_like):
        zeroed = run_with_cache(model, ids, mask, ["blocks.1.hook_mlp_out"])["blocks.1.hook_mlp_out"]
    bias = get_layers(model)[1].mlp.c_proj.bias.detach()
    torch.testing.assert_close(zeroed, bias.expand_as(zeroed), atol=1e-6, rtol=0)
    with patch_hook(model, "blocks.1.mlp.hook_post", lambda x: x):
        same = run_with_cache(model, ids, mask, ["blocks.1.hook_mlp_out"])["blocks.1.hook_mlp_out"]
    torch.testing.assert_close(
        same, run_with_cache(model, ids, mask, ["blocks.1.hook_mlp_out"])["blocks.1.hook_mlp_out"]
    )


def test_parse_mlp_post_names(models: dict[str, nn.Module]) -> None:
    point = parse_hook_name("blocks.4.mlp.hook_post")
    assert (point.layer, point.kind, point.name) == (4, "mlp_post", "blocks.4.mlp.hook_post")
    assert (
        parse_hook_name("blocks.4.hook_resid_mid").order
        < point.order
        < parse_hook_name("blocks.4.hook_mlp_out").order
    )
    assert "mlp_post" not in HOOK_KINDS  # HOOK_KINDS stays the residual-stream points
    for bad in ("blocks.1.mlp.hook_pre", "blocks.1.hook_mlp_post", "blocks.1.mlp.post", "mlp.hook_post"):
        with pytest.raises(ModelError, match=r"unknown hook name.*mlp\.hook_post"):
            parse_hook_name(bad)
    with pytest.raises(ModelError, match=r"layers 0\.\.2"):
        parse_hook_name("blocks.3.mlp.hook_post", models["llama"])
