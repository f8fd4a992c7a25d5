"""The standard ReLU SAE with a decoder-norm-weighted L1 penalty."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from pseval.training.architectures.base import StepOutput, TrainingSAE, _dense_metrics, _mse, _weighted_l1


class StandardTrainingSAE(TrainingSAE):
    """ReLU SAE with an L1 penalty weighted by decoder-row norms (SAELens ``standard``)."""

    architecture = "standard"

    def sparsity_coefficient(self) -> float:
        return self.config.l1_coefficient

    def training_step(self, x_ND: Tensor, coefficient: float, dead_F: Tensor | None) -> StepOutput:
        feats_NF = F.relu(self.pre_acts(x_ND))
        recon_ND = feats_NF @ self.W_dec + self.b_dec
        mse = _mse(recon_ND, x_ND)
        l1 = _weighted_l1(feats_NF, self.W_dec)
        aux = coefficient * l1
        l0, fire_counts_F = _dense_metrics(feats_NF.detach())
        return StepOutput(mse + aux, mse.detach(), l0, aux.detach(), fire_counts_F)
