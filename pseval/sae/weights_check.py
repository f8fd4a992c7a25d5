"""Reading an SAE's files once before the model pass: the identity hash and the NaN/Inf check in one stream.

An SAE whose files are small enough to be hashed byte by byte (:data:`pseval.sae.source.FULL_HASH_LIMIT_BYTES`)
is read once, sequentially: each piece updates the hash and, where it lies inside a floating-point tensor, is
checked for NaN/Inf as it passes (:func:`hash_and_check`). A larger SAE is identified by its headers, sizes and
mtimes; before the model pass only its per-latent vectors are read and checked (:func:`check_vectors`), and its
matrices are checked block by block as scoring reads them (:class:`pseval.sae.lazy.SafetensorsBlocks`), so the
decoder is read only where a metric needs its rows.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from pseval.errors import SAEError
from pseval.sae.lazy import all_finite, check_finite_tensors, read_byte_ranges
from pseval.sae.threads import small_ops

if TYPE_CHECKING:
    from pseval.sae.source import SAESource

PIECE_BYTES = 1 << 24
"""Bytes read at once (a multiple of every element size): 16 MiB, one reused buffer."""


@dataclass(frozen=True)
class _Span:
    """The bytes ``[begin, end)`` of one floating-point tensor inside its file, and its pseval names."""

    begin: int
    end: int
    stored: torch.dtype
    names: tuple[str, ...]
    ndim: int


def _state_order(source: SAESource) -> list[str]:
    """Tensor names in a loaded SAE's state-dict order (the order the load checks them in)."""
    assert source.tensors is not None
    order = ["W_enc", "W_dec", "b_dec", *source.cfg.extra_parameters]
    return [n for n in order if n in source.tensors] + [n for n in source.tensors if n not in order]


def _spans(source: SAESource) -> dict[Path, list[_Span]]:
    from pseval.sae.formats._common import safetensors_header

    assert source.tensors is not None
    by_place: dict[tuple[Path, str], list[str]] = {}
    for name in _state_order(source):
        ref = source.tensors[name]
        by_place.setdefault((ref.path, ref.key), []).append(name)
    headers: dict[Path, tuple[dict[str, object], int]] = {}
    spans: dict[Path, list[_Span]] = {}
    for (path, key), names in by_place.items():
        if path not in headers:
            headers[path] = safetensors_header(path)  # type: ignore[assignment]
        entries, data_start = headers[path]
        entry = entries.get(key)
        if entry is None:
            raise SAEError(f"{path} has no tensor {key}", "re-download or re-save the SAE")
        stored = entry.dtype  # type: ignore[attr-defined]
        begin, end = data_start + entry.begin, data_start + entry.end  # type: ignore[attr-defined]
        if (end - begin) % torch.empty(0, dtype=stored).element_size():
            raise SAEError(f"{path} is corrupt (tensor {key})", "re-download or re-save the SAE")
        if stored.is_floating_point:
            ndim = len(entry.shape)  # type: ignore[attr-defined]
            spans.setdefault(path, []).append(_Span(begin, end, stored, tuple(names), ndim))
    return spans


class StreamedCheck:
    """The NaN/Inf check of an SAE's tensors riding on a sequential read of its files (see :meth:`chunks`)."""

    def __init__(self, source: SAESource, piece_bytes: int = PIECE_BYTES) -> None:
        self.source = source
        self.piece_bytes = max(8, piece_bytes // 8 * 8)
        self._dtype = source.cfg.torch_dtype()
        self._spans = _spans(source)
        self._bad: dict[str, str] = {}
        self._truncated: Path | None = None

    def _check(self, span: _Span, piece: torch.Tensor) -> None:
        values = piece.view(span.stored).to(self._dtype)
        if not all_finite(values):
            kind = "NaN" if bool(torch.isnan(values).any()) else "Inf"
            for name in span.names:
                self._bad.setdefault(name, kind)

    def chunks(self, path: Path) -> Iterator[memoryview]:
        """Every byte of ``path`` in order (one reused buffer), checking the tensor bytes as they pass."""
        size = os.stat(path).st_size
        spans = self._spans.get(path, [])
        if any(span.end > size for span in spans):
            self._truncated = path
        cuts = sorted({0, size, *(min(s.begin, size) for s in spans), *(min(s.end, size) for s in spans)})
        # One buffer for the file, let go when it is read (a run keeps each SAE's check until it is scored).
        buf = torch.empty(min(size, self.piece_bytes), dtype=torch.uint8)
        for lo, hi in itertools.pairwise(cuts):
            inside = next((s for s in spans if s.begin <= lo and hi <= s.end), None)
            for offset in range(lo, hi, self.piece_bytes):
                n = min(self.piece_bytes, hi - offset)
                piece = read_byte_ranges(path, [(offset, n)], out=buf[:n])
                if inside is not None and not n % inside.stored.itemsize:
                    self._check(inside, piece)
                yield piece.numpy().data

    def raise_if_bad(self) -> None:
        """Raise what :func:`pseval.sae.lazy.check_finite_tensors` raises (the first bad tensor, load order)."""
        if self._truncated is not None:
            raise SAEError(f"{self._truncated} is truncated", "re-download or re-save the SAE")
        _raise_first(self.source, self._bad)


@small_ops()  # the finite checks are short passes (the hash does not use torch)
def hash_and_check(source: SAESource) -> tuple[str, Callable[[], None] | None]:
    """:meth:`SAESource.content_hash`, and the NaN/Inf check when it rode on the same read.

    The check is returned as a callable that raises the first bad tensor's error (the same as
    :func:`~pseval.sae.lazy.check_finite_tensors`), or None when the files were not read byte by byte (huge
    SAEs, which :func:`check_vectors` and the block reads check instead) or cannot be read lazily.
    """
    if source.tensors is None or not source.hashes_bytes():
        return source.content_hash(), None
    check = StreamedCheck(source)
    return source.content_hash(read_chunks=check.chunks), check.raise_if_bad


def check_vectors(source: SAESource) -> None:
    """The NaN/Inf check of an SAE's per-latent vectors and ``b_dec`` (its 1-d tensors: a small read)."""
    bad: dict[str, str] = {}
    dtype = source.cfg.torch_dtype()
    for path, file_spans in _spans(source).items():
        for span in file_spans:
            if span.ndim > 1:
                continue  # a matrix: checked block by block as scoring reads it
            values = read_byte_ranges(path, [(span.begin, span.end - span.begin)]).view(span.stored).to(dtype)
            if not all_finite(values):
                kind = "NaN" if bool(torch.isnan(values).any()) else "Inf"
                for name in span.names:
                    bad.setdefault(name, kind)
    _raise_first(source, bad)


def _raise_first(source: SAESource, bad: dict[str, str]) -> None:
    """The error of the first non-finite tensor in load order (the message of a load's check)."""
    for name in _state_order(source):
        if name in bad:
            raise SAEError(
                f"SAE {source.spec}: tensor {name} holds non-finite values ({bad[name]})",
                "the weights are corrupt or training diverged; re-download or retrain the SAE",
            )


__all__ = ["PIECE_BYTES", "StreamedCheck", "check_finite_tensors", "check_vectors", "hash_and_check"]
