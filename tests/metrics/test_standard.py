"""Standard SAE metrics against hand-computed values, and CE loss recovered on a tiny model."""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pseval.data.corpus import iter_context_batches
from pseval.metrics.standard import (
    ReconstructionAccumulator,
    StandardMetrics,
    downstream_metrics,
    reconstruction_metrics,
    standard_metrics,
)
from tests.helpers import TINY_VOCAB_WORDS, tiny_loaded

HOOK = "blocks.1.hook_resid_post"


class DiagonalSAE(nn.Module):
    """d_in = 2, d_sae = 3: feats = relu(x0, x1, 0), x̂ = (0.5 f0, f1). Latent 2 is dead."""

    def __init__(self) -> None:
        super().__init__()
        self.W_enc = nn.Parameter(torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]))
        self.W_dec = nn.Parameter(torch.tensor([[0.5, 0.0], [0.0, 1.0], [0.0, 0.0]]))

    def encode(self, x_ND: torch.Tensor) -> torch.Tensor:
        return (x_ND @ self.W_enc).relu()

    def decode(self, feats_NF: torch.Tensor) -> torch.Tensor:
        return feats_NF @ self.W_dec


class IdentitySAE(nn.Module):
    """A perfect reconstruction: latents are the input itself."""

    def encode(self, x_ND: torch.Tensor) -> torch.Tensor:
        return x_ND

    def decode(self, feats_NF: torch.Tensor) -> torch.Tensor:
        return feats_NF


class RecordingSAE(IdentitySAE):
    """Identity, but remembers how many rows it was asked to reconstruct."""

    def __init__(self) -> None:
        super().__init__()
        self.rows = 0

    def encode(self, x_ND: torch.Tensor) -> torch.Tensor:
        self.rows += x_ND.shape[0]
        return x_ND


