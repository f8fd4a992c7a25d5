"""Hook points on tiny random models: values, decomposition, early exit, patching, padding, errors."""

from __future__ import annotations

import pytest
import torch

from pseval.errors import ModelError
from pseval.models.hooks import (
    HOOK_KINDS,
    final_norm_and_unembed,
    get_adapter,
    get_layers,
    hook_width,
    parse_hook_name,
    patch_hook,
    run_with_cache,
)
from tests.helpers import DECODER_FAMILIES, FAMILIES, random_batch, tiny_model

PRE_LN = DECODER_FAMILIES
SEQUENTIAL = tuple(f for f in DECODER_FAMILIES if f != "gpt_neox")


@pytest.fixture(scope="module")
def models() -> dict[str, torch.nn.Module]:
    return {family: tiny_model(family) for family in FAMILIES}


def _names(layer: int, kinds: tuple[str, ...]) -> list[str]:
    return [f"blocks.{layer}.hook_{kind}" for kind in kinds]


@pytest.mark.parametrize("family", FAMILIES)
def test_resid_matches_hidden_states(models: dict[str, torch.nn.Module], family: str) -> None:
    model = models[family]
    ids, mask = random_batch()
    with torch.no_grad():
        hidden = model(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
    n = len(get_layers(model))
    for layer in range(n):
        acts = run_with_cache(model, ids, mask, _names(layer, ("resid_pre", "resid_post")))
        torch.testing.assert_close(acts[f"blocks.{layer}.hook_resid_pre"], hidden[layer], atol=1e-5, rtol=0)
        if layer < n - 1:  # the last hidden state has the final norm applied on most families
            torch.testing.assert_close(
                acts[f"blocks.{layer}.hook_resid_post"], hidden[layer + 1], atol=1e-5, rtol=0
            )


@pytest.mark.parametrize("family", PRE_LN)
def test_residual_decomposition(models: dict[str, torch.nn.Module], family: str) -> None:
    model = models[family]
    ids, mask = random_batch()
    kinds = HOOK_KINDS if family in SEQUENTIAL else ("resid_pre", "attn_out", "mlp_out", "resid_post")
    for layer in range(len(get_layers(model))):
        acts = {
            k: v
            for k, v in zip(
                kinds, run_with_cache(model, ids, mask, _names(layer, kinds)).values(), strict=True
            )
        }
        assert acts["attn_out"].abs().max() > 1e-3 and acts["mlp_out"].abs().max() > 1e-3
        torch.testing.assert_close(
            acts["resid_post"], acts["resid_pre"] + acts["attn_out"] + acts["mlp_out"], atol=1e-5, rtol=0
        )
        if "resid_mid" in acts:
            torch.testing.assert_close(
                acts["resid_mid"], acts["resid_pre"] + acts["attn_out"], atol=1e-5, rtol=0
            )
            torch.testing.assert_close(
                acts["resid_post"], acts["resid_mid"] + acts["mlp_out"], atol=1e-5, rtol=0
            )


@pytest.mark.parametrize("family", ["llama", "gpt2", "gemma2", "bert"])
def test_early_exit_skips_later_layers_and_head(models: dict[str, torch.nn.Module], family: str) -> None:
    model = models[family]
    layers = get_layers(model)
    head = model.get_output_embeddings()
    calls: list[str] = []
    handles = [
        layer.register_forward_hook(lambda *_a, i=i: calls.append(f"layer{i}"))
        for i, layer in enumerate(layers)
    ]
    handles.append(head.register_forward_hook(lambda *_a: calls.append("head")))
    try:
        ids, mask = random_batch()
        run_with_cache(model, ids, mask, ["blocks.0.hook_resid_post"])
        assert calls == ["layer0"]
        calls.clear()
        run_with_cache(model, ids, mask, ["blocks.1.hook_resid_pre", "blocks.0.hook_resid_pre"])
        assert calls == ["layer0"]  # layer 1 started but was stopped before its output
        calls.clear()
        with torch.no_grad():
            model(input_ids=ids, attention_mask=mask)
        assert calls == [f"layer{i}" for i in range(len(layers))] + ["head"]
    finally:
        for handle in handles:
            handle.remove()


def test_hooks_are_removed_after_use(models: dict[str, torch.nn.Module]) -> None:
    model = models["llama"]

    def n_hooks() -> int:  # transformers installs hooks of its own; only ours must go away
        return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())

    before = n_hooks()
    ids, mask = random_batch()
    run_with_cache(model, ids, mask, _names(1, HOOK_KINDS))
    with patch_hook(model, "blocks.1.hook_resid_mid", lambda x: x):
        assert n_hooks() > before
    with pytest.raises(ModelError):
        run_with_cache(model, ids, mask, ["blocks.0.hook_resid_post", "blocks.9.hook_resid_post"])
    assert n_hooks() == before


