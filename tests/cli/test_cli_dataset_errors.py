"""Bad dataset files fail `pseval dataset` with one line naming the line, the field and the real fix."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from pseval.cli import app

runner = CliRunner()


def _record(i: int, **changes: Any) -> dict[str, Any]:
    context_1, context_2 = "the bank of the river", "the bank was slow"
    record: dict[str, Any] = {
        "id": f"p{i}",
        "word": "bank",
        "pos": "N",
        "context_1": context_1,
        "context_2": context_2,
        "span_1": [4, 8],
        "span_2": [4, 8],
        "label": i % 2,
    }
    return {**record, **changes}


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _dataset(model: Path, path: Path) -> Any:
    return runner.invoke(app, ["dataset", "--model", str(model), "--dataset", str(path)])


def _one_error_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert "Traceback" not in output
    return lines[0]


def test_a_readable_dataset_still_prints_its_table(tiny_model_dir: Path, tiny_dataset_file: Path) -> None:
    result = _dataset(tiny_model_dir, tiny_dataset_file)
    assert result.exit_code == 0, result.output
    assert "test" in result.output and "dev" in result.output


def test_a_line_that_is_not_json_exits_2(tiny_model_dir: Path, tmp_path: Path) -> None:
    path = _write(tmp_path / "pairs.jsonl", [json.dumps(_record(0)), "{not json"])
    result = _dataset(tiny_model_dir, path)
    assert result.exit_code == 2
    assert "pairs.jsonl:2 is not JSON" in _one_error_line(result.output)


def test_a_record_with_bad_fields_names_the_line_and_the_fields(tiny_model_dir: Path, tmp_path: Path) -> None:
    bad = _record(1, label="same")
    del bad["context_2"]
    path = _write(tmp_path / "pairs.jsonl", [json.dumps(_record(0)), json.dumps(bad)])
    result = _dataset(tiny_model_dir, path)
    assert result.exit_code == 2
    line = _one_error_line(result.output)
    assert "pairs.jsonl:2" in line
    assert "context_2: Field required" in line
    assert "label: " in line and "'same'" in line


@pytest.mark.parametrize(
    ("changes", "fix"),
    [
        # The word is not where the spans point (word-level offsets instead of characters).
        ({"span_1": [1, 2], "span_2": [1, 2]}, "make the text at span_1 and span_2 the word"),
        # Spans beyond the context.
        ({"span_1": [40, 44], "span_2": [40, 44]}, "character offsets"),
    ],
)
def test_a_dataset_whose_pairs_are_all_dropped_names_the_real_cause(
    tiny_model_dir: Path, tmp_path: Path, changes: dict[str, Any], fix: str
) -> None:
    path = _write(tmp_path / "pairs.jsonl", [json.dumps(_record(i, **changes)) for i in range(4)])
    result = _dataset(tiny_model_dir, path)
    assert result.exit_code == 2
    line = _one_error_line(result.output)
    assert fix in line
    assert "--multi-token" not in line  # the words are single tokens: that option would change nothing


def test_an_empty_file_says_it_holds_no_pair(tiny_model_dir: Path, tmp_path: Path) -> None:
    path = _write(tmp_path / "pairs.jsonl", [""])
    result = _dataset(tiny_model_dir, path)
    assert result.exit_code == 2
    line = _one_error_line(result.output)
    assert "holds no pair" in line and "--multi-token" not in line
