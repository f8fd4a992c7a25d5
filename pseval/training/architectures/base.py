"""What every trainable SAE shares: parameters and their initialisation, constraints, export, freezing.

Inputs seen by these modules are already scaled by the trainer's activation-normalisation factor;
:meth:`TrainingSAE.inference_state` folds that factor back out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from pseval.sae.architectures import architecture_of
from pseval.sae.config import SAE_CONFIGS, SAEConfig
from pseval.training.config import TrainConfig


@dataclass
class StepOutput:
    """What one training forward pass produces; every field but ``loss`` is detached."""

    loss: Tensor  #: scalar, the total loss to back-propagate
    mse: Tensor  #: scalar, squared error summed over d_in, averaged over the batch
    l0: Tensor  #: scalar, mean active latents per input
    aux: Tensor  #: scalar, the sparsity or auxiliary loss term (already weighted)
    fire_counts_F: Tensor  #: [d_sae] float, inputs of the batch on which each latent fired


class TrainingSAE(nn.Module):
    """Common parameters (``W_enc``, ``b_enc``, ``W_dec``, ``b_dec``), initialisation and export.

    Inputs seen by these modules are already scaled by the trainer's activation-normalisation factor;
    :meth:`inference_state` folds that factor back out.
    """

    architecture: ClassVar[str]
    #: Decoder rows are kept at unit norm after every step (and the parallel gradient is removed).
    unit_norm_decoder: ClassVar[bool] = False
    #: Parameters whose learning rate is multiplied by ``threshold_lr_scale``.
    threshold_parameters: ClassVar[tuple[str, ...]] = ()
    #: The encoder starts as ``decoder_init_norm`` times the unit-norm decoder's transpose. For a unit-norm
    #: decoder whose active set is not capped at k latents (JumpReLU, gated) the plain transpose starts with
    #: a reconstruction several times the size of the input: about half the latents fire, and the sum of
    #: d_sae / 2 projections onto random unit directions is (d_sae / 2d_in) times the input. The smaller
    #: encoder gives the small first reconstruction of SAELens's 0.1-norm rows (same directions).
    scaled_encoder_init: ClassVar[bool] = False

    W_enc: nn.Parameter
    b_enc: nn.Parameter
    W_dec: nn.Parameter
    b_dec: nn.Parameter

    def __init__(self, d_in: int, d_sae: int, config: TrainConfig, generator: torch.Generator) -> None:
        super().__init__()
        self.d_in = d_in
        self.d_sae = d_sae
        self.config = config
        # Kaiming-uniform directions, rows rescaled to a fixed norm; the encoder starts as the transpose
        # of the decoder (Anthropic's April 2024 update, SAELens' default).
        bound = math.sqrt(6.0 / d_in)
        W_dec_FD = (torch.rand(d_sae, d_in, generator=generator) * 2 - 1) * bound
        init_norm = 1.0 if self.unit_norm_decoder else config.decoder_init_norm
        W_dec_FD = W_dec_FD / W_dec_FD.norm(dim=1, keepdim=True) * init_norm
        self.W_dec = nn.Parameter(W_dec_FD)
        encoder_scale = config.decoder_init_norm if self.scaled_encoder_init else 1.0
        self.W_enc = nn.Parameter((W_dec_FD.T * encoder_scale).contiguous())
        self.b_enc = nn.Parameter(torch.zeros(d_sae))
        self.b_dec = nn.Parameter(torch.zeros(d_in))

    # --- forward ------------------------------------------------------------------------------------
    def pre_acts(self, x_ND: Tensor) -> Tensor:
        """Encoder pre-activations (``b_dec`` subtracted from the input first, as in SAELens)."""
        return _project(x_ND, self.b_dec, self.W_enc, self.b_enc)

    def encode(self, x_ND: Tensor) -> Tensor:
        """Inference-time latents (dense): the exported architecture's activation rule, from its kernel in
        :mod:`pseval.sae.architectures`, applied to the training pre-activations (:meth:`pre_acts`)."""
        cfg = self.inference_config()
        kernel = architecture_of(cfg)
        pre_NF = self.pre_acts(x_ND)
        sae_in_ND = x_ND - self.b_dec
        codes_NF = kernel.activate(cfg, pre_NF, sae_in_ND, self.activation_parameters(), in_place=False)
        return kernel.select_rows(cfg, codes_NF)

    def activation_parameters(self) -> dict[str, Tensor]:
        """The per-latent tensors the activation rule reads besides the pre-activations (e.g. thresholds)."""
        return {}

    def inference_config(self) -> SAEConfig:
        """The architecture fields of the exported SAE's config (float32, raw inputs, ``b_dec`` subtracted)."""
        cfg_cls = SAE_CONFIGS[self.inference_architecture()]
        return cfg_cls(d_in=self.d_in, d_sae=self.d_sae, **self.inference_config_fields())

    def decode(self, feats_NF: Tensor) -> Tensor:
        """Reconstruction from dense latents."""
        return feats_NF @ self.W_dec + self.b_dec

    def training_step(self, x_ND: Tensor, coefficient: float, dead_F: Tensor | None) -> StepOutput:
        """Forward pass and loss on one batch.

        ``coefficient`` is the (warmed-up) sparsity coefficient for L1/L0 architectures; ``dead_F`` is the
        mask of dead latents for AuxK, or None when no latent is dead.
        """
        raise NotImplementedError

    # --- constraints --------------------------------------------------------------------------------
    @torch.no_grad()
    def before_optimizer_step(self) -> None:
        """Remove the gradient component parallel to each (unit-norm) decoder row."""
        if self.unit_norm_decoder and self.W_dec.grad is not None:
            grad_FD = self.W_dec.grad
            parallel_F1 = (grad_FD * self.W_dec).sum(dim=1, keepdim=True)
            grad_FD.sub_(parallel_F1 * self.W_dec)

    @torch.no_grad()
    def after_optimizer_step(self, out: StepOutput) -> None:
        """Renormalise unit-norm decoders (Adam's update is not exactly tangent); a frozen one stays as is."""
        if self.unit_norm_decoder and self.W_dec.requires_grad:
            self.W_dec.div_(self.W_dec.norm(dim=1, keepdim=True).clamp_min(1e-12))

    def sparsity_coefficient(self) -> float:
        """The configured L1/L0 coefficient before warm-up (0 for architectures without one)."""
        return 0.0

    def param_groups(self, lr: float) -> list[dict[str, Any]]:
        """Adam parameter groups: thresholds may get a larger learning rate."""
        trainable = [(n, p) for n, p in self.named_parameters() if p.requires_grad]
        normal = [p for n, p in trainable if n not in self.threshold_parameters]
        groups: list[dict[str, Any]] = [{"params": normal, "lr": lr, "lr_scale": 1.0}]
        special = [p for n, p in trainable if n in self.threshold_parameters]
        if special:
            scale = self.config.jumprelu_threshold_lr_scale
            groups.append({"params": special, "lr": lr * scale, "lr_scale": scale})
        return groups

    # --- export -------------------------------------------------------------------------------------
    def inference_architecture(self) -> str:
        """The architecture tag of the exported SAE."""
        return self.architecture

    def inference_config_fields(self) -> dict[str, Any]:
        """Architecture-specific fields of the exported SAE config (e.g. ``k``)."""
        return {}

    def inference_metadata(self) -> dict[str, Any]:
        """Entries for the exported SAE's metadata beyond the trainer's own (e.g. Matryoshka widths)."""
        return {}

    # --- frozen parts (trained controls) ------------------------------------------------------------
    def frozen_parameters(self) -> tuple[str, ...]:
        """Parameters kept at their random initialisation under ``config.freeze``."""
        if self.config.freeze == "decoder":
            return ("W_dec",)
        if self.config.freeze == "encoder":
            return tuple(n for n in ("W_enc", "b_enc", "b_gate", "b_mag", "r_mag") if hasattr(self, n))
        return ()

    def apply_freeze(self) -> None:
        """Stop gradients to the frozen parameters (they then never leave their initial values)."""
        for name in self.frozen_parameters():
            getattr(self, name).requires_grad_(False)

    def _raw_inference_state(self) -> dict[str, Tensor]:
        return {
            "W_enc": self.W_enc.detach(),
            "b_enc": self.b_enc.detach(),
            "W_dec": self.W_dec.detach(),
            "b_dec": self.b_dec.detach(),
        }

    @torch.no_grad()
    def inference_state(self, input_scale: float) -> dict[str, Tensor]:
        """SAELens-named float32 tensors for raw (unscaled) inputs, decoder rows folded to unit norm.

        Training saw ``x * input_scale``. Dividing every bias and threshold by ``input_scale`` gives the
        same latent pattern on raw inputs, with activations ``1 / input_scale`` as large, which together
        with the unchanged decoder reconstructs raw activations. Folding decoder norms multiplies each
        latent's encoder column, biases and threshold by its decoder-row norm and divides the row by it:
        reconstruction and active set are unchanged (ReLU, JumpReLU and the gate are positively homogeneous).
        """
        state = {name: t.detach().float().clone() for name, t in self._raw_inference_state().items()}
        if not self.unit_norm_decoder:  # unit-norm decoders are renormalised after every step already
            norms_F = state["W_dec"].norm(dim=1).clamp_min(1e-12)
            state["W_dec"] /= norms_F[:, None]
            state["W_enc"] *= norms_F[None, :]
            for name in ("b_enc", "b_gate", "b_mag", "threshold"):
                if name in state:
                    state[name] *= norms_F
        for name in ("b_enc", "b_gate", "b_mag", "threshold", "b_dec"):
            if name in state:
                state[name] /= input_scale
        return {name: t.contiguous() for name, t in state.items()}


