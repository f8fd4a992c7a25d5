"""Top-k selection with a total order: the k largest values of each row, ties broken toward the lower id.

Used by the block-wise encode of TopK SAEs (:func:`pseval.sae.lazy.feature_blocks`) and by the statistics of
blocks of codes (:mod:`pseval.metrics.blockwise`), so that a merge of per-block selections equals the
selection over all latents at once.
"""

from __future__ import annotations

import torch


def select_topk(values_NC: torch.Tensor, ids_NC: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The k entries of each row that are largest, ties broken toward the lower id: ``(values, ids)``.

    Candidates are sorted by id, then stably by value (descending), so the order is total and a merge of
    per-block selections equals the selection over all latents at once.
    """
    k = min(k, values_NC.shape[-1])
    by_id = ids_NC.argsort(dim=-1, stable=True)
    values_NC = values_NC.gather(-1, by_id)
    ids_NC = ids_NC.gather(-1, by_id)
    order = values_NC.argsort(dim=-1, descending=True, stable=True)[:, :k]
    return values_NC.gather(-1, order), ids_NC.gather(-1, order)


def block_topk(
    values_NB: torch.Tensor, start: int, k: int, positive_only: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`select_topk` of one block (latent ids ``start + column``), fast where no tie straddles the k-th.

    ``torch.topk`` picks the k largest; only rows whose k-th value is tied with an entry left out (where
    ``torch.topk``'s choice is unspecified) are redone with the stable selection. ``positive_only``: only
    the entries > 0 must be right (codes, whose zeros are never counted), so ties at 0 are left alone.
    """
    n, width = values_NB.shape
    k = min(k, width)
    top = values_NB.topk(k, dim=-1)
    ids_NK = top.indices + start
    if k == 0 or n == 0:
        return top.values, ids_NK
    kth_N1 = top.values[:, -1:]
    n_at_least_N = (values_NB >= kth_N1).sum(-1)
    ambiguous_N = n_at_least_N > k
    if positive_only:
        ambiguous_N &= kth_N1.squeeze(-1) > 0
    if bool(ambiguous_N.any()):
        rows = ambiguous_N.nonzero().squeeze(-1)
        sub = values_NB.index_select(0, rows)
        ids = torch.arange(start, start + width).expand(len(rows), width)
        vals, chosen = select_topk(sub, ids, k)
        values = top.values.clone()
        values[rows], ids_NK[rows] = vals, chosen
        return values, ids_NK
    return top.values, ids_NK


__all__ = ["block_topk", "select_topk"]
