"""The architecture registry: one encode kernel per architecture, equal block by block and at full width.

Every registered architecture's kernel run over several blocks of latents gives exactly (bit for bit) the
codes of ``SAE.encode``, in place or not; a toy architecture registered from outside the package becomes
loadable, savable and scorable block-wise through the registry alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar, Literal

import pytest
import torch
from pydantic import Field

from pseval.metrics.blockwise import code_stats
from pseval.sae import SAE, config_from_dict, load_sae, open_sae, save_sae
from pseval.sae.architectures import (
    ARCHITECTURE_CLASSES,
    Block,
    SAEArchitecture,
    architecture_of,
    register_architecture,
    sae_input,
)
from pseval.sae.config import ARCHITECTURES, SAE_CONFIGS, SAEConfig
from pseval.sae.lazy import InMemoryBlocks, SafetensorsBlocks, feature_blocks

D_IN, D_SAE = 24, 300
BOUNDS = [(0, 64), (64, 171), (171, 236), (236, 300)]  # uneven blocks, none narrower than 64 latents
FIELDS = {"topk": {"k": 9}, "batchtopk": {"k": 4.0}}


def _random_sae(architecture: str, normalize: str = "none", **fields: object) -> SAE:
    cfg = config_from_dict(
        {
            "architecture": architecture,
            "d_in": D_IN,
            "d_sae": D_SAE,
            "normalize_activations": normalize,
            **FIELDS.get(architecture, {}),
            **fields,
        }
    )
    sae = SAE.create_random(cfg, seed=5, random_biases=True)
    with torch.no_grad():  # decoder norms away from 1, so rescaling and folding matter
        sae.W_dec.mul_(torch.rand(D_SAE, 1, generator=torch.Generator().manual_seed(6)) + 0.5)
    return sae


def _inputs(n: int = 70) -> torch.Tensor:
    return torch.randn(n, D_IN, generator=torch.Generator().manual_seed(7)) * 2


def test_every_builtin_architecture_is_registered_with_its_config_class() -> None:
    for name in ARCHITECTURES:
        assert ARCHITECTURE_CLASSES[name].config_class is SAE_CONFIGS[name]
        assert ARCHITECTURE_CLASSES[name].name == name


@pytest.mark.parametrize("normalize", ["none", "layer_norm"])
@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_kernel_over_blocks_equals_full_width_encode(architecture: str, normalize: str) -> None:
    sae = _random_sae(architecture, normalize)
    cfg, kernel = sae.cfg, architecture_of(sae.cfg)
    x_ND = _inputs()
    with torch.no_grad():
        expected_NF = sae.encode(x_ND)
        sae_in_ND, _ = sae_input(cfg, sae.b_dec, x_ND)
        names = kernel.block_tensors(cfg)
        blocks = [InMemoryBlocks(sae).block(start, stop, names) for start, stop in BOUNDS]
        out_of_place = torch.cat([kernel.encode_block(cfg, sae_in_ND, block) for block in blocks], dim=1)
        in_place = torch.cat(
            [
                kernel.encode_block(cfg, sae_in_ND, b, torch.empty(len(x_ND), b["W_enc"].shape[1]))
                for b in blocks
            ],
            dim=1,
        )
        codes_NF = kernel.select_rows(cfg, out_of_place)
    assert torch.equal(out_of_place, in_place)
    assert torch.equal(codes_NF, expected_NF)
    assert torch.equal(torch.signbit(codes_NF), torch.signbit(expected_NF))
    assert (kernel.row_top_k(cfg) is None) == (architecture != "topk")
    streamed = torch.cat([feats for _, feats in feature_blocks(InMemoryBlocks(sae), x_ND, block_size=64)], 1)
    assert torch.equal(streamed, expected_NF)


def test_topk_kernel_rescales_by_the_block_decoder_norms() -> None:
    sae = _random_sae("topk", rescale_acts_by_decoder_norm=True)
    kernel = architecture_of(sae.cfg)
    assert "W_dec" in kernel.block_tensors(sae.cfg)
    x_ND = _inputs()
    with torch.no_grad():
        plain = sae.clone()
        plain.cfg.rescale_acts_by_decoder_norm = False
        assert not torch.equal(sae.encode(x_ND), plain.encode(x_ND))
        streamed = torch.cat([f for _, f in feature_blocks(InMemoryBlocks(sae), x_ND, block_size=100)], 1)
        assert torch.equal(streamed, sae.encode(x_ND))


# ---------------------------------------------------------------------------------------------- toy


class ShiftedReLUSAEConfig(SAEConfig):
    """ReLU with a constant shift: ``relu(pre - shift)``."""

    extra_parameters: ClassVar[tuple[str, ...]] = ("b_enc",)

    architecture: Literal["shifted_relu"] = Field(default="shifted_relu", description="Architecture tag.")
    shift: float = Field(default=0.25, description="Subtracted from every pre-activation before the ReLU.")


class ShiftedReLUSAE(SAEArchitecture):
    @classmethod
    def activate(
        cls, cfg: SAEConfig, pre_NB: torch.Tensor, sae_in_ND: torch.Tensor, block: Block, in_place: bool
    ) -> torch.Tensor:
        assert isinstance(cfg, ShiftedReLUSAEConfig)
        return pre_NB.sub_(cfg.shift).relu_() if in_place else (pre_NB - cfg.shift).relu()


@pytest.fixture
def shifted_relu() -> Iterator[None]:
    register_architecture("shifted_relu", ShiftedReLUSAE, ShiftedReLUSAEConfig)
    yield
    del ARCHITECTURE_CLASSES["shifted_relu"], SAE_CONFIGS["shifted_relu"]


def test_unregistered_architecture_is_refused() -> None:
    with pytest.raises(Exception, match="unknown SAE architecture 'shifted_relu'"):
        config_from_dict({"architecture": "shifted_relu", "d_in": D_IN, "d_sae": D_SAE})


@pytest.mark.usefixtures("shifted_relu")
def test_registered_toy_architecture_round_trips_and_scores_blockwise(tmp_path: object) -> None:
    sae = _random_sae("shifted_relu", shift=0.5)
    x_ND = _inputs()
    with torch.no_grad():
        pre_NF = sae.encode_pre_act(x_ND)
        expected_NF = sae.encode(x_ND)
    assert torch.equal(expected_NF, (pre_NF - 0.5).relu())
    assert 0 < int((expected_NF > 0).sum()) < expected_NF.numel()

    folder = save_sae(sae, tmp_path / "toy")  # type: ignore[operator]
    loaded = load_sae(folder)
    assert loaded.cfg.architecture == "shifted_relu" and loaded.cfg.shift == 0.5  # type: ignore[attr-defined]
    assert loaded.fingerprint() == sae.fingerprint()
    with torch.no_grad():
        assert torch.equal(loaded.encode(x_ND), expected_NF)

    source = open_sae(folder)
    blocks = list(feature_blocks(SafetensorsBlocks(source), x_ND, block_size=64))
    assert [start for start, _ in blocks] == [0, 64, 128, 192]  # the last 44 latents join the block before
    assert torch.equal(torch.cat([feats for _, feats in blocks], 1), expected_NF)

    folded = list(feature_blocks(SafetensorsBlocks(source), x_ND, fold_decoder_norms=True, block_size=64))
    with torch.no_grad():
        folded_NF = sae.fold_decoder_norms().encode(x_ND)
    assert not torch.equal(folded_NF, expected_NF)
    assert torch.equal(torch.cat([feats for _, feats in folded], 1), folded_NF)

    pairs = [(i, i + 1) for i in range(0, len(x_ND) - 1, 2)]
    stats = code_stats(iter(blocks), len(x_ND), pairs, k=3)
    best_P = expected_NF.argmax(dim=1)
    active_P = expected_NF.amax(dim=1) > 0
    assert torch.equal(stats.top_index_P[active_P], best_P[active_P])
    assert torch.equal(stats.l0_P, (expected_NF > 0).sum(1))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_the_in_place_jumprelu_rule_is_the_out_of_place_one_on_every_kind_of_value(
    dtype: torch.dtype,
) -> None:
    from pseval.sae.architectures.jumprelu import jumprelu_activation, jumprelu_activation_

    values = [float("nan"), float("-inf"), float("inf"), -0.0, 0.0, -1.5, -0.25, 0.25, 0.5, 1.0, 3.0]
    thresholds = torch.tensor([-1.0, -0.25, 0.0, 0.25, 0.5, 2.0], dtype=dtype)
    pre_NF = torch.tensor(values, dtype=dtype).repeat_interleave(len(thresholds)).reshape(len(values), -1)
    want = jumprelu_activation(pre_NF, thresholds)
    got = jumprelu_activation_(pre_NF.clone(), thresholds)
    assert got.dtype == want.dtype == dtype
    assert torch.equal(got.isnan(), want.isnan())
    assert torch.equal(got.nan_to_num(7.0), want.nan_to_num(7.0))
    assert torch.equal(got.nan_to_num(7.0).signbit(), want.nan_to_num(7.0).signbit())
