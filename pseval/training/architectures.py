"""Trainable SAE modules: one class per architecture, each with its forward pass and its loss.

These are training-time twins of :class:`pseval.sae.model.SAE`. They hold what only training needs (log
thresholds, running BatchTopK threshold, unit-norm decoder constraints, auxiliary losses) and export an
inference state dict in SAELens names (:meth:`TrainingSAE.inference_state`), folded so that the saved SAE
reads raw activations and has unit-norm decoder rows (a latent's activation is then the size of its
contribution to the reconstruction, which makes latents comparable and PS-Eval's argmax meaningful).

Losses follow SAELens/paper semantics: MSE is the squared error summed over ``d_in`` and averaged over
the batch; the standard L1 penalty weights each latent by its decoder-row norm; TopK adds Gao et al.'s AuxK
loss; JumpReLU uses the rectangle-kernel straight-through estimators of Rajamanoharan et al. (2024);
gated adds the auxiliary reconstruction of the gate path through a detached decoder.

Everything in a training step stays on the device: metrics are returned as tensors and only read back
(``.item()``) by the trainer when it logs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pseval.sae.architectures import architecture_of, gated_activation
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
        self.W_enc = nn.Parameter(W_dec_FD.T.clone().contiguous())
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


class _DecoderGradient(torch.autograd.Function):
    """Zero-valued term that gives ``W_dec`` the gradient of a sparse decode, ``latents.T @ grad_out``.

    ``embedding_bag``'s own weight gradient sorts the indices with an integer radix sort that stalls
    badly when CPU threads are contended; a sparse COO × dense product computes the same sums (bit for
    bit here) without sorting.
    """

    @staticmethod
    def forward(ctx: Any, rows_M: Tensor, cols_M: Tensor, vals_M: Tensor, W_dec_FD: Tensor, n: int) -> Tensor:
        ctx.save_for_backward(rows_M, cols_M, vals_M)
        ctx.d_sae = W_dec_FD.shape[0]
        ctx.n = n
        return W_dec_FD.new_zeros(n, W_dec_FD.shape[1])

    @staticmethod
    def backward(ctx: Any, grad_ND: Tensor) -> tuple[None, None, None, Tensor, None]:  # type: ignore[override]
        rows_M, cols_M, vals_M = ctx.saved_tensors
        latents_T_FN = torch.sparse_coo_tensor(
            torch.stack([cols_M, rows_M]),
            vals_M.to(grad_ND.dtype),
            (ctx.d_sae, ctx.n),
            check_invariants=False,  # indices come from top-k: in range by construction
        )
        return None, None, None, torch.sparse.mm(latents_T_FN, grad_ND), None


def _sparse_decode(idx_NK: Tensor, vals_NK: Tensor, W_dec_FD: Tensor) -> Tensor:
    """``sum_k vals[n, k] * W_dec[idx[n, k]]`` without materialising the dense [N, d_sae] latents.

    Forward and the gradient to ``vals`` go through ``embedding_bag`` (reads only the k selected decoder
    rows per input), the gradient to ``W_dec`` through :class:`_DecoderGradient`. This is what makes
    TopK training cheaper than the dense matmuls of the same shapes.
    """
    n, k = idx_NK.shape
    vals_NK = vals_NK.to(W_dec_FD.dtype)
    out_ND = F.embedding_bag(idx_NK, W_dec_FD.detach(), per_sample_weights=vals_NK, mode="sum")
    if W_dec_FD.requires_grad and torch.is_grad_enabled():
        rows_M = torch.arange(n, device=idx_NK.device).repeat_interleave(k)
        out_ND = out_ND + _DecoderGradient.apply(
            rows_M, idx_NK.reshape(-1), vals_NK.detach().reshape(-1), W_dec_FD, n
        )
    return out_ND


class TopKTrainingSAE(TrainingSAE):
    """TopK SAE (Gao et al. 2024): top-k pre-activations then ReLU, unit-norm decoder, AuxK loss."""

    architecture = "topk"
    unit_norm_decoder = True

    def __init__(self, d_in: int, d_sae: int, config: TrainConfig, generator: torch.Generator) -> None:
        super().__init__(d_in, d_sae, config, generator)
        self.k = config.k
        self.k_aux = min(config.aux_k or max(d_in // 2, 1), d_sae)

    def inference_config_fields(self) -> dict[str, Any]:
        return {"k": self.k}

    def _select(self, pre_NF: Tensor) -> tuple[Tensor, Tensor]:
        vals_NK, idx_NK = pre_NF.topk(self.k, dim=-1, sorted=False)
        return F.relu(vals_NK), idx_NK

    def training_step(self, x_ND: Tensor, coefficient: float, dead_F: Tensor | None) -> StepOutput:
        pre_NF = self.pre_acts(x_ND)
        vals_NK, idx_NK = self._select(pre_NF)
        recon_ND = _sparse_decode(idx_NK, vals_NK, self.W_dec) + self.b_dec
        return self._step_output(x_ND, pre_NF, recon_ND, dead_F, idx_NK, (vals_NK > 0).detach())

    def _step_output(
        self,
        x_ND: Tensor,
        pre_NF: Tensor,
        recon_ND: Tensor,
        dead_F: Tensor | None,
        latents: Tensor,
        active: Tensor,
    ) -> StepOutput:
        """MSE plus AuxK on the dead latents, and the step's statistics from the selected ``latents``
        (any shape) and whether each one fired (``active``, same shape)."""
        mse = _mse(recon_ND, x_ND)
        loss = mse
        aux = mse.new_zeros(())
        if dead_F is not None and self.config.aux_k_coefficient > 0:
            aux = self._auxk_loss(pre_NF, dead_F, (x_ND - recon_ND).detach())
            loss = loss + aux
        fire_counts_F = torch.zeros(self.d_sae, device=x_ND.device).index_add_(
            0, latents.reshape(-1), active.reshape(-1).float()
        )
        l0 = active.sum(dtype=torch.float32) / x_ND.shape[0]
        return StepOutput(loss, mse.detach(), l0, aux.detach(), fire_counts_F)

    def _auxk_loss(self, pre_NF: Tensor, dead_F: Tensor, residual_ND: Tensor) -> Tensor:
        """Gao et al.'s AuxK: the top ``k_aux`` dead latents reconstruct the main reconstruction's error.

        The loss is scaled by ``min(n_dead / k_aux, 1)`` (SAELens) so it fades as latents come back.
        """
        masked_NF = pre_NF.masked_fill(~dead_F, float("-inf"))
        vals_NK, idx_NK = masked_NF.topk(self.k_aux, dim=-1, sorted=False)
        recon_ND = _sparse_decode(idx_NK, F.relu(vals_NK), self.W_dec)
        n_dead = dead_F.sum(dtype=torch.float32)
        scale = (n_dead / self.k_aux).clamp(max=1.0)
        return self.config.aux_k_coefficient * scale * _mse(recon_ND, residual_ND)


class BatchTopKTrainingSAE(TopKTrainingSAE):
    """BatchTopK SAE (Bussmann et al. 2024): the top ``k * batch`` activations across the whole batch.

    A running average of the smallest selected activation becomes the inference threshold, saved as a
    per-latent ``threshold`` (all equal), so the exported SAE encodes JumpReLU-style, one input at a time.
    """

    architecture = "batchtopk"

    threshold_ema: Tensor
    threshold_weight: Tensor

    def __init__(self, d_in: int, d_sae: int, config: TrainConfig, generator: torch.Generator) -> None:
        super().__init__(d_in, d_sae, config, generator)
        # Bias-corrected exponential moving average (as Adam's moments), so short runs get an
        # accurate threshold instead of one dragged towards the initial zero.
        self.register_buffer("threshold_ema", torch.zeros((), dtype=torch.float64))
        self.register_buffer("threshold_weight", torch.zeros((), dtype=torch.float64))

    @property
    def threshold(self) -> Tensor:
        """The current global inference threshold (0 before the first step)."""
        return (self.threshold_ema / self.threshold_weight.clamp_min(1e-12)).float()

    def activation_parameters(self) -> dict[str, Tensor]:
        return {"threshold": self.threshold.to(self.W_enc.device)}

    def inference_config_fields(self) -> dict[str, Any]:
        return {"k": float(self.k)}

    def _batch_select(self, pre_NF: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The ``k * batch`` largest ReLU activations of the batch: (rows, columns, values), by row.

        Also records the smallest positive selected value for the threshold update.
        """
        n = pre_NF.shape[0]
        acts_NF = F.relu(pre_NF)
        vals_M, flat_M = acts_NF.reshape(-1).topk(min(self.k * n, acts_NF.numel()), sorted=False)
        # Group the selected entries by input (sorting flat indices sorts by row) for embedding_bag.
        # Sorting float64 keys (exact below 2**53) avoids the integer radix sort that stalls on busy CPUs.
        order_M = flat_M.double().argsort()
        flat_M = flat_M[order_M]
        vals_M = vals_M[order_M].to(self.W_dec.dtype)
        rows_M = torch.div(flat_M, self.d_sae, rounding_mode="floor")
        cols_M = flat_M - rows_M * self.d_sae
        self._last_min_positive = torch.where(vals_M > 0, vals_M.detach(), float("inf")).min()
        return rows_M, cols_M, vals_M

    def training_step(self, x_ND: Tensor, coefficient: float, dead_F: Tensor | None) -> StepOutput:
        n = x_ND.shape[0]
        pre_NF = self.pre_acts(x_ND)
        rows_M, cols_M, vals_M = self._batch_select(pre_NF)
        recon_ND = _bagged_decode(rows_M, cols_M, vals_M, self.W_dec, n) + self.b_dec
        return self._step_output(x_ND, pre_NF, recon_ND, dead_F, cols_M, (vals_M > 0).detach())

    @torch.no_grad()
    def after_optimizer_step(self, out: StepOutput) -> None:
        super().after_optimizer_step(out)
        min_positive = self._last_min_positive.double()
        has_positive = torch.isfinite(min_positive)
        rate = self.config.batchtopk_threshold_lr
        new_ema = (1 - rate) * self.threshold_ema + rate * torch.where(has_positive, min_positive, 0.0)
        new_weight = (1 - rate) * self.threshold_weight + rate
        self.threshold_ema.copy_(torch.where(has_positive, new_ema, self.threshold_ema))
        self.threshold_weight.copy_(torch.where(has_positive, new_weight, self.threshold_weight))

    def _raw_inference_state(self) -> dict[str, Tensor]:
        state = super()._raw_inference_state()
        state["threshold"] = self.threshold.expand(self.d_sae).to(self.W_enc.device)
        return state


