"""SAE problems through the command line: NaN/Inf weights and --release/--sae-pattern."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from pseval.cli import app
from pseval.errors import SAEError
from pseval.sae import load_sae, open_sae
from tests.evals.conftest import make_sae, tiny_dataset_file, tiny_model_dir

__all__ = ["tiny_dataset_file", "tiny_model_dir"]

runner = CliRunner()


def _poison(folder: Path, tensor: str, value: float) -> Path:
    weights = folder / "sae_weights.safetensors"
    state = load_file(str(weights))
    state[tensor][1, 2] = value
    save_file(state, str(weights))
    return folder


def test_non_finite_weights_name_the_tensor_at_load_time(tmp_path: Path) -> None:
    folder = _poison(make_sae(tmp_path / "nan", "topk", "blocks.1.hook_resid_post"), "W_dec", float("inf"))
    source = open_sae(folder)  # configs and headers only: fine
    with pytest.raises(SAEError, match=r"tensor W_dec holds non-finite values \(Inf\)"):
        source.load()
    with pytest.raises(SAEError, match="tensor W_dec"):
        load_sae(folder)


def _console(*args: str) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).with_name("pseval")
    command = [str(script)] if script.is_file() else [sys.executable, "-m", "pseval.cli"]
    return subprocess.run(
        [*command, *args],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "200"},
        timeout=300,
    )


@pytest.mark.parametrize("command", ["eval", "metrics"])
def test_nan_weights_exit_2_through_the_console_script(
    tmp_path: Path, tiny_model_dir: Path, tiny_dataset_file: Path, command: str
) -> None:
    folder = _poison(
        make_sae(tmp_path / "nan-sae", "standard", "blocks.1.hook_resid_post"), "W_enc", float("nan")
    )
    extra = ["--dataset", str(tiny_dataset_file), "--out", str(tmp_path / "out")] if command == "eval" else []
    proc = _console(command, "--model", str(tiny_model_dir), "--sae", str(folder), *extra)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    assert any("tensor W_enc holds non-finite values (NaN)" in line for line in lines), proc.stderr
    assert len(lines) <= 2


def test_sae_pattern_needs_release() -> None:
    result = runner.invoke(app, ["eval", "--sae-pattern", "layer_.*"])
    assert result.exit_code == 2
    assert "--sae-pattern needs --release" in result.output


def test_eval_needs_an_sae() -> None:
    result = runner.invoke(app, ["eval"])
    assert result.exit_code == 2
    assert "no SAE to evaluate" in result.output


def test_unknown_release_is_one_line() -> None:
    pytest.importorskip("sae_lens")
    result = runner.invoke(app, ["eval", "--release", "gemma-scope-2-270m-pt-ress"])
    assert result.exit_code == 2
    assert "did you mean gemma-scope-2-270m-pt-res" in result.output


def test_release_expands_after_the_given_saes() -> None:
    pytest.importorskip("sae_lens")
    from pseval.cli import _expand_release

    first = "saelens:gemma-scope-2-270m-pt-res/layer_12_width_16k_l0_small"
    specs = _expand_release([first, "some/folder"], "gemma-scope-2-270m-pt-res", "layer_12_width_16k_.*")
    assert specs == [
        first,
        "some/folder",
        "saelens:gemma-scope-2-270m-pt-res/layer_12_width_16k_l0_big",
        "saelens:gemma-scope-2-270m-pt-res/layer_12_width_16k_l0_medium",
    ]


def test_metrics_refuses_transcoders(tmp_path: Path, tiny_model_dir: Path) -> None:
    from tests.sae.release_fixtures import write_gemma_scope_2

    folder = tmp_path / "transcoder" / "layer_1_width_16k_l0_small"
    write_gemma_scope_2(folder, d_in=32, d_sae=64)
    result = runner.invoke(app, ["metrics", "--model", str(tiny_model_dir), "--sae", str(folder)])
    assert result.exit_code == 2
    assert "is a transcoder (it predicts blocks.1.hook_mlp_out" in result.output
