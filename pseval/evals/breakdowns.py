"""PS-Eval metrics of one SAE split by groups of pairs: by part of speech, by word, by token count."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from pseval.evals.config import PSEvalConfig
from pseval.evals.schema import PairDetail
from pseval.metrics.ps_eval import ps_eval_metrics
from pseval.metrics.uncertainty import bootstrap_intervals


def breakdown(details: Sequence[PairDetail], key: Callable[[PairDetail], str]) -> dict[str, dict[str, Any]]:
    """PS-Eval metrics per group of pairs (e.g. per part of speech)."""
    groups: dict[str, list[PairDetail]] = defaultdict(list)
    for row in details:
        groups[key(row)].append(row)
    out: dict[str, dict[str, Any]] = {}
    for group, rows in sorted(groups.items()):
        metrics = ps_eval_metrics(
            [r.label for r in rows], [r.latent_1 for r in rows], [r.latent_2 for r in rows]
        )
        out[group] = metrics.model_dump()
    return out


def word_breakdown(details: Sequence[PairDetail]) -> dict[str, dict[str, Any]]:
    """Per word: pairs, how often both contexts got one latent, and the accuracy."""
    groups: dict[str, list[PairDetail]] = defaultdict(list)
    for row in details:
        groups[row.word].append(row)
    return {
        word: {
            "n_pairs": len(rows),
            "n_same_meaning": sum(r.label for r in rows),
            "share_same_latent": float(np.mean([r.predicted_same for r in rows])),
            "accuracy": float(np.mean([r.correct for r in rows])),
            "latents": sorted({r.latent_1 for r in rows} | {r.latent_2 for r in rows}),
        }
        for word, rows in sorted(groups.items())
    }


def token_count_breakdown(
    details: Sequence[PairDetail],
    pairs: Sequence[Any],
    word_n_tokens: Sequence[int],
    labels_N: np.ndarray,
    same_N: np.ndarray,
    config: PSEvalConfig,
) -> dict[str, dict[str, Any]]:
    """``by_token_count`` and its word-clustered intervals: single-token pairs apart from multi-token ones.

    Pairs recovered by --multi-token last/mean are reported apart from the paper's single-token pairs.
    """
    words = [pair.word for pair in pairs]
    group_of = {
        pair.id: "single" if n == 1 else "multi" for pair, n in zip(pairs, word_n_tokens, strict=True)
    }
    by_group = breakdown(details, lambda r: group_of[r.id])
    intervals: dict[str, Any] = {}
    for group in by_group:
        rows = [i for i, pair in enumerate(pairs) if group_of[pair.id] == group]
        group_ci = bootstrap_intervals(
            labels_N[rows],
            same_N[rows],
            n_resamples=config.bootstrap_resamples,
            confidence_level=config.confidence_level,
            seed=config.seed,
            clusters=[words[i] for i in rows],
        )
        intervals[group] = {
            f"{name}_{side}": getattr(interval, side)
            for name, interval in group_ci.items()
            for side in ("low", "high")
        }
    return {"by_token_count": by_group, "by_token_count_ci": intervals}
