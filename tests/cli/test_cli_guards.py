"""Inputs that used to give a traceback or a misleading result with exit code 0, through the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from pseval.cli import app
from tests.evals.conftest import make_sae

runner = CliRunner()
HOOK = "blocks.1.hook_resid_post"


@pytest.fixture
def env(tmp_path: Path, tmp_cache: Path, tiny_model_dir: Path, tiny_dataset_file: Path) -> dict[str, Path]:
    return {
        "model": tiny_model_dir,
        "data": tiny_dataset_file,
        "sae": make_sae(tmp_path / "sae-a", "topk", HOOK, seed=3),
        "out": tmp_path / "results",
        "tmp": tmp_path,
    }


def _eval(env: dict[str, Path], *extra: str) -> list[str]:
    return [
        "eval", "--model", str(env["model"]), "--dataset", str(env["data"]), "--bootstrap", "200",
        "--interpret-tokens", "0", "--out", str(env["out"]), *extra,
    ]  # fmt: skip


def _refused(result: Any, *needles: str) -> None:
    """Exit code 2 and one line: the problem and its fix, naming the option (never a traceback)."""
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    for needle in needles:
        assert needle in lines[0], result.output


@pytest.mark.parametrize("command", ["eval", "dataset"])
def test_negative_seed_is_refused(env: dict[str, Path], command: str) -> None:
    if command == "eval":
        args = _eval(env, "--sae", str(env["sae"]), "--seed", "-1")
    else:
        args = ["dataset", "--model", str(env["model"]), "--dataset", str(env["data"]), "--seed", "-1"]
    _refused(runner.invoke(app, args), "--seed")
    assert not env["out"].exists()


@pytest.fixture
def no_model_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading the model fails the test: the refusals must come before the long work."""

    def fail(*_args: Any, **_kwargs: Any) -> None:
        raise AssertionError("the model was loaded before the bad input was refused")

    monkeypatch.setattr("pseval.models.loading.load_model", fail)


def test_topk_overlap_k_above_the_sae_width_is_refused(env: dict[str, Path], no_model_pass: None) -> None:
    result = runner.invoke(app, _eval(env, "--sae", str(env["sae"]), "--topk-overlap-k", "65"))
    _refused(result, "--topk-overlap-k 65", "64 latents", "sae-a")
    assert not (env["out"] / "ps_eval").exists()


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--topk-overlap-k", "0"),
        ("--standard-metrics-tokens", "-10"),
        ("--interpret-tokens", "-1"),
        ("--logit-lens-tokens", "-1"),
        ("--batch-size", "0"),
    ],
)
def test_out_of_range_eval_options_are_refused(
    env: dict[str, Path], no_model_pass: None, option: str, value: str
) -> None:
    _refused(runner.invoke(app, _eval(env, "--sae", str(env["sae"]), option, value)), option)
    assert not (env["out"] / "ps_eval").exists()


@pytest.mark.parametrize(("option", "value"), [("--ce-tokens", "-5"), ("--tokens", "0")])
def test_out_of_range_metrics_options_are_refused(
    env: dict[str, Path], no_model_pass: None, option: str, value: str
) -> None:
    args = ["metrics", "--model", str(env["model"]), "--sae", str(env["sae"]), option, value]
    _refused(runner.invoke(app, args), option)


def _metrics(env: dict[str, Path], sae: Path, *extra: str) -> list[str]:
    return [
        "metrics",
        "--model",
        str(env["model"]),
        "--sae",
        str(sae),
        "--tokens",
        "64",
        "--ce-tokens",
        "0",
        *extra,
    ]


@pytest.mark.parametrize("recorded", ["gemma-3-270m", "gpt2"])
def test_sae_of_another_model_is_refused_by_eval(
    env: dict[str, Path], no_model_pass: None, recorded: str
) -> None:
    # The width matches the tiny model's hook: only the recorded model name tells the SAE does not belong.
    other = make_sae(env["tmp"] / "other", "standard", HOOK, model_name=recorded)
    result = runner.invoke(app, _eval(env, "--sae", str(other)))
    _refused(result, recorded, "--allow-model-mismatch", "'other'")
    assert not (env["out"] / "ps_eval").exists()


def test_sae_of_another_model_is_refused_by_metrics(env: dict[str, Path], no_model_pass: None) -> None:
    other = make_sae(env["tmp"] / "other", "standard", HOOK, model_name="gpt2")
    _refused(runner.invoke(app, _metrics(env, other)), "gpt2", "--allow-model-mismatch")