def test_returns_requested_names_in_order(models: dict[str, torch.nn.Module]) -> None:
    ids, mask = random_batch()
    names = ["blocks.2.hook_resid_pre", "blocks.0.hook_mlp_out", "blocks.1.hook_attn_out"]
    acts = run_with_cache(models["llama"], ids, mask, names)
    assert list(acts) == names
    assert all(v.shape == (3, 7, 32) for v in acts.values())


@pytest.mark.parametrize("family", PRE_LN)
@pytest.mark.parametrize("kind", HOOK_KINDS)
def test_patch_identity_and_zero(models: dict[str, torch.nn.Module], family: str, kind: str) -> None:
    if kind == "resid_mid" and family not in SEQUENTIAL:
        pytest.skip("no resid_mid with a parallel residual")
    model = models[family]
    ids, mask = random_batch()
    name = f"blocks.1.hook_{kind}"
    with torch.no_grad():
        clean = model(input_ids=ids, attention_mask=mask).logits
        with patch_hook(model, name, lambda x: x):
            same = model(input_ids=ids, attention_mask=mask).logits
        with patch_hook(model, name, torch.zeros_like):
            zeroed = model(input_ids=ids, attention_mask=mask).logits
    torch.testing.assert_close(same, clean, atol=1e-5, rtol=0)
    assert (zeroed - clean).abs().max() > 1e-3


def test_patch_resid_mid_sets_the_residual_stream(models: dict[str, torch.nn.Module]) -> None:
    model = models["llama"]
    ids, mask = random_batch()
    with patch_hook(model, "blocks.1.hook_resid_mid", torch.zeros_like):
        acts = run_with_cache(model, ids, mask, _names(1, ("resid_mid", "mlp_out", "resid_post")))
    torch.testing.assert_close(acts["blocks.1.hook_resid_mid"], torch.zeros(3, 7, 32), atol=1e-5, rtol=0)
    torch.testing.assert_close(
        acts["blocks.1.hook_resid_post"], acts["blocks.1.hook_mlp_out"], atol=1e-5, rtol=0
    )


def test_patch_resid_post_equals_patch_next_resid_pre(models: dict[str, torch.nn.Module]) -> None:
    model = models["gpt2"]
    ids, mask = random_batch()

    def shift(x: torch.Tensor) -> torch.Tensor:
        return x + 0.5

    with torch.no_grad():
        with patch_hook(model, "blocks.0.hook_resid_post", shift):
            a = model(input_ids=ids, attention_mask=mask).logits
        with patch_hook(model, "blocks.1.hook_resid_pre", shift):
            b = model(input_ids=ids, attention_mask=mask).logits
    torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


def test_patch_rejects_wrong_shape(models: dict[str, torch.nn.Module]) -> None:
    model = models["llama"]
    ids, mask = random_batch()
    with (
        pytest.raises(ModelError, match="same shape"),
        patch_hook(model, "blocks.0.hook_resid_post", lambda x: x[:, :1]),
    ):
        model(input_ids=ids, attention_mask=mask)


