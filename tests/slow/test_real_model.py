"""End-to-end runs on the real embedded SmolLM2-135M (slow: seconds to a couple of minutes; run in CI)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pseval.cli import app
from pseval.sae.config import config_from_dict
from pseval.sae.formats import load_sae, save_sae
from pseval.sae.model import SAE

pytestmark = pytest.mark.slow

runner = CliRunner()


def test_pseval_eval_on_smollm2_with_a_random_sae(tmp_path: Path) -> None:
    sae_dir = tmp_path / "random-topk"
    cfg = config_from_dict(
        {"architecture": "topk", "d_in": 576, "d_sae": 1152, "k": 16, "hook_name": "blocks.3.hook_resid_post"}
    )
    save_sae(SAE.create_random(cfg, seed=0), sae_dir)
    out = tmp_path / "results"
    result = runner.invoke(
        app,
        ["eval", "--model", "smollm2-135m", "--sae", str(sae_dir), "--hook", "blocks.3.hook_resid_post",
         "--output-folder", str(out), "--max-pairs", "200", "--bootstrap", "200"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "specificity" in result.output
    data = json.loads((out / "ps_eval" / "random-topk_eval_results.json").read_text())
    metrics = data["eval_result_metrics"]["ps_eval"]
    assert metrics["n_pairs"] == 200 and metrics["n_same_meaning"] == 100
    assert 0 <= metrics["specificity"] <= 1
    assert data["eval_result_unstructured"]["logit_lens"]


def test_train_on_smollm2_loss_falls_and_sae_lens_loads_it(tmp_path: Path) -> None:
    from pseval.training.config import TrainConfig
    from pseval.training.trainer import train_sae

    out = tmp_path / "sae"
    config = TrainConfig(
        model="smollm2-135m",
        hook_name="blocks.2.hook_resid_post",
        architecture="topk",
        k=16,
        expansion_factor=2,
        training_tokens=38_400,
        batch_size=128,  # 300 steps
        lr=1e-3,
        log_every=25,
        eval_tokens=2048,
        device="cpu",
        cache_dir=tmp_path / "acts",
        out=out,
    )
    result = train_sae(config, progress=False)
    assert result.log is not None and result.log.n_steps == 300
    history = result.log.history
    assert history[-1].mse < 0.5 * history[0].mse
    assert history[-1].l0 == pytest.approx(16)

    ours = load_sae(out)
    sae_lens = pytest.importorskip("sae_lens")
    theirs = sae_lens.SAE.load_from_disk(str(out), device="cpu")
    import torch

    x = torch.randn(8, 576) * 5
    assert torch.allclose(ours.encode(x), theirs.encode(x), atol=1e-5)
