"""The JSON schema of a result file, generated from :class:`~pseval.evals.schema.PSEvalResult`.

A copy is shipped in the package (``pseval/resources/schema/ps_eval_result.schema.json``, read with
:func:`shipped_schema`) and in the docs (``docs/result-schema.json``); a test checks that both equal what the
code generates. Regenerate both after changing a result model or a metric::

    python -m pseval.evals.result_schema

Every metric field carries its registry metadata as ``x-direction``, ``x-format``, ``x-aggregation``,
``x-interval`` and ``x-report`` (see :mod:`pseval.metrics.registry`). Categories registered at run time with
:func:`~pseval.evals.categories.register_category` are added under ``eval_result_metrics``.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

from pseval._io import write_text_atomic
from pseval.evals.categories import CATEGORIES, EvalResultMetrics
from pseval.evals.schema import PSEvalResult

SCHEMA_RESOURCE = "resources/schema/ps_eval_result.schema.json"
"""Where the shipped schema lies inside the package."""

DOCS_SCHEMA = Path("docs") / "result-schema.json"
"""Where the docs' copy lies, relative to the repository root."""


def result_json_schema() -> dict[str, Any]:
    """The JSON schema of a result file, registered extra categories included."""
    schema = PSEvalResult.model_json_schema()
    defs = schema.setdefault("$defs", {})
    metrics = defs[EvalResultMetrics.__name__]["properties"]
    for name, category in CATEGORIES.items():
        if name in metrics:
            continue
        category_schema = category.model.model_json_schema(ref_template="#/$defs/{model}")
        defs.update(category_schema.pop("$defs", {}))
        defs[category.model.__name__] = category_schema
        metrics[name] = {
            "anyOf": [{"$ref": f"#/$defs/{category.model.__name__}"}, {"type": "null"}],
            "default": None,
        }
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "PS-Eval result file"
    return schema


def schema_text(schema: dict[str, Any] | None = None) -> str:
    """The schema as the shipped files hold it (sorted keys, two-space indent, final newline)."""
    return json.dumps(schema or result_json_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def shipped_schema() -> dict[str, Any]:
    """The schema shipped in the package."""
    text = resources.files("pseval").joinpath(SCHEMA_RESOURCE).read_text(encoding="utf-8")
    return dict(json.loads(text))


def write_schema_files(repo_root: Path) -> list[Path]:
    """Write the package's and the docs' copies of the schema under ``repo_root``; returns their paths."""
    text = schema_text()
    paths = [repo_root / "pseval" / SCHEMA_RESOURCE, repo_root / DOCS_SCHEMA]
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, text)
    return paths


if __name__ == "__main__":
    for written in write_schema_files(Path(__file__).resolve().parents[2]):
        print(written)