@pytest.mark.parametrize("family", ["llama", "qwen3", "gemma2", "gemma3_text", "gpt2", "gpt_neox", "bert"])
def test_left_and_right_padding_agree(models: dict[str, torch.nn.Module], family: str) -> None:
    model = models[family]
    lengths = [7, 4, 2]
    ids, _ = random_batch(n=3, t=7, seed=1)
    right = torch.zeros_like(ids)
    left = torch.zeros_like(ids)
    right_mask = torch.zeros_like(ids)
    left_mask = torch.zeros_like(ids)
    for i, n in enumerate(lengths):
        right[i, :n], right_mask[i, :n] = ids[i, :n], 1
        left[i, 7 - n :], left_mask[i, 7 - n :] = ids[i, :n], 1
    names = ["blocks.1.hook_resid_post", "blocks.2.hook_resid_pre"]
    r = run_with_cache(model, right, right_mask, names)
    lft = run_with_cache(model, left, left_mask, names)
    for name in names:
        for i, n in enumerate(lengths):
            torch.testing.assert_close(lft[name][i, 7 - n :], r[name][i, :n], atol=1e-5, rtol=0)
            # the unpadded single sequence gives the same vectors too
            alone = run_with_cache(model, ids[i : i + 1, :n], torch.ones(1, n, dtype=torch.long), [name])[
                name
            ]
            torch.testing.assert_close(r[name][i, :n], alone[0], atol=1e-5, rtol=0)


@pytest.mark.parametrize("family", FAMILIES)
def test_logit_lens_on_last_layer_gives_the_logits(models: dict[str, torch.nn.Module], family: str) -> None:
    model = models[family]
    ids, mask = random_batch()
    last = len(get_layers(model)) - 1
    resid = run_with_cache(model, ids, mask, [f"blocks.{last}.hook_resid_post"])[
        f"blocks.{last}.hook_resid_post"
    ]
    lens = final_norm_and_unembed(model)
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=mask).logits
        torch.testing.assert_close(lens.unembed(lens.final_norm(resid)), logits, atol=1e-4, rtol=1e-4)


def test_parse_hook_name() -> None:
    point = parse_hook_name("blocks.12.hook_resid_post")
    assert (point.layer, point.kind, point.name) == (12, "resid_post", "blocks.12.hook_resid_post")
    for bad in [
        "blocks.x.hook_resid_post",
        "blocks.0.hook_foo",
        "model.layers.0",
        "blocks.-1.hook_resid_pre",
        "",
    ]:
        with pytest.raises(ModelError, match=r"unknown hook name.*hook_resid_pre"):
            parse_hook_name(bad)


def test_hook_errors_with_a_model(models: dict[str, torch.nn.Module]) -> None:
    with pytest.raises(ModelError, match=r"layers 0\.\.2"):
        parse_hook_name("blocks.3.hook_resid_post", models["llama"])
    with pytest.raises(ModelError, match=r"layers 0\.\.2"):
        parse_hook_name("blocks.0.hook_bogus", models["llama"])
    with pytest.raises(ModelError, match="parallel residual"):
        parse_hook_name("blocks.0.hook_resid_mid", models["gpt_neox"])
    for kind in ("attn_out", "mlp_out", "resid_mid"):
        with pytest.raises(ModelError, match="post-LN"):
            parse_hook_name(f"blocks.0.hook_{kind}", models["bert"])
    ids, mask = random_batch()
    with pytest.raises(ModelError, match="unknown hook name"):
        run_with_cache(models["llama"], ids, mask, ["blocks.0.hook_resid_post", "blocks.0.resid"])


def test_hook_width(models: dict[str, torch.nn.Module]) -> None:
    assert hook_width(models["gpt2"], "blocks.2.hook_mlp_out") == 32
    assert hook_width(tiny_model("llama", n_layers=2, d_model=64), "blocks.1.hook_resid_post") == 64


def test_unknown_family_lists_supported() -> None:
    import transformers as tf

    config = tf.OPTConfig(
        vocab_size=64, hidden_size=32, num_hidden_layers=2, ffn_dim=64, num_attention_heads=4,
        max_position_embeddings=64, word_embed_proj_dim=32,
    )  # fmt: skip
    model = tf.OPTForCausalLM(config).eval()
    with pytest.raises(ModelError, match=r"'opt'.*supported:.*gemma2.*llama"):
        get_adapter(model)
    with pytest.raises(ModelError, match="supported"):
        run_with_cache(model, *random_batch(), ["blocks.0.hook_resid_post"])
