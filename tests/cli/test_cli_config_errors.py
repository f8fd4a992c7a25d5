"""Invalid configuration reaches the user as one line naming the file, the field (or option) and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from pseval.cli import app

runner = CliRunner()


def _one_error_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert lines[0].startswith("error: ") and "Traceback" not in output
    return lines[0]


def test_eval_names_the_options_not_the_config_fields(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        ["eval", "--sae", str(tmp_path / "sae"), "--batch-size", "0", "--topk-overlap-k", "0"],
    )
    assert result.exit_code == 2
    line = _one_error_line(result.output)
    assert "--batch-size: must be >= 1 (got 0)" in line
    assert "--topk-overlap-k: must be >= 1 (got 0)" in line
    assert "batch_size" not in line


def test_train_config_file_errors_name_the_file_and_the_keys(tmp_path: Path) -> None:
    config = tmp_path / "train.yaml"
    config.write_text("k: many\nwarmup: 3\n", encoding="utf-8")
    result = runner.invoke(app, ["train", "--config", str(config)])
    assert result.exit_code == 2
    line = _one_error_line(result.output)
    assert "train.yaml: invalid training config" in line
    assert "k: Input should be a valid integer" in line and "'many'" in line
    assert "warmup: Extra inputs are not permitted" in line


def test_sweep_grid_errors_name_the_file_and_the_grid_key(tmp_path: Path) -> None:
    config = tmp_path / "sweep.yaml"
    config.write_text("name: s\ngrid:\n  layers: [1]\n  k: [four]\n", encoding="utf-8")
    result = runner.invoke(app, ["sweep", str(config)])
    assert result.exit_code == 2
    line = _one_error_line(result.output)
    assert "sweep.yaml: invalid sweep config: grid.k.0: Input should be a valid integer" in line
    # Neither pydantic's union member names nor the list branch's mismatch reach the user.
    assert "GridConfig" not in line and "valid list" not in line


def test_sweep_override_errors_name_every_bad_key(tmp_path: Path) -> None:
    config = tmp_path / "sweep.yaml"
    config.write_text(
        "name: s\ngrid:\n  layers: [1]\neval_overrides: {split: valid, bogus: 1}\n", encoding="utf-8"
    )
    result = runner.invoke(app, ["sweep", str(config)])
    assert result.exit_code == 2
    line = _one_error_line(result.output)
    assert "sweep.yaml: invalid eval_overrides: split:" in line and "bogus: Extra inputs" in line
    assert "('split',)" not in line

    config.write_text(
        "name: s\ngrid:\n  layers: [1]\ntrain_overrides: {lr_warmup_steps: soon}\n", encoding="utf-8"
    )
    result = runner.invoke(app, ["sweep", str(config)])
    assert result.exit_code == 2
    line = _one_error_line(result.output)
    assert "sweep.yaml: the sweep's SAE L1-" in line and "lr_warmup_steps:" in line
    assert "train_overrides" in line


@pytest.mark.parametrize("command", ["train --config", "sweep"])
def test_yaml_syntax_errors_are_one_line_with_the_line(command: str, tmp_path: Path) -> None:
    config = tmp_path / "broken.yaml"
    config.write_text("name: s\nk: [1\n", encoding="utf-8")
    result = runner.invoke(app, [*command.split(), str(config)])
    assert result.exit_code == 2
    line = _one_error_line(result.output)
    assert "broken.yaml" in line and "at line 3" in line


def test_report_names_the_bad_fields_of_a_result_file(tmp_path: Path) -> None:
    path = tmp_path / "ps_eval" / "sae_eval_results.json"
    path.parent.mkdir()
    path.write_text('{"eval_type_id": "ps_eval", "eval_config": {}, "sae_name": "x"}', encoding="utf-8")
    result = runner.invoke(app, ["report", str(tmp_path), "--no-figures"])
    assert result.exit_code == 2
    line = _one_error_line(result.output)
    assert "sae_eval_results.json is not a valid PS-Eval result (eval_id: Field required" in line
