"""Results written by earlier pseval versions stay finished: ``pseval eval`` keeps them, without loading the model.

The golden results of ``test_golden.py`` (written by today's code) are checked the same way there.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from pseval.cli import app
from pseval.data.datasets import dataset_sha256
from tests.evals.test_runner_identity import write_sae

runner = CliRunner()

STORED_V0_1_0 = Path(__file__).parent / "stored" / "sae_eval_results_v0.1.0.json"
"""A result written by pseval 0.1.0 before result files carried a checksum: ``pseval eval --sae DIR --model
MODEL --dataset DATASET --no-baselines --bootstrap 0 --interpret-tokens 0`` on the tiny model and dataset of
``tests/evals/conftest.py`` and ``write_sae(DIR, seed=1)``; its paths replaced by @MODEL_DIR@, @DATASET@ and
@SAE_DIR@."""


def refuse_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any model load fail the test: a kept result needs no activation."""

    def refuse(*_args: Any, **_kwargs: Any) -> Any:
        raise AssertionError("the model was loaded")

    monkeypatch.setattr("pseval.models.loading.load_model", refuse)


def _eval(model_dir: Path, dataset: Path, out: Path, sae: Path) -> Any:
    args = [
        "eval",
        "--model",
        str(model_dir),
        "--dataset",
        str(dataset),
        "--out",
        str(out),
        "--sae",
        str(sae),
    ]
    return runner.invoke(app, [*args, "--no-baselines", "--bootstrap", "0", "--interpret-tokens", "0"])


def _stored_here(stored_file: Path, model_dir: Path, dataset: Path, sae: Path) -> dict[str, Any]:
    """A stored result with this machine's paths in place of its placeholders, and the tiny dataset's hash."""
    text = stored_file.read_text(encoding="utf-8")
    for placeholder, value in (
        ("@MODEL_DIR@", model_dir),
        ("@DATASET@", dataset),
        ("@SAE_DIR@", sae.resolve()),
    ):
        text = text.replace(placeholder, str(value))
    stored: dict[str, Any] = json.loads(text)
    stored["result_identity"]["dataset_sha256"] = dataset_sha256(str(dataset))
    return stored


def _write_stored(
    stored_file: Path, tmp_path: Path, model_dir: Path, dataset: Path, signed: bool = False
) -> tuple[Path, Path, dict[str, Any], str]:
    """``stored_file`` written where ``pseval eval --out OUT`` finds the result of ``write_sae(SAE, seed=1)``,
    with this machine's paths (its checksum signed again when ``signed``): the SAE, OUT, the result, its text."""
    sae = write_sae(tmp_path / "sae", seed=1)
    out = tmp_path / "results"
    path = out / "ps_eval" / "sae_eval_results.json"
    path.parent.mkdir(parents=True)
    stored = _stored_here(stored_file, model_dir, dataset, sae)
    if signed:  # the paths are this machine's: signed again
        from pseval.evals.schema import result_checksum

        stored["result_checksum"] = result_checksum(stored)
    text = json.dumps(stored, indent=2)
    path.write_text(text, encoding="utf-8")
    return sae, out, stored, text


def test_a_result_written_before_checksums_is_still_finished(
    tmp_path: Path,
    tmp_cache: Path,
    tiny_model_dir: Path,
    tiny_dataset_file: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A custom .jsonl result from before datasets were hashed is refused (its content then is unknown), so the
    # file stands for one written once the dataset hash was recorded but before result checksums were.
    sae, out, _, text = _write_stored(STORED_V0_1_0, tmp_path, tiny_model_dir, tiny_dataset_file)
    path = out / "ps_eval" / "sae_eval_results.json"
    assert "result_checksum" not in json.loads(text)

    refuse_model(monkeypatch)
    kept = _eval(tiny_model_dir, tiny_dataset_file, out, sae)
    assert kept.exit_code == 0, kept.output
    assert f"kept {path}" in kept.output
    assert path.read_text(encoding="utf-8") == text
    report = runner.invoke(app, ["report", str(out), "--no-figures"])
    assert report.exit_code == 0, report.output


STORED_IDENTITY_V2 = Path(__file__).parent / "stored" / "sae_eval_results_identity_v2.json"
"""A result written with identity version 2 (sha256 content hashes), by the pseval commit before version 3:
the command of :data:`STORED_V0_1_0` on the same SAE; its paths replaced by @MODEL_DIR@, @DATASET@ and
@SAE_DIR@."""


def test_a_result_stored_with_sha256_identities_is_still_finished(
    tmp_path: Path,
    tmp_cache: Path,
    tiny_model_dir: Path,
    tiny_dataset_file: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pseval.evals.plan import open_items

    sae, out, stored, text = _write_stored(
        STORED_IDENTITY_V2, tmp_path, tiny_model_dir, tiny_dataset_file, signed=True
    )
    path = out / "ps_eval" / "sae_eval_results.json"
    assert stored["result_identity"]["identity_version"] == 2
    assert stored["sae_content_hash"] != open_items([str(sae)])[0].content_hash  # today's hash is another

    refuse_model(monkeypatch)
    kept = _eval(tiny_model_dir, tiny_dataset_file, out, sae)
    assert kept.exit_code == 0, kept.output
    assert f"kept {path}" in kept.output
    assert path.read_text(encoding="utf-8") == text