class ZeroSAE(IdentitySAE):
    def decode(self, feats_NF: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(feats_NF)


X = torch.tensor([[2.0, 1.0], [4.0, 3.0], [6.0, -1.0]])
# x̂ = (1, 1), (2, 3), (3, 0); errors (1, 0), (2, 0), (3, -1); mean x = (4, 1)


def test_reconstruction_metrics_by_hand() -> None:
    m = reconstruction_metrics(DiagonalSAE(), X)
    assert m["n_tokens"] == 3 and m["d_sae"] == 3
    assert m["mse"] == pytest.approx(15 / 6)
    # variance about the mean: deviations (-2, 0), (0, 2), (2, -2) -> 16 (not Σ‖x‖² = 67)
    assert m["fvu"] == pytest.approx(15 / 16)
    assert m["explained_variance"] == pytest.approx(1 / 16)
    assert m["l0"] == pytest.approx(5 / 3)
    assert m["l0_normalised"] == pytest.approx(5 / 9)
    assert m["dead_fraction"] == pytest.approx(1 / 3)
    assert m["dense_fraction"] == pytest.approx(2 / 3)
    cosines = [3 / math.sqrt(10), 17 / (5 * math.sqrt(13)), 6 / math.sqrt(37)]
    assert m["cosine"] == pytest.approx(sum(cosines) / 3)
    ratios = [math.sqrt(2 / 5), math.sqrt(13) / 5, 3 / math.sqrt(37)]
    assert m["l2_ratio"] == pytest.approx(sum(ratios) / 3)
    assert m["relative_reconstruction_bias"] == pytest.approx(24 / 38)
    assert reconstruction_metrics(DiagonalSAE(), X, dense_threshold=0.7)["dense_fraction"] == pytest.approx(
        1 / 3
    )


def test_reconstruction_metrics_stream_over_batches() -> None:
    whole = reconstruction_metrics(DiagonalSAE(), X)
    assert reconstruction_metrics(DiagonalSAE(), [X[:1], X[1:]]) == pytest.approx(whole)
    assert reconstruction_metrics(DiagonalSAE(), X, batch_size=2) == pytest.approx(whole)
    assert reconstruction_metrics(DiagonalSAE(), iter([X[i : i + 1] for i in range(3)])) == pytest.approx(
        whole
    )


def test_fvu_is_stable_with_a_large_mean() -> None:
    gen = torch.Generator().manual_seed(0)
    x = 1e4 + torch.randn(5000, 8, generator=gen, dtype=torch.float64)
    x_hat = x + 0.1 * torch.randn(5000, 8, generator=gen, dtype=torch.float64)
    accumulator = ReconstructionAccumulator()
    for start in range(0, 5000, 333):
        accumulator.update(
            x[start : start + 333], x_hat[start : start + 333], torch.ones(min(333, 5000 - start), 4)
        )
    expected = float(((x - x_hat) ** 2).sum() / ((x - x.mean(0)) ** 2).sum())
    assert accumulator.compute()["fvu"] == pytest.approx(expected, rel=1e-9)


def test_identity_reconstruction_is_perfect() -> None:
    m = reconstruction_metrics(IdentitySAE(), X)
    assert m["mse"] == 0 and m["fvu"] == 0 and m["explained_variance"] == 1
    assert m["cosine"] == pytest.approx(1) and m["relative_reconstruction_bias"] == pytest.approx(1)


def test_pseval_sae_runs_through_the_metrics() -> None:
    from pseval.sae.config import TopKSAEConfig
    from pseval.sae.model import SAE

    sae = SAE.create_random(TopKSAEConfig(d_in=16, d_sae=64, k=4), seed=0)
    m = reconstruction_metrics(sae, torch.randn(100, 16))
    assert m["l0"] == pytest.approx(4, abs=0.5) and m["d_sae"] == 64


# ------------------------------------------------------------------------------------------------ downstream


@pytest.fixture(scope="module")
def loaded() -> Any:
    return tiny_loaded("llama", n_layers=3, d_model=32)


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory: pytest.TempPathFactory) -> str:
    words = [w for w in TINY_VOCAB_WORDS if not w.startswith("[")]
    rng = random.Random(0)
    docs = [" ".join(rng.choice(words) for _ in range(rng.randint(4, 20))) for _ in range(3000)]
    path = tmp_path_factory.mktemp("corpus") / "docs.txt"
    path.write_text("\n".join(docs) + "\n", encoding="utf-8")
    return str(path)


def contexts(loaded: Any, corpus_file: str, n_tokens: int = 120) -> list[Any]:
    return list(iter_context_batches(loaded.tokenizer, corpus_file, "holdout", 16, 4, n_tokens))


def test_identity_sae_recovers_all_the_loss(loaded: Any, corpus_file: str) -> None:
    batches = contexts(loaded, corpus_file)
    m = downstream_metrics(loaded, IdentitySAE(), HOOK, batches)
    assert m["ce_loss_recovered"] == pytest.approx(1.0, abs=1e-9)
    assert m["kl_div_with_sae"] == pytest.approx(0.0, abs=1e-9)
    assert m["ce_loss_with_sae"] == pytest.approx(m["ce_loss_clean"], abs=1e-9)
    assert m["ce_loss_zero_ablation"] != pytest.approx(m["ce_loss_clean"], abs=1e-3)
    assert m["kl_div_zero_ablation"] > 0 and m["kl_div_score"] == pytest.approx(1.0)

    # clean CE by hand: predictions whose position and target are both text tokens
    losses, count = 0.0, 0
    for b in batches:
        logits = loaded.model(input_ids=b.input_ids, attention_mask=b.attention_mask).logits[:, :-1]
        valid = b.token_mask[:, :-1] & b.token_mask[:, 1:]
        ce = F.cross_entropy(logits.transpose(1, 2), b.input_ids[:, 1:], reduction="none")
        losses += float(ce[valid].sum())
        count += int(valid.sum())
    assert m["n_predictions"] == count
    assert m["ce_loss_clean"] == pytest.approx(losses / count, rel=1e-5)


