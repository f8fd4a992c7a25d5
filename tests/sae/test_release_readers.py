"""Release readers where pseval and sae-lens's converters must agree, or where pseval deliberately differs.

Each case is checked against sae-lens's own converter when the ``saelens`` extra is installed (those tests skip
cleanly without it) and against the release's formula, which needs nothing but pseval.
"""

from __future__ import annotations

import dataclasses
import json
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from pseval.sae import load_sae, open_sae
from tests.evals.conftest import tiny_dataset_file, tiny_model_dir
from tests.sae.release_fixtures import (
    HFCache,
    hf_cache,  # noqa: F401  (fixture)
    write_gemma_scope_2,
    write_llama_scope,
    write_sparsify_folder,
)

__all__ = ["tiny_dataset_file", "tiny_model_dir"]

GS_REPO = "google/gemma-scope-2b-pt-res"
GS_EMBEDDING = "embedding/width_4k/average_l0_6"
GEMMA_2B_D_MODEL = 2304  # sae-lens's gemma_2 converter takes d_in from its table of Gemma 2 sizes


def _saelens() -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pytest.importorskip("sae_lens")


def _x(d_in: int, n: int = 64, seed: int = 3) -> torch.Tensor:
    return torch.randn(n, d_in, generator=torch.Generator().manual_seed(seed))


def _jumprelu(
    x: torch.Tensor, W_enc: torch.Tensor, b_enc: torch.Tensor, threshold: torch.Tensor
) -> torch.Tensor:
    pre = x @ W_enc + b_enc
    return pre.relu() * (pre > threshold)


def _assert_same_latents(ours: Any, theirs: Any, d_in: int, atol: float = 1e-5) -> None:
    x = _x(d_in)
    with torch.no_grad():
        a, b = ours.encode(x).float(), theirs.encode(x.to(theirs.W_enc.dtype)).float()
        assert int((b > 0).sum()) > 0 and int((b == 0).sum()) > 0  # the fixture exercises both sides
        assert torch.equal(a > 0, b > 0)
        torch.testing.assert_close(a, b, atol=atol, rtol=1e-5)
        torch.testing.assert_close(
            ours.decode(b.to(ours.dtype)).float(), theirs.decode(b).float(), atol=atol, rtol=1e-5
        )


# ==================================================================================================
# Gemma Scope (Gemma 2) embedding SAEs
# ==================================================================================================


def write_gemma_scope_npz(folder: Path, d_in: int, d_sae: int = 64, seed: int = 0) -> dict[str, np.ndarray]:
    """A Gemma Scope ``params.npz`` whose pre-activations have unit scale on inputs of norm ``sqrt(d_in)``
    *after* the embedding rescale, so that reading it unscaled changes which latents fire."""
    g = torch.Generator().manual_seed(seed)
    arrays = {
        "W_enc": torch.randn(d_in, d_sae, generator=g).numpy(),
        "W_dec": (torch.randn(d_sae, d_in, generator=g) / d_in).numpy(),
        "b_enc": (torch.randn(d_sae, generator=g) * 0.1).numpy(),
        "b_dec": (torch.randn(d_in, generator=g) * 0.5).numpy(),
        "threshold": (torch.rand(d_sae, generator=g) * 1.5).numpy(),
    }
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(str(folder / "params.npz"), **arrays)  # type: ignore[arg-type]
    return arrays


def test_gemma_scope_embedding_sae_reads_scaled_embeddings(tmp_path: Path) -> None:
    d_in = 16
    release = tmp_path / "gemma-scope-2b-pt-res"
    arrays = write_gemma_scope_npz(release / GS_EMBEDDING, d_in)
    sae = load_sae(release / GS_EMBEDDING)
    scale = math.sqrt(d_in)
    assert sae.cfg.hook_name == "hook_embed" and sae.cfg.model_name == "gemma-2-2b"
    assert sae.cfg.metadata["embedding_scale_folded"] == scale
    torch.testing.assert_close(sae.W_enc, torch.from_numpy(arrays["W_enc"]) / scale)
    torch.testing.assert_close(sae.W_dec, torch.from_numpy(arrays["W_dec"]) * scale)
    x = _x(d_in) * scale  # an embedding row as Gemma feeds it to the first block
    W_enc, b_enc, threshold = (torch.from_numpy(arrays[k]) for k in ("W_enc", "b_enc", "threshold"))
    expected = _jumprelu(x / scale, W_enc, b_enc, threshold)  # what the SAE saw in training
    with torch.no_grad():
        latents = sae.encode(x)
    assert int((expected > 0).sum()) > 0 and int((expected == 0).sum()) > 0
    assert torch.equal(latents > 0, expected > 0)
    torch.testing.assert_close(latents, expected)
    # the reconstruction lives at the same (scaled) level as the input
    torch.testing.assert_close(
        sae.decode(latents),
        (latents @ torch.from_numpy(arrays["W_dec"]) + torch.from_numpy(arrays["b_dec"]) / scale) * scale,
    )


