"""PSEvalConfig refuses what the CLI refuses, whichever way the value arrives."""

from __future__ import annotations

from pathlib import Path

import pytest

from pseval.errors import ConfigError
from pseval.evals.config import PSEvalConfig


@pytest.mark.parametrize("resamples", [1, 50, 199])
def test_too_few_bootstrap_resamples_are_refused_by_the_config_itself(resamples: int) -> None:
    with pytest.raises(ConfigError, match=f"--bootstrap {resamples} is too few") as info:
        PSEvalConfig(bootstrap_resamples=resamples)
    assert "--bootstrap 200" in str(info.value) and "--bootstrap 0" in str(info.value)


@pytest.mark.parametrize("resamples", [0, 200, 2000])
def test_no_intervals_and_enough_resamples_are_accepted(resamples: int) -> None:
    assert PSEvalConfig(bootstrap_resamples=resamples).bootstrap_resamples == resamples


def test_standard_metrics_tokens_are_written_to_a_result_only_when_set() -> None:
    # Results stored before these were config fields (and their checksums) stay as they were.
    assert "standard_metrics_tokens" not in PSEvalConfig().model_dump(mode="json")
    set_ = PSEvalConfig(standard_metrics_tokens=128, standard_metrics_ce_tokens=32)
    dumped = set_.model_dump(mode="json")
    assert dumped["standard_metrics_tokens"] == 128 and dumped["standard_metrics_ce_tokens"] == 32
    assert PSEvalConfig(**dumped) == set_ and PSEvalConfig(**PSEvalConfig().model_dump()) == PSEvalConfig()


def test_standard_metrics_tokens_are_no_part_of_the_config_identity() -> None:
    # result_identity records them under keys of their own, as before they were config fields.
    assert PSEvalConfig(standard_metrics_tokens=128).identity() == PSEvalConfig().identity()


def test_a_config_file_with_an_unknown_key_names_the_file_and_the_key(tmp_path: Path) -> None:
    path = tmp_path / "eval.json"
    path.write_text('{"seed": 1, "standard_metric_tokens": 5}')
    with pytest.raises(ConfigError, match=r"eval\.json: standard_metric_tokens: Extra inputs"):
        PSEvalConfig.from_file(path)
