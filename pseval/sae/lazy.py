"""An SAE's latents one block at a time: codes of every input for latents ``[start, end)``, never all at once.

Three sources of per-latent parameters share one encoder:

* :class:`InMemoryBlocks` slices an :class:`~pseval.sae.model.SAE`;
* :class:`SafetensorsBlocks` reads column blocks of ``W_enc`` (and rows of ``W_dec``) straight from a
  ``.safetensors`` file with ``os.preadv`` at the header's offsets, so the weights never sit in memory as a
  whole; a ``W_enc`` that the streamed check read before the model pass (at most 256 MB, so in the page
  cache) is mapped instead, its blocks strided views of the map, unmapped once the SAE is scored;
* :class:`RandomBlocks` draws the random-SAE control block by block from its seed, equal to
  :meth:`SAE.create_random <pseval.sae.model.SAE.create_random>`.

:func:`feature_blocks` runs the architecture's registered kernel (:mod:`pseval.sae.architectures`), the
one :meth:`SAE.encode` runs at full width, on each block (after the same input preprocessing, and
decoder-norm folding when asked), so block ``j`` of its output equals columns ``[start, end)`` of
``SAE.encode``. JumpReLU, BatchTopK (inference), standard and gated SAEs are per latent; an architecture
whose rule selects per input across the dictionary (TopK, ``row_top_k``) first keeps a streaming top-k of
the kernel's values across blocks (ties broken toward the lower latent index) and then yields its sparse
codes block by block.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import torch

from pseval.errors import SAEError
from pseval.sae.architectures import architecture_of, sae_input
from pseval.sae.config import SAEConfig, TopKSAEConfig
from pseval.sae.model import RANDOM_SEED_BLOCK, SAE, random_encoder_block, random_extras, unit_rows
from pseval.sae.topk_select import block_topk, select_topk

if TYPE_CHECKING:
    from pseval.sae.source import SAESource, TensorRef

BLOCK_ELEMENTS = 1 << 22
"""Entries of one (rows × latents) block of codes: bounds every dense code matrix in memory (16 MiB fp32;
with very many inputs, :data:`MIN_BLOCK_LATENTS` columns of them).

Small enough to stay in the last-level cache while it is scored, and under glibc's largest mmap threshold
(32 MiB), so the blocks' buffers are reused from the heap instead of being faulted in afresh each time."""

SLAB_ELEMENTS = 1 << 23
"""Entries of the column slab read at once from a row-major file matrix (32 MiB fp32; several blocks wide)."""

MIN_BLOCK_LATENTS = 1024
"""Fewest latents per block, however many inputs: a narrower matmul runs well below the machine's speed."""

ROW_CHUNK = 1024
"""Rows encoded at once inside a block (the same row chunks as a whole-SAE encode)."""


def block_latents(n_rows: int, d_sae: int, budget: int = BLOCK_ELEMENTS) -> int:
    """Latents per block for ``n_rows`` inputs: a multiple of the random control's seed block when possible."""
    width = max(MIN_BLOCK_LATENTS, budget // max(1, n_rows))
    if width >= RANDOM_SEED_BLOCK:
        width = width // RANDOM_SEED_BLOCK * RANDOM_SEED_BLOCK
    return min(d_sae, width)


MIN_LAST_BLOCK = 64
"""A narrower last block joins the one before it (BLAS may sum a very narrow product in another order)."""


def block_bounds(d_sae: int, width: int) -> list[tuple[int, int]]:
    """``[start, end)`` of each block of ``width`` latents; a last block under :data:`MIN_LAST_BLOCK` is merged."""
    bounds = [(start, min(d_sae, start + width)) for start in range(0, d_sae, width)]
    if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] < MIN_LAST_BLOCK:
        bounds[-2:] = [(bounds[-2][0], d_sae)]
    return bounds


def all_finite(tensor: torch.Tensor) -> bool:
    """No NaN or Inf in ``tensor``: its sum first (one cheap pass), each entry only when that sum is not finite
    (a NaN or Inf, or finite entries whose float32 sum overflows)."""
    if not tensor.is_floating_point():
        return True
    return bool(torch.isfinite(tensor.sum(dtype=torch.float32))) or bool(torch.isfinite(tensor).all())


