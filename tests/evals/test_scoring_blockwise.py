"""Block-wise scoring equals the dense computation: codes, PS-Eval metrics, details, random control, lazy files."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import pseval.metrics.blockwise as blockwise_module
import pseval.sae.lazy as lazy_module
from pseval.errors import SAEError
from pseval.evals.config import PSEvalConfig
from pseval.evals.scoring import (
    RANDOM_SAE_METRICS,
    PromptActivations,
    encode_all,
    score_codes,
    score_sae,
    score_stats,
)
from pseval.metrics.blockwise import code_stats
from pseval.sae.config import config_from_dict
from pseval.sae.lazy import InMemoryBlocks, RandomBlocks, SafetensorsBlocks, feature_blocks, select_topk
from pseval.sae.model import RANDOM_SEED_BLOCK, SAE
from pseval.sae.source import SAESource, TensorRef
from tests.helpers import tiny_loaded

D_IN, D_SAE, N_PROMPTS = 32, 200, 64
HOOK = "blocks.1.hook_resid_post"
ARCHS: dict[str, dict[str, Any]] = {
    "standard": {},
    "topk": {"k": 12},
    "topk_rescaled": {"k": 12, "rescale_acts_by_decoder_norm": True},
    "batchtopk": {"k": 6},
    "jumprelu": {},
    "gated": {},
}


def make_sae(name: str, seed: int = 0, d_sae: int = D_SAE, **fields: Any) -> SAE:
    extra = dict(ARCHS[name])
    cfg = config_from_dict(
        {
            "architecture": "topk" if name.startswith("topk") else name,
            "d_in": D_IN,
            "d_sae": d_sae,
            "hook_name": HOOK,
            **extra,
            **fields,
        }
    )
    sae = SAE.create_random(cfg, seed=seed, random_biases=True)
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        sae.W_dec.mul_(0.5 + torch.rand(d_sae, 1, generator=gen))
        if "threshold" in cfg.extra_parameters:
            sae.threshold.mul_(0.2)
    return sae


def make_data(n_prompts: int = N_PROMPTS, seed: int = 0) -> PromptActivations:
    gen = torch.Generator().manual_seed(seed)
    acts = torch.randn(n_prompts, D_IN, generator=gen) * 2
    pairs_idx = [(i, (i * 7 + 3) % n_prompts) for i in range(n_prompts)]
    labels = np.array([i % 2 for i in range(n_prompts)])
    pairs = [
        SimpleNamespace(
            id=f"p{i}", word=f"w{i % 5}", pos="N", context_1="a", context_2="b", span_1=[0, 1], span_2=[0, 1]
        )
        for i in range(n_prompts)
    ]
    return PromptActivations({HOOK: acts}, pairs_idx, labels, pairs, n_forward_passes=0)


CONFIG = PSEvalConfig(bootstrap_resamples=200, interpret_tokens=0, topk_overlap_k=8)


def _blocks_cat(blocks: Any, acts: torch.Tensor, fold: bool, size: int) -> torch.Tensor:
    return torch.cat([f for _, f in feature_blocks(blocks, acts, fold, block_size=size)], dim=1)


@pytest.mark.parametrize("name", list(ARCHS))
@pytest.mark.parametrize("norm", ["none", "constant_norm_rescale", "layer_norm"])
@pytest.mark.parametrize("apply_b_dec", [True, False])
def test_feature_blocks_equal_encode(name: str, norm: str, apply_b_dec: bool) -> None:
    sae = make_sae(name, normalize_activations=norm, apply_b_dec_to_input=apply_b_dec)
    acts = make_data().acts[HOOK]
    for fold in (False, True):
        if fold and name == "topk":
            with pytest.raises(SAEError):
                encode_all(sae, acts, fold)
            with pytest.raises(SAEError):
                _blocks_cat(InMemoryBlocks(sae), acts, fold, 48)
            continue
        dense = encode_all(sae, acts, fold)
        for size in (16, 48, D_SAE):
            assert torch.equal(_blocks_cat(InMemoryBlocks(sae), acts, fold, size), dense), (fold, size)


@pytest.mark.parametrize("name", list(ARCHS))
def test_score_stats_equal_dense_score_codes(name: str) -> None:
    sae = make_sae(name)
    data = make_data()
    acts = data.acts[HOOK]
    dense = score_codes(encode_all(sae, acts), data, CONFIG, sae)
    for size in (16, 64):
        stats = code_stats(
            feature_blocks(InMemoryBlocks(sae), acts, block_size=size), N_PROMPTS, data.pair_index, 8
        )
        assert score_stats(stats, data, CONFIG, InMemoryBlocks(sae)) == dense


@pytest.mark.parametrize("gathered", [1, 64])
@pytest.mark.parametrize("name", list(ARCHS))
def test_row_and_pair_chunks_do_not_change_the_stats(
    name: str, gathered: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Blocks encoded and scored in chunks of a few rows and pairs give the dense numbers exactly, whether
    new top-k candidates are gathered directly or their rows ranked by topk."""
    monkeypatch.setattr(blockwise_module, "CANDIDATES_GATHERED", gathered)
    monkeypatch.setattr(blockwise_module, "STATS_ROWS", 7)
    monkeypatch.setattr(blockwise_module, "STATS_ELEMENTS", 7)
    monkeypatch.setattr(lazy_module, "ROW_CHUNK", 16)
    sae = make_sae(name)
    data = make_data()
    acts = data.acts[HOOK]
    dense = score_codes(encode_all(sae, acts), data, CONFIG, sae)
    stats = code_stats(
        feature_blocks(InMemoryBlocks(sae), acts, block_size=24), N_PROMPTS, data.pair_index, 8
    )
    assert score_stats(stats, data, CONFIG, InMemoryBlocks(sae)) == dense


