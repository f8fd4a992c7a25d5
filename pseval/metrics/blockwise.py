"""What PS-Eval needs from the codes of every prompt, accumulated over blocks of latents.

:func:`code_stats` reads ``(start, feats_PB)`` blocks (see :func:`pseval.sae.lazy.feature_blocks`) and keeps
per prompt only the top-1 latent, the top-k candidates, the squared norm and the L0, per pair the dot
product of the two codes, and per block the count of latents active on some prompt. Each statistic equals
the one computed on the whole ``prompts × d_sae`` matrix: argmax and top-k ties go to the lower latent
index, counts are integers, and the cosine's sums are float64 (the same to float32 rounding).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import torch

from pseval.metrics.ps_eval import NO_LATENT
from pseval.metrics.threshold_free import cosine_from_sums, jaccard_of_top
from pseval.sae.lazy import block_topk, select_topk
from pseval.sae.threads import small_ops

STATS_ROWS = 256
"""Fewest prompts of a block read at once (more when the block is narrow, see :data:`STATS_ELEMENTS`)."""

STATS_ELEMENTS = 1 << 18
"""Entries of the (rows x block) slice read at once: small enough to stay in cache across its passes, large
enough that the per-operation overhead of narrow blocks (many prompts) stays small."""

CANDIDATES_GATHERED = 64
"""Most new top-k candidates of one row gathered directly; beyond, the row's block is ranked by ``topk``."""

GATHERED_SHARE = 1 / 8
"""In a sparse block, rows with more than :data:`CANDIDATES_GATHERED` new candidates are still gathered (no
``topk`` over the whole block) while the gathered ``rows x widest row`` matrix is at most this share of the
block: the first blocks, where every nonzero code is a candidate."""

SPARSE_SHARE = 1 / 16
"""Largest share of nonzero codes for which a block is scored in one pass over its nonzero entries (real codes
are > 99.9 % zero); denser blocks (a random SAE's) are scored in chunks of rows."""


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
        rows_C, cols_C = above_SB.nonzero(as_tuple=True)
        vals, ids = _gathered(rows_C, cols_C + start, sub_SB[rows_C, cols_C], counts_S, width, top_vals.dtype)
    else:
        vals, ids = block_topk(sub_SB, start, k, positive_only=True)
    _merge_rows(rows_R + lo, vals, ids, k, top_vals, top_ids, floor_P)