def _project(x_ND: Tensor, b_dec_D: Tensor, W_enc_DF: Tensor, bias_F: Tensor | None = None) -> Tensor:
    """``(x - b_dec) @ W_enc (+ bias)``, with ``b_dec``'s gradient taken through a vector, not a matmul.

    Written plainly, autograd gets ``b_dec``'s gradient from the gradient of the whole centred input,
    ``grad_pre @ W_enc.T``: a third [N, d_sae] × [d_sae, d_in] matmul per step. Here the matmul sees a
    detached ``b_dec`` and a zero-valued term ``(b_dec.detach() - b_dec) @ W_enc``, folded into the bias of
    one ``addmm``, carries the gradient ``-grad_pre.sum(0) @ W_enc.T`` at the cost of a vector-matrix
    product. The value is unchanged (the term is exactly zero) and so is every gradient.
    """
    b_dec_const_D = b_dec_D.detach()
    shift_F = (b_dec_const_D - b_dec_D) @ W_enc_DF
    if bias_F is not None:
        shift_F = shift_F + bias_F
    return torch.addmm(shift_F, x_ND - b_dec_const_D, W_enc_DF)


def _dense_metrics(feats_NF: Tensor) -> tuple[Tensor, Tensor]:
    # Latents are non-negative, so sign() is the firing indicator; ten times faster than count_nonzero.
    fire_counts_F = feats_NF.sign().sum(dim=0, dtype=torch.float32)
    l0 = fire_counts_F.sum() / feats_NF.shape[0]
    return l0, fire_counts_F


def _weighted_l1(acts_NF: Tensor, W_dec_FD: Tensor) -> Tensor:
    """Mean over inputs of ``sum_i acts_i * ||W_dec_i||`` for non-negative ``acts``.

    Summing over the batch first keeps the penalty (and its gradient) at vector cost.
    """
    return acts_NF.sum(dim=0) @ W_dec_FD.norm(dim=1) / acts_NF.shape[0]


def _mse(recon_ND: Tensor, x_ND: Tensor) -> Tensor:
    return (recon_ND.float() - x_ND.float()).pow(2).sum(dim=-1).mean()
