"""`--dataset` help names every bundled dataset, the word form x meaning one included, within 80 columns."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from pseval.cli import app
from pseval.data.datasets import DATASET_NAMES

runner = CliRunner()


@pytest.mark.parametrize("command", ["eval", "dataset"])
def test_dataset_help_lists_every_bundled_dataset(command: str) -> None:
    result = runner.invoke(app, [command, "--help"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    assert max(len(line) for line in result.output.splitlines()) <= 80
    help_text = " ".join(result.output.split())  # the option's help wraps over several lines
    for name in DATASET_NAMES:
        assert f"'{name}'" in help_text, name
    assert "'wordnet-2x2' (word form x meaning" in help_text