def read_byte_ranges(
    path: Path, pieces: list[tuple[int, int]], out: torch.Tensor | None = None
) -> torch.Tensor:
    """The byte ranges ``(offset, nbytes)`` of ``path`` one after the other, as a flat uint8 tensor.

    Read with ``os.preadv`` (no memory map whose pages would stay resident), into ``out`` when given (a
    uint8 tensor of exactly the total size, reused across calls by streaming readers).
    """
    total = sum(n for _, n in pieces)
    buf = torch.empty(total, dtype=torch.uint8, device="cpu") if out is None else out
    view = buf.numpy().data
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise SAEError(f"cannot read {path} ({exc.strerror})", "check the file") from None
    try:
        at = 0
        for offset, n in pieces:
            done = 0
            while done < n:
                got = os.preadv(fd, [view[at + done : at + n]], offset + done)
                if got <= 0:
                    raise SAEError(f"{path} is truncated", "re-download or re-save the SAE")
                done += got
            at += n
    except OSError as exc:
        raise SAEError(f"cannot read {path} ({exc.strerror})", "check the file") from None
    finally:
        os.close(fd)
    return buf


class LatentBlocks(Protocol):
    """Per-latent parameters of an SAE, readable one block of latents at a time."""

    cfg: SAEConfig

    def b_dec(self) -> torch.Tensor:
        """``b_dec [d_in]`` in the compute dtype."""
        ...

    def block(self, start: int, end: int, names: Sequence[str]) -> dict[str, torch.Tensor]:
        """``W_enc [d_in, B]``, ``W_dec [B, d_in]`` and the per-latent vectors ``[B]`` asked for."""
        ...

    def latent_rows(self, name: str, latents: Sequence[int]) -> torch.Tensor:
        """``W_dec`` rows or ``W_enc`` columns (as rows, ``[L, d_in]``) of the given latents."""
        ...


class InMemoryBlocks:
    """Blocks of an SAE already in memory (views, no copy)."""

    def __init__(self, sae: SAE) -> None:
        self.sae = sae
        self.cfg = sae.cfg

    def b_dec(self) -> torch.Tensor:
        return self.sae.b_dec.detach()

    def block(self, start: int, end: int, names: Sequence[str]) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        for name in names:
            tensor = getattr(self.sae, name).detach()
            out[name] = tensor[:, start:end] if name == "W_enc" else tensor[start:end]
        return out

    def latent_rows(self, name: str, latents: Sequence[int]) -> torch.Tensor:
        index = torch.as_tensor(list(latents), dtype=torch.long, device=self.sae.device)
        tensor = getattr(self.sae, name).detach()
        return tensor.index_select(1, index).T if name == "W_enc" else tensor.index_select(0, index)