def test_a_later_latent_tied_with_the_kth_value_does_not_displace_it() -> None:
    feats = torch.zeros(2, 12)
    feats[0, [1, 2, 9]] = torch.tensor([3.0, 1.0, 1.0])  # latent 9 ties the k-th (latent 2) in a later block
    feats[1, [4, 10]] = torch.tensor([1.0, 2.0])  # latent 10 beats the k-th (the 0 placeholder) later on
    blocks = [(s, feats[:, s : s + 4]) for s in range(0, 12, 4)]
    stats = code_stats(blocks, 2, [(0, 1)], 2)
    assert stats.topk_ids_PK[0].tolist() == [1, 2]
    assert stats.topk_ids_PK[1].tolist() == [10, 4]
    assert stats.top_index_P.tolist() == [1, 10]
    assert stats.top_value_P.tolist() == [3.0, 2.0]


def test_top1_and_topk_ties_go_to_the_lower_latent_across_blocks() -> None:
    feats = torch.zeros(3, 40)
    feats[0, [5, 17, 33]] = 2.0  # a three-way tie for the top latent, across blocks
    feats[1, [3, 21, 22, 39]] = torch.tensor([1.0, 3.0, 1.0, 1.0])  # ties at the k-th value
    data = make_data(3)
    data.pair_index = [(0, 1), (1, 2)]
    stats = code_stats(((s, feats[:, s : s + 16]) for s in range(0, 40, 16)), 3, data.pair_index, 2)
    assert stats.top_index_P.tolist() == [5, 21, -1]
    assert sorted(stats.topk_ids_PK[0].tolist()) == [5, 17]
    assert sorted(stats.topk_ids_PK[1].tolist()) == [3, 21]
    dense = code_stats([(0, feats)], 3, data.pair_index, 2)
    assert torch.equal(dense.top_index_P, stats.top_index_P)
    assert torch.equal(dense.topk_ids_PK.sort().values[:2], stats.topk_ids_PK.sort().values[:2])


def test_select_topk_is_stable_on_ties() -> None:
    values = torch.tensor([[1.0, 2.0, 2.0, 2.0, 0.5]])
    ids = torch.tensor([[9, 7, 3, 5, 1]])
    vals, chosen = select_topk(values, ids, 2)
    assert chosen.tolist() == [[3, 5]] and vals.tolist() == [[2.0, 2.0]]


@pytest.mark.parametrize("random_biases", [False, True])
@pytest.mark.parametrize("name", ["jumprelu", "gated", "topk"])
def test_random_blocks_equal_create_random(name: str, random_biases: bool) -> None:
    d_sae = 2 * RANDOM_SEED_BLOCK + 100
    cfg = make_sae(name, d_sae=d_sae).cfg
    sae = SAE.create_random(cfg, seed=3, random_biases=random_biases)
    blocks = RandomBlocks(cfg, seed=3, random_biases=random_biases)
    names = ["W_enc", "W_dec", *cfg.extra_parameters]
    for start, end in [(0, 1000), (1000, RANDOM_SEED_BLOCK + 7), (RANDOM_SEED_BLOCK + 7, d_sae)]:
        got = blocks.block(start, end, names)
        want = InMemoryBlocks(sae).block(start, end, names)
        for key in names:
            assert torch.equal(got[key], want[key]), (key, start)
    assert torch.equal(blocks.b_dec(), sae.b_dec.detach())
    assert torch.equal(
        blocks.latent_rows("W_enc", [5, 8000]), InMemoryBlocks(sae).latent_rows("W_enc", [5, 8000])
    )


