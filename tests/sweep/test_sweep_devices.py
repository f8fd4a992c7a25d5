"""A whole sweep (every architecture, every hook kind, baselines, interpretation, standard metrics, figures)
runs on each available device: the CPU always, and a CUDA GPU where one is present."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from pseval.sweep.config import validate_sweep_config
from pseval.sweep.runner import run_sweep

DEVICES = [
    "cpu",
    pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")),
]


@pytest.mark.parametrize("device", DEVICES)
def test_full_sweep_runs_on_device(
    device: str, tmp_path: Path, tmp_cache: Path, tiny_model_dir: Path, tiny_dataset_file: Path
) -> None:
    config = validate_sweep_config(
        {
            "name": f"devices-{device}",
            "model": str(tiny_model_dir),
            "grid": {
                "layers": [1],
                "hook_kinds": ["resid_post", "attn_out", "mlp_out"],
                "architectures": ["standard", "topk", "batchtopk", "jumprelu", "gated"],
                "expansion_factors": [2],
                "k": [4],
            },
            "training_tokens": 1024,
            "batch_size": 256,
            "standard_metrics_tokens": 256,
            "standard_metrics_ce_tokens": 64,
            "eval_overrides": {
                "dataset": str(tiny_dataset_file),
                "bootstrap_resamples": 200,
                "baselines": True,
                "interpret_tokens": 256,
            },
            "device": device,
            "out": str(tmp_path / "sweep"),
        }
    )
    summary = run_sweep(config, status=lambda _m: None)
    assert summary["device"] == device
    assert summary["trained"] == 15 and summary["evaluated"] == 15
    assert summary["figures"], "the sweep draws its figures"

    paths = sorted((tmp_path / "sweep" / "results" / "ps_eval").glob("*.json"))
    assert len(paths) == 15
    for path in paths:
        data = json.loads(path.read_text())
        metrics = data["eval_result_metrics"]["ps_eval"]
        assert 0.0 <= metrics["accuracy"] <= 1.0
        standard = data["eval_result_metrics"]["standard"]
        assert math.isfinite(standard["mse"]) and math.isfinite(standard["ce_loss_recovered"])
