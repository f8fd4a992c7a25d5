"""Collect one activation vector per prompt (at its target token) for several hooks at once.

PS-Eval needs, for every unique prompt, the residual vector at one token. The cost is the forward
passes, so this module:

- runs each distinct token sequence once, for all hooks together (prompts that differ only in their
  target index share the forward pass);
- sorts sequences by length and batches neighbours, so little compute is spent on padding, and pads
  on the right (with the attention mask), which leaves every real token's position unchanged;
- stops each forward pass after the deepest requested layer (:func:`pseval.models.hooks.run_with_cache`);
- keeps only the target rows of each batch, in fp32 on the CPU; a prompt with ``target_indices`` (a word
  of several tokens under the ``mean`` multi-token policy) gets the fp32 mean of those tokens' rows;
- caches the result per hook on disk, keyed by the model fingerprint, the hook, the prompts' token ids
  and target indices, the caller's ``cache_key`` and the dtype, so a rerun does no forward pass.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch

from pseval._io import atomic_path, cache_dir, stable_hash
from pseval._progress import track
from pseval.errors import DataError
from pseval.models.hooks import canonical_hook_name, hook_width, parse_hook_name, run_with_cache
from pseval.models.loading import LoadedModel

logger = logging.getLogger(__name__)

CACHE_FORMAT_VERSION = 1
"""Bumped when the cached content changes meaning, so old files are not reused."""


class PromptLike(Protocol):
    """What :func:`collect_activations` needs from a prompt (``pseval.data.prompts.Prompt`` fits).

    A prompt may also carry ``target_indices`` (a list of token indices); when it holds two or more, the
    prompt's vector is the mean of those tokens' vectors instead of the ``target_index`` row.
    """

    @property
    def input_ids(self) -> list[int]: ...

    @property
    def target_index(self) -> int: ...


@dataclass
class ActivationResult:
    """Activations at the target token of every prompt, for each requested hook."""

    acts: dict[str, torch.Tensor]
    """Hook name -> ``acts_ND`` (fp32, CPU), row ``i`` for ``prompts[i]``."""
    n_forward_passes: int
    """Batched forward passes run (0 when everything came from the on-disk cache)."""
    cache_paths: dict[str, Path] = field(default_factory=dict)
    """Hook name -> cache file (empty when caching is off)."""
    n_sequences_run: int = 0
    """Distinct token sequences that went through the model."""
    n_tokens_run: int = 0
    """Real (non-padding) tokens that went through the model."""

    @property
    def cache_path(self) -> Path | None:
        """The cache file of the first hook (``cache_paths`` has one per hook)."""
        return next(iter(self.cache_paths.values()), None)


def activation_cache_path(
    loaded: LoadedModel,
    hook_name: str,
    prompts_digest: str,
    cache_key: dict[str, Any] | None,
) -> Path:
    """Where the activations of one hook for one prompt set are cached."""
    key = stable_hash(
        CACHE_FORMAT_VERSION,
        loaded.fingerprint,
        canonical_hook_name(hook_name),
        cache_key or {},
        loaded.dtype,
        prompts_digest,
    )
    return cache_dir() / "activations" / f"{key}.safetensors"


def prompts_digest(prompts: Sequence[PromptLike]) -> str:
    """A digest of every prompt's token ids, target index and pooled tokens (what the activations depend on).

    Prompts without pooled tokens hash as before pooling existed, so their caches stay valid.
    """
    digest = hashlib.sha256()
    for prompt in prompts:
        record: list[Any] = [list(prompt.input_ids), int(prompt.target_index)]
        pooled = _pooled_indices(prompt)
        if pooled:
            record.append(pooled)
        digest.update(json.dumps(record).encode())
        digest.update(b"\n")
    return digest.hexdigest()[:16]


def _pooled_indices(prompt: PromptLike) -> list[int]:
    """The tokens whose mean is read (two or more), or [] when only ``target_index`` is read."""
    indices = [int(i) for i in (getattr(prompt, "target_indices", None) or ())]
    return indices if len(indices) > 1 else []


def collect_activations(
    loaded: LoadedModel,
    prompts: Sequence[PromptLike],
    hook_names: Sequence[str],
    batch_size: int = 32,
    cache: bool = True,
    cache_key: dict[str, Any] | None = None,
    progress: bool = False,
) -> ActivationResult:
    """Return ``acts[hook] [len(prompts), d_model]``: each prompt's vector at its ``target_index``.

    Every hook name is checked before anything runs. Hooks found in the on-disk cache are read from it;
    the others are collected together in one pass over the prompts.
    """
    if isinstance(hook_names, str):
        hook_names = [hook_names]
    names = list(dict.fromkeys(hook_names))
    if not names:
        raise DataError("no hook names given", "pass at least one hook such as blocks.6.hook_resid_post")
    for name in names:
        parse_hook_name(name, loaded.model)
    if batch_size < 1:
        raise DataError(f"batch_size must be at least 1, got {batch_size}", "pass a positive batch size")
    sequences, targets, pooled = _validate_prompts(prompts)
    # Hooks differ in width (mlp.hook_post is the MLP's hidden size, not d_model).
    widths = {name: hook_width(loaded.model, name) for name in names}
    n_prompts = len(targets)

    acts: dict[str, torch.Tensor] = {}
    paths: dict[str, Path] = {}
    if cache:
        digest = prompts_digest(prompts)
        for name in names:
            paths[name] = activation_cache_path(loaded, name, digest, cache_key)
            cached = _read_cache(paths[name], n_prompts, widths[name])
            if cached is not None:
                acts[name] = cached
    missing = [name for name in names if name not in acts]
    n_passes = n_seqs = n_tokens = 0
    if missing and n_prompts:
        computed, n_passes, n_seqs, n_tokens = _run(
            loaded, sequences, targets, missing, batch_size, progress, pooled
        )
        for name in missing:
            acts[name] = computed[name]
            if cache:
                _write_cache(paths[name], computed[name], loaded, name, cache_key)
    elif missing:
        for name in missing:
            acts[name] = torch.zeros(0, widths[name])
    return ActivationResult(
        acts={name: acts[name] for name in names},
        n_forward_passes=n_passes,
        cache_paths=paths,
        n_sequences_run=n_seqs,
        n_tokens_run=n_tokens,
    )


# --------------------------------------------------------------------------------------------------


def _validate_prompts(
    prompts: Sequence[PromptLike],
) -> tuple[list[tuple[int, ...]], list[int], dict[int, list[int]]]:
    sequences: list[tuple[int, ...]] = []
    targets: list[int] = []
    pooled: dict[int, list[int]] = {}
    for i, prompt in enumerate(prompts):
        ids = tuple(int(t) for t in prompt.input_ids)
        target = int(prompt.target_index)
        if not ids:
            raise DataError(f"prompt {i} has no tokens", "drop empty prompts before collecting activations")
        if not -len(ids) <= target < len(ids):
            raise DataError(
                f"prompt {i} has target_index {target} outside its {len(ids)} tokens",
                "rebuild the prompts so the target index points at a token of the prompt",
            )
        indices = _pooled_indices(prompt)
        if any(not 0 <= j < len(ids) for j in indices):
            raise DataError(
                f"prompt {i} has target_indices {indices} outside its {len(ids)} tokens",
                "rebuild the prompts so every pooled index points at a token of the prompt",
            )
        if indices:
            pooled[i] = indices
        sequences.append(ids)
        targets.append(target % len(ids))
    return sequences, targets, pooled


@torch.no_grad()
def _run(
    loaded: LoadedModel,
    sequences: list[tuple[int, ...]],
    targets: list[int],
    hook_names: list[str],
    batch_size: int,
    progress: bool,
    pooled: dict[int, list[int]] | None = None,
) -> tuple[dict[str, torch.Tensor], int, int, int]:
    """Forward each distinct sequence once (sorted by length, right-padded) and gather target rows.

    Rows in ``pooled`` (row -> token indices) get the fp32 mean of those tokens instead.
    """
    pooled = pooled or {}
    unique: dict[tuple[int, ...], int] = {}
    for seq in sequences:
        unique.setdefault(seq, len(unique))
    distinct = list(unique)
    # Longest first: the largest batch runs first, so an out-of-memory error shows up at once.
    order = sorted(range(len(distinct)), key=lambda i: -len(distinct[i]))
    # For each distinct sequence, the prompts (rows) that read from it, and at which positions.
    rows_of: list[list[tuple[int, int]]] = [[] for _ in distinct]
    for row, (seq, target) in enumerate(zip(sequences, targets, strict=True)):
        rows_of[unique[seq]].append((row, target))

    out = {
        name: torch.empty(len(sequences), hook_width(loaded.model, name), dtype=torch.float32)
        for name in hook_names
    }
    device = _model_device(loaded)
    pad_id = _pad_id(loaded)
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    iterator: Any = track(batches, f"activations at {', '.join(hook_names)}", len(distinct), "prompts", len)
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(batches, desc="activations", unit="batch")
    n_tokens = 0
    for batch in iterator:
        length = len(distinct[batch[0]])
        input_ids_BT = torch.full((len(batch), length), pad_id, dtype=torch.long)
        mask_BT = torch.zeros((len(batch), length), dtype=torch.long)
        batch_pos: list[int] = []
        token_pos: list[int] = []
        out_rows: list[int] = []
        pooled_rows: list[tuple[int, int, list[int]]] = []
        for b, seq_index in enumerate(batch):
            seq = distinct[seq_index]
            input_ids_BT[b, : len(seq)] = torch.tensor(seq, dtype=torch.long)
            mask_BT[b, : len(seq)] = 1
            n_tokens += len(seq)
            for row, target in rows_of[seq_index]:
                if row in pooled:
                    pooled_rows.append((row, b, pooled[row]))
                    continue
                batch_pos.append(b)
                token_pos.append(target)
                out_rows.append(row)
        values = run_with_cache(loaded.model, input_ids_BT.to(device), mask_BT.to(device), hook_names)
        b_idx = torch.tensor(batch_pos, device=device)
        t_idx = torch.tensor(token_pos, device=device)
        rows = torch.tensor(out_rows)
        for name in hook_names:
            if out_rows:
                out[name][rows] = values[name][b_idx, t_idx].float().cpu()
            for row, b, indices in pooled_rows:
                out[name][row] = values[name][b, indices].float().mean(0).cpu()
    return out, len(batches), len(distinct), n_tokens


def _model_device(loaded: LoadedModel) -> torch.device:
    param = next(loaded.model.parameters(), None)
    return param.device if param is not None else torch.device(loaded.device)


def _pad_id(loaded: LoadedModel) -> int:
    """Any valid id works: padded positions are masked and come after every real token."""
    pad = getattr(loaded.tokenizer, "pad_token_id", None)
    return int(pad) if pad is not None else 0


def _read_cache(path: Path, n_prompts: int, d_model: int) -> torch.Tensor | None:
    if not path.is_file():
        return None
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        tensor = load_file(str(path))["acts"]
    except (OSError, KeyError, SafetensorError, RuntimeError) as exc:
        logger.warning("ignoring unreadable activation cache %s (%s); recomputing", path, exc)
        return None
    if tuple(tensor.shape) != (n_prompts, d_model):
        logger.warning("ignoring activation cache %s with shape %s; recomputing", path, tuple(tensor.shape))
        return None
    return tensor.float()


def _write_cache(
    path: Path, acts_ND: torch.Tensor, loaded: LoadedModel, hook_name: str, cache_key: dict[str, Any] | None
) -> None:
    from safetensors.torch import save_file

    metadata = {
        "format_version": str(CACHE_FORMAT_VERSION),
        "model_name": loaded.name,
        "model_fingerprint": loaded.fingerprint,
        "hook_name": hook_name,
        "dtype": loaded.dtype,
        "cache_key": json.dumps(cache_key or {}, sort_keys=True, default=str),
    }
    with atomic_path(path) as tmp:
        save_file({"acts": acts_ND.contiguous()}, str(tmp), metadata=metadata)
