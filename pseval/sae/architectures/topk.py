"""TopK SAE: keep the k largest pre-activations of each input, ReLU them, zeros elsewhere.

The selection spans the whole dictionary, so the kernel's block output is the pre-activations (times the
decoder row norms when ``rescale_acts_by_decoder_norm``), and the rule is applied at full width by
:meth:`TopKSAE.select_rows` or across blocks by a streaming top-k (:func:`pseval.sae.lazy.feature_blocks`).
"""

from __future__ import annotations

import torch

from pseval.sae.architectures.base import Block, SAEArchitecture, affine, register_architecture
from pseval.sae.config import SAEConfig, TopKSAEConfig


def topk_activation(pre_NF: torch.Tensor, k: int) -> torch.Tensor:
    """SAELens ``TopK``: keep the k largest pre-activations of each row, ReLU them, zero the rest."""
    values, indices = torch.topk(pre_NF, k=k, dim=-1, sorted=False)
    out = torch.zeros_like(pre_NF)
    return out.scatter(-1, indices, values.relu())


def rescales_by_decoder_norm(cfg: SAEConfig) -> bool:
    """Whether pre-activations are multiplied by the decoder row norms before the selection."""
    return isinstance(cfg, TopKSAEConfig) and cfg.rescale_acts_by_decoder_norm


class TopKSAE(SAEArchitecture):
    """Affine pre-activations (optionally decoder-norm rescaled) ranked per input."""

    @classmethod
    def block_tensors(cls, cfg: SAEConfig) -> tuple[str, ...]:
        names = super().block_tensors(cfg)
        return (*names, "W_dec") if rescales_by_decoder_norm(cfg) else names

    @classmethod
    def pre_activations(
        cls, cfg: SAEConfig, sae_in_ND: torch.Tensor, block: Block, out_NB: torch.Tensor | None = None
    ) -> torch.Tensor:
        pre_NB = affine(sae_in_ND, block["W_enc"], block["b_enc"], out_NB)
        if not rescales_by_decoder_norm(cfg):
            return pre_NB
        norms_B = block["W_dec"].norm(dim=-1)
        return pre_NB.mul_(norms_B) if out_NB is not None else pre_NB * norms_B

    @classmethod
    def activate(
        cls, cfg: SAEConfig, pre_NB: torch.Tensor, sae_in_ND: torch.Tensor, block: Block, in_place: bool
    ) -> torch.Tensor:
        return pre_NB  # the selection needs every latent: select_rows or a streaming top-k

    @classmethod
    def row_top_k(cls, cfg: SAEConfig) -> int | None:
        assert isinstance(cfg, TopKSAEConfig)
        return cfg.k

    @classmethod
    def select_rows(cls, cfg: SAEConfig, codes_NF: torch.Tensor) -> torch.Tensor:
        assert isinstance(cfg, TopKSAEConfig)
        return topk_activation(codes_NF, cfg.k)


register_architecture("topk", TopKSAE, TopKSAEConfig)
