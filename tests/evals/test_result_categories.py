"""Typed result categories, the metric registry and the shipped JSON schema of the result file.

The promise: a new metric is one function and one field. A toy category with one field declared with
``metric_field(..., report=True)`` must reach the JSON schema, the terminal/Markdown/CSV tables and the HTML
report without a line of report code.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import BaseModel, Field

from pseval.evals import categories, result_schema, schema
from pseval.evals.categories import CATEGORIES, CategorySpec, EvalResultMetrics, MetricCategory
from pseval.evals.schema import PSEvalResult
from pseval.metrics import registry
from pseval.metrics.ps_eval import METRIC_NAMES, PSEvalMetrics
from pseval.metrics.registry import (
    MetricSpec,
    metric_field,
    metric_label,
    metric_spec,
    register_metric,
    register_metrics,
)
from pseval.report.html import render_report
from pseval.report.load import summary_row
from pseval.report.tables import csv_table, markdown_tables, result_rows
from tests.report.fabricate import FakeSAE, fake_result

REPO = Path(__file__).resolve().parents[2]
GOLDEN = REPO / "tests" / "acceptance" / "golden"
STORED = REPO / "tests" / "acceptance" / "stored"


class ToyMetrics(MetricCategory):
    """A toy category: one metric nobody wrote report code for."""

    toy_score: float | None = metric_field(
        "Toy score", "Share of toy pairs told apart.", direction="higher", report=True
    )


@pytest.fixture
def toy_category(monkeypatch: pytest.MonkeyPatch) -> None:
    """Register the toy category for one test (the registries are restored afterwards)."""
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    monkeypatch.setitem(CATEGORIES, "toy", CategorySpec("toy", ToyMetrics, row_prefix=""))
    register_metrics(ToyMetrics)


def _toy_result() -> PSEvalResult:
    result = fake_result(FakeSAE("topk", 8, 3, "resid_post"), 40, seed=1)
    result.eval_result_metrics["toy"] = {"toy_score": 0.75}
    return result


def test_a_new_metric_is_one_field(toy_category: None) -> None:
    result = _toy_result()
    assert isinstance(result.eval_result_metrics.category("toy"), ToyMetrics)
    assert metric_label("toy_score") == "Toy score"

    toy = result_schema.result_json_schema()["$defs"]
    assert "toy" in toy["EvalResultMetrics"]["properties"]
    assert toy["ToyMetrics"]["properties"]["toy_score"]["x-direction"] == "higher"

    assert summary_row(result)["toy_score"] == 0.75
    assert result_rows([result])[0]["toy_score"] == 0.75
    markdown = markdown_tables([result], "t")
    assert "| Toy score |" in markdown.splitlines()[2] and "| 0.750 |" in markdown.splitlines()[4]
    assert "toy_score" in csv_table([result]).splitlines()[0]

    page = render_report([result], with_figures=False)
    assert ">Toy score</th>" in page and "Higher is better." in page


def test_without_the_new_metric_nothing_changes() -> None:
    result = fake_result(FakeSAE("topk", 8, 3, "resid_post"), 40, seed=1)
    assert "toy_score" not in summary_row(result) and "Toy score" not in markdown_tables([result], "t")
    assert categories.report_columns() == []  # every built-in column is laid out by the report itself


def test_the_shipped_schemas_are_what_the_code_generates() -> None:
    """Regenerate with ``python -m pseval.evals.result_schema`` after changing a result model."""
    generated = result_schema.result_json_schema()
    assert result_schema.shipped_schema() == generated
    docs = (REPO / result_schema.DOCS_SCHEMA).read_text(encoding="utf-8")
    assert docs == result_schema.schema_text(generated)


def test_every_category_field_is_described() -> None:
    for name, category in CATEGORIES.items():
        for key, info in category.model.model_fields.items():
            assert info.description, f"{name}.{key} has no description"


def test_metric_names_and_labels_come_from_the_registry() -> None:
    assert METRIC_NAMES == (
        "accuracy", "precision", "recall", "specificity", "f1", "youden_j", "balanced_accuracy",
    )  # fmt: skip
    spec = metric_spec("specificity")
    assert spec is not None and spec.name == "Specificity" and spec.higher_is_better is True
    fvu = metric_spec("fvu")
    assert fvu is not None and fvu.direction == "lower" and fvu.higher_is_better is False
    assert metric_spec("n_latents_active_on_prompts").higher_is_better is None  # type: ignore[union-attr]


def test_one_key_cannot_mean_two_metrics(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    clash = MetricSpec("specificity", "Specificity", "...", "lower", "ratio", "pooled over pairs")
    with pytest.raises(ValueError, match="registered as 'Specificity' \\(higher\\)"):
        register_metric(clash)


@pytest.mark.parametrize(
    "path", sorted(GOLDEN.glob("*.json")) + sorted(STORED.glob("*.json")), ids=lambda p: p.name
)
def test_stored_results_round_trip_their_metric_categories(path: Path) -> None:
    """Typed categories keep exactly the keys a file holds: absent stays absent, unknown stays as read."""
    raw = json.loads(path.read_text(encoding="utf-8"))
    result = PSEvalResult.model_validate(raw)
    assert result.model_dump(mode="json")["eval_result_metrics"] == raw["eval_result_metrics"]
    assert isinstance(result.eval_result_metrics.ps_eval, BaseModel)
    assert (
        result.eval_result_metrics.ps_eval.specificity == raw["eval_result_metrics"]["ps_eval"]["specificity"]
    )


def test_absent_keys_and_unknown_categories_are_kept_as_read() -> None:
    metrics = EvalResultMetrics.model_validate(
        {"ps_eval": {"specificity": 0.5}, "from_a_newer_version": {"x": [1, 2]}}
    )
    assert metrics.model_dump(mode="json") == {
        "ps_eval": {"specificity": 0.5},
        "from_a_newer_version": {"x": [1, 2]},
    }
    assert metrics.get("ps_eval") == {"specificity": 0.5} and "codes" not in metrics
    assert metrics.keys() == ["ps_eval", "from_a_newer_version"]
    assert PSEvalMetrics.model_fields["specificity"].title == "Specificity"


def test_a_category_set_by_key_is_validated_by_its_model() -> None:
    from pydantic import ValidationError

    metrics = EvalResultMetrics()
    metrics["codes"] = {"n_distinct_top_latents": 3}
    assert metrics.codes is not None and metrics.codes.n_distinct_top_latents == 3
    with pytest.raises(ValidationError):
        metrics["codes"] = {"n_distinct_top_latents": "many"}


def _models_with_a_new_codes_field() -> tuple[type[BaseModel], type[BaseModel]]:
    """The ``codes`` model with one more metric declared on it, and the result model that holds it.

    Built here, with the names of the models they stand for, so the generated schema's ``$defs`` keys are the
    ones the real models have."""

    class CodeMetrics(categories.CodeMetrics):
        code_entropy: float | None = metric_field(
            "Code entropy",
            "Mean entropy of the normalised codes of the prompts.",
            direction="neither",
            format="nats",
            aggregation="mean over prompts",
            report=True,
        )

    class EvalResultMetrics(categories.EvalResultMetrics):
        codes: CodeMetrics | None = Field(default=None, title="Codes")  # type: ignore[assignment]

    class PSEvalResult(schema.PSEvalResult):
        eval_result_metrics: EvalResultMetrics  # type: ignore[assignment]

    return CodeMetrics, PSEvalResult


@pytest.fixture
def new_codes_field(monkeypatch: pytest.MonkeyPatch) -> None:
    """``codes`` with ``code_entropy`` declared on its model, as the category, the registry and the result
    model that the schema is generated from see it (all restored afterwards)."""
    codes, result = _models_with_a_new_codes_field()
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    monkeypatch.setitem(CATEGORIES, "codes", CategorySpec("codes", codes, row_prefix=""))
    monkeypatch.setattr(result_schema, "PSEvalResult", result)
    register_metrics(codes)


def test_a_new_field_on_a_built_in_category_reaches_the_report(new_codes_field: None) -> None:
    result = fake_result(FakeSAE("topk", 8, 3, "resid_post"), 40, seed=1)
    result.eval_result_metrics["codes"] = {**result.eval_result_metrics["codes"], "code_entropy": 2.5}
    assert metric_label("code_entropy") == "Code entropy"

    defs = result_schema.result_json_schema()["$defs"]
    entropy = defs["CodeMetrics"]["properties"]["code_entropy"]
    assert entropy["x-report"] is True and entropy["x-format"] == "nats"
    assert "code_entropy" not in result_schema.shipped_schema()["$defs"]["CodeMetrics"]["properties"]

    assert summary_row(result)["code_entropy"] == 2.5
    assert result_rows([result])[0]["code_entropy"] == 2.5
    markdown = markdown_tables([result], "t").splitlines()
    assert "| Code entropy |" in markdown[2] and "| 2.500 |" in markdown[4]
    assert "code_entropy" in csv_table([result]).splitlines()[0]

    page = render_report([result], with_figures=False)
    assert ">Code entropy</th>" in page and "Mean entropy of the normalised codes" in page
    assert json.loads(result.model_dump_json())["eval_result_metrics"]["codes"]["code_entropy"] == 2.5
