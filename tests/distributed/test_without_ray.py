"""The core runs without Ray; asking for the Ray executor without it is one line with the fix."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from pseval.cli import app
from pseval.distributed.cluster import split_hooks


def test_core_and_the_distributed_layer_import_without_ray() -> None:
    code = (
        "import sys; sys.modules['ray'] = None\n"
        "import pseval.cli, pseval.sweep.runner, pseval.evals.runner\n"
        "import pseval.distributed.sweep, pseval.distributed.evaluate\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_ray_executor_without_ray_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"grid": {"layers": [1]}, "out": str(tmp_path / "out")}))
    result = CliRunner().invoke(app, ["sweep", str(path), "--executor", "ray"])
    assert result.exit_code == 2, result.output
    assert "pip install 'pseval[ray]'" in result.output and "Traceback" not in result.output


def test_hooks_are_split_into_contiguous_groups_of_about_equal_work() -> None:
    hooks = {f"blocks.{layer}.hook_{kind}": 1 for layer in (9, 0, 3, 6) for kind in ("mlp_out", "resid_post")}
    groups = split_hooks(hooks, 2)
    assert groups == [
        [
            "blocks.0.hook_mlp_out",
            "blocks.0.hook_resid_post",
            "blocks.3.hook_mlp_out",
            "blocks.3.hook_resid_post",
        ],
        [
            "blocks.6.hook_mlp_out",
            "blocks.6.hook_resid_post",
            "blocks.9.hook_mlp_out",
            "blocks.9.hook_resid_post",
        ],
    ]
    assert split_hooks(hooks, 1) == [sorted(hooks, key=lambda h: (int(h.split(".")[1]), h))]
    assert [len(g) for g in split_hooks(hooks, 100)] == [1] * 8
    weighted = split_hooks(
        {"blocks.0.hook_resid_post": 6, "blocks.1.hook_resid_post": 1, "blocks.2.hook_resid_post": 1}, 2
    )
    assert weighted == [
        ["blocks.0.hook_resid_post"],
        ["blocks.1.hook_resid_post", "blocks.2.hook_resid_post"],
    ]
