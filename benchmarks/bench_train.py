"""Training throughput of the SAE trainer against a bare PyTorch loop of the same matrix shapes.

Both sides train an SAE of width 4,608 on d_in = 576 (SmolLM2-135M's residual stream, expansion 8) on the
same random activations, on ``--threads`` CPU threads (2 by default):

(a) a bare loop: encode matmul, ReLU (standard) or top-k + ReLU scattered to a dense tensor (topk),
    dense decode matmul, MSE, backward, Adam step; nothing else;
(b) ``train_sae_on_activations`` with the same batch size and learning rate, which also does the L1
    penalty (standard) or the unit-norm decoder constraint (topk), gradient clipping, dead-latent
    tracking and metrics.

It prints one JSON object with tokens/s of both and the ratio bare/ours per architecture (goal: <= 1.5,
i.e. ours within 1.5x of bare; below 1 means ours is faster), plus the machine's load average: on a
machine whose cores are busy with other work, multi-threaded runs are dominated by waiting for threads
(run with ``--threads 1`` to compare the work itself).

Two more sections, on by default, measure the activation store that feeds the trainer:

- ``harvest``: tokens/s of :meth:`ActivationStore.iter_activations` at ``blocks.L.hook_resid_post`` of
  the real SmolLM2-135M (bundled corpus, 128-token contexts, no disk cache) against a bare forward of
  the same model cut after layer L (no hooks, no LM head) on the same packed context batches. The two
  sides alternate batch by batch so other load on the machine hits both alike; the reported ratio
  bare-time/harvest-time is the median of the per-batch ratios (goal: >= 0.90), next to the totals.
  The harvest side also pays for tokenising and packing the corpus (the bare side gets ready batches).
- ``buffer_memory``: the peak memory held by a :class:`ShuffleBuffer` against its configured size
  (``buffer_tokens × d_in × 4`` bytes in float32), on a synthetic stream of chunks. It walks the
  suspended generator frames of the buffer and sums the distinct tensor storages alive at every chunk
  request and every batch handed out (buffer + in-flight chunks + the batch the consumer holds), and
  samples the process RSS in a thread as an independent check. Goal: bounded, about 1.0x plus a chunk.

    python benchmarks/bench_train.py [--threads 2] [--batch 1024] [--steps 8] [--device cpu]
        [--skip-training] [--skip-harvest] [--skip-buffer-memory] [--harvest-layer 6]
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import os
import platform
import statistics
import sys
import threading
import time
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch
import torch.nn.functional as F

from pseval.activations.store import ActivationStore, ShuffleBuffer
from pseval.training.config import TrainConfig
from pseval.training.trainer import train_sae_on_activations

D_IN = 576
D_SAE = 4608
K = 32


def random_batches(n: int, batch: int, seed: int = 0) -> list[torch.Tensor]:
    """A few batches of random activations with a non-zero mean (reused cyclically)."""
    gen = torch.Generator().manual_seed(seed)
    offset_D = torch.randn(D_IN, generator=gen)
    return [torch.randn(batch, D_IN, generator=gen) * 2 + offset_D for _ in range(n)]


def cycle(batches: list[torch.Tensor], device: str) -> Iterator[torch.Tensor]:
    on_device = [b.to(device) for b in batches]
    i = 0
    while True:
        yield on_device[i % len(on_device)]
        i += 1


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def bare_loop(architecture: str, batches: list[torch.Tensor], steps: int, device: str) -> float:
    """Tokens/s of the minimal training loop."""
    gen = torch.Generator().manual_seed(0)
    W_enc_DF = (torch.rand(D_IN, D_SAE, generator=gen) * 2 - 1) * (6 / D_IN) ** 0.5
    W_dec_FD = W_enc_DF.T.clone().contiguous()
    b_enc_F = torch.zeros(D_SAE)
    b_dec_D = torch.zeros(D_IN)
    params = [p.to(device).detach().requires_grad_() for p in (W_enc_DF, W_dec_FD, b_enc_F, b_dec_D)]
    W_enc_DF, W_dec_FD, b_enc_F, b_dec_D = params
    optimizer = torch.optim.Adam(params, lr=1e-4, foreach=True)
    data = cycle(batches, device)

    def step() -> None:
        x_ND = next(data)
        pre_NF = (x_ND - b_dec_D) @ W_enc_DF + b_enc_F
        if architecture == "topk":
            vals_NK, idx_NK = pre_NF.topk(K, dim=-1, sorted=False)
            feats_NF = torch.zeros_like(pre_NF).scatter(-1, idx_NK, F.relu(vals_NK))
        else:
            feats_NF = F.relu(pre_NF)
        recon_ND = feats_NF @ W_dec_FD + b_dec_D
        loss = (recon_ND - x_ND).pow(2).sum(dim=-1).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(2):  # warm-up
        step()
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    return steps * batches[0].shape[0] / (time.perf_counter() - start)


def ours(architecture: str, batches: list[torch.Tensor], steps: int, device: str) -> float:
    """Tokens/s of ``train_sae_on_activations`` (timed from the end of its second step)."""
    batch = batches[0].shape[0]
    config = TrainConfig(
        architecture=architecture,  # type: ignore[arg-type]
        d_sae=D_SAE,
        k=K,
        batch_size=batch,
        training_tokens=batch * (steps + 2),
        lr=1e-4,
        device=device,
        log_every=2,
        b_dec_init="mean",
        model="random",
    )
    marks: list[tuple[int, float]] = []

    def mark(record: Any) -> None:
        _sync(device)
        marks.append((record.tokens, time.perf_counter()))

    train_sae_on_activations(config, cycle(batches, device), D_IN, callbacks=[mark], progress=False)
    (tokens_0, t_0), (tokens_1, t_1) = marks[0], marks[-1]
    return (tokens_1 - tokens_0) / (t_1 - t_0)


# ----------------------------------------------------------------------------------------------------
# Harvesting throughput


def harvest_throughput(model_name: str, layer: int, n_tokens: int, context_size: int) -> dict[str, Any]:
    """Tokens/s of the store's harvesting against a bare truncated forward, alternating batch by batch."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_activations import base_model, truncated  # the same truncation as the collector benchmark

    from pseval.data.corpus import iter_texts, pack_tokens, special_token_mask
    from pseval.models.loading import load_model

    t0 = time.perf_counter()
    loaded = load_model(model_name)
    load_s = time.perf_counter() - t0
    hook = f"blocks.{layer}.hook_resid_post"
    store = ActivationStore(loaded, corpus="bundled", context_size=context_size, cache=False)
    batch_contexts = store.config.model_batch_size
    # The store's own batches, rebuilt from the same public packing: the contexts, model_batch_size at
    # a time, until n_tokens text positions are covered (the store stops after the same batch).
    contexts = pack_tokens(loaded.tokenizer, iter_texts("bundled", "train"), context_size, store.add_bos)
    batches: list[torch.Tensor] = []
    covered = 0
    while covered < n_tokens:
        rows = list(itertools.islice(contexts, batch_contexts))
        if not rows:
            break
        batches.append(torch.stack(rows))
        covered += int((~special_token_mask(batches[-1], loaded.tokenizer)).sum())
    n_tokens = min(n_tokens, covered)
    bare = base_model(loaded.model)

    def run_bare(ids_BT: torch.Tensor) -> float:
        start = time.perf_counter()
        with torch.no_grad(), truncated(loaded.model, layer + 1):
            bare(input_ids=ids_BT, attention_mask=torch.ones_like(ids_BT), use_cache=False)
        return time.perf_counter() - start

    # Warm-up of both sides (and of the corpus reader's cache) before anything is timed.
    run_bare(batches[0])
    next(iter(store.iter_activations([hook], 1)))
    store.n_forward_passes = 0

    harvested = store.iter_activations([hook], n_tokens)

    def run_store() -> tuple[float, int]:
        start = time.perf_counter()
        rows = next(harvested)[hook]
        return time.perf_counter() - start, int(rows.shape[0])

    bare_times: list[float] = []
    store_times: list[float] = []
    n_rows = 0
    for i, ids_BT in enumerate(batches):
        if i % 2:
            elapsed, n = run_store()
            store_times.append(elapsed)
            bare_times.append(run_bare(ids_BT))
        else:
            bare_times.append(run_bare(ids_BT))
            elapsed, n = run_store()
            store_times.append(elapsed)
        n_rows += n
    assert next(harvested, None) is None and store.n_forward_passes == len(batches)
    d_in = int(getattr(loaded.model.config, "hidden_size", 0))
    positions = sum(int(b.numel()) for b in batches)
    bare_s, store_s = sum(bare_times), sum(store_times)
    ratios = [b / s for b, s in zip(bare_times, store_times, strict=True)]
    return {
        "model": loaded.name,
        "hook": hook,
        "d_in": d_in,
        "corpus": "bundled (train split)",
        "context_size": context_size,
        "contexts_per_forward": batch_contexts,
        "forward_passes": len(batches),
        "tokens_forwarded": positions,
        "activation_rows": n_rows,
        "bare_truncated_forward": {"seconds": round(bare_s, 2), "tokens_per_s": round(positions / bare_s)},
        "store_iter_activations": {
            "seconds": round(store_s, 2),
            "tokens_per_s": round(positions / store_s),
            "activation_rows_per_s": round(n_rows / store_s),
            "first_batch_s": round(store_times[0], 3),
        },
        "ratio_median": round(statistics.median(ratios), 3),
        "ratio_of_totals": round(bare_s / store_s, 3),
        # The first batch also tokenises the first block of documents (pack_tokens works 256 at a time).
        "ratio_of_totals_after_first_batch": (
            round(sum(bare_times[1:]) / sum(store_times[1:]), 3) if len(batches) > 1 else None
        ),
        "ratio_min": round(min(ratios), 3),
        "ratio_max": round(max(ratios), 3),
        "goal": 0.9,
        "meets_goal": statistics.median(ratios) >= 0.9,
        "model_load_s": round(load_s, 2),
    }


