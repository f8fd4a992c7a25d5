"""Word form vs meaning: overlap per cell of the WordNet 2 x 2 design and the two effects, with intervals.

Each pair of the ``wordnet-2x2`` dataset belongs to one cell (``WordPair.cell``). For every cell this module
reports three overlap measures of the two contexts' codes (SAE latents, dense activations or any other
representation, one row per context):

- ``share_same_top_latent``: share of pairs whose two contexts have the same active top latent (the
  PS-Eval prediction "same meaning");
- ``topk_overlap``: mean Jaccard overlap of the two contexts' top-k active latents;
- ``code_cosine``: mean cosine of the two codes.

and the effects (differences of cell means, each measure):

- ``word_effect``: how much sharing the **word** raises overlap at a fixed (same) meaning:
  ``same_word_same_sense - different_word_same_sense``;
- ``meaning_effect``: how much sharing the **meaning** raises overlap at a fixed (same) word:
  ``same_word_same_sense - same_word_different_sense``;
- ``word_effect_different_sense`` (``same_word_different_sense - different_word_different_sense``) and
  ``meaning_effect_different_word`` (``different_word_same_sense - different_word_different_sense``): the
  same contrasts in the other row / column of the 2 x 2 table;
- ``word_effect_substitution``: ``1 - synonym_substitution``; identical contexts overlap fully (1 for
  every measure), so this is the overlap lost by changing only the word, the sentence fixed.

Intervals are percentile bootstrap intervals that resample the pairs of each cell independently (seeded);
for a difference the two cells are resampled independently, which is conservative where the cells are
matched (the controls share their first context with the different-word same-sense pairs).

A difference of shares depends on the base rate: a top latent shared by 90 % vs 80 % of pairs and by 20 % vs
10 % is "0.1" both times. ``separation`` gives each two-cell effect on scales that do not:

- ``auc``: per measure, the ROC-AUC of telling the effect's higher cell from its lower cell by the measure,
  P(value of a higher-cell pair > value of a lower-cell pair) + P(tie) / 2 (0.5: the measure does not
  separate them, 1: it always ranks the higher cell first), with a DeLong interval (normal, clipped to
  [0, 1]);
- ``log_odds_ratio_same_top_latent``: log of the odds ratio of "same top-1 latent" in the higher vs the lower
  cell, with 0.5 added to each count (Haldane-Anscombe, finite at shares of 0 and 1) and Woolf's interval.

``word_effect_substitution`` compares a cell with a constant and has no separation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray

from pseval.data.schema import WORDFORM_CELLS
from pseval.metrics.ps_eval import predict_same, top1_latents
from pseval.metrics.threshold_free import cosine_rows, topk_jaccard

CELLS: tuple[str, ...] = WORDFORM_CELLS
MEASURES: tuple[str, ...] = ("share_same_top_latent", "topk_overlap", "code_cosine")

#: effect name -> (minuend cell, subtrahend cell); a minuend of None is the constant 1 (identical contexts).
EFFECTS: dict[str, tuple[str | None, str]] = {
    "word_effect": ("same_word_same_sense", "different_word_same_sense"),
    "meaning_effect": ("same_word_same_sense", "same_word_different_sense"),
    "word_effect_different_sense": ("same_word_different_sense", "different_word_different_sense"),
    "meaning_effect_different_word": ("different_word_same_sense", "different_word_different_sense"),
    "word_effect_substitution": (None, "synonym_substitution"),
}


def pair_overlaps(feats_1_NF: torch.Tensor, feats_2_NF: torch.Tensor, k: int = 16) -> dict[str, NDArray[Any]]:
    """Per pair: same active top latent (bool), top-k Jaccard overlap and code cosine of the two rows."""
    latent_1, _ = top1_latents(feats_1_NF)
    latent_2, _ = top1_latents(feats_2_NF)
    return {
        "share_same_top_latent": predict_same(latent_1.numpy(), latent_2.numpy()).astype(np.float64),
        "topk_overlap": topk_jaccard(feats_1_NF, feats_2_NF, k).numpy().astype(np.float64),
        "code_cosine": cosine_rows(feats_1_NF, feats_2_NF).numpy().astype(np.float64),
    }


def _bootstrap_means(values: NDArray[np.float64], n_resamples: int, rng: np.random.Generator) -> NDArray[Any]:
    idx = rng.integers(0, len(values), size=(n_resamples, len(values)))
    return np.asarray(values[idx].mean(axis=1))


def _interval(samples: NDArray[Any], confidence_level: float) -> tuple[float, float]:
    alpha = (1 - confidence_level) / 2
    low, high = np.quantile(samples, [alpha, 1 - alpha])
    return float(low), float(high)


def wordform_metrics(
    cells: Sequence[str | None],
    overlaps: Mapping[str, ArrayLike],
    n_resamples: int = 2000,
    confidence_level: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    """Per-cell means and the effects of every measure in ``overlaps``, with bootstrap intervals.

    Args:
        cells: the cell of each pair (pairs with another or no cell are ignored).
        overlaps: measure name -> one value per pair (e.g. from :func:`pair_overlaps`).
        n_resamples: bootstrap resamples (0: no intervals, the bounds are None).
        confidence_level: of the intervals.
        seed: of the resampling; every measure and cell gets its own stream derived from it.

    Returns ``{"cells": {cell: {"n_pairs", measure, measure_low, measure_high, ...}}, "effects": {effect:
    {measure, measure_low, measure_high, ...}}}``; a cell without pairs has ``n_pairs`` 0 and None values,
    and so do the effects that need it.
    """
    cell_array = np.asarray([c if c is not None else "" for c in cells], dtype=object)
    values = {name: np.asarray(v, dtype=np.float64) for name, v in overlaps.items()}
    for name, v in values.items():
        if v.shape != (len(cell_array),):
            raise ValueError(f"{name} has {v.shape} values for {len(cell_array)} pairs")
    out_cells: dict[str, dict[str, Any]] = {}
    boots: dict[tuple[str, str], NDArray[Any] | None] = {}
    for c_index, cell in enumerate(CELLS):
        mask = cell_array == cell
        row: dict[str, Any] = {"n_pairs": int(mask.sum())}
        for m_index, (name, v) in enumerate(sorted(values.items())):
            chosen = v[mask]
            if not len(chosen):
                row[name] = row[f"{name}_low"] = row[f"{name}_high"] = None
                boots[(cell, name)] = None
                continue
            row[name] = float(chosen.mean())
            if n_resamples > 0:
                rng = np.random.default_rng([seed, c_index, m_index])
                samples = _bootstrap_means(chosen, n_resamples, rng)
                boots[(cell, name)] = samples
                row[f"{name}_low"], row[f"{name}_high"] = _interval(samples, confidence_level)
            else:
                boots[(cell, name)] = None
                row[f"{name}_low"] = row[f"{name}_high"] = None
        out_cells[cell] = row
    effects: dict[str, dict[str, Any]] = {}
    for effect, (plus, minus) in EFFECTS.items():
        row = {"minuend": plus or "identical contexts (1)", "subtrahend": minus}
        for name in sorted(values):
            minus_value = out_cells[minus][name]
            plus_value = 1.0 if plus is None else out_cells[plus][name]
            if minus_value is None or plus_value is None:
                row[name] = row[f"{name}_low"] = row[f"{name}_high"] = None
                continue
            row[name] = plus_value - minus_value
            minus_boot = boots[(minus, name)]
            plus_boot = np.ones(n_resamples) if plus is None else boots[(plus, name)]
            if minus_boot is None or plus_boot is None:
                row[f"{name}_low"] = row[f"{name}_high"] = None
            else:
                row[f"{name}_low"], row[f"{name}_high"] = _interval(plus_boot - minus_boot, confidence_level)
        effects[effect] = row
    return {
        "cells": out_cells,
        "effects": effects,
        "separation": separation(cell_array, values, confidence_level),
        "confidence_level": confidence_level,
        "n_resamples": n_resamples,
    }


def delong_auc(higher: ArrayLike, lower: ArrayLike) -> tuple[float, float]:
    """ROC-AUC of ``higher`` over ``lower`` (ties count half) and its DeLong variance (two independent samples).

    DeLong, DeLong & Clarke-Pearson (1988), with the placement values computed from mid-ranks (Sun & Xu,
    2014), so it takes O(n log n). The variance is 0 when either sample has fewer than two values.
    """
    from scipy.stats import rankdata  # here: every eval imports this module, scipy.stats takes half a second

    x, y = np.asarray(higher, dtype=np.float64), np.asarray(lower, dtype=np.float64)
    m, n = len(x), len(y)
    if not m or not n:
        raise ValueError("both samples need at least one value")
    ranks = rankdata(np.concatenate([x, y]))
    # placement of each x among the ys (share of ys below it, ties half) and of each y among the xs
    x_place = (ranks[:m] - rankdata(x)) / n
    y_place = 1.0 - (ranks[m:] - rankdata(y)) / m
    auc = float(x_place.mean())
    if m < 2 or n < 2:
        return auc, 0.0
    return auc, float(x_place.var(ddof=1) / m + y_place.var(ddof=1) / n)


def log_odds_ratio(higher: ArrayLike, lower: ArrayLike) -> tuple[float, float]:
    """Log odds ratio of 1s in ``higher`` vs ``lower`` (0/1 values), 0.5 added to each count, and its variance."""
    x, y = np.asarray(higher, dtype=np.float64), np.asarray(lower, dtype=np.float64)
    a, b = x.sum() + 0.5, len(x) - x.sum() + 0.5
    c, d = y.sum() + 0.5, len(y) - y.sum() + 0.5
    return float(np.log(a * d / (b * c))), float(1 / a + 1 / b + 1 / c + 1 / d)


def _normal_interval(value: float, variance: float, confidence_level: float) -> tuple[float, float]:
    from scipy.stats import norm

    half = float(norm.ppf(0.5 + confidence_level / 2)) * variance**0.5
    return value - half, value + half


def separation(
    cell_array: NDArray[Any], values: Mapping[str, NDArray[np.float64]], confidence_level: float
) -> dict[str, dict[str, Any]]:
    """Per two-cell effect: ROC-AUC of every measure and, with ``share_same_top_latent``, its log odds ratio.

    Returns ``{effect: {"higher_cell", "lower_cell", "n_higher", "n_lower", "auc": {measure: {"value",
    "low", "high"}}, "log_odds_ratio_same_top_latent": {"value", "low", "high"} or None}}``; the values are
    None where a cell has no pair.
    """
    out: dict[str, dict[str, Any]] = {}
    for effect, (higher_cell, lower_cell) in EFFECTS.items():
        if higher_cell is None:
            continue
        higher_mask, lower_mask = cell_array == higher_cell, cell_array == lower_cell
        empty = not higher_mask.any() or not lower_mask.any()
        none = {"value": None, "low": None, "high": None}
        aucs: dict[str, dict[str, float | None]] = {}
        for name, v in sorted(values.items()):
            if empty:
                aucs[name] = dict(none)
                continue
            auc, variance = delong_auc(v[higher_mask], v[lower_mask])
            low, high = _normal_interval(auc, variance, confidence_level)
            aucs[name] = {"value": auc, "low": max(0.0, low), "high": min(1.0, high)}
        odds: dict[str, float | None] | None = None
        if "share_same_top_latent" in values:
            odds = dict(none)
            if not empty:
                same = values["share_same_top_latent"]
                value, variance = log_odds_ratio(same[higher_mask], same[lower_mask])
                low, high = _normal_interval(value, variance, confidence_level)
                odds = {"value": value, "low": low, "high": high}
        out[effect] = {
            "higher_cell": higher_cell,
            "lower_cell": lower_cell,
            "n_higher": int(higher_mask.sum()),
            "n_lower": int(lower_mask.sum()),
            "auc": aucs,
            "log_odds_ratio_same_top_latent": odds,
        }
    return out


def wordform_from_codes(
    feats_PF: torch.Tensor,
    pair_index: Sequence[tuple[int, int]],
    cells: Sequence[str | None],
    k: int = 16,
    n_resamples: int = 2000,
    confidence_level: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    """:func:`wordform_metrics` of codes with one row per unique prompt (``pair_index`` as in PS-Eval)."""
    idx_1 = torch.tensor([a for a, _ in pair_index], dtype=torch.long)
    idx_2 = torch.tensor([b for _, b in pair_index], dtype=torch.long)
    overlaps = pair_overlaps(feats_PF[idx_1], feats_PF[idx_2], k)
    return wordform_metrics(cells, overlaps, n_resamples, confidence_level, seed)
