"""Every kind of result file pseval writes validates against SAEBench 0.6's ``BaseEvalOutput``.

The output type is built as SAEBench's own evals build theirs (``CoreEvalOutput``): a ``BaseEvalConfig``
with the fields of :class:`PSEvalConfig`, one flat ``BaseMetrics`` per metric category (scalars only: SAEBench
refuses nested dicts and Neuronpedia shows one number per metric), a ``BaseResultDetail`` with the fields of
:class:`PairDetail`, then ``TypeAdapter(output).validate_json`` as ``sae_bench_utils.testing_utils`` does.

Optional: skipped where ``sae_bench`` is not installed (``pip install --no-deps 'sae-bench==0.6.*'``; its
base module needs only pydantic, while its declared dependencies pull a CUDA torch).
"""

# No ``from __future__ import annotations``: the output types are built at run time from local classes.

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import Field, TypeAdapter
from pydantic.dataclasses import dataclass
from typer.testing import CliRunner

from pseval.cli import app
from pseval.evals.config import PSEvalConfig
from pseval.evals.schema import PairDetail
from pseval.training.controls import CONTROLS
from tests.cli.test_cli_multi_token import _MULTI
from tests.evals.conftest import make_sae
from tests.evals.test_wordform_cli import _ROWS, _span
from tests.training.test_controls import trained_sae  # noqa: F401 (fixture)

base_eval_output = pytest.importorskip("sae_bench.evals.base_eval_output")

HOOK = "blocks.1.hook_resid_post"
Scalar = float | int | str | bool | None
"""A flat metric's value: numbers, or a short label (``sae.architecture``); never a dict or a list."""

runner = CliRunner()


def saebench_output_type(category_fields: dict[str, list[str]]) -> Any:
    """SAEBench's ``BaseEvalOutput`` specialised for PS-Eval, with these metric categories and metric names."""
    config_type = dataclass(
        dataclasses.make_dataclass(
            "PSEvalSAEBenchConfig",
            [
                (name, field.annotation)
                for name, field in PSEvalConfig.model_fields.items()
                if name not in PSEvalConfig.WRITTEN_WHEN_SET
            ]
            # written to a result only when set (results stored before they existed lack them)
            + [
                (name, field.annotation, dataclasses.field(default=field.default))
                for name, field in PSEvalConfig.model_fields.items()
                if name in PSEvalConfig.WRITTEN_WHEN_SET
            ],
            bases=(base_eval_output.BaseEvalConfig,),
        )
    )
    detail_type = dataclass(
        dataclasses.make_dataclass(
            "PSEvalSAEBenchDetail",
            [
                (name, field.annotation)
                for name, field in PairDetail.model_fields.items()
                if field.is_required()
            ]
            + [
                (name, field.annotation, dataclasses.field(default=None))
                for name, field in PairDetail.model_fields.items()
                if not field.is_required()
            ],
            bases=(base_eval_output.BaseResultDetail,),
        )
    )
    category_types = {
        category: dataclass(
            dataclasses.make_dataclass(
                f"PSEvalSAEBench_{category}",
                [(name, Scalar) for name in names],
                bases=(base_eval_output.BaseMetrics,),
            )
        )
        for category, names in category_fields.items()
    }
    categories_type = dataclass(
        dataclasses.make_dataclass(
            "PSEvalSAEBenchCategories",
            list(category_types.items()),
            bases=(base_eval_output.BaseMetricCategories,),
        )
    )

    @dataclass
    class PSEvalSAEBenchOutput(
        base_eval_output.BaseEvalOutput[config_type, categories_type, detail_type]  # type: ignore[valid-type]
    ):
        eval_config: config_type  # type: ignore[valid-type]
        eval_id: str
        datetime_epoch_millis: int
        eval_result_metrics: categories_type  # type: ignore[valid-type]
        eval_result_details: list[detail_type] = Field(default_factory=list)  # type: ignore[valid-type]
        eval_type_id: str = Field(default="ps_eval")

    return PSEvalSAEBenchOutput


def validate_with_saebench(path: Path) -> dict[str, Any]:
    """Validate one result file as SAEBench validates its eval outputs; return the file's JSON."""
    text = path.read_text(encoding="utf-8")
    raw = json.loads(text)
    fields = {category: list(metrics) for category, metrics in raw["eval_result_metrics"].items()}
    TypeAdapter(saebench_output_type(fields)).validate_json(text)
    return raw


def test_the_saebench_type_refuses_what_saebench_refuses(tmp_path: Path) -> None:
    """The checks below can fail: a null commit hash and a nested metric are refused."""
    from pydantic import ValidationError

    good = {
        "eval_type_id": "ps_eval",
        "eval_config": PSEvalConfig().model_dump(mode="json"),
        "eval_id": "x",
        "datetime_epoch_millis": 1,
        "eval_result_metrics": {"ps_eval": {"accuracy": 0.5}},
        "eval_result_details": [],
        "sae_bench_commit_hash": "Unknown",
        "sae_lens_id": None,
        "sae_lens_release_id": None,
        "sae_lens_version": None,
        "sae_cfg_dict": {},
    }
    path = tmp_path / "r.json"
    path.write_text(json.dumps(good), encoding="utf-8")
    validate_with_saebench(path)
    for bad in (
        {"sae_bench_commit_hash": None},
        {"eval_result_metrics": {"ps_eval": {"accuracy": {"value": 0.5}}}},
        {"datetime_epoch_millis": -1},
    ):
        path.write_text(json.dumps(good | bad), encoding="utf-8")
        with pytest.raises(ValidationError):
            validate_with_saebench(path)


