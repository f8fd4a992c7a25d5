"""The random-SAE control, paired with the SAE it controls for, pair by pair.

The control has the SAE's width and architecture and random unit-norm directions (:class:`RandomBlocks`).
Its input is centred as the SAE's is: minus the SAE's ``b_dec`` when the SAE subtracts it
(``apply_b_dec_to_input``), else minus the mean hook vector of the evaluated prompts. A random projection of
an uncentred activation mostly reads the activations' shared mean direction: the same few latents win the
top-1 for almost every prompt, which makes the control's recall high and its specificity low for reasons that
have nothing to do with meaning. Centring removes the shared direction, so the control's top-1 follows what
varies between prompts, as a trained SAE's does after subtracting its ``b_dec``.

Both are scored on the same pairs, so the SAE is compared with its control by paired tests: an exact McNemar
test on accuracy, and a paired word-clustered bootstrap of the difference in Youden's J; the two p-values are
Holm-adjusted as one family. "Beats the random control" is stated only where the adjusted test is
significant and the SAE is the better of the two.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from numpy.typing import ArrayLike
from pydantic import BaseModel, Field

from pseval.evals.schema import PairDetail
from pseval.evals.versus import ALPHA, Centring, VsRandomControl
from pseval.metrics.blockwise import CodeStats, code_stats
from pseval.metrics.ps_eval import confusion_counts, metrics_from_counts
from pseval.metrics.uncertainty import (
    ClusterBootstrap,
    holm,
    mcnemar_exact,
    resampled_metrics,
)
from pseval.sae.architectures import sae_input  # the SAE's own cast, normalisation and b_dec subtraction
from pseval.sae.config import SAEConfig
from pseval.sae.lazy import LatentBlocks, RandomBlocks, feature_blocks


def control_centre(blocks: LatentBlocks, acts_PD: torch.Tensor) -> tuple[torch.Tensor, Centring]:
    """What the control subtracts from its inputs (float32, cpu), and which choice it is.

    The SAE's ``b_dec`` when the SAE subtracts it from its own input; otherwise the mean of the evaluated
    prompts' hook vectors as the SAE would see them (cast and normalised by its ``normalize_activations``),
    one vector per dataset and hook, so every SAE of a run with the same input regime gets the same control.
    """
    cfg = blocks.cfg
    if cfg.apply_b_dec_to_input:
        return blocks.b_dec().detach().float().cpu(), "sae_b_dec"
    plain = cfg.model_copy(update={"apply_b_dec_to_input": False})
    seen_PD, _ = sae_input(plain, torch.zeros(cfg.d_in, dtype=cfg.torch_dtype()), acts_PD.cpu())
    return seen_PD.float().mean(0), "dataset_mean"


class CentredRandomBlocks(RandomBlocks):
    """The random control of ``cfg``, its input centred by ``centre_D`` where the SAE subtracts ``b_dec``.

    The centre takes the place of ``b_dec``, so it is subtracted after the same cast and normalisation as
    the SAE's input, in the same order (:func:`~pseval.sae.lazy.feature_blocks`).
    """

    def __init__(self, cfg: SAEConfig, centre_D: torch.Tensor, seed: int = 0) -> None:
        super().__init__(cfg.model_copy(update={"apply_b_dec_to_input": True}), seed=seed)
        self._centre_D = centre_D

    def b_dec(self) -> torch.Tensor:
        return self._centre_D.to(self._dtype)


def random_control_stats(
    blocks: LatentBlocks,
    acts_PD: torch.Tensor,
    pair_index: list[tuple[int, int]],
    topk_overlap_k: int,
    seed: int,
    device: str | torch.device = "cpu",
) -> tuple[CodeStats, Centring]:
    """Block-wise code statistics of the random control of ``blocks``' SAE on centred inputs."""
    centre_D, centring = control_centre(blocks, acts_PD)
    control = CentredRandomBlocks(blocks.cfg, centre_D, seed=seed)
    n_prompts = acts_PD.shape[0]
    stats = code_stats(feature_blocks(control, acts_PD, device=device), n_prompts, pair_index, topk_overlap_k)
    return stats, centring