# ----------------------------------------------------------------------------------------------------
# Shuffle buffer memory


def _tensors_in(obj: Any, name: str, depth: int = 0) -> Iterator[tuple[str, torch.Tensor]]:
    """Named tensors reachable from a frame, a suspended generator, a container or a ShuffleBuffer."""
    if depth > 6:
        return
    if isinstance(obj, torch.Tensor):
        yield name, obj
    elif isinstance(obj, types.FrameType):
        for key, value in obj.f_locals.items():
            yield from _tensors_in(value, f"{obj.f_code.co_name}.{key}", depth + 1)
    elif isinstance(obj, types.GeneratorType):
        if obj.gi_frame is not None:
            yield from _tensors_in(obj.gi_frame, name, depth + 1)
        if obj.gi_yieldfrom is not None:
            yield from _tensors_in(obj.gi_yieldfrom, name, depth + 1)
    elif isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            yield from _tensors_in(value, f"{name}[{i}]", depth + 1)
    elif isinstance(obj, dict):
        for key, value in obj.items():
            yield from _tensors_in(value, f"{name}.{key}", depth + 1)
    elif isinstance(obj, ShuffleBuffer):
        yield from _tensors_in(vars(obj), "ShuffleBuffer", depth + 1)


def _storages(tensors: list[tuple[str, torch.Tensor]]) -> dict[int, tuple[str, int]]:
    """The distinct storages behind ``tensors`` (views of one chunk count once, in full): name and bytes."""
    seen: dict[int, tuple[str, int]] = {}
    for name, tensor in tensors:
        storage = tensor.untyped_storage()
        seen.setdefault(storage.data_ptr(), (name, storage.nbytes()))
    return seen


