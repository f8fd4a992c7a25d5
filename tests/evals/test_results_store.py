"""The result checksum: what it covers, what it ignores, and file names that fit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pseval.errors import ConfigError
from pseval.evals.results_store import MAX_FILE_NAME_BYTES, RESULT_SUFFIX, fit_name, read_stored, write_result
from tests.report.fabricate import default_saes, fake_result


@pytest.fixture
def written(tmp_path: Path) -> Path:
    path = tmp_path / "ps_eval" / "a_eval_results.json"
    result = write_result(path, fake_result(default_saes()[0], n_pairs=12, seed=0))
    assert result.result_checksum == json.loads(path.read_text(encoding="utf-8"))["result_checksum"]
    return path


def test_reformatting_the_file_keeps_it_valid(written: Path) -> None:
    raw = json.loads(written.read_text(encoding="utf-8"))
    written.write_text(json.dumps(dict(reversed(raw.items())), separators=(",", ":")), encoding="utf-8")
    assert read_stored(written).result_checksum == raw["result_checksum"]


@pytest.mark.parametrize(
    "edit",
    [
        lambda raw: raw["eval_result_details"][0].update(
            correct=not raw["eval_result_details"][0]["correct"]
        ),
        lambda raw: raw["eval_result_metrics"]["ps_eval"].update(specificity=0.99),
        lambda raw: raw["eval_config"].update(split="dev"),
        lambda raw: raw.update(hook_name="blocks.0.hook_resid_post"),
        lambda raw: raw.update(eval_result_unstructured={"by_pos": {"N": {"accuracy": 1.0}}}),
    ],
)
def test_any_edit_of_the_numbers_or_their_settings_is_refused(written: Path, edit) -> None:  # type: ignore[no-untyped-def]
    raw = json.loads(written.read_text(encoding="utf-8"))
    edit(raw)
    written.write_text(json.dumps(raw, indent=2), encoding="utf-8")
    with pytest.raises(ConfigError, match="changed after pseval wrote it") as info:
        read_stored(written)
    assert info.value.fix is not None and "--force-rerun" in info.value.fix


def test_a_file_without_checksum_is_accepted(written: Path) -> None:
    raw = json.loads(written.read_text(encoding="utf-8"))
    del raw["result_checksum"]
    written.write_text(json.dumps(raw), encoding="utf-8")
    assert read_stored(written).result_checksum is None


def test_long_names_are_cut_with_a_hash_of_the_whole_name() -> None:
    short = "topk_" + "x" * 100
    assert fit_name(short) == short
    a, b = fit_name("x" * 300 + "a"), fit_name("x" * 300 + "b")
    assert a != b
    for name in (a, b, fit_name("é" * 300)):
        assert len((name + RESULT_SUFFIX).encode("utf-8")) <= MAX_FILE_NAME_BYTES
