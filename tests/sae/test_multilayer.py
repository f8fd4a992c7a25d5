"""Cross-layer transcoders and crosscoders read block by block: each view against the formula, and each layer
against sae-lens's own converters (``gemma_3`` for Gemma Scope 2 CLT files, ``mntss_clt_layer_transcoder``
for circuit-tracer's)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from pseval.errors import ModelError, SAEError
from pseval.evals.multilayer import expand_multilayer, view_ids
from pseval.models.hooks import canonical_hook_name, hook_width, patch_hook, run_with_cache
from pseval.sae.architectures.jumprelu import jumprelu_activation
from pseval.sae.formats.loader import open_multilayer
from pseval.sae.lazy import feature_blocks, lazy_blocks
from pseval.sae.multilayer import global_source, per_layer_source
from pseval.sae.weights_check import check_finite_tensors
from tests.helpers import tiny_model
from tests.sae.multilayer_fixtures import (
    write_circuit_tracer_clt,
    write_gemma_scope_2_clt,
    write_gemma_scope_2_crosscoder,
)
from tests.sae.release_fixtures import HFCache, hf_cache  # noqa: F401  (fixture)

D, N = 32, 48


def _codes(source: Any, x_PD: torch.Tensor, fold: bool = False, block_size: int = 20) -> torch.Tensor:
    blocks = lazy_blocks(source)
    return torch.cat([f for _, f in feature_blocks(blocks, x_PD, fold, block_size=block_size)], dim=1)


def _xs(n_layers: int, n: int = 40) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(7)
    return [torch.randn(n, D, generator=g) for _ in range(n_layers)]


@pytest.mark.parametrize("all_layers_decoder", [False, True])
def test_clt_views_are_the_formula(tmp_path: Path, all_layers_decoder: bool) -> None:
    folder = tmp_path / "clt" / "width_16k_l0_medium_affine"
    tensors = write_gemma_scope_2_clt(
        folder, n_layers=4, d=D, n=N, all_layers_decoder=all_layers_decoder, skip=True
    )
    clt = open_multilayer(folder)
    assert clt.kind == "clt" and [e.hook for e in clt.encoders] == [
        f"blocks.{i}.hook_mlp_in" for i in range(4)
    ]
    assert clt.metadata["affine_connection"] is True
    xs = _xs(4)
    layer_codes = [
        jumprelu_activation(x @ t["w_enc"] + t["b_enc"], t["threshold"])
        for x, t in zip(xs, tensors, strict=True)
    ]
    norms = [t["w_dec"].flatten(1).norm(dim=-1) for t in tensors]
    for i in range(4):
        torch.testing.assert_close(_codes(per_layer_source(clt, i), xs[i]), layer_codes[i], rtol=0, atol=0)
        # fold_decoder_norms on a layer's view scales by the norm over every layer it writes to
        torch.testing.assert_close(
            _codes(per_layer_source(clt, i), xs[i], fold=True), layer_codes[i] * norms[i]
        )
    for upto in (1, 3):
        view = global_source(clt, upto)
        assert view.cfg.hook_name == "+".join(f"blocks.{i}.hook_mlp_in" for i in range(upto + 1))
        expected = torch.cat(
            [c * n for c, n in zip(layer_codes[: upto + 1], norms[: upto + 1], strict=True)], dim=1
        )
        got = _codes(view, torch.cat(xs[: upto + 1], dim=1))
        torch.testing.assert_close(got, expected)
        # already scaled: folding again changes nothing
        torch.testing.assert_close(_codes(view, torch.cat(xs[: upto + 1], dim=1), fold=True), got)
    blocks = lazy_blocks(global_source(clt))
    # each block multiplies only the input rows of the layers its latents read
    assert blocks.input_range(0, N) == (0, D) and blocks.input_range(N - 1, N + 1) == (0, 2 * D)
    assert blocks.input_range(3 * N, 4 * N) == (3 * D, 4 * D)
    ids = [3, N + 5, 3 * N + 1]
    rows = blocks.latent_rows("W_dec", ids)
    for row, i in zip(rows, ids, strict=True):
        torch.testing.assert_close(row, tensors[i // N]["w_dec"][i % N].sum(0))  # its total write, summed
    enc = blocks.latent_rows("W_enc", [N + 5])
    torch.testing.assert_close(enc[0, D : 2 * D], tensors[1]["w_enc"][:, 5])
    assert float(enc[0, :D].abs().sum()) == 0.0


def test_crosscoder_is_the_tutorial_multilayer_sae(tmp_path: Path) -> None:
    folder, tensors = write_gemma_scope_2_crosscoder(tmp_path / "crosscoder", layers=(1, 4, 7, 9), d=D, n=N)
    cc = open_multilayer(folder)
    assert cc.kind == "crosscoder" and [e.hook for e in cc.encoders] == [
        f"blocks.{i}.hook_resid_post" for i in (1, 4, 7, 9)
    ]
    assert view_ids(cc)[1] == ["layer_1", "layer_4", "layer_7", "layer_9", "global"]
    xs = _xs(4)
    # Gemma Scope 2's JumpReLUMultiLayerSAE: the files stacked on a layer axis, encoded per layer
    # ("... layer d_in, layer d_in d_sae -> ... layer d_sae") + b_enc, then mask * relu.
    stacked = {k: torch.stack([t[k] for t in tensors]) for k in tensors[0]}
    pre = torch.einsum("nld,lds->nls", torch.stack(xs, dim=1), stacked["w_enc"]) + stacked["b_enc"]
    acts = (pre > stacked["threshold"]) * pre.relu()
    norms = stacked["w_dec"].flatten(2).norm(dim=-1)  # [layer, n]: each latent over the 4 layers it writes
    expected = (acts * norms).flatten(1)
    torch.testing.assert_close(_codes(global_source(cc), torch.cat(xs, dim=1)), expected)
    torch.testing.assert_close(_codes(per_layer_source(cc, 7), xs[2]), acts[:, 2], rtol=0, atol=0)
    with pytest.raises(SAEError, match="covers all its layers"):
        global_source(cc, 4)
    # the logit lens reads a crosscoder latent's decoder at its deepest layer
    torch.testing.assert_close(
        lazy_blocks(global_source(cc)).latent_rows("W_dec", [N + 5])[0], tensors[1]["w_dec"][5, -1]
    )


def test_crosscoder_with_a_per_layer_decoder_is_refused(tmp_path: Path) -> None:
    folder, tensors = write_gemma_scope_2_crosscoder(tmp_path / "crosscoder", layers=(1, 4), d=D, n=N)
    save_file(
        {**tensors[1], "w_dec": tensors[1]["w_dec"][:, 1].contiguous()},
        str(folder / "params_layer_1.safetensors"),
    )
    with pytest.raises(SAEError, match=r"expected \[d_model, n\] and \[n, layers, d_model\]"):
        open_multilayer(folder)
    save_file(
        {**tensors[1], "w_dec": tensors[1]["w_dec"][:, :1].contiguous()},
        str(folder / "params_layer_1.safetensors"),
    )
    with pytest.raises(SAEError, match="writes to"):
        open_multilayer(folder)


def test_views_have_distinct_identities_and_check_every_file(tmp_path: Path) -> None:
    folder = tmp_path / "clt" / "width_16k_l0_small"
    tensors = write_gemma_scope_2_clt(folder, n_layers=3, d=D, n=N)
    views = expand_multilayer([str(folder)])
    assert [v.spec for v in views] == [
        f"width_16k_l0_small_{s}" for s in ("layer_0", "layer_1", "layer_2", "global_2")
    ]
    assert len({v.content_hash() for v in views}) == 4
    for v in views:
        check_finite_tensors(v)
    broken = {**tensors[1], "w_dec": tensors[1]["w_dec"].clone()}
    broken["w_dec"][3, 0, 1] = float("nan")
    save_file(broken, str(folder / "params_layer_1.safetensors"))
    check_finite_tensors(per_layer_source(open_multilayer(folder), 0))
    with pytest.raises(SAEError, match="non-finite"):
        check_finite_tensors(global_source(open_multilayer(folder)))
    with pytest.raises(SAEError, match="cannot be loaded as one SAE"):
        global_source(open_multilayer(folder)).load()


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ("w_dec_2d", "expected"),
        ("extra", "unexpected tensors"),
        ("ints", "as integers"),
        ("gap", "no encoder for layers"),
    ],
)
def test_bad_layouts_are_one_line(tmp_path: Path, change: str, needle: str) -> None:
    folder = tmp_path / "clt" / "width_16k_l0_small"
    tensors = write_gemma_scope_2_clt(folder, n_layers=3, d=D, n=N)
    t = dict(tensors[1])
    if change == "w_dec_2d":
        t["w_dec"] = t["w_dec"][:, 0].contiguous()
    elif change == "extra":
        t["w_gate"] = torch.zeros(3)
    elif change == "ints":
        t["threshold"] = torch.zeros(N, dtype=torch.int32)
    else:
        (folder / "params_layer_1.safetensors").unlink()
        clt = open_multilayer(folder)
        assert view_ids(clt)[1] == ["layer_0", "layer_2"]  # no global view over a missing layer by default
        with pytest.raises(SAEError, match=needle):
            global_source(clt, 2)
        return
    save_file(t, str(folder / "params_layer_1.safetensors"))
    with pytest.raises(SAEError, match=needle):
        open_multilayer(folder)


def test_open_sae_on_a_clt_folder_says_how_to_score_it(tmp_path: Path) -> None:
    from pseval.sae import open_sae

    folder = tmp_path / "clt" / "width_16k_l0_small"
    write_gemma_scope_2_clt(folder, n_layers=2, d=D, n=N)
    with pytest.raises(SAEError, match="is a cross-layer transcoder or crosscoder, not one SAE"):
        open_sae(folder)


def test_composite_hooks_concatenate_their_parts() -> None:
    model = tiny_model(n_layers=3, d_model=D)
    ids = torch.randint(0, 50, (2, 5))
    parts = ["blocks.2.hook_mlp_in", "blocks.0.hook_resid_post"]
    composite = "+".join(parts)
    got = run_with_cache(model, ids, torch.ones_like(ids), [composite, parts[1]])
    alone = run_with_cache(model, ids, torch.ones_like(ids), parts)
    torch.testing.assert_close(got[composite], torch.cat([alone[p] for p in parts], dim=-1), rtol=0, atol=0)
    assert hook_width(model, composite) == 2 * D
    assert (
        canonical_hook_name("hook_embed+blocks.1.hook_mlp_in")
        == "blocks.0.hook_resid_pre+blocks.1.hook_mlp_in"
    )
    with pytest.raises(ModelError, match="cannot be replaced"), patch_hook(model, composite, lambda v: v):
        pass
    with pytest.raises(ModelError, match="repeats"):
        hook_width(model, "blocks.1.hook_mlp_in+blocks.1.hook_mlp_in")


# ------------------------------------------------------------------------------------------------------
# against sae-lens's converters

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    sae_lens = pytest.importorskip("sae_lens")

from sae_lens.loading import pretrained_sae_loaders as loaders  # noqa: E402


@pytest.fixture
def local_shapes(monkeypatch: pytest.MonkeyPatch) -> None:
    """sae-lens's converters read tensor shapes with HTTP range requests: read the cached file instead."""
    from huggingface_hub import hf_hub_download

    def shapes(repo_id: str, filename: str) -> dict[str, list[int]]:
        with safe_open(hf_hub_download(repo_id, filename), framework="pt") as f:
            return {k: list(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118

    monkeypatch.setattr(loaders, "get_safetensors_tensor_shapes", shapes)


def test_gemma_scope_2_clt_layer_matches_saelens(
    hf_cache: HFCache,  # noqa: F811
    local_shapes: None,
) -> None:
    repo = "google/gemma-scope-2-270m-pt"
    snap = hf_cache.snapshot(repo)
    write_gemma_scope_2_clt(snap / "clt" / "width_16k_l0_medium", n_layers=3, d=D, n=N)
    hf_cache.commit(repo)
    clt = open_multilayer(snap / "clt" / "width_16k_l0_medium")
    assert clt.model_name == "google/gemma-3-270m"
    x = _xs(1)[0]
    for i in range(3):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cfg, state, _ = loaders.gemma_3_sae_huggingface_loader(
                repo, f"clt/width_16k_l0_medium/params_layer_{i}"
            )
        view = per_layer_source(clt, i)
        assert view.cfg.hook_name == cfg["hook_name"] and view.cfg.model_name == cfg["model_name"]
        assert cfg["apply_b_dec_to_input"] is False and cfg["prepend_bos"] is True
        theirs = jumprelu_activation(x @ state["W_enc"] + state["b_enc"], state["threshold"])
        torch.testing.assert_close(_codes(view, x), theirs, rtol=0, atol=0)
        # sae-lens sums a CLT latent's decoder over the layers it writes to: the logit lens row
        torch.testing.assert_close(lazy_blocks(view).latent_rows("W_dec", [0, 7]), state["W_dec"][[0, 7]])


@pytest.mark.parametrize("threshold", [False, True])
def test_circuit_tracer_layer_matches_mntss_converter(
    hf_cache: HFCache,  # noqa: F811
    local_shapes: None,
    threshold: bool,
) -> None:
    repo = "mntss/clt-tiny"
    snap = hf_cache.snapshot(repo)
    write_circuit_tracer_clt(snap, n_layers=3, d=D, n=N, threshold=threshold, input_hook="hook_resid_mid")
    hf_cache.commit(repo)
    clt = open_multilayer(snap)
    x = _xs(1)[0]
    for i in range(3):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cfg, state, _ = loaders.mntss_clt_layer_huggingface_loader(repo, str(i))
        view = per_layer_source(clt, i)
        assert view.cfg.hook_name == cfg["hook_name"] == f"blocks.{i}.hook_resid_mid"
        assert view.cfg.model_name == cfg["model_name"] and cfg["apply_b_dec_to_input"] is False
        pre = x @ state["W_enc"] + state["b_enc"]
        if threshold:  # sae-lens reads the layer as a ReLU transcoder; circuit-tracer applies the threshold
            thr = safe_open(str(snap / f"W_enc_{i}.safetensors"), framework="pt").get_tensor(f"threshold_{i}")
            expected = jumprelu_activation(pre, thr)
        else:
            expected = pre.relu()
        torch.testing.assert_close(_codes(view, x), expected, rtol=0, atol=0)
        torch.testing.assert_close(lazy_blocks(view).latent_rows("W_dec", [2, 9]), state["W_dec"][[2, 9]])


def test_registry_clt_layers_are_refused_with_the_folder_route() -> None:
    from pseval.sae import open_sae

    with pytest.raises(SAEError, match="without its JumpReLU threshold"):
        open_sae("saelens:mntss-gemma-2-2b-2.5m-clt-as-per-layer/layer_5")


def test_decoder_norms_stream_in_bounded_pieces(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pseval.sae.multilayer as multilayer

    folder = tmp_path / "clt" / "width_16k_l0_small"
    tensors = write_gemma_scope_2_clt(folder, n_layers=3, d=D, n=N, seed=4)
    pieces: list[int] = []
    read = multilayer._rows

    def counted(ref: Any, start: int, end: int) -> torch.Tensor:
        pieces.append(end - start)
        return read(ref, start, end)

    monkeypatch.setattr(multilayer, "_rows", counted)
    monkeypatch.setattr(
        multilayer, "BLOCK_ELEMENTS", 3 * D * 10
    )  # ten latents of layer 0's decoder at a time
    monkeypatch.setattr(multilayer, "_NORMS", {})
    norms = lazy_blocks(global_source(open_multilayer(folder))).norms()
    expected = torch.cat([t["w_dec"].flatten(1).norm(dim=-1) for t in tensors])
    torch.testing.assert_close(norms, expected)
    # rows of 3, 2 and 1 layers of d values: 10, 15 and 30 latents a piece
    assert pieces == [10] * 4 + [8] + [15] * 3 + [3] + [30, 18]


@pytest.mark.parametrize(
    ("theirs", "ours"),
    [("mlp.hook_in", "hook_mlp_in"), ("hook_resid_mid", "hook_resid_mid"), ("ln2.hook_normalized", None)],
)
def test_circuit_tracer_hook_names_are_translated(tmp_path: Path, theirs: str, ours: str | None) -> None:
    """circuit-tracer names hooks the TransformerLens way, relative to a block; its NNSight table maps
    ``mlp.hook_in`` to the pre-MLP norm's output (what the MLP reads: pseval's ``hook_mlp_in``) and
    ``hook_resid_mid`` to that norm's input."""
    tensors = write_circuit_tracer_clt(tmp_path, n_layers=2, d=D, n=N, input_hook=theirs)
    clt = open_multilayer(tmp_path)
    assert [e.hook for e in clt.encoders] == [f"blocks.{i}.{ours or theirs}" for i in range(2)]
    assert clt.metadata["hook_name_out"] == "blocks.{layer}.hook_mlp_out"
    # circuit-tracer's CrossLayerTranscoder.encode_layer: einsum("...d,fd->...f", x, W_enc) + b_enc, then
    # JumpReLU as features * (features > threshold); no b_dec subtracted, no input normalisation.
    x = _xs(1)[0]
    for i, t in enumerate(tensors):
        features = torch.einsum("...d,fd->...f", x, t[f"W_enc_{i}"]) + t[f"b_enc_{i}"]
        expected = features * (features > t[f"threshold_{i}"])
        torch.testing.assert_close(_codes(per_layer_source(clt, i), x), expected, rtol=0, atol=0)


@pytest.mark.parametrize(
    ("hook", "kind", "needle"),
    [
        ("hook_mlp_in", "cross_layer_transcoder", "pre-norm residual"),
        ("hook_resid_post", "cross_layer_transcoder", "cannot tell"),
        ("mlp.hook_in", "transcoder_set", "model_kind 'transcoder_set'"),
    ],
)
def test_circuit_tracer_unknown_hooks_and_kinds_are_refused(
    tmp_path: Path, hook: str, kind: str, needle: str
) -> None:
    import json

    write_circuit_tracer_clt(tmp_path, n_layers=2, d=D, n=N, input_hook=hook)
    cfg = json.loads((tmp_path / "config.yaml").read_text())
    (tmp_path / "config.yaml").write_text(json.dumps({**cfg, "model_kind": kind}))
    with pytest.raises(SAEError, match=needle):
        open_multilayer(tmp_path)