class RandomBlocks:
    """The random-SAE control of ``cfg`` drawn block by block; equals ``SAE.create_random(cfg, seed)``."""

    def __init__(self, cfg: SAEConfig, seed: int = 0, random_biases: bool = False) -> None:
        self.cfg = cfg
        self.seed = seed
        self._dtype = cfg.torch_dtype()
        self._extras = random_extras(cfg, seed) if random_biases else {}
        self._cached: tuple[int, dict[str, torch.Tensor]] | None = None

    def b_dec(self) -> torch.Tensor:
        value = self._extras.get("b_dec")
        return torch.zeros(self.cfg.d_in, dtype=self._dtype) if value is None else value.to(self._dtype)

    def _seed_block(self, j: int, name: str) -> torch.Tensor:
        if self._cached is None or self._cached[0] != j:
            # As create_random: the encoder of one seed block, cast once.
            self._cached = (j, {"raw": random_encoder_block(self.cfg, self.seed, j)})
        tensors = self._cached[1]
        if name not in tensors:
            raw_DB = tensors["raw"]
            # Decoder rows from the whole seed block, as create_random; only drawn when asked for.
            tensors[name] = raw_DB.to(self._dtype) if name == "W_enc" else unit_rows(raw_DB.T).to(self._dtype)
        return tensors[name]

    def _matrix(self, name: str, start: int, end: int) -> torch.Tensor:
        parts = []
        for j in range(start // RANDOM_SEED_BLOCK, (end - 1) // RANDOM_SEED_BLOCK + 1):
            base = j * RANDOM_SEED_BLOCK
            full = self._seed_block(j, name)
            width = full.shape[1] if name == "W_enc" else full.shape[0]
            lo, hi = max(start, base) - base, min(end, base + width) - base
            parts.append(full[:, lo:hi] if name == "W_enc" else full[lo:hi])
        if len(parts) == 1:
            return parts[0]
        return torch.cat(parts, dim=1 if name == "W_enc" else 0)

    def block(self, start: int, end: int, names: Sequence[str]) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        for name in names:
            if name in ("W_enc", "W_dec"):
                out[name] = self._matrix(name, start, end)
            elif name in self._extras:
                out[name] = self._extras[name][start:end].to(self._dtype)
            else:
                out[name] = torch.zeros(end - start, dtype=self._dtype)
        return out

    def latent_rows(self, name: str, latents: Sequence[int]) -> torch.Tensor:
        rows = [self.block(i, i + 1, [name])[name] for i in latents]
        if not rows:
            return torch.zeros(0, self.cfg.d_in, dtype=self._dtype)
        return torch.cat([r.T if name == "W_enc" else r for r in rows])


def _mapped_matrix(
    path: Path, offset: int, shape: tuple[int, int], dtype: torch.dtype
) -> torch.Tensor | None:
    """The ``shape`` matrix at byte ``offset`` of ``path``, mapped copy-on-write and never written (None when it
    cannot be mapped: the read path then reports why).

    For a matrix the streamed check has read before the model pass (at most
    :data:`pseval.sae.source.FULL_HASH_LIMIT_BYTES`), its pages are in the page cache: a column block is a
    strided view of them, which the encode's matmul reads as it would a copy (the same sums, bit for bit), so
    the slab copy is saved. The mapping goes with the last view of it, when the SAE is scored. (A file cut
    short while it is scored ends the process with SIGBUS, as any memory-mapped read would, safetensors' own
    included; the check before the model pass has found it whole.)
    """
    import mmap

    nbytes = shape[0] * shape[1] * torch.empty(0, dtype=dtype).element_size()
    aligned = offset // mmap.ALLOCATIONGRANULARITY * mmap.ALLOCATIONGRANULARITY
    try:
        with open(path, "rb") as fh:
            mapped = mmap.mmap(
                fh.fileno(), offset - aligned + nbytes, access=mmap.ACCESS_COPY, offset=aligned
            )
    except (OSError, ValueError):
        return None
    flat = torch.frombuffer(mapped, dtype=dtype, count=shape[0] * shape[1], offset=offset - aligned)
    return flat.view(shape)


class SafetensorsBlocks:
    """Blocks read from the ``.safetensors`` files of an :class:`~pseval.sae.source.SAESource` with ``preadv``.

    Only the bytes of the requested block are read (``d_in`` strided reads for a column block of a row-major
    ``W_enc``, one read for a row block); each block is checked for NaN/Inf as it is read, unless the source's
    tensor was checked before the model pass already (``SAESource.checked_tensors``).
    """

    def __init__(self, source: SAESource, dtype: str | None = None) -> None:
        from pseval.sae.formats._common import safetensors_header

        if source.tensors is None:
            raise SAEError(f"{source.spec} cannot be read lazily", "load it instead")
        self.spec = source.spec
        self.cfg = source.cfg.model_copy(deep=True)
        if dtype is not None:
            self.cfg.dtype = dtype  # type: ignore[assignment]
        self._dtype = self.cfg.torch_dtype()
        # Checked already at this dtype (the streamed check of the content hash): not checked again.
        self._prechecked = source.checked_tensors if self.cfg.dtype == source.cfg.dtype else frozenset()
        self._refs = dict(source.tensors)
        self._headers: dict[Path, tuple[dict[str, object], int]] = {}
        for ref in self._refs.values():
            if ref.path not in self._headers:
                self._headers[ref.path] = safetensors_header(ref.path)  # type: ignore[assignment]
        self._slabs: dict[str, tuple[int, int, torch.Tensor]] = {}
        self._buffers: dict[str, torch.Tensor] = {}
        self._kept_columns: dict[int, torch.Tensor] = {}
        self._vectors: dict[str, torch.Tensor] = {}
        for name in ("b_dec", *self.cfg.extra_parameters):
            if name in self._refs:
                self._vectors[name] = self._read_vector(name)

    # ------------------------------------------------------------------ raw reads

    def _entry(self, name: str) -> tuple[TensorRef, object, int]:
        ref = self._refs[name]
        entries, data_start = self._headers[ref.path]
        if ref.key not in entries:
            raise SAEError(f"{ref.path} has no tensor {ref.key}", "re-download or re-save the SAE")
        return ref, entries[ref.key], data_start

    def _read(self, path: Path, pieces: list[tuple[int, int]], dtype: torch.dtype) -> torch.Tensor:
        """The byte ranges ``(offset, nbytes)`` of ``path`` one after the other, as a flat tensor."""
        return read_byte_ranges(path, pieces).view(dtype)

    def _checked(self, name: str, tensor: torch.Tensor) -> torch.Tensor:
        out = tensor.to(self._dtype)
        if name not in self._prechecked and not all_finite(out):
            raise SAEError(
                f"{self.spec}: tensor {name} contains NaN or Inf values", "re-download or re-train the SAE"
            )
        return out

    def _read_vector(self, name: str) -> torch.Tensor:
        ref, entry, data_start = self._entry(name)
        begin, end, dtype = entry.begin, entry.end, entry.dtype  # type: ignore[attr-defined]
        flat = self._read(ref.path, [(data_start + begin, end - begin)], dtype).reshape(-1)
        if name == "threshold" and flat.numel() == 1 and self.cfg.d_sae != 1:
            flat = flat.expand(self.cfg.d_sae)
        return self._checked(name, flat)

    def _matrix(self, name: str, latent_axis_rows: bool, start: int, end: int) -> torch.Tensor:
        """Latents ``[start, end)`` of a 2-d tensor, in pseval's orientation."""
        ref, entry, data_start = self._entry(name)
        shape, dtype = entry.shape, entry.dtype  # type: ignore[attr-defined]
        if len(shape) != 2:
            raise SAEError(f"{self.spec}: {name} has shape {list(shape)}", "check the SAE's weights")
        itemsize = torch.empty(0, dtype=dtype).element_size()
        base = data_start + entry.begin  # type: ignore[attr-defined]
        n_rows, n_cols = shape
        # Where the latents lie in the file: rows of W_dec [d_sae, d_in] unless stored transposed, etc.
        file_rows = latent_axis_rows != ref.transposed
        if file_rows:
            flat = self._read(
                ref.path, [(base + start * n_cols * itemsize, (end - start) * n_cols * itemsize)], dtype
            )
            block = self._checked(name, flat.reshape(end - start, n_cols))
        else:
            block = self._column_slab(name, (base, n_rows, n_cols, itemsize, dtype), start, end)
        if ref.transposed:
            block = block.T.contiguous()  # the layout a loaded SAE has, so BLAS sums in the same order
        return block

    def _column_slab(
        self, name: str, layout: tuple[int, int, int, int, torch.dtype], start: int, end: int
    ) -> torch.Tensor:
        """Columns ``[start, end)`` of a row-major file matrix, from a cached slab of :data:`SLAB_ELEMENTS`.

        A column block costs one read per file row; reading slabs several blocks wide makes those reads
        fewer and longer. The slab is cast and checked once; blocks are views of it.
        """
        base, n_rows, n_cols, itemsize, dtype = layout
        cached = self._slabs.get(name)
        if cached is None and dtype == self._dtype and name in self._prechecked:
            mapped = _mapped_matrix(self._refs[name].path, base, (n_rows, n_cols), dtype)
            if mapped is not None:  # one slab: the whole matrix where the page cache holds it
                cached = self._slabs[name] = (0, n_cols, mapped)
        if cached is None or not (cached[0] <= start and end <= cached[1]):
            slab_end = min(n_cols, start + max(end - start, SLAB_ELEMENTS // max(1, n_rows)))
            pieces = [
                (base + (r * n_cols + start) * itemsize, (slab_end - start) * itemsize) for r in range(n_rows)
            ]
            raw = read_byte_ranges(self._refs[name].path, pieces, out=self._slab_buffer(name, pieces))
            slab = raw.view(dtype).reshape(n_rows, slab_end - start)
            cached = (start, slab_end, self._checked(name, slab))
            self._slabs[name] = cached
        slab_start, _, slab = cached
        return slab[:, start - slab_start : end - slab_start]

    def _slab_buffer(self, name: str, pieces: list[tuple[int, int]]) -> torch.Tensor:
        """The bytes a new slab of ``name`` is read into: one buffer per matrix, reused from slab to slab.

        A slab is larger than glibc's largest mmap threshold (32 MiB), so a fresh one would be faulted in
        and zeroed page by page each time. Nothing reads the last slab once the next is read (a block is a
        view of its slab only while it is encoded; kept columns are copies), so it is dropped first.
        """
        self._slabs.pop(name, None)
        nbytes = sum(n for _, n in pieces)
        buffer = self._buffers.get(name)
        if buffer is None or buffer.numel() < nbytes:
            buffer = self._buffers[name] = torch.empty(nbytes, dtype=torch.uint8)
        return buffer[:nbytes]

    def _strided_latents(self, name: str, ids: list[int]) -> dict[int, torch.Tensor]:
        """Latents stored as columns of a row-major matrix: whole file rows read a few at a time, columns kept.

        One contiguous read per group of rows (each row holds every latent), so the file is read once in
        large pieces; only the kept columns are cast and checked for NaN/Inf.
        """
        ref, entry, data_start = self._entry(name)
        n_rows, n_cols = entry.shape  # type: ignore[attr-defined]
        dtype = entry.dtype  # type: ignore[attr-defined]
        itemsize = torch.empty(0, dtype=dtype).element_size()
        row_bytes = n_cols * itemsize
        per_read = max(1, BLOCK_ELEMENTS // max(1, n_cols))
        base = data_start + entry.begin  # type: ignore[attr-defined]
        columns = torch.tensor(ids, dtype=torch.long)
        # The kept columns go straight into one preallocated matrix: no small tensor is allocated between
        # two reads, so each read's buffer reuses the last one's memory instead of fragmenting the heap.
        picked_DL = torch.empty(n_rows, len(ids), dtype=dtype)
        for r0 in range(0, n_rows, per_read):
            r1 = min(n_rows, r0 + per_read)
            rows_RC = self._read(ref.path, [(base + r0 * row_bytes, (r1 - r0) * row_bytes)], dtype)
            torch.index_select(rows_RC.reshape(r1 - r0, n_cols), 1, columns, out=picked_DL[r0:r1])
            del rows_RC
        matrix_DL = self._checked(name, picked_DL)
        return {i: matrix_DL[:, j].reshape(1, -1) for j, i in enumerate(ids)}

    def keep_top_columns(self, top_P: torch.Tensor) -> None:
        """Keep the ``W_enc`` columns of each row's running top-1 latent ``top_P`` (negative: none yet) that lie in
        the slab just read, so :meth:`latent_rows` need not read ``W_enc`` again; let go of those no longer top.

        Called after each block of :func:`feature_blocks` (``code_stats(after_block=...)``, whose running top-1
        it is): at most one column per row is kept. Latents not kept are read from the file as before.
        """
        cached = self._slabs.get("W_enc")
        if cached is None:
            return
        running_P = top_P[top_P >= 0]
        self._keep_columns(cached, running_P.unique(), running_P)

    def _keep_columns(
        self, slab: tuple[int, int, torch.Tensor], new_L: torch.Tensor, running_P: torch.Tensor
    ) -> None:
        lo, hi, slab_DS = slab
        inside_L = new_L[(new_L >= lo) & (new_L < hi)]
        columns_DL = slab_DS.index_select(1, inside_L - lo)
        for j, i in enumerate(inside_L.tolist()):
            self._kept_columns[i] = columns_DL[:, j]
        wanted = set(running_P.tolist())
        for i in [i for i in self._kept_columns if i not in wanted]:
            del self._kept_columns[i]

    # ------------------------------------------------------------------ LatentBlocks

    def b_dec(self) -> torch.Tensor:
        value = self._vectors.get("b_dec")
        return torch.zeros(self.cfg.d_in, dtype=self._dtype) if value is None else value

    def block(self, start: int, end: int, names: Sequence[str]) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        for name in names:
            if name == "W_enc":
                out[name] = self._matrix("W_enc", False, start, end)
            elif name == "W_dec":
                out[name] = self._matrix("W_dec", True, start, end)
            else:
                out[name] = self._vectors[name][start:end]
        return out

    def _file_rows(self, name: str, ids: list[int]) -> dict[int, torch.Tensor]:
        """Rows ``ids`` (sorted) of a matrix whose file rows are latents, in one read and one check."""
        ref, entry, data_start = self._entry(name)
        shape, dtype = entry.shape, entry.dtype  # type: ignore[attr-defined]
        if len(shape) != 2:
            raise SAEError(f"{self.spec}: {name} has shape {list(shape)}", "check the SAE's weights")
        row_bytes = shape[1] * torch.empty(0, dtype=dtype).element_size()
        base = data_start + entry.begin  # type: ignore[attr-defined]
        flat = self._read(ref.path, [(base + i * row_bytes, row_bytes) for i in ids], dtype)
        rows_LC = self._checked(name, flat.reshape(len(ids), shape[1]))
        return dict(zip(ids, rows_LC, strict=True))

    def latent_rows(self, name: str, latents: Sequence[int]) -> torch.Tensor:
        ids = sorted({int(i) for i in latents})
        if not ids:
            return torch.zeros(0, self.cfg.d_in, dtype=self._dtype)
        ref = self._refs[name]
        latent_axis_rows = name == "W_dec"
        if latent_axis_rows != ref.transposed:
            found = self._file_rows(name, ids)
        elif name == "W_enc" and all(i in self._kept_columns for i in ids):
            found = {i: self._kept_columns[i] for i in ids}  # kept as the encode read them
        else:
            found = self._strided_latents(name, ids)
        rows = [found[int(i)].reshape(1, -1) for i in latents]
        return torch.cat(rows)


# ------------------------------------------------------------------------------------------------------
# encoding
# ------------------------------------------------------------------------------------------------------


def _needs(cfg: SAEConfig, fold: bool) -> tuple[SAEConfig, list[str]]:
    """The config the kernel runs with (that of the folded SAE when folding) and the tensors a block needs."""
    rescale = isinstance(cfg, TopKSAEConfig) and cfg.rescale_acts_by_decoder_norm
    if fold and isinstance(cfg, TopKSAEConfig) and not rescale:
        raise SAEError(
            "folding decoder norms into a TopK SAE changes which latents it selects",
            "pass strict=False to fold anyway",
        )
    kernel_cfg = cfg
    if fold and rescale:
        # SAE.fold_decoder_norms: the folded SAE no longer rescales by the (now unit) decoder norms.
        kernel_cfg = cfg.model_copy(update={"rescale_acts_by_decoder_norm": False})
    names = list(architecture_of(kernel_cfg).block_tensors(kernel_cfg))
    if fold and "W_dec" not in names:
        names.append("W_dec")
    return kernel_cfg, names


def _folded(cfg: SAEConfig, block: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """SAE.fold_decoder_norms on one block: W_enc columns and the per-latent tensors that scale with the
    activations times the decoder norms, the other per-latent tensors as they are (W_dec is left out)."""
    norms_B = block["W_dec"].norm(dim=-1).clamp(min=1e-8)
    scaled = architecture_of(cfg).scaled_with_activations(cfg)
    folded = {"W_enc": block["W_enc"] * norms_B[None, :]}
    for name in cfg.extra_parameters:
        if name in block:
            folded[name] = block[name] * norms_B if name in scaled else block[name]
    return folded


@torch.no_grad()
def feature_blocks(
    blocks: LatentBlocks,
    acts_ND: torch.Tensor,
    fold_decoder_norms: bool = False,
    block_size: int | None = None,
    device: str | torch.device = "cpu",
) -> Iterator[tuple[int, torch.Tensor]]:
    """``(start, feats_NB)``: the float32 cpu codes of every row for latents ``[start, start + B)``, in order.

    Equal to the matching columns of ``SAE.encode`` (``fold_decoder_norms``: of the folded SAE). Only one
    block of codes (``B = block_size``, by default :func:`block_latents`) and of weights is in memory.
    """
    cfg = blocks.cfg
    d_sae, n = cfg.d_sae, acts_ND.shape[0]
    width = block_size or block_latents(n, d_sae)
    kernel_cfg, names = _needs(cfg, fold_decoder_norms)
    arch = architecture_of(kernel_cfg)
    b_dec_D = blocks.b_dec().to(device)
    chunks = [
        sae_input(cfg, b_dec_D, acts_ND[i : i + ROW_CHUNK].to(device))[0] for i in range(0, n, ROW_CHUNK)
    ]

    # Blocks whose W_enc is zero outside some input rows (the views of cross-layer dictionaries) say which rows
    # they read; only those enter the matmul.
    input_range = getattr(blocks, "input_range", None)

    def encoded(start: int, end: int) -> torch.Tensor:
        block = {k: v.to(device) for k, v in blocks.block(start, end, names).items()}
        if fold_decoder_norms:
            block = _folded(kernel_cfg, block)
        rows = input_range(start, end) if input_range is not None else None
        if rows is not None:
            block["W_enc"] = block["W_enc"][rows[0] : rows[1]]
        # Encoded in place into the block's buffer, one row chunk at a time (no temporary of its size).
        out_NB = torch.empty(n, end - start, dtype=cfg.torch_dtype(), device=device)
        for i, x in zip(range(0, n, ROW_CHUNK), chunks, strict=True):
            x_in = x if rows is None else x[:, rows[0] : rows[1]]
            arch.encode_block(kernel_cfg, x_in, block, out_NB[i : i + ROW_CHUNK])
        return out_NB

    k = arch.row_top_k(kernel_cfg)
    if k is None:
        for start, end in block_bounds(d_sae, width):
            yield start, encoded(start, end).float().cpu()
        return
    # A per-input selection (TopK): a streaming top-k of the kernel's values across blocks, then the sparse
    # codes (the kept values, ReLU'd) block by block.
    best_vals = torch.zeros(n, 0, dtype=cfg.torch_dtype(), device=device)
    best_ids = torch.zeros(n, 0, dtype=torch.long, device=device)
    for start, end in block_bounds(d_sae, width):
        vals, ids = block_topk(encoded(start, end), start, k)
        best_vals, best_ids = select_topk(torch.cat([best_vals, vals], 1), torch.cat([best_ids, ids], 1), k)
    codes = best_vals.relu().float().cpu()
    ids_cpu = best_ids.cpu()
    for start, end in block_bounds(d_sae, width):
        inside = (ids_cpu >= start) & (ids_cpu < end)
        feats_NB = torch.zeros(n, end - start)
        rows, slots = inside.nonzero(as_tuple=True)
        feats_NB[rows, ids_cpu[rows, slots] - start] = codes[rows, slots]
        yield start, feats_NB


def lazy_blocks(sae_or_source: SAE | SAESource, dtype: str | None = None) -> LatentBlocks:
    """:class:`InMemoryBlocks` of an SAE, :class:`SafetensorsBlocks` of a lazily readable source."""
    if isinstance(sae_or_source, SAE):
        return InMemoryBlocks(sae_or_source)
    if sae_or_source.block_reader is not None:
        return sae_or_source.block_reader(dtype)
    return SafetensorsBlocks(sae_or_source, dtype)


__all__ = [
    "BLOCK_ELEMENTS",
    "InMemoryBlocks",
    "LatentBlocks",
    "RandomBlocks",
    "SafetensorsBlocks",
    "block_latents",
    "block_topk",
    "feature_blocks",
    "lazy_blocks",
    "select_topk",
]
