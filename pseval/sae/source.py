"""Opening an SAE cheaply: its validated config and where its tensors lie, before any weight is read.

:func:`pseval.sae.formats.loader.open_sae` reads configs and safetensors headers only, so a run can validate every SAE it was given
before the first model pass and then materialise them one at a time with :meth:`SAESource.load`.
``load_sae(spec)`` is ``open_sae(spec).load()``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pseval.errors import SAEError

if TYPE_CHECKING:
    from pseval.sae.config import SAEConfig
    from pseval.sae.lazy import LatentBlocks
    from pseval.sae.model import SAE

#: When the bytes :meth:`SAESource.content_hash` would read add up to more than this, the files are identified by
#: their headers, sizes and mtimes instead.
FULL_HASH_LIMIT_BYTES = 256 * 1024 * 1024

BYTES_HASH = "xxh3_128"
"""The hash of an SAE's bytes in its identity: xxh3 (128 bits, 16 hex digits kept), a non-cryptographic hash
that keeps up with the read it rides on; sha256 (identity versions 1 and 2) did not, and is kept to recognise
results stored by them."""


def new_digest(algorithm: str = BYTES_HASH) -> Any:
    """A fresh ``hashlib``-like digest of ``algorithm``: ``"xxh3_128"`` or ``"sha256"``."""
    if algorithm == "sha256":
        return hashlib.sha256()
    if algorithm != "xxh3_128":
        raise ValueError(f"unknown hash {algorithm!r}")
    import xxhash

    return xxhash.xxh3_128()


ByteRanges = Sequence[tuple[int, int]]
"""Byte ranges ``[begin, end)`` of one file, in order."""
ReadChunks = Callable[[Path, ByteRanges], Iterable[bytes | memoryview]]
"""``read_chunks(path, ranges)``: the bytes of those ranges of ``path``, in order; each chunk stays valid until
the one after the next is asked for (it is hashed while the next is read)."""


@dataclass(frozen=True)
class TensorRef:
    """One tensor inside a ``.safetensors`` file, named and oriented the pseval way once read."""

    path: Path
    """The ``.safetensors`` file on disk."""
    key: str
    """The tensor's name inside that file."""
    transposed: bool = False
    """True when the file stores the transpose of pseval's orientation."""