def _eval(model_dir: Path, dataset: str, out: Path, sae: Path, *extra: str) -> Path:
    args = ["eval", "--model", str(model_dir), "--dataset", dataset, "--sae", str(sae)]
    args += ["--out", str(out), "--bootstrap", "200", "--interpret-tokens", "0", *extra]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    (path,) = (out / "ps_eval").glob("*_eval_results.json")
    return path


def _pairs_file(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("\n".join(json.dumps(row) for row in rows) + "\n", encoding="utf-8")
    return path


def _multi_token_rows(tiny_dataset_file: Path) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in tiny_dataset_file.read_text(encoding="utf-8").splitlines()]
    for i, (c1, c2, label) in enumerate(_MULTI):
        word = "river.bank"
        spans = {"span_1": _span(c1, word), "span_2": _span(c2, word)}
        rows.append({"id": f"multi-{i}", "word": word, "pos": "N", "context_1": c1, "context_2": c2, **spans})
        rows[-1].update({"label": label, "split": "test"})
    return rows


def _wordform_rows() -> list[dict[str, Any]]:
    rows = []
    for split in ("test", "dev"):
        for i, (cell, word, c1, word_2, c2, label) in enumerate(_ROWS):
            row = {"id": f"wf-{split}-{i:02d}", "word": word, "pos": "N", "context_1": c1, "context_2": c2}
            row.update({"span_1": _span(c1, word), "span_2": _span(c2, word_2 or word), "label": label})
            row.update({"source": "wordnet-2x2", "split": split, "cell": cell})
            if word_2 is not None:
                row["word_2"] = word_2
            rows.append(row)
    return rows


def test_pair_files_and_multi_token_policies_validate(
    tmp_path: Path, tmp_cache: Path, tiny_model_dir: Path, tiny_dataset_file: Path
) -> None:
    sae = make_sae(tmp_path / "sae", "topk", HOOK, seed=3)
    multi = _pairs_file(tmp_path / "multi.jsonl", _multi_token_rows(tiny_dataset_file))
    wordform = _pairs_file(tmp_path / "wordform.jsonl", _wordform_rows())
    runs = {
        "pairs": (str(tiny_dataset_file), ()),
        "pairs-no-baselines": (str(tiny_dataset_file), ("--no-baselines", "--bootstrap", "0")),
        "multi-last": (str(multi), ("--multi-token", "last", "--no-balance")),
        "multi-mean": (str(multi), ("--multi-token", "mean", "--no-balance")),
        "wordform": (str(wordform), ("--no-balance",)),
    }
    for name, (dataset, extra) in runs.items():
        raw = validate_with_saebench(_eval(tiny_model_dir, dataset, tmp_path / name, sae, *extra))
        assert raw["sae_bench_commit_hash"] == "Unknown"
        assert raw["sae_lens_id"] is None and raw["sae_path"] == str(sae.resolve())
    assert "by_token_count" in raw_unstructured(tmp_path / "multi-mean")


def raw_unstructured(out: Path) -> dict[str, Any]:
    (path,) = (out / "ps_eval").glob("*_eval_results.json")
    unstructured: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))["eval_result_unstructured"]
    return unstructured


@pytest.mark.parametrize("dataset", ["wic", "wordnet", "wordnet-2x2"])
def test_shipped_datasets_validate(
    dataset: str, tmp_path: Path, tmp_cache: Path, tiny_model_dir: Path
) -> None:
    sae = make_sae(tmp_path / "sae", "topk", HOOK, seed=3)
    path = _eval(tiny_model_dir, dataset, tmp_path / "out", sae, "--max-pairs", "16")
    raw = validate_with_saebench(path)
    assert raw["eval_config"]["dataset"] == dataset


def test_a_saelens_export_records_its_release_and_id(
    tmp_path: Path, tmp_cache: Path, tiny_model_dir: Path, tiny_dataset_file: Path
) -> None:
    from pseval.sae.formats import load_sae, save_sae

    folder = make_sae(tmp_path / "export", "topk", HOOK, seed=3)
    sae = load_sae(folder)
    sae.cfg.metadata.update({"sae_lens_release": "tiny-release", "sae_lens_id": "layer_1/width_64"})
    save_sae(sae, folder, overwrite=True)
    path = _eval(tiny_model_dir, str(tiny_dataset_file), tmp_path / "out", folder, "--no-baselines")
    raw = validate_with_saebench(path)
    assert raw["sae_lens_release_id"] == "tiny-release" and raw["sae_lens_id"] == "layer_1/width_64"


def test_controls_validate(
    trained_sae: Path,  # noqa: F811 (the fixture)
    tmp_path: Path,
    tmp_cache: Path,
    tiny_model_dir: Path,
    tiny_dataset_file: Path,
) -> None:
    path = _eval(tiny_model_dir, str(tiny_dataset_file), tmp_path / "out", trained_sae, "--controls")
    raw = validate_with_saebench(path)
    assert set(CONTROLS) <= set(raw["eval_result_metrics"])
