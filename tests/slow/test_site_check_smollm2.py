"""The hook-site check on the real SmolLM2-135M: layer-12 SAEs pseval trains at a tiny budget, read elsewhere."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pseval.cli import app

pytestmark = [pytest.mark.slow, pytest.mark.site_check]

runner = CliRunner()


@pytest.fixture(scope="module")
def saes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """TopK SAEs trained on 8,192 tokens at blocks.12.hook_attn_out and blocks.12.hook_resid_post."""
    from pseval.training.config import TrainConfig
    from pseval.training.trainer import train_sae

    root = tmp_path_factory.mktemp("site-check-smollm2")
    folders = {}
    for hook in ("blocks.12.hook_attn_out", "blocks.12.hook_resid_post"):
        config = TrainConfig(
            model="smollm2-135m",
            hook_name=hook,
            architecture="topk",
            expansion_factor=2,
            k=32,
            training_tokens=8192,
            buffer_tokens=8192,
            batch_size=1024,
            eval_tokens=0,
            device="cpu",
            cache_dir=root / "acts",
            out=root / hook,
        )
        folders[hook] = train_sae(config, progress=False).out
    return folders


def _eval(sae: Path, out: Path, *extra: str) -> object:
    args = ["eval", "--model", "smollm2-135m", "--sae", str(sae), "-o", str(out), "--max-pairs", "40"]
    return runner.invoke(
        app, [*args, "--bootstrap", "0", "--no-baselines", "--interpret-tokens", "0", *extra]
    )


@pytest.mark.parametrize(
    ("trained_at", "read_at"),
    [
        ("blocks.12.hook_attn_out", "blocks.12.hook_resid_post"),
        ("blocks.12.hook_resid_post", "blocks.6.hook_resid_post"),
    ],
)
def test_an_sae_read_at_another_site_stops_before_scoring(
    saes: dict[str, Path], tmp_path: Path, trained_at: str, read_at: str
) -> None:
    result = _eval(saes[trained_at], tmp_path, "--hook", read_at)
    assert result.exit_code == 2, result.output  # type: ignore[attr-defined]
    refusal = [line for line in result.output.splitlines() if "does not fit the site" in line]  # type: ignore[attr-defined]
    assert len(refusal) == 1 and f"its config records {trained_at}" in refusal[0]
    assert not list(tmp_path.glob("ps_eval/*.json"))


def test_at_its_own_site_the_result_records_the_check(saes: dict[str, Path], tmp_path: Path) -> None:
    result = _eval(saes["blocks.12.hook_resid_post"], tmp_path)
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    saved = json.loads(next(tmp_path.glob("ps_eval/*.json")).read_text())
    check = saved["eval_result_metrics"]["site_check"]
    assert check["tokens"] == 2048 and check["prepend_bos"] is True and check["corpus"] == "bundled"
    assert check["verdict"] in ("pass", "poor_sae") and check["input_norm_ratio"] < 1.2
    assert check["fvu"] is not None and 0 < check["l0"] <= 32
