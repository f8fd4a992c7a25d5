"""Training SAEs: the training config and the training loop (over :mod:`pseval.data.corpus` text and
:mod:`pseval.activations.store` activations).

``train_sae(TrainConfig(...))`` trains on a model's activations and writes a SAELens-format folder;
``train_sae_on_activations(config, batches, d_in)`` is the same loop over any iterator of activation
batches (synthetic data included).
"""

from pseval.training.config import ARCHITECTURES, TrainConfig
from pseval.training.trainer import (
    EvalMetrics,
    StepMetrics,
    TrainLog,
    TrainResult,
    evaluate_sae_on_activations,
    train_sae,
    train_sae_on_activations,
)

__all__ = [
    "ARCHITECTURES",
    "EvalMetrics",
    "StepMetrics",
    "TrainConfig",
    "TrainLog",
    "TrainResult",
    "evaluate_sae_on_activations",
    "train_sae",
    "train_sae_on_activations",
]
