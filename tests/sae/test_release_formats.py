"""Public release layouts, each read by pseval and by sae-lens's own converter: the same latents.

Every fixture is a tiny random SAE written in the release's layout; where a sae-lens converter fetches
metadata over the network (Gemma Scope 2's tensor shapes), only that call is replaced by a read of the local
file. Registry releases are resolved from a temporary offline Hugging Face cache.
"""

from __future__ import annotations

import json
import math
import shutil
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors import safe_open

from pseval.errors import SAEError
from pseval.sae import load_sae, open_sae
from tests.sae.release_fixtures import (
    HFCache,
    hf_cache,  # noqa: F401  (fixture)
    write_gemma_scope_2,
    write_llama_scope,
    write_qwen_scope,
    write_sparsify_folder,
)

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    sae_lens = pytest.importorskip("sae_lens")

from sae_lens.loading import pretrained_sae_loaders as loaders


def _x(d_in: int, n: int = 64, seed: int = 3) -> torch.Tensor:
    return torch.randn(n, d_in, generator=torch.Generator().manual_seed(seed))


def _same_encode(ours: Any, theirs: Any, d_in: int, atol: float = 1e-6) -> None:
    x = _x(d_in)
    with torch.no_grad():
        a, b = ours.encode(x), theirs.encode(x.to(theirs.W_enc.dtype))
    assert a.shape == b.shape
    assert int((b > 0).sum()) > 0 and int((b == 0).sum()) > 0  # the fixture exercises both sides
    torch.testing.assert_close(a.float(), b.float(), atol=atol, rtol=1e-5)


