"""What the latents PS-Eval picks do on ordinary text: how often they fire, and where they fire most.

PS-Eval judges an SAE by the top-1 latent at a polysemous word. To read those latents (and to see whether a
"same latent" verdict comes from a latent that fires on almost every token), this module looks at the
latents on the training corpus:

- :func:`corpus_latent_stats` gives each requested latent's firing frequency (the fraction of corpus
  tokens where it is active), a summary of the frequencies of all latents, and the corpus contexts where
  it is most active, with the token marked ``⟦like this⟧``.
- :func:`frequency_breakdown` splits the PS-Eval pairs by the firing frequency of their top latent.

No second model pass is needed: the activations come from the training activation store's disk cache
(:mod:`pseval.activations.store`), under the same cache key the trainer uses, so the cache a trained SAE
left behind is read as is; only when it is absent is the model run, once, to fill it. That cache also
records, for every row, the context and position it came from, which is what turns a row back into text.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, Field

from pseval._progress import track
from pseval.errors import ConfigError, DataError
from pseval.metrics.ps_eval import NO_LATENT, ps_eval_metrics
from pseval.sae.config import SAEConfig
from pseval.sae.lazy import LatentBlocks, feature_blocks
from pseval.sae.model import SAE

__all__ = [
    "DEFAULT_FREQUENCY_BINS",
    "MARK_CLOSE",
    "MARK_OPEN",
    "CorpusLatentStats",
    "TopContext",
    "corpus_latent_stats",
    "frequency_breakdown",
]

MARK_OPEN = "⟦"
"""Opens the marked token in a context window."""
MARK_CLOSE = "⟧"
"""Closes the marked token in a context window."""

DEFAULT_FREQUENCY_BINS: tuple[float, ...] = (0.0, 1e-4, 1e-3, 1e-2, 1e-1, 1.0)
"""Edges of the firing-frequency bins of :func:`frequency_breakdown` (log-spaced, as in SAE dashboards)."""

NO_ACTIVE_BIN = "no active latent"
"""Bin of the pairs whose context 1 has no active latent (so no frequency)."""
UNKNOWN_BIN = "frequency unknown"
"""Bin of the pairs whose context-1 latent is missing from the frequency table."""

_TRAIN_DEFAULTS: dict[str, Any] = {"context_size": 128, "cache_dtype": "float16"}
"""The trainer's defaults for the settings that enter the activation cache key (see ``TrainConfig``)."""

QUANTILES: tuple[tuple[str, float], ...] = (
    ("q01", 0.01),
    ("q10", 0.10),
    ("q25", 0.25),
    ("median", 0.50),
    ("q75", 0.75),
    ("q90", 0.90),
    ("q99", 0.99),
)


class TopContext(BaseModel):
    """One of the corpus tokens where a latent is most active, with the text around it."""

    text: str = Field(
        description="Up to `window` tokens either side of the token, which is marked ⟦like this⟧."
    )
    activation: float = Field(description="The latent's activation at the token.")
    token: str = Field(description="The token itself, decoded.")
    context_index: int = Field(description="Index of the harvested context the token is in (cache order).")
    position: int = Field(description="Position of the token in that context.")


class CorpusLatentStats(BaseModel):
    """Firing frequencies and top-activating corpus contexts of some latents of one SAE."""

    hook_name: str = Field(description="Hook the SAE reads.")
    corpus: str = Field(description="Corpus the statistics were measured on.")
    n_tokens: int = Field(description="Corpus tokens (text positions) the statistics were measured on.")
    n_forward_passes: int = Field(
        description="Model forward passes run (0 when the activation cache was reused)."
    )
    cache_path: str = Field(description="The activation cache folder that was read.")
    firing_frequency: dict[str, float] = Field(
        description="Per requested latent: fraction of the corpus tokens where it is active (> 0)."
    )
    frequency_all: dict[str, float] = Field(
        description="Summary of the firing frequencies of all latents: count, dead/dense fractions, mean and quantiles."
    )
    top_contexts: dict[str, list[TopContext]] = Field(
        description="Per requested latent: its top_n most active corpus tokens, most active first (only active ones)."
    )


