"""scripts/rejudge_layers_tables.py: its seed-mean tests reproduce pseval's own statistics on one seed, its seed
noise is pseval reliability's, and its verdicts follow the rule it states."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pseval.evals.random_control import compare_with_control
from pseval.metrics.cluster_bootstrap import cluster_bootstrap
from pseval.metrics.reliability import metric_reliability

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "rejudge_layers_tables.py"


@pytest.fixture(scope="module")
def script() -> Any:
    spec = importlib.util.spec_from_file_location("rejudge_layers_tables_under_test", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def _wic_result(name: str, hook: str, labels: np.ndarray, sae: np.ndarray, control: np.ndarray) -> dict:
    words = [f"w{i % 17}" for i in range(labels.size)]
    return {
        "sae_name": name,
        "hook_name": hook,
        "eval_result_details": [
            {"id": f"p{i}", "word": words[i], "label": int(labels[i]), "predicted_same": bool(sae[i])}
            for i in range(labels.size)
        ],
        "eval_result_unstructured": {
            "random_sae_details": [
                {"id": f"p{i}", "predicted_same": bool(control[i])} for i in range(labels.size)
            ]
        },
        "eval_result_metrics": {"baseline_dense": {"youden_j": 0.2, "specificity": 0.6}},
    }


def test_one_seed_wic_difference_is_the_evaluations_paired_test(script: Any) -> None:
    rng = np.random.default_rng(3)
    labels = rng.random(200) < 0.5
    sae = np.where(rng.random(200) < 0.7, labels, ~labels)
    control = np.where(rng.random(200) < 0.6, labels, ~labels)
    result = _wic_result("a", "blocks.6.hook_resid_post", labels, sae, control)
    quantities, n_pairs = script.wic_quantities({"a": result})
    difference = script.summarise(
        quantities[(6, "resid_post")]["sae"]["youden_j"] - quantities[(6, "resid_post")]["random"]["youden_j"]
    )
    words = [d["word"] for d in result["eval_result_details"]]
    expected = compare_with_control(labels, sae, control, words, 2000, 0.95, 0, "sae_b_dec")
    assert n_pairs == 200
    assert difference["value"] == pytest.approx(expected.youden_j_difference)
    assert difference["low"] == pytest.approx(expected.youden_j_difference_low)
    assert difference["high"] == pytest.approx(expected.youden_j_difference_high)
    assert difference["p"] == pytest.approx(expected.youden_j_p_value)


def _sense_result(name: str, hook: str, scores: dict[str, np.ndarray], lemmas: list[str]) -> dict:
    return {
        "sae_name": name,
        "hook_name": hook,
        "sense_retrieval_details": [
            {
                "id": f"a{i}",
                "lemma": lemmas[i],
                "pos": "N",
                "scores": {key: {"auroc": float(values[i])} for key, values in scores.items()},
            }
            for i in range(len(lemmas))
        ],
    }


def test_one_seed_sense_interval_is_the_lemma_clustered_bootstrap(script: Any) -> None:
    rng = np.random.default_rng(5)
    lemmas = [f"l{i % 23}" for i in range(120)]
    scores = {key: rng.random(120) for key in script.SENSE_REPRESENTATIONS.values()}
    result = _sense_result("a", "blocks.15.hook_attn_out", scores, lemmas)
    quantities, n_lemmas, n_anchors = script.sense_quantities({"a": result})
    q = quantities[(15, "attn_out")]
    got = script.summarise(q["sae"] - q["random"])
    clusters = [f"{lemma}/N" for lemma in lemmas]
    want = cluster_bootstrap(scores["sae_cosine"] - scores["random_sae_cosine"], clusters)[0]
    assert (n_lemmas, n_anchors) == (23, 120)
    assert got["value"] == pytest.approx(want.value)
    assert got["low"] == pytest.approx(want.low)
    assert got["high"] == pytest.approx(want.high)


def test_seed_mdd_is_pseval_reliabilitys_mdd_of_seed_means(script: Any) -> None:
    groups = {"a": [0.1, 0.14, 0.12], "b": [0.3, 0.25, 0.31], "c": [0.2, 0.22, 0.19]}
    quantities = [script.Quantity(0.0, np.zeros(1), np.array(v)) for v in groups.values()]
    assert script.seed_mdd(quantities) == pytest.approx(metric_reliability([groups]).mdd_seed_means)


def _cell(value: float, clear: bool) -> dict[str, Any]:
    return {"value": value, "excludes_zero": clear, "beyond_seed_noise": clear}


@pytest.mark.parametrize(
    ("sae", "versus_random", "verdict"),
    [
        (_cell(0.1, True), _cell(0.05, True), "holds against the random control"),
        (_cell(0.1, True), _cell(0.05, False), "holds only against nothing"),
        (_cell(0.1, False), _cell(0.05, True), "does not hold"),
        (_cell(-0.1, True), _cell(0.0, False), "reversed"),
        (_cell(-0.1, True), _cell(-0.1, True), "reversed (also against the control)"),
    ],
)
def test_verdict(script: Any, sae: dict, versus_random: dict, verdict: str) -> None:
    assert script.verdict({"sae": sae, "sae_minus_random": versus_random}) == verdict


def test_results_of_different_items_are_refused(script: Any) -> None:
    labels = np.array([True, False, True, False])
    a = _wic_result("a", "blocks.6.hook_resid_post", labels, labels, labels)
    b = _wic_result("b", "blocks.6.hook_attn_out", labels, labels, labels)
    b["eval_result_details"][0]["id"] = "other"
    with pytest.raises(SystemExit, match="b: its items differ"):
        script.wic_quantities({"a": a, "b": b})


def test_each_grid_has_its_own_artifacts_and_tables(script: Any) -> None:
    assert (script.per_sae_name(), script.by_config_name(), script.summary_name()) == (
        "rejudge_layers_3seeds.csv",
        "rejudge_layers_by_config.csv",
        "rejudge_layers.json",
    )
    gemma = script.GRIDS["gemma3"]
    assert (script.per_sae_name(gemma), script.by_config_name(gemma), script.summary_name(gemma)) == (
        "rejudge_layers_gemma3_3seeds.csv",
        "rejudge_layers_gemma3_by_config.csv",
        "rejudge_layers_gemma3.json",
    )
    kinds = ("wic", "senses", "depth", "hook_kinds", "reliability")
    assert set(script.TABLES) == {f"{prefix}_{kind}" for prefix in script.GRIDS.values() for kind in kinds}


def test_a_grids_tables_read_its_own_artifacts(script: Any, tmp_path: Path) -> None:
    """The Gemma tables made from the SmolLM2 artifacts renamed to the Gemma prefix are the SmolLM2 tables, and
    the SmolLM2 tables do not read the Gemma files."""
    import shutil

    source = SCRIPT.parents[1] / "docs" / "results"
    if not (source / script.summary_name()).is_file():
        pytest.skip("the SmolLM2 artifacts are not in this checkout")
    gemma = script.GRIDS["gemma3"]
    for name in (script.per_sae_name, script.by_config_name, script.summary_name):
        shutil.copy(source / name(), tmp_path / name(gemma))
    for kind in ("senses", "depth", "hook_kinds", "reliability"):
        assert script.TABLES[f"{gemma}_{kind}"](tmp_path) == script.TABLES[f"rejudge_layers_{kind}"](source)
    for kind in ("wic", "senses", "depth", "hook_kinds", "reliability"):
        with pytest.raises(FileNotFoundError):
            script.TABLES[f"rejudge_layers_{kind}"](tmp_path)
    assert script.wic_table(tmp_path, gemma) == script.TABLES["rejudge_layers_wic"](source)
    # Gemma's WiC table adds the CE loss recovered after the FVU, one column more on every line.
    smollm2, gemma_wic = script.TABLES["rejudge_layers_wic"](source), script.TABLES[f"{gemma}_wic"](tmp_path)
    assert "| FVU | CE recovered |" in gemma_wic and "CE recovered" not in smollm2
    assert [line.count("|") for line in gemma_wic.splitlines()] == [
        line.count("|") + 1 for line in smollm2.splitlines()
    ]


def test_the_sae_description_comes_from_the_training_configs(script: Any) -> None:
    def result(seed: int) -> dict[str, Any]:
        config = {"architecture": "topk", "expansion_factor": 4, "seed": seed}
        return {"sae_cfg_dict": {"metadata": {"train_config": config}}}

    results = {f"s{seed}": result(seed) for seed in (44, 42, 43)}
    assert script.describe_saes(results) == "TopK x4 SAEs per layer x hook kind, seeds 42, 43, 44"


def test_the_committed_gemma_grid_is_nine_configs_by_three_seeds(script: Any) -> None:
    import csv

    path = SCRIPT.parents[1] / "docs" / "results" / script.per_sae_name(script.GRIDS["gemma3"])
    if not path.is_file():
        pytest.skip("the Gemma-3-270m artifacts are not in this checkout")
    with path.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    configs = {(int(r["layer"]), r["hook_kind"]) for r in rows}
    assert configs == {(layer, hook) for layer in (3, 9, 15) for hook in script.HOOK_KINDS}
    assert sorted(int(r["seed"]) for r in rows) == [42] * 9 + [43] * 9 + [44] * 9
    assert {(r["architecture"], r["d_sae"], r["training_tokens"]) for r in rows} == {
        ("topk", "2560", "32768")
    }