@dataclass
class SAESource:
    """An opened SAE: its validated config and how to materialise it, with no weight data in memory."""

    spec: str
    """What the user passed (a path, ``saelens:RELEASE/ID``, ...)."""
    cfg: SAEConfig
    """Validated config (d_in, d_sae, architecture, hook_name, model_name, metadata)."""
    format: str
    """Registered format name, e.g. ``saelens``, ``gemma_scope_2``."""
    path: Path | None
    """Folder or file the SAE was read from (None for an in-memory SAE)."""
    release: str | None = None
    """SAELens release, for ``saelens:RELEASE/ID`` specs."""
    sae_id: str | None = None
    """SAELens SAE id, for ``saelens:RELEASE/ID`` specs."""
    tensors: dict[str, TensorRef] | None = None
    """pseval-named tensors (W_enc [d_in, d_sae], W_dec [d_sae, d_in], ...) when each can be read lazily
    from safetensors without conversion; None otherwise."""
    files: tuple[Path, ...] = ()
    """The files the SAE is made of (weights and configs), for :meth:`content_hash`."""
    builder: Callable[[str | None], SAE] | None = field(default=None, repr=False)
    """Reads the weights and returns the SAE on cpu (``dtype`` override or None)."""
    weights_fingerprint: str | None = None
    """Hash of the weights when they were read at open time (SAEs without files of their own)."""
    conversion: str | None = None
    """How the reader turns these files into weights where that changed after results were first written (the
    Gemma Scope embedding rescale, Llama Scope's float32 fold): part of :meth:`content_hash`, so a result
    computed from the earlier weights is not taken for one of these."""

    block_reader: Callable[[str | None], LatentBlocks] | None = field(default=None, repr=False)
    """Reads the latents block by block itself (``dtype`` override or None): dictionaries scored without
    ``tensors`` of their own (the views of a cross-layer transcoder or crosscoder, :mod:`pseval.sae.multilayer`)."""
    parts: tuple[SAESource, ...] = field(default=(), repr=False)
    """Sources whose ``tensors`` hold every weight this one is read from (its NaN/Inf check streams them)."""
    checked_tensors: frozenset[str] = field(default=frozenset(), repr=False)
    """The tensors of ``tensors`` checked for NaN/Inf at the config's dtype before the model pass (the streamed
    check of the content hash): block reads of them at that dtype skip their own check."""

    @property
    def weights_checked(self) -> bool:
        """Whether every tensor of ``tensors`` was checked already (a load then skips its own check)."""
        return self.tensors is not None and self.checked_tensors >= set(self.tensors)

    @property
    def blockwise(self) -> bool:
        """Whether the SAE can be scored block by block from its files, never loaded whole."""
        return self.tensors is not None or self.block_reader is not None

    def load(self, device: str = "cpu", dtype: str | None = None, checked: bool = False) -> SAE:
        """Materialise the SAE (weights memory-mapped where the format allows), checked for NaN/Inf unless
        ``checked`` (every tensor of these files already checked, at the dtype they load with)."""
        from pseval.sae.formats._common import check_dtype, check_finite

        if self.builder is None:
            raise SAEError(f"{self.spec} cannot be loaded: it has no weights reader", "pass the SAE's folder")
        dtype = check_dtype(dtype)
        sae = self.builder(dtype)
        if not (checked and dtype is None):
            check_finite(sae, self.spec)
        # The config from open_sae is authoritative for hook, model and metadata; the weights decide the dtype.
        if {**sae.cfg.arch_fields()} != {**self.cfg.arch_fields()}:
            raise SAEError(
                f"{self.spec} changed on disk since it was opened (its config no longer matches)",
                "run again; do not modify SAE files during a run",
            )
        sae.cfg = self.cfg.model_copy(
            deep=True, update={"dtype": sae.cfg.dtype, "metadata": {**sae.cfg.metadata, **self.cfg.metadata}}
        )
        return sae.to(device)

    def hashes_bytes(self, apart: Mapping[Path, ByteRanges] | None = None) -> bool:
        """Whether :meth:`content_hash` (leaving ``apart`` out) reads the bytes it hashes (few enough)."""
        try:
            return self._hashed_bytes(apart) <= FULL_HASH_LIMIT_BYTES
        except OSError:
            return False

    def _hashed_bytes(self, apart: Mapping[Path, ByteRanges] | None) -> int:
        skipped = sum(end - begin for ranges in (apart or {}).values() for begin, end in ranges)
        return sum(p.stat().st_size for p in set(self.files)) - skipped

    def content_hash(
        self,
        read_chunks: ReadChunks | None = None,
        apart: Mapping[Path, ByteRanges] | None = None,
        algorithm: str = BYTES_HASH,
    ) -> str:
        """A stable hash of the config and of the weight files' bytes: which SAE a result is of.

        ``apart`` maps a file to byte ranges left out of this hash but for their place: the decoder
        (:func:`pseval.sae.weights_check.decoder_ranges`), which scoring reads only a few rows of. A result
        covers it apart: by the hash of the whole decoder when a metric of the run reads it all, else by the
        hash of the rows its scores read (:mod:`pseval.evals.plan`). Without ``apart`` every byte is hashed
        (the identity of results stored with identity version 1). When the hashed bytes would exceed
        :data:`FULL_HASH_LIMIT_BYTES`, each file is identified by its header, size and mtime instead.
        ``read_chunks(path, ranges)`` yields those ranges' bytes in order (by default 1 MiB reads): a caller
        that checks the weights as they stream past hashes and checks them in one read. ``algorithm`` is
        :data:`BYTES_HASH`, or ``"sha256"`` for the identity an earlier version computed.
        """
        digest = new_digest(algorithm)
        digest.update(json.dumps(self.cfg.arch_fields(), sort_keys=True, default=str).encode())
        digest.update(json.dumps([self.cfg.hook_name, self.cfg.model_name]).encode())
        if self.weights_fingerprint is not None:
            digest.update(self.weights_fingerprint.encode())
        if self.conversion is not None:
            digest.update(self.conversion.encode())
        if not self.files and self.weights_fingerprint is None:
            digest.update(self.spec.encode())
        try:
            by_bytes = self._hashed_bytes(apart) <= FULL_HASH_LIMIT_BYTES
        except OSError as exc:
            raise SAEError(
                f"cannot read the files of {self.spec} ({exc})", "check the SAE's folder"
            ) from None
        for p in sorted(set(self.files)):
            digest.update(p.name.encode())
            stat = p.stat()
            if not by_bytes:
                digest.update(f"{stat.st_size}:{stat.st_mtime_ns}".encode())
                digest.update(_file_head(p))
                continue
            left_out = sorted((apart or {}).get(p, ()))
            hash_ranges(digest, (read_chunks or _file_chunks)(p, _complement(left_out, stat.st_size)))
            if left_out:
                digest.update(f"apart {left_out}".encode())
        return digest.hexdigest()[:16]


def hash_ranges(digest: Any, chunks: Iterable[bytes | memoryview]) -> None:
    """``digest.update`` of every chunk in order, each hashed on a second thread while the next is read (both
    release the GIL), so hashing a file takes about as long as reading it."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="pseval-hash") as pool:
        pending: Future[None] | None = None
        for chunk in chunks:
            if pending is not None:
                pending.result()
            pending = pool.submit(digest.update, chunk)
        if pending is not None:
            pending.result()


def _complement(left_out: ByteRanges, size: int) -> list[tuple[int, int]]:
    """The ranges of ``[0, size)`` outside ``left_out`` (sorted, disjoint)."""
    ranges, at = [], 0
    for begin, end in left_out:
        if begin > at:
            ranges.append((at, begin))
        at = max(at, end)
    if at < size:
        ranges.append((at, size))
    return ranges


def _file_chunks(path: Path, ranges: ByteRanges) -> Iterator[bytes | memoryview]:
    with path.open("rb") as fh:
        for begin, end in ranges:
            fh.seek(begin)
            left = end - begin
            while left > 0:
                chunk = fh.read(min(1 << 20, left))
                if not chunk:
                    return
                left -= len(chunk)
                yield chunk


def _file_head(path: Path) -> bytes:
    """The safetensors header of ``path`` (or its first MiB for other files)."""
    with path.open("rb") as fh:
        if path.suffix == ".safetensors":
            raw = fh.read(8)
            if len(raw) == 8:
                n = int.from_bytes(raw, "little")
                if 0 < n < 100 * 1024 * 1024:
                    return raw + fh.read(n)
        fh.seek(0)
        return fh.read(1 << 20)
