"""The on-disk layout of an activation cache: safetensors shards, a manifest, and the contexts index.

A cache folder holds ``shard_NNNNN.safetensors`` (the rows of one hook, in corpus order), ``manifest.json``
and ``contexts.safetensors`` (the token ids of every harvested context and each row's context and
position). :class:`pseval.activations.store.ActivationStore` writes and finds them; the readers here
need only the folder.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from pseval._io import stable_hash
from pseval.errors import DataError

STORE_FORMAT_VERSION = 2
"""Bumped whenever the cached layout or the packing changes, so old caches are not reused.

2: every cache folder also holds ``contexts.safetensors`` (token ids and a per-row index).
"""

_FP16_MAX = 65504.0
_MANIFEST = "manifest.json"
_CONTEXTS = "contexts.safetensors"


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """A short hash of a tokenizer's vocabulary and special tokens (part of every cache key)."""
    vocab = tokenizer.get_vocab() if hasattr(tokenizer, "get_vocab") else {}
    return stable_hash(
        type(tokenizer).__name__,
        sorted(vocab.items()),
        [tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id],
        sorted(tokenizer.all_special_ids),
    )


class _ShardWriter:
    """Accumulates rows of one hook and writes them as fixed-size safetensors shards."""

    def __init__(self, folder: Path, dtype: torch.dtype, shard_tokens: int, hook_name: str) -> None:
        self.folder = folder
        self.dtype = dtype
        self.shard_tokens = shard_tokens
        self.hook_name = hook_name
        self.pending: list[torch.Tensor] = []
        self.n_pending = 0
        self.shards: list[dict[str, Any]] = []
        self.d_in: int | None = None

    def add(self, rows_ND: torch.Tensor) -> None:
        if self.dtype == torch.float16 and rows_ND.numel() and float(rows_ND.abs().max()) > _FP16_MAX:
            raise DataError(
                f"activations at {self.hook_name} exceed the float16 range (|x| > {_FP16_MAX:g})",
                "pass --cache-dtype bfloat16 or --cache-dtype float32",
            )
        self.d_in = rows_ND.shape[-1]
        self.pending.append(rows_ND.detach().to(device="cpu", dtype=self.dtype))
        self.n_pending += rows_ND.shape[0]
        while self.n_pending >= self.shard_tokens:
            self._flush(self.shard_tokens)

    def _flush(self, n_rows: int) -> None:
        block = torch.cat(self.pending)
        shard, rest = block[:n_rows], block[n_rows:]
        name = f"shard_{len(self.shards):05d}.safetensors"
        save_file({"acts": shard.contiguous()}, str(self.folder / name))
        self.shards.append({"file": name, "n_rows": int(shard.shape[0])})
        self.pending = [rest] if rest.shape[0] else []
        self.n_pending = int(rest.shape[0])

    def close(self) -> None:
        if self.n_pending:
            self._flush(self.n_pending)


class CachedContexts(NamedTuple):
    """Where the rows of a cache come from: the harvested contexts and, per row, a context and a position.

    Row ``i`` of the cache is the activation at token ``input_ids_CT[context_N[i], position_N[i]]``.
    Everything is int32 (4 bytes per token and 8 per row, against hundreds per cached activation).
    """

    input_ids_CT: torch.Tensor
    """Token ids of the harvested contexts, ``[n_contexts, context_size]`` int32."""
    context_N: torch.Tensor
    """Context index of each row, ``[n_rows]`` int32."""
    position_N: torch.Tensor
    """Position of each row in its context, ``[n_rows]`` int32."""


class _ContextRecorder:
    """Collects the token ids of the harvested contexts and the (context, position) of every kept row."""

    def __init__(self) -> None:
        self.input_ids: list[torch.Tensor] = []
        self.rows: list[torch.Tensor] = []
        self.n_contexts = 0

    def add(self, input_ids_BT: torch.Tensor, keep_BT: torch.Tensor, n_rows: int) -> None:
        """Record one batch of contexts, of which the first ``n_rows`` kept positions became rows."""
        where_N2 = keep_BT.nonzero()[:n_rows].to(device="cpu", dtype=torch.int32)  # row-major = mask order
        if where_N2.shape[0] == 0:
            return
        where_N2[:, 0] += self.n_contexts
        used = int(where_N2[-1, 0]) - self.n_contexts + 1  # contexts past the last row are not kept
        self.input_ids.append(input_ids_BT[:used].to(device="cpu", dtype=torch.int32))
        self.rows.append(where_N2)
        self.n_contexts += used

    def tensors(self) -> dict[str, torch.Tensor]:
        input_ids = torch.cat(self.input_ids) if self.input_ids else torch.zeros(0, 0, dtype=torch.int32)
        rows = torch.cat(self.rows) if self.rows else torch.zeros(0, 2, dtype=torch.int32)
        return {"input_ids": input_ids.contiguous(), "row_index": rows.contiguous()}


def load_cached_contexts(folder: str | Path, n_tokens: int | None = None) -> CachedContexts:
    """The contexts of a cache folder and the (context, position) of its first ``n_tokens`` rows (all when None).

    Only the needed part of the file is read, so a small query on a large cache stays cheap.
    """
    folder = Path(folder)
    path = folder / _CONTEXTS
    if not path.is_file():
        raise DataError(
            f"activation cache {folder} has no {_CONTEXTS} (written by an older pseval)", f"delete {folder}"
        )
    try:
        with safe_open(str(path), framework="pt") as handle:
            rows = handle.get_slice("row_index")
            n_rows = int(rows.get_shape()[0])
            take = n_rows if n_tokens is None else n_tokens
            if take > n_rows:
                raise DataError(
                    f"activation cache {folder} indexes {n_rows:,} rows, fewer than the {take:,} asked for",
                    f"delete {folder}",
                )
            row_index_N2 = rows[:take]
            n_contexts = int(row_index_N2[-1, 0]) + 1 if take else 0
            input_ids_CT = handle.get_slice("input_ids")[:n_contexts]
    except (OSError, RuntimeError, KeyError) as exc:
        raise DataError(f"activation cache file {path} is unreadable ({exc})", f"delete {folder}") from exc
    return CachedContexts(input_ids_CT, row_index_N2[:, 0].contiguous(), row_index_N2[:, 1].contiguous())


def iter_cached_rows(folder: str | Path, n_tokens: int, chunk_rows: int) -> Iterator[torch.Tensor]:
    """Rows of a cache folder in order (in the cached dtype), ``chunk_rows`` at a time, stopping after ``n_tokens``."""
    folder = Path(folder)
    manifest = _read_manifest(folder)
    if manifest is None:
        raise DataError(f"activation cache {folder} has no readable manifest", f"delete {folder}")
    remaining = n_tokens
    for shard in manifest["shards"]:
        path = folder / shard["file"]
        try:
            with safe_open(str(path), framework="pt") as handle:
                acts = handle.get_slice("acts")
                n_rows = int(acts.get_shape()[0])
                for start in range(0, n_rows, chunk_rows):
                    stop = min(start + chunk_rows, n_rows, start + remaining)
                    yield acts[start:stop]
                    remaining -= stop - start
                    if remaining == 0:
                        return
        except (OSError, RuntimeError, KeyError) as exc:
            raise DataError(
                f"activation cache shard {path} is unreadable ({exc})", f"delete {folder}"
            ) from exc
    if remaining:
        raise DataError(
            f"activation cache {folder} holds fewer rows than its manifest says", f"delete {folder}"
        )


def _read_manifest(folder: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((folder / _MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