def test_random_control_equals_the_dense_random_sae() -> None:
    loaded = tiny_loaded(d_model=D_IN)
    sae = make_sae("jumprelu", d_sae=RANDOM_SEED_BLOCK + 50)
    data = make_data()
    config = CONFIG.model_copy(update={"seed": 4})
    categories, _, _ = score_sae(loaded, sae, HOOK, data, config, held_out=data, baselines_by_hook={})
    random_sae = SAE.create_random(sae.cfg, seed=4)
    with (
        torch.no_grad()
    ):  # the control's input is centred as the SAE's: by the SAE's b_dec, which it subtracts
        random_sae.b_dec.copy_(sae.b_dec)
    dense, _, _ = score_codes(
        encode_all(random_sae, data.acts[HOOK]), data, config.model_copy(update={"bootstrap_resamples": 0})
    )
    control = categories["baseline_random_sae"]
    assert sae.cfg.apply_b_dec_to_input and control["centring"] == "sae_b_dec"
    assert {k: control[k] for k in RANDOM_SAE_METRICS} == {k: dense["ps_eval"][k] for k in RANDOM_SAE_METRICS}


def _write_saelens(sae: SAE, folder: Path) -> None:
    from pseval.sae.formats import save_sae

    save_sae(sae, folder)


def test_lazy_saelens_source_scores_like_the_loaded_sae(tmp_path: Path) -> None:
    from pseval.sae.formats.loader import open_sae

    loaded = tiny_loaded(d_model=D_IN)
    sae = make_sae("jumprelu")
    _write_saelens(sae, tmp_path / "sae")
    source = open_sae(tmp_path / "sae")
    assert source.tensors is not None
    data = make_data()
    want = score_sae(loaded, source.load(), HOOK, data, CONFIG, held_out=data, baselines_by_hook={})
    got = score_sae(loaded, source, HOOK, data, CONFIG, held_out=data, baselines_by_hook={})
    assert got == want


def test_top_encoder_columns_are_kept_from_the_encode_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pairs' top-1 encoder columns come from the slabs the encode read, equal to a second read."""
    monkeypatch.setattr(lazy_module, "SLAB_ELEMENTS", D_IN * 20)  # several slabs
    sae = make_sae("jumprelu")
    _write_saelens(sae, tmp_path / "sae")
    from pseval.sae.formats.loader import open_sae

    lazy = SafetensorsBlocks(open_sae(tmp_path / "sae"))
    acts = make_data().acts[HOOK]
    stats = code_stats(
        feature_blocks(lazy, acts, block_size=16), N_PROMPTS, [(0, 1)], 4, after_block=lazy.keep_top_columns
    )
    ids = [int(i) for i in stats.top_index_P if int(i) >= 0]
    assert len(set(ids)) > 3

    def no_second_read(*_args: Any) -> None:
        raise AssertionError("W_enc read again")

    want = InMemoryBlocks(sae).latent_rows("W_enc", ids)
    monkeypatch.setattr(lazy, "_strided_latents", no_second_read)
    assert torch.equal(lazy.latent_rows("W_enc", ids), want)


