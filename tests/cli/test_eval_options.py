"""`pseval eval`'s options are PSEvalConfig's fields: one flag per field, its help and default from the field,
and `--config FILE` under the flags and over the defaults."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

from pseval.cli import app
from pseval.cli.eval_command import EVAL_FLAGS, EXECUTOR_OPTIONS, FILE_ONLY, RUN_OPTIONS
from pseval.cli_options import field_flag
from pseval.evals.config import PSEvalConfig

runner = CliRunner()


def _eval_params() -> dict[str, Any]:
    group = typer.main.get_command(app)
    command = group.commands["eval"]  # type: ignore[attr-defined]
    return {param.name: param for param in command.params if param.name}


def test_every_config_field_has_its_flag_and_every_flag_is_a_field_or_a_declared_run_option() -> None:
    params = _eval_params()
    fields = set(PSEvalConfig.model_fields) - FILE_ONLY
    assert fields <= set(params), f"fields without a flag: {sorted(fields - set(params))}"
    others = set(params) - fields
    assert others == set(RUN_OPTIONS) | set(EXECUTOR_OPTIONS), sorted(others)
    for name in fields:
        assert field_flag(name, EVAL_FLAGS) in params[name].opts, name


@pytest.mark.parametrize("name", sorted(set(PSEvalConfig.model_fields) - FILE_ONLY))
def test_each_flag_takes_its_help_and_default_from_the_field(name: str) -> None:
    param = _eval_params()[name]
    field = PSEvalConfig.model_fields[name]
    assert param.param_type_name == "option"
    assert param.default is None  # not given: the field's (or the --config file's) value applies
    assert field.description and param.help and param.help.startswith(field.description)
    if isinstance(field.default, bool):
        assert param.secondary_opts, name  # --flag/--no-flag
    elif field.default is not None:
        assert param.help.endswith(f"[default: {field.default}]"), param.help


def test_help_lists_every_flag_within_80_columns() -> None:
    result = runner.invoke(app, ["eval", "--help"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    assert max(len(line) for line in result.output.splitlines()) <= 80
    for name in set(PSEvalConfig.model_fields) - FILE_ONLY:
        assert field_flag(name, EVAL_FLAGS) in result.output, name
    assert "--bootstrap N " in result.output and "[default: --baselines]" in result.output


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, Any]:
    """The config `pseval eval` would run with (nothing is loaded or scored)."""
    seen: dict[str, Any] = {}

    def fake(config: Any, specs: list[str], run: dict[str, Any], ray: dict[str, Any]) -> tuple[list, set]:
        seen["config"], seen["specs"] = config, specs
        return [], set()

    monkeypatch.setattr("pseval.cli.eval_command._evaluate", fake)
    monkeypatch.chdir(tmp_path)
    return seen


def _invoke(*args: str) -> Any:
    return runner.invoke(app, ["eval", "--sae", "some/sae", "--out", "out", *args])


def test_no_settings_give_the_config_defaults(captured: dict[str, Any]) -> None:
    result = _invoke()
    assert result.exit_code == 0, result.output
    assert captured["config"] == PSEvalConfig() and captured["specs"] == ["some/sae"]


def test_flags_override_the_config_file_which_overrides_the_defaults(
    captured: dict[str, Any], tmp_path: Path
) -> None:
    (tmp_path / "eval.yaml").write_text("seed: 3\nsplit: dev\nbootstrap_resamples: 0\nbalance: false\n")
    result = _invoke("--config", "eval.yaml", "--seed", "5", "--confidence-level", "0.9")
    assert result.exit_code == 0, result.output
    config = captured["config"]
    assert (config.seed, config.split, config.bootstrap_resamples, config.balance) == (5, "dev", 0, False)
    assert config.confidence_level == 0.9 and config.topk_overlap_k == 16


def test_a_results_eval_config_is_a_config_file(captured: dict[str, Any], tmp_path: Path) -> None:
    stored = PSEvalConfig(seed=7, max_pairs=40, standard_metrics_tokens=128, cache_activations=False)
    (tmp_path / "eval.json").write_text(
        json.dumps({"eval_config": stored.model_dump(mode="json")}["eval_config"])
    )
    result = _invoke("--config", "eval.json")
    assert result.exit_code == 0, result.output
    assert captured["config"] == stored


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        ("sead: 3\n", ("eval.yaml", "sead", "Extra inputs")),
        ("split: validation\n", ("eval.yaml", "split", "validation")),
        ("bootstrap_resamples: 50\n", ("eval.yaml", "50 is too few", "--bootstrap 200")),
        ("seed: [1\n", ("eval.yaml", "cannot parse", "line")),
        (
            "- seed\n",
            (
                "eval.yaml",
                "mapping",
            ),
        ),
    ],
)
def test_a_bad_config_file_is_one_line_naming_the_file_and_key(
    captured: dict[str, Any], tmp_path: Path, text: str, needles: tuple[str, ...]
) -> None:
    (tmp_path / "eval.yaml").write_text(text)
    result = _invoke("--config", "eval.yaml")
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert "config" not in captured and not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["--confidence-level", "1.5"], "--confidence-level"),
        (["--max-pairs", "0"], "--max-pairs"),
        (["--config", "missing.yaml"], "missing.yaml"),
    ],
)
def test_a_bad_flag_is_one_line_naming_it(captured: dict[str, Any], args: list[str], flag: str) -> None:
    result = _invoke(*args)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and flag in lines[0], result.output
    assert "config" not in captured


def test_an_unknown_device_is_refused_before_any_sae_is_opened(captured: dict[str, Any]) -> None:
    result = _invoke("--device", "gpu")
    assert result.exit_code == 2 and "--device" in result.output and "cuda:N" in result.output, result.output
    assert "config" not in captured
