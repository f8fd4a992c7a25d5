"""Golden results: the SAEs of ``golden_saes.py`` re-scored on the tiny model and dataset must give, field by field
and exactly (CPU, float32), the result files stored in ``golden/``; and those stored files must stay finished.

Regenerate the stored files after an intended change of results with::

    python -m pytest tests/acceptance --update-golden

and review the diff of ``tests/acceptance/golden/`` like code: every changed number is a changed result.
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from pseval.cli import app
from tests.acceptance.golden_saes import write_golden_saes
from tests.acceptance.test_kept_results import refuse_model
from tests.helpers import tiny_model, tiny_tokenizer

runner = CliRunner()

GOLDEN_DIR = Path(__file__).parent / "golden"
ROOT_PLACEHOLDER = "@ROOT@"
"""Stands for the run's folder in the one absolute path a result records (``sae_path``)."""

EVAL_OPTIONS: tuple[str, ...] = (
    "--allow-model-mismatch",  # release fixtures record their release's model, not the tiny one
    "--bootstrap",
    "200",
    "--interpret-tokens",
    "0",
    "--no-site-check",  # the golden SAEs have random weights: no site fits them (tests/evals/test_site_check.py)
)
"""Everything else is the default: baselines, random control, sense retrieval, logit lens."""

VOLATILE_FIELDS: frozenset[str] = frozenset(
    {
        "eval_id",  # a uuid per run
        "datetime_epoch_millis",  # when it ran
        "pseval_version",
        "sae_lens_version",
        "sae_bench_commit_hash",
        "sae_cfg_dict.metadata.pseval_version",
        "sae_cfg_dict.metadata.sae_lens_version",
        "sae_cfg_dict.metadata.sae_lens_training_version",
    }
)
"""Dotted paths left out of the comparison; everything else (the checksum included) must be equal."""


def _tiny_model_folder(folder: Path) -> None:
    tiny_model("llama", n_layers=3, d_model=32).save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)


@pytest.fixture(scope="module")
def golden_root(
    tmp_path_factory: pytest.TempPathFactory, tiny_dataset_file: Path
) -> Iterator[tuple[Path, list[str]]]:
    """The working directory, holding the tiny model, dataset and golden SAEs, and the ``--sae`` arguments.

    Paths are given relative to it so that the result files (and their checksums) do not depend on where the
    test runs; only ``sae_path`` is absolute, and is stored with :data:`ROOT_PLACEHOLDER`.
    """
    root = tmp_path_factory.mktemp("golden")
    _tiny_model_folder(root / "models" / "tiny-llama")
    (root / "data").mkdir()
    shutil.copyfile(tiny_dataset_file, root / "data" / "tiny_pairs.jsonl")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        patch.setenv("PSEVAL_CACHE", str(root / "cache"))
        saes = write_golden_saes(Path("saes"))
        sae_args = [arg for path in saes.values() for arg in ("--sae", str(path))]
        yield root, sae_args


def _eval(out: str, sae_args: list[str]) -> Any:
    args = ["eval", "--model", "models/tiny-llama", "--dataset", "data/tiny_pairs.jsonl", "--out", out]
    return runner.invoke(app, [*args, *EVAL_OPTIONS, *sae_args])


@pytest.fixture(scope="module")
def golden_results(golden_root: tuple[Path, list[str]]) -> dict[str, str]:
    """Score every golden SAE in one ``pseval eval`` run: result file name -> its text with the root replaced."""
    root, sae_args = golden_root
    result = _eval("out", sae_args)
    assert result.exit_code == 0, result.output
    assert result.output.count("wrote ") == len(sae_args) // 2, result.output
    written = sorted((root / "out" / "ps_eval").glob("*.json"))
    return {path.name: _root_to_placeholder(path.read_text(encoding="utf-8"), root) for path in written}


