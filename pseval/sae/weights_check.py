"""Reading an SAE's files once before the model pass: the identity hash and the NaN/Inf check in one stream.

Scoring reads the encoder side (``W_enc``, the per-latent vectors, ``b_dec``) whole and the decoder only for a
few rows (the chosen latents' decoder cosines and logit lens). So the encoder side is what is read before the
model pass, when those bytes are few enough (:data:`pseval.sae.source.FULL_HASH_LIMIT_BYTES`): once,
sequentially, each piece checked for NaN/Inf as it passes (inside a floating-point tensor) and hashed on a
second thread while the next is read (:func:`hash_and_check`); scoring then finds it in the page cache. The
decoder (:func:`decoder_ranges`) is hashed apart: read, checked and hashed in the same stream when a metric of
the run reads it whole (site check, standard metrics, folded decoder norms), else never read before the model
pass; a result then records the hash of the decoder rows its scores read, checked when it is kept
(:mod:`pseval.evals.plan`). A larger SAE is identified by its headers, sizes and mtimes; before the model pass
only its per-latent vectors are read and checked (:func:`check_vectors`), and its matrices are checked block
by block as scoring reads them (:class:`pseval.sae.lazy.SafetensorsBlocks`), so its decoder is read only
where a metric needs its rows.
"""

from __future__ import annotations

import hashlib
import itertools
import os
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import torch

from pseval.errors import SAEError
from pseval.sae.lazy import BLOCK_ELEMENTS, all_finite, read_byte_ranges
from pseval.sae.source import BYTES_HASH, hash_ranges, new_digest
from pseval.sae.threads import small_ops

if TYPE_CHECKING:
    from pseval.sae.lazy import LatentBlocks
    from pseval.sae.source import ByteRanges, SAESource

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


_FLOAT_BITS: dict[torch.dtype, Any] = {
    torch.float16: np.uint16(0x7C00),
    torch.bfloat16: np.uint16(0x7F80),
    torch.float32: np.uint32(0x7F800000),
    torch.float64: np.uint64(0x7FF0000000000000),
}
"""Each float dtype's exponent mask, as an unsigned integer of its size: all exponent bits set is NaN or Inf."""


def finite_on_this_thread(raw: torch.Tensor, stored: torch.dtype, dtype: torch.dtype) -> bool:
    """True when the bytes ``raw`` (uint8) hold ``stored`` values that stay finite cast to ``dtype``, decided
    by numpy on the calling thread; False when some value is NaN or Inf, or the cast could overflow (a
    narrowing cast: :func:`~pseval.sae.lazy.all_finite` decides).

    torch would run the pass on an OpenMP team whose idle threads spin after it; on a background read
    (:class:`pseval.evals.plan.WeightReads`) they took a core from the model load running beside it.
    """
    if stored not in _FLOAT_BITS or dtype not in _FLOAT_BITS:
        return False
    if dtype != stored and dtype.itemsize <= stored.itemsize:
        return False  # float16 <-> bfloat16 or a narrowing cast: may overflow
    mask = _FLOAT_BITS[stored]
    if stored in (torch.float32, torch.float64):
        # A sum first (NaN and Inf propagate into it); each entry only when it is not finite (or overflowed).
        values = raw.numpy().view(np.float32 if stored == torch.float32 else np.float64)
        with np.errstate(over="ignore", invalid="ignore"):  # what the sum is for: told by its result
            return bool(np.isfinite(np.add.reduce(values))) or bool(np.isfinite(values).all())
    bits = raw.numpy().view(mask.dtype)
    return not bool(np.any(np.bitwise_and(bits, mask) == mask))


class ReadBuffers:
    """The two byte buffers a streamed read takes in turn, made once for the reads of many SAEs (buffers made
    anew for each SAE are fresh memory the kernel maps in page by page: 8,192 page faults per 32 MiB)."""

    def __init__(self, piece_bytes: int = PIECE_BYTES) -> None:
        self.piece_bytes = piece_bytes
        self.pair = [torch.empty(piece_bytes, dtype=torch.uint8, device="cpu") for _ in range(2)]


