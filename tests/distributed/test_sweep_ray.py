"""Sweeps through Ray: the same files as the local executor, retried after a lost worker, resumable."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("ray")

from pseval.distributed.cluster import RayOptions
from pseval.distributed.sweep import run_sweep_ray
from pseval.distributed.tasks import sweep_group_task
from pseval.sweep.config import SweepConfig, validate_sweep_config
from pseval.sweep.runner import run_sweep

VOLATILE = ("eval_id", "datetime_epoch_millis", "sae_path")
"""Result fields that differ between any two runs (ids, timestamps, the output folder's path)."""


def _sweep(out: Path, model_dir: Path, dataset: Path, layers: list[int]) -> SweepConfig:
    return validate_sweep_config(
        {
            "name": "ray-tiny",
            "model": str(model_dir),
            "grid": {
                "layers": layers,
                "hook_kinds": ["resid_post", "attn_out"],
                "architectures": ["topk"],
                "expansion_factors": [2],
                "k": [4],
            },
            "training_tokens": 1024,
            "batch_size": 256,
            "standard_metrics_tokens": 128,
            "standard_metrics_ce_tokens": 32,
            "eval_overrides": {
                "dataset": str(dataset),
                "bootstrap_resamples": 0,
                "interpret_tokens": 256,
                # Ray's workers are other processes, out of reach of the test's switch of the check.
                "site_check": False,
            },
            "device": "cpu",
            "out": str(out),
        }
    )


def _results(out: Path, folder: str = "results/ps_eval") -> dict[str, dict[str, Any]]:
    files = sorted((out / folder).glob("*_eval_results.json"))
    stripped = {}
    for path in files:
        data = json.loads(path.read_text().replace(str(out), "<out>"))
        for key in VOLATILE:
            data.pop(key)
        stripped[path.name] = data
    return stripped


def _weights(out: Path) -> dict[str, bytes]:
    return {p.parent.name: p.read_bytes() for p in sorted((out / "saes").glob("*/*.safetensors"))}


def test_ray_sweep_writes_the_local_executors_files_and_a_rerun_does_nothing(
    ray_cluster: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    tiny_model_dir: Path,
    tiny_dataset_file: Path,
) -> None:
    monkeypatch.setenv("PSEVAL_CACHE", str(tmp_path / "cache-local"))
    local = run_sweep(
        _sweep(tmp_path / "local", tiny_model_dir, tiny_dataset_file, [0, 2]), status=lambda _m: None
    )
    monkeypatch.setenv("PSEVAL_CACHE", str(tmp_path / "cache-ray"))
    config = _sweep(tmp_path / "ray", tiny_model_dir, tiny_dataset_file, [0, 2])
    options = RayOptions(n_groups=2, progress=False)
    summary = run_sweep_ray(config, options, status=lambda _m: None)

    assert summary["trained"] == local["trained"] == 4 and summary["evaluated"] == 4
    assert len(summary["groups"]) == 2 and {len(g["hooks"]) for g in summary["groups"]} == {2}
    assert all(g["where"]["device"] == "cpu" for g in summary["groups"])
    assert _weights(tmp_path / "ray") == _weights(tmp_path / "local")
    differences = _diff(_results(tmp_path / "ray"), _results(tmp_path / "local"))
    assert not differences, "\n".join(differences[:20])
    assert len(_results(tmp_path / "ray")) == 4
    assert summary["figures"], "figures are drawn on the driver"

    again = run_sweep_ray(config, options, status=lambda _m: None)
    assert again["trained"] == 0 and again["evaluated"] == 0
    assert again["reused"] == 4 and again["skipped"] == 4 and again["groups"] == []


def _diff(a: Any, b: Any, path: str = "") -> list[str]:
    """Where two JSON values differ (for a readable assertion message)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = [f"{path}.{k}: only on one side" for k in set(a) ^ set(b)]
        for k in set(a) & set(b):
            out += _diff(a[k], b[k], f"{path}.{k}")
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in _diff(x, y, f"{path}[{i}]")]
    return [] if a == b else [f"{path}: {str(a)[:80]} != {str(b)[:80]}"]


def _crashing_once_after_training(marker: Path) -> Callable[..., dict[str, Any]]:
    """The sweep task, except that the first task to train an SAE creates ``marker`` and kills its own worker
    (``os._exit``, as a lost machine would); Ray retries the task, which finds the marker and carries on.

    A closure, so Ray ships it to the workers by value: the fault lives in the test, not in pseval.
    """

    def task(*args: Any, **kwargs: Any) -> dict[str, Any]:
        import os

        from pseval.distributed import tasks
        from pseval.training import trainer

        train_sae = trainer.train_sae

        def train_then_crash_once(cfg: Any, **train_kwargs: Any) -> Any:
            result = train_sae(cfg, **train_kwargs)
            if not result.reused:
                try:
                    os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
                except FileExistsError:  # crashed once already
                    return result
                os._exit(17)
            return result

        trainer.train_sae = train_then_crash_once  # sweep_group_task imports it when it runs
        try:
            return tasks.sweep_group_task(*args, **kwargs)
        finally:
            trainer.train_sae = train_sae

    return task


def test_a_lost_worker_is_retried_without_redoing_finished_saes_and_a_rerun_completes_what_is_missing(
    ray_cluster: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    tiny_model_dir: Path,
    tiny_dataset_file: Path,
) -> None:
    import shutil

    monkeypatch.setenv("PSEVAL_CACHE", str(tmp_path / "cache"))
    marker = tmp_path / "crashed-once"
    monkeypatch.setattr("pseval.distributed.sweep.sweep_group_task", _crashing_once_after_training(marker))
    config = _sweep(tmp_path / "ray", tiny_model_dir, tiny_dataset_file, [0, 2])
    options = RayOptions(n_groups=2, progress=False)
    summary = run_sweep_ray(config, options, status=lambda _m: None)

    assert marker.is_file(), "the fault was injected"
    attempts = [g["attempts"] for g in summary["groups"]]
    assert sorted(attempts) == [1, 2], attempts
    # The SAE trained before the worker died is reused by the retry, not trained again.
    assert summary["trained"] == 3 and summary["reused"] == 1
    assert summary["evaluated"] == 4 and len(_results(tmp_path / "ray")) == 4
    assert not list((tmp_path / "ray").rglob(".*.tmp")), "nothing half-written is left"

    # As after an interrupted driver: one SAE and its result are missing; only their hook is redone.
    monkeypatch.setattr("pseval.distributed.sweep.sweep_group_task", sweep_group_task)
    shutil.rmtree(tmp_path / "ray" / "saes" / "L2-attn_out-topk-x2-k4")
    (tmp_path / "ray" / "results" / "ps_eval" / "L2-attn_out-topk-x2-k4_eval_results.json").unlink()
    again = run_sweep_ray(config, options, status=lambda _m: None)
    assert [g["hooks"] for g in again["groups"]] == [["blocks.2.hook_attn_out"]]
    assert again["trained"] == 1 and again["evaluated"] == 1
    assert again["reused"] == 3 and again["skipped"] == 3