def test_allow_model_mismatch_scores_the_sae(env: dict[str, Path]) -> None:
    other = make_sae(env["tmp"] / "other", "standard", HOOK, model_name="gemma-3-270m")
    result = runner.invoke(app, _eval(env, "--sae", str(other), "--no-baselines", "--allow-model-mismatch"))
    assert result.exit_code == 0, result.output
    assert (env["out"] / "ps_eval" / "other_eval_results.json").is_file()
    metrics = runner.invoke(app, _metrics(env, other, "--allow-model-mismatch"))
    assert metrics.exit_code == 0, metrics.output


def test_sae_without_a_model_name_is_accepted(env: dict[str, Path]) -> None:
    anonymous = make_sae(env["tmp"] / "anonymous", "standard", HOOK, model_name=None)
    result = runner.invoke(app, _eval(env, "--sae", str(anonymous), "--no-baselines"))
    assert result.exit_code == 0, result.output
    assert "records no model name" in result.output


def _multi_token_dataset(path: Path) -> Path:
    """8 pairs of one-token words and 8 of words the tiny tokenizer splits (``x-ray``: 3 tokens), 4 per label each."""
    import json

    rows = []
    for i in range(16):
        word = "bank" if i < 8 else "x-ray"
        first, second = f"the {word} was bright", f"a {word} at night"
        rows.append(
            {
                "id": f"p{i:02d}", "word": word, "pos": "N", "context_1": first, "context_2": second,
                "span_1": [4, 4 + len(word)], "span_2": [2, 2 + len(word)], "label": i % 2, "split": "test",
            }
        )  # fmt: skip
    path.write_text("\n".join(json.dumps(row) for row in rows) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("policy", ["last", "mean"])
def test_max_pairs_caps_multi_token_pairs_too(env: dict[str, Path], policy: str) -> None:
    import json

    data = _multi_token_dataset(env["tmp"] / "multi.jsonl")
    args = _eval(env, "--sae", str(env["sae"]), "--no-baselines", "--max-pairs", "4", "--multi-token", policy)
    args[args.index("--dataset") + 1] = str(data)
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    stored = json.loads((env["out"] / "ps_eval" / "sae-a_eval_results.json").read_text())
    assert stored["eval_result_metrics"]["ps_eval"]["n_pairs"] == 4
    assert stored["dataset_stats"]["kept_by_token_count"] == {"single": 2, "multi": 2}
    assert "4 pairs" in result.output


def _dead_sae(folder: Path, how: str) -> Path:
    """A standard SAE on which no latent ever fires: ``W_enc`` all zero, or ``b_enc`` at -1e6."""
    import torch

    from pseval.sae.formats import load_sae, save_sae

    sae = load_sae(str(make_sae(folder, "standard", HOOK, seed=5)))
    with torch.no_grad():
        if how == "zero_encoder":
            sae.W_enc.zero_()
        else:
            sae.b_enc.fill_(-1e6)
    save_sae(sae, folder, overwrite=True)
    return folder


@pytest.mark.parametrize("how", ["zero_encoder", "negative_bias"])
def test_a_dead_sae_is_flagged_not_presented_as_a_result(env: dict[str, Path], how: str) -> None:
    import json

    dead = _dead_sae(env["tmp"] / "dead", how)
    result = runner.invoke(app, _eval(env, "--sae", str(dead), "--sae", str(env["sae"]), "--no-baselines"))
    assert result.exit_code == 0, result.output
    assert "no active latent: 100% of pairs" in result.output
    dead_row = next(line for line in result.output.splitlines() if line.lstrip("│| ").startswith("dead"))
    assert "!" in dead_row
    live_row = next(line for line in result.output.splitlines() if line.lstrip("│| ").startswith("sae-a"))
    assert "!" not in live_row

    stored = json.loads((env["out"] / "ps_eval" / "dead_eval_results.json").read_text())
    metrics = stored["eval_result_metrics"]
    assert metrics["ps_eval"]["share_pairs_no_active"] == 1.0
    assert metrics["codes"]["share_prompts_no_active"] == 1.0
    assert metrics["ps_eval"]["specificity"] == 1.0  # the number is kept, flagged beside it

    as_json = runner.invoke(app, _eval(env, "--sae", str(dead), "--no-baselines", "--format", "json"))
    row = json.loads(as_json.stdout)["results"][0]
    assert row["share_pairs_no_active"] == 1.0 and row["mostly_no_active"] is True
