"""JumpReLU training with the rectangle-kernel straight-through estimators."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from pseval.training.architectures.base import StepOutput, TrainingSAE, _dense_metrics, _mse
from pseval.training.config import TrainConfig


def _rectangle(x: Tensor) -> Tensor:
    return ((x > -0.5) & (x < 0.5)).to(x.dtype)


class _JumpReLU(torch.autograd.Function):
    """``x * H(x - θ)``; gradient ``H(x - θ)`` to x and the rectangle-kernel pseudo-derivative to θ."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, threshold: Tensor, bandwidth: float) -> Tensor:
        ctx.save_for_backward(x, threshold)
        ctx.bandwidth = bandwidth
        return x * (x > threshold).to(x.dtype)

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor, Tensor, None]:  # type: ignore[override]
        x, threshold = ctx.saved_tensors
        bandwidth = ctx.bandwidth
        grad_x = (x > threshold).to(grad_out.dtype) * grad_out
        grad_threshold = (-(threshold / bandwidth) * _rectangle((x - threshold) / bandwidth) * grad_out).sum(
            dim=0
        )
        return grad_x, grad_threshold, None


class _Step(torch.autograd.Function):
    """Heaviside ``H(x - θ)``; no gradient to x, the rectangle-kernel pseudo-derivative to θ."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, threshold: Tensor, bandwidth: float) -> Tensor:
        ctx.save_for_backward(x, threshold)
        ctx.bandwidth = bandwidth
        return (x > threshold).to(x.dtype)

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> tuple[None, Tensor, None]:  # type: ignore[override]
        x, threshold = ctx.saved_tensors
        bandwidth = ctx.bandwidth
        grad_threshold = (-(1.0 / bandwidth) * _rectangle((x - threshold) / bandwidth) * grad_out).sum(dim=0)
        return None, grad_threshold, None


class JumpReLUTrainingSAE(TrainingSAE):
    """JumpReLU SAE (Rajamanoharan et al. 2024): learned per-latent log-thresholds and an L0 penalty.

    The decoder is kept at unit norm: the L0 penalty does not depend on activation size, so the
    constraint costs nothing and keeps activations comparable across latents.
    """

    architecture = "jumprelu"
    unit_norm_decoder = True
    scaled_encoder_init = True
    threshold_parameters = ("log_threshold",)

    def __init__(self, d_in: int, d_sae: int, config: TrainConfig, generator: torch.Generator) -> None:
        super().__init__(d_in, d_sae, config, generator)
        self.log_threshold = nn.Parameter(torch.full((d_sae,), math.log(config.jumprelu_init_threshold)))
        self.bandwidth = config.jumprelu_bandwidth

    @property
    def threshold(self) -> Tensor:
        """Per-latent thresholds (always positive)."""
        return self.log_threshold.exp()

    def activation_parameters(self) -> dict[str, Tensor]:
        return {"threshold": self.threshold}

    def sparsity_coefficient(self) -> float:
        return self.config.l0_coefficient

    def training_step(self, x_ND: Tensor, coefficient: float, dead_F: Tensor | None) -> StepOutput:
        pre_NF = self.pre_acts(x_ND)
        threshold_F = self.threshold.to(pre_NF.dtype)
        feats_NF = _JumpReLU.apply(pre_NF, threshold_F, self.bandwidth)
        recon_ND = feats_NF @ self.W_dec + self.b_dec
        mse = _mse(recon_ND, x_ND)
        l0_per_input = _Step.apply(pre_NF, threshold_F, self.bandwidth).sum(dim=-1)
        aux = coefficient * l0_per_input.mean()
        l0, fire_counts_F = _dense_metrics(feats_NF.detach())
        return StepOutput(mse + aux, mse.detach(), l0, aux.detach(), fire_counts_F)

    def _raw_inference_state(self) -> dict[str, Tensor]:
        state = super()._raw_inference_state()
        state["threshold"] = self.threshold.detach()
        return state