def _root_to_placeholder(text: str, root: Path) -> str:
    return text.replace(json.dumps(str(root.resolve()))[1:-1], ROOT_PLACEHOLDER)


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted path -> leaf value (list items by index), so that a difference names its field."""
    if isinstance(value, dict) and value:
        items: Any = value.items()
    elif isinstance(value, list) and value:
        items = ((str(i), item) for i, item in enumerate(value))
    else:
        return {prefix: value}
    flat: dict[str, Any] = {}
    for key, item in items:
        flat.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def _same(a: Any, b: Any) -> bool:
    """Exact equality that also tells 1 from 1.0 and True, and takes NaN equal to NaN."""
    if type(a) is not type(b):
        return False
    return a == b or (isinstance(a, float) and math.isnan(a) and math.isnan(b))


_ABSENT = "<absent>"


def differences(stored: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """One line per field (dotted path) that differs, volatile fields left out."""
    want = {k: v for k, v in _flatten(stored).items() if k not in VOLATILE_FIELDS}
    got = {k: v for k, v in _flatten(now).items() if k not in VOLATILE_FIELDS}
    return [
        f"{key}: stored {want.get(key, _ABSENT)!r}, now {got.get(key, _ABSENT)!r}"
        for key in sorted(want.keys() | got.keys())
        if key not in want or key not in got or not _same(want[key], got[key])
    ]


def test_every_golden_sae_gives_its_stored_result(
    golden_results: dict[str, str], request: pytest.FixtureRequest
) -> None:
    if request.config.getoption("--update-golden"):
        shutil.rmtree(GOLDEN_DIR, ignore_errors=True)
        GOLDEN_DIR.mkdir()
        for name, text in golden_results.items():
            (GOLDEN_DIR / name).write_text(text, encoding="utf-8")
    stored = sorted(path.name for path in GOLDEN_DIR.glob("*.json"))
    assert sorted(golden_results) == stored, "a golden SAE was added or removed: rerun with --update-golden"
    failures: list[str] = []
    for name, text in golden_results.items():
        expected = json.loads((GOLDEN_DIR / name).read_text(encoding="utf-8"))
        lines = differences(expected, json.loads(text))
        failures += [f"{name}: {line}" for line in lines[:20]]
        if len(lines) > 20:
            failures.append(f"{name}: ... {len(lines) - 20} more")
    assert not failures, "results differ from tests/acceptance/golden/:\n" + "\n".join(failures)


def test_the_comparison_sees_a_changed_number_type_and_field() -> None:
    stored = {"a": {"b": [1.0, 2]}, "eval_id": "x", "c": float("nan")}
    assert differences(stored, {**stored, "eval_id": "y"}) == []
    assert differences(stored, {"a": {"b": [1.0, 2.0]}, "c": float("nan"), "eval_id": "x"}) == [
        "a.b.1: stored 2, now 2.0"
    ]
    assert differences(stored, {"a": {"b": [1.0 + 1e-12, 2]}, "c": 0.0}) == [
        "a.b.0: stored 1.0, now 1.000000000001",
        "c: stored nan, now 0.0",
    ]
    assert differences({"a": 1}, {"a": 1, "new": None}) == ["new: stored '<absent>', now None"]


def test_stored_golden_results_stay_finished(
    golden_root: tuple[Path, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stored files, as today's code wrote them, are kept by a later run: none recomputed, none changed."""
    root, sae_args = golden_root
    folder = root / "kept" / "ps_eval"
    folder.mkdir(parents=True)
    before: dict[Path, str] = {}
    for path in sorted(GOLDEN_DIR.glob("*.json")):
        text = path.read_text(encoding="utf-8").replace(ROOT_PLACEHOLDER, str(root.resolve()))
        (folder / path.name).write_text(text, encoding="utf-8")
        before[folder / path.name] = text
    assert len(before) == len(sae_args) // 2
    refuse_model(monkeypatch)
    kept = _eval("kept", sae_args)
    assert kept.exit_code == 0, kept.output
    assert "wrote " not in kept.output and kept.output.count("kept ") == len(before), kept.output
    assert {path: path.read_text(encoding="utf-8") for path in before} == before
