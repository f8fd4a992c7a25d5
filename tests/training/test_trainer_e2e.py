"""``train_sae(config)`` end to end on a tiny random model and a small text file (seconds, no downloads)."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from pseval.errors import ConfigError
from pseval.sae.formats import load_sae
from pseval.training.config import TrainConfig
from pseval.training.trainer import train_sae
from tests.helpers import TINY_VOCAB_WORDS, tiny_loaded

HOOK = "blocks.1.hook_resid_post"


@pytest.fixture
def tiny_setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    loaded = tiny_loaded("llama", n_layers=3, d_model=32)
    monkeypatch.setattr(
        "pseval.models.loading.load_model", lambda name, device="cpu", dtype="float32": loaded
    )
    monkeypatch.setenv("PSEVAL_CACHE", str(tmp_path / "cache"))
    rng = random.Random(0)
    words = [w for w in TINY_VOCAB_WORDS if not w.startswith("[")]
    docs = [" ".join(rng.choice(words) for _ in range(rng.randint(4, 20))) for _ in range(1500)]
    corpus = tmp_path / "docs.txt"
    corpus.write_text("\n".join(docs) + "\n", encoding="utf-8")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield {"corpus": str(corpus), "out": tmp_path / "sae", "cache": tmp_path / "acts"}
    torch.set_num_threads(threads)


def make_config(setup: dict[str, Any], **overrides: Any) -> TrainConfig:
    settings: dict[str, Any] = {
        "model": "tiny-llama",
        "hook_name": HOOK,
        "corpus": setup["corpus"],
        "context_size": 16,
        "model_batch_size": 8,
        "architecture": "topk",
        "expansion_factor": 4,
        "k": 4,
        "batch_size": 128,
        "training_tokens": 128 * 30,
        "eval_tokens": 256,
        "buffer_tokens": 1024,
        "lr": 3e-3,
        "device": "cpu",
        "cache_dir": setup["cache"],
        "out": setup["out"],
        "log_every": 10,
    }
    settings.update(overrides)
    return TrainConfig(**settings)


def test_train_sae_writes_a_saelens_folder_and_reuses_it(tiny_setup: dict[str, Any]) -> None:
    config = make_config(tiny_setup)
    result = train_sae(config, progress=False)
    out = tiny_setup["out"]
    assert result.out == out and not result.reused
    assert result.sae.d_in == 32 and result.sae.d_sae == 128
    assert result.log is not None and result.log.n_tokens == config.training_tokens
    assert result.eval is not None and result.eval.n_tokens == 256
    assert result.eval.explained_variance > 0.2
    cfg = json.loads((out / "cfg.json").read_text())
    assert cfg["architecture"] == "topk" and cfg["k"] == 4
    meta = cfg["metadata"]
    assert meta["model_name"] == "tiny-llama" and meta["hook_name"] == HOOK
    assert meta["dataset_path"] == tiny_setup["corpus"] and meta["context_size"] == 16
    assert meta["training_tokens"] == config.training_tokens and meta["seed"] == config.seed
    assert meta["eval"]["n_tokens"] == 256
    sae = load_sae(out)
    x_ND = torch.randn(8, 32)
    torch.testing.assert_close(sae.encode(x_ND), result.sae.encode(x_ND))

    again = train_sae(config, progress=False)
    assert again.reused and again.log is not None and again.log.n_steps == result.log.n_steps
    assert again.sae.fingerprint() == result.sae.fingerprint()

    with pytest.raises(ConfigError, match="different config"):
        train_sae(make_config(tiny_setup, seed=7), progress=False)
    replaced = train_sae(make_config(tiny_setup, seed=7, overwrite=True), progress=False)
    assert not replaced.reused
    assert replaced.sae.fingerprint() != result.sae.fingerprint()
