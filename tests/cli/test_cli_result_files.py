"""Result files that can be trusted, through the CLI: checksums, kept vs wrote, one file per SAE, long names,
destinations that refuse files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from pseval.cli import app
from pseval.evals.results_store import MAX_FILE_NAME_BYTES
from tests.evals.test_runner_identity import write_sae

runner = CliRunner()


def _eval(model_dir: Path, dataset: Path, out: Path, *saes: str | Path, extra: tuple[str, ...] = ()) -> Any:
    args = ["eval", "--model", str(model_dir), "--dataset", str(dataset), "--out", str(out)]
    args += ["--no-baselines", "--bootstrap", "0", "--interpret-tokens", "0", *extra]
    for sae in saes:
        args += ["--sae", str(sae)]
    return runner.invoke(app, args)


def _lines(output: str) -> list[str]:
    return [line for line in output.strip().splitlines() if line.strip()]


def _refuse_model(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_args: Any, **_kwargs: Any) -> Any:
        raise AssertionError("the model was loaded")

    monkeypatch.setattr("pseval.models.loading.load_model", refuse)


def test_a_result_edited_by_hand_is_refused_everywhere(
    tmp_path: Path, tmp_cache: Path, tiny_model_dir: Path, tiny_dataset_file: Path
) -> None:
    sae = write_sae(tmp_path / "sae", seed=1)
    out = tmp_path / "results"
    path = out / "ps_eval" / "sae_eval_results.json"
    first = _eval(tiny_model_dir, tiny_dataset_file, out, sae)
    assert first.exit_code == 0, first.output
    assert f"wrote {path}" in first.output
    original = json.loads(path.read_text(encoding="utf-8"))
    assert original["result_checksum"].startswith("sha256:")

    again = _eval(tiny_model_dir, tiny_dataset_file, out, sae)
    assert again.exit_code == 0, again.output
    assert f"kept {path}" in again.output and "wrote" not in again.output

    edited = json.loads(path.read_text(encoding="utf-8"))
    edited["eval_result_metrics"]["ps_eval"]["specificity"] = 0.99
    path.write_text(json.dumps(edited, indent=2) + "\n", encoding="utf-8")
    before = path.read_bytes()
    for args in (
        None,  # pseval eval: resuming must not keep it as finished
        ["report", str(out), "--no-figures"],
        ["plot", str(out)],
        ["compare", str(path), str(path)],
        ["inspect", str(path)],
    ):
        refused = (
            _eval(tiny_model_dir, tiny_dataset_file, out, sae) if args is None else runner.invoke(app, args)
        )
        assert refused.exit_code == 2, (args, refused.output)
        assert "Traceback" not in refused.output and len(_lines(refused.output)) == 1, refused.output
        assert str(path) in refused.output.replace("\n", "") or "sae_eval_results.json" in refused.output
        assert "--force-rerun" in refused.output and "0.990" not in refused.output
    assert path.read_bytes() == before

    redone = _eval(tiny_model_dir, tiny_dataset_file, out, sae, extra=("--force-rerun",))
    assert redone.exit_code == 0, redone.output
    assert f"wrote {path}" in redone.output
    recomputed = json.loads(path.read_text(encoding="utf-8"))
    assert recomputed["eval_result_metrics"] == original["eval_result_metrics"]
    assert runner.invoke(app, ["report", str(out), "--no-figures"]).exit_code == 0


def test_one_sae_given_three_ways_is_one_result(
    tmp_path: Path,
    tmp_cache: Path,
    tiny_model_dir: Path,
    tiny_dataset_file: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    write_sae(tmp_path / "x" / "sae", seed=1)
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "results"
    given = _eval(tiny_model_dir, tiny_dataset_file, out, "x/sae", "x/sae/", "x/sae/../../x/sae")
    assert given.exit_code == 0, given.output
    assert "given 3 times" in given.output and given.output.count("wrote ") == 1
    assert sorted(p.name for p in (out / "ps_eval").iterdir()) == ["sae_eval_results.json"]
    stored = json.loads((out / "ps_eval" / "sae_eval_results.json").read_text(encoding="utf-8"))
    assert stored["sae_path"] == str((tmp_path / "x" / "sae").resolve())

    (tmp_path / "link").symlink_to(tmp_path / "x" / "sae")
    again = _eval(tiny_model_dir, tiny_dataset_file, out, "x/sae/", "link")
    assert again.exit_code == 0, again.output
    assert "kept" in again.output and "wrote" not in again.output
    assert sorted(p.name for p in (out / "ps_eval").iterdir()) == ["sae_eval_results.json"]


def test_very_long_sae_folder_names_get_short_distinct_result_files(
    tmp_path: Path, tmp_cache: Path, tiny_model_dir: Path, tiny_dataset_file: Path
) -> None:
    # 247-byte folder names that differ only at their end (the file-name limit is 255 bytes)
    long_a = write_sae(tmp_path / "a", seed=1).rename(tmp_path / ("topk_" + "x" * 240 + "_a"))
    long_b = write_sae(tmp_path / "b", seed=2).rename(tmp_path / ("topk_" + "x" * 240 + "_b"))
    out = tmp_path / "results"
    first = _eval(tiny_model_dir, tiny_dataset_file, out, long_a, long_b)
    assert first.exit_code == 0, first.output
    files = sorted((out / "ps_eval").iterdir())
    assert len(files) == 2
    for path in files:
        assert len(path.name.encode()) <= MAX_FILE_NAME_BYTES and path.name.startswith("topk_xxx")
        stored = json.loads(path.read_text(encoding="utf-8"))
        assert path.name == f"{stored['sae_name']}_eval_results.json"
    again = _eval(tiny_model_dir, tiny_dataset_file, out, long_a, long_b)
    assert again.exit_code == 0, again.output
    assert again.output.count("kept ") == 2 and "wrote" not in again.output


@pytest.mark.parametrize(
    "destination", ["/proc/self/fdinfo", "/proc/self/fdinfo/pseval-results", "/sys/pseval-results"]
)
def test_a_destination_that_refuses_files_fails_before_the_model_loads(
    destination: str,
    tmp_path: Path,
    tmp_cache: Path,
    tiny_model_dir: Path,
    tiny_dataset_file: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if not Path("/proc/self/fdinfo").is_dir() or not Path("/sys").is_dir():
        pytest.skip("needs Linux's /proc and /sys")
    sae = write_sae(tmp_path / "sae", seed=1)
    _refuse_model(monkeypatch)
    refused = _eval(tiny_model_dir, tiny_dataset_file, Path(destination), sae)
    assert refused.exit_code == 2, refused.output
    assert "Traceback" not in refused.output and len(_lines(refused.output)) == 1, refused.output
    assert "--out" in refused.output and "not writable" in refused.output