# ----------------------------------------------------------------------------------------------------
# Corpus statistics


def _train_setting(cfg: SAEConfig, hook_name: str, key: str, corpus: str) -> Any:
    """A cache-key setting of the run that trained the SAE of ``cfg`` (pseval-trained on this hook and corpus)."""
    metadata = cfg.metadata or {}
    train_config = metadata.get("train_config")
    if (
        isinstance(train_config, dict)
        and train_config.get("hook_name", hook_name) == hook_name
        and train_config.get("corpus") == corpus
        and key in train_config
    ):
        return train_config[key]
    return _TRAIN_DEFAULTS[key]


def _check_latents(latents: Sequence[int], d_sae: int) -> list[int]:
    chosen = list(dict.fromkeys(int(i) for i in latents if int(i) != NO_LATENT))
    bad = [i for i in chosen if not 0 <= i < d_sae]
    if bad:
        raise ConfigError(
            f"latents {bad[:5]} are out of range for an SAE with {d_sae} latents",
            f"pass latent indices between 0 and {d_sae - 1}",
        )
    return chosen


@torch.no_grad()
def corpus_latent_stats(
    loaded: Any,
    sae: SAE | LatentBlocks,
    hook_name: str,
    latents: Sequence[int],
    n_tokens: int = 65_536,
    corpus: str = "bundled",
    top_n: int = 5,
    window: int = 12,
    *,
    context_size: int | None = None,
    cache_dtype: Literal["float32", "float16", "bfloat16"] | None = None,
    cache_root: str | Path | None = None,
    model_batch_size: int = 16,
    chunk_rows: int = 1024,
    fold_decoder_norms: bool = False,
    device: str | torch.device = "cpu",
) -> CorpusLatentStats:
    """Firing frequency and top-activating corpus contexts of ``latents``, from cached activations.

    Reads ``n_tokens`` activations of ``hook_name`` from the training activation cache, harvesting them
    first if no cache of at least that many tokens exists (one model pass, shared with training: the cache
    key is the trainer's, so ``context_size`` and ``cache_dtype`` default to the settings recorded in a
    pseval-trained SAE, else to the trainer's defaults, and ``cache_root`` to the trainer's folder). The rows
    are encoded ``chunk_rows`` at a time; a running top-``top_n`` per latent is kept by ``torch.topk`` on
    each chunk merged with the previous best, so memory stays at one chunk of codes. ``NO_LATENT`` (-1)
    entries of ``latents`` are ignored. Contexts show up to ``window`` tokens before and after the token,
    within its document.

    ``sae`` is an SAE, or the :class:`~pseval.sae.lazy.LatentBlocks` of one (e.g. read from its
    safetensors files): then the ``n_tokens`` rows are gathered (``n_tokens × d_in``) and encoded one
    block of latents at a time on ``device`` (:func:`~pseval.sae.lazy.feature_blocks`), so memory stays at
    one block of weights and codes whatever the width. Both give the same numbers: the same counts, and the
    top rows merged over the same row chunks in the same order.
    """
    from pseval.activations.store import ActivationStore, iter_cached_rows, load_cached_contexts

    if n_tokens < 1:
        raise ConfigError(f"n_tokens={n_tokens} must be positive", "ask for at least one corpus token")
    if top_n < 0 or window < 0 or chunk_rows < 1:
        raise ConfigError(
            f"top_n={top_n}, window={window} or chunk_rows={chunk_rows} is out of range",
            "pass top_n >= 0, window >= 0 and chunk_rows >= 1",
        )
    cfg = sae.cfg
    chosen = _check_latents(latents, cfg.d_sae)
    store = ActivationStore(
        loaded,
        corpus=corpus,
        split="train",
        context_size=context_size or _train_setting(cfg, hook_name, "context_size", corpus),
        cache_dtype=cache_dtype or _train_setting(cfg, hook_name, "cache_dtype", corpus),
        cache_root=cache_root,
        model_batch_size=model_batch_size,
        cache=True,
    )
    folder = store.harvest([hook_name], n_tokens)[hook_name]

    k = min(top_n, n_tokens)
    chunks = track(
        iter_cached_rows(folder, n_tokens, chunk_rows),
        f"latent frequencies at {hook_name}",
        n_tokens,
        "tokens",
        size=lambda chunk: int(chunk.shape[0]),
    )
    if isinstance(sae, SAE):
        counts_F, best_val_KL, best_row_KL = _encoded_stats(sae, chunks, chosen, k, fold_decoder_norms)
    else:
        counts_F, best_val_KL, best_row_KL = _blockwise_stats(
            sae, chunks, n_tokens, chosen, k, fold_decoder_norms, device
        )

    freq_F = counts_F.double().cpu() / n_tokens
    top_contexts = _top_contexts(
        loaded.tokenizer, load_cached_contexts(folder, n_tokens), best_val_KL, best_row_KL, chosen, window
    )
    return CorpusLatentStats(
        hook_name=hook_name,
        corpus=corpus,
        n_tokens=n_tokens,
        n_forward_passes=store.n_forward_passes,
        cache_path=str(folder),
        firing_frequency={str(latent): float(freq_F[latent]) for latent in chosen},
        frequency_all=frequency_summary(freq_F),
        top_contexts=top_contexts,
    )