def test_zero_sae_recovers_nothing_and_specials_are_not_patched(loaded: Any, corpus_file: str) -> None:
    batches = contexts(loaded, corpus_file)
    m = downstream_metrics(loaded, ZeroSAE(), HOOK, batches)
    assert m["ce_loss_recovered"] == pytest.approx(0.0, abs=1e-6)
    assert m["ce_loss_with_sae"] == pytest.approx(m["ce_loss_zero_ablation"], rel=1e-6)
    recorder = RecordingSAE()
    downstream_metrics(loaded, recorder, HOOK, batches)
    assert recorder.rows == sum(int(b.token_mask.sum()) for b in batches)  # BOS/EOS kept their value
    assert recorder.rows < sum(b.input_ids.numel() for b in batches)


def test_standard_metrics_end_to_end(loaded: Any, corpus_file: str, tmp_path: Path) -> None:
    result = standard_metrics(loaded, IdentitySAE(), HOOK, corpus=corpus_file, n_tokens=200, context_size=16)
    assert isinstance(result, StandardMetrics)
    assert result.n_tokens == 200 and result.split == "holdout" and result.d_sae == 32
    assert result.fvu == pytest.approx(0.0, abs=1e-12) and result.ce_loss_recovered == pytest.approx(1.0)
    assert result.kl_div_with_sae == pytest.approx(0.0, abs=1e-9)
    skipped = standard_metrics(loaded, IdentitySAE(), HOOK, corpus=corpus_file, n_tokens=50, n_tokens_ce=0)
    assert skipped.ce_loss_clean is None and skipped.n_tokens == 50
    assert set(StandardMetrics.model_fields) >= {"mse", "fvu", "l0", "dead_fraction", "kl_div_with_sae"}
    assert all(field.description for field in StandardMetrics.model_fields.values())


def test_standard_metrics_many_equals_one_by_one(tmp_cache: Path) -> None:
    """Sharing the forward passes across SAEs and hooks changes no number."""
    from pseval.metrics.standard import standard_metrics_many
    from pseval.sae.config import config_from_dict
    from pseval.sae.model import SAE
    from tests.helpers import tiny_loaded

    loaded = tiny_loaded("llama", n_layers=3, d_model=32)
    items = []
    for i, (arch, hook) in enumerate(
        [
            ("topk", "blocks.0.hook_resid_post"),
            ("standard", "blocks.2.hook_attn_out"),
            ("topk", "blocks.2.hook_attn_out"),
        ]
    ):
        fields: dict[str, object] = {"architecture": arch, "d_in": 32, "d_sae": 64, "hook_name": hook}
        if arch == "topk":
            fields["k"] = 4
        items.append((f"sae{i}", SAE.create_random(config_from_dict(fields), seed=i), hook))
    many = standard_metrics_many(loaded, items, n_tokens=300, n_tokens_ce=200, context_size=32, batch_size=4)
    from pseval.data.corpus import iter_context_batches
    from pseval.metrics.standard import downstream_metrics, reconstruction_metrics
    from pseval.models.hooks import run_with_cache

    def contexts(n: int):  # type: ignore[no-untyped-def]
        return iter_context_batches(loaded.tokenizer, "bundled", "holdout", 32, 4, n, None)

    for name, sae, hook in items:
        rows = torch.cat(
            [
                run_with_cache(loaded.model, b.input_ids, b.attention_mask, [hook])[hook][b.token_mask]
                for b in contexts(300)
            ]
        )[:300]
        expected = {
            **reconstruction_metrics(sae, rows),
            **downstream_metrics(loaded, sae, hook, contexts(200)),
        }
        got = many[name].model_dump()
        for key, value in expected.items():
            if isinstance(value, float):
                assert got[key] == pytest.approx(value, rel=1e-5, abs=1e-6), key
            else:
                assert got[key] == value, key
