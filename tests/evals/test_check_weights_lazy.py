"""NaN/Inf weights of an SAE readable from safetensors fail before any model pass, without loading the SAE."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file, save_file

from pseval.errors import SAEError
from pseval.evals.runner import SAEItem, _check_weights
from pseval.sae.config import config_from_dict
from pseval.sae.formats import save_sae
from pseval.sae.formats.loader import open_sae
from pseval.sae.model import SAE
from pseval.sae.source import SAESource
from pseval.sae.weights_check import check_finite_tensors

HOOK = "blocks.1.hook_resid_post"


def saved(folder: Path, architecture: str = "jumprelu", dtype: str = "float32") -> Path:
    fields: dict[str, Any] = {"architecture": architecture, "d_in": 16, "d_sae": 40, "hook_name": HOOK}
    if architecture == "topk":
        fields["k"] = 4
    sae = SAE.create_random(config_from_dict({**fields, "dtype": dtype}), seed=0, random_biases=True)
    save_sae(sae, folder)
    return folder


def poison(folder: Path, key: str, index: tuple[int, ...], value: float) -> None:
    weights = folder / "sae_weights.safetensors"
    state = load_file(str(weights))
    state[key][index] = value
    save_file(state, str(weights))


def item_of(source: SAESource) -> SAEItem:
    return SAEItem(base_name="sae", cfg=source.cfg, hook=HOOK, content_hash="0", source=source)


def refuse_load(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_args: Any, **_kwargs: Any) -> SAE:
        raise AssertionError("a lazily readable SAE was loaded whole")

    monkeypatch.setattr(SAESource, "load", refuse)


@pytest.mark.parametrize(
    ("key", "index", "value"),
    [
        ("W_enc", (0, 0), float("nan")),  # the first entry
        ("W_enc", (15, 39), float("inf")),  # the last entry
        ("W_dec", (7, 3), float("-inf")),
        ("b_enc", (39,), float("nan")),
        ("b_dec", (2,), float("inf")),
        ("threshold", (11,), float("nan")),
    ],
)
@pytest.mark.parametrize("block_elements", [7, 1 << 22])  # many pieces, one piece per tensor
def test_a_lazy_source_is_checked_in_pieces_with_the_load_message(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    key: str,
    index: tuple[int, ...],
    value: float,
    block_elements: int,
) -> None:
    folder = saved(tmp_path / "sae")
    poison(folder, key, index, value)
    source = open_sae(folder)
    assert source.tensors is not None
    with pytest.raises(SAEError) as loaded:
        source.load()
    with pytest.raises(SAEError) as streamed:
        check_finite_tensors(source, block_elements=block_elements)
    assert str(streamed.value) == str(loaded.value)  # same problem and fix, naming the tensor
    kind = "NaN" if value != value else "Inf"
    assert f"tensor {key} holds non-finite values ({kind})" in str(streamed.value)
    refuse_load(monkeypatch)
    with pytest.raises(SAEError, match=f"tensor {key} holds non-finite"):
        _check_weights(item_of(source))


@pytest.mark.parametrize("architecture", ["jumprelu", "topk", "standard"])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_finite_lazy_weights_pass_without_a_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, architecture: str, dtype: str
) -> None:
    source = open_sae(saved(tmp_path / "sae", architecture, dtype))
    assert source.tensors is not None
    refuse_load(monkeypatch)
    _check_weights(item_of(source))
    check_finite_tensors(source, block_elements=5)


def test_gemma_scope_2_params_are_streamed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "resid_post" / "layer_1_width_16k_l0_small"
    folder.mkdir(parents=True)
    gen = torch.Generator().manual_seed(0)
    params = {
        "w_enc": torch.randn(16, 40, generator=gen),
        "w_dec": torch.randn(40, 16, generator=gen),
        "b_enc": torch.randn(40, generator=gen),
        "b_dec": torch.randn(16, generator=gen),
        "threshold": torch.rand(40, generator=gen),
    }
    params["w_dec"][39, 15] = float("inf")
    save_file(params, str(folder / "params.safetensors"))
    (folder / "config.json").write_text(json.dumps({"architecture": "jump_relu"}))
    source = open_sae(folder, hook_name=HOOK)
    assert source.tensors is not None
    with pytest.raises(SAEError) as loaded:
        source.load()
    refuse_load(monkeypatch)
    with pytest.raises(SAEError) as streamed:
        _check_weights(item_of(source))
    assert str(streamed.value) == str(loaded.value) and "tensor W_dec" in str(streamed.value)


def test_a_truncated_file_fails_loudly(tmp_path: Path) -> None:
    folder = saved(tmp_path / "sae")
    source = open_sae(folder)
    weights = folder / "sae_weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:-8])  # after open_sae: its header now overruns the file
    with pytest.raises(SAEError, match="truncated"):
        check_finite_tensors(source)


def test_a_source_without_lazy_tensors_is_still_loaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = open_sae(saved(tmp_path / "sae"))
    source.tensors = None
    calls: list[str | None] = []
    real_load = SAESource.load

    def counting(self: SAESource, device: str = "cpu", dtype: str | None = None) -> SAE:
        calls.append(dtype)
        return real_load(self, device, dtype)

    monkeypatch.setattr(SAESource, "load", counting)
    _check_weights(item_of(source))
    assert calls == [None]