def _bagged_decode(bags_M: Tensor, cols_M: Tensor, vals_M: Tensor, W_dec_FD: Tensor, n_bags: int) -> Tensor:
    """``out[b] = sum of vals * W_dec[cols]`` over the entries of bag ``b``; ``bags_M`` sorted ascending.

    The same forward/backward split as :func:`_sparse_decode`, for a variable number of entries per bag.
    """
    offsets_B = torch.searchsorted(bags_M, torch.arange(n_bags, device=bags_M.device))
    out_BD = F.embedding_bag(cols_M, W_dec_FD.detach(), offsets_B, per_sample_weights=vals_M, mode="sum")
    if W_dec_FD.requires_grad and torch.is_grad_enabled():
        out_BD = out_BD + _DecoderGradient.apply(bags_M, cols_M, vals_M.detach(), W_dec_FD, n_bags)
    return out_BD


class MatryoshkaBatchTopKTrainingSAE(BatchTopKTrainingSAE):
    """Matryoshka BatchTopK SAE (Bussmann et al. 2025; SAELens ``matryoshka_batchtopk``).

    The latents are selected as in BatchTopK over the whole dictionary; then every nested prefix of the
    dictionary (latents ``0..w`` for each width ``w`` of ``matryoshka_widths``, the last being ``d_sae``)
    reconstructs the input on its own, from ``b_dec`` plus its selected latents, and the loss is the sum
    of the prefixes' squared errors (plus AuxK on the full reconstruction's residual, SAELens' default).
    Early latents must therefore reconstruct well without the later ones, which discourages absorption.
    Inference is that of BatchTopK: exported as a BatchTopK SAE (written as JumpReLU with a global
    threshold, the Matryoshka provenance and widths in the metadata, as SAELens does).
    """

    architecture = "matryoshka_batchtopk"

    def __init__(self, d_in: int, d_sae: int, config: TrainConfig, generator: torch.Generator) -> None:
        super().__init__(d_in, d_sae, config, generator)
        self.widths = config.resolve_matryoshka_widths(d_sae)
        self.register_buffer(
            "inner_bounds", torch.tensor(self.widths[:-1], dtype=torch.long), persistent=False
        )

    inner_bounds: Tensor

    def inference_architecture(self) -> str:
        return "batchtopk"

    def inference_metadata(self) -> dict[str, Any]:
        return {
            "training_architecture": self.architecture,
            "training_architecture_details": {
                "k": float(self.k),
                "matryoshka_widths": list(self.widths),
                "use_matryoshka_aux_loss": False,
                "topk_threshold_lr": self.config.batchtopk_threshold_lr,
                "aux_loss_coefficient": self.config.aux_k_coefficient,
                "rescale_acts_by_decoder_norm": False,
            },
        }

    def training_step(self, x_ND: Tensor, coefficient: float, dead_F: Tensor | None) -> StepOutput:
        n = x_ND.shape[0]
        pre_NF = self.pre_acts(x_ND)
        rows_M, cols_M, vals_M = self._batch_select(pre_NF)
        # One bag per (group, input): group g holds latents [widths[g-1], widths[g]).
        group_M = torch.bucketize(cols_M, self.inner_bounds, right=True)
        n_groups = len(self.widths)
        bags_M = group_M * n + rows_M
        order_M = bags_M.double().argsort()  # stable grouping; see _batch_select on float64 keys
        bags_M, cols_sorted_M, vals_sorted_M = bags_M[order_M], cols_M[order_M], vals_M[order_M]
        parts_GND = _bagged_decode(bags_M, cols_sorted_M, vals_sorted_M, self.W_dec, n_groups * n).reshape(
            n_groups, n, self.d_in
        )
        prefixes_GND = parts_GND.cumsum(dim=0) + self.b_dec
        recon_ND = prefixes_GND[-1]
        out = self._step_output(x_ND, pre_NF, recon_ND, dead_F, cols_M, (vals_M > 0).detach())
        inner = sum((_mse(prefixes_GND[g], x_ND) for g in range(n_groups - 1)), x_ND.new_zeros(()))
        out.loss = out.loss + inner
        return out


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


