"""Sweep configs are validated up front; sweeps resume where they stopped and redo nothing when finished."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from pseval.cli import app
from pseval.errors import ConfigError, PsevalError
from pseval.sweep.config import BUDGETS, load_sweep_config, preset, validate_sweep_config
from pseval.sweep.runner import run_sweep
from pseval.training.trainer import train_sae


def _config(tmp_path: Path, model_dir: Path, dataset: Path, **over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "tiny",
        "model": str(model_dir),
        "grid": {
            "layers": [0, 2],
            "hook_kinds": ["resid_post", "attn_out"],
            "architectures": ["topk"],
            "expansion_factors": [2],
            "k": [4],
        },
        "training_tokens": 1024,
        "batch_size": 256,
        "standard_metrics_tokens": 0,
        "eval_overrides": {"dataset": str(dataset), "bootstrap_resamples": 0},
        "device": "cpu",
        "out": str(tmp_path / "sweep"),
    }
    base.update(over)
    return base


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"unknown_key": 1}, "unknown_key"),
        ({"training_tokens": 0}, "training_tokens"),
        ({"grid": {"layers": []}}, "layers"),
        ({"grid": {"layers": [1], "architectures": ["sparse"]}}, "architectures"),
        ({"eval_overrides": {"splits": "test"}}, "splits"),
        (
            {"eval_overrides": {"bootstrap_resamples": 50}},
            r"eval_overrides\.bootstrap_resamples: 50 is too few",
        ),
        ({"eval_overrides": {"bootstrap_resamples": 199}}, r"eval_overrides\.bootstrap_resamples: 199"),
        ({"train_overrides": {"lr": -1}}, "lr"),
    ],
)
def test_bad_configs_rejected_with_one_line(tmp_path: Path, change: dict[str, Any], message: str) -> None:
    data = _config(tmp_path, tmp_path, tmp_path / "d.jsonl")
    data.update(change)
    with pytest.raises(ConfigError, match=message) as info:
        validate_sweep_config(data)
    assert "\n" not in str(info.value)


def test_width_and_hook_checked_before_training(
    tmp_path: Path, tmp_cache: Path, tiny_model_dir: Path, tiny_dataset_file: Path
) -> None:
    too_big_k = _config(tmp_path, tiny_model_dir, tiny_dataset_file)
    too_big_k["grid"] = {"layers": [1], "k": [1000], "expansion_factors": [1]}
    with pytest.raises(ConfigError, match="k"):
        run_sweep(validate_sweep_config(too_big_k), plots=False, status=lambda _m: None)
    bad_layer = _config(tmp_path, tiny_model_dir, tiny_dataset_file)
    bad_layer["grid"] = {"layers": [7]}
    with pytest.raises(PsevalError, match="layer"):
        run_sweep(validate_sweep_config(bad_layer), plots=False, status=lambda _m: None)
    assert not (tmp_path / "sweep" / "saes").exists()


def test_a_budget_larger_than_the_corpus_fails_before_any_forward_pass(
    tmp_path: Path, tmp_cache: Path, tiny_model_dir: Path, tiny_dataset_file: Path
) -> None:
    corpus = tmp_path / "short.txt"
    corpus.write_text("the cat sat on a chair\n" * 20)
    config = _config(tmp_path, tiny_model_dir, tiny_dataset_file, corpus=str(corpus), training_tokens=100_000)
    path = tmp_path / "short.yaml"
    path.write_text(yaml.safe_dump(config))
    result = CliRunner().invoke(app, ["sweep", str(path), "--no-plots"])
    assert result.exit_code == 2, result.output
    assert "fewer than the 100,000 asked for" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "sweep" / "saes").exists() or not any((tmp_path / "sweep" / "saes").iterdir())


def test_yaml_file_and_cli_errors(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"grid": {"layers": [1]}, "bogus": True}))
    with pytest.raises(ConfigError, match="bogus"):
        load_sweep_config(path)
    result = CliRunner().invoke(app, ["sweep", str(path)])
    assert result.exit_code == 2 and "bogus" in result.output
    result = CliRunner().invoke(app, ["sweep", "--preset", "paper-nothing"])
    assert result.exit_code == 2 and "paper-layers" in result.output


def test_sweep_yaml_refuses_the_bootstrap_counts_the_cli_refuses(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    config = _config(tmp_path, tmp_path, tmp_path / "d.jsonl")
    config["eval_overrides"]["bootstrap_resamples"] = 50
    path.write_text(yaml.safe_dump(config))
    result = CliRunner().invoke(app, ["sweep", str(path), "--no-plots"])
    assert result.exit_code == 2, result.output
    assert "eval_overrides.bootstrap_resamples" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "sweep").exists()
    for accepted in (0, 200):
        config["eval_overrides"]["bootstrap_resamples"] = accepted
        assert validate_sweep_config(config).eval_overrides["bootstrap_resamples"] == accepted


def test_presets_are_valid_and_scaled() -> None:
    for name in ("paper-layers", "paper-expansion", "paper-activation", "paper-all"):
        for budget in ("tiny", "small", "full"):
            config = preset(name, budget)  # type: ignore[arg-type]
            assert config.training_tokens == BUDGETS[budget]["training_tokens"]
            assert config.runs()
    layers = preset("paper-layers", "tiny")
    assert {r.hook_name.split(".")[1] for r in layers.runs()} >= {"0", "3", "27", "29"}
    assert {r.hook_name.rsplit("_", 2)[-2] + "_" + r.hook_name.rsplit("_", 1)[-1] for r in layers.runs()} >= {
        "attn_out",
        "mlp_out",
    }
    every = preset("paper-all", "small").runs()
    assert len({r.name for r in every}) == len(every)


def test_interrupted_sweep_resumes_without_redoing_finished_saes(
    tmp_path: Path, tmp_cache: Path, tiny_model_dir: Path, tiny_dataset_file: Path
) -> None:
    config = validate_sweep_config(_config(tmp_path, tiny_model_dir, tiny_dataset_file))
    assert len(config.runs()) == 4
    trained: list[str] = []

    def failing_train(cfg: Any, **kwargs: Any) -> Any:
        if len(trained) == 2:
            raise RuntimeError("simulated crash")
        result = train_sae(cfg, **kwargs)
        trained.append(cfg.hook_name)
        return result

    with pytest.raises(RuntimeError, match="simulated crash"):
        run_sweep(config, plots=False, status=lambda _m: None, train_fn=failing_train)
    assert len(trained) == 2

    calls: list[bool] = []

    def counting_train(cfg: Any, **kwargs: Any) -> Any:
        result = train_sae(cfg, **kwargs)
        calls.append(bool(result.reused))
        return result

    summary = run_sweep(config, plots=False, status=lambda _m: None, train_fn=counting_train)
    assert summary["trained"] == 2 and summary["reused"] == 2
    assert calls.count(False) == 2
    assert summary["evaluated"] == 4
    results = sorted((Path(config.output_dir()) / "results" / "ps_eval").glob("*.json"))
    assert len(results) == 4

    # A finished sweep trains and evaluates nothing.
    again = run_sweep(config, plots=False, status=lambda _m: None)
    assert again["trained"] == 0 and again["reused"] == 4
    assert again["evaluated"] == 0 and again["skipped"] == 4


def test_hooks_whose_caches_do_not_fit_together_are_harvested_in_groups(
    tmp_path: Path,
    tmp_cache: Path,
    tiny_model_dir: Path,
    tiny_dataset_file: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import shutil

    config = _config(tmp_path, tiny_model_dir, tiny_dataset_file)
    config["grid"] = {"layers": [0, 1, 2], "hook_kinds": ["resid_post"], "k": [4], "expansion_factors": [2]}
    config["eval_overrides"]["interpret_tokens"] = 0
    sweep = validate_sweep_config(config)
    per_hook = 1024 * 32 * 2  # tokens × d_model × float16
    real = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(
        "pseval.activations.store.shutil.disk_usage", lambda _p: real._replace(free=2 * per_hook + 100)
    )
    messages: list[str] = []
    plans: list[list[list[str]]] = []
    deleted: list[list[str]] = []
    from pseval.activations.store import ActivationStore

    plan, delete = ActivationStore.plan_harvest, ActivationStore.delete_cache

    def recording_plan(self: ActivationStore, hook_names: Any, n_tokens: int) -> Any:
        plans.append(plan(self, hook_names, n_tokens))
        return plans[-1]

    def recording_delete(self: ActivationStore, hook_names: Any, n_tokens: int) -> None:
        deleted.append(list(hook_names))
        delete(self, hook_names, n_tokens)

    monkeypatch.setattr(ActivationStore, "plan_harvest", recording_plan)
    monkeypatch.setattr(ActivationStore, "delete_cache", recording_delete)
    summary = run_sweep(sweep, plots=False, status=messages.append)
    first_group = ["blocks.0.hook_resid_post", "blocks.1.hook_resid_post"]
    assert plans == [[first_group, ["blocks.2.hook_resid_post"]]]
    assert deleted == [first_group]
    assert any("in 2 groups" in m for m in messages), messages
    assert summary["trained"] == 3 and summary["evaluated"] == 3
    # The first group's cache made room for the second; the last one stays for reruns.
    caches = sorted(p.name for p in (tmp_cache / "train_acts").iterdir() if not p.name.startswith("."))
    assert len(caches) == 1

    again = run_sweep(sweep, plots=False, status=lambda _m: None)
    assert again["trained"] == 0 and again["reused"] == 3


@pytest.mark.parametrize(
    ("key", "top"), [("standard_metrics_tokens", "standard_metrics_tokens"), ("model_name", "model")]
)
def test_eval_overrides_of_a_top_level_key_are_refused_naming_it(tmp_path: Path, key: str, top: str) -> None:
    data = _config(tmp_path, tmp_path, tmp_path / "d.jsonl")
    data["eval_overrides"] = {key: 0 if key.startswith("standard") else "gpt2"}
    with pytest.raises(ConfigError, match=f"eval_overrides sets {key}.*`{top}: "):
        validate_sweep_config(data)