def test_gemma_scope_layer_saes_are_not_rescaled(tmp_path: Path) -> None:
    # a parent folder of the user's named "embedding" does not make a residual-stream SAE an embedding one
    release = tmp_path / "embedding" / "gemma-scope-2b-pt-res"
    arrays = write_gemma_scope_npz(release / "layer_3" / "width_16k" / "average_l0_50", 16)
    sae = load_sae(release / "layer_3" / "width_16k" / "average_l0_50")
    assert sae.cfg.hook_name == "blocks.3.hook_resid_post"
    assert "embedding_scale_folded" not in sae.cfg.metadata
    # nothing changed for these SAEs: results written before the rescale keep their identity
    assert open_sae(release / "layer_3" / "width_16k" / "average_l0_50").conversion is None
    torch.testing.assert_close(sae.W_enc, torch.from_numpy(arrays["W_enc"]))


def test_gemma_scope_embedding_sae_round_trips_through_its_writer(tmp_path: Path) -> None:
    from pseval.sae import write_gemma_scope

    release = tmp_path / "gemma-scope-2b-pt-res"
    arrays = write_gemma_scope_npz(release / GS_EMBEDDING, 16)
    sae = load_sae(release / GS_EMBEDDING)
    copy = tmp_path / "copy" / "gemma-scope-2b-pt-res" / GS_EMBEDDING
    write_gemma_scope(sae, copy)
    with np.load(str(copy / "params.npz")) as written:
        np.testing.assert_allclose(written["W_enc"], arrays["W_enc"], rtol=1e-6)
    torch.testing.assert_close(load_sae(copy).W_enc, sae.W_enc)


def test_results_of_the_unrescaled_embedding_sae_are_not_taken_as_finished(
    tmp_path: Path, tmp_cache: Path, tiny_model_dir: Path, tiny_dataset_file: Path
) -> None:
    """A result written before the rescale (same files, other weights) must be recomputed, not reused."""
    from typer.testing import CliRunner

    from pseval.cli import app
    from pseval.evals.schema import result_checksum

    folder = tmp_path / "gemma-scope-2b-pt-res" / GS_EMBEDDING
    write_gemma_scope_npz(folder, 32)  # d_model of the tiny model
    source = open_sae(folder)
    before = dataclasses.replace(source, conversion=None).content_hash()
    assert source.content_hash() != before
    out = tmp_path / "results"
    args = ["eval", "--model", str(tiny_model_dir), "--dataset", str(tiny_dataset_file), "--sae", str(folder)]
    args += ["--hook", "blocks.0.hook_resid_pre", "--bootstrap", "0", "--output-folder", str(out)]
    args += ["--allow-model-mismatch"]  # a Gemma-2 SAE on the tiny model: only the weights' hash matters here
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    stored = out / "ps_eval" / "average_l0_6_eval_results.json"
    result = json.loads(stored.read_text())
    result["result_identity"]["sae_content_hash"] = before  # as the reader without the rescale wrote it
    result["result_checksum"] = result_checksum(result)  # pseval wrote it so: not an edited file
    stored.write_text(json.dumps(result))
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 2, again.output
    assert "holds a result of another configuration (other SAE weights/config" in again.output


def test_gemma_scope_embedding_sae_matches_saelens(hf_cache: HFCache) -> None:  # noqa: F811
    sae_lens = _saelens()
    from sae_lens.loading import pretrained_sae_loaders as loaders

    snap = hf_cache.snapshot(GS_REPO)
    d_sae = 64
    write_gemma_scope_npz(snap / GS_EMBEDDING, GEMMA_2B_D_MODEL, d_sae)
    hf_cache.commit(GS_REPO)

    def converter(**kw: Any) -> Any:
        # the converter takes d_sae from the folder name (width_4k): keep the fixture small
        kw["cfg_overrides"] = {**(kw.get("cfg_overrides") or {}), "d_sae": d_sae}
        return loaders.gemma_2_sae_huggingface_loader(**kw)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs, _, _ = sae_lens.SAE.from_pretrained_with_cfg_and_sparsity(
            "gemma-scope-2b-pt-res", GS_EMBEDDING, converter=converter
        )
    for spec in (str(snap / GS_EMBEDDING), f"saelens:gemma-scope-2b-pt-res/{GS_EMBEDDING}"):
        ours = load_sae(spec)
        assert ours.cfg.hook_name == "hook_embed" == theirs.cfg.metadata.hook_name
        torch.testing.assert_close(ours.W_enc, theirs.W_enc)
        torch.testing.assert_close(ours.W_dec, theirs.W_dec)
        _assert_same_latents(ours, theirs, GEMMA_2B_D_MODEL)


