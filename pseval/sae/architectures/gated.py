"""Gated SAE: ``(sae_in @ W_enc + b_gate > 0) * relu(sae_in @ (W_enc * exp(r_mag)) + b_mag)``."""

from __future__ import annotations

import torch

from pseval.sae.architectures.base import Block, SAEArchitecture, affine, register_architecture
from pseval.sae.config import GatedSAEConfig, SAEConfig
from pseval.sae.threads import matmul_threads


def gated_activation(gate_pre_NF: torch.Tensor, magnitude_pre_NF: torch.Tensor) -> torch.Tensor:
    """The magnitude path's ReLU where the gate path is open (``gate_pre > 0``), zero elsewhere."""
    return (gate_pre_NF > 0).to(magnitude_pre_NF.dtype) * magnitude_pre_NF.relu()


class GatedSAE(SAEArchitecture):
    """A binary gate path and a ReLU magnitude path sharing ``W_enc`` (no ``b_enc``)."""

    @classmethod
    def pre_activations(
        cls, cfg: SAEConfig, sae_in_ND: torch.Tensor, block: Block, out_NB: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The magnitude path (SAELens' ``hook_sae_acts_pre`` of gated SAEs)."""
        return affine(sae_in_ND, block["W_enc"] * block["r_mag"].exp(), block["b_mag"], out_NB)

    @classmethod
    def scaled_with_activations(cls, cfg: SAEConfig) -> tuple[str, ...]:
        return ("b_gate", "b_mag")  # r_mag is a log-ratio between the paths: unchanged by the fold

    @classmethod
    def activate(
        cls, cfg: SAEConfig, pre_NB: torch.Tensor, sae_in_ND: torch.Tensor, block: Block, in_place: bool
    ) -> torch.Tensor:
        with matmul_threads():
            gate_pre_NB = sae_in_ND @ block["W_enc"]
        gate_pre_NB = gate_pre_NB + block["b_gate"]
        if not in_place:
            return gated_activation(gate_pre_NB, pre_NB)
        # gate * relu(pre) with the product's operands swapped: multiplication is exact and commutative.
        return pre_NB.relu_().mul_(gate_pre_NB > 0)


register_architecture("gated", GatedSAE, GatedSAEConfig)