class _RssSampler:
    """Samples the process's resident set size in a thread (torch ops release the GIL while they run)."""

    def __init__(self, interval_s: float = 0.001) -> None:
        import psutil

        self.process = psutil.Process()
        self.interval_s = interval_s
        self.baseline = self.peak = self.process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(self.interval_s)

    def __enter__(self) -> _RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)


def buffer_memory(
    buffer_tokens: int, d_in: int, chunk_rows: int, batch_size: int, passes: int
) -> dict[str, Any]:
    """Peak bytes held while a float32 ShuffleBuffer shuffles ``passes × buffer_tokens`` synthetic rows."""
    n_rows = passes * buffer_tokens
    itemsize = torch.finfo(torch.float32).bits // 8
    configured = buffer_tokens * d_in * itemsize
    buffer = ShuffleBuffer(buffer_tokens, seed=0, dtype=torch.float32)
    peak_bytes = 0
    peak_at = ""
    peak_parts: dict[int, tuple[str, int]] = {}
    peak_own = 0

    def measure(where: str, frame: types.FrameType | None, extra: list[tuple[str, torch.Tensor]]) -> None:
        """Sum the storages alive in ``frame`` and its callers up to (and including) the consumer."""
        nonlocal peak_bytes, peak_at, peak_parts, peak_own
        tensors = list(extra)
        while frame is not None:
            tensors.extend(_tensors_in(frame, ""))
            if frame.f_code.co_name == "consume":
                break
            frame = frame.f_back
        parts = _storages(tensors)
        held = sum(n for _, n in parts.values())
        if held > peak_bytes:
            peak_bytes, peak_at, peak_parts = held, where, parts
        own = sum(n for name, n in parts.values() if not name.startswith("consume."))
        peak_own = max(peak_own, own)

    def source() -> Iterator[torch.Tensor]:
        gen = torch.Generator().manual_seed(1)
        for start in range(0, n_rows, chunk_rows):
            chunk_ND = torch.randn(min(chunk_rows, n_rows - start), d_in, generator=gen)
            # The caller's frames (the buffer filling its slots, and the consumer) are live right now.
            measure("chunk request", sys._getframe(1), [("new chunk", chunk_ND)])
            yield chunk_ND

    def consume() -> tuple[int, int]:
        stream = buffer.batches(source(), batch_size)
        n_seen = n_batches = 0
        for batch_ND in stream:
            n_seen += batch_ND.shape[0]
            n_batches += 1
            measure("batch handed out", None, [("consume.batch_ND", batch_ND), *_tensors_in(stream, "")])
        return n_seen, n_batches

    # Warm-up on a small buffer first, so the RSS baseline already holds the code pages and thread
    # pools the shuffling touches (otherwise they count as buffer memory).
    gen = torch.Generator().manual_seed(2)
    warm = (torch.randn(chunk_rows, d_in, generator=gen) for _ in range(8))
    for _ in ShuffleBuffer(4 * chunk_rows, dtype=torch.float32).batches(warm, chunk_rows):
        pass
    gc.collect()
    start = time.perf_counter()
    with _RssSampler() as rss:
        n_seen, n_batches = consume()
    elapsed = time.perf_counter() - start
    assert n_seen == n_rows
    row_bytes = d_in * itemsize
    rss_delta = rss.peak - rss.baseline
    return {
        "dtype": "float32",
        "d_in": d_in,
        "buffer_tokens": buffer_tokens,
        "chunk_rows": chunk_rows,
        "batch_size": batch_size,
        "rows_shuffled": n_rows,
        "batches": n_batches,
        "seconds": round(elapsed, 2),
        "configured_bytes": configured,
        "buffer_allocated_bytes": buffer.peak_rows * row_bytes,
        "largest_chunk_bytes": buffer.max_chunk_rows * row_bytes,
        "batch_bytes": batch_size * row_bytes,
        "measured_peak_tensor_bytes": peak_bytes,
        "measured_peak_at": peak_at,
        "measured_peak_parts": {
            name or "?": n for name, n in sorted(peak_parts.values(), key=lambda p: -p[1]) if n >= 1 << 16
        },
        "ratio_peak_over_configured": round(peak_bytes / configured, 4),
        "excess_in_chunks": round((peak_bytes - configured) / (buffer.max_chunk_rows * row_bytes), 2),
        "measured_peak_held_by_buffer_bytes": peak_own,
        "ratio_held_by_buffer_over_configured": round(peak_own / configured, 4),
        "held_by_buffer_excess_in_chunks": round(
            (peak_own - configured) / (buffer.max_chunk_rows * row_bytes), 2
        ),
        "rss_peak_delta_bytes": rss_delta,
        "ratio_rss_delta_over_configured": round(rss_delta / configured, 4),
        "rss_note": "RSS also counts freed chunks and batches that the C allocator keeps mapped",
        "goal": "bounded: about 1.0x plus one chunk",
    }