def test_gemma_residual_stream_before_block_0_is_the_scaled_embedding() -> None:
    """What an embedding SAE reads on Gemma: ``hook_embed``, i.e. ``blocks.0.hook_resid_pre``, is the
    embedding row times ``sqrt(d_model)``, as TransformerLens's Gemma ``hook_embed`` is, which is what the
    rescaled SAE expects."""
    from pseval.models.hooks import run_with_cache
    from tests.helpers import tiny_model

    model = tiny_model("gemma2", n_layers=2, d_model=32)
    ids = torch.tensor([[1, 5, 7, 2]])
    acts = run_with_cache(model, ids, torch.ones_like(ids), ["blocks.0.hook_resid_pre"])
    rows = model.get_input_embeddings().weight[ids]
    torch.testing.assert_close(acts["blocks.0.hook_resid_pre"], rows * math.sqrt(32))
    embed = run_with_cache(model, ids, torch.ones_like(ids), ["hook_embed"])["hook_embed"]
    assert torch.equal(embed, acts["blocks.0.hook_resid_pre"])


# ==================================================================================================
# Llama Scope: float32 unless asked, like every other reader and SAE.from_pretrained
# ==================================================================================================

LLAMA_RELEASE, LLAMA_ID = "llama_scope_lxa_32x", "l0a_32x"
LLAMA_REPO, LLAMA_FOLDER = "fnlp/Llama3_1-8B-Base-LXA-32x", "Llama3_1-8B-Base-L0A-32x"


def test_llama_scope_defaults_to_float32_and_folds_in_it(tmp_path: Path) -> None:
    d_model, norm_in = 16, 0.57
    raw = write_llama_scope(tmp_path / LLAMA_FOLDER, d_model=d_model, d_sae=64, norm_in=norm_in)
    scale = math.sqrt(d_model) / norm_in
    source = open_sae(tmp_path / LLAMA_FOLDER)
    assert source.cfg.dtype == "float32"
    for sae in (source.load(), load_sae(tmp_path / LLAMA_FOLDER)):
        assert sae.dtype == torch.float32
        W_enc = raw["encoder.weight"].T.float() * scale
        torch.testing.assert_close(sae.W_enc, W_enc, atol=0, rtol=0)
        torch.testing.assert_close(sae.W_dec, raw["decoder.weight"].T.float() / scale, atol=0, rtol=0)
        torch.testing.assert_close(sae.threshold, torch.full((64,), 0.02 * scale))
        x = _x(d_model)
        expected = _jumprelu(x, W_enc, raw["encoder.bias"].float(), torch.full((64,), 0.02 * scale))
        with torch.no_grad():
            torch.testing.assert_close(sae.encode(x), expected)
    # results computed from the bfloat16 fold are not taken for these weights' results
    assert source.content_hash() != dataclasses.replace(source, conversion=None).content_hash()
    # an explicit dtype is still honoured, the fold done in it as sae-lens does
    assert load_sae(tmp_path / LLAMA_FOLDER, dtype="bfloat16").dtype == torch.bfloat16


def test_llama_scope_defaults_match_saelens_defaults(hf_cache: HFCache) -> None:  # noqa: F811
    sae_lens = _saelens()
    from pseval.sae.pretrained import registry

    scaling = float(registry()[LLAMA_RELEASE].saes[LLAMA_ID]["norm_scaling_factor"])
    d_model = 16
    snap = hf_cache.snapshot(LLAMA_REPO)
    write_llama_scope(snap / LLAMA_FOLDER, d_model=d_model, d_sae=64, norm_in=math.sqrt(d_model) / scaling)
    hf_cache.commit(LLAMA_REPO)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = sae_lens.SAE.from_pretrained(LLAMA_RELEASE, LLAMA_ID)  # no dtype: float32
    assert theirs.W_enc.dtype == torch.float32
    for spec in (f"saelens:{LLAMA_RELEASE}/{LLAMA_ID}", str(snap / LLAMA_FOLDER)):
        ours = load_sae(spec)  # no dtype either
        assert ours.dtype == torch.float32
        torch.testing.assert_close(ours.W_enc, theirs.W_enc, atol=0, rtol=0)
        _assert_same_latents(ours, theirs, d_model, atol=1e-6)


