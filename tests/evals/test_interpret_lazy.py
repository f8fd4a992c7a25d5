"""Corpus statistics block by block from an SAE's safetensors files equal those of the loaded SAE."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file, save_file

import pseval.evals.interpret as interpret_module
from pseval.evals.interpret import corpus_latent_stats
from pseval.sae.config import config_from_dict
from pseval.sae.formats import save_sae
from pseval.sae.formats.loader import open_sae
from pseval.sae.lazy import InMemoryBlocks, SafetensorsBlocks, feature_blocks
from pseval.sae.model import SAE
from pseval.sae.source import SAESource
from tests.evals.test_interpret import HOOK, corpus_file, fabricate_cache, loaded, settings

__all__ = ["corpus_file", "loaded"]

N_ROWS, D_SAE = 350, 300


def make_sae(architecture: str) -> SAE:
    fields: dict[str, Any] = {"architecture": architecture, "d_in": 32, "d_sae": D_SAE, "hook_name": HOOK}
    if architecture == "topk":
        fields["k"] = 7  # codes depend on every latent: the top-k is taken across blocks
    sae = SAE.create_random(config_from_dict(fields), seed=1, random_biases=True)
    with torch.no_grad():
        sae.b_enc[5] = -1e4  # a latent that never fires
        if architecture == "jumprelu":
            sae.threshold.mul_(0.2)
    return sae


def saved_source(sae: SAE, folder: Path) -> SAESource:
    save_sae(sae, folder)
    source = open_sae(folder)
    assert source.tensors is not None
    return source


def repeat_rows(folder: Path, period: int) -> None:
    """Rewrite the cache's activations so row i equals row i % period: every activation is tied."""
    manifest = json.loads((folder / "manifest.json").read_text())
    acts = torch.cat([load_file(str(folder / s["file"]))["acts"] for s in manifest["shards"]])
    acts = acts[torch.arange(acts.shape[0]) % period].contiguous()
    start = 0
    for shard in manifest["shards"]:
        save_file({"acts": acts[start : start + shard["n_rows"]].contiguous()}, str(folder / shard["file"]))
        start += shard["n_rows"]


@pytest.fixture
def narrow_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks of 48 latents, so the 300 latents span several blocks (the default would take them all at once)."""
    monkeypatch.setattr(interpret_module, "feature_blocks", functools.partial(feature_blocks, block_size=48))


LATENTS = [5, 3, 299, 17, 3, -1, 150, 47, 48, 0, 200, 96]  # unsorted, repeated, across block edges


@pytest.mark.parametrize("architecture", ["jumprelu", "topk", "standard"])
@pytest.mark.parametrize("ties", [False, True])
def test_lazy_blocks_give_the_in_memory_statistics(
    loaded: Any, corpus_file: str, tmp_path: Path, architecture: str, ties: bool, narrow_blocks: None
) -> None:
    folder, _ = fabricate_cache(loaded, corpus_file, tmp_path, N_ROWS)
    if ties:
        repeat_rows(folder, period=40)  # each activation value comes back 8 or 9 times
    sae = make_sae(architecture)
    source = saved_source(sae, tmp_path / "sae")
    kwargs: dict[str, Any] = {"n_tokens": N_ROWS, "top_n": 5, "window": 3, "chunk_rows": 64}
    kwargs.update(settings(tmp_path, corpus_file))
    want = corpus_latent_stats(loaded, sae, HOOK, LATENTS, **kwargs)
    for blocks in (SafetensorsBlocks(source), InMemoryBlocks(sae)):
        got = corpus_latent_stats(loaded, blocks, HOOK, LATENTS, **kwargs)
        assert got == want
    assert want.firing_frequency["5"] == 0.0 and want.top_contexts["5"] == []
    fired = [lat for lat, contexts in want.top_contexts.items() if len(contexts) == 5]
    assert len(fired) >= 3  # the comparison covers full top-5 lists
    if ties:
        tied = [c for lat in fired for c in want.top_contexts[lat]]
        assert len({c.activation for c in tied}) < len(tied)  # ties were really there, and kept in order

    # a smaller request (a prefix of the cache) and all latents at once
    small = {**kwargs, "n_tokens": 120, "top_n": 2}
    every = list(range(D_SAE))
    lazy_small = corpus_latent_stats(loaded, SafetensorsBlocks(source), HOOK, every, **small)
    assert lazy_small == corpus_latent_stats(loaded, sae, HOOK, every, **small)


def test_lazy_blocks_with_folded_decoder_norms(
    loaded: Any, corpus_file: str, tmp_path: Path, narrow_blocks: None
) -> None:
    fabricate_cache(loaded, corpus_file, tmp_path, N_ROWS)
    sae = make_sae("jumprelu")
    with torch.no_grad():
        sae.W_dec.mul_(torch.linspace(0.5, 2.0, D_SAE)[:, None])
    source = saved_source(sae, tmp_path / "sae")
    kwargs: dict[str, Any] = {"n_tokens": N_ROWS, "chunk_rows": 100, "fold_decoder_norms": True}
    kwargs.update(settings(tmp_path, corpus_file))
    want = corpus_latent_stats(loaded, sae, HOOK, LATENTS, **kwargs)
    assert corpus_latent_stats(loaded, SafetensorsBlocks(source), HOOK, LATENTS, **kwargs) == want


def test_score_sae_interprets_a_lazy_source_without_loading_it(
    tmp_path: Path, tmp_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pseval.evals.config import PSEvalConfig
    from pseval.evals.scoring import score_sae
    from tests.evals.test_scoring_blockwise import make_data
    from tests.helpers import tiny_loaded

    model = tiny_loaded(d_model=32)
    sae = make_sae("jumprelu")
    source = saved_source(sae, tmp_path / "sae")
    data = make_data()
    config = PSEvalConfig(bootstrap_resamples=200, interpret_tokens=200, topk_overlap_k=8)
    want = score_sae(model, source.load(), HOOK, data, config)

    def refuse(*_args: Any, **_kwargs: Any) -> SAE:
        raise AssertionError("a lazily readable SAE was loaded whole")

    monkeypatch.setattr(SAESource, "load", refuse)
    got = score_sae(model, source, HOOK, data, config)
    assert got == want
    assert got[2]["top_contexts"] and got[0]["latent_frequency"]["n_latents"] == D_SAE
