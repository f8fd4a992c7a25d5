"""Throughput of activation collection against a bare forward pass of the truncated model.

Both sides see the same batches (sorted by length, right-padded): (a) runs only layers 0..L of the
model with no hooks, which is the least work any collector must do; (b) runs
``collect_activations`` at ``blocks.L.hook_resid_post`` with the cache disabled. The ratio (b)/(a) of
tokens per second measures the collector's overhead (goal: >= 0.90). The two sides alternate every
few batches and the reported ratio is the median of the per-chunk ratios, so other processes sharing
the CPU skew both sides alike.

    python benchmarks/bench_activations.py [--model smollm2-135m] [--layer 6] [--limit 2300]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch
from torch import nn

from pseval.activations import collect_activations
from pseval.models import get_adapter, get_layers, load_model
from pseval.models.hooks import _first

_FALLBACK_TEXT = (
    "the bank of the river was steep and green while the bank in town raised its fees again this year "
    "she could not bear the noise of the party so he left early to catch the last train home at night "
    "a light rain fell on the fair as children played with a ball near the old oak tree by the water"
)


@dataclass(frozen=True)
class _Prompt:
    input_ids: list[int]
    target_index: int


def wic_prompts(tokenizer: Any, limit: int) -> tuple[list[Any], str]:
    """The unique WiC test prompts of the default eval, or synthetic sentences when unavailable."""
    try:
        from pseval.data.datasets import load_dataset
        from pseval.data.prompts import build_prompts

        dataset = load_dataset(tokenizer, name="wic", split="test")
        wic = list(build_prompts(tokenizer, dataset).prompts)
        return wic[:limit], f"wic-test ({len(dataset)} pairs)"
    except Exception as exc:  # the data layer may be missing: fall back to synthetic text
        print(f"WiC prompts unavailable ({exc}); using synthetic sentences", file=sys.stderr)
    gen = torch.Generator().manual_seed(0)
    words = _FALLBACK_TEXT.split()
    prompts: list[Any] = []
    for _ in range(limit):
        n = int(torch.randint(8, 30, (1,), generator=gen))
        start = int(torch.randint(0, len(words) - n, (1,), generator=gen))
        ids = tokenizer(" ".join(words[start : start + n]) + " The word means").input_ids
        prompts.append(_Prompt(ids, len(ids) - 2))
    return prompts, "synthetic"


def distinct_sorted(prompts: Sequence[Any]) -> list[Any]:
    """One prompt per distinct token sequence, longest first (the collector's batching order)."""
    seen: dict[tuple[int, ...], Any] = {}
    for prompt in prompts:
        seen.setdefault(tuple(prompt.input_ids), prompt)
    return sorted(seen.values(), key=lambda p: -len(p.input_ids))


def pad_batch(prompts: Sequence[Any], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ``input_ids`` and ``attention_mask`` of ``prompts`` (longest first)."""
    width = len(prompts[0].input_ids)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for b, prompt in enumerate(prompts):
        ids[b, : len(prompt.input_ids)] = torch.tensor(prompt.input_ids)
        mask[b, : len(prompt.input_ids)] = 1
    return ids, mask


@contextmanager
def truncated(model: nn.Module, n_keep: int) -> Iterator[None]:
    """Temporarily keep only the first ``n_keep`` layers of ``model``."""
    adapter = get_adapter(model)
    layers = get_layers(model)
    path = next(p for p in adapter.layers if _first(model, [p]) is layers)
    parent_path, _, attr = path.rpartition(".")
    parent = _first(model, [parent_path]) if parent_path else model
    setattr(parent, attr, nn.ModuleList(list(layers)[:n_keep]))
    try:
        yield
    finally:
        setattr(parent, attr, layers)


def base_model(model: nn.Module) -> nn.Module:
    """The model without its LM head (the truncated bare forward must not pay for the unembedding)."""
    inner = getattr(model, "base_model", None)
    return inner if isinstance(inner, nn.Module) else model


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--layer", type=int, default=6, help="L in blocks.L.hook_resid_post")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--limit", type=int, default=2300, help="at most this many prompts")
    parser.add_argument("--repeats", type=int, default=1, help="passes over all prompts per side")
    parser.add_argument("--batches-per-chunk", type=int, default=1, help="batches timed per alternation")
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    loaded = load_model(args.model)
    load_s = time.perf_counter() - t0
    prompts, source = wic_prompts(loaded.tokenizer, args.limit)
    pad_id = loaded.tokenizer.pad_token_id or 0
    ordered = distinct_sorted(prompts)
    bs = args.batch_size
    groups = [pad_batch(ordered[i : i + bs], pad_id) for i in range(0, len(ordered), bs)]
    n_tokens = sum(int(mask.sum()) for _, mask in groups)
    padded = sum(mask.numel() for _, mask in groups)
    hook = f"blocks.{args.layer}.hook_resid_post"
    bare = base_model(loaded.model)
    # Chunks of whole batches, timed alternately for (a) and (b): both sides see the same machine
    # load even when other processes share the cores, and (b) forms exactly the batches of (a).
    chunk = bs * args.batches_per_chunk
    chunks = [
        (ordered[i : i + chunk], groups[i // bs : (i + chunk) // bs]) for i in range(0, len(ordered), chunk)
    ]

    def run_bare(batch_group: list[tuple[torch.Tensor, torch.Tensor]]) -> float:
        start = time.perf_counter()
        with torch.no_grad(), truncated(loaded.model, args.layer + 1):
            for ids, mask in batch_group:
                bare(input_ids=ids, attention_mask=mask, use_cache=False)
        return time.perf_counter() - start

    def run_collect(chunk_prompts: list[Any], n_batches: int) -> float:
        start = time.perf_counter()
        result = collect_activations(loaded, chunk_prompts, [hook], batch_size=bs, cache=False)
        elapsed = time.perf_counter() - start
        assert result.n_forward_passes == n_batches
        return elapsed

    run_bare(groups[:2])  # warm-up
    bare_times: list[float] = []
    collect_times: list[float] = []
    for i, (chunk_prompts, batch_group) in enumerate(chunks * args.repeats):
        if i % 2:
            collect_times.append(run_collect(chunk_prompts, len(batch_group)))
            bare_times.append(run_bare(batch_group))
        else:
            bare_times.append(run_bare(batch_group))
            collect_times.append(run_collect(chunk_prompts, len(batch_group)))
    bare_s, collect_s = sum(bare_times), sum(collect_times)
    # Other processes on the same cores can slow a single chunk many times over; the median of the
    # per-chunk ratios is robust to that, the ratio of totals is not.
    chunk_ratios = [b / c for b, c in zip(bare_times, collect_times, strict=True)]
    n_total = n_tokens * args.repeats
    report = {
        "model": loaded.name,
        "hook": hook,
        "prompts": len(prompts),
        "prompt_source": source,
        "sequences": len(ordered),
        "batches": len(groups),
        "batch_size": args.batch_size,
        "tokens": n_tokens,
        "padding_fraction": round(1 - n_tokens / padded, 4),
        "repeats": args.repeats,
        "bare_truncated_forward": {"seconds": round(bare_s, 2), "tokens_per_s": round(n_total / bare_s)},
        "collect_activations": {"seconds": round(collect_s, 2), "tokens_per_s": round(n_total / collect_s)},
        "ratio": round(statistics.median(chunk_ratios), 3),
        "ratio_of_totals": round(bare_s / collect_s, 3),
        "chunks": len(chunk_ratios),
        "goal": 0.9,
        "model_load_s": round(load_s, 2),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "machine": platform.machine(),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
