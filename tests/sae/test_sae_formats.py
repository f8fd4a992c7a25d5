"""Reading and writing every SAE format: round trips, orientation, detection and error handling."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from pseval.errors import SAEError
from pseval.sae import (
    SAE,
    detect_format,
    load_sae,
    save_sae,
    write_dictionary_learning,
    write_gemma_scope,
    write_sparsify,
)
from pseval.sae.formats import (
    dl_submodule_to_hook,
    hf_module_to_hook,
    hook_to_dl_submodule,
    hook_to_hf_module,
)
from tests.sae.conftest import ARCH_EXTRA, D_IN, D_SAE, make_sae, random_acts

ARCHS = list(ARCH_EXTRA)
Writer = Callable[..., Path]
WRITERS: dict[str, tuple[Writer, set[str]]] = {
    "saelens": (save_sae, set(ARCHS)),
    "sparsify": (write_sparsify, {"topk"}),
    "dictionary_learning": (write_dictionary_learning, set(ARCHS)),
    "gemma_scope": (write_gemma_scope, {"jumprelu", "batchtopk"}),
}


def _assert_same_latents(a: SAE, b: SAE) -> None:
    x = random_acts()
    with torch.no_grad():
        torch.testing.assert_close(b.encode(x), a.encode(x), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(b(x), a(x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("fmt", list(WRITERS))
@pytest.mark.parametrize("arch", ARCHS)
def test_round_trip_every_architecture_and_format(tmp_path: Path, fmt: str, arch: str) -> None:
    writer, supported = WRITERS[fmt]
    sae = make_sae(arch, apply_b_dec_to_input=arch != "jumprelu")
    folder = tmp_path / "sae"
    if arch not in supported:
        with pytest.raises(SAEError, match=fmt.split("_")[0] if fmt != "gemma_scope" else "Gemma Scope"):
            writer(sae, folder)
        assert not folder.exists()
        return
    writer(sae, folder)
    assert detect_format(folder) == fmt
    loaded = load_sae(folder)
    # params.npz has no k: a BatchTopK SAE comes back as the JumpReLU SAE it runs as
    assert loaded.cfg.architecture == ("jumprelu" if fmt == "gemma_scope" else arch)
    assert (loaded.cfg.d_in, loaded.cfg.d_sae) == (D_IN, D_SAE)
    if fmt != "gemma_scope":  # Gemma Scope records its hook in the download path only
        assert loaded.cfg.hook_name == "blocks.3.hook_resid_post"
    if arch in ("topk", "batchtopk") and fmt != "gemma_scope":
        assert loaded.cfg.k == 6  # type: ignore[attr-defined]
    assert loaded.cfg.metadata["source_format"] == fmt
    _assert_same_latents(sae, loaded)


@pytest.mark.parametrize("arch", ARCHS)
def test_saelens_round_trip_is_exact(tmp_path: Path, arch: str) -> None:
    sae = make_sae(arch, normalize_activations="layer_norm")
    save_sae(sae, tmp_path / "s")
    loaded = load_sae(tmp_path / "s")
    assert loaded.fingerprint() == sae.fingerprint()
    assert loaded.cfg.model_name == "tiny-model"
    cfg = json.loads((tmp_path / "s" / "cfg.json").read_text())
    assert cfg["architecture"] == ("jumprelu" if arch == "batchtopk" else arch)
    assert cfg["metadata"]["hook_name"] == "blocks.3.hook_resid_post"
    assert cfg["metadata"]["hook_head_index"] is None
    assert int(cfg["metadata"]["sae_lens_version"].split(".")[0]) >= 6
    assert cfg["reshape_activations"] == "none"
    if arch == "batchtopk":
        assert cfg["metadata"]["training_architecture"] == "batchtopk"
        assert cfg["metadata"]["training_architecture_details"]["k"] == 6
    if arch == "topk":
        assert cfg["k"] == 6 and cfg["rescale_acts_by_decoder_norm"] is False


def test_topk_rescaled_writes_folded_weights_elsewhere(tmp_path: Path) -> None:
    sae = make_sae("topk", rescale_acts_by_decoder_norm=True)
    write_sparsify(sae, tmp_path / "sp")
    write_dictionary_learning(sae, tmp_path / "dl")
    for folder in ("sp", "dl"):
        loaded = load_sae(tmp_path / folder)
        assert loaded.cfg.rescale_acts_by_decoder_norm is False  # type: ignore[attr-defined]
        _assert_same_latents(sae, loaded)


def test_dtype_override_and_device(tmp_path: Path) -> None:
    save_sae(make_sae("standard"), tmp_path / "s")
    loaded = load_sae(tmp_path / "s", dtype="bfloat16", device="cpu")
    assert loaded.dtype == torch.bfloat16 and loaded.cfg.dtype == "bfloat16"
    save_sae(loaded, tmp_path / "b")
    assert json.loads((tmp_path / "b" / "cfg.json").read_text())["dtype"] == "bfloat16"
    with pytest.raises(SAEError, match="unknown dtype"):
        load_sae(tmp_path / "s", dtype="int8")


def test_hook_name_override_is_recorded(tmp_path: Path) -> None:
    save_sae(make_sae("standard"), tmp_path / "s")
    loaded = load_sae(tmp_path / "s", hook_name="blocks.4.hook_resid_pre")
    assert loaded.cfg.hook_name == "blocks.4.hook_resid_pre"
    assert loaded.cfg.metadata["hook_name_in_file"] == "blocks.3.hook_resid_post"


def test_weights_file_path_is_accepted(tmp_path: Path) -> None:
    sae = make_sae("jumprelu", apply_b_dec_to_input=False)
    save_sae(sae, tmp_path / "s")
    assert load_sae(tmp_path / "s" / "sae_weights.safetensors").fingerprint() == sae.fingerprint()
    write_gemma_scope(sae, tmp_path / "g")
    _assert_same_latents(sae, load_sae(tmp_path / "g" / "params.npz"))


# ------------------------------------------------------------------------------------------ orientation


def test_transposed_saelens_weights_are_transposed_back(tmp_path: Path) -> None:
    sae = make_sae("standard")
    save_sae(sae, tmp_path / "s")
    weights = load_file(str(tmp_path / "s" / "sae_weights.safetensors"))
    weights["W_enc"] = weights["W_enc"].T.contiguous()
    weights["W_dec"] = weights["W_dec"].T.contiguous()
    save_file(weights, str(tmp_path / "s" / "sae_weights.safetensors"))
    loaded = load_sae(tmp_path / "s")
    assert loaded.fingerprint() == sae.fingerprint()


def test_dictionary_learning_jumprelu_stored_transposed(tmp_path: Path) -> None:
    sae = make_sae("jumprelu", apply_b_dec_to_input=False)
    write_dictionary_learning(sae, tmp_path / "dl")
    state = torch.load(tmp_path / "dl" / "ae.pt", weights_only=True)
    state["W_enc"] = state["W_enc"].T.contiguous()  # [d_sae, d_in] instead of [d_in, d_sae]
    torch.save(state, tmp_path / "dl" / "ae.pt")
    _assert_same_latents(sae, load_sae(tmp_path / "dl"))


def test_gemma_scope_without_config_infers_dims_and_hook(tmp_path: Path) -> None:
    sae = make_sae("jumprelu", apply_b_dec_to_input=False)
    folder = tmp_path / "gemma-scope-2b-pt-res" / "layer_12" / "width_16k" / "average_l0_82"
    write_gemma_scope(sae, folder)
    loaded = load_sae(folder)
    assert loaded.cfg.hook_name == "blocks.12.hook_resid_post"
    assert loaded.cfg.model_name == "gemma-2-2b"
    assert loaded.cfg.apply_b_dec_to_input is False
    _assert_same_latents(sae, loaded)
    # a Gemma Scope file stored with W_enc transposed is still read correctly
    arrays = dict(np.load(folder / "params.npz"))
    arrays["W_enc"] = arrays["W_enc"].T.copy()
    np.savez(folder / "params.npz", **arrays)
    _assert_same_latents(sae, load_sae(folder))


def test_inconsistent_shapes_are_refused(tmp_path: Path) -> None:
    save_sae(make_sae("standard"), tmp_path / "s")
    weights = load_file(str(tmp_path / "s" / "sae_weights.safetensors"))
    save_file(
        {**weights, "W_enc": torch.zeros(D_IN, D_SAE + 1)}, str(tmp_path / "s" / "sae_weights.safetensors")
    )
    with pytest.raises(SAEError, match=r"W_enc .* shape \[16, 49\].*neither \[16, 48\]"):
        load_sae(tmp_path / "s")
    save_file({**weights, "b_enc": torch.zeros(D_SAE + 2)}, str(tmp_path / "s" / "sae_weights.safetensors"))
    with pytest.raises(SAEError, match="inconsistent d_sae"):
        load_sae(tmp_path / "s")
    cfg = json.loads((tmp_path / "s" / "cfg.json").read_text())
    save_file(weights, str(tmp_path / "s" / "sae_weights.safetensors"))
    (tmp_path / "s" / "cfg.json").write_text(json.dumps({**cfg, "d_in": 20}))
    with pytest.raises(SAEError, match="inconsistent d_in"):
        load_sae(tmp_path / "s")


def test_ambiguous_orientation_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "g"
    folder.mkdir()
    np.savez(folder / "params.npz", W_enc=np.zeros((4, 8), np.float32), W_dec=np.zeros((4, 8), np.float32))
    with pytest.raises(SAEError, match="ambiguous"):
        load_sae(folder)


# ------------------------------------------------------------------------------------------ other layouts


def test_saelens_pre6_flat_config(tmp_path: Path) -> None:
    sae = make_sae("topk")
    folder = tmp_path / "old"
    folder.mkdir()
    save_file(
        {k: v.contiguous() for k, v in sae.state_dict().items()}, str(folder / "sae_weights.safetensors")
    )
    flat = {
        "d_in": D_IN,
        "d_sae": D_SAE,
        "dtype": "float32",
        "hook_point": "blocks.3.hook_resid_post",
        "hook_layer": 3,
        "model_name": "gpt2",
        "activation_fn_str": "topk",
        "activation_fn_kwargs": {"k": 6},
        "normalize_activations": False,
        "apply_b_dec_to_input": True,
        "sae_lens_training_version": "3.12.0",
        "context_size": 128,
    }
    (folder / "cfg.json").write_text(json.dumps(flat))
    loaded = load_sae(folder)
    assert loaded.cfg.architecture == "topk" and loaded.cfg.k == 6  # type: ignore[attr-defined]
    assert loaded.cfg.hook_name == "blocks.3.hook_resid_post" and loaded.cfg.model_name == "gpt2"
    assert loaded.cfg.normalize_activations == "none"
    assert loaded.cfg.metadata["hook_layer"] == 3
    _assert_same_latents(sae, loaded)
    (folder / "cfg.json").write_text(
        json.dumps({**flat, "activation_fn_str": "relu", "normalize_activations": True})
    )
    save_file(
        {**load_file(str(folder / "sae_weights.safetensors")), "scaling_factor": torch.full((D_SAE,), 2.0)},
        str(folder / "sae_weights.safetensors"),
    )
    relu = load_sae(folder)
    assert relu.cfg.architecture == "standard"
    assert relu.cfg.normalize_activations == "expected_average_only_in"
    torch.testing.assert_close(relu.W_dec, sae.W_dec * 2.0)  # the old finetuning scale, folded


def test_sparsify_parent_folder_selects_by_hook(tmp_path: Path) -> None:
    a = make_sae("topk", seed=1, hook_name="blocks.2.hook_resid_post")
    b = make_sae("topk", seed=2, hook_name="blocks.5.hook_resid_post")
    write_sparsify(a, tmp_path / "run" / "layers.2")
    write_sparsify(b, tmp_path / "run" / "layers.5")
    (tmp_path / "run" / "config.json").write_text(json.dumps({"model": "EleutherAI/pythia-70m"}))
    with pytest.raises(SAEError, match=r"holds 2 SAEs: layers\.2 \(blocks\.2\.hook_resid_post\), layers\.5"):
        load_sae(tmp_path / "run")
    by_hook = load_sae(tmp_path / "run", hook_name="blocks.5.hook_resid_post")
    _assert_same_latents(b, by_hook)
    by_folder = load_sae(tmp_path / "run", hook_name="layers.2")
    _assert_same_latents(a, by_folder)
    assert by_folder.cfg.hook_name == "blocks.2.hook_resid_post"
    assert by_folder.cfg.metadata["hf_hook_name"] == "layers.2"
    with pytest.raises(SAEError, match=r"no SAE for 'blocks\.7\.hook_resid_post'"):
        load_sae(tmp_path / "run", hook_name="blocks.7.hook_resid_post")


def test_plain_sparsify_folder_maps_hook_from_folder_name(tmp_path: Path) -> None:
    sae = make_sae("topk")
    folder = tmp_path / "layers.3"
    write_sparsify(sae, folder)
    cfg = json.loads((folder / "cfg.json").read_text())
    del cfg["pseval"]  # as sparsify itself writes it
    (folder / "cfg.json").write_text(json.dumps(cfg))
    loaded = load_sae(folder)
    assert loaded.cfg.hook_name == "blocks.3.hook_resid_post"
    assert loaded.cfg.model_name is None
    state = load_file(str(folder / "sae.safetensors"))
    assert state["encoder.weight"].shape == (D_SAE, D_IN) and state["W_dec"].shape == (D_SAE, D_IN)


def test_sparsify_transcoder_is_read_at_its_input(tmp_path: Path) -> None:
    sae = make_sae("topk", apply_b_dec_to_input=False)
    folder = tmp_path / "layers.3.mlp"
    write_sparsify(sae, folder)
    cfg = json.loads((folder / "cfg.json").read_text())
    del cfg["pseval"]
    (folder / "cfg.json").write_text(json.dumps({**cfg, "transcode": True, "skip_connection": True}))
    state = load_file(str(folder / "sae.safetensors"))
    state["W_skip"] = torch.randn(D_IN, D_IN)
    save_file(state, str(folder / "sae.safetensors"))
    loaded = load_sae(folder)
    assert loaded.cfg.hook_name == "blocks.3.hook_mlp_in"
    assert loaded.cfg.apply_b_dec_to_input is False  # sparsify does not subtract b_dec when transcoding
    assert loaded.cfg.metadata["transcoder"]["hook_name_out"] == "blocks.3.hook_mlp_out"
    assert loaded.cfg.metadata["transcoder"]["skip_connection"] is True
    x = random_acts()
    with torch.no_grad():
        # sparsify's transcoder encode: relu(x @ encoder.weight.T + encoder.bias), then top-k
        pre = x @ state["encoder.weight"].T + state["encoder.bias"]
        top = pre.topk(6, dim=-1)
        expected = torch.zeros_like(pre).scatter(-1, top.indices, top.values.relu())
        torch.testing.assert_close(loaded.encode(x), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    ("arch", "dict_class", "keys"),
    [
        ("standard", "AutoEncoder", {"encoder.weight", "encoder.bias", "decoder.weight", "bias"}),
        (
            "topk",
            "AutoEncoderTopK",
            {"encoder.weight", "encoder.bias", "decoder.weight", "b_dec", "k", "threshold"},
        ),
        (
            "batchtopk",
            "BatchTopKSAE",
            {"encoder.weight", "encoder.bias", "decoder.weight", "b_dec", "k", "threshold"},
        ),
        ("jumprelu", "JumpReluAutoEncoder", {"W_enc", "b_enc", "W_dec", "b_dec", "threshold"}),
        (
            "gated",
            "GatedAutoEncoder",
            {"encoder.weight", "decoder.weight", "decoder_bias", "gate_bias", "mag_bias", "r_mag"},
        ),
    ],
)
def test_dictionary_learning_layout(tmp_path: Path, arch: str, dict_class: str, keys: set[str]) -> None:
    sae = make_sae(arch)
    write_dictionary_learning(sae, tmp_path / "dl")
    state = torch.load(tmp_path / "dl" / "ae.pt", weights_only=True)
    assert set(state) == keys
    if "decoder.weight" in state:
        assert state["decoder.weight"].shape == (D_IN, D_SAE)
    config = json.loads((tmp_path / "dl" / "config.json").read_text())
    assert config["trainer"]["dict_class"] == dict_class
    assert config["trainer"]["submodule_name"] == "resid_post_layer_3" and config["trainer"]["layer"] == 3
    assert config["trainer"]["lm_name"] == "tiny-model"
    _assert_same_latents(sae, load_sae(tmp_path / "dl"))
    # without config.json the class is inferred from the tensor names (k from the buffer); BatchTopKSAE
    # and AutoEncoderTopK hold the same tensors, and the latter is assumed
    (tmp_path / "dl" / "config.json").unlink()
    loaded = load_sae(tmp_path / "dl")
    assert loaded.cfg.architecture == ("topk" if arch == "batchtopk" else arch)
    if arch != "batchtopk":
        _assert_same_latents(sae, loaded)


def test_dictionary_learning_per_latent_batchtopk_thresholds_are_refused(tmp_path: Path) -> None:
    sae = make_sae("batchtopk")
    with torch.no_grad():
        sae.threshold.add_(torch.linspace(0, 0.1, D_SAE))
    with pytest.raises(SAEError, match="one threshold"):
        write_dictionary_learning(sae, tmp_path / "dl")


def test_dictionary_learning_pickled_module_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "dl"
    folder.mkdir()
    torch.save({"W_enc": torch.nn.Linear(2, 2)}, folder / "ae.pt")
    with pytest.raises(SAEError, match="pickled Python objects"):
        load_sae(folder)


# ------------------------------------------------------------------------------------------ errors


def test_missing_path_and_unknown_folder(tmp_path: Path) -> None:
    with pytest.raises(SAEError, match="does not exist"):
        load_sae(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SAEError, match="no SAE found"):
        load_sae(tmp_path / "empty")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "model.bin").write_bytes(b"xx")
    with pytest.raises(SAEError, match="no SAE found"):
        load_sae(tmp_path / "other")
    with pytest.raises(SAEError, match="not a known SAE weights file"):
        load_sae(tmp_path / "other" / "model.bin")


@pytest.mark.parametrize(
    ("fmt", "victim"),
    [
        ("saelens", "sae_weights.safetensors"),
        ("saelens", "cfg.json"),
        ("sparsify", "sae.safetensors"),
        ("sparsify", "cfg.json"),
        ("dictionary_learning", "ae.pt"),
        ("dictionary_learning", "config.json"),
        ("gemma_scope", "params.npz"),
    ],
)
def test_truncated_files_are_sae_errors(tmp_path: Path, fmt: str, victim: str) -> None:
    writer, supported = WRITERS[fmt]
    arch = "topk" if "topk" in supported else "jumprelu"
    writer(make_sae(arch), tmp_path / "s")
    path = tmp_path / "s" / victim
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(SAEError, match="corrupt or truncated"):
        load_sae(tmp_path / "s")


def test_save_refuses_a_different_sae_unless_overwrite(tmp_path: Path) -> None:
    first, second = make_sae("standard", seed=1), make_sae("standard", seed=2)
    save_sae(first, tmp_path / "s")
    save_sae(first, tmp_path / "s")  # the same SAE again is fine
    with pytest.raises(SAEError, match="already holds a different SAE"):
        save_sae(second, tmp_path / "s")
    assert load_sae(tmp_path / "s").fingerprint() == first.fingerprint()
    save_sae(second, tmp_path / "s", overwrite=True)
    assert load_sae(tmp_path / "s").fingerprint() == second.fingerprint()
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("mine")
    with pytest.raises(SAEError, match="not an SAE"):
        save_sae(first, tmp_path / "notes")
    write_dictionary_learning(second, tmp_path / "s")  # the same SAE in another format is fine
    with pytest.raises(SAEError, match="different SAE"):
        write_dictionary_learning(first, tmp_path / "s")


def test_writers_refuse_input_normalisation_they_cannot_store(tmp_path: Path) -> None:
    sae = make_sae("topk", normalize_activations="constant_norm_rescale")
    with pytest.raises(SAEError, match="constant_norm_rescale"):
        write_sparsify(sae, tmp_path / "sp")


# ------------------------------------------------------------------------------------------ hook names


def test_hook_name_mappings() -> None:
    assert hf_module_to_hook("layers.10") == "blocks.10.hook_resid_post"
    assert hf_module_to_hook("model.layers.4.mlp") == "blocks.4.hook_mlp_out"
    assert hf_module_to_hook("h.2.attn") == "blocks.2.hook_attn_out"
    assert hf_module_to_hook("embed_tokens") == "hook_embed"
    assert hf_module_to_hook("lm_head") is None
    assert hook_to_hf_module("blocks.10.hook_resid_post") == "layers.10"
    assert hook_to_hf_module("blocks.1.hook_resid_mid") is None
    assert dl_submodule_to_hook("resid_post_layer_3", 3) == "blocks.3.hook_resid_post"
    assert dl_submodule_to_hook("attention", 5) == "blocks.5.hook_attn_out"
    assert dl_submodule_to_hook("mlp", 2) == "blocks.2.hook_mlp_out"
    assert dl_submodule_to_hook("embed", 0) == "hook_embed"
    assert dl_submodule_to_hook("weird", 1) is None
    assert hook_to_dl_submodule("blocks.7.hook_mlp_out") == ("mlp_out_layer_7", 7)
