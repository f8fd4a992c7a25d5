"""Cluster bootstrap of a macro mean: resample whole clusters (e.g. lemmas) with replacement.

Items of one cluster are not independent (the anchors of one lemma share its sentences), so the
uncertainty of a mean over clusters comes from resampling clusters, not items. The statistic is the
macro mean: the mean over clusters of each cluster's mean. Several rows of values (e.g. an SAE's scores
and a control's, or their paired differences) are resampled with the same draws, so intervals of
differences are paired. Percentile intervals, seeded (``numpy.random.default_rng(seed)``).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from pydantic import BaseModel, Field

RESAMPLE_CHUNK = 256
"""Resamples drawn at once: bounds the (chunk × clusters) index matrix."""


class Interval(BaseModel):
    """A macro mean and its cluster-bootstrap percentile interval."""

    value: float | None = Field(description="Mean over clusters of the per-cluster means (None: no cluster).")
    low: float | None = Field(description="Lower bound of the interval (None without resamples).")
    high: float | None = Field(description="Upper bound of the interval (None without resamples).")


def cluster_means(values_N: ArrayLike, clusters_N: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """(cluster labels in sorted order, mean of ``values`` in each cluster)."""
    values = np.asarray(values_N, dtype=np.float64)
    labels, inverse = np.unique(np.asarray(clusters_N), return_inverse=True)
    sums = np.bincount(inverse, weights=values, minlength=len(labels))
    counts = np.bincount(inverse, minlength=len(labels))
    return labels, sums / np.maximum(counts, 1)


def cluster_bootstrap(
    values_SN: ArrayLike,
    clusters_N: ArrayLike,
    n_resamples: int = 2000,
    confidence_level: float = 0.95,
    seed: int = 0,
) -> list[Interval]:
    """Macro mean and percentile interval of each row of ``values_SN`` (one row: a 1-D array), clusters shared.

    Every row is resampled with the same cluster draws, so the interval of a row of paired differences is
    the paired interval. ``n_resamples = 0`` gives the means without intervals.
    """
    values = np.atleast_2d(np.asarray(values_SN, dtype=np.float64))
    clusters = np.asarray(clusters_N)
    if values.shape[1] != clusters.shape[0]:
        raise ValueError(f"{values.shape[1]} values but {clusters.shape[0]} cluster labels")
    if clusters.size == 0:
        return [Interval(value=None, low=None, high=None) for _ in values]
    means_SC = np.stack([cluster_means(row, clusters)[1] for row in values])
    point = means_SC.mean(1)
    if n_resamples <= 0:
        return [Interval(value=float(v), low=None, high=None) for v in point]
    rng = np.random.default_rng(seed)
    n_clusters = means_SC.shape[1]
    boot_SB = np.empty((len(values), n_resamples))
    for lo in range(0, n_resamples, RESAMPLE_CHUNK):
        hi = min(n_resamples, lo + RESAMPLE_CHUNK)
        draw_BC = rng.integers(0, n_clusters, size=(hi - lo, n_clusters))
        boot_SB[:, lo:hi] = means_SC[:, draw_BC].mean(-1)
    alpha = (1 - confidence_level) / 2
    low, high = np.quantile(boot_SB, [alpha, 1 - alpha], axis=1)
    return [
        Interval(value=float(v), low=float(a), high=float(b))
        for v, a, b in zip(point, low, high, strict=True)
    ]
