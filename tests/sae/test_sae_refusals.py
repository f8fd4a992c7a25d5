"""Weights that cannot be the SAE their config describes are refused at open time, in one line.

Opening reads configs and tensor headers only, so these refusals come before any weight is read and, through the
command line, before the model loads: exit code 2, no traceback, nothing written.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from pseval.cli import app
from pseval.errors import SAEError
from pseval.sae import open_sae
from pseval.sae.config import config_from_dict
from pseval.sae.formats import write_dictionary_learning, write_gemma_scope
from pseval.sae.model import SAE
from tests.evals.conftest import make_sae, tiny_dataset_file, tiny_model_dir

__all__ = ["tiny_dataset_file", "tiny_model_dir"]

runner = CliRunner()
HOOK = "blocks.1.hook_resid_post"


def _rewrite_safetensors(folder: Path, change: Any) -> Path:
    weights = folder / "sae_weights.safetensors"
    state = load_file(str(weights))
    change(state)
    save_file(state, str(weights))
    return folder


def jumprelu_without_threshold(folder: Path) -> Path:
    return _rewrite_safetensors(make_sae(folder, "jumprelu", HOOK), lambda state: state.pop("threshold"))


def int32_weights(folder: Path) -> Path:
    def to_int32(state: dict[str, torch.Tensor]) -> None:
        for name, tensor in state.items():
            state[name] = (tensor * 100).to(torch.int32)

    return _rewrite_safetensors(make_sae(folder, "standard", HOOK), to_int32)


def test_jumprelu_without_threshold_is_refused_at_open(tmp_path: Path) -> None:
    folder = jumprelu_without_threshold(tmp_path / "j")
    with pytest.raises(SAEError, match=r"a jumprelu SAE needs the tensor threshold, which its weights lack"):
        open_sae(folder)


def test_gated_sae_missing_two_tensors_names_both(tmp_path: Path) -> None:
    folder = _rewrite_safetensors(
        make_sae(tmp_path / "g", "gated", HOOK), lambda state: [state.pop("b_mag"), state.pop("r_mag")]
    )
    with pytest.raises(SAEError, match=r"needs the tensors b_mag and r_mag"):
        open_sae(folder)


def test_tensors_of_another_architecture_are_refused_at_open(tmp_path: Path) -> None:
    folder = make_sae(tmp_path / "s", "standard", HOOK)
    cfg = json.loads((folder / "cfg.json").read_text())
    (folder / "cfg.json").write_text(json.dumps({**cfg, "architecture": "gated"}))
    with pytest.raises(SAEError, match=r"gated SAE needs the tensors b_gate and b_mag and r_mag"):
        open_sae(folder)


def _integer_sae(tmp_path: Path, fmt: str) -> Path:
    """An SAE of ``fmt`` whose weights are stored as int32 (or int64 for the torch-saved formats)."""
    if fmt == "saelens":
        return int32_weights(tmp_path / "saelens")
    cfg = config_from_dict({"architecture": "jumprelu", "d_in": 8, "d_sae": 16, "hook_name": HOOK})
    sae = SAE.create_random(cfg, seed=0, random_biases=True)
    if fmt == "gemma_scope":
        folder = write_gemma_scope(sae, tmp_path / "gemma-scope-2b-pt-res" / "layer_1" / "width_16k" / "l0_5")
        with np.load(str(folder / "params.npz")) as data:
            arrays = {key: (data[key] * 100).astype(np.int32) for key in data.files}
        np.savez(str(folder / "params.npz"), **arrays)  # type: ignore[arg-type]
        return folder
    folder = write_dictionary_learning(sae, tmp_path / "dl")
    state = torch.load(str(folder / "ae.pt"), weights_only=True)
    torch.save({k: (v * 100).long() for k, v in state.items()}, str(folder / "ae.pt"))
    return folder


@pytest.mark.parametrize("fmt", ["saelens", "gemma_scope", "dictionary_learning"])
def test_integer_weights_are_refused_at_open(tmp_path: Path, fmt: str) -> None:
    folder = _integer_sae(tmp_path, fmt)
    with pytest.raises(
        SAEError, match=r"tensors W_dec, W_enc, .* are stored as int(32|64), not as floating point"
    ):
        open_sae(folder)


def test_unreadable_safetensors_dtype_names_it(tmp_path: Path) -> None:
    folder = make_sae(tmp_path / "s", "standard", HOOK)
    weights = folder / "sae_weights.safetensors"
    raw = weights.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + n])
    header["W_enc"]["dtype"] = (
        "F8_E4M3"  # a real safetensors dtype that neither pseval nor a float32 SAE reads
    )
    text = json.dumps(header, separators=(",", ":")).encode()
    weights.write_bytes(len(text).to_bytes(8, "little") + text + raw[8 + n :])
    with pytest.raises(SAEError, match=r"tensor W_enc is stored as F8_E4M3, which pseval does not read"):
        open_sae(folder)


@pytest.mark.parametrize(
    ("broken", "message"),
    [
        (jumprelu_without_threshold, "a jumprelu SAE needs the tensor threshold"),
        (int32_weights, "tensors W_dec, W_enc, b_dec, b_enc are stored as int32, not as floating point"),
    ],
)
def test_broken_weights_exit_2_before_the_model_loads(
    tmp_path: Path,
    tmp_cache: Path,
    tiny_model_dir: Path,
    tiny_dataset_file: Path,
    monkeypatch: pytest.MonkeyPatch,
    broken: Any,
    message: str,
) -> None:
    def no_model(*_args: Any, **_kwargs: Any) -> Any:
        raise AssertionError("the model was loaded before the SAE was checked")

    monkeypatch.setattr("pseval.models.loading.load_model", no_model)
    folder = broken(tmp_path / "sae")
    out = tmp_path / "results"
    args = ["eval", "--model", str(tiny_model_dir), "--dataset", str(tiny_dataset_file), "--sae", str(folder)]
    result = runner.invoke(app, [*args, "--bootstrap", "0", "--output-folder", str(out)])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert message in result.output
    assert len([line for line in result.output.strip().splitlines() if line.strip()]) <= 2
    assert not out.exists()
