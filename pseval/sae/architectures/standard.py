"""Standard (ReLU) SAE: ``relu(sae_in @ W_enc + b_enc)``."""

from __future__ import annotations

import torch

from pseval.sae.architectures.base import Block, SAEArchitecture, register_architecture
from pseval.sae.config import SAEConfig, StandardSAEConfig


class StandardSAE(SAEArchitecture):
    """ReLU of the affine pre-activations."""

    @classmethod
    def activate(
        cls, cfg: SAEConfig, pre_NB: torch.Tensor, sae_in_ND: torch.Tensor, block: Block, in_place: bool
    ) -> torch.Tensor:
        return pre_NB.relu_() if in_place else pre_NB.relu()


register_architecture("standard", StandardSAE, StandardSAEConfig)
