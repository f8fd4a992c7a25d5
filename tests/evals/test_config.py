"""PSEvalConfig refuses what the CLI refuses, whichever way the value arrives."""

from __future__ import annotations

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
