"""Training noise: how far a metric moves when only an SAE's training seed changes, and what that implies.

The input for one metric is, per comparison scope (one model, dataset and evaluation setting), the metric's
values of each training config over its seeds: ``{config: [value of seed 1, value of seed 2, ...]}``. Three
numbers summarise it (formulas in docs/methodology.md):

- the **reseed standard deviation** ``s``, pooled over every config with at least two seeds:
  ``s² = Σ_c Σ_i (x_ci − x̄_c)² / Σ_c (n_c − 1)`` on ``df = Σ_c (n_c − 1)`` degrees of freedom;
- the **minimum detectable difference** between two SAEs each trained once (one seed each): the difference
  of two single runs has standard deviation ``√2 · s``, so a two-sided test at level ``α`` needs
  ``MDD = t_{1−α/2, df} · √2 · s`` (``t`` rather than ``z`` because ``s`` is itself estimated; for means over
  ``m`` seeds per SAE it is ``t · s · √(2/m)``);
- the **share of SAE pairs whose order holds across seeds** (as Chanin 2026 does for SAEBench): for every
  two replicated configs A and B of a scope whose seed means differ, and every pairing of a seed of A with
  a seed of B, does ``sign(a_i − b_j)`` equal ``sign(mean_A − mean_B)``? A tie between the two runs does not
  reproduce the order and counts as not holding; pairs of configs with equal means are left out.

Pure functions of numbers (no torch, no files): :mod:`pseval.report.reliability` reads result files into
this shape.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pseval._io import stable_hash

Groups = Mapping[Any, Sequence[float]]
"""One scope's values of a metric: each config's values over its seeds."""


def replicate_identity(train_config: Mapping[str, Any]) -> str:
    """The hash of a training config without its seed: SAEs that share it differ only by training seed.

    ``train_config`` is a trained SAE's recorded fingerprint (``metadata.train_config``, i.e.
    :meth:`pseval.training.config.TrainConfig.fingerprint_dict`).
    """
    return stable_hash({key: value for key, value in train_config.items() if key != "seed"})


@dataclass(frozen=True)
class ReseedSpread:
    """The pooled within-config standard deviation of a metric over training seeds."""

    sd: float | None
    """Pooled reseed standard deviation; ``None`` when no config has two seeds."""
    df: int
    """Its degrees of freedom, ``Σ (n_c − 1)``."""
    n_configs: int
    """Configs with at least two seeds (the ones pooled)."""
    n_runs: int
    """Values (SAE runs) of those configs."""


@dataclass(frozen=True)
class OrderAgreement:
    """How often a single pair of runs reproduces the seed-averaged order of two configs."""

    share: float | None
    """Share of seed pairings whose order matches the seed means' order; ``None`` when nothing to compare."""
    n_pairings: int
    """Seed pairings compared (over every pair of configs whose means differ)."""
    n_config_pairs: int
    """Pairs of configs whose seed means differ."""
    n_tied_pairs: int
    """Pairs of configs with equal seed means (no order to hold; left out)."""


@dataclass(frozen=True)
class MetricReliability:
    """Everything :func:`metric_reliability` reports for one metric."""

    spread: ReseedSpread
    mdd: float | None
    """Minimum detectable difference between two single-seed SAEs."""
    mdd_seed_means: float | None
    """The same for SAEs compared by their mean over ``seeds_per_config`` seeds each."""
    seeds_per_config: int
    """The smallest number of seeds of a pooled config (the ``m`` of ``mdd_seed_means``)."""
    order: OrderAgreement
    level: float

    def as_dict(self) -> dict[str, Any]:
        """A flat, JSON-ready record."""
        return {
            "reseed_sd": self.spread.sd,
            "df": self.spread.df,
            "n_configs": self.spread.n_configs,
            "n_runs": self.spread.n_runs,
            "mdd": self.mdd,
            "mdd_seed_means": self.mdd_seed_means,
            "seeds_per_config": self.seeds_per_config,
            "order_holds": self.order.share,
            "n_pairings": self.order.n_pairings,
            "n_config_pairs": self.order.n_config_pairs,
            "n_tied_config_pairs": self.order.n_tied_pairs,
            "level": self.level,
        }


