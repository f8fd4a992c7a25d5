"""`pseval train --seeds N`: replicates differ only by seed, are named after the first, and are reused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from pseval.cli import app
from pseval.training.config import TrainConfig
from pseval.training.replicates import replicate_configs, train_replicates
from pseval.training.trainer import config_hash
from tests.training.test_trainer_e2e import make_config, tiny_setup

__all__ = ["tiny_setup"]


def _metadata(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "cfg.json").read_text())["metadata"]  # type: ignore[no-any-return]


def test_seeds_is_not_part_of_the_training_identity() -> None:
    one, three = TrainConfig(), TrainConfig(seeds=3)
    assert config_hash(one) == config_hash(three)
    assert [c.seed for c in replicate_configs(three)] == [42, 43, 44]
    assert [c.seeds for c in replicate_configs(three)] == [1, 1, 1]
    assert [str(c.output_dir(4608)) for c in replicate_configs(three, 4608)] == [
        "saes/smollm2-135m/blocks.15.hook_resid_post/topk-4608",
        "saes/smollm2-135m/blocks.15.hook_resid_post/topk-4608-seed43",
        "saes/smollm2-135m/blocks.15.hook_resid_post/topk-4608-seed44",
    ]


def test_replicates_train_with_consecutive_seeds_and_are_reused(
    tiny_setup: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = make_config(tiny_setup, seeds=2, eval_tokens=0)
    results = train_replicates(config, progress=False)
    out = tiny_setup["out"]
    assert [r.out for r in results] == [out, Path(f"{out}-seed43")]
    assert [r.config.seed for r in results] == [42, 43]
    first, second = (_metadata(r.out) for r in results)
    assert (first["seed"], second["seed"]) == (42, 43)
    assert first["train_config_hash_without_seed"] == second["train_config_hash_without_seed"]
    assert first["train_config_hash"] != second["train_config_hash"]
    weights = [load_file(str(r.out / "sae_weights.safetensors")) for r in results]
    assert not torch.equal(weights[0]["W_enc"], weights[1]["W_enc"])
    # The first replicate is exactly the one-seed run: same folder, same identity, reused.
    assert train_replicates(make_config(tiny_setup, eval_tokens=0), progress=False)[0].reused

    def no_model(*_args: Any, **_kwargs: Any) -> Any:
        raise AssertionError("finished replicates need no model")

    monkeypatch.setattr("pseval.models.loading.load_model", no_model)
    assert all(r.reused for r in train_replicates(config, progress=False))


def test_train_command_names_replicates_after_the_default_folder(
    tiny_setup: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    config = make_config(tiny_setup, out=None)
    args = ["train", "--seeds", "2", "--eval-tokens", "0", "--model", "tiny-llama"]
    for name in ("hook_name", "corpus", "context_size", "model_batch_size", "expansion_factor", "k"):
        args += [f"--{name.replace('_', '-')}", str(getattr(config, name))]
    args += ["--batch-size", "128", "--tokens", "3840", "--buffer-tokens", "1024", "--device", "cpu"]
    args += ["--cache-dir", str(tiny_setup["cache"])]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    folder = tmp_path / "saes" / "tiny-llama" / "blocks.1.hook_resid_post"
    assert sorted(p.name for p in folder.iterdir()) == ["topk-128", "topk-128-seed43"]
    assert "seeds 42, 43" in result.output and "(seed 43)" in result.output