@pytest.fixture
def local_shapes(monkeypatch: pytest.MonkeyPatch) -> None:
    """sae-lens's gemma_3 converter reads tensor shapes with HTTP range requests: read the cached file instead."""
    from huggingface_hub import hf_hub_download

    def shapes(repo_id: str, filename: str) -> dict[str, list[int]]:
        with safe_open(hf_hub_download(repo_id, filename), framework="pt") as f:
            return {k: list(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118

    monkeypatch.setattr(loaders, "get_safetensors_tensor_shapes", shapes)


def _from_pretrained(release: str, sae_id: str, **kw: Any) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return sae_lens.SAE.from_pretrained(release, sae_id, **kw)


# ==================================================================================================
# Gemma Scope 2
# ==================================================================================================

GS2_REPO = "google/gemma-scope-2-270m-pt"
GS2_CASES = [
    # (release, sae id, folder in repo, expected hook, transcoder output hook)
    (
        "gemma-scope-2-270m-pt-res",
        "layer_12_width_16k_l0_small",
        "resid_post/layer_12_width_16k_l0_small",
        "blocks.12.hook_resid_post",
        None,
    ),
    (
        "gemma-scope-2-270m-pt-att",
        "layer_12_width_16k_l0_small",
        "attn_out/layer_12_width_16k_l0_small",
        "blocks.12.attn.hook_z",
        None,
    ),
    (
        "gemma-scope-2-270m-pt-mlp",
        "layer_12_width_16k_l0_small",
        "mlp_out/layer_12_width_16k_l0_small",
        "blocks.12.hook_mlp_out",
        None,
    ),
    (
        "gemma-scope-2-270m-pt-transcoders",
        "transcoder/layer_9_width_16k_l0_small_affine",
        "transcoder/layer_9_width_16k_l0_small_affine",
        "blocks.9.hook_mlp_in",
        "blocks.9.hook_mlp_out",
    ),
]


@pytest.mark.parametrize(("release", "sae_id", "folder", "hook", "hook_out"), GS2_CASES)
def test_gemma_scope_2_matches_saelens(
    hf_cache: HFCache,  # noqa: F811
    local_shapes: None,
    release: str,
    sae_id: str,
    folder: str,
    hook: str,
    hook_out: str | None,
) -> None:
    snap = hf_cache.snapshot(GS2_REPO)
    skip = hook_out is not None and folder.endswith("affine")
    write_gemma_scope_2(snap / folder, skip=skip, config={"affine_connection": skip} if hook_out else None)
    hf_cache.commit(GS2_REPO)
    theirs = _from_pretrained(release, sae_id)
    for spec in (str(snap / folder), f"saelens:{release}/{sae_id}"):
        ours = load_sae(spec)
        _same_encode(ours, theirs, 8)
        assert ours.cfg.hook_name == hook == theirs.cfg.metadata.hook_name
        assert ours.cfg.apply_b_dec_to_input is False
        assert ours.cfg.metadata["prepend_bos"] is True
        assert ours.cfg.model_name == "google/gemma-3-270m"
        if hook_out is not None:
            assert type(theirs).__name__.endswith("Transcoder")
            assert ours.cfg.metadata["transcoder"]["hook_name_out"] == hook_out
            assert ours.cfg.metadata["transcoder"]["skip_connection"] is skip
        else:
            assert "transcoder" not in ours.cfg.metadata


def test_gemma_scope_2_open_reads_headers_only_and_refs_are_lazy(tmp_path: Path) -> None:
    folder = tmp_path / "resid_post" / "layer_3_width_16k_l0_small"
    tensors = write_gemma_scope_2(folder, d_in=8, d_sae=32)
    source = open_sae(folder)
    assert source.format == "gemma_scope_2"
    assert (source.cfg.d_in, source.cfg.d_sae, source.cfg.architecture) == (8, 32, "jumprelu")
    assert source.tensors is not None
    ref = source.tensors["W_enc"]
    assert (ref.key, ref.transposed) == ("w_enc", False)
    with safe_open(str(ref.path), framework="pt") as f:
        torch.testing.assert_close(f.get_tensor(ref.key), tensors["w_enc"])
    assert source.load().fingerprint() == load_sae(folder).fingerprint()
    assert source.content_hash() == open_sae(folder).content_hash()


def test_gemma_scope_2_saelens_spec_needs_the_cache(hf_cache: HFCache) -> None:  # noqa: F811
    with pytest.raises(SAEError, match=r"offline mode is on .* not in the local cache"):
        open_sae("saelens:gemma-scope-2-270m-pt-res/layer_12_width_16k_l0_small")


# ==================================================================================================
# Qwen-Scope
# ==================================================================================================


def test_qwen_scope_matches_saelens(hf_cache: HFCache, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    # the converter takes d_in from its model table and d_sae, k from the repo name: add a tiny model
    monkeypatch.setitem(loaders.QWEN_SCOPE_MODEL_INFO, "Tiny-Base", ("Qwen/Tiny-Base", 16))
    repo = "Qwen/SAE-Res-Tiny-Base-W1K-L0_6"
    snap = hf_cache.snapshot(repo)
    write_qwen_scope(snap / "layer3.sae.pt", d_in=16, d_sae=1024)
    hf_cache.commit(repo)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs, _, _ = sae_lens.SAE.from_pretrained_with_cfg_and_sparsity(
            repo, "layer3.sae.pt", converter=loaders.qwen_scope_sae_huggingface_loader
        )
    ours = load_sae(snap / "layer3.sae.pt")
    _same_encode(ours, theirs, 16)
    assert ours.cfg.architecture == "topk" and ours.cfg.k == 6  # type: ignore[attr-defined]
    assert ours.cfg.hook_name == "blocks.3.hook_resid_post" == theirs.cfg.metadata.hook_name
    assert ours.cfg.model_name == "Qwen/Tiny-Base"
    assert ours.cfg.apply_b_dec_to_input is False
    # a folder of layer files: pick one by hook
    by_hook = load_sae(snap, hook_name="blocks.3.hook_resid_post")
    assert by_hook.fingerprint() == ours.fingerprint()


def test_qwen_scope_without_its_repo_name_says_why(tmp_path: Path) -> None:
    write_qwen_scope(tmp_path / "layer3.sae.pt")
    with pytest.raises(SAEError, match="cannot tell k"):
        open_sae(tmp_path / "layer3.sae.pt")


# ==================================================================================================
# Llama Scope
# ==================================================================================================


def test_llama_scope_matches_saelens(hf_cache: HFCache) -> None:  # noqa: F811
    release, sae_id = "llama_scope_lxa_32x", "l0a_32x"
    repo, folder = "fnlp/Llama3_1-8B-Base-LXA-32x", "Llama3_1-8B-Base-L0A-32x"
    from pseval.sae.pretrained import registry

    scaling = float(registry()[release].saes[sae_id]["norm_scaling_factor"])
    d_model = 16
    snap = hf_cache.snapshot(repo)
    # average norm consistent with the registry's factor, so the folder alone folds the same factor
    write_llama_scope(snap / folder, d_model=d_model, d_sae=64, norm_in=math.sqrt(d_model) / scaling)
    hf_cache.commit(repo)
    theirs = _from_pretrained(release, sae_id)  # float32, folded as SAE.from_pretrained does
    for spec in (f"saelens:{release}/{sae_id}", str(snap / folder)):
        ours = load_sae(spec, dtype="float32")
        _same_encode(ours, theirs, d_model, atol=1e-5)
        assert ours.cfg.normalize_activations == "none"
        assert ours.cfg.hook_name == "blocks.0.hook_attn_out"
    assert open_sae(snap / folder).cfg.dtype == "float32"


# ==================================================================================================
# sparsify, both folder namings
# ==================================================================================================


@pytest.mark.parametrize(
    ("name", "hook"),
    [
        ("layer_4", "blocks.4.hook_resid_post"),
        ("layers.4", "blocks.4.hook_resid_post"),
        ("layers.4.mlp", "blocks.4.hook_mlp_out"),
    ],
)
def test_sparsify_matches_saelens(tmp_path: Path, name: str, hook: str) -> None:
    folder = tmp_path / "run" / name
    write_sparsify_folder(folder)
    theirs_folder = folder
    if name.startswith("layer_"):
        # sae-lens's converter only knows the layers.N naming; the tensors are the same
        theirs_folder = tmp_path / "theirs" / name.replace("layer_", "layers.")
        shutil.copytree(folder, theirs_folder)
    cfg_dict, state = loaders.sparsify_disk_loader(theirs_folder, cfg_overrides={"dtype": "float32"})
    cfg_dict = loaders.handle_config_defaulting({**cfg_dict, "dtype": "float32"})
    # sae-lens's sparsify converter transposes sparsify's W_dec [d_sae, d_in] into [d_in, d_sae]; only the
    # encoder is compared, so give its SAE class the shape it expects
    state = {k: v.float() for k, v in state.items()}
    state["W_dec"] = state["W_dec"].T
    cfg_cls = sae_lens.SAE.get_sae_config_class_for_architecture(cfg_dict["architecture"])
    sl_cfg = cfg_cls.from_dict(cfg_dict)
    theirs = sae_lens.SAE.get_sae_class_for_architecture(sl_cfg.architecture())(sl_cfg)
    theirs.load_state_dict(state)
    ours = load_sae(folder)
    _same_encode(ours, theirs, 16)
    assert ours.cfg.hook_name == hook
    assert ours.cfg.apply_b_dec_to_input is True


# ==================================================================================================
# Matryoshka BatchTopK, as SAELens and dictionary_learning save it
# ==================================================================================================


def test_matryoshka_saved_by_saelens(tmp_path: Path) -> None:
    from sae_lens.saes.matryoshka_batchtopk_sae import (
        MatryoshkaBatchTopKTrainingSAE,
        MatryoshkaBatchTopKTrainingSAEConfig,
    )

    cfg = MatryoshkaBatchTopKTrainingSAEConfig(d_in=16, d_sae=48, k=6, matryoshka_widths=[12, 24, 48])
    training = MatryoshkaBatchTopKTrainingSAE(cfg)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in training.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
        training.topk_threshold = torch.tensor(0.2, dtype=torch.double)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        training.save_inference_model(str(tmp_path / "m"))
        theirs = sae_lens.SAE.load_from_disk(str(tmp_path / "m"))
    ours = load_sae(tmp_path / "m")
    assert ours.cfg.architecture == "batchtopk"
    _same_encode(ours, theirs, 16)


def test_matryoshka_saved_by_dictionary_learning(tmp_path: Path, hf_cache: HFCache) -> None:  # noqa: F811
    repo, folder = "tiny/matryoshka", "resid_post_layer_3/trainer_0"
    snap = hf_cache.snapshot(repo)
    g = torch.Generator().manual_seed(0)
    d_in, d_sae = 16, 48
    state = {
        "W_enc": torch.randn(d_in, d_sae, generator=g) * 0.3,
        "b_enc": torch.randn(d_sae, generator=g) * 0.1,
        "W_dec": torch.randn(d_sae, d_in, generator=g) * 0.3,
        "b_dec": torch.randn(d_in, generator=g) * 0.5,
        "threshold": torch.tensor(0.25),
        "k": torch.tensor(6),
        "group_sizes": torch.tensor([12, 12, 24]),
    }
    (snap / folder).mkdir(parents=True)
    torch.save(state, str(snap / folder / "ae.pt"))
    trainer = {
        "dict_class": "MatryoshkaBatchTopKSAE",
        "trainer_class": "MatryoshkaBatchTopKTrainer",
        "activation_dim": d_in,
        "dict_size": d_sae,
        "k": 6,
        "layer": 3,
        "lm_name": "EleutherAI/pythia-70m-deduped",
        "submodule_name": "resid_post_layer_3",
    }
    (snap / folder / "config.json").write_text(json.dumps({"trainer": trainer, "buffer": {"ctx_len": 128}}))
    hf_cache.commit(repo)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs, _, _ = sae_lens.SAE.from_pretrained_with_cfg_and_sparsity(
            repo, folder, converter=loaders.dictionary_learning_sae_huggingface_loader_1
        )
    ours = load_sae(snap / folder)
    assert ours.cfg.architecture == "batchtopk"
    assert ours.cfg.metadata["matryoshka_widths"] == [12, 12, 24]
    assert ours.cfg.hook_name == "blocks.3.hook_resid_post" == theirs.cfg.metadata.hook_name
    _same_encode(ours, theirs, d_in)


# ==================================================================================================
# SAELens transcoders
# ==================================================================================================


@pytest.mark.parametrize(
    "cls_name", ["Transcoder", "SkipTranscoder", "JumpReLUTranscoder", "JumpReLUSkipTranscoder"]
)
def test_saelens_transcoders_are_read_on_their_encoder_side(tmp_path: Path, cls_name: str) -> None:
    from sae_lens.saes import transcoder as tc

    sae_cls = getattr(tc, cls_name)
    cfg_cls = getattr(tc, cls_name + "Config")
    cfg = cfg_cls(d_in=16, d_sae=48, d_out=16, apply_b_dec_to_input=False)
    cfg.metadata.hook_name = "blocks.2.hook_mlp_in"
    cfg.metadata.hook_name_out = "blocks.2.hook_mlp_out"  # type: ignore[attr-defined]
    theirs = sae_cls(cfg)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in theirs.named_parameters():
            p.copy_(torch.randn(p.shape, generator=g) * (0.05 if name == "threshold" else 0.3))
        if hasattr(theirs, "threshold"):
            theirs.threshold.abs_()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs.save_model(str(tmp_path / "t"))
    ours = load_sae(tmp_path / "t")
    _same_encode(ours, theirs, 16)
    from pseval.sae.pretrained import from_saelens

    assert from_saelens(theirs).fingerprint() == ours.fingerprint()
    assert ours.cfg.hook_name == "blocks.2.hook_mlp_in"
    assert ours.cfg.metadata["transcoder"]["skip_connection"] is cls_name.endswith("SkipTranscoder")
    assert ours.cfg.metadata["transcoder"]["hook_name_out"] == "blocks.2.hook_mlp_out"


# ==================================================================================================
# registry metadata and whole releases
# ==================================================================================================


def test_registry_overrides_land_in_metadata(hf_cache: HFCache) -> None:  # noqa: F811
    from pseval.sae import save_sae
    from pseval.sae.pretrained import registry
    from tests.sae.conftest import make_sae

    info = registry()["gpt2-small-res-jb"]
    sae_id = "blocks.0.hook_resid_pre"
    snap = hf_cache.snapshot(info.repo_id)
    save_sae(make_sae("standard", hook_name=sae_id), snap / info.saes[sae_id]["path"])
    hf_cache.commit(info.repo_id)
    source = open_sae(f"saelens:gpt2-small-res-jb/{sae_id}")
    assert source.format == "saelens"
    assert (source.release, source.sae_id) == ("gpt2-small-res-jb", sae_id)
    assert source.cfg.metadata["model_from_pretrained_kwargs"] == {"center_writing_weights": True}
    loaded = source.load()
    assert loaded.cfg.metadata["model_from_pretrained_kwargs"] == {"center_writing_weights": True}
    assert loaded.fingerprint() == make_sae("standard").fingerprint()


def test_release_specs_match_the_whole_id() -> None:
    from pseval.sae.pretrained import release_specs

    specs = release_specs("gemma-scope-2-270m-pt-res", r"layer_1[25]_width_16k_.*")
    assert specs == [
        f"saelens:gemma-scope-2-270m-pt-res/layer_{layer}_width_16k_l0_{size}"
        for layer in (12, 15)
        for size in ("big", "medium", "small")
    ]
    with pytest.raises(SAEError, match="no SAE of release"):
        release_specs("gemma-scope-2-270m-pt-res", "layer_99_.*")
    with pytest.raises(SAEError, match="did you mean gemma-scope-2-270m-pt-res"):
        release_specs("gemma-scope-2-270m-pt-ress")


def test_release_specs_without_sae_lens(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    from pseval.sae import pretrained

    pretrained.registry.cache_clear()
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    try:
        with pytest.raises(SAEError, match=r"pip install 'pseval\[saelens\]'"):
            pretrained.release_specs("gemma-scope-2-270m-pt-res")
    finally:
        pretrained.registry.cache_clear()


# ==================================================================================================
# bounded memory: opening reads configs and headers only
# ==================================================================================================


def test_open_reads_no_weight_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pseval.sae import save_sae
    from tests.sae.conftest import make_sae

    folders = {
        "saelens": tmp_path / "sl",
        "sparsify": tmp_path / "run" / "layers.2",
        "gemma_scope_2": tmp_path / "resid_post" / "layer_2_width_16k_l0_small",
        "llama_scope": tmp_path / "Llama3_1-8B-Base-L2R-8x",
    }
    save_sae(make_sae("jumprelu"), folders["saelens"])
    write_sparsify_folder(folders["sparsify"])
    write_gemma_scope_2(folders["gemma_scope_2"])
    write_llama_scope(folders["llama_scope"])

    def no_data(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("weight data read while opening")

    with monkeypatch.context() as m:
        m.setattr(torch.UntypedStorage, "from_file", no_data)
        sources = {fmt: open_sae(folder) for fmt, folder in folders.items()}
    for fmt, source in sources.items():
        assert source.format == fmt
        assert source.load().cfg.d_sae == source.cfg.d_sae


def test_content_hash_of_huge_files_uses_headers_sizes_and_mtimes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    from pseval.sae import save_sae, source
    from tests.sae.conftest import make_sae

    save_sae(make_sae("topk", seed=1), tmp_path / "a")
    full = open_sae(tmp_path / "a").content_hash()
    monkeypatch.setattr(source, "FULL_HASH_LIMIT_BYTES", 16)
    quick = open_sae(tmp_path / "a").content_hash()
    assert quick != full and quick == open_sae(tmp_path / "a").content_hash()
    weights = tmp_path / "a" / "sae_weights.safetensors"
    stat = weights.stat()
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert open_sae(tmp_path / "a").content_hash() != quick
