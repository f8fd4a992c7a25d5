"""The PS-Eval runner end to end on a tiny random model: metrics, caching, skipping, the JSON envelope."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import pseval.activations.collect as collect_module
import pseval.data.prompts as prompts_module
from pseval.data.datasets import load_dataset
from pseval.data.prompts import build_prompts
from pseval.errors import ConfigError, ModelError, PsevalError, SAEError
from pseval.evals.config import PSEvalConfig
from pseval.evals.runner import evaluate, result_path
from pseval.metrics.ps_eval import ps_eval_metrics
from pseval.models.hooks import run_with_cache
from pseval.models.loading import load_model
from pseval.sae.formats import load_sae
from tests.evals.conftest import make_sae


@pytest.fixture
def setup(
    tmp_path: Path, tmp_cache: Path, tiny_model_dir: Path, tiny_dataset_file: Path
) -> dict[str, object]:
    saes = tmp_path / "saes"
    return {
        "model": str(tiny_model_dir),
        "dataset": str(tiny_dataset_file),
        "topk": make_sae(saes / "topk-L1", "topk", "blocks.1.hook_resid_post", seed=1),
        "relu": make_sae(saes / "relu-L2attn", "standard", "blocks.2.hook_attn_out", seed=2),
        "out": tmp_path / "results",
    }


def _config(setup: dict[str, object], **kw: object) -> PSEvalConfig:
    base = {"model_name": setup["model"], "dataset": setup["dataset"], "bootstrap_resamples": 200}
    return PSEvalConfig(**(base | kw))  # type: ignore[arg-type]


def test_metrics_match_independent_computation(setup: dict[str, object]) -> None:
    config = _config(setup)
    results = evaluate(
        setup["model"], [setup["topk"], setup["relu"]], config=config, output_folder=setup["out"]
    )
    assert [r.sae_name for r in results] == ["topk-L1", "relu-L2attn"]

    # Recompute PS-Eval for the topk SAE by hand: forward each prompt alone, encode, argmax.
    loaded = load_model(str(setup["model"]))
    ds = load_dataset(loaded.tokenizer, name=str(setup["dataset"]), split="test")
    ps = build_prompts(loaded.tokenizer, ds)
    sae = load_sae(setup["topk"])
    tops = []
    for prompt in ps.prompts:
        ids = torch.tensor([prompt.input_ids])
        acts = run_with_cache(loaded.model, ids, torch.ones_like(ids), ["blocks.1.hook_resid_post"])
        feats = sae.encode(acts["blocks.1.hook_resid_post"][0, prompt.target_index])
        tops.append(int(feats.argmax()) if feats.max() > 0 else -1)
    lat1 = [tops[a] for a, _ in ps.pair_index]
    lat2 = [tops[b] for _, b in ps.pair_index]
    expected = ps_eval_metrics([p.label for p in ds.pairs], lat1, lat2)

    got = results[0].eval_result_metrics["ps_eval"]
    assert got == expected.model_dump()
    assert [d.latent_1 for d in results[0].eval_result_details] == lat1
    assert [d.latent_2 for d in results[0].eval_result_details] == lat2


def test_envelope_and_files(setup: dict[str, object]) -> None:
    results = evaluate(setup["model"], [setup["topk"]], config=_config(setup), output_folder=setup["out"])
    path = result_path(setup["out"], "topk-L1")  # type: ignore[arg-type]
    data = json.loads(path.read_text())
    for key in (
        "eval_type_id",
        "eval_config",
        "eval_id",
        "datetime_epoch_millis",
        "eval_result_metrics",
        "eval_result_details",
        "sae_cfg_dict",
        "sae_lens_version",
    ):
        assert key in data
    assert data["eval_type_id"] == "ps_eval"
    metrics = data["eval_result_metrics"]
    assert {"ps_eval", "ps_eval_ci", "threshold_free", "sae", "baseline_dense", "baseline_random_sae"} <= set(
        metrics
    )
    assert 0.0 <= metrics["ps_eval"]["specificity"] <= 1.0
    low, high = metrics["ps_eval_ci"]["accuracy_low"], metrics["ps_eval_ci"]["accuracy_high"]
    assert low <= metrics["ps_eval"]["accuracy"] <= high
    assert len(data["eval_result_details"]) == 10  # 5 same + 5 of the 7 different (balanced)
    row = data["eval_result_details"][0]
    assert {
        "id",
        "word",
        "label",
        "latent_1",
        "activation_1",
        "latent_2",
        "activation_2",
        "predicted_same",
    } <= set(row)
    assert {str(k): v for k, v in results[0].dataset_stats["kept"].items()} == {"0": 5, "1": 5}


def test_one_activation_pass_for_many_saes_and_skip_finished(
    setup: dict[str, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[list[str]] = []
    original = collect_module.collect_activations

    def spy(*args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        calls.append(list(args[2]))  # type: ignore[call-overload]
        return original(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(collect_module, "collect_activations", spy)
    built: list[object] = []
    monkeypatch.setattr(
        prompts_module, "build_prompts", lambda *a, **k: built.append(a) or build_prompts(*a, **k)
    )
    config = _config(setup, baselines=False)
    saes = [setup["topk"], setup["relu"]]
    evaluate(setup["model"], saes, config=config, output_folder=setup["out"])
    assert calls == [["blocks.1.hook_resid_post", "blocks.2.hook_attn_out"]]  # both hooks, one collection
    assert len(built) == 1  # one BOS policy: the prompts are tokenised once for both SAEs

    # Finished results are skipped without loading the model or running anything.
    calls.clear()
    again = evaluate(setup["model"], saes, config=config, output_folder=setup["out"])
    assert calls == [] and len(again) == 2
    # --force-rerun recomputes (from the on-disk activation cache).
    evaluate(setup["model"], saes, config=config, output_folder=setup["out"], force_rerun=True)
    assert len(calls) == 1
    # A different configuration is neither mistaken for a finished one nor allowed to replace it silently.
    calls.clear()
    other = _config(setup, baselines=False, topk_overlap_k=3)
    with pytest.raises(ConfigError, match=r"topk_overlap_k: 16 there, 3 now.*--force-rerun"):
        evaluate(setup["model"], saes, config=other, output_folder=setup["out"])
    assert calls == []
    evaluate(setup["model"], saes, config=other, output_folder=setup["out"], force_rerun=True)
    assert len(calls) == 1


def test_hook_override_and_cached_rerun_has_no_forward(setup: dict[str, object]) -> None:
    config = _config(setup, baselines=False)
    first = evaluate(
        setup["model"], [setup["topk"]], config=config, output_folder=None, hook_name="blocks.0.hook_mlp_out"
    )
    assert first[0].hook_name == "blocks.0.hook_mlp_out"
    second = evaluate(
        setup["model"], [setup["topk"]], config=config, output_folder=None, hook_name="blocks.0.hook_mlp_out"
    )
    assert first[0].n_forward_passes > 0 and second[0].n_forward_passes == 0
    assert first[0].eval_result_metrics["ps_eval"] == second[0].eval_result_metrics["ps_eval"]


def test_width_mismatch_names_both_numbers(setup: dict[str, object], tmp_path: Path) -> None:
    wide = make_sae(tmp_path / "wide", "standard", "blocks.1.hook_resid_post", d_in=48)
    with pytest.raises(SAEError, match=r"d_in=48.*width 32"):
        evaluate(setup["model"], [wide], config=_config(setup), output_folder=None)


def test_unknown_hook_and_missing_sae(setup: dict[str, object], tmp_path: Path) -> None:
    with pytest.raises(ModelError):
        evaluate(
            setup["model"],
            [setup["topk"]],
            config=_config(setup),
            output_folder=None,
            hook_name="blocks.9.hook_resid_post",
        )
    with pytest.raises(SAEError):
        evaluate(setup["model"], [tmp_path / "nope"], config=_config(setup), output_folder=None)
    with pytest.raises(ConfigError):
        evaluate(setup["model"], [], config=_config(setup), output_folder=None)


def test_template_without_word_is_rejected() -> None:
    with pytest.raises(PsevalError, match=r"\{word\}"):
        PSEvalConfig(template="{context} means")


def test_nothing_written_on_failure(setup: dict[str, object], tmp_path: Path) -> None:
    wide = make_sae(tmp_path / "wide", "standard", "blocks.1.hook_resid_post", d_in=48)
    out = tmp_path / "res"
    with pytest.raises(SAEError):
        evaluate(setup["model"], [setup["topk"], wide], config=_config(setup), output_folder=out)
    assert not out.exists() or not any(out.rglob("*.json"))


def test_bootstrap_disabled_gives_null_intervals(setup: dict[str, object]) -> None:
    res = evaluate(
        setup["model"],
        [setup["topk"]],
        config=_config(setup, bootstrap_resamples=0, baselines=False),
        output_folder=None,
    )
    ci = res[0].eval_result_metrics["ps_eval_ci"]
    assert ci["specificity_low"] is None and ci["specificity_high"] is None
    assert np.isfinite(res[0].eval_result_metrics["ps_eval"]["accuracy"])


def test_mlp_sae_gets_neuron_baseline_and_interpretation(setup: dict[str, object], tmp_path: Path) -> None:
    mlp = make_sae(tmp_path / "mlp-L1", "topk", "blocks.1.hook_mlp_out", seed=5)
    (result,) = evaluate(
        setup["model"], [mlp], config=_config(setup, interpret_tokens=512), output_folder=None
    )
    neurons = result.eval_result_metrics["baseline_neurons"]
    assert neurons["n_pairs"] == 10 and 0 <= neurons["specificity"] <= 1
    un = result.eval_result_unstructured
    assert un is not None
    chosen = {str(d.latent_1) for d in result.eval_result_details} | {
        str(d.latent_2) for d in result.eval_result_details
    }
    chosen.discard("-1")
    assert set(un["firing_frequency"]) == chosen
    assert set(un["top_contexts"]) <= chosen and un["top_contexts"]
    nonempty = [contexts for contexts in un["top_contexts"].values() if contexts]
    assert nonempty, "no chosen latent fired on the corpus sample"
    first = nonempty[0][0]
    assert "⟦" in first["text"] and first["activation"] > 0
    assert sum(b["n_pairs"] for b in un["by_frequency"].values()) == 10
    assert set(un["by_pos"]) == {"N"}


def test_an_eval_imports_neither_scikit_learn_nor_scipy_stats() -> None:
    """Together they take about a second to import, a tenth of a one-SAE eval: the modules an eval runs load
    them only where a metric that needs them is computed (the bootstrap, the word-form effects, the CV)."""
    import subprocess
    import sys

    script = (
        "import sys, pseval.cli.eval_command, pseval.evals.runner, pseval.evals.scoring\n"
        "from pseval.metrics.threshold_free import ranking_scores\n"
        "assert ranking_scores([0, 1, 1], [0.2, 0.1, 0.3]).roc_auc == 0.5\n"
        "loaded = sorted(m for m in ('sklearn', 'scipy.stats') if m in sys.modules)\n"
        "assert not loaded, f'imported {loaded}'\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
