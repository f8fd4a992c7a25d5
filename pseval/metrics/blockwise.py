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

STATS_ROWS = 256
"""Fewest prompts of a block read at once (more when the block is narrow, see :data:`STATS_ELEMENTS`)."""

STATS_ELEMENTS = 1 << 18
"""Entries of the (rows x block) slice read at once: small enough to stay in cache across its passes, large
enough that the per-operation overhead of narrow blocks (many prompts) stays small."""

CANDIDATES_GATHERED = 64
"""Most new top-k candidates of one row gathered directly; beyond, the row's block is ranked by ``topk``."""


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


def _merge_block_topk(
    chunk_RB: torch.Tensor,
    start: int,
    lo: int,
    k: int,
    top_vals: torch.Tensor,
    top_ids: torch.Tensor,
    floor_P: torch.Tensor,
) -> None:
    """Merge the entries of rows ``lo ..`` above their running k-th value into the top-k kept (in place).

    Only entries strictly above a row's k-th value can enter (a tie keeps the earlier, lower latent). When
    they are few (every block after the first few), they are gathered directly; otherwise the rows that
    have any are ranked with :func:`block_topk`.
    """
    n_rows = chunk_RB.shape[0]
    floor_R = floor_P[lo : lo + n_rows]
    # One reduction finds the rows with a new candidate; only those rows are read again.
    rows_R = (chunk_RB.amax(-1) > floor_R).nonzero().squeeze(-1)
    if len(rows_R) == 0:
        return
    sub_SB = chunk_RB if len(rows_R) == n_rows else chunk_RB.index_select(0, rows_R)
    above_SB = sub_SB > floor_R[rows_R, None]
    counts_S = above_SB.sum(-1)
    width = int(counts_S.max())
    if width <= CANDIDATES_GATHERED:
        # Row-major order from nonzero: each candidate's slot is its rank within its row.
        rows_C, cols_C = above_SB.nonzero(as_tuple=True)
        first_S = torch.cumsum(counts_S, 0) - counts_S
        slot_C = torch.arange(len(rows_C)) - first_S[rows_C]
        vals = torch.zeros(len(rows_R), width, dtype=top_vals.dtype)
        ids = torch.zeros(len(rows_R), width, dtype=torch.long)
        vals[rows_C, slot_C] = sub_SB[rows_C, cols_C].to(top_vals.dtype)
        ids[rows_C, slot_C] = cols_C + start
    else:
        vals, ids = block_topk(sub_SB, start, k, positive_only=True)
    rows_P = rows_R + lo
    merged_vals, merged_ids = select_topk(
        torch.cat([top_vals[rows_P], vals.to(top_vals.dtype)], 1), torch.cat([top_ids[rows_P], ids], 1), k
    )
    top_vals[rows_P], top_ids[rows_P] = merged_vals, merged_ids
    floor_P[rows_P] = merged_vals[:, -1]


@torch.no_grad()
def code_stats(
    blocks: Iterable[tuple[int, torch.Tensor]], n_prompts: int, pair_index: Sequence[tuple[int, int]], k: int
) -> CodeStats:
    """Accumulate :class:`CodeStats` over ``(start, feats_PB)`` blocks that tile the latents in order.

    Codes are never negative (every architecture ends in a ReLU or a top-k of ReLU'd values), so the top-1
    latent is the first of the top-k and only entries > 0 are ever selected. Each block is read in chunks
    of at least :data:`STATS_ROWS` rows (and of pairs) so the passes over it stay in cache, and after the
    first block only the rows with an entry above their running k-th value are re-ranked.
    """
    idx1 = torch.tensor([a for a, _ in pair_index], dtype=torch.long)
    idx2 = torch.tensor([b for _, b in pair_index], dtype=torch.long)
    n_pairs = len(idx1)
    k_kept = max(k, 1)  # the top-1 comes from the top-k, so at least one candidate per prompt
    top_vals = torch.zeros(n_prompts, k_kept)
    top_ids = torch.zeros(n_prompts, k_kept, dtype=torch.long)
    # The k-th value kept so far: a later latent enters only if strictly greater (ties keep the lower id).
    floor_P = torch.zeros(n_prompts)
    sq_norm = torch.zeros(n_prompts, dtype=torch.float64)
    pair_dot = torch.zeros(n_pairs, dtype=torch.float64)
    l0 = torch.zeros(n_prompts, dtype=torch.long)
    n_alive = 0
    n_seen = 0
    for start, feats_PB in blocks:
        width = feats_PB.shape[1]
        if width == 0:
            continue
        alive_B = torch.zeros(width, dtype=torch.bool)
        chunk_rows = max(STATS_ROWS, STATS_ELEMENTS // width)
        for lo in range(0, n_prompts, chunk_rows):
            hi = min(n_prompts, lo + chunk_rows)
            chunk_RB = feats_PB[lo:hi]
            active_RB = chunk_RB > 0
            l0[lo:hi] += active_RB.sum(-1)
            alive_B |= active_RB.any(0)
            sq_norm[lo:hi] += (chunk_RB * chunk_RB).sum(-1, dtype=torch.float64)
            _merge_block_topk(chunk_RB, start, lo, k_kept, top_vals, top_ids, floor_P)
        for lo in range(0, n_pairs, chunk_rows):
            hi = min(n_pairs, lo + chunk_rows)
            a_RB = feats_PB.index_select(0, idx1[lo:hi])
            b_RB = feats_PB.index_select(0, idx2[lo:hi])
            pair_dot[lo:hi] += (a_RB * b_RB).sum(-1, dtype=torch.float64)
        n_alive += int(alive_B.sum())
        n_seen += width
    best_value = top_vals[:, 0].clone()
    top_index = torch.where(best_value > 0, top_ids[:, 0], torch.full_like(top_ids[:, 0], NO_LATENT))
    k_out = min(k, n_seen)
    return CodeStats(
        top_index, best_value, top_vals[:, :k_out].contiguous(), top_ids[:, :k_out].contiguous(),
        sq_norm, pair_dot, l0, n_alive,
    )  # fmt: skip


__all__ = ["CodeStats", "code_stats"]
