"""Reseed spread, minimum detectable difference and order agreement on numbers worked out by hand."""

from __future__ import annotations

import math

import pytest

from pseval.metrics.reliability import (
    critical_value,
    metric_reliability,
    minimum_detectable_difference,
    order_agreement,
    pooled_reseed_sd,
    replicate_identity,
)

# Three configs, three seeds each. Sums of squares around the means (0.52, 0.56, 0.45):
# A 0.0008, B 0.0002, C 0.0050 -> 0.0060 on df = 6 -> s^2 = 0.001.
SCOPE = {"A": [0.50, 0.52, 0.54], "B": [0.55, 0.56, 0.57], "C": [0.40, 0.45, 0.50]}
T_975_DF6 = 2.4469118511449692  # scipy.stats.t.ppf(0.975, 6)


def test_pooled_sd_weights_configs_by_their_degrees_of_freedom() -> None:
    spread = pooled_reseed_sd([SCOPE])
    assert spread.df == 6 and spread.n_configs == 3 and spread.n_runs == 9
    assert spread.sd == pytest.approx(math.sqrt(0.001), rel=1e-12)
    # Unequal sizes: D (mean 0.7) adds SS 0.02 on df 1; E has one seed and adds nothing.
    spread = pooled_reseed_sd([SCOPE, {"D": [0.6, 0.8], "E": [0.3]}])
    assert spread.df == 7 and spread.n_configs == 4 and spread.n_runs == 11
    assert spread.sd == pytest.approx(math.sqrt((0.006 + 0.02) / 7), rel=1e-12)


def test_one_seed_per_config_gives_no_spread() -> None:
    spread = pooled_reseed_sd([{"A": [0.5], "B": [0.6, float("nan")]}])
    assert spread.sd is None and spread.df == 0 and spread.n_configs == 0
    found = metric_reliability([{"A": [0.5], "B": [0.6]}])
    assert found.mdd is None and found.order.share is None


def test_minimum_detectable_difference_uses_t_on_the_pooled_df() -> None:
    assert critical_value(6) == pytest.approx(T_975_DF6, rel=1e-12)
    sd = math.sqrt(0.001)
    assert minimum_detectable_difference(sd, 6) == pytest.approx(T_975_DF6 * math.sqrt(2) * sd, rel=1e-12)
    assert minimum_detectable_difference(sd, 6) == pytest.approx(0.10943, abs=5e-6)
    # Means over m seeds per SAE shrink it by sqrt(m); many df give z: 1.95996 * sqrt(2) = 2.77181.
    assert minimum_detectable_difference(sd, 6, seeds_per_sae=3) == pytest.approx(
        T_975_DF6 * sd * math.sqrt(2 / 3), rel=1e-12
    )
    assert minimum_detectable_difference(1.0, 10**9) == pytest.approx(2.771808, abs=1e-6)
    assert minimum_detectable_difference(1.0, 10**9, level=0.99) == pytest.approx(
        2.575829 * math.sqrt(2), abs=1e-5
    )
    with pytest.raises(ValueError):
        critical_value(6, level=1.0)


def test_order_agreement_counts_every_seed_pairing_and_ties_do_not_hold() -> None:
    # A<B in all 9 pairings; A>C in 8 (0.50 vs 0.50 is a tie); B>C in all 9: 26 of 27.
    found = order_agreement([SCOPE])
    assert (found.n_pairings, found.n_config_pairs, found.n_tied_pairs) == (27, 3, 0)
    assert found.share == pytest.approx(26 / 27, rel=1e-12)


def test_order_agreement_stays_within_a_scope_and_skips_tied_means() -> None:
    other = {"X": [0.1, 0.3], "Y": [0.2, 0.2], "Z": [0.9]}  # X and Y tie on 0.2; Z has one seed
    found = order_agreement([SCOPE, other])
    assert (found.n_pairings, found.n_config_pairs, found.n_tied_pairs) == (27, 3, 1)
    assert found.share == pytest.approx(26 / 27, rel=1e-12)


def test_metric_reliability_puts_it_together() -> None:
    found = metric_reliability([SCOPE], level=0.95)
    record = found.as_dict()
    assert record["df"] == 6 and record["seeds_per_config"] == 3
    assert record["mdd"] == pytest.approx(T_975_DF6 * math.sqrt(2 * 0.001), rel=1e-12)
    assert record["mdd_seed_means"] == pytest.approx(T_975_DF6 * math.sqrt(2 * 0.001 / 3), rel=1e-12)
    assert record["order_holds"] == pytest.approx(26 / 27, rel=1e-12)


def test_replicate_identity_ignores_only_the_seed() -> None:
    base = {"architecture": "topk", "k": 32, "seed": 42}
    assert replicate_identity(base) == replicate_identity({**base, "seed": 43})
    assert replicate_identity(base) != replicate_identity({**base, "k": 16})
