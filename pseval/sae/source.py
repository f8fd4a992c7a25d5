"""Opening an SAE cheaply: its validated config and where its tensors lie, before any weight is read.

:func:`pseval.sae.formats.loader.open_sae` reads configs and safetensors headers only, so a run can validate every SAE it was given
before the first model pass and then materialise them one at a time with :meth:`SAESource.load`.
``load_sae(spec)`` is ``open_sae(spec).load()``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pseval.errors import SAEError

if TYPE_CHECKING:
    from pseval.sae.config import SAEConfig
    from pseval.sae.lazy import LatentBlocks
    from pseval.sae.model import SAE

#: Files larger than this (in total) are identified by their headers, sizes and mtimes instead of their bytes.
FULL_HASH_LIMIT_BYTES = 256 * 1024 * 1024


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
    weights_checked: bool = field(default=False, repr=False)
    """Every tensor of ``tensors`` was checked for NaN/Inf at the config's dtype (the streamed check of the
    content hash passed): block reads at that dtype skip their own check."""

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

    def hashes_bytes(self) -> bool:
        """Whether :meth:`content_hash` reads every byte of the files (they are small enough)."""
        try:
            return sum(p.stat().st_size for p in set(self.files)) <= FULL_HASH_LIMIT_BYTES
        except OSError:
            return False

    def content_hash(self, read_chunks: Callable[[Path], Iterable[bytes | memoryview]] | None = None) -> str:
        """A stable hash of the weight files' bytes (headers, sizes and mtimes when huge) and the config.

        ``read_chunks(path)`` yields a file's bytes in order (by default 1 MiB reads): a caller that checks
        the weights as they stream past hashes and checks them in one read.
        """
        digest = hashlib.sha256()
        digest.update(json.dumps(self.cfg.arch_fields(), sort_keys=True, default=str).encode())
        digest.update(json.dumps([self.cfg.hook_name, self.cfg.model_name]).encode())
        if self.weights_fingerprint is not None:
            digest.update(self.weights_fingerprint.encode())
        if self.conversion is not None:
            digest.update(self.conversion.encode())
        if not self.files and self.weights_fingerprint is None:
            digest.update(self.spec.encode())
        files = sorted(set(self.files))
        try:
            total = sum(p.stat().st_size for p in files)
        except OSError as exc:
            raise SAEError(
                f"cannot read the files of {self.spec} ({exc})", "check the SAE's folder"
            ) from None
        for p in files:
            digest.update(p.name.encode())
            if total <= FULL_HASH_LIMIT_BYTES:
                for chunk in (read_chunks or _file_chunks)(p):
                    digest.update(chunk)
            else:
                stat = p.stat()
                digest.update(f"{stat.st_size}:{stat.st_mtime_ns}".encode())
                digest.update(_file_head(p))
        return digest.hexdigest()[:16]


def _file_chunks(path: Path) -> Iterator[bytes | memoryview]:
    with path.open("rb") as fh:
        yield from iter(lambda: fh.read(1 << 20), b"")


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
