"""Sweeps with several seeds: replicate names, bit-identical training inside a sweep, `pseval reliability`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from safetensors.torch import load_file
from typer.testing import CliRunner

from pseval.cli import app
from pseval.errors import ConfigError
from pseval.models.loading import load_model
from pseval.sweep.config import preset, validate_sweep_config
from pseval.sweep.runner import run_sweep, sae_folder, train_configs_of
from pseval.training.trainer import train_sae

WEIGHTS = "sae_weights.safetensors"


def _sweep(tmp_path: Path, model_dir: Path, dataset: Path, **over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "replicates",
        "model": str(model_dir),
        "grid": {
            "layers": [1],
            "hook_kinds": ["resid_post"],
            "architectures": ["topk", "batchtopk"],
            "expansion_factors": [2],
            "k": [4],
        },
        "training_tokens": 1024,
        "batch_size": 256,
        "standard_metrics_tokens": 0,
        "eval_overrides": {"dataset": str(dataset), "bootstrap_resamples": 0, "interpret_tokens": 0},
        "device": "cpu",
        "out": str(tmp_path / "sweep"),
    }
    base.update(over)
    return base


def test_one_seed_names_every_run_as_before_and_more_seeds_only_add_runs() -> None:
    one = preset("paper-activation", "tiny")
    three = one.model_copy(update={"seeds": 3})
    assert [r.name for r in one.runs()][:2] == [
        "L15-resid_post-standard-x8-l1_5",
        "L15-resid_post-topk-x8-k32",
    ]
    assert all(r.seed is None for r in one.runs())
    assert [r.name for r in three.runs()][:4] == [
        "L15-resid_post-standard-x8-l1_5",
        "L15-resid_post-standard-x8-l1_5-seed43",
        "L15-resid_post-standard-x8-l1_5-seed44",
        "L15-resid_post-topk-x8-k32",
    ]
    first, replicates = train_configs_of(one, "cpu"), train_configs_of(three, "cpu")
    assert len(replicates) == 3 * len(first)
    for name, config in first.items():  # the first replicate is the one-seed run, same training identity
        assert replicates[name].fingerprint_dict() == config.fingerprint_dict()
        assert [replicates[f"{name}{s}"].seed for s in ("", "-seed43", "-seed44")] == [42, 43, 44]
    shifted = three.model_copy(update={"train_overrides": {"seed": 7}})
    assert [c.seed for c in train_configs_of(shifted, "cpu").values()][:3] == [7, 8, 9]


def test_seeds_inside_train_overrides_are_refused(tmp_path: Path) -> None:
    data = _sweep(tmp_path, tmp_path, tmp_path / "d.jsonl", train_overrides={"seeds": 3})
    with pytest.raises(ConfigError, match="top level"):
        validate_sweep_config(data)
    result = CliRunner().invoke(app, ["sweep", "--preset", "paper-layers", "--seeds", "0"])
    assert result.exit_code == 2 and "--seeds" in result.output and "Traceback" not in result.output


def test_an_sae_trained_inside_a_sweep_is_bit_identical_to_the_same_config_trained_alone(
    tmp_path: Path, tmp_cache: Path, tiny_model_dir: Path, tiny_dataset_file: Path
) -> None:
    # The sweep harvests four hooks in one pass (two layers deep, two kinds) and trains a BatchTopK SAE
    # before the TopK one; alone, the TopK SAE's hook is harvested on its own into another cache.
    data = _sweep(tmp_path, tiny_model_dir, tiny_dataset_file)
    data["grid"] = {**data["grid"], "layers": [1, 2], "hook_kinds": ["attn_out", "resid_post"]}
    data["grid"]["architectures"] = ["batchtopk", "topk"]
    config = validate_sweep_config(data)
    run_sweep(config, plots=False, status=lambda _m: None)
    name = "L1-resid_post-topk-x2-k4"
    alone = train_configs_of(config, "cpu")[name].model_copy(
        update={"out": tmp_path / "alone", "cache_dir": tmp_path / "alone-cache"}
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # and another thread count: on the CPU it must not matter either at this size
    try:
        result = train_sae(alone, progress=False, loaded=load_model(str(tiny_model_dir), device="cpu"))
    finally:
        torch.set_num_threads(threads)
    assert not result.reused
    in_sweep = load_file(str(sae_folder(config, next(r for r in config.runs() if r.name == name)) / WEIGHTS))
    by_itself = load_file(str(tmp_path / "alone" / WEIGHTS))
    assert in_sweep.keys() == by_itself.keys()
    for key, tensor in in_sweep.items():
        assert torch.equal(tensor, by_itself[key]), key


def test_sweep_with_three_seeds_then_reliability(
    tmp_path: Path, tmp_cache: Path, tiny_model_dir: Path, tiny_dataset_file: Path
) -> None:
    path = tmp_path / "replicates.yaml"
    path.write_text(yaml.safe_dump(_sweep(tmp_path, tiny_model_dir, tiny_dataset_file)))
    swept = CliRunner().invoke(app, ["sweep", str(path), "--seeds", "3", "--no-plots"])
    assert swept.exit_code == 0, swept.output
    results = tmp_path / "sweep" / "results"
    files = sorted(p.name for p in (results / "ps_eval").glob("*_eval_results.json"))
    assert files == sorted(
        f"L1-resid_post-{arch}-x2-k4{suffix}_eval_results.json"
        for arch in ("topk", "batchtopk")
        for suffix in ("", "-seed43", "-seed44")
    )
    metadata = {
        name: json.loads((results / "ps_eval" / name).read_text())["sae_cfg_dict"]["metadata"]
        for name in files
    }
    assert sorted(m["seed"] for m in metadata.values()) == [42, 42, 43, 43, 44, 44]
    assert len({m["train_config_hash_without_seed"] for m in metadata.values()}) == 2
    assert len({m["train_config_hash"] for m in metadata.values()}) == 6

    found = CliRunner().invoke(app, ["reliability", str(results), "--format", "json"])
    assert found.exit_code == 0, found.output
    payload = json.loads(found.output)
    assert sorted(c["name"] for c in payload["configs"]) == [
        "L1-resid_post-batchtopk-x2-k4",
        "L1-resid_post-topk-x2-k4",
    ]
    rows = {row["metric"]: row for row in payload["metrics"]}
    assert list(rows)[:5] == ["specificity", "recall", "accuracy", "f1", "precision"]
    for row in rows.values():
        assert row["df"] == 4 and row["n_runs"] == 6 and row["seeds_per_config"] == 3
        assert row["reseed_sd"] is not None and row["reseed_sd"] >= 0 and row["mdd"] is not None
    table = CliRunner().invoke(app, ["reliability", str(results)], env={"COLUMNS": "80"})
    assert table.exit_code == 0 and "2 configs × seeds 42, 43, 44 (6 SAEs)" in table.output

    # A rerun with the same seeds trains and evaluates nothing.
    again = CliRunner().invoke(app, ["sweep", str(path), "--seeds", "3", "--no-plots"])
    assert again.exit_code == 0 and "trained 0, reused 6, evaluated 0" in again.output, again.output
