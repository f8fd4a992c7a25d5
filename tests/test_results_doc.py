"""docs/results.md quotes the committed artifacts under docs/results/: its tables are made from them, and no
three-decimal number in it lacks a source there."""

from __future__ import annotations

import csv
import importlib.util
import json
import re
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "results.md"
ARTIFACTS = REPO / "docs" / "results"
SCRIPT = REPO / "scripts" / "results_tables.py"
GENERATED = {
    "layers",
    "gemma3_270m",
    "expansion",
    "architectures",
    "expansion_gpu",
    "activation_gpu",
    "baselines",
    "control_summary",
    "control_j",
    "rejudge_configs",
    "rejudge_architectures",
    "rejudge_hooks",
    "rejudge_reliability",
    "rejudge_wic",
    "rejudge_senses",
    "rejudge_layers_wic",
    "rejudge_layers_senses",
    "rejudge_layers_depth",
    "rejudge_layers_hook_kinds",
    "rejudge_layers_reliability",
    "wordform_smollm2_cells",
    "wordform_smollm2_effects",
    "wordform_smollm2_vs_random",
    "wordform_smollm2_auc",
    "wordform_smollm2_matryoshka",
    "wordform_gemma3_share",
    "wordform_gemma3_scales",
    "rejudge_layers_gemma3_wic",
    "rejudge_layers_gemma3_senses",
    "rejudge_layers_gemma3_depth",
    "rejudge_layers_gemma3_hook_kinds",
    "rejudge_layers_gemma3_reliability",
}
# Numbers of docs/results.md that no committed artifact holds yet: the Gemma-3-270m WiC table (its result files
# were not committed). The list may only shrink.
WITHOUT_ARTIFACT: set[str] = set()
THREE_DECIMALS = re.compile(r"(?<![\d.])[+\-−]?(\d+\.\d{3})(?!\d)")


def _tables_module() -> Any:
    spec = importlib.util.spec_from_file_location("results_tables", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def document() -> str:
    if not DOC.is_file() or not SCRIPT.is_file():
        pytest.skip("docs/results.md or scripts/results_tables.py is not in this checkout")
    return DOC.read_text(encoding="utf-8")


def test_every_generated_table_equals_the_one_made_from_the_artifacts(document: str) -> None:
    tables = _tables_module()
    marked = set(re.findall(r"<!-- table:([a-z0-9_]+) -->", document))
    assert marked == GENERATED
    _, changed = tables.regenerate(document, ARTIFACTS)
    assert changed == [], f"run: python scripts/results_tables.py --write docs/results.md ({changed})"


def test_a_changed_number_in_a_table_is_caught(document: str) -> None:
    tables = _tables_module()
    tampered = document.replace("| 0 | 0.098 [0.07, 0.12]", "| 0 | 0.099 [0.07, 0.12]", 1)
    assert tampered != document
    assert tables.regenerate(tampered, ARTIFACTS)[1] == ["layers"]


def _artifact_numbers() -> set[str]:
    found: set[str] = set()

    def add(value: Any) -> None:
        try:
            number = float(value)
        except (TypeError, ValueError):
            return
        found.add(f"{abs(number):.3f}")

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)
        else:
            add(node)

    for path in ARTIFACTS.glob("*.csv"):
        with path.open(encoding="utf-8", newline="") as fh:
            for row in csv.reader(fh):
                for cell in row:
                    add(cell)
    for path in ARTIFACTS.glob("*.json"):
        walk(json.loads(path.read_text(encoding="utf-8")))
    return found


def test_every_three_decimal_number_has_a_source_among_the_artifacts(document: str) -> None:
    sources = _artifact_numbers() | {f"{abs(v):.3f}" for v in _derived_numbers()}
    quoted = set(THREE_DECIMALS.findall(document))
    unsourced = sorted(quoted - sources - WITHOUT_ARTIFACT)
    assert unsourced == [], "numbers in docs/results.md with no source in docs/results/: " + ", ".join(
        unsourced
    )
    assert WITHOUT_ARTIFACT.issubset(quoted), "a number left the document: shrink WITHOUT_ARTIFACT"


def _derived_numbers() -> list[float]:
    """Numbers the document derives from the artifacts (Youden's J and differences of the control tables)."""
    tables = _tables_module()
    rows = tables.read_summary(ARTIFACTS / tables.CPU_SUMMARY)
    values: list[float] = []
    for row in rows:
        values += [tables.youden_j(row), tables.youden_j(row, "random_")]
    return values


def test_the_word_form_numbers_are_of_the_shipped_2x2_set() -> None:
    """The 2 x 2 artifact records the SHA-256 of the wordnet-2x2 file it was measured on: the shipped one."""
    from pseval.data.datasets import dataset_sha256

    with (ARTIFACTS / "wordform_2x2.csv").open(encoding="utf-8", newline="") as fh:
        recorded = {row["note"] for row in csv.DictReader(fh) if row["section"] == "wordform_dataset"}
    assert recorded == {dataset_sha256("wordnet-2x2")}
