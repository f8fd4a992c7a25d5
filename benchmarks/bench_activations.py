"""Throughput of activation collection against a bare forward pass of the truncated model.

Both sides see the same batches (sorted by length, right-padded): (a) runs only layers 0..L of the
model with no hooks, which is the least work any collector must do; (b) runs
``collect_activations`` at ``blocks.L.hook_resid_post`` with the cache disabled. The ratio (b)/(a) of
tokens per second measures the collector's overhead (goal: >= 0.90).

    python benchmarks/bench_activations.py [--model smollm2-135m] [--layer 6] [--repeats 2]
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
        prompts = list(build_prompts(tokenizer, dataset).prompts)
        return prompts[:limit], f"wic-test ({len(dataset)} pairs)"
    except Exception as exc:  # the data layer may be missing: fall back to synthetic text
        print(f"WiC prompts unavailable ({exc}); using synthetic sentences", file=sys.stderr)
    gen = torch.Generator().manual_seed(0)
    words = _FALLBACK_TEXT.split()
    prompts = []
    for _ in range(limit):
        n = int(torch.randint(8, 30, (1,), generator=gen))
        start = int(torch.randint(0, len(words) - n, (1,), generator=gen))
        ids = tokenizer(" ".join(words[start : start + n]) + " The word means").input_ids
        prompts.append(_Prompt(ids, len(ids) - 2))
    return prompts, "synthetic"


def batches(prompts: Sequence[Any], batch_size: int, pad_id: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Distinct sequences, longest first, right-padded in groups of ``batch_size`` (as the collector does)."""
    distinct = sorted({tuple(p.input_ids) for p in prompts}, key=lambda s: -len(s))
    out = []
    for i in range(0, len(distinct), batch_size):
        group = distinct[i : i + batch_size]
        ids = torch.full((len(group), len(group[0])), pad_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for b, seq in enumerate(group):
            ids[b, : len(seq)] = torch.tensor(seq)
            mask[b, : len(seq)] = 1
        out.append((ids, mask))
    return out


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
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    loaded = load_model(args.model)
    load_s = time.perf_counter() - t0
    prompts, source = wic_prompts(loaded.tokenizer, args.limit)
    pad_id = loaded.tokenizer.pad_token_id or 0
    groups = batches(prompts, args.batch_size, pad_id)
    n_tokens = sum(int(mask.sum()) for _, mask in groups)
    padded = sum(mask.numel() for _, mask in groups)
    hook = f"blocks.{args.layer}.hook_resid_post"
    bare = base_model(loaded.model)

    def run_bare() -> float:
        start = time.perf_counter()
        with torch.no_grad(), truncated(loaded.model, args.layer + 1):
            for ids, mask in groups:
                bare(input_ids=ids, attention_mask=mask, use_cache=False)
        return time.perf_counter() - start

    def run_collect() -> float:
        start = time.perf_counter()
        result = collect_activations(loaded, prompts, [hook], batch_size=args.batch_size, cache=False)
        elapsed = time.perf_counter() - start
        assert result.n_forward_passes == len(groups)
        return elapsed

    # Warm-up on a few batches, then alternate so both sides see the same machine load.
    with torch.no_grad(), truncated(loaded.model, args.layer + 1):
        for ids, mask in groups[:2]:
            bare(input_ids=ids, attention_mask=mask, use_cache=False)
    bare_s: list[float] = []
    collect_s: list[float] = []
    for _ in range(args.repeats):
        bare_s.append(run_bare())
        collect_s.append(run_collect())
    bare_best, collect_best = min(bare_s), min(collect_s)
    report = {
        "model": loaded.name,
        "hook": hook,
        "prompts": len(prompts),
        "prompt_source": source,
        "sequences": sum(ids.shape[0] for ids, _ in groups),
        "batches": len(groups),
        "batch_size": args.batch_size,
        "tokens": n_tokens,
        "padding_fraction": round(1 - n_tokens / padded, 4),
        "bare_truncated_forward": {
            "seconds": [round(s, 3) for s in bare_s],
            "tokens_per_s": round(n_tokens / bare_best),
        },
        "collect_activations": {
            "seconds": [round(s, 3) for s in collect_s],
            "tokens_per_s": round(n_tokens / collect_best),
        },
        "ratio": round(bare_best / collect_best, 3),
        "ratio_median": round(statistics.median(bare_s) / statistics.median(collect_s), 3),
        "goal": 0.9,
        "model_load_s": round(load_s, 2),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "machine": platform.machine(),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
