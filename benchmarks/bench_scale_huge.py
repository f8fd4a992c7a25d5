"""One 1,048,576-latent Gemma Scope 2 layout SAE (5.4 GB fp32) on Gemma-3-270m, end to end, against the limit.

``pseval eval`` with the same-work flags (``--no-baselines --interpret-tokens 0 --logit-lens-tokens 0
--bootstrap 0``) as a subprocess, its SAE file cold in the page cache, against the limit of
:mod:`bench_scale` (model load + truncated forward + one sequential read of ``w_enc`` and the per-latent
vectors + one matmul), interleaved and repeated; its peak RSS against the forward pass's (the model's).
The SAE has random weights and one threshold calibrated on the first 65,536 latents so the mean L0 is ~50.

    python benchmarks/bench_scale_huge.py [--max-pairs 128] [--repeats 2] [--width 1048576] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch
from bench_scale import (
    HOOK,
    TARGET_L0,
    Setup,
    _compose,
    _private_cache,
    _prompts,
    _ratio,
    _rounded,
    _summary,
    one_run,
)

HUGE_WIDTH = 1 << 20
GEMMA = "gemma3-270m"
HUGE_SIDES = ("pseval_same_work", "forward", "limit")


def _write_gemma_scope_2(path: Path, acts_PD: torch.Tensor, d_sae: int, block: int = 1 << 16) -> float:
    """A random Gemma Scope 2 ``params.safetensors`` (never whole in memory), its one threshold calibrated on
    the first block of latents (its columns are drawn like the others) so the mean L0 is ~TARGET_L0."""
    d_in = acts_PD.shape[1]
    shapes = {
        "b_dec": [d_in],
        "b_enc": [d_sae],
        "threshold": [d_sae],
        "w_dec": [d_sae, d_in],
        "w_enc": [d_in, d_sae],
    }
    header: dict[str, Any] = {}
    offset = 0
    for name, shape in shapes.items():
        size = 4 * shape[0] * (shape[1] if len(shape) > 1 else 1)
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    base = 8 + len(raw)
    scale = 2 / d_in**0.5
    threshold = 0.0
    with path.open("wb") as fh:
        fh.write(len(raw).to_bytes(8, "little") + raw)
        fh.truncate(base + offset)
        fd = fh.fileno()
        for j, start in enumerate(range(0, d_sae, block)):
            gen = torch.Generator().manual_seed(j)
            w_DB = (torch.rand(d_in, block, generator=gen) - 0.5) * scale
            if j == 0:
                pre = (acts_PD @ w_DB).flatten()
                threshold = float(
                    pre.kthvalue(pre.numel() - TARGET_L0 * acts_PD.shape[0] * block // d_sae).values
                )
            w_start = base + header["w_enc"]["data_offsets"][0]
            for r in range(d_in):
                os.pwrite(fd, w_DB[r].numpy().tobytes(), w_start + 4 * (r * d_sae + start))
            rows = (torch.rand(block, d_in, generator=gen) - 0.5) * scale
            os.pwrite(
                fd, rows.numpy().tobytes(), base + header["w_dec"]["data_offsets"][0] + 4 * start * d_in
            )
        os.pwrite(
            fd,
            torch.full((d_sae,), threshold).numpy().tobytes(),
            base + header["threshold"]["data_offsets"][0],
        )
    return threshold


def prepare_huge(root: Path, max_pairs: int | None, width: int = HUGE_WIDTH) -> Setup:
    cache = _private_cache(root)
    os.environ["PSEVAL_CACHE"] = str(cache)
    data = _prompts(max_pairs, GEMMA)
    folder = root / "saes" / "resid_post" / "layer_12_width_1m_l0_small"
    folder.mkdir(parents=True)
    threshold = _write_gemma_scope_2(folder / "params.safetensors", data["acts"], width)
    (folder / "config.json").write_text(json.dumps({"architecture": "jump_relu"}))
    torch.save(data, root / "prompts.pt")
    setup = Setup(root, cache, [folder], width, max_pairs, ["--hook", HOOK], model=GEMMA)
    setup.info = {"n_prompts": int(data["acts"].shape[0]), "d_in": int(data["acts"].shape[1]),
                  "threshold": threshold, "sae_file_mib": round((folder / "params.safetensors").stat().st_size / 2**20, 1)}  # fmt: skip
    return setup


def run_huge(setup: Setup, repeats: int) -> dict[str, Any]:
    """pseval on the same work as the peer comparison, against the limit, peak RSS against the model's."""
    runs: dict[str, list[dict[str, Any]]] = {side: [] for side in HUGE_SIDES}
    for rep in range(repeats):
        for side in HUGE_SIDES:
            run = one_run(setup, side, 1)
            if side == "limit":
                run = _compose(run, runs["forward"][-1], side)
            runs[side].append(run)
            print(f"round {rep + 1}/{repeats} huge {side}: {run['seconds']:.1f} s, {run['peak_rss_mib']:.0f} MiB",
                  file=sys.stderr, flush=True)  # fmt: skip
    s = {name: _summary(rs) for name, rs in runs.items()}
    rss = {name: _summary(rs, "peak_rss_mib") for name, rs in runs.items()}
    return {
        "model": GEMMA, "hook": HOOK, "d_sae": setup.width, "max_pairs": setup.max_pairs, **setup.info,
        "seconds": s, "ratio_same_work_vs_limit": _ratio(s["pseval_same_work"], s["limit"]),
        "peak_rss_mib": rss,
        "peak_rss_over_model_mib": round(rss["pseval_same_work"]["median"] - rss["forward"]["median"], 1),
        "runs": {name: [_rounded(r) for r in rs] for name, rs in runs.items()},
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--max-pairs", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--width", type=int, default=HUGE_WIDTH)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pseval-bench-huge-", dir="/tmp") as tmp:
        result = run_huge(prepare_huge(Path(tmp), args.max_pairs, args.width), args.repeats)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