def _finite(values: Sequence[float]) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(float(v))]


def pooled_reseed_sd(scopes: Sequence[Groups]) -> ReseedSpread:
    """The reseed standard deviation pooled over every config (of every scope) with two or more seeds."""
    squares = 0.0
    df = 0
    n_configs = 0
    n_runs = 0
    for groups in scopes:
        for values in groups.values():
            xs = _finite(values)
            if len(xs) < 2:
                continue
            mean = math.fsum(xs) / len(xs)
            squares += math.fsum((x - mean) ** 2 for x in xs)
            df += len(xs) - 1
            n_configs += 1
            n_runs += len(xs)
    sd = math.sqrt(squares / df) if df else None
    return ReseedSpread(sd=sd, df=df, n_configs=n_configs, n_runs=n_runs)


def critical_value(df: int, level: float = 0.95) -> float:
    """``t_{1−α/2, df}``, the two-sided critical value of a test at ``1 − level`` (``level`` = 1 − α)."""
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if df < 1:
        raise ValueError(f"df must be at least 1, got {df}")
    from scipy.stats import t

    return float(t.ppf(0.5 + level / 2, df))


def minimum_detectable_difference(sd: float, df: int, level: float = 0.95, seeds_per_sae: int = 1) -> float:
    """``t_{1−α/2, df} · s · √(2 / m)``: the smallest difference between two SAEs, each measured as the mean
    of ``m = seeds_per_sae`` training seeds, that a two-sided test at ``1 − level`` tells from reseed noise."""
    if seeds_per_sae < 1:
        raise ValueError(f"seeds_per_sae must be at least 1, got {seeds_per_sae}")
    return critical_value(df, level) * sd * math.sqrt(2.0 / seeds_per_sae)


def _sign(x: float) -> int:
    return (x > 0) - (x < 0)


def order_agreement(scopes: Sequence[Groups]) -> OrderAgreement:
    """The share of seed pairings that order two configs as their seed means do (see the module notes).

    Only configs with two or more seeds take part: with one seed the "seed-averaged" order is the run itself.
    """
    held = 0
    pairings = 0
    config_pairs = 0
    tied = 0
    for groups in scopes:
        replicated = [xs for xs in (_finite(v) for v in groups.values()) if len(xs) >= 2]
        for a, b in itertools.combinations(replicated, 2):
            order = _sign(math.fsum(a) / len(a) - math.fsum(b) / len(b))
            if order == 0:
                tied += 1
                continue
            config_pairs += 1
            for x, y in itertools.product(a, b):
                pairings += 1
                held += _sign(x - y) == order
    share = held / pairings if pairings else None
    return OrderAgreement(share=share, n_pairings=pairings, n_config_pairs=config_pairs, n_tied_pairs=tied)


def metric_reliability(scopes: Sequence[Groups], level: float = 0.95) -> MetricReliability:
    """Reseed spread, minimum detectable differences and order agreement of one metric."""
    spread = pooled_reseed_sd(scopes)
    sizes = [len(xs) for groups in scopes for xs in (_finite(v) for v in groups.values()) if len(xs) >= 2]
    seeds_per_config = min(sizes) if sizes else 0
    mdd = mdd_means = None
    if spread.sd is not None:
        mdd = minimum_detectable_difference(spread.sd, spread.df, level)
        mdd_means = minimum_detectable_difference(spread.sd, spread.df, level, seeds_per_config)
    return MetricReliability(
        spread=spread,
        mdd=mdd,
        mdd_seed_means=mdd_means,
        seeds_per_config=seeds_per_config,
        order=order_agreement(scopes),
        level=level,
    )
