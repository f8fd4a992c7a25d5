"""The trainer records how its contexts began (BOS, or the EOS standing in for it) in the SAE's config."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from pseval.training.trainer import train_sae
from tests.helpers import TINY_VOCAB_WORDS, tiny_loaded
from tests.training.test_trainer_e2e import make_config


@pytest.mark.parametrize("has_bos", [True, False])
def test_trained_sae_records_prepend_bos(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, has_bos: bool
) -> None:
    loaded = tiny_loaded("llama", n_layers=3, d_model=32)
    if not has_bos:
        loaded.tokenizer.bos_token = None  # the trainer falls back to EOS
    monkeypatch.setattr("pseval.models.loading.load_model", lambda *a, **k: loaded)
    monkeypatch.setenv("PSEVAL_CACHE", str(tmp_path / "cache"))
    rng = random.Random(0)
    words = [w for w in TINY_VOCAB_WORDS if not w.startswith("[")]
    corpus = tmp_path / "docs.txt"
    corpus.write_text("\n".join(" ".join(rng.choice(words) for _ in range(12)) for _ in range(400)) + "\n")
    setup: dict[str, Any] = {"corpus": str(corpus), "out": tmp_path / "sae", "cache": tmp_path / "acts"}
    train_sae(make_config(setup, training_tokens=128 * 4, eval_tokens=0), progress=False)
    meta = json.loads((tmp_path / "sae" / "cfg.json").read_text())["metadata"]
    assert meta["prepend_bos"] is True
    if has_bos:
        assert "bos_token_id" not in meta
    else:
        assert meta["bos_token_id"] == loaded.tokenizer.eos_token_id and meta["bos_token"] == "[EOS]"

    # Evaluation then builds this SAE's prompts with the same first token.
    from pseval.evals.config import PSEvalConfig
    from pseval.evals.regime import input_regime

    regime = input_regime(meta, PSEvalConfig())
    assert regime.prepend_bos is True
    assert regime.resolve_bos(loaded.tokenizer) == (
        loaded.tokenizer.bos_token_id if has_bos else loaded.tokenizer.eos_token_id
    )
