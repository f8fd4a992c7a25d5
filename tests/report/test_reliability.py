"""`pseval reliability` and the report's section, on fabricated result files with known spreads."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from pseval.cli import app
from pseval.errors import DataError
from pseval.evals.config import PSEvalConfig
from pseval.evals.schema import PSEvalResult
from pseval.report.html import render_report
from pseval.report.load import load_results
from pseval.report.reliability import reliability_report, reliability_section

T_975_DF6 = 2.4469118511449692  # scipy.stats.t.ppf(0.975, 6)
# specificity by config and seed: pooled s^2 = 0.001 on 6 df; orders hold in 26 of 27 seed pairings.
SPECIFICITY = {"topk": [0.50, 0.52, 0.54], "batchtopk": [0.55, 0.56, 0.57], "standard": [0.40, 0.45, 0.50]}
# fvu: every config's seeds spread by +-0.01 around its mean -> s^2 = 0.0001 * 2 * 3 / 6 = 1e-4.
FVU = {"topk": [0.19, 0.20, 0.21], "batchtopk": [0.29, 0.30, 0.31], "standard": [0.39, 0.40, 0.41]}


def fake_result(
    architecture: str,
    seed: int,
    specificity: float,
    fvu: float,
    *,
    dataset: str = "wic",
    trained: bool = True,
    name: str | None = None,
) -> PSEvalResult:
    train_config = {
        "architecture": architecture,
        "hook_name": "blocks.12.hook_resid_post",
        "k": 32,
        "seed": seed,
    }
    metadata: dict[str, Any] = {"seed": seed, "train_config": train_config} if trained else {}
    config = PSEvalConfig(model_name="tiny", dataset=dataset)
    return PSEvalResult(
        eval_config=config,
        eval_id=f"{architecture}-{seed}-{dataset}",
        datetime_epoch_millis=0,
        eval_result_metrics={
            "ps_eval": {
                "specificity": specificity,
                "recall": 0.6,
                "accuracy": (specificity + 0.6) / 2,
                "f1": 0.5,
                "precision": 0.55,
                "tp": 10,
                "n_pairs": 100,
            },
            "standard": {
                "fvu": fvu,
                "l0": 32.0,
                "n_tokens": 4096,
                # a model-only number: differs by hook, and between seeds only by float rounding
                "ce_loss_zero_ablation": len(architecture) + seed * 1e-15,
            },
        },
        eval_result_details=[],
        sae_cfg_dict={"architecture": architecture, "d_in": 8, "d_sae": 64, "metadata": metadata},
        pseval_version="test",
        sae_name=name or f"L12-resid_post-{architecture}-x8-k32" + ("" if seed == 42 else f"-seed{seed}"),
        hook_name="blocks.12.hook_resid_post",
        model_name="tiny",
        result_identity={  # what identifies the SAE itself differs from seed to seed
            "sae_content_hash": f"{architecture}{seed}",
            "sae_decoder_hash": None,
            "sae_decoder_rows_hash": f"rows-{architecture}{seed}",
            "model_name": "tiny",
            "hook_name": "blocks.12.hook_resid_post",
            **config.identity(),
        },
    )


def write(folder: Path, results: list[PSEvalResult]) -> Path:
    out = folder / "ps_eval"
    out.mkdir(parents=True, exist_ok=True)
    for result in results:
        (out / f"{result.sae_name}-{result.eval_config.dataset}_eval_results.json").write_text(
            result.model_dump_json()
        )
    return folder


def replicated_results() -> list[PSEvalResult]:
    return [
        fake_result(arch, 42 + i, spec, fvu)
        for arch in SPECIFICITY
        for i, (spec, fvu) in enumerate(zip(SPECIFICITY[arch], FVU[arch], strict=True))
    ]


def test_spread_mdd_and_order_of_every_varying_metric() -> None:
    extra = [
        fake_result("jumprelu", 42, 0.9, 0.9),  # one seed: not pooled
        fake_result("gated", 42, 0.1, 0.1, trained=False, name="elsewhere"),  # no training config
        fake_result("topk", 42, 0.99, 0.99, name="copy-of-topk"),  # the same config and seed again
    ]
    report = reliability_report([*replicated_results(), *extra])
    rows = {row["metric"]: row for row in report.rows}
    # Headline ratios first; counts and constant metrics (recall, l0, n_tokens) never vary: only the
    # headline ones are kept anyway.
    assert [row["metric"] for row in report.rows] == [
        "specificity",
        "recall",
        "accuracy",
        "f1",
        "precision",
        "fvu",
    ]
    spec = rows["specificity"]
    assert spec["df"] == 6 and spec["n_configs"] == 3 and spec["n_runs"] == 9
    assert spec["reseed_sd"] == pytest.approx(math.sqrt(0.001), rel=1e-9)
    assert spec["mdd"] == pytest.approx(T_975_DF6 * math.sqrt(2 * 0.001), rel=1e-9)
    assert spec["mdd_seed_means"] == pytest.approx(T_975_DF6 * math.sqrt(2 * 0.001 / 3), rel=1e-9)
    assert spec["order_holds"] == pytest.approx(26 / 27, rel=1e-12) and spec["n_pairings"] == 27
    # accuracy = (specificity + 0.6) / 2: half the spread.
    assert rows["accuracy"]["reseed_sd"] == pytest.approx(math.sqrt(0.001) / 2, rel=1e-9)
    assert rows["fvu"]["reseed_sd"] == pytest.approx(0.01, rel=1e-9)
    assert rows["fvu"]["order_holds"] == 1.0
    assert rows["recall"]["reseed_sd"] == 0.0 and rows["recall"]["n_tied_config_pairs"] == 3
    assert rows["recall"]["order_holds"] is None
    assert (report.n_untraced, report.n_duplicates, len(report.replicated)) == (1, 1, 3)


def test_results_of_other_evaluations_are_not_paired() -> None:
    # The same SAEs on a second dataset: their spread pools in, but no pair crosses the datasets.
    shifted = [
        fake_result(arch, 42 + i, spec + 0.3, fvu, dataset="wordnet")
        for arch in ("topk", "batchtopk")
        for i, (spec, fvu) in enumerate(zip(SPECIFICITY[arch], FVU[arch], strict=True))
    ]
    rows = {row["metric"]: row for row in reliability_report([*replicated_results(), *shifted]).rows}
    spec = rows["specificity"]
    assert spec["df"] == 10 and spec["n_configs"] == 5
    assert spec["reseed_sd"] == pytest.approx(math.sqrt((0.006 + 0.0008 + 0.0002) / 10), rel=1e-9)
    assert spec["n_config_pairs"] == 3 + 1 and spec["n_pairings"] == 27 + 9


def test_no_replicates_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="--seeds 3"):
        reliability_report([fake_result("topk", 42, 0.5, 0.2), fake_result("batchtopk", 42, 0.5, 0.2)])
    write(tmp_path, [fake_result("topk", 42, 0.5, 0.2)])
    result = CliRunner().invoke(app, ["reliability", str(tmp_path)])
    assert result.exit_code == 2 and "--seeds" in result.output and "Traceback" not in result.output
    assert reliability_section(load_results(tmp_path)) == ""


def test_cli_table_json_and_csv(tmp_path: Path) -> None:
    folder = write(tmp_path, replicated_results())
    table = CliRunner().invoke(app, ["reliability", str(folder)], env={"COLUMNS": "80"})
    assert table.exit_code == 0, table.output
    assert max(len(line) for line in table.output.splitlines()) <= 80
    assert "specificity" in table.output and "0.03162" in table.output and "0.1094" in table.output
    assert "96.3% of 27" in table.output and "seeds 42, 43, 44" in table.output

    as_json = CliRunner().invoke(app, ["reliability", str(folder), "--format", "json", "--metric", "fvu"])
    payload = json.loads(as_json.output)
    assert [row["metric"] for row in payload["metrics"]] == ["fvu"]
    assert payload["metrics"][0]["mdd"] == pytest.approx(T_975_DF6 * math.sqrt(2) * 0.01, rel=1e-9)
    assert sorted(c["name"] for c in payload["configs"]) == [
        "L12-resid_post-batchtopk-x8-k32",
        "L12-resid_post-standard-x8-k32",
        "L12-resid_post-topk-x8-k32",
    ]
    assert all(c["seeds"] == [42, 43, 44] for c in payload["configs"])

    as_csv = CliRunner().invoke(app, ["reliability", str(folder), "--format", "csv", "--level", "0.99"])
    rows = list(csv.DictReader(io.StringIO(as_csv.output)))
    assert rows[0]["metric"] == "specificity" and float(rows[0]["level"]) == 0.99
    assert float(rows[0]["mdd"]) == pytest.approx(3.707428 * math.sqrt(2 * 0.001), rel=1e-6)

    for bad in (["--metric", "nope"], ["--level", "1.5"]):
        result = CliRunner().invoke(app, ["reliability", str(folder), *bad])
        assert result.exit_code == 2 and "Traceback" not in result.output, result.output


def test_html_report_has_the_section_only_with_replicates() -> None:
    page = render_report(replicated_results(), with_figures=False)
    assert 'id="reliability"' in page and "96.3% of 27" in page
    single = [fake_result("topk", 42, 0.5, 0.2), fake_result("batchtopk", 42, 0.6, 0.3)]
    assert 'id="reliability"' not in render_report(single, with_figures=False)
