"""Fixtures for the SAE tests: tiny random SAEs of every architecture."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

from pseval.sae import SAE, config_from_dict

D_IN = 16
D_SAE = 48
ARCH_EXTRA: dict[str, dict[str, Any]] = {
    "standard": {},
    "topk": {"k": 6},
    "batchtopk": {"k": 6},
    "jumprelu": {},
    "gated": {},
}


def make_sae(architecture: str, seed: int = 0, **fields: Any) -> SAE:
    """A tiny SAE with random biases and non-unit decoder rows, so every code path matters."""
    cfg = config_from_dict(
        {
            "architecture": architecture,
            "d_in": D_IN,
            "d_sae": D_SAE,
            "hook_name": "blocks.3.hook_resid_post",
            "model_name": "tiny-model",
            **ARCH_EXTRA[architecture],
            **fields,
        }
    )
    sae = SAE.create_random(cfg, seed=seed, random_biases=True)
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        sae.W_dec.mul_(0.5 + torch.rand(D_SAE, 1, generator=gen, dtype=torch.float64).to(sae.W_dec.dtype))
    return sae


def random_acts(n: int = 32, seed: int = 0) -> torch.Tensor:
    """Random activations of width D_IN."""
    return torch.randn(n, D_IN, generator=torch.Generator().manual_seed(seed)) * 2


@pytest.fixture
def sae_factory() -> Callable[..., SAE]:
    return make_sae
