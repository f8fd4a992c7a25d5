"""The activation store: model activations on training text, shuffled, in batches, optionally cached.

Training an SAE needs millions of activation vectors in random order. The store packs the corpus into
contexts (:mod:`pseval.data.corpus`), runs the model on a batch of contexts at a time, stopping after
the deepest requested layer (:func:`pseval.models.hooks.run_with_cache`), and keeps only the positions
that hold text (BOS, separators and other special tokens are dropped).

Two things keep it cheap:

- **One forward pass, several hooks.** :meth:`ActivationStore.harvest` fills the caches of several hook
  points from the same forward passes.
- **A disk cache.** Harvested activations are written (fp16/bf16/fp32 safetensors shards plus a
  ``manifest.json``) under ``<cache>/train_acts/<key>-<n_tokens>/``, atomically, so a second SAE on the
  same hook (another width, architecture or seed) never reruns the model. Beside the shards,
  ``contexts.safetensors`` keeps the token ids of every harvested context and, per row, its context
  index and position (int32, a few bytes per row), so any cached activation can be traced back to its
  text without running the model again (e.g. to show the top-activating contexts of a latent,
  :func:`load_cached_contexts`). The key is a hash of the model
  fingerprint, the tokenizer, the hook, the corpus, the context size, BOS handling, the split and the
  dtype; a cache holding more tokens than asked for is reused (its first rows are exactly what a
  shorter run would have produced, because packing is deterministic).

Shuffling goes through a bounded buffer (:class:`ShuffleBuffer`): it is filled once, then half of it,
chosen at random, is handed out in batches and refilled with fresh rows, and so on. Peak memory is the
buffer plus one chunk of incoming rows, whatever the number of tokens.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import shutil
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from safetensors.torch import save_file

from pseval._io import atomic_dir, cache_dir, stable_hash
from pseval._progress import track
from pseval.activations.cache_files import (
    _CONTEXTS,
    _MANIFEST,
    STORE_FORMAT_VERSION,
    CachedContexts,
    _ContextRecorder,
    _read_manifest,
    _ShardWriter,
    iter_cached_rows,
    load_cached_contexts,
    tokenizer_fingerprint,
)
from pseval.activations.shuffle import ShuffleBuffer
from pseval.data.corpus import (
    BUNDLED,
    ContextBatch,
    Split,
    corpus_identity,
    is_local_corpus,
    iter_context_batches,
    iter_texts,
    pack_tokens,
    resolve_add_bos,
    special_token_mask,
)
from pseval.errors import ConfigError, DataError
from pseval.models.hooks import as_module, hook_width, run_with_cache

__all__ = [
    "STORE_FORMAT_VERSION",
    "ActivationStore",
    "CacheDtype",
    "CachedContexts",
    "ShuffleBuffer",
    "StoreConfig",
    "iter_cached_rows",
    "load_cached_contexts",
    "tokenizer_fingerprint",
]

CacheDtype = Literal["float32", "float16", "bfloat16"]

_TORCH_DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}


class StoreConfig(BaseModel):
    """Where activations come from and how they are buffered and cached."""

    model_config = ConfigDict(extra="forbid")

    corpus: str = Field(
        default=BUNDLED,
        description="Training text: 'bundled', a local .txt/.jsonl(.gz) file or a Hugging Face dataset name.",
    )
    split: Split = Field(
        default="train", description="Corpus split to harvest: 'train' (default), 'holdout' or 'all'."
    )
    context_size: int = Field(
        default=128, ge=2, description="Tokens per context fed to the model (BOS included)."
    )
    add_bos: bool | None = Field(
        default=None, description="Start every context with BOS; unset = whenever the tokenizer has one."
    )
    model_batch_size: int = Field(default=16, gt=0, description="Contexts per forward pass of the model.")
    buffer_tokens: int = Field(
        default=262_144,
        gt=0,
        description="Rows held by the shuffling buffer; its memory is buffer_tokens × d_in × dtype size.",
    )
    seed: int = Field(default=0, description="Seed of the shuffling order.")
    cache: bool = Field(
        default=True, description="Cache harvested activations on disk so later runs skip the model."
    )
    cache_root: Path | None = Field(
        default=None, description="Folder for activation caches; unset = <pseval cache>/train_acts."
    )
    cache_dtype: CacheDtype = Field(
        default="float16",
        description="Dtype of cached and buffered activations (batches are always handed out as float32).",
    )
    shard_tokens: int = Field(default=65_536, gt=0, description="Rows per cached safetensors shard.")
    device: str | None = Field(
        default=None, description="Device of the buffer and of the batches; unset = the model's device."
    )


class ActivationStore:
    """Activations of one model at one or several hooks, on packed text, for SAE training.

    ``loaded`` is a :class:`pseval.models.loading.LoadedModel` (anything with ``model``, ``tokenizer``,
    ``name`` and ``fingerprint``). Settings come from ``config`` and/or keyword overrides of
    :class:`StoreConfig` fields. ``n_forward_passes`` counts the model calls made so far (0 when every
    activation came from the disk cache).
    """

    def __init__(self, loaded: Any, config: StoreConfig | None = None, **overrides: Any) -> None:
        base = config or StoreConfig()
        try:
            self.config = (
                StoreConfig.model_validate({**base.model_dump(), **overrides}) if overrides else base
            )
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise ConfigError(f"invalid activation store settings: {problems}", "see StoreConfig") from None
        self.loaded = loaded
        self.model = as_module(loaded)
        self.tokenizer = loaded.tokenizer
        self.add_bos = resolve_add_bos(self.tokenizer, self.config.add_bos)
        self.model_device = _module_device(self.model)
        self.device = torch.device(self.config.device) if self.config.device else self.model_device
        self.cache_dtype = _TORCH_DTYPES[self.config.cache_dtype]
        self.n_forward_passes = 0
        self.last_buffer: ShuffleBuffer | None = None
        """The shuffling buffer of the latest :meth:`batches` call (for inspecting its size)."""
        self._tokenizer_hash: str | None = None
        # Contexts packed by check_corpus_tokens, with the text tokens they hold: the harvest that follows
        # reads them instead of tokenising the corpus a second time.
        self._packed: dict[str, tuple[torch.Tensor, int]] = {}

    # ------------------------------------------------------------------ keys and paths

    @property
    def cache_root(self) -> Path:
        """The folder holding this store's activation caches."""
        root = self.config.cache_root
        return Path(root).expanduser() if root is not None else cache_dir() / "train_acts"

    def cache_key(self, hook_name: str, split: Split | None = None) -> str:
        """The hash naming the caches of ``hook_name`` (without the token count)."""
        if self._tokenizer_hash is None:
            self._tokenizer_hash = tokenizer_fingerprint(self.tokenizer)
        return stable_hash(
            STORE_FORMAT_VERSION,
            str(self.loaded.fingerprint),
            self._tokenizer_hash,
            hook_name,
            corpus_identity(self.config.corpus),
            self.config.context_size,
            self.add_bos,
            split or self.config.split,
            self.config.cache_dtype,
        )

    def cache_path(self, hook_name: str, n_tokens: int) -> Path:
        """The folder a harvest of ``n_tokens`` rows at ``hook_name`` is written to."""
        return self.cache_root / f"{self.cache_key(hook_name)}-{n_tokens}"

    def find_cache(self, hook_name: str, n_tokens: int) -> Path | None:
        """A complete cache with at least ``n_tokens`` rows at ``hook_name``, the smallest such, or None."""
        key = self.cache_key(hook_name)
        best: tuple[int, Path] | None = None
        if not self.cache_root.is_dir():
            return None
        for folder in self.cache_root.glob(f"{key}-*"):
            manifest = _read_manifest(folder)
            if manifest is None or manifest.get("cache_key") != key:
                continue
            size = int(manifest.get("n_tokens", 0))
            if size >= n_tokens and (best is None or size < best[0]):
                best = (size, folder)
        return best[1] if best else None

    # ------------------------------------------------------------------ harvesting

    def _packed_contexts(self, split: Split) -> Iterator[torch.Tensor]:
        return pack_tokens(
            self.tokenizer, iter_texts(self.config.corpus, split), self.config.context_size, self.add_bos
        )

    def _context_batches(self, split: Split, n_tokens: int | None = None) -> Iterator[torch.Tensor]:
        packed = self._packed.get(split)
        if packed is not None and n_tokens is not None and packed[1] >= n_tokens:
            yield from packed[0].long().split(self.config.model_batch_size)
            return
        contexts = self._packed_contexts(split)
        while rows := list(itertools.islice(contexts, self.config.model_batch_size)):
            yield torch.stack(rows)

    def iter_activations(
        self,
        hook_names: Sequence[str],
        n_tokens: int | None,
        split: Split | None = None,
        allow_short: bool = False,
    ) -> Iterator[dict[str, torch.Tensor]]:
        """Run the model over packed contexts; yield per-hook ``[n, D]`` float32 rows of text positions.

        Rows come in corpus order (no shuffling, no cache), ``model_batch_size`` contexts per forward
        pass, until ``n_tokens`` rows (all of the split when None). A corpus that runs out first raises
        :class:`DataError` unless ``allow_short``.
        """
        for rows, _input_ids_BT, _keep_BT in self._iter_rows(hook_names, n_tokens, split, allow_short):
            yield rows

    def _iter_rows(
        self,
        hook_names: Sequence[str],
        n_tokens: int | None,
        split: Split | None = None,
        allow_short: bool = False,
    ) -> Iterator[tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]]:
        """:meth:`iter_activations` with each batch's contexts ``[B, T]`` and text mask ``[B, T]``.

        The rows of a batch are the masked positions in row-major order, cut to the rows still needed.
        """
        names = list(hook_names)
        remaining = n_tokens
        for input_ids_BT in self._context_batches(split or self.config.split, n_tokens):
            input_ids_BT = input_ids_BT.to(self.model_device)
            keep_BT = ~special_token_mask(input_ids_BT, self.tokenizer)
            acts = run_with_cache(self.model, input_ids_BT, torch.ones_like(input_ids_BT), names)
            self.n_forward_passes += 1
            rows = {name: acts[name][keep_BT].float() for name in names}
            n_rows = int(keep_BT.sum())
            if remaining is not None:
                n_rows = min(n_rows, remaining)
                rows = {name: value[:n_rows] for name, value in rows.items()}
                remaining -= n_rows
            yield rows, input_ids_BT, keep_BT
            if remaining == 0:
                return
        if remaining and not allow_short:
            done = (n_tokens or 0) - remaining
            raise DataError(
                f"corpus {self.config.corpus!r} ({self.config.split} split) gave only {done:,} tokens, "
                f"fewer than the {n_tokens:,} asked for",
                "lower the number of training tokens or pass a larger corpus",
            )

    def harvest_bytes(self, hook_names: Sequence[str], n_tokens: int) -> int:
        """Bytes a harvest of ``n_tokens`` rows at every hook in ``hook_names`` writes to the cache."""
        itemsize = torch.empty((), dtype=self.cache_dtype).element_size()
        return sum(hook_width(self.model, name) for name in hook_names) * n_tokens * itemsize

    def free_bytes(self) -> tuple[int, Path]:
        """Free bytes on the cache's disk, and the existing folder they were measured at."""
        folder = self.cache_root
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
        return shutil.disk_usage(folder).free, folder

    def check_disk_space(self, hook_names: Sequence[str], n_tokens: int) -> None:
        """Raise :class:`DataError` if the cache's disk cannot hold the harvest of ``hook_names``."""
        needed = self.harvest_bytes(hook_names, n_tokens)
        free, folder = self.free_bytes()
        if needed > free:
            halve = (
                "pass --cache-dtype float16 (train_overrides: {cache_dtype: float16} in a sweep), "
                if self.cache_dtype == torch.float32
                else ""
            )
            raise DataError(
                f"harvesting {n_tokens:,} tokens at {len(hook_names)} hook(s) needs {needed / 1e9:,.1f} GB of "
                f"{self.config.cache_dtype} activation cache, but {folder} has {free / 1e9:,.1f} GB free",
                f"train fewer hooks at a time, lower the token budget, {halve}"
                "or point PSEVAL_CACHE at a larger disk",
            )

    def plan_harvest(self, hook_names: Sequence[str], n_tokens: int) -> list[list[str]]:
        """The hooks of ``hook_names`` still to harvest, in groups whose caches fit the free disk together.

        One group (one forward pass per batch for all hooks) when everything fits, none when every hook is
        cached. Raises :class:`DataError` when a single hook alone does not fit.
        """
        uncached = [name for name in dict.fromkeys(hook_names) if self.find_cache(name, n_tokens) is None]
        free, _ = self.free_bytes()
        groups: list[list[str]] = []
        used = 0
        for name in uncached:
            size = self.harvest_bytes([name], n_tokens)
            if size > free:
                self.check_disk_space([name], n_tokens)
            if not groups or used + size > free:
                groups.append([])
                used = 0
            groups[-1].append(name)
            used += size
        return groups

    def delete_cache(self, hook_names: Sequence[str], n_tokens: int) -> None:
        """Delete the caches that :meth:`find_cache` would return for ``hook_names`` (frees their disk)."""
        for name in hook_names:
            folder = self.find_cache(name, n_tokens)
            if folder is not None:
                shutil.rmtree(folder)

    def check_corpus_tokens(self, n_tokens: int, split: Split | None = None) -> None:
        """Raise :class:`DataError` unless the corpus split holds ``n_tokens`` text tokens (no model pass).

        Tokenises and packs the corpus exactly as the harvest does, stopping as soon as enough tokens are
        counted, and keeps those contexts (int32) for the harvest to read. A Hugging Face dataset is not
        counted (that would stream it twice); the harvest itself reports one that runs short.
        """
        if n_tokens < 1 or not is_local_corpus(self.config.corpus):
            return
        split = split or self.config.split
        if split in self._packed and self._packed[split][1] >= n_tokens:
            return
        contexts = self._packed_contexts(split)
        chunks: list[torch.Tensor] = []
        counted = 0
        while counted < n_tokens and (rows := list(itertools.islice(contexts, 1024))):
            chunk_CT = torch.stack(rows)
            counted += int((~special_token_mask(chunk_CT, self.tokenizer)).sum())
            chunks.append(chunk_CT.to(torch.int32))
        if counted < n_tokens:
            raise DataError(
                f"corpus {self.config.corpus!r} ({split} split) gives only {counted:,} tokens, "
                f"fewer than the {n_tokens:,} asked for",
                "lower the number of training tokens or pass a larger corpus",
            )
        self._packed[split] = (torch.cat(chunks), counted)

    def harvest(self, hook_names: Sequence[str] | str, n_tokens: int) -> dict[str, Path]:
        """Make sure ``n_tokens`` activations of every hook are cached on disk; return their folders.

        Hooks not cached yet are harvested together, from one forward pass per batch of contexts.
        """
        if not self.config.cache:
            raise ConfigError("harvest() writes to the disk cache, which is turned off", "set cache=True")
        if n_tokens < 1:
            raise ConfigError(f"n_tokens={n_tokens} must be positive", "ask for at least one token")
        names = [hook_names] if isinstance(hook_names, str) else list(dict.fromkeys(hook_names))
        found = {name: self.find_cache(name, n_tokens) for name in names}
        missing = [name for name, path in found.items() if path is None]
        if missing:
            # Both checks are cheap next to the forward passes: fail before them, not after an hour of harvest.
            self.check_disk_space(missing, n_tokens)
            self.check_corpus_tokens(n_tokens)
            started = time.time()
            passes_before = self.n_forward_passes
            with contextlib.ExitStack() as stack:
                writers = {
                    name: _ShardWriter(
                        stack.enter_context(atomic_dir(self.cache_path(name, n_tokens))),
                        self.cache_dtype,
                        self.config.shard_tokens,
                        name,
                    )
                    for name in missing
                }
                contexts = _ContextRecorder()
                harvested = track(
                    self._iter_rows(missing, n_tokens),
                    f"harvest {', '.join(missing)}",
                    n_tokens,
                    "tokens",
                    size=lambda item: next(iter(item[0].values())).shape[0],
                )
                for rows, input_ids_BT, keep_BT in harvested:
                    for name, writer in writers.items():
                        writer.add(rows[name])
                    contexts.add(input_ids_BT, keep_BT, next(iter(rows.values())).shape[0])
                index = contexts.tensors()
                for name, writer in writers.items():
                    writer.close()
                    save_file(index, str(writer.folder / _CONTEXTS))
                    manifest = self._manifest(name, n_tokens, writer)
                    manifest["contexts"] = {"file": _CONTEXTS, "n_contexts": contexts.n_contexts}
                    manifest["n_forward_passes"] = self.n_forward_passes - passes_before
                    manifest["seconds"] = round(time.time() - started, 3)
                    (writer.folder / _MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
            for name in missing:
                found[name] = self.cache_path(name, n_tokens)
        return {name: path for name, path in found.items() if path is not None}

    def _manifest(self, hook_name: str, n_tokens: int, writer: _ShardWriter) -> dict[str, Any]:
        return {
            "format_version": STORE_FORMAT_VERSION,
            "cache_key": self.cache_key(hook_name),
            "model_name": str(getattr(self.loaded, "name", "")),
            "model_fingerprint": str(self.loaded.fingerprint),
            "hook_name": hook_name,
            "corpus": corpus_identity(self.config.corpus),
            "split": self.config.split,
            "context_size": self.config.context_size,
            "add_bos": self.add_bos,
            "dtype": self.config.cache_dtype,
            "d_in": writer.d_in,
            "n_tokens": n_tokens,
            "shards": writer.shards,
        }

    def _iter_cached(self, folder: Path, n_tokens: int, chunk_rows: int) -> Iterator[torch.Tensor]:
        """Rows of a cache folder in order, ``chunk_rows`` at a time, stopping after ``n_tokens``."""
        return iter_cached_rows(folder, n_tokens, chunk_rows)

    # ------------------------------------------------------------------ public iteration

    def batches(
        self, hook_name: str, batch_size: int, n_tokens: int, drop_last: bool = False
    ) -> Iterator[torch.Tensor]:
        """Shuffled float32 batches ``[batch_size, D]`` of ``n_tokens`` activations at ``hook_name``.

        With the cache on, the activations are harvested (or found) on disk first, then streamed from
        there; with it off, they stream straight from the model. Either way they pass through a
        :class:`ShuffleBuffer` of ``buffer_tokens`` rows, seeded by ``seed``: same settings, same batches.
        Every row is used once; the last batch is shorter unless ``drop_last``.
        """
        if n_tokens < 1:
            raise ConfigError(f"n_tokens={n_tokens} must be positive", "ask for at least one token")
        chunk_rows = self.config.model_batch_size * self.config.context_size
        if self.config.cache:
            folder = self.harvest([hook_name], n_tokens)[hook_name]
            source = self._iter_cached(folder, n_tokens, chunk_rows)
        else:
            source = (rows[hook_name] for rows in self.iter_activations([hook_name], n_tokens))
        buffer = ShuffleBuffer(self.config.buffer_tokens, self.config.seed, self.cache_dtype, self.device)
        self.last_buffer = buffer
        yield from buffer.batches(source, batch_size, drop_last)

    def holdout_batches(self, batch_size: int = 8, n_tokens: int | None = None) -> Iterator[ContextBatch]:
        """Held-out contexts (never trained on) with their masks, for the standard metrics."""
        return iter_context_batches(
            self.tokenizer,
            self.config.corpus,
            "holdout",
            self.config.context_size,
            batch_size,
            n_tokens,
            self.add_bos,
        )

    def holdout_activations(self, hook_name: str, n_tokens: int | None = None) -> Iterator[torch.Tensor]:
        """Activations ``[n, D]`` (float32, in order) of held-out text at ``hook_name``, for evaluation."""
        for rows in self.iter_activations([hook_name], n_tokens, split="holdout", allow_short=True):
            yield rows[hook_name]


def _module_device(module: torch.nn.Module) -> torch.device:
    param = next(module.parameters(), None)
    return param.device if param is not None else torch.device("cpu")
