"""A freshly initialised training SAE does not start by reconstructing worse than predicting the mean.

With a unit-norm decoder and the encoder as its plain transpose, an SAE whose active set is not capped at k
(JumpReLU, gated) fires about half its latents at the start, and its reconstruction is then about
d_sae / (2 d_in) times the centred input: FVU far above 1 before the first step, which short training runs
never undo.
"""

from __future__ import annotations

import pytest
import torch

from pseval.training.architectures import build_training_sae
from pseval.training.config import TrainConfig

D_IN, D_SAE, N = 64, 512, 2048


def _fvu_at_init(architecture: str) -> float:
    config = TrainConfig(architecture=architecture, d_sae=D_SAE, seed=0)
    module = build_training_sae(config, D_IN, D_SAE, torch.Generator().manual_seed(0))
    gen = torch.Generator().manual_seed(1)
    mean_D = torch.randn(D_IN, generator=gen) * 3
    x_ND = mean_D + torch.randn(N, D_IN, generator=gen)  # norm about sqrt(d_in), as the trainer scales it
    with torch.no_grad():
        module.b_dec.copy_(mean_D)  # the trainer starts b_dec at the batch's centre
        recon_ND = module.decode(module.encode(x_ND))
    return float((recon_ND - x_ND).pow(2).sum() / (x_ND - x_ND.mean(0)).pow(2).sum())


# The architectures whose active set is set by a threshold, not capped at k latents per input.
@pytest.mark.parametrize("architecture", ["standard", "jumprelu", "gated"])
def test_first_reconstruction_is_no_worse_than_the_mean(architecture: str) -> None:
    assert _fvu_at_init(architecture) < 1.0
