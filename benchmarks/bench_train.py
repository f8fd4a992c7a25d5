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

    python benchmarks/bench_train.py [--threads 2] [--batch 1024] [--steps 8] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F

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
    W_enc_DF = torch.nn.Parameter((torch.rand(D_IN, D_SAE, generator=gen) * 2 - 1) * (6 / D_IN) ** 0.5)
    W_dec_FD = torch.nn.Parameter(W_enc_DF.detach().T.clone().contiguous())
    b_enc_F = torch.nn.Parameter(torch.zeros(D_SAE))
    b_dec_D = torch.nn.Parameter(torch.zeros(D_IN))
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (torch.set_num_threads)")
    parser.add_argument("--batch", type=int, default=1024, help="tokens per step")
    parser.add_argument("--steps", type=int, default=8, help="timed steps per measurement")
    parser.add_argument("--repeats", type=int, default=3, help="measurements per side (the best is kept)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--architectures", default="topk,standard", help="comma-separated")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    batches = random_batches(4, args.batch)
    results: dict[str, Any] = {}
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
    print(
        json.dumps(
            {
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
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
