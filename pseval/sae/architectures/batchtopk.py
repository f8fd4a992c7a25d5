"""BatchTopK SAE: trained with a batch-level top-k, run one input at a time through a per-latent threshold.

Its inference kernel is JumpReLU's (the saved threshold is the running minimum selected activation of
training); the batch-level selection, which needs the whole batch, is :func:`batch_topk_activation`.
"""

from __future__ import annotations

import torch

from pseval.sae.architectures.base import register_architecture
from pseval.sae.architectures.jumprelu import JumpReLUSAE
from pseval.sae.config import BatchTopKSAEConfig


def batch_topk_activation(pre_NF: torch.Tensor, k: float) -> torch.Tensor:
    """SAELens ``BatchTopK`` (training only): ReLU, then keep the ``int(k * n_rows)`` largest in the batch."""
    acts = pre_NF.relu()
    flat = acts.flatten()
    n_rows = acts.shape[:-1].numel()
    top = torch.topk(flat, int(k * n_rows), dim=-1)
    return torch.zeros_like(flat).scatter(-1, top.indices, top.values).reshape(acts.shape)


class BatchTopKSAE(JumpReLUSAE):
    """JumpReLU inference with the threshold learned by the batch-level selection."""


register_architecture("batchtopk", BatchTopKSAE, BatchTopKSAEConfig)
