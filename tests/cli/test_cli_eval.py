"""`pseval eval`, `pseval dataset` and `pseval compare` through the command line, including bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pseval.cli import app
from tests.evals.conftest import make_sae

runner = CliRunner()


@pytest.fixture
def env(tmp_path: Path, tmp_cache: Path, tiny_model_dir: Path, tiny_dataset_file: Path) -> dict[str, Path]:
    return {
        "model": tiny_model_dir,
        "data": tiny_dataset_file,
        "sae": make_sae(tmp_path / "sae-a", "topk", "blocks.1.hook_resid_post", seed=3),
        "sae_b": make_sae(tmp_path / "sae-b", "standard", "blocks.1.hook_resid_post", seed=4),
        "out": tmp_path / "results",
        "tmp": tmp_path,
    }


def _eval(env: dict[str, Path], *extra: str) -> list[str]:
    return ["eval", "--model", str(env["model"]), "--dataset", str(env["data"]), "--bootstrap", "200", *extra]


def test_eval_prints_table_and_writes_json(env: dict[str, Path]) -> None:
    result = runner.invoke(
        app,
        _eval(env, "--sae", str(env["sae"]), "--sae", str(env["sae_b"]), "--output-folder", str(env["out"])),
    )
    assert result.exit_code == 0, result.output
    assert "specificity" in result.output and "sae-a" in result.output and "sae-b" in result.output
    assert "Baselines" in result.output
    files = sorted((env["out"] / "ps_eval").glob("*_eval_results.json"))
    assert [f.name for f in files] == ["sae-a_eval_results.json", "sae-b_eval_results.json"]

    compared = runner.invoke(app, ["compare", str(files[0]), str(files[1])])
    assert compared.exit_code == 0, compared.output
    assert "exact McNemar" in compared.output and "specificity (different meaning)" in compared.output
    as_json = runner.invoke(app, ["compare", str(files[0]), str(files[1]), "--json"])
    assert as_json.exit_code == 0, as_json.output
    assert [row["metric"] for row in json.loads(as_json.stdout)["by_class"]] == [
        "accuracy",
        "specificity",
        "recall",
    ]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--sae", "/definitely/not/here"], "/definitely/not/here"),
        (["--hook", "blocks.1.hook_nonsense"], "hook"),
        (["--hook", "blocks.7.hook_resid_post"], "layer"),
        (["--template", "{context} means"], "{word}"),
        (["--split", "train"], "train"),
    ],
)
def test_bad_input_one_line_exit_2(env: dict[str, Path], extra: list[str], message: str) -> None:
    args = _eval(env, "--output-folder", str(env["out"]))
    if extra[0] != "--sae":
        args += ["--sae", str(env["sae"])]
    result = runner.invoke(app, args + extra)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert message in result.output
    assert not env["out"].exists()


def test_width_mismatch_exit_2(env: dict[str, Path]) -> None:
    wide = make_sae(env["tmp"] / "wide", "standard", "blocks.1.hook_resid_post", d_in=40)
    result = runner.invoke(app, _eval(env, "--sae", str(wide)))
    assert result.exit_code == 2
    assert "d_in=40" in result.output and "32" in result.output


def test_corrupt_sae_exit_2(env: dict[str, Path]) -> None:
    broken = env["tmp"] / "broken"
    broken.mkdir()
    (broken / "cfg.json").write_text('{"architecture": "standard", "d_in": 32, "d_sae": 64}')
    (broken / "sae_weights.safetensors").write_bytes(b"\x00\x01not a safetensors file")
    result = runner.invoke(app, _eval(env, "--sae", str(broken)))
    assert result.exit_code == 2
    assert "Traceback" not in result.output


def test_empty_dataset_exit_2(env: dict[str, Path]) -> None:
    empty = env["tmp"] / "empty.jsonl"
    empty.write_text("")
    result = runner.invoke(
        app, ["eval", "--model", str(env["model"]), "--dataset", str(empty), "--sae", str(env["sae"])]
    )
    assert result.exit_code == 2
    assert "Traceback" not in result.output


def test_previous_results_survive_a_failed_run(env: dict[str, Path]) -> None:
    ok = runner.invoke(app, _eval(env, "--sae", str(env["sae"]), "--output-folder", str(env["out"])))
    assert ok.exit_code == 0
    path = env["out"] / "ps_eval" / "sae-a_eval_results.json"
    before = path.read_bytes()
    bad = runner.invoke(
        app,
        _eval(
            env,
            "--sae",
            str(env["sae"]),
            "--hook",
            "blocks.9.hook_resid_post",
            "--output-folder",
            str(env["out"]),
            "--force-rerun",
        ),
    )
    assert bad.exit_code == 2
    assert path.read_bytes() == before
    assert json.loads(before)["eval_type_id"] == "ps_eval"


def test_console_script_no_traceback(env: dict[str, Path]) -> None:
    """The installed entry point: one line on stderr, exit code 2."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pseval.cli",
            "eval",
            "--model",
            str(env["model"]),
            "--sae",
            str(env["tmp"] / "missing"),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        timeout=120,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert len([line for line in proc.stderr.strip().splitlines() if line.strip()]) <= 2


def test_inspect_breakdowns_and_word_drill_down(env: dict[str, Path]) -> None:
    ok = runner.invoke(
        app,
        _eval(env, "--sae", str(env["sae"]), "--output-folder", str(env["out"]), "--interpret-tokens", "512"),
    )
    assert ok.exit_code == 0, ok.output
    path = str(env["out"] / "ps_eval" / "sae-a_eval_results.json")
    by_pos = runner.invoke(app, ["inspect", path])
    assert by_pos.exit_code == 0 and "specificity" in by_pos.output and "N" in by_pos.output
    by_word = runner.invoke(app, ["inspect", path, "--by", "word"])
    assert by_word.exit_code == 0 and "bank" in by_word.output
    by_freq = runner.invoke(app, ["inspect", path, "--by", "frequency"])
    assert by_freq.exit_code == 0, by_freq.output
    drill = runner.invoke(app, ["inspect", path, "--word", "bank"])
    assert drill.exit_code == 0 and "river" in drill.output and "latent" in drill.output
    missing = runner.invoke(app, ["inspect", path, "--word", "zebra"])
    assert missing.exit_code == 2 and "zebra" in missing.output
