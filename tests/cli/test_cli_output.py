"""Output people read, through the installed console script: narrow tables, formats, help, early errors."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pseval.cli import app
from tests.evals.conftest import make_sae

runner = CliRunner()

LONG_A = "topk-blocks1-resid_post-x2-k8-seed3-lr3e-4"
LONG_B = "standard-blocks1-resid_post-x2-l1-5-seed4-lr1e-3"
COMMANDS = [
    "dataset",
    "eval",
    "compare",
    "demo",
    "plot",
    "report",
    "inspect",
    "metrics",
    "sweep",
    "train",
    "reliability",
]


def console_script() -> list[str]:
    """The ``pseval`` entry point installed beside this interpreter (``python -m pseval.cli`` otherwise)."""
    script = Path(sys.executable).parent / "pseval"
    return [str(script)] if script.exists() else [sys.executable, "-m", "pseval.cli"]


def run_pseval(
    *args: str, columns: int | None = None, timeout: int = 300
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("COLUMNS", None)
    if columns is not None:
        env["COLUMNS"] = str(columns)
    return subprocess.run(
        [*console_script(), *args], capture_output=True, text=True, env=env, timeout=timeout, check=False
    )


@pytest.fixture
def long_env(
    tmp_path: Path, tmp_cache: Path, tiny_model_dir: Path, tiny_dataset_file: Path
) -> dict[str, Path]:
    return {
        "model": tiny_model_dir,
        "data": tiny_dataset_file,
        "a": make_sae(tmp_path / LONG_A, "topk", "blocks.1.hook_resid_post", seed=3),
        "b": make_sae(tmp_path / LONG_B, "standard", "blocks.1.hook_resid_post", seed=4),
        "out": tmp_path / "results",
    }


def test_80_columns_show_full_names_and_specificity(long_env: dict[str, Path]) -> None:
    args = [
        "eval",
        "--model",
        str(long_env["model"]),
        "--dataset",
        str(long_env["data"]),
        "--bootstrap",
        "200",
        # Random weights fit no site; the table layout is what is tested here.
        "--no-site-check",
    ]
    proc = run_pseval(
        *args,
        "--sae",
        str(long_env["a"]),
        "--sae",
        str(long_env["b"]),
        "--out",
        str(long_env["out"]),
        columns=80,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80, proc.stdout
    assert "…" not in proc.stdout
    for path in sorted((long_env["out"] / "ps_eval").glob("*_eval_results.json")):
        result = json.loads(path.read_text())
        name = result["sae_name"]
        spec = result["eval_result_metrics"]["ps_eval"]["specificity"]
        at = [i for i, line in enumerate(lines) if name in line]
        assert at, f"{name} not shown in full:\n{proc.stdout}"
        # On the name's line (a table row) or the next (the stacked layout of very narrow terminals).
        assert f"{spec:.3f}" in lines[at[0]] or f"specificity {spec:.3f}" in lines[at[0] + 1], proc.stdout
    assert "pairs read" in proc.stdout  # the dropped-pair counts sit under the table
    # The same results as CSV, JSON and Markdown carry the full names and raw numbers.
    for fmt in ("csv", "json", "markdown"):
        again = runner.invoke(
            app,
            [*args, "--sae", str(long_env["a"]), "--sae", str(long_env["b"])]
            + ["--out", str(long_env["out"]), "--format", fmt],
        )
        assert again.exit_code == 0, again.output
        if fmt == "csv":
            rows = list(csv.DictReader(io.StringIO(again.stdout)))
            assert {LONG_A, LONG_B} <= {r["sae"] for r in rows}
            assert all(0.0 <= float(r["specificity"]) <= 1.0 for r in rows)
        elif fmt == "json":
            data = json.loads(again.stdout)
            assert {LONG_A, LONG_B} <= {r["sae"] for r in data["results"]}
            assert data["dataset_stats"] and "dropped" in data["dataset_stats"][0]
        else:
            assert f"`{LONG_A}`" in again.stdout and "| SAE |" in again.stdout
        assert "wrote" not in again.stdout  # notes go to stderr, stdout stays machine-readable


@pytest.mark.parametrize("command", COMMANDS)
def test_help_shows_placeholders_defaults_and_an_example(command: str) -> None:
    result = runner.invoke(app, [command, "--help"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    text = result.output
    for label in ("<bool>", "<list[str]>", "<str>", "<int>", "<path>", "<float>"):
        assert label not in text, f"{command} --help shows {label}"
    assert "Example:\n    pseval " in text
    assert max(len(line) for line in text.splitlines()) <= 80


def test_help_names_defaults_and_accepted_values() -> None:
    text = runner.invoke(app, ["eval", "--help"], env={"COLUMNS": "120"}).output
    assert "--split train|dev|test|all" in text and "[default: test]" in text
    assert "--format table|markdown|csv|json" in text
    assert "--force-rerun  " in text  # a plain flag, no value placeholder
    assert "seeded" in text or "drawn with --seed" in text
    assert "-o, --out, --output-folder PATH" in text
    for command in ("sweep", "demo", "train"):
        out = runner.invoke(app, [command, "--help"], env={"COLUMNS": "120"}).output
        assert "--out" in out and "--output-folder" in out, command


def test_negative_bootstrap_is_rejected(long_env: dict[str, Path]) -> None:
    result = runner.invoke(
        app, ["eval", "--model", str(long_env["model"]), "--sae", str(long_env["a"]), "--bootstrap", "-1"]
    )
    assert result.exit_code == 2
    assert "--bootstrap" in result.output
    assert not long_env["out"].exists()


@pytest.mark.parametrize("resamples", ["1", "199"])
def test_too_few_bootstrap_resamples_are_refused_before_any_work(
    long_env: dict[str, Path], resamples: str
) -> None:
    # One resample printed "0.367 [0.54, 0.54]": an interval of width 0 that does not contain the estimate.
    args = ["eval", "--model", str(long_env["model"]), "--dataset", str(long_env["data"])]
    args += ["--sae", str(long_env["a"]), "--out", str(long_env["out"]), "--bootstrap", resamples]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    assert f"--bootstrap {resamples} is too few" in lines[0] and "--bootstrap 200" in lines[0]
    assert not long_env["out"].exists()


@pytest.mark.parametrize(
    ("args", "kind"),
    [
        (["eval", "--model", "/no/such/model", "--sae", "/no/such/sae", "--out", "{file}"], "file"),
        (["eval", "--model", "/no/such/model", "--sae", "/no/such/sae", "--output-folder", "{file}"], "file"),
        (["sweep", "--preset", "paper-layers", "--budget", "tiny", "--out", "{file}"], "file"),
        (["train", "--model", "/no/such/model", "--out", "{file}"], "file"),
        (["demo", "--out", "{file}/sub"], "inside"),
        (["metrics", "--model", "/no/such/model", "--sae", "/no/such/sae", "--out", "{dir}"], "folder"),
        (["plot", "{dir}", "--out", "{file}"], "file"),
        (["report", "{dir}", "--out", "{dir}"], "folder"),
    ],
)
def test_unwritable_output_fails_first_with_one_line(tmp_path: Path, args: list[str], kind: str) -> None:
    """The output path is checked before anything slow (the model path here does not even exist)."""
    a_file = tmp_path / "taken.txt"
    a_file.write_text("not a folder")
    a_dir = tmp_path / "a_dir"
    a_dir.mkdir()
    filled = [a.replace("{file}", str(a_file)).replace("{dir}", str(a_dir)) for a in args]
    proc = run_pseval(*filled, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert "--out" in lines[0] and kind in lines[0], lines[0]
    assert a_file.read_text() == "not a folder"


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root may write anywhere")
def test_read_only_output_folder_fails_first(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        proc = run_pseval("eval", "--model", "/no/such/model", "--sae", "/x", "--out", str(locked / "r"))
    finally:
        locked.chmod(0o700)
    assert proc.returncode == 2 and "not writable" in proc.stderr


def test_api_entry_points_check_the_output_first(tmp_path: Path) -> None:
    from pseval.errors import ConfigError
    from pseval.evals.runner import evaluate

    taken = tmp_path / "taken"
    taken.write_text("")
    with pytest.raises(ConfigError, match="is a file"):
        evaluate("/no/such/model", ["/no/such/sae"], output_folder=taken)


def test_train_says_what_it_will_train(monkeypatch: pytest.MonkeyPatch) -> None:
    import pseval.training.trainer as trainer

    def refuse(config, **_kwargs):  # type: ignore[no-untyped-def]
        raise KeyboardInterrupt

    monkeypatch.setattr(trainer, "train_sae", refuse)
    result = runner.invoke(app, ["train"])
    assert result.exit_code == 130
    assert "training a topk SAE (expansion x8) at blocks.15.hook_resid_post of smollm2-135m" in result.output
    assert "all defaults" in result.output


@pytest.fixture
def fake_file(tmp_path: Path) -> Path:
    from tests.report.fabricate import FakeSAE, fake_result

    result = fake_result(FakeSAE("topk", 16, 6, "resid_post", contexts=True, top_contexts=True), 48, seed=1)
    path = tmp_path / "fake_eval_results.json"
    path.write_text(result.model_dump_json())
    return path


def test_inspect_word_marks_target_any_case_and_each_latent_once(fake_file: Path) -> None:
    result = runner.invoke(app, ["inspect", str(fake_file), "--word", "BANK"])
    assert result.exit_code == 0, result.output
    assert "[[bank]]" in result.output  # marked in each sentence, visible without colour
    pairs = [line for line in result.output.splitlines() if " · predicted " in line]
    marked = [line for line in result.output.splitlines() if "[[bank]]" in line]
    assert len(marked) == 2 * len(pairs)
    described = [line for line in result.output.splitlines() if line.startswith("latent ")]
    assert len(described) == len(set(described)) >= 1
    assert "specificity" in result.output.splitlines()[0]


@pytest.mark.parametrize("by", ["pos", "word"])
def test_inspect_breakdowns_show_intervals(fake_file: Path, by: str) -> None:
    result = runner.invoke(app, ["inspect", str(fake_file), "--by", by], env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    assert "95% Wilson interval" in result.output
    assert any(
        "[0." in line or "[1." in line
        for line in result.output.splitlines()
        if "bank" in line or " N " in line
    )


def test_compare_warns_when_both_files_are_one_result(fake_file: Path) -> None:
    result = runner.invoke(app, ["compare", str(fake_file), str(fake_file)])
    assert result.exit_code == 0, result.output
    assert "hold the same result" in result.stderr
    assert "identical outcome" in result.stdout
    assert "more accurate" not in result.output


def test_dataset_counts_per_split(long_env: dict[str, Path]) -> None:
    result = runner.invoke(
        app, ["dataset", "--model", str(long_env["model"]), "--dataset", str(long_env["data"])]
    )
    assert result.exit_code == 0, result.output
    assert "test" in result.output and "balanced: True (seed 0)" in result.output