class StreamedCheck:
    """The NaN/Inf check of an SAE's tensors riding on a sequential read of its files (see :meth:`chunks`)."""

    def __init__(
        self, source: SAESource, piece_bytes: int = PIECE_BYTES, buffers: ReadBuffers | None = None
    ) -> None:
        self.source = source
        self.piece_bytes = max(8, piece_bytes // 8 * 8)
        self.buffers = buffers
        """Buffers shared by the reads of many SAEs (else two per file, let go when it is read); the caller
        drops them (``None``) once the files are read, as a run keeps each SAE's check until it is scored."""
        self._dtype = source.cfg.torch_dtype()
        self._spans = _spans(source)
        self._bad: dict[str, str] = {}
        self._truncated: Path | None = None
        self._read: set[str] = set()
        self._floating = {name for spans in self._spans.values() for span in spans for name in span.names}

    def _check(self, span: _Span, piece: torch.Tensor) -> None:
        if finite_on_this_thread(piece, span.stored, self._dtype):
            return
        values = piece.view(span.stored).to(self._dtype)
        if not all_finite(values):
            kind = "NaN" if bool(torch.isnan(values).any()) else "Inf"
            for name in span.names:
                self._bad.setdefault(name, kind)

    def chunks(self, path: Path, ranges: ByteRanges) -> Iterator[memoryview]:
        """The bytes of ``ranges`` of ``path`` in order, checking tensor bytes as they pass; a piece stays valid
        until the one after the next is asked for (two buffers in turn).

        A tensor lying wholly inside ``ranges`` is checked (and counted in :meth:`raise_if_bad`'s verdict); one
        outside them is neither read nor checked here.
        """
        size = os.stat(path).st_size
        spans = self._spans.get(path, [])
        if any(span.end > size for span in spans):
            self._truncated = path
        # Two buffers taken in turn (the hash of one piece overlaps the read of the next, see
        # SAESource.content_hash): the shared ones, else the file's own, let go when it is read.
        if self.buffers is not None and self.buffers.piece_bytes >= self.piece_bytes:
            buffers = self.buffers.pair
        else:
            buffers = ReadBuffers(min(size, self.piece_bytes)).pair
        turn = itertools.cycle(buffers)
        for low, high in ranges:
            for span in spans:
                if low <= span.begin and span.end <= high:
                    self._read.update(span.names)
            inner = (min(max(x, low), high) for s in spans for x in (s.begin, s.end))
            cuts = sorted({low, high, *inner})
            for lo, hi in itertools.pairwise(cuts):
                inside = next((s for s in spans if s.begin <= lo and hi <= s.end), None)
                for offset in range(lo, hi, self.piece_bytes):
                    n = min(self.piece_bytes, hi - offset)
                    piece = read_byte_ranges(path, [(offset, n)], out=next(turn)[:n])
                    if inside is not None and not n % inside.stored.itemsize:
                        self._check(inside, piece)
                    yield piece.numpy().data

    def raise_if_bad(self) -> None:
        """Raise what :func:`check_finite_tensors` raises (the first bad tensor, load order);
        else record the tensors read as checked (``SAESource.checked_tensors``)."""
        if self._truncated is not None:
            raise SAEError(f"{self._truncated} is truncated", "re-download or re-save the SAE")
        _raise_first(self.source, self._bad)
        # Integer tensors hold no NaN: checked once read. Tensors never read stay unchecked.
        read = self._read | (set(self.source.tensors or ()) - self._floating)
        self.source.checked_tensors = self.source.checked_tensors | frozenset(read)


def decoder_ranges(source: SAESource) -> dict[Path, list[tuple[int, int]]]:
    """The byte ranges of ``source``'s decoder, which scoring reads only a few rows of (none when the
    architecture's encoder needs it whole: a TopK SAE that rescales by decoder norms)."""
    from pseval.sae.architectures import architecture_of

    if source.tensors is None or "W_dec" in architecture_of(source.cfg).block_tensors(source.cfg):
        return {}
    ranges: dict[Path, list[tuple[int, int]]] = {}
    for path, spans in _spans(source).items():
        for span in spans:
            if span.names == ("W_dec",):  # a place holding only the decoder (not one tied to the encoder)
                ranges.setdefault(path, []).append((span.begin, span.end))
    return {path: sorted(found) for path, found in ranges.items()}


class WeightsRead(NamedTuple):
    """What :func:`hash_and_check` read of an SAE's files."""

    content_hash: str
    """:meth:`SAESource.content_hash`, the decoder left apart when it is hashed apart (see there)."""
    decoder_hash: str | None
    """Hash (16 hex digits) of the decoder's bytes when they were read (``read_decoder``); None when they
    were not or are inside ``content_hash``."""
    check: Callable[[], None] | None
    """Raises the first bad tensor's error and records the tensors checked; None when nothing was read."""
    decoder_unhashed: bool = False
    """The decoder's bytes are in neither hash (left apart and not read): a result covers the rows its scores
    read by their own hash (:func:`decoder_rows_hash`)."""


def hash_and_check(
    source: SAESource,
    read_decoder: bool = True,
    algorithm: str = BYTES_HASH,
    own_threads: bool = False,
    buffers: ReadBuffers | None = None,
) -> WeightsRead:
    """The content hash and, from the same sequential read, the NaN/Inf check of an SAE's files.

    The decoder (:func:`decoder_ranges`) is hashed apart, and read only when ``read_decoder`` (a metric of
    the run reads it whole). The check is returned as a callable that raises the first bad tensor's error
    (the same as :func:`check_finite_tensors`), or None when the files were not read byte by
    byte (huge SAEs, which :func:`check_vectors` and the block reads check instead) or cannot be read lazily.
    Both hashes use ``algorithm`` (:data:`~pseval.sae.source.BYTES_HASH`; ``"sha256"`` for identity version 2).
    The finite checks are short passes run on :func:`~pseval.sae.threads.small_ops` threads, unless
    ``own_threads`` (a read on a background thread: MKL's thread count is process-wide, so setting it there
    would set the main thread's too). ``buffers``: the read buffers of a caller reading many SAEs.
    """
    if own_threads:
        return _hash_and_check(source, read_decoder, algorithm, buffers)
    with small_ops():
        return _hash_and_check(source, read_decoder, algorithm, buffers)


def _hash_and_check(
    source: SAESource, read_decoder: bool, algorithm: str, buffers: ReadBuffers | None
) -> WeightsRead:
    if source.tensors is None:
        return WeightsRead(source.content_hash(apart={}, algorithm=algorithm), None, None)
    apart = decoder_ranges(source)
    if not source.hashes_bytes(apart):
        return WeightsRead(source.content_hash(apart=apart, algorithm=algorithm), None, None)
    check = StreamedCheck(source, buffers=buffers)
    content_hash = source.content_hash(read_chunks=check.chunks, apart=apart, algorithm=algorithm)
    decoder_hash = None
    if read_decoder and apart:
        digest = new_digest(algorithm)
        for path in sorted(apart):
            digest.update(path.name.encode())
            hash_ranges(digest, check.chunks(path, apart[path]))
        decoder_hash = digest.hexdigest()[:16]
    check.buffers = None
    return WeightsRead(content_hash, decoder_hash, check.raise_if_bad, bool(apart) and decoder_hash is None)


def decoder_rows_hash(blocks: LatentBlocks, latents: Sequence[int]) -> str:
    """sha256 (16 hex digits) of ``latents`` and their decoder rows (as float32): the part of the decoder a
    result's scores read when no metric reads it whole."""
    digest = hashlib.sha256()
    ids = sorted({int(i) for i in latents})
    digest.update(torch.tensor(ids, dtype=torch.int64).numpy().tobytes())
    if ids:
        rows_LD = blocks.latent_rows("W_dec", ids).float().cpu().contiguous()
        digest.update(rows_LD.numpy().tobytes())
    return digest.hexdigest()[:16]


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


def check_finite_tensors(
    source: SAESource, block_elements: int = BLOCK_ELEMENTS, names: Collection[str] | None = None
) -> None:
    """:meth:`SAESource.load`'s NaN/Inf check without loading: each tensor streamed from its file in pieces.

    Tensors are read ``block_elements`` entries at a time into one reused buffer (so memory stays at one
    piece whatever the SAE's width), cast to the SAE's dtype as a load would, and checked in the order of
    a loaded SAE's state dict; the first tensor holding NaN or Inf raises the same :class:`SAEError` as
    the load. ``names``: only these tensors (by default all).
    """
    if source.tensors is None and source.parts:
        for part in source.parts:
            check_finite_tensors(part, block_elements, names)
        return
    if source.tensors is None:
        raise SAEError(f"{source.spec} cannot be read lazily", "load it instead")
    dtype = source.cfg.torch_dtype()
    order = _state_order(source)
    places = sorted(
        ((path, span) for path, file_spans in _spans(source).items() for span in file_spans),
        key=lambda place: order.index(place[1].names[0]),  # load order across files; tied tensors read once
    )
    buf = torch.empty(0, dtype=torch.uint8)
    for path, span in places:
        if names is not None and not set(span.names) & set(names):
            continue
        step = max(1, block_elements) * span.stored.itemsize
        if buf.numel() < min(step, span.end - span.begin):
            buf = torch.empty(min(step, span.end - span.begin), dtype=torch.uint8)
        for offset in range(span.begin, span.end, step):
            n = min(step, span.end - offset)
            piece = read_byte_ranges(path, [(offset, n)], out=buf[:n]).view(span.stored).to(dtype)
            if not all_finite(piece):
                kind = "NaN" if bool(torch.isnan(piece).any()) else "Inf"
                _raise_first(source, dict.fromkeys(span.names, kind))


__all__ = [
    "PIECE_BYTES",
    "ReadBuffers",
    "StreamedCheck",
    "WeightsRead",
    "check_finite_tensors",
    "check_vectors",
    "decoder_ranges",
    "decoder_rows_hash",
    "finite_on_this_thread",
    "hash_and_check",
]