# ==================================================================================================
# one metadata rule for both routes: a folder opened by path and saelens:RELEASE/ID record the same
# ==================================================================================================

DL_RELEASE, DL_ID = "sae_bench_pythia70m_sweep_topk_ctx128_0730", "blocks.3.hook_resid_post__trainer_0"
DL_REPO, DL_PATH = "canrager/lm_sae", "pythia70m_sweep_topk_ctx128_0730/resid_post_layer_3/trainer_0"


def write_dictionary_learning_autoencoder(folder: Path, d_in: int = 16, d_sae: int = 48) -> None:
    """A dictionary_learning ``AutoEncoder`` folder as SAEBench's sweeps ship it."""
    g = torch.Generator().manual_seed(0)
    state = {
        "encoder.weight": torch.randn(d_sae, d_in, generator=g) * 0.3,
        "encoder.bias": torch.randn(d_sae, generator=g) * 0.1,
        "decoder.weight": torch.randn(d_in, d_sae, generator=g) * 0.3,
        "bias": torch.randn(d_in, generator=g) * 0.5,
    }
    folder.mkdir(parents=True)
    torch.save(state, str(folder / "ae.pt"))
    trainer = {
        "dict_class": "AutoEncoder",
        "trainer_class": "StandardTrainer",
        "activation_dim": d_in,
        "dict_size": d_sae,
        "layer": 3,
        "lm_name": "EleutherAI/pythia-70m-deduped",
        "submodule_name": "resid_post_layer_3",
    }
    (folder / "config.json").write_text(json.dumps({"trainer": trainer, "buffer": {"ctx_len": 128}}))


def test_dictionary_learning_folder_prepends_bos_as_the_registry_route_does(tmp_path: Path) -> None:
    write_dictionary_learning_autoencoder(tmp_path / "trainer_0")
    assert open_sae(tmp_path / "trainer_0").cfg.metadata["prepend_bos"] is True


def test_gemma_scope_2_without_config_infers_model_and_hooks_from_the_path(tmp_path: Path) -> None:
    cases = [
        ("models--google--gemma-scope-2-1b-it/snapshots/abc/attn_out/layer_13_width_16k_l0_big", False),
        ("gemma-scope-2-270m-pt/transcoder/layer_9_width_16k_l0_small_affine", True),
    ]
    expected = [
        ("google/gemma-3-1b-it", "blocks.13.attn.hook_z", "model.layers.13.self_attn.o_proj.input"),
        ("google/gemma-3-270m", "blocks.9.hook_mlp_in", "model.layers.9.pre_feedforward_layernorm.output"),
    ]
    for (folder, skip), (model, hook, hf_hook) in zip(cases, expected, strict=True):
        write_gemma_scope_2(tmp_path / folder, skip=skip)
        (tmp_path / folder / "config.json").unlink()
        cfg = open_sae(tmp_path / folder).cfg
        assert (cfg.model_name, cfg.hook_name, cfg.metadata["hf_hook_name"]) == (model, hook, hf_hook)
        assert cfg.metadata["prepend_bos"] is True and cfg.metadata["gemma_scope_2_cfg_inferred"] is True
        if skip:
            assert cfg.metadata["transcoder"]["skip_connection"] is True
            assert cfg.metadata["hf_hook_name_out"] == "model.layers.9.post_feedforward_layernorm.output"


ROUTE_CASES = [
    # (release, sae id, repo, folder in the repo, whether to drop config.json)
    (DL_RELEASE, DL_ID, DL_REPO, DL_PATH, False),
    ("gemma-scope-2-1b-it-att", "layer_13_width_16k_l0_big", "google/gemma-scope-2-1b-it",
     "attn_out/layer_13_width_16k_l0_big", True),
    ("gemma-scope-2-270m-pt-transcoders", "transcoder/layer_9_width_16k_l0_small_affine",
     "google/gemma-scope-2-270m-pt", "transcoder/layer_9_width_16k_l0_small_affine", True),
]  # fmt: skip


