"""Inputs that used to give a traceback or a misleading result with exit code 0, through the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from pseval.cli import app
from tests.evals.conftest import make_sae

runner = CliRunner()
HOOK = "blocks.1.hook_resid_post"


@pytest.fixture
def env(tmp_path: Path, tmp_cache: Path, tiny_model_dir: Path, tiny_dataset_file: Path) -> dict[str, Path]:
    return {
        "model": tiny_model_dir,
        "data": tiny_dataset_file,
        "sae": make_sae(tmp_path / "sae-a", "topk", HOOK, seed=3),
        "out": tmp_path / "results",
        "tmp": tmp_path,
    }


def _eval(env: dict[str, Path], *extra: str) -> list[str]:
    return [
        "eval", "--model", str(env["model"]), "--dataset", str(env["data"]), "--bootstrap", "50",
        "--interpret-tokens", "0", "--out", str(env["out"]), *extra,
    ]  # fmt: skip


def _refused(result: Any, *needles: str) -> None:
    output = result.output
    assert result.exit_code == 2, output
    assert "Traceback" not in output
    for needle in needles:
        assert needle in output, output


@pytest.mark.parametrize("command", ["eval", "dataset"])
def test_negative_seed_is_refused(env: dict[str, Path], command: str) -> None:
    if command == "eval":
        args = _eval(env, "--sae", str(env["sae"]), "--seed", "-1")
    else:
        args = ["dataset", "--model", str(env["model"]), "--dataset", str(env["data"]), "--seed", "-1"]
    _refused(runner.invoke(app, args), "--seed")
    assert not env["out"].exists()
