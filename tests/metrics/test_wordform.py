"""Word form vs meaning metrics: per-cell means and effects, hand-computed, and their bootstrap intervals."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pseval.metrics.wordform import (
    CELLS,
    EFFECTS,
    delong_auc,
    log_odds_ratio,
    pair_overlaps,
    wordform_from_codes,
    wordform_metrics,
)

SW_SS, SW_DS, DW_SS, DW_DS, SUB = CELLS


def test_cell_means_and_effects_by_hand() -> None:
    cells = [SW_SS, SW_SS, SW_DS, SW_DS, DW_SS, DW_SS, DW_DS, DW_DS, SUB, SUB, None, "other"]
    same = [1, 1, 0, 1, 1, 0, 0, 0, 1, 1, 1, 1]
    cosine = [0.9, 0.7, 0.5, 0.3, 0.6, 0.4, 0.2, 0.0, 0.95, 0.85, 0.0, 0.0]
    out = wordform_metrics(cells, {"share_same_top_latent": same, "code_cosine": cosine}, n_resamples=0)
    c = out["cells"]
    assert c[SW_SS]["n_pairs"] == 2 and c[SW_SS]["share_same_top_latent"] == 1.0
    assert c[SW_DS]["share_same_top_latent"] == 0.5 and c[DW_SS]["share_same_top_latent"] == 0.5
    assert c[DW_DS]["share_same_top_latent"] == 0.0
    assert c[SW_SS]["code_cosine"] == pytest.approx(0.8)
    assert c[SW_SS]["code_cosine_low"] is None
    e = out["effects"]
    assert e["word_effect"]["share_same_top_latent"] == pytest.approx(1.0 - 0.5)
    assert e["meaning_effect"]["share_same_top_latent"] == pytest.approx(1.0 - 0.5)
    assert e["word_effect"]["code_cosine"] == pytest.approx(0.8 - 0.5)
    assert e["meaning_effect"]["code_cosine"] == pytest.approx(0.8 - 0.4)
    assert e["word_effect_different_sense"]["code_cosine"] == pytest.approx(0.4 - 0.1)
    assert e["meaning_effect_different_word"]["code_cosine"] == pytest.approx(0.5 - 0.1)
    assert e["word_effect_substitution"]["code_cosine"] == pytest.approx(1 - 0.9)
    assert e["word_effect_substitution"]["share_same_top_latent"] == pytest.approx(0.0)


def test_intervals_cover_the_estimate_and_are_seeded() -> None:
    rng = np.random.default_rng(0)
    cells = [cell for cell in CELLS for _ in range(200)]
    means = {SW_SS: 0.8, SW_DS: 0.5, DW_SS: 0.4, DW_DS: 0.2, SUB: 0.6}
    same = [float(rng.random() < means[c]) for c in cells]
    a = wordform_metrics(cells, {"share_same_top_latent": same}, n_resamples=500, seed=1)
    b = wordform_metrics(cells, {"share_same_top_latent": same}, n_resamples=500, seed=1)
    assert a == b
    for cell in CELLS:
        row = a["cells"][cell]
        assert (
            row["share_same_top_latent_low"]
            <= row["share_same_top_latent"]
            <= row["share_same_top_latent_high"]
        )
        # binomial standard error ~ 0.03: a 95 % interval is roughly +-0.06
        assert 0.03 < row["share_same_top_latent_high"] - row["share_same_top_latent_low"] < 0.2
    word = a["effects"]["word_effect"]
    assert (
        word["share_same_top_latent_low"] < word["share_same_top_latent"] < word["share_same_top_latent_high"]
    )
    assert word["share_same_top_latent_low"] > 0.2  # true effect 0.4


def test_empty_cell_gives_none() -> None:
    out = wordform_metrics([SW_SS, SW_SS], {"code_cosine": [0.5, 0.7]}, n_resamples=100)
    assert out["cells"][DW_SS] == {
        "n_pairs": 0,
        "code_cosine": None,
        "code_cosine_low": None,
        "code_cosine_high": None,
    }
    assert out["effects"]["word_effect"]["code_cosine"] is None
    assert out["effects"]["meaning_effect"]["code_cosine"] is None
    with pytest.raises(ValueError, match="values for 2 pairs"):
        wordform_metrics([SW_SS, SW_SS], {"code_cosine": [0.5]}, n_resamples=0)


def test_pair_overlaps_and_codes_by_hand() -> None:
    feats_PF = torch.tensor(
        [
            [0.0, 3.0, 1.0, 0.0],  # top latent 1
            [0.0, 2.0, 0.0, 1.0],  # top latent 1
            [4.0, 0.0, 0.0, 0.0],  # top latent 0
            [0.0, 0.0, 0.0, 0.0],  # no active latent
        ]
    )
    overlaps = pair_overlaps(feats_PF[[0, 0, 0]], feats_PF[[1, 2, 3]], k=2)
    assert overlaps["share_same_top_latent"].tolist() == [1.0, 0.0, 0.0]
    # top-2 active sets {1, 2} vs {1, 3}: 1 / 3; {1, 2} vs {0}: 0
    assert overlaps["topk_overlap"][:2] == pytest.approx([1 / 3, 0.0])
    assert overlaps["code_cosine"][0] == pytest.approx(6 / (np.sqrt(10) * np.sqrt(5)))
    out = wordform_from_codes(feats_PF, [(0, 1), (0, 2)], [SW_SS, DW_SS], k=2, n_resamples=0)
    assert out["cells"][SW_SS]["share_same_top_latent"] == 1.0
    assert out["effects"]["word_effect"]["share_same_top_latent"] == 1.0
    assert out["effects"]["word_effect"]["topk_overlap"] == pytest.approx(1 / 3)


def _brute_force_delong(x: list[float], y: list[float]) -> tuple[float, float]:
    """AUC and DeLong variance from the pairwise kernel, written out (O(m n))."""
    psi = np.array([[1.0 if a > b else 0.5 if a == b else 0.0 for b in y] for a in x])
    v10, v01 = psi.mean(axis=1), psi.mean(axis=0)
    return float(psi.mean()), float(v10.var(ddof=1) / len(x) + v01.var(ddof=1) / len(y))


def test_delong_auc_matches_the_pairwise_definition() -> None:
    rng = np.random.default_rng(3)
    x = np.round(rng.normal(0.5, 1, 40), 1).tolist()  # rounded: many ties
    y = np.round(rng.normal(0.0, 1, 25), 1).tolist()
    auc, variance = delong_auc(x, y)
    expected_auc, expected_variance = _brute_force_delong(x, y)
    assert auc == pytest.approx(expected_auc) and variance == pytest.approx(expected_variance)
    assert delong_auc([1, 2], [1, 2])[0] == pytest.approx(0.5)
    assert delong_auc([3, 4], [1, 2]) == (1.0, 0.0)


def test_log_odds_ratio_by_hand() -> None:
    value, variance = log_odds_ratio([1, 1, 0], [0, 0, 1])  # counts 2/1 vs 1/2, +0.5 each
    assert value == pytest.approx(np.log(2.5 * 2.5 / (1.5 * 1.5)))
    assert variance == pytest.approx(2 / 2.5 + 2 / 1.5)
    assert np.isfinite(log_odds_ratio([1, 1], [0, 0])[0])  # finite at shares 1 and 0


def test_separation_by_hand() -> None:
    cells = [SW_SS, SW_SS, SW_DS, SW_DS, DW_SS, DW_SS, DW_DS, DW_DS, SUB, SUB]
    same = [1, 1, 0, 1, 1, 0, 0, 0, 1, 1]
    cosine = [0.9, 0.7, 0.5, 0.3, 0.6, 0.4, 0.2, 0.0, 0.95, 0.85]
    out = wordform_metrics(cells, {"share_same_top_latent": same, "code_cosine": cosine}, n_resamples=0)
    sep = out["separation"]
    assert set(sep) == set(EFFECTS) - {"word_effect_substitution"}  # against a constant: no AUC
    word = sep["word_effect"]
    assert (word["higher_cell"], word["lower_cell"], word["n_higher"], word["n_lower"]) == (
        SW_SS,
        DW_SS,
        2,
        2,
    )
    assert word["auc"]["code_cosine"]["value"] == 1.0  # 0.9, 0.7 all above 0.6, 0.4
    # share: 1, 1 vs 1, 0 -> pairs (tie, win, tie, win) -> 0.75
    assert word["auc"]["share_same_top_latent"]["value"] == pytest.approx(0.75)
    odds = word["log_odds_ratio_same_top_latent"]
    assert odds["value"] == pytest.approx(np.log(2.5 * 1.5 / (0.5 * 1.5)))
    assert odds["low"] < odds["value"] < odds["high"]
    assert 0.0 <= word["auc"]["code_cosine"]["low"] <= word["auc"]["code_cosine"]["high"] <= 1.0
    assert sep["meaning_effect"]["auc"]["code_cosine"]["value"] == 1.0
    # an empty cell gives nulls, not an error
    empty = wordform_metrics([SW_SS, SW_SS], {"code_cosine": [0.5, 0.7]}, n_resamples=0)["separation"]
    assert empty["word_effect"]["auc"]["code_cosine"] == {"value": None, "low": None, "high": None}
    assert empty["word_effect"]["log_odds_ratio_same_top_latent"] is None  # no top-latent measure given


def test_log_odds_ratio_does_not_depend_on_the_base_rate() -> None:
    # odds ratio 4 at two base rates: shares 0.8 vs 0.5 and 0.2 vs 1/17 (170 pairs per cell)
    def shares(n_ones: int) -> list[int]:
        return [1] * n_ones + [0] * (170 - n_ones)

    cells = [SW_SS] * 170 + [DW_SS] * 170
    effects, odds = [], []
    for higher, lower in ((136, 85), (34, 10)):
        out = wordform_metrics(
            cells, {"share_same_top_latent": shares(higher) + shares(lower)}, n_resamples=0
        )
        effects.append(out["effects"]["word_effect"]["share_same_top_latent"])
        odds.append(out["separation"]["word_effect"]["log_odds_ratio_same_top_latent"]["value"])
    assert effects == pytest.approx([0.3, 24 / 170])  # the difference of shares halves
    assert odds == pytest.approx([np.log(4)] * 2, abs=0.05)  # the log odds ratio stays
