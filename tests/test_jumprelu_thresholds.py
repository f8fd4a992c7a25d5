"""scripts/jumprelu_thresholds.py reads a trained JumpReLU folder in the units training sees: after one step the
thresholds are still the configured start and the encoder's columns still ``decoder_init_norm``, and after a
short run no threshold has left the range Adam's steps allow."""

from __future__ import annotations

import importlib.util
import math
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pseval.training.trainer import train_sae
from tests.training.test_trainer_e2e import make_config, tiny_setup  # noqa: F401 (the fixture)

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "jumprelu_thresholds.py"


@pytest.fixture(scope="module")
def script() -> Iterator[Any]:
    spec = importlib.util.spec_from_file_location("jumprelu_thresholds_under_test", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def _train(setup: dict[str, Any], steps: int) -> Path:
    config = make_config(
        setup,
        architecture="jumprelu",
        training_tokens=128 * steps,
        eval_tokens=0,
        lr=3e-4,
        jumprelu_init_threshold=0.1,
        decoder_init_norm=0.1,
        overwrite=True,
    )
    return train_sae(config, progress=False).out


def test_one_step_reads_as_the_configured_start(script: Any, tiny_setup: dict[str, Any]) -> None:  # noqa: F811
    row = script.describe(_train(tiny_setup, steps=1))
    assert row["steps"] == 1 and row["last_batch"]["step"] == 1
    step = row["lr"] * row["threshold_lr_scale"]
    for value in row["threshold_quantiles"].values():
        assert abs(math.log(value / 0.1)) <= 2 * step
    assert row["w_enc_column_norm_median"] == pytest.approx(0.1, abs=0.01)


def test_a_short_run_keeps_every_threshold_within_adams_reach(
    script: Any,
    tiny_setup: dict[str, Any],  # noqa: F811
) -> None:
    row = script.describe(_train(tiny_setup, steps=6))
    assert row["steps"] == 6
    ceiling = row["threshold_ceiling_at_lr_per_step"]
    assert ceiling == pytest.approx(0.1 * math.exp(3e-4 * 10 * 6))
    reach = math.log(ceiling / 0.1)
    for value in row["threshold_quantiles"].values():
        assert abs(math.log(value / 0.1)) <= 2 * reach  # Adam's step is about lr, a few lr at most
