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

import torch

from pseval.training.architectures.base import StepOutput, TrainingSAE
from pseval.training.architectures.gated import GatedTrainingSAE
from pseval.training.architectures.jumprelu import JumpReLUTrainingSAE
from pseval.training.architectures.standard import StandardTrainingSAE
from pseval.training.architectures.topk import (
    BatchTopKTrainingSAE,
    MatryoshkaBatchTopKTrainingSAE,
    TopKTrainingSAE,
)
from pseval.training.config import TrainConfig

__all__ = [
    "TRAINING_SAES",
    "BatchTopKTrainingSAE",
    "GatedTrainingSAE",
    "JumpReLUTrainingSAE",
    "MatryoshkaBatchTopKTrainingSAE",
    "StandardTrainingSAE",
    "StepOutput",
    "TopKTrainingSAE",
    "TrainingSAE",
    "build_training_sae",
]


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
