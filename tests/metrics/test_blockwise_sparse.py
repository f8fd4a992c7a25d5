"""Blocks of codes scored over their nonzero entries give the dense numbers exactly, sparse or not."""

from __future__ import annotations

import pytest
import torch

import pseval.metrics.blockwise as blockwise_module
from pseval.evals.scoring import encode_all, score_codes, score_stats
from pseval.metrics.blockwise import code_stats
from pseval.sae.lazy import InMemoryBlocks, feature_blocks
from tests.evals.test_scoring_blockwise import ARCHS, CONFIG, HOOK, N_PROMPTS, make_data, make_sae


def _sparse_sae(name: str):  # type: ignore[no-untyped-def]
    """A test SAE whose codes are mostly zero (as real codes are): its thresholds or biases raised to the
    95th percentile of its pre-activations on the test prompts."""
    sae = make_sae(name)
    with torch.no_grad():
        pre = make_data().acts[HOOK] @ sae.W_enc
        cut = float(pre.flatten().quantile(0.95))
        if "threshold" in sae.cfg.extra_parameters:
            sae.threshold.fill_(cut)
        elif "b_enc" in sae.cfg.extra_parameters:
            sae.b_enc.sub_(cut)
    return sae


@pytest.mark.parametrize("share", [0.0, 1.0])  # never / always over the nonzero entries
@pytest.mark.parametrize("gathered", [1, 64])
@pytest.mark.parametrize("name", list(ARCHS))
def test_sparse_and_dense_block_paths_equal_the_dense_scores(
    name: str, share: float, gathered: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(blockwise_module, "SPARSE_SHARE", share)
    monkeypatch.setattr(blockwise_module, "CANDIDATES_GATHERED", gathered)
    data = make_data()
    acts = data.acts[HOOK]
    for sae in (make_sae(name), _sparse_sae(name)):
        dense = score_codes(encode_all(sae, acts), data, CONFIG, sae)
        for size in (16, 64):
            stats = code_stats(
                feature_blocks(InMemoryBlocks(sae), acts, block_size=size), N_PROMPTS, data.pair_index, 8
            )
            assert score_stats(stats, data, CONFIG, InMemoryBlocks(sae)) == dense, (name, size)


def test_the_sparse_path_keeps_the_stats_of_the_dense_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Statistic by statistic (L0, active latents, top-k, squared norms and pair products) on sparse codes."""
    sae = _sparse_sae("jumprelu")
    data = make_data()
    acts = data.acts[HOOK]
    runs = {}
    for share in (0.0, 1.0):
        monkeypatch.setattr(blockwise_module, "SPARSE_SHARE", share)
        runs[share] = code_stats(
            feature_blocks(InMemoryBlocks(sae), acts, block_size=24), N_PROMPTS, data.pair_index, 8
        )
    dense, sparse = runs[0.0], runs[1.0]
    assert 0 < float(dense.l0_P.float().mean()) < 20  # the codes are sparse
    for field in ("top_index_P", "top_value_P", "topk_values_PK", "topk_ids_PK", "l0_P"):
        assert torch.equal(getattr(dense, field), getattr(sparse, field)), field
    assert dense.n_latents_active == sparse.n_latents_active
    torch.testing.assert_close(dense.sq_norm_P, sparse.sq_norm_P, rtol=1e-12, atol=0)
    torch.testing.assert_close(dense.pair_dot_N, sparse.pair_dot_N, rtol=1e-12, atol=0)


def test_the_small_passes_restore_the_thread_count() -> None:
    before = torch.get_num_threads()
    data = make_data()
    code_stats(
        feature_blocks(InMemoryBlocks(_sparse_sae("jumprelu")), data.acts[HOOK], block_size=24),
        N_PROMPTS,
        data.pair_index,
        8,
    )
    assert torch.get_num_threads() == before