# ----------------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (torch.set_num_threads)")
    parser.add_argument("--batch", type=int, default=1024, help="tokens per step")
    parser.add_argument("--steps", type=int, default=8, help="timed steps per measurement")
    parser.add_argument("--repeats", type=int, default=3, help="measurements per side (the best is kept)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--architectures", default="topk,standard", help="comma-separated")
    parser.add_argument("--skip-training", action="store_true", help="skip the training-throughput section")
    parser.add_argument("--skip-harvest", action="store_true", help="skip the harvesting section")
    parser.add_argument("--skip-buffer-memory", action="store_true", help="skip the buffer-memory section")
    parser.add_argument("--harvest-model", default="smollm2-135m", help="model of the harvesting section")
    parser.add_argument("--harvest-layer", type=int, default=6, help="L in blocks.L.hook_resid_post")
    parser.add_argument("--harvest-tokens", type=int, default=16_384, help="text tokens harvested")
    parser.add_argument("--context-size", type=int, default=128, help="tokens per packed context")
    parser.add_argument("--buffer-tokens", type=int, default=65_536, help="rows of the shuffle buffer")
    parser.add_argument("--buffer-chunk", type=int, default=2_048, help="rows per incoming chunk")
    parser.add_argument("--buffer-batch", type=int, default=4_096, help="rows per batch handed out")
    parser.add_argument("--buffer-passes", type=int, default=4, help="rows shuffled, in buffer sizes")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    results: dict[str, Any] = {}
    if not args.skip_training:
        batches = random_batches(4, args.batch)
        for architecture in args.architectures.split(","):
            bare_tps = ours_tps = 0.0
            for _ in range(args.repeats):  # interleaved, so both sides see the same machine load
                bare_tps = max(bare_tps, bare_loop(architecture, batches, args.steps, args.device))
                ours_tps = max(ours_tps, ours(architecture, batches, args.steps, args.device))
            results[architecture] = {
                "bare_tokens_per_s": round(bare_tps, 1),
                "ours_tokens_per_s": round(ours_tps, 1),
                "ratio_bare_over_ours": round(bare_tps / ours_tps, 3),
                "within_1_5x": bare_tps / ours_tps <= 1.5,
            }
    report: dict[str, Any] = {
        "benchmark": "sae_training_throughput",
        "d_in": D_IN,
        "d_sae": D_SAE,
        "k": K,
        "batch_tokens": args.batch,
        "steps": args.steps,
        "threads": args.threads,
        "device": args.device,
        "torch": torch.__version__,
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "results": results,
    }
    if not args.skip_buffer_memory:
        report["buffer_memory"] = buffer_memory(
            args.buffer_tokens, D_IN, args.buffer_chunk, args.buffer_batch, args.buffer_passes
        )
    if not args.skip_harvest:
        report["harvest"] = harvest_throughput(
            args.harvest_model, args.harvest_layer, args.harvest_tokens, args.context_size
        )
    report["load_average_1min_end"] = round(os.getloadavg()[0], 2)
    report["total_seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
