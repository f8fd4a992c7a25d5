"""Gated SAE training: a binary gate and a ReLU magnitude sharing the encoder."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pseval.sae.architectures import gated_activation
from pseval.training.architectures.base import (
    StepOutput,
    TrainingSAE,
    _dense_metrics,
    _mse,
    _project,
    _weighted_l1,
)
from pseval.training.config import TrainConfig


class GatedTrainingSAE(TrainingSAE):
    """Gated SAE (Rajamanoharan et al. 2024): a binary gate and a ReLU magnitude sharing ``W_enc``.

    Loss = MSE + l1 * ||relu(π_gate)||₁ (weighted by decoder norms) + the reconstruction of the input
    from relu(π_gate) through a detached decoder, which trains the gate path that the Heaviside blocks.
    Decoder rows are kept at unit norm, as in the paper: with free norms the L1 term keeps shrinking
    them while ``r_mag`` compensates, and the gate drifts open (L0 grows, reconstruction degrades).
    """

    architecture = "gated"
    unit_norm_decoder = True
    scaled_encoder_init = True

    def __init__(self, d_in: int, d_sae: int, config: TrainConfig, generator: torch.Generator) -> None:
        super().__init__(d_in, d_sae, config, generator)
        del self.b_enc
        self.b_gate = nn.Parameter(torch.zeros(d_sae))
        self.b_mag = nn.Parameter(torch.zeros(d_sae))
        self.r_mag = nn.Parameter(torch.zeros(d_sae))

    def _paths(self, x_ND: Tensor) -> tuple[Tensor, Tensor]:
        proj_NF = _project(x_ND, self.b_dec, self.W_enc)
        return proj_NF + self.b_gate, proj_NF * self.r_mag.exp() + self.b_mag

    def encode(self, x_ND: Tensor) -> Tensor:
        # Both paths in training's order of operations, then the gated kernel's activation rule.
        return gated_activation(*self._paths(x_ND))

    def sparsity_coefficient(self) -> float:
        return self.config.l1_coefficient

    def training_step(self, x_ND: Tensor, coefficient: float, dead_F: Tensor | None) -> StepOutput:
        pi_gate_NF, pi_mag_NF = self._paths(x_ND)
        feats_NF = gated_activation(pi_gate_NF, pi_mag_NF)
        recon_ND = feats_NF @ self.W_dec + self.b_dec
        mse = _mse(recon_ND, x_ND)
        gate_NF = F.relu(pi_gate_NF)
        l1 = _weighted_l1(gate_NF, self.W_dec)
        via_gate_ND = gate_NF @ self.W_dec.detach() + self.b_dec.detach()
        aux = coefficient * l1 + _mse(via_gate_ND, x_ND)
        l0, fire_counts_F = _dense_metrics(feats_NF.detach())
        return StepOutput(mse + aux, mse.detach(), l0, aux.detach(), fire_counts_F)

    def _raw_inference_state(self) -> dict[str, Tensor]:
        return {
            "W_enc": self.W_enc.detach(),
            "b_gate": self.b_gate.detach(),
            "b_mag": self.b_mag.detach(),
            "r_mag": self.r_mag.detach(),
            "W_dec": self.W_dec.detach(),
            "b_dec": self.b_dec.detach(),
        }
