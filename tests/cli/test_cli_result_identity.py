"""Through the console script: SAEs sharing a folder name keep their own results; a different one is refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.evals.test_runner_identity import write_sae


def _pseval(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pseval.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "120"},
        timeout=300,
    )


def test_same_name_saes_and_refused_replacement(
    tmp_path: Path, tmp_cache: Path, tiny_model_dir: Path, tiny_dataset_file: Path
) -> None:
    a = write_sae(tmp_path / "runA" / "sae", seed=1)
    b = write_sae(tmp_path / "runB" / "sae", seed=2, prepend_bos=True)
    out = tmp_path / "results"
    common = ["--model", str(tiny_model_dir), "--dataset", str(tiny_dataset_file), "--out", str(out)]
    common += ["--no-baselines", "--bootstrap", "0", "--interpret-tokens", "0", "--no-site-check"]

    first = _pseval("eval", "--sae", str(a), *common)
    assert first.returncode == 0, first.stderr
    second = _pseval("eval", "--sae", str(b), *common)
    assert second.returncode == 0, second.stderr
    assert "finished result found" not in second.stderr
    files = sorted(p.name for p in (out / "ps_eval").glob("*.json"))
    assert files == ["runB_sae_eval_results.json", "sae_eval_results.json"]
    stored_b = json.loads((out / "ps_eval" / "runB_sae_eval_results.json").read_text())
    assert stored_b["sae_path"] == str(b.resolve())
    assert stored_b["input_regime"]["prepend_bos"] is True  # from its config, with default flags
    stored_a = json.loads((out / "ps_eval" / "sae_eval_results.json").read_text())
    assert stored_a["sae_path"] == str(a.resolve())

    before = (out / "ps_eval" / "sae_eval_results.json").read_bytes()
    refused = _pseval("eval", "--sae", str(a), *common, "--template", "{context} so {word} is")
    assert refused.returncode == 2
    lines = [line for line in refused.stderr.strip().splitlines() if line.strip()]
    assert "Traceback" not in refused.stderr and len(lines) <= 2
    assert "template" in refused.stderr and "--force-rerun" in refused.stderr
    assert (out / "ps_eval" / "sae_eval_results.json").read_bytes() == before


def test_eval_device_and_dtype_options(
    tmp_path: Path, tmp_cache: Path, tiny_model_dir: Path, tiny_dataset_file: Path
) -> None:
    from typer.testing import CliRunner

    from pseval.cli import app

    sae = write_sae(tmp_path / "sae", seed=1)
    args = ["eval", "--model", str(tiny_model_dir), "--dataset", str(tiny_dataset_file), "--sae", str(sae)]
    args += ["--out", str(tmp_path / "out"), "--bootstrap", "0", "--interpret-tokens", "0"]
    runner = CliRunner()
    result = runner.invoke(app, [*args, "--device", "auto", "--dtype", "bfloat16"])
    assert result.exit_code == 0, result.output
    stored = json.loads((tmp_path / "out" / "ps_eval" / "sae_eval_results.json").read_text())
    assert stored["eval_config"]["dtype"] == "bfloat16"
    assert stored["eval_result_metrics"]["ps_eval"]["accuracy"] is not None
    bad = runner.invoke(app, [*args, "--dtype", "float8"])
    assert bad.exit_code == 2