@pytest.mark.parametrize(("release", "sae_id", "repo", "folder", "drop_config"), ROUTE_CASES)
def test_both_routes_record_what_saelens_records(
    hf_cache: HFCache,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    release: str,
    sae_id: str,
    repo: str,
    folder: str,
    drop_config: bool,
) -> None:
    sae_lens = _saelens()
    from huggingface_hub import hf_hub_download
    from sae_lens.loading import pretrained_sae_loaders as loaders
    from safetensors import safe_open

    def local_shapes(repo_id: str, filename: str) -> dict[str, list[int]]:  # sae-lens reads them over HTTP
        with safe_open(hf_hub_download(repo_id, filename), framework="pt") as f:
            return {k: list(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118

    monkeypatch.setattr(loaders, "get_safetensors_tensor_shapes", local_shapes)
    snap = hf_cache.snapshot(repo)
    if release == DL_RELEASE:
        write_dictionary_learning_autoencoder(snap / folder)
    else:
        write_gemma_scope_2(snap / folder, skip=folder.endswith("affine"))
    if drop_config:
        (snap / folder / "config.json").unlink()
    hf_cache.commit(repo)
    theirs = _from_pretrained(sae_lens, release, sae_id)
    by_path, by_registry = open_sae(snap / folder).cfg, open_sae(f"saelens:{release}/{sae_id}").cfg
    for cfg in (by_path, by_registry):
        assert cfg.metadata["prepend_bos"] is True is theirs.cfg.metadata.prepend_bos
        assert cfg.hook_name == theirs.cfg.metadata.hook_name
    assert by_path.model_name == by_registry.model_name is not None
    if release != DL_RELEASE:  # dictionary_learning: pseval keeps lm_name's organisation, sae-lens drops it
        assert by_path.model_name == theirs.cfg.metadata.model_name
    _assert_same_latents(load_sae(snap / folder), theirs, by_path.d_in)


def _from_pretrained(sae_lens: Any, release: str, sae_id: str) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return sae_lens.SAE.from_pretrained(release, sae_id)


# ==================================================================================================
# sparsify: pinned to sparsify's own Sae.encode/decode (sae-lens 6.54's sparsify converter is wrong; see
# docs/formats.md)
# ==================================================================================================


def sparsify_encode(
    x: torch.Tensor, t: dict[str, torch.Tensor], k: int, transcode: bool
) -> tuple[torch.Tensor, ...]:
    """sparsify's ``Sae.encode``: ``pre_acts`` (``x - b_dec`` unless transcoding, the ``encoder`` Linear, ReLU),
    then the top k."""
    sae_in = x if transcode else x - t["b_dec"]
    pre_acts = torch.relu(sae_in @ t["encoder.weight"].T + t["encoder.bias"])
    top_acts, top_indices = pre_acts.topk(k, sorted=False)
    return top_acts, top_indices


def sparsify_decode(
    top_acts: torch.Tensor, top_indices: torch.Tensor, t: dict[str, torch.Tensor]
) -> torch.Tensor:
    """sparsify's ``Sae.decode``: ``top_acts @ W_dec[top_indices] + b_dec`` (``W_dec`` is ``[num_latents, d_in]``)."""
    return (top_acts.unsqueeze(-1) * t["W_dec"][top_indices]).sum(-2) + t["b_dec"]


@pytest.mark.parametrize(
    ("name", "transcode", "hook"),
    [
        ("layer_4", False, "blocks.4.hook_resid_post"),  # older releases; sae-lens 6.54 rejects the name
        ("layers.4", False, "blocks.4.hook_resid_post"),
        ("layers.4.mlp", False, "blocks.4.hook_mlp_out"),  # sae-lens 6.54: the residual stream
        ("layers.4.mlp", True, "blocks.4.hook_mlp_in"),  # a transcoder reads the MLP's input
    ],
)
def test_sparsify_matches_sparsify_itself(tmp_path: Path, name: str, transcode: bool, hook: str) -> None:
    d_in, k = 16, 6
    folder = tmp_path / "run" / name
    tensors = write_sparsify_folder(folder, d_in=d_in, d_sae=64, k=k, transcode=transcode)
    cfg_file = folder / "cfg.json"
    # real releases train with unit-norm decoder rows; sae-lens 6.54 then skips the b_dec subtraction
    cfg_file.write_text(json.dumps({**json.loads(cfg_file.read_text()), "normalize_decoder": True}))
    sae = load_sae(folder)
    assert sae.cfg.hook_name == hook
    assert sae.cfg.apply_b_dec_to_input is not transcode
    x = _x(d_in)
    top_acts, top_indices = sparsify_encode(x, tensors, k, transcode)
    expected = torch.zeros(x.shape[0], 64).scatter_(-1, top_indices, top_acts)
    with torch.no_grad():
        latents = sae.encode(x)
        torch.testing.assert_close(latents, expected)
        torch.testing.assert_close(sae.decode(latents), sparsify_decode(top_acts, top_indices, tensors))
