"""Uncertainty of PS-Eval metrics: word-clustered bootstrap intervals, an exact paired test, Holm's correction.

One word contributes several pairs (WiC: up to dozens), which share the word's senses and often its top
latents; the bootstrap therefore resamples words, each with all its pairs (:class:`ClusterBootstrap`). It is
vectorised: a resample is a vector of how many times each word was drawn, and every count over pairs is one
matrix product over thousands of resamples at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from pydantic import BaseModel, Field

from pseval.errors import ConfigError
from pseval.metrics.ps_eval import METRIC_NAMES, confusion_indicators, metrics_from_count_arrays

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


WORD_CLUSTERED = "percentile bootstrap over words: words drawn with replacement, each with all its pairs"
"""``interval_method`` of intervals that resample words (a word contributes several pairs that share its
senses and its top latents: resampling pairs alone would treat them as independent and narrow the interval)."""

PAIR_RESAMPLED = "percentile bootstrap over pairs"
"""``interval_method`` of intervals that resample pairs (when no word is known for the pairs)."""

_CHUNK_ENTRIES = 1 << 22
"""Resample weights held at once (resamples × clusters): bounds memory whatever the number of words."""


class ClusterBootstrap:
    """Seeded resamples of the clusters (words) of N pairs, as weight matrices: no Python loop over resamples.

    Resample r draws ``C`` clusters with replacement; ``weights`` yields, chunk by chunk, how many times each
    cluster was drawn (``R × C``), so a count over pairs is a matrix product. Every statistic computed from
    one instance (same clusters, resamples and seed) sees the same resamples: differences between two
    classifiers on the same pairs are paired. ``clusters=None`` makes each pair its own cluster (the plain
    pair bootstrap).
    """

    def __init__(
        self, n_pairs: int, clusters: ArrayLike | None = None, n_resamples: int = 2000, seed: int = 0
    ) -> None:
        if clusters is None:
            self.cluster_of_pair = np.arange(n_pairs)
        else:
            keys = np.asarray(clusters)
            if keys.shape != (n_pairs,):
                raise ValueError(f"{keys.shape[0]} cluster keys for {n_pairs} pairs")
            self.cluster_of_pair = np.unique(keys, return_inverse=True)[1].reshape(-1)
        self.n_pairs = n_pairs
        self.n_clusters = int(self.cluster_of_pair.max()) + 1 if n_pairs else 0
        self.n_resamples = n_resamples
        self.seed = seed
        self.method = PAIR_RESAMPLED if clusters is None else WORD_CLUSTERED

    def cluster_sums(self, values_N: ArrayLike) -> NDArray[np.float64]:
        """Per-cluster sums of per-pair values (``N`` or ``N × K``), as ``C`` or ``C × K``."""
        v = np.asarray(values_N, dtype=np.float64)
        out = np.zeros((self.n_clusters, *v.shape[1:]))
        np.add.at(out, self.cluster_of_pair, v)
        return out

    def weights(self, width: int = 0) -> Iterator[NDArray[np.float64]]:
        """``R_chunk × C`` counts of each cluster in each resample, chunk by chunk.

        ``width``: columns of the caller's own per-resample arrays, so that they too stay within the chunk's
        memory. The chunk size changes no draw for a given number of clusters and width.
        """
        rng = np.random.default_rng(self.seed)
        c = self.n_clusters
        chunk = max(1, _CHUNK_ENTRIES // max(c, width, 1))
        for start in range(0, self.n_resamples, chunk):
            r = min(chunk, self.n_resamples - start)
            drawn = rng.integers(0, c, size=(r, c)) + c * np.arange(r)[:, None]
            yield np.bincount(drawn.ravel(), minlength=r * c).reshape(r, c).astype(np.float64)

    def resampled_sums(self, values_N: ArrayLike) -> NDArray[np.float64]:
        """Sums of per-pair values (``N`` or ``N × K``) over every resample: ``R`` or ``R × K``."""
        per_cluster = self.cluster_sums(values_N)
        sums = [w @ per_cluster for w in self.weights()]
        return np.concatenate(sums) if sums else np.zeros((0, *per_cluster.shape[1:]))

    def interval(self, samples_R: NDArray[np.float64], confidence_level: float) -> Interval:
        """Percentile interval of a statistic's resampled values (null bounds when a resample is undefined)."""
        if samples_R.size == 0 or not np.all(np.isfinite(samples_R)):
            return Interval(low=None, high=None)
        tail = (1.0 - confidence_level) / 2.0
        low, high = np.quantile(samples_R, [tail, 1.0 - tail])
        return Interval(low=float(low), high=float(high))


def resampled_metrics(boot: ClusterBootstrap, labels: ArrayLike, same: ArrayLike) -> dict[str, NDArray[Any]]:
    """Every PS-Eval ratio (:data:`METRIC_NAMES`) on every resample of ``boot``: name → ``R`` values."""
    counts_RK = boot.resampled_sums(confusion_indicators(labels, same))
    return metrics_from_count_arrays(*counts_RK.T)


def bootstrap_intervals(
    labels: ArrayLike,
    same: ArrayLike,
    n_resamples: int = 2000,
    confidence_level: float = 0.95,
    seed: int = 0,
    clusters: ArrayLike | None = None,
) -> dict[str, Interval]:
    """Percentile bootstrap intervals of every PS-Eval ratio (:data:`METRIC_NAMES`).

    ``clusters`` (one key per pair, e.g. its word) resamples whole clusters: the interval then reflects that
    the pairs of one word are not independent. Without it, pairs are resampled.
    """
    y = np.asarray(labels).astype(bool)
    if y.size < 2 or n_resamples <= 0:
        return {name: Interval(low=None, high=None) for name in METRIC_NAMES}
    boot = ClusterBootstrap(y.size, clusters, n_resamples, seed)
    samples = resampled_metrics(boot, y, same)
    return {name: boot.interval(samples[name], confidence_level) for name in METRIC_NAMES}


def holm(pvalues: ArrayLike) -> NDArray[np.float64]:
    """Holm–Bonferroni adjusted p-values of a family of tests (reject where adjusted p < alpha).

    Sorted ascending, the i-th smallest (0-based) of m is multiplied by m − i, then made non-decreasing
    along that order and capped at 1; strong control of the family-wise error rate, no independence assumed.
    """
    p = np.asarray(pvalues, dtype=np.float64)
    if p.ndim != 1:
        raise ValueError("holm expects a one-dimensional array of p-values")
    if np.any((p < 0) | (p > 1) | np.isnan(p)):
        raise ValueError("p-values must lie in [0, 1]")
    m = p.size
    order = np.argsort(p, kind="stable")
    adjusted_sorted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    adjusted = np.empty(m)
    adjusted[order] = adjusted_sorted
    return adjusted


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
    p_value = 1.0
    if discordant:
        # Imported here: every eval imports this module, and scipy.stats takes half a second to import.
        from scipy import stats

        p_value = float(stats.binomtest(a_only, discordant, 0.5).pvalue)
    n = int(a.size)
    return McNemarResult(
        n_pairs=n,
        a_only_correct=a_only,
        b_only_correct=b_only,
        p_value=p_value,
        accuracy_a=float(a.mean()) if n else None,
        accuracy_b=float(b.mean()) if n else None,
    )
