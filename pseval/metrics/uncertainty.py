"""Uncertainty of PS-Eval metrics: bootstrap intervals over pairs and an exact paired test between SAEs."""

from __future__ import annotations

import warnings

import numpy as np
from numpy.typing import ArrayLike
from pydantic import BaseModel, Field
from scipy import stats

from pseval.errors import ConfigError
from pseval.metrics.ps_eval import METRIC_NAMES, metric_arrays

MIN_BOOTSTRAP_RESAMPLES = 200
"""Fewest resamples a percentile interval is computed from: with fewer, a 95 % interval's bounds rest on a
handful of resamples each (one resample gives an interval of width 0 that need not contain the estimate)."""


def check_bootstrap_resamples(n_resamples: int, option: str = "--bootstrap") -> int:
    """``n_resamples`` when it is 0 (no interval) or at least :data:`MIN_BOOTSTRAP_RESAMPLES`, else a ConfigError."""
    if n_resamples == 0 or n_resamples >= MIN_BOOTSTRAP_RESAMPLES:
        return n_resamples
    raise ConfigError(
        f"{option} {n_resamples} is too few resamples for a 95 % interval",
        f"pass {option} {MIN_BOOTSTRAP_RESAMPLES} or more (2000 is the default), or {option} 0 for no intervals",
    )


class Interval(BaseModel):
    """A confidence interval."""

    low: float | None = Field(description="Lower bound (null when undefined on the data).")
    high: float | None = Field(description="Upper bound (null when undefined on the data).")


def bootstrap_intervals(
    labels: ArrayLike,
    same: ArrayLike,
    n_resamples: int = 2000,
    confidence_level: float = 0.95,
    seed: int = 0,
    method: str = "percentile",
) -> dict[str, Interval]:
    """Bootstrap confidence intervals of every PS-Eval metric, resampling pairs (``scipy.stats.bootstrap``).

    Labels and predictions are resampled together (``paired=True``), so each resample is a set of pairs.
    """
    y = np.asarray(labels).astype(bool)
    p = np.asarray(same).astype(bool)
    if y.size < 2 or n_resamples <= 0:
        return {name: Interval(low=None, high=None) for name in METRIC_NAMES}

    # One vector-valued statistic: every metric is computed on the same resamples, in one pass.
    def statistic(y_s: np.ndarray, p_s: np.ndarray, axis: int = -1) -> np.ndarray:
        values = metric_arrays(np.moveaxis(y_s, axis, -1), np.moveaxis(p_s, axis, -1))
        return np.stack([values[name] for name in METRIC_NAMES])

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = stats.bootstrap(
            (y, p),
            statistic,
            paired=True,
            vectorized=True,
            n_resamples=n_resamples,
            confidence_level=confidence_level,
            method=method,
            rng=np.random.default_rng(seed),
        )
    out: dict[str, Interval] = {}
    for i, name in enumerate(METRIC_NAMES):
        low, high = float(res.confidence_interval.low[i]), float(res.confidence_interval.high[i])
        out[name] = Interval(low=None if np.isnan(low) else low, high=None if np.isnan(high) else high)
    return out


class McNemarResult(BaseModel):
    """Exact McNemar test between two classifiers on the same pairs."""

    n_pairs: int = Field(description="Pairs shared by both results.")
    a_only_correct: int = Field(description="Pairs A classifies correctly and B does not.")
    b_only_correct: int = Field(description="Pairs B classifies correctly and A does not.")
    p_value: float = Field(description="Two-sided exact p-value (binomial test on the discordant pairs).")
    accuracy_a: float | None = Field(description="Accuracy of A on the shared pairs.")
    accuracy_b: float | None = Field(description="Accuracy of B on the shared pairs.")


def mcnemar_exact(correct_a: ArrayLike, correct_b: ArrayLike) -> McNemarResult:
    """Exact McNemar test through ``scipy.stats.binomtest`` on the discordant pairs."""
    a = np.asarray(correct_a).astype(bool)
    b = np.asarray(correct_b).astype(bool)
    a_only = int(np.sum(a & ~b))
    b_only = int(np.sum(~a & b))
    discordant = a_only + b_only
    p_value = 1.0 if discordant == 0 else float(stats.binomtest(a_only, discordant, 0.5).pvalue)
    n = int(a.size)
    return McNemarResult(
        n_pairs=n,
        a_only_correct=a_only,
        b_only_correct=b_only,
        p_value=p_value,
        accuracy_a=float(a.mean()) if n else None,
        accuracy_b=float(b.mean()) if n else None,
    )
