"""The paired comparisons of the SAE with a control on the same pairs: the random SAE (``vs_random_sae``) and
the dense cosine baseline (``vs_dense``), as result categories (:mod:`pseval.evals.categories` declares them).

The registered metrics of ``vs_dense`` carry names without the control in them ("J difference"): a metric key
means one thing in every category that holds it, and ``vs_random_sae`` has the same keys.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from pseval.metrics.registry import metric_field
from pseval.metrics.uncertainty import WORD_CLUSTERED

ALPHA = 0.05
"""Significance level of the "beats the random control" verdicts (after Holm's adjustment)."""

Centring = Literal["sae_b_dec", "dataset_mean"]
"""What the random control's inputs are centred on: the SAE's ``b_dec``, or the mean of the prompts."""


class VsRandomControl(BaseModel):
    """The SAE against its random control on the same pairs (category ``vs_random_sae``)."""

    n_pairs: int = Field(description="Pairs both were scored on.")
    centring: Centring = Field(
        description="What the control's input was centred by (the SAE's b_dec or the mean)."
    )
    accuracy_difference: float | None = Field(description="SAE accuracy − control accuracy.")
    sae_only_correct: int = Field(description="Pairs only the SAE classifies correctly.")
    random_only_correct: int = Field(description="Pairs only the control classifies correctly.")
    accuracy_p_value: float = Field(description="Two-sided exact McNemar p-value of the accuracy difference.")
    youden_j_difference: float | None = Field(description="SAE Youden's J − control Youden's J.")
    youden_j_difference_low: float | None = Field(
        description="Lower bound of the paired word-clustered bootstrap interval of the J difference."
    )
    youden_j_difference_high: float | None = Field(description="Upper bound of that interval.")
    youden_j_p_value: float | None = Field(
        description="Two-sided paired bootstrap p-value of the J difference ((1 + resamples on the far side "
        "of 0) / (1 + resamples), doubled); null without resamples."
    )
    accuracy_p_holm: float = Field(description="accuracy_p_value after Holm's adjustment over both tests.")
    youden_j_p_holm: float | None = Field(
        description="youden_j_p_value after Holm's adjustment over both tests."
    )
    beats_on_accuracy: bool = Field(
        description="The SAE is more accurate than its control and accuracy_p_holm < alpha."
    )
    beats_on_youden_j: bool | None = Field(
        description="The SAE's J exceeds its control's and youden_j_p_holm < alpha (null without resamples)."
    )
    alpha: float = Field(default=ALPHA, description="Significance level of the two verdicts.")
    confidence_level: float = Field(description="Confidence level of the J-difference interval.")
    n_resamples: int = Field(description="Bootstrap resamples of the J difference (0: no interval, no test).")
    interval_method: str = Field(default=WORD_CLUSTERED, description="How the interval resamples the pairs.")


VS_DENSE = "vs_dense"
"""The metric category of the paired comparison of the SAE with the dense baseline."""


class VsDense(BaseModel):
    """The SAE against the dense cosine baseline on the same pairs (category ``vs_dense``)."""

    n_pairs: int = Field(description="Pairs both were scored on.")
    threshold_selection: str = Field(
        description="How the dense threshold was chosen without the evaluated pairs' labels: 'dev split' "
        "(the held-out split) or 'cvK' (each pair by the threshold of the other K − 1 folds)."
    )
    accuracy_difference: float | None = metric_field(
        "Accuracy difference",
        "SAE accuracy − dense accuracy.",
        direction="higher",
        format="signed_ratio",
        interval=True,
        default=...,
    )
    accuracy_difference_low: float | None = Field(
        description="Lower bound of the paired word-clustered bootstrap interval of the accuracy difference."
    )
    accuracy_difference_high: float | None = Field(description="Upper bound of that interval.")
    sae_only_correct: int = Field(description="Pairs only the SAE classifies correctly.")
    dense_only_correct: int = Field(description="Pairs only the dense baseline classifies correctly.")
    accuracy_p_value: float = Field(description="Two-sided exact McNemar p-value of the accuracy difference.")
    youden_j_difference: float | None = metric_field(
        "J difference",
        "SAE Youden's J − dense Youden's J.",
        direction="higher",
        format="signed_ratio",
        interval=True,
        default=...,
    )
    youden_j_difference_low: float | None = Field(
        description="Lower bound of the paired word-clustered bootstrap interval of the J difference."
    )
    youden_j_difference_high: float | None = Field(description="Upper bound of that interval.")
    youden_j_p_value: float | None = Field(
        description="Two-sided paired bootstrap p-value of the J difference (null without resamples)."
    )
    accuracy_p_holm: float = metric_field(
        "Accuracy Holm p",
        "accuracy_p_value after Holm's adjustment over both tests.",
        direction="neither",
        format="p_value",
        aggregation="paired test over pairs",
        default=...,
    )
    youden_j_p_holm: float | None = metric_field(
        "J Holm p",
        "youden_j_p_value after Holm's adjustment.",
        direction="neither",
        format="p_value",
        aggregation="paired test over pairs",
        default=...,
    )
    beats_on_accuracy: bool = Field(description="The SAE is more accurate and accuracy_p_holm < alpha.")
    beats_on_youden_j: bool | None = Field(
        description="The SAE's J is higher and youden_j_p_holm < alpha (null without resamples)."
    )
    below_on_accuracy: bool = Field(
        description="The dense baseline is more accurate and accuracy_p_holm < alpha."
    )
    below_on_youden_j: bool | None = Field(
        description="The dense baseline's J is higher and youden_j_p_holm < alpha (null without resamples)."
    )
    alpha: float = Field(default=ALPHA, description="Significance level of the verdicts.")
    confidence_level: float = Field(description="Confidence level of the intervals.")
    n_resamples: int = Field(description="Bootstrap resamples (0: no interval, no J test).")
    interval_method: str = Field(default=WORD_CLUSTERED, description="How the intervals resample the pairs.")