def _gathered(
    rows_C: torch.Tensor,
    ids_C: torch.Tensor,
    vals_C: torch.Tensor,
    counts_S: torch.Tensor,
    width: int,
    dtype: torch.dtype,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Candidates in row-major order (``rows_C`` numbering the rows that have any) as ``[S, width]`` matrices:
    each candidate's slot is its rank within its row, unused slots hold value 0 and id 0."""
    first_S = torch.cumsum(counts_S, 0) - counts_S
    slot_C = torch.arange(len(rows_C)) - first_S[rows_C]
    vals = torch.zeros(len(counts_S), width, dtype=dtype)
    ids = torch.zeros(len(counts_S), width, dtype=torch.long)
    vals[rows_C, slot_C] = vals_C.to(dtype)
    ids[rows_C, slot_C] = ids_C
    return vals, ids


def _merge_rows(
    rows_S: torch.Tensor,
    vals: torch.Tensor,
    ids: torch.Tensor,
    k: int,
    top_vals: torch.Tensor,
    top_ids: torch.Tensor,
    floor_P: torch.Tensor,
) -> None:
    """Merge new candidates ``(vals, ids)`` of prompts ``rows_S`` into the top-k kept (in place)."""
    merged_vals, merged_ids = select_topk(
        torch.cat([top_vals[rows_S], vals.to(top_vals.dtype)], 1), torch.cat([top_ids[rows_S], ids], 1), k
    )
    top_vals[rows_S], top_ids[rows_S] = merged_vals, merged_ids
    floor_P[rows_S] = merged_vals[:, -1]


class _Sums:
    """What :func:`code_stats` accumulates over the blocks."""

    def __init__(self, n_prompts: int, pair_index: Sequence[tuple[int, int]], k: int) -> None:
        self.idx1 = torch.tensor([a for a, _ in pair_index], dtype=torch.long)
        self.idx2 = torch.tensor([b for _, b in pair_index], dtype=torch.long)
        self.n_prompts, self.k = n_prompts, max(k, 1)  # the top-1 comes from the top-k: at least one kept
        self.top_vals = torch.zeros(n_prompts, self.k)
        self.top_ids = torch.zeros(n_prompts, self.k, dtype=torch.long)
        # The k-th value kept so far: a later latent enters only if strictly greater (ties keep the lower id).
        self.floor_P = torch.zeros(n_prompts)
        self.sq_norm = torch.zeros(n_prompts, dtype=torch.float64)
        self.pair_dot = torch.zeros(len(self.idx1), dtype=torch.float64)
        self.l0 = torch.zeros(n_prompts, dtype=torch.long)
        self.n_alive = 0

    def add_sparse(self, feats_PB: torch.Tensor, start: int) -> None:
        """One pass over the block finds its nonzero entries; every statistic is then taken over them alone.

        The products and squares are those of the dense path (float32, then summed in float64, where adding
        the zeros left out changes nothing); the top-k candidates are the entries above their row's k-th
        value, in the same row-major order.
        """
        rows_E, cols_E = feats_PB.nonzero(as_tuple=True)
        vals_E = feats_PB[rows_E, cols_E]
        positive_E = vals_E > 0
        if not bool(positive_E.all()):  # codes are never negative; kept exact if one is
            rows_E, cols_E, vals_E = rows_E[positive_E], cols_E[positive_E], vals_E[positive_E]
        counts_P = torch.bincount(rows_E, minlength=self.n_prompts)
        self.l0 += counts_P
        self.n_alive += int(torch.unique(cols_E).numel())
        self.sq_norm.index_add_(0, rows_E, (vals_E * vals_E).double())
        # Pairs: each entry of the first prompt's code times the second prompt's code at that latent.
        n_per_pair = counts_P[self.idx1]
        pair_E = torch.repeat_interleave(torch.arange(len(self.idx1)), n_per_pair)
        first_P = torch.cumsum(counts_P, 0) - counts_P
        within_E = torch.arange(len(pair_E)) - (torch.cumsum(n_per_pair, 0) - n_per_pair)[pair_E]
        entry_E = first_P[self.idx1[pair_E]] + within_E
        other_E = feats_PB[self.idx2[pair_E], cols_E[entry_E]]
        self.pair_dot.index_add_(0, pair_E, (vals_E[entry_E] * other_E).double())
        # Top-k: only entries above their row's running k-th value can enter.
        above_E = vals_E > self.floor_P[rows_E]
        if not bool(above_E.any()):
            return
        rows_C, cols_C, vals_C = rows_E[above_E], cols_E[above_E], vals_E[above_E]
        counts_C = torch.bincount(rows_C, minlength=self.n_prompts)
        rows_S = counts_C.nonzero().squeeze(-1)
        counts_S = counts_C[rows_S]
        width = int(counts_S.max())
        if width > CANDIDATES_GATHERED and len(rows_S) * width > feats_PB.numel() * GATHERED_SHARE:
            _merge_block_topk(feats_PB, start, 0, self.k, self.top_vals, self.top_ids, self.floor_P)
            return
        slot_of_P = torch.zeros(self.n_prompts, dtype=torch.long)
        slot_of_P[rows_S] = torch.arange(len(rows_S))
        vals, ids = _gathered(slot_of_P[rows_C], cols_C + start, vals_C, counts_S, width, self.top_vals.dtype)
        _merge_rows(rows_S, vals, ids, self.k, self.top_vals, self.top_ids, self.floor_P)

    def add_dense(self, feats_PB: torch.Tensor, start: int) -> None:
        """A dense block, read in chunks of at least :data:`STATS_ROWS` rows (and of pairs) that stay in cache."""
        width = feats_PB.shape[1]
        alive_B = torch.zeros(width, dtype=torch.bool)
        chunk_rows = max(STATS_ROWS, STATS_ELEMENTS // width)
        for lo in range(0, self.n_prompts, chunk_rows):
            hi = min(self.n_prompts, lo + chunk_rows)
            chunk_RB = feats_PB[lo:hi]
            active_RB = chunk_RB > 0
            self.l0[lo:hi] += active_RB.sum(-1)
            alive_B |= active_RB.any(0)
            self.sq_norm[lo:hi] += (chunk_RB * chunk_RB).sum(-1, dtype=torch.float64)
            _merge_block_topk(chunk_RB, start, lo, self.k, self.top_vals, self.top_ids, self.floor_P)
        for lo in range(0, len(self.idx1), chunk_rows):
            hi = min(len(self.idx1), lo + chunk_rows)
            a_RB = feats_PB.index_select(0, self.idx1[lo:hi])
            b_RB = feats_PB.index_select(0, self.idx2[lo:hi])
            self.pair_dot[lo:hi] += (a_RB * b_RB).sum(-1, dtype=torch.float64)
        self.n_alive += int(alive_B.sum())


def _top_index(top_vals_PK: torch.Tensor, top_ids_PK: torch.Tensor) -> torch.Tensor:
    """Each prompt's top-1 latent, NO_LATENT where no code is positive."""
    return torch.where(top_vals_PK[:, 0] > 0, top_ids_PK[:, 0], torch.full_like(top_ids_PK[:, 0], NO_LATENT))


@torch.no_grad()
def code_stats(
    blocks: Iterable[tuple[int, torch.Tensor]],
    n_prompts: int,
    pair_index: Sequence[tuple[int, int]],
    k: int,
    after_block: Callable[[torch.Tensor], None] | None = None,
) -> CodeStats:
    """Accumulate :class:`CodeStats` over ``(start, feats_PB)`` blocks that tile the latents in order.

    Codes are never negative (every architecture ends in a ReLU or a top-k of ReLU'd values), so the top-1
    latent is the first of the top-k and only entries > 0 are ever selected. A sparse block (at most
    :data:`SPARSE_SHARE` nonzero, as real codes are) is scored in one pass that finds its nonzero entries
    and then works on them alone; a denser one in chunks of rows that stay in cache. After the first block
    only the prompts with an entry above their running k-th value are re-ranked. These memory-bound passes,
    and those of the blocks' encode but its matmul, run on one thread (:func:`pseval.sae.threads.small_ops`).
    ``after_block(top_P)`` is called after each block with every prompt's running top-1 latent (NO_LATENT
    while it has none), before the next block is made.
    """
    sums = _Sums(n_prompts, pair_index, k)
    n_seen = 0
    with small_ops():  # the blocks' own encode too, but for its matmul
        for start, feats_PB in blocks:
            if feats_PB.shape[1] == 0:
                continue
            if int(torch.count_nonzero(feats_PB)) <= SPARSE_SHARE * feats_PB.numel():
                sums.add_sparse(feats_PB, start)
            else:
                sums.add_dense(feats_PB, start)
            n_seen += feats_PB.shape[1]
            if after_block is not None:
                after_block(_top_index(sums.top_vals, sums.top_ids))
    best_value = sums.top_vals[:, 0].clone()
    top_ids = sums.top_ids
    top_index = _top_index(sums.top_vals, top_ids)
    k_out = min(k, n_seen)
    return CodeStats(
        top_index, best_value, sums.top_vals[:, :k_out].contiguous(), top_ids[:, :k_out].contiguous(),
        sums.sq_norm, sums.pair_dot, sums.l0, sums.n_alive,
    )  # fmt: skip


__all__ = ["CodeStats", "code_stats"]