def _top_contexts(
    tokenizer: Any,
    contexts: Any,
    best_val_KL: torch.Tensor,
    best_row_KL: torch.Tensor,
    chosen: list[int],
    window: int,
) -> dict[str, list[TopContext]]:
    """Each chosen latent's top rows (those with a positive activation) as decoded corpus windows."""
    best_vals, best_rows = best_val_KL.cpu().T.tolist(), best_row_KL.cpu().T.tolist()
    picks = {
        latent: [(v, r) for v, r in zip(best_vals[j], best_rows[j], strict=True) if v > 0]
        for j, latent in enumerate(chosen)
    }
    context_of, position_of = contexts.context_N.tolist(), contexts.position_N.tolist()
    rows_needed = sorted({row for entries in picks.values() for _, row in entries})
    windows = _decode_windows(
        tokenizer,
        contexts.input_ids_CT,
        {row: (context_of[row], position_of[row]) for row in rows_needed},
        window,
    )
    return {
        str(latent): [
            TopContext(
                text=windows[row][0],
                activation=round(value, 6),
                token=windows[row][1],
                context_index=context_of[row],
                position=position_of[row],
            )
            for value, row in entries
        ]
        for latent, entries in picks.items()
    }


def _encoded_stats(
    sae: SAE, chunks: Iterable[torch.Tensor], chosen: list[int], k: int, fold_decoder_norms: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Firing counts of every latent and the running top-``k`` (values, rows) of ``chosen``, chunk by chunk."""
    model_sae = sae.fold_decoder_norms() if fold_decoder_norms else sae
    param = next(model_sae.parameters())
    d_sae = sae.cfg.d_sae
    index_L = torch.tensor(chosen, dtype=torch.long, device=param.device)
    counts_F = torch.zeros(d_sae, dtype=torch.int32, device=param.device)
    best_val_KL = torch.full((k, len(chosen)), -math.inf, device=param.device)
    best_row_KL = torch.full((k, len(chosen)), -1, dtype=torch.long, device=param.device)
    offset = 0
    all_latents = chosen == list(range(d_sae))
    for rows_ND in chunks:
        feats_NF = model_sae.encode(rows_ND.to(device=param.device, dtype=param.dtype)).float()
        counts_F += (feats_NF > 0).sum(0, dtype=torch.int32)
        if k and chosen:
            sel_NL = feats_NF if all_latents else feats_NF.index_select(1, index_L)
            _merge_topk(sel_NL, offset, best_val_KL, best_row_KL)
        offset += rows_ND.shape[0]
        del feats_NF
    return counts_F, best_val_KL, best_row_KL


def _blockwise_stats(
    blocks: LatentBlocks,
    chunks: Iterable[torch.Tensor],
    n_tokens: int,
    chosen: list[int],
    k: int,
    fold_decoder_norms: bool,
    device: str | torch.device,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`_encoded_stats` one block of latents at a time over all the rows.

    The chosen latents of each block are merged with :func:`_merge_topk` over the same row chunks, in the
    same order, as a whole-SAE encode would, so ties come out the same way.
    """
    cfg = blocks.cfg
    rows_ND = torch.empty(n_tokens, cfg.d_in, dtype=cfg.torch_dtype())
    sizes: list[int] = []
    for chunk_ND in chunks:
        offset = sum(sizes)
        rows_ND[offset : offset + chunk_ND.shape[0]] = chunk_ND  # cast as a whole-SAE encode casts it
        sizes.append(chunk_ND.shape[0])
    if sum(sizes) != n_tokens:  # pragma: no cover - iter_cached_rows raises first
        raise DataError(f"the activation cache gave {sum(sizes)} of {n_tokens} rows", "delete the cache")
    counts_F = torch.zeros(cfg.d_sae, dtype=torch.int32)
    best_val_KL = torch.full((k, len(chosen)), -math.inf)
    best_row_KL = torch.full((k, len(chosen)), -1, dtype=torch.long)
    by_latent = sorted(range(len(chosen)), key=chosen.__getitem__)
    sorted_latents = [chosen[j] for j in by_latent]
    for start, feats_NB in feature_blocks(blocks, rows_ND, fold_decoder_norms, device=device):
        end = start + feats_NB.shape[1]
        counts_F[start:end] = (feats_NB > 0).sum(0, dtype=torch.int32)
        lo, hi = bisect.bisect_left(sorted_latents, start), bisect.bisect_left(sorted_latents, end)
        if not k or lo == hi:
            continue
        slots_S = torch.tensor(by_latent[lo:hi], dtype=torch.long)
        cols_S = torch.tensor(sorted_latents[lo:hi], dtype=torch.long) - start
        sel_NS = feats_NB.index_select(1, cols_S)
        val_KS = torch.full((k, len(cols_S)), -math.inf)
        row_KS = torch.full((k, len(cols_S)), -1, dtype=torch.long)
        offset = 0
        for size in sizes:
            _merge_topk(sel_NS[offset : offset + size], offset, val_KS, row_KS)
            offset += size
        best_val_KL.index_copy_(1, slots_S, val_KS)
        best_row_KL.index_copy_(1, slots_S, row_KS)
    return counts_F, best_val_KL, best_row_KL


def _merge_topk(
    vals_NL: torch.Tensor, offset: int, best_val_KL: torch.Tensor, best_row_KL: torch.Tensor
) -> None:
    """Update the running top-k of every column (in place) with a chunk of rows ``offset .. offset + N``.

    Only the columns whose chunk maximum beats their current k-th best can change; after a few chunks
    that is a small share of them (and none for a latent that does not fire), so ``topk`` across rows,
    the slow part, runs on those columns only. Columns are gathered and written back with
    ``index_select``/``index_copy_``, which stay cheap where advanced indexing is not.
    """
    k = best_val_KL.shape[0]
    chunk_k = min(k, vals_NL.shape[0])
    cols_C = (vals_NL.amax(0) > best_val_KL[-1]).nonzero().squeeze(1)
    if cols_C.numel() == 0:
        return
    every = cols_C.numel() == vals_NL.shape[1]
    sub_NC = vals_NL if every else vals_NL.index_select(1, cols_C)
    val_KC, row_KC = sub_NC.topk(chunk_k, dim=0)
    cur_val_KC = best_val_KL if every else best_val_KL.index_select(1, cols_C)
    cur_row_KC = best_row_KL if every else best_row_KL.index_select(1, cols_C)
    top_val_KC, pick_KC = torch.cat([cur_val_KC, val_KC]).topk(k, dim=0)
    top_row_KC = torch.cat([cur_row_KC, row_KC + offset]).gather(0, pick_KC)
    if every:
        best_val_KL.copy_(top_val_KC)
        best_row_KL.copy_(top_row_KC)
    else:
        best_val_KL.index_copy_(1, cols_C, top_val_KC)
        best_row_KL.index_copy_(1, cols_C, top_row_KC)


def frequency_summary(freq_F: torch.Tensor) -> dict[str, float]:
    """Count, dead fraction (never active), dense fraction (active on > 10% of tokens), mean and quantiles."""
    freq = freq_F.double().flatten()
    if freq.numel() == 0:
        return {"n_latents": 0.0}
    summary = {
        "n_latents": float(freq.numel()),
        "dead_fraction": float((freq == 0).double().mean()),
        "dense_fraction": float((freq > 0.1).double().mean()),
        "mean": float(freq.mean()),
        "min": float(freq.min()),
    }
    values = torch.quantile(freq, torch.tensor([q for _, q in QUANTILES], dtype=torch.float64))
    summary.update({name: float(v) for (name, _), v in zip(QUANTILES, values, strict=True)})
    summary["max"] = float(freq.max())
    return summary


# ----------------------------------------------------------------------------------------------------
# Decoding context windows


def _batch_decoder(tokenizer: Any) -> Callable[[list[list[int]]], list[str]]:
    """Decode many id lists at once: the Rust backend's ``decode_batch`` when there is one (fast, parallel)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None and hasattr(backend, "decode_batch"):
        return lambda seqs: list(backend.decode_batch(seqs, skip_special_tokens=False))
    return lambda seqs: [tokenizer.decode(seq) for seq in seqs]


def _special_ids(tokenizer: Any) -> set[int]:
    return {int(i) for i in getattr(tokenizer, "all_special_ids", []) or []}


def _decode_windows(
    tokenizer: Any,
    input_ids_CT: torch.Tensor,
    where: Mapping[int, tuple[int, int]],
    window: int,
) -> dict[int, tuple[str, str]]:
    """Per row: the text of up to ``window`` tokens either side of its token, the token marked, and the token.

    The window stops at special tokens (BOS, the separator between documents), so it never runs into
    another document. The marker is placed from the decoded lengths of the left part and of the left part
    plus the token, so tokenizers that merge or drop spaces on decoding still get it around the token;
    a space in front of the token is moved outside the marker (``the ⟦bank⟧``, not ``the⟦ bank⟧``).
    """
    special = _special_ids(tokenizer)
    parts: list[tuple[list[int], int, list[int]]] = []
    for context, position in where.values():
        ids = input_ids_CT[context].tolist()
        start = position
        while start > 0 and position - start < window and ids[start - 1] not in special:
            start -= 1
        stop = position + 1
        while stop < len(ids) and stop - position - 1 < window and ids[stop] not in special:
            stop += 1
        left, target, right = ids[start:position], ids[position], ids[position + 1 : stop]
        parts.append((left, target, right))
    decode = _batch_decoder(tokenizer)
    texts = decode(
        [
            seq
            for left, target, right in parts
            for seq in (left, [*left, target], [*left, target, *right], [target])
        ]
    )
    out: dict[int, tuple[str, str]] = {}
    for i, row in enumerate(where):
        before, through, full, token = texts[4 * i : 4 * i + 4]
        if through.startswith(before) and full.startswith(through):
            head, mark, tail = before, through[len(before) :], full[len(through) :]
        else:  # a tokenizer whose decoding is not prefix-stable: decode the pieces separately
            right = parts[i][2]
            head, mark, tail = before, token, (decode([right])[0] if right else "")
            if head and mark and not mark[0].isspace():
                head += " "
        stripped = mark.lstrip()
        head += mark[: len(mark) - len(stripped)]
        out[row] = (f"{head}{MARK_OPEN}{stripped}{MARK_CLOSE}{tail}".strip(), token)
    return out


# ----------------------------------------------------------------------------------------------------
# Breakdown by firing frequency


def _bin_label(low: float, high: float, last: bool) -> str:
    return f"[{low:g}, {high:g}{']' if last else ')'}"


def _field(row: Any, name: str) -> Any:
    return row[name] if isinstance(row, Mapping) else getattr(row, name)


def frequency_breakdown(
    details_rows: Sequence[Any],
    firing_frequency: Mapping[str, float] | Mapping[int, float],
    bins: Sequence[float] = DEFAULT_FREQUENCY_BINS,
) -> dict[str, dict[str, Any]]:
    """PS-Eval metrics of the pairs grouped by how often their top latent fires on the corpus.

    A pair's frequency is that of the top latent of its **context 1** (``latent_1``): a pair has one
    frequency only if we pick one context, and for the pairs predicted "same" (the ones whose verdict a
    dense latent could inflate) both contexts share that latent anyway; context 1 is the pair's first
    sentence, so the choice is fixed and reproducible. Bins are ``[low, high)``, the last one closed
    (``bins`` must be increasing). Pairs whose context 1 has no active latent go to ``"no active latent"``,
    and pairs whose latent is missing from ``firing_frequency`` to ``"frequency unknown"``; those two
    groups appear only when not empty, the frequency bins always (in order, possibly with 0 pairs).

    ``details_rows`` are :class:`pseval.evals.schema.PairDetail` objects or dicts with ``label``,
    ``latent_1`` and ``latent_2``; ``firing_frequency`` maps latents (as str or int) to frequencies, e.g.
    :attr:`CorpusLatentStats.firing_frequency`. Each group holds the PS-Eval metrics
    (:func:`pseval.metrics.ps_eval.ps_eval_metrics`) and the bin's bounds.
    """
    edges = [float(b) for b in bins]
    if len(edges) < 2 or any(hi <= lo for lo, hi in itertools.pairwise(edges)):
        raise ConfigError(
            f"frequency bins {edges} must be at least two increasing edges", "pass e.g. (0, 1e-3, 1)"
        )
    freq = {str(key): float(value) for key, value in firing_frequency.items()}
    pairs = list(itertools.pairwise(edges))
    labels = [_bin_label(lo, hi, i == len(pairs) - 1) for i, (lo, hi) in enumerate(pairs)]
    groups: dict[str, list[Any]] = {label: [] for label in labels}
    extra: dict[str, list[Any]] = {NO_ACTIVE_BIN: [], UNKNOWN_BIN: []}
    outside: list[Any] = []
    for row in details_rows:
        latent = int(_field(row, "latent_1"))
        if latent == NO_LATENT:
            extra[NO_ACTIVE_BIN].append(row)
            continue
        value = freq.get(str(latent))
        if value is None or math.isnan(value):
            extra[UNKNOWN_BIN].append(row)
            continue
        i = int(np.searchsorted(edges, value, side="right")) - 1
        if i == len(edges) - 1 and value == edges[-1]:
            i -= 1
        if 0 <= i < len(labels):
            groups[labels[i]].append(row)
        else:
            outside.append(row)
    if outside:
        extra[f"outside [{edges[0]:g}, {edges[-1]:g}]"] = outside

    def metrics(rows: list[Any], low: float | None, high: float | None) -> dict[str, Any]:
        result = ps_eval_metrics(
            [int(_field(r, "label")) for r in rows],
            [int(_field(r, "latent_1")) for r in rows],
            [int(_field(r, "latent_2")) for r in rows],
        ).model_dump()
        return {**result, "frequency_low": low, "frequency_high": high}

    out = {label: metrics(groups[label], lo, hi) for label, (lo, hi) in zip(labels, pairs, strict=True)}
    out.update({name: metrics(rows, None, None) for name, rows in extra.items() if rows})
    return out
