"""Word form vs meaning metrics: per-cell means and effects, hand-computed, and their bootstrap intervals."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pseval.metrics.wordform import CELLS, pair_overlaps, wordform_from_codes, wordform_metrics

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
