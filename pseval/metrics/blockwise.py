"""What PS-Eval needs from the codes of every prompt, accumulated over blocks of latents.

:func:`code_stats` reads ``(start, feats_PB)`` blocks (see :func:`pseval.sae.lazy.feature_blocks`) and keeps
per prompt only the top-1 latent, the top-k candidates, the squared norm and the L0, per pair the dot
product of the two codes, and per block the count of latents active on some prompt. Each statistic equals
the one computed on the whole ``prompts × d_sae`` matrix: argmax and top-k ties go to the lower latent
index, counts are integers, and the cosine's sums are float64 (the same to float32 rounding).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch

from pseval.metrics.ps_eval import NO_LATENT
from pseval.metrics.threshold_free import cosine_from_sums, jaccard_of_top
from pseval.sae.lazy import block_topk, select_topk


@dataclass
class CodeStats:
    """Per-prompt and per-pair summaries of an SAE's codes on the unique prompts."""

    top_index_P: torch.Tensor
    """Most active latent of each prompt (``NO_LATENT`` where none is active)."""
    top_value_P: torch.Tensor
    """Its activation (float32)."""
    topk_values_PK: torch.Tensor
    topk_ids_PK: torch.Tensor
    """The k most active latents of each prompt (only entries with value > 0 count)."""
    sq_norm_P: torch.Tensor
    """Squared L2 norm of each prompt's code (float64)."""
    pair_dot_N: torch.Tensor
    """Dot product of the two prompts' codes of each pair (float64)."""
    l0_P: torch.Tensor
    """Active latents per prompt."""
    n_latents_active: int
    """Latents active on at least one prompt."""

    def jaccard(self, idx1_N: torch.Tensor, idx2_N: torch.Tensor) -> torch.Tensor:
        """Top-k Jaccard overlap of each pair (as :func:`~pseval.metrics.threshold_free.topk_jaccard`)."""
        return jaccard_of_top(
            self.topk_values_PK[idx1_N], self.topk_ids_PK[idx1_N],
            self.topk_values_PK[idx2_N], self.topk_ids_PK[idx2_N],
        )  # fmt: skip

    def code_cosine(self, idx1_N: torch.Tensor, idx2_N: torch.Tensor) -> torch.Tensor:
        """Cosine of each pair's two codes (as :func:`~pseval.metrics.threshold_free.cosine_rows`)."""
        return cosine_from_sums(self.pair_dot_N, self.sq_norm_P[idx1_N], self.sq_norm_P[idx2_N])


@torch.no_grad()
def code_stats(
    blocks: Iterable[tuple[int, torch.Tensor]], n_prompts: int, pair_index: Sequence[tuple[int, int]], k: int
) -> CodeStats:
    """Accumulate :class:`CodeStats` over ``(start, feats_PB)`` blocks that tile the latents in order."""
    idx1 = torch.tensor([a for a, _ in pair_index], dtype=torch.long)
    idx2 = torch.tensor([b for _, b in pair_index], dtype=torch.long)
    best_value = torch.full((n_prompts,), -torch.inf)
    best_index = torch.zeros(n_prompts, dtype=torch.long)
    top_vals = torch.zeros(n_prompts, 0)
    top_ids = torch.zeros(n_prompts, 0, dtype=torch.long)
    sq_norm = torch.zeros(n_prompts, dtype=torch.float64)
    pair_dot = torch.zeros(len(idx1), dtype=torch.float64)
    l0 = torch.zeros(n_prompts, dtype=torch.long)
    n_alive = 0
    seen = False
    for start, feats_PB in blocks:
        if feats_PB.shape[1] == 0:
            continue
        seen = True
        value_P, index_P = feats_PB.max(dim=-1)
        # Strictly greater: an earlier block keeps a tie, as argmax over the whole row does.
        better = value_P > best_value
        best_value = torch.where(better, value_P, best_value)
        best_index = torch.where(better, index_P + start, best_index)
        vals, ids = block_topk(feats_PB, start, k, positive_only=True)
        top_vals, top_ids = select_topk(torch.cat([top_vals, vals], 1), torch.cat([top_ids, ids], 1), k)
        sq_norm += (feats_PB * feats_PB).sum(-1, dtype=torch.float64)
        pair_dot += (feats_PB[idx1] * feats_PB[idx2]).sum(-1, dtype=torch.float64)
        active_PB = feats_PB > 0
        l0 += active_PB.sum(-1)
        n_alive += int(active_PB.any(0).sum())
    if not seen:
        best_value = torch.zeros(n_prompts)
    top_index = torch.where(best_value > 0, best_index, torch.full_like(best_index, NO_LATENT))
    return CodeStats(top_index, best_value, top_vals, top_ids, sq_norm, pair_dot, l0, n_alive)


__all__ = ["CodeStats", "code_stats"]
