"""The refusals of bad or misleading input, through the installed ``pseval`` console script.

Each case used to give a traceback or a misleading number with exit code 0. The CliRunner tests beside this file
check each case in detail; these run the real entry point once per case: exit 2, one line naming the problem
and the flag that fixes it, no traceback, and nothing written.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.cli.test_cli_output import run_pseval
from tests.evals.conftest import make_sae
from tests.sae.test_sae_refusals import int32_weights, jumprelu_without_threshold

HOOK = "blocks.1.hook_resid_post"
Case = Callable[[Path, Path, Path], list[str]]


def _eval(model: Path, data: Path, sae: Path, out: Path, *extra: str) -> list[str]:
    args = ["eval", "--model", str(model), "--dataset", str(data), "--sae", str(sae)]
    # Random weights fit no site: the site check would stop these runs before what each case tests.
    return [
        *args,
        "--out",
        str(out),
        "--bootstrap",
        "0",
        "--interpret-tokens",
        "0",
        "--no-site-check",
        *extra,
    ]


def _sae(tmp: Path, **kwargs: object) -> Path:
    return make_sae(tmp / "sae", "topk", HOOK, seed=1, **kwargs)  # type: ignore[arg-type]


CASES: dict[str, tuple[Case, tuple[str, ...]]] = {
    "another model's SAE": (
        lambda m, d, t: _eval(m, d, _sae(t, model_name="gpt2"), t / "out"),
        ("gpt2", "--allow-model-mismatch"),
    ),
    "too few bootstrap resamples": (
        lambda m, d, t: [*_eval(m, d, _sae(t), t / "out"), "--bootstrap", "1"],
        ("--bootstrap",),
    ),
    "negative seed on eval": (
        lambda m, d, t: [*_eval(m, d, _sae(t), t / "out"), "--seed", "-1"],
        ("--seed",),
    ),
    "negative seed on dataset": (
        lambda m, d, t: ["dataset", "--dataset", str(d), "--model", str(m), "--seed", "-1"],
        ("--seed",),
    ),
    "top-k overlap above the width": (
        lambda m, d, t: [*_eval(m, d, _sae(t), t / "out"), "--topk-overlap-k", "65"],
        ("--topk-overlap-k",),
    ),
    "negative standard-metrics tokens": (
        lambda m, d, t: [*_eval(m, d, _sae(t), t / "out"), "--standard-metrics-tokens", "-10"],
        ("--standard-metrics-tokens",),
    ),
    "negative CE tokens": (
        lambda m, d, t: ["metrics", "--model", str(m), "--sae", str(_sae(t)), "--ce-tokens", "-5"],
        ("--ce-tokens",),
    ),
    "JumpReLU without threshold": (
        lambda m, d, t: _eval(m, d, jumprelu_without_threshold(t / "j"), t / "out"),
        ("threshold",),
    ),
    "integer weights": (lambda m, d, t: _eval(m, d, int32_weights(t / "i"), t / "out"), ("int32",)),
    "results under /proc": (lambda m, d, t: _eval(m, d, _sae(t), Path("/proc/self/fdinfo/x")), ("--out",)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_console_script_refuses_in_one_line(
    case: str, tmp_path: Path, tmp_cache: Path, tiny_model_dir: Path, tiny_dataset_file: Path
) -> None:
    build, needles = CASES[case]
    args = build(tiny_model_dir, tiny_dataset_file, tmp_path)
    proc = run_pseval(*args, timeout=240)
    lines = [line for line in proc.stdout.splitlines() + proc.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and len(errors) == 1, proc.stdout + proc.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]
    assert not (tmp_path / "out").exists()


def test_console_script_scores_an_sae_with_a_very_long_folder_name(
    tmp_path: Path, tmp_cache: Path, tiny_model_dir: Path, tiny_dataset_file: Path
) -> None:
    sae = make_sae(tmp_path / ("s" * 245), "topk", HOOK, seed=1)
    proc = run_pseval(*_eval(tiny_model_dir, tiny_dataset_file, sae, tmp_path / "out"), timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (written,) = (tmp_path / "out" / "ps_eval").glob("*_eval_results.json")
    assert len(written.name.encode()) <= 255
