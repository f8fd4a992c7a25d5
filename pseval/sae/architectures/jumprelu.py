"""JumpReLU SAE: ``relu(pre) * (pre > threshold)`` with a learned per-latent threshold."""

from __future__ import annotations

import torch

from pseval.sae.architectures.base import Block, SAEArchitecture, register_architecture
from pseval.sae.config import JumpReLUSAEConfig, SAEConfig


def jumprelu_activation(pre_NF: torch.Tensor, threshold_F: torch.Tensor) -> torch.Tensor:
    """SAELens ``JumpReLUSAE.encode``: ``relu(pre) * (pre > threshold)``."""
    return pre_NF.relu() * (pre_NF > threshold_F).to(pre_NF.dtype)


def jumprelu_activation_(pre_NF: torch.Tensor, threshold_F: torch.Tensor) -> torch.Tensor:
    """:func:`jumprelu_activation` in place: the mask is taken before the ReLU overwrites ``pre``.

    The mask is written as 1.0/0.0 in ``pre``'s dtype, the same factor the out-of-place rule multiplies by (so
    every value, NaN and infinities included, comes out as it does there): a product of two float tensors takes
    about half as long as one by a bool mask, which is converted entry by entry."""
    above_NF = torch.gt(pre_NF, threshold_F, out=torch.empty_like(pre_NF))
    return pre_NF.relu_().mul_(above_NF)


class JumpReLUSAE(SAEArchitecture):
    """Per-latent thresholded ReLU (also the inference form of BatchTopK SAEs)."""

    @classmethod
    def activate(
        cls, cfg: SAEConfig, pre_NB: torch.Tensor, sae_in_ND: torch.Tensor, block: Block, in_place: bool
    ) -> torch.Tensor:
        rule = jumprelu_activation_ if in_place else jumprelu_activation
        return rule(pre_NB, block["threshold"])


register_architecture("jumprelu", JumpReLUSAE, JumpReLUSAEConfig)