@pytest.mark.parametrize("transposed", [False, True])
@pytest.mark.parametrize("rows_per_read", [3, None])
def test_safetensors_blocks_read_both_orientations(
    tmp_path: Path, transposed: bool, rows_per_read: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    if rows_per_read is not None:  # strided latents read a few file rows at a time, column slabs 20 wide
        monkeypatch.setattr(lazy_module, "BLOCK_ELEMENTS", D_SAE * rows_per_read)
        monkeypatch.setattr(lazy_module, "SLAB_ELEMENTS", D_IN * 20)
    sae = make_sae("gated")
    tensors = {k: v.detach().clone().contiguous() for k, v in sae.state_dict().items()}
    if transposed:
        tensors["W_enc"] = tensors["W_enc"].T.contiguous()
        tensors["W_dec"] = tensors["W_dec"].T.contiguous()
    path = tmp_path / "w.safetensors"
    save_file(tensors, str(path))
    refs = {k: TensorRef(path, k, transposed and k in ("W_enc", "W_dec")) for k in tensors}
    source = SAESource(spec=str(path), cfg=sae.cfg, format="test", path=path, tensors=refs)
    lazy = SafetensorsBlocks(source)
    names = ["W_enc", "W_dec", *sae.cfg.extra_parameters]
    for start, end in [(0, 13), (13, 150), (150, 160), (155, 170), (170, D_SAE)]:
        got = lazy.block(start, end, names)
        want = InMemoryBlocks(sae).block(start, end, names)
        for key in names:
            assert torch.equal(got[key], want[key]), key
    ids = [7, 3, 199, 7]
    for key in ("W_enc", "W_dec"):
        assert torch.equal(lazy.latent_rows(key, ids), InMemoryBlocks(sae).latent_rows(key, ids))
    acts = make_data().acts[HOOK]
    assert torch.equal(_blocks_cat(lazy, acts, True, 64), encode_all(sae, acts, True))


def test_gemma_scope_2_folder_is_scored_lazily(tmp_path: Path) -> None:
    from pseval.sae.formats.loader import open_sae

    sae = make_sae("jumprelu")
    folder = tmp_path / "resid_post" / "layer_1_width_16k_l0_small"
    folder.mkdir(parents=True)
    names = {"W_enc": "w_enc", "W_dec": "w_dec", "b_enc": "b_enc", "b_dec": "b_dec", "threshold": "threshold"}
    save_file(
        {names[k]: v.detach().contiguous() for k, v in sae.state_dict().items()},
        str(folder / "params.safetensors"),
    )
    (folder / "config.json").write_text(json.dumps({"architecture": "jump_relu"}))
    source = open_sae(folder, hook_name=HOOK)
    assert source.tensors is not None
    loaded = tiny_loaded(d_model=D_IN)
    data = make_data()
    want = score_sae(loaded, source.load(), HOOK, data, CONFIG)
    got = score_sae(loaded, source, HOOK, data, CONFIG)
    assert got == want


def _saved_source(tmp_path: Path, sae: SAE, tensors: dict[str, torch.Tensor]) -> SAESource:
    """A lazily readable source over ``tensors`` saved in one safetensors file, with ``sae``'s config."""
    path = tmp_path / "w.safetensors"
    save_file(tensors, str(path))
    refs = {k: TensorRef(path, k) for k in tensors}
    return SAESource(spec=str(path), cfg=sae.cfg, format="test", path=path, tensors=refs)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_lazy_read_refuses_nan(tmp_path: Path, bad: float) -> None:
    sae = make_sae("standard")
    tensors = {k: v.detach().clone().contiguous() for k, v in sae.state_dict().items()}
    tensors["W_enc"][3, 150] = bad
    source = _saved_source(tmp_path, sae, tensors)
    blocks = SafetensorsBlocks(source)
    with pytest.raises(SAEError, match="W_enc"):
        list(feature_blocks(blocks, make_data().acts[HOOK], block_size=64))


def test_lazy_read_accepts_finite_weights_whose_sum_overflows(tmp_path: Path) -> None:
    sae = make_sae("standard")
    tensors = {k: v.detach().clone().contiguous() for k, v in sae.state_dict().items()}
    tensors["W_enc"][3, 150:152] = 3e38  # finite, but their float32 sum is inf
    source = _saved_source(tmp_path, sae, tensors)
    got = SafetensorsBlocks(source).block(140, 160, ["W_enc"])["W_enc"]
    assert torch.equal(got, tensors["W_enc"][:, 140:160])


@pytest.mark.parametrize("n_tokens", [0, 3])
def test_logit_lens_tokens_sets_or_skips_the_logit_lens(n_tokens: int) -> None:
    loaded = tiny_loaded(d_model=D_IN)
    sae = make_sae("jumprelu")
    config = CONFIG.model_copy(update={"logit_lens_tokens": n_tokens})
    _, details, unstructured = score_sae(loaded, sae, HOOK, make_data(), config)
    if n_tokens == 0:
        assert "logit_lens" not in unstructured
        return
    lens = unstructured["logit_lens"]
    assert set(lens) == {str(d.latent_1) for d in details} | {str(d.latent_2) for d in details} - {"-1"}
    assert all(len(tokens) == 3 for tokens in lens.values())


def test_logit_lens_tokens_at_its_default_leaves_the_result_identity_unchanged() -> None:
    assert "logit_lens_tokens" not in PSEvalConfig().identity()
    assert PSEvalConfig(logit_lens_tokens=0).identity()["logit_lens_tokens"] == 0
