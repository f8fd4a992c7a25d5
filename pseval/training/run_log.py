"""What a training run reports: per-step metrics, the run's log, held-out metrics and the result."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, Field

from pseval.sae.model import SAE
from pseval.training.config import TrainConfig

TRAINING_LOG_FILE = "training_log.json"
CHECKPOINTS_DIR = "checkpoints"
#: A latent firing on more than this fraction of tokens counts as dense.
DENSE_THRESHOLD = 0.1


class StepMetrics(BaseModel):
    """Training metrics averaged over the steps since the previous record."""

    step: int = Field(description="Optimiser steps done.")
    tokens: int = Field(description="Training tokens seen.")
    loss: float = Field(description="Total loss (MSE + sparsity/auxiliary terms).")
    mse: float = Field(
        description="Squared reconstruction error summed over d_in, mean over tokens (normalised units)."
    )
    explained_variance: float = Field(
        description="1 - MSE / variance of the inputs around their mean (variance from one batch per record)."
    )
    l0: float = Field(description="Mean number of active latents per token.")
    aux: float = Field(description="Weighted sparsity or auxiliary loss term.")
    dead_fraction: float = Field(
        description="Fraction of latents that have not fired within dead_feature_window."
    )
    dense_fraction: float = Field(
        description=f"Fraction of latents firing on more than {DENSE_THRESHOLD:.0%} of tokens."
    )
    lr: float = Field(description="Learning rate at this step.")


class TrainLog(BaseModel):
    """How a training run went: its metric history and final numbers."""

    architecture: str = Field(description="Architecture trained.")
    d_in: int = Field(description="Input width.")
    d_sae: int = Field(description="Number of latents.")
    n_steps: int = Field(description="Optimiser steps done.")
    n_tokens: int = Field(description="Training tokens seen.")
    seconds: float = Field(description="Wall-clock time of the loop.")
    tokens_per_second: float = Field(description="Training throughput.")
    input_scale: float = Field(
        description="Factor inputs were multiplied by during training (folded out on export)."
    )
    ran_out_of_data: bool = Field(
        default=False, description="True if the batches ended before training_tokens."
    )
    history: list[StepMetrics] = Field(default_factory=list, description="Metrics every log_every steps.")
    checkpoints: list[str] = Field(default_factory=list, description="Checkpoint folders written.")

    @property
    def final(self) -> StepMetrics | None:
        """The last metric record."""
        return self.history[-1] if self.history else None


class EvalMetrics(BaseModel):
    """Reconstruction and sparsity of the trained SAE on held-out activations (raw units)."""

    n_tokens: int = Field(description="Held-out tokens evaluated.")
    mse: float = Field(description="Squared error summed over d_in, mean over tokens.")
    explained_variance: float = Field(description="1 - total squared error / total variance around the mean.")
    cosine: float = Field(description="Mean cosine similarity between inputs and reconstructions.")
    l0: float = Field(description="Mean active latents per token.")
    dead_fraction: float = Field(description="Fraction of latents that never fired on the held-out tokens.")
    dense_fraction: float = Field(
        description=f"Fraction of latents firing on more than {DENSE_THRESHOLD:.0%} of tokens."
    )


@dataclass
class TrainResult:
    """A trained (or reused) SAE, where it was written and how training went."""

    sae: SAE
    out: Path
    config: TrainConfig
    log: TrainLog | None
    eval: EvalMetrics | None
    reused: bool = False


ProgressCallback = Callable[[StepMetrics], None]