class GatedTrainingSAE(TrainingSAE):
    """Gated SAE (Rajamanoharan et al. 2024): a binary gate and a ReLU magnitude sharing ``W_enc``.

    Loss = MSE + l1 * ||relu(π_gate)||₁ (weighted by decoder norms) + the reconstruction of the input
    from relu(π_gate) through a detached decoder, which trains the gate path that the Heaviside blocks.
    Decoder rows are kept at unit norm, as in the paper: with free norms the L1 term keeps shrinking
    them while ``r_mag`` compensates, and the gate drifts open (L0 grows, reconstruction degrades).
    """

    architecture = "gated"
    unit_norm_decoder = True

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


TRAINING_SAES: dict[str, type[TrainingSAE]] = {
    cls.architecture: cls
    for cls in (
        StandardTrainingSAE,
        TopKTrainingSAE,
        BatchTopKTrainingSAE,
        MatryoshkaBatchTopKTrainingSAE,
        JumpReLUTrainingSAE,
        GatedTrainingSAE,
    )
}


def build_training_sae(config: TrainConfig, d_in: int, d_sae: int, generator: torch.Generator) -> TrainingSAE:
    """The trainable module for ``config.architecture``, its ``config.freeze`` part frozen."""
    module = TRAINING_SAES[config.architecture](d_in, d_sae, config, generator)
    module.apply_freeze()
    return module