class ControlPairDetail(BaseModel):
    """The random control's outcome on one pair (the SAE's own row has the same id)."""

    id: str = Field(description="Pair id.")
    latent_1: int = Field(description="The control's top latent in context 1 (-1 = no active latent).")
    activation_1: float = Field(description="Its activation.")
    latent_2: int = Field(description="The control's top latent in context 2 (-1 = no active latent).")
    activation_2: float = Field(description="Its activation.")
    predicted_same: bool = Field(description="Same active top latent in both contexts.")
    correct: bool = Field(description="predicted_same == (label == 1).")


def control_details(details: Sequence[PairDetail]) -> list[dict[str, object]]:
    """The control's per-pair rows, as stored under ``eval_result_unstructured.random_sae_details``."""
    fields = tuple(ControlPairDetail.model_fields)
    return [ControlPairDetail(**{k: getattr(d, k) for k in fields}).model_dump() for d in details]


def _bootstrap_p_value(differences_R: np.ndarray) -> float | None:
    """Two-sided bootstrap p-value of "difference = 0" (None when a resample is undefined or there are none)."""
    if differences_R.size == 0 or not np.all(np.isfinite(differences_R)):
        return None
    far_side = min(int(np.sum(differences_R <= 0)), int(np.sum(differences_R >= 0)))
    return min(1.0, 2.0 * (far_side + 1) / (differences_R.size + 1))


def compare_with_control(
    labels: ArrayLike,
    same_sae: ArrayLike,
    same_control: ArrayLike,
    words: Sequence[str],
    n_resamples: int,
    confidence_level: float,
    seed: int,
    centring: Centring,
) -> VsRandomControl:
    """Paired tests of the SAE against its random control on the same pairs (see the module docstring)."""
    y = np.asarray(labels).astype(bool)
    sae = np.asarray(same_sae).astype(bool)
    control = np.asarray(same_control).astype(bool)
    test = mcnemar_exact(sae == y, control == y)
    boot = ClusterBootstrap(y.size, list(words), n_resamples, seed)
    # The same seed and clusters give both classifiers the same resamples: the difference is paired.
    j_sae = resampled_metrics(boot, y, sae)["youden_j"]
    j_control = resampled_metrics(boot, y, control)["youden_j"]
    interval = boot.interval(j_sae - j_control, confidence_level)
    j_p = _bootstrap_p_value(j_sae - j_control) if n_resamples > 0 else None
    j_of_sae = metrics_from_counts(*confusion_counts(y, sae)).youden_j
    j_of_control = metrics_from_counts(*confusion_counts(y, control)).youden_j
    j_difference = None if j_of_sae is None or j_of_control is None else j_of_sae - j_of_control
    adjusted = holm([test.p_value] + ([j_p] if j_p is not None else []))
    acc_difference = None if test.accuracy_a is None else test.accuracy_a - (test.accuracy_b or 0.0)
    return VsRandomControl(
        n_pairs=int(y.size),
        centring=centring,
        accuracy_difference=acc_difference,
        sae_only_correct=test.a_only_correct,
        random_only_correct=test.b_only_correct,
        accuracy_p_value=test.p_value,
        youden_j_difference=j_difference,
        youden_j_difference_low=interval.low,
        youden_j_difference_high=interval.high,
        youden_j_p_value=j_p,
        accuracy_p_holm=float(adjusted[0]),
        youden_j_p_holm=float(adjusted[1]) if j_p is not None else None,
        beats_on_accuracy=bool(adjusted[0] < ALPHA and test.a_only_correct > test.b_only_correct),
        beats_on_youden_j=None
        if j_p is None or j_difference is None
        else bool(adjusted[1] < ALPHA and j_difference > 0),
        confidence_level=confidence_level,
        n_resamples=n_resamples,
    )
