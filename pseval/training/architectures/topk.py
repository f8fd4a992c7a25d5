"""TopK, BatchTopK and Matryoshka BatchTopK training, with sparse decodes and the AuxK loss."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from pseval.training.architectures.base import StepOutput, TrainingSAE, _mse
from pseval.training.config import TrainConfig


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
