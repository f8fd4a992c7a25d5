"""PS-Eval at scale: peak memory over many SAEs, one 1M-latent SAE, scoring time against the bare encode matmul.

Prints one JSON object with the parts asked for (``--part rss|huge|ratio``, default all three):

- ``rss``: peak RSS of one ``pseval eval`` with ``--n-saes`` (32) random SAELens SAEs of width 36,864 on
  SmolLM2 against the same run with 1 of them (goal ratio <= 1.15); each run is a subprocess, its peak read
  from ``wait4``'s ``ru_maxrss``.
- ``huge``: one 1,048,576-latent JumpReLU SAE in Gemma Scope 2 layout (random weights) on ``gemma3-270m``
  ``blocks.12.hook_resid_post`` (SmolLM2 with d_in 576 when Gemma 3 cannot be loaded; ``model`` says which),
  scored straight from its file: peak RSS against the model's own footprint (goal <= + 3 GB), and the
  scoring time against the bare ``prompts × d_in × d_sae`` encode matmul timed in the same process (goals
  <= 1.5 × with baselines off, <= 3 × with the random-SAE control on).
- ``ratio``: per-SAE scoring time at width 36,864 with baselines on, against the bare encode matmul.

Scoring is everything ``score_sae`` reports (codes, PS-Eval metrics, bootstrap intervals, threshold-free
scores, per-pair details with encoder/decoder cosines, breakdowns, baselines) except the two interpretation
extras that are not a function of the encode: the corpus contexts (``--interpret-tokens``) and the logit lens
(``--logit-lens-tokens``, chosen latents × d_model × vocabulary). The logit lens is timed on its own and
reported beside the ratios (``logit_lens_seconds``).

    python benchmarks/bench_scale.py [--part rss] [--n-saes 32] [--max-pairs 64]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch

WIDTH = 36_864
HUGE_WIDTH = 1 << 20
SMOLLM = "smollm2-135m"
GEMMA = "gemma3-270m"


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _run_peak(cmd: list[str]) -> tuple[float, float, str]:
    """Peak RSS (MiB) and wall seconds of a subprocess, read from wait4 (that child only)."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = proc.stdout.read() if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{out[-3000:]}")
    return usage.ru_maxrss / 1024, seconds, out


def _write_saelens(folder: Path, n: int, d_in: int, hook: str) -> list[Path]:
    from pseval.sae.config import config_from_dict
    from pseval.sae.formats import save_sae
    from pseval.sae.model import SAE

    paths = []
    for i in range(n):
        cfg = config_from_dict(
            {"architecture": "jumprelu" if i % 2 else "topk", "k": 32, "d_in": d_in, "d_sae": WIDTH,
             "hook_name": hook, "model_name": SMOLLM}
        ) if i % 2 == 0 else config_from_dict(
            {"architecture": "jumprelu", "d_in": d_in, "d_sae": WIDTH, "hook_name": hook, "model_name": SMOLLM}
        )  # fmt: skip
        path = folder / f"sae_{i:02d}"
        save_sae(SAE.create_random(cfg, seed=i), path)
        paths.append(path)
    return paths


def part_rss(n_saes: int, max_pairs: int) -> dict[str, Any]:
    hook = "blocks.12.hook_resid_post"
    with tempfile.TemporaryDirectory(prefix="pseval-bench-rss-") as tmp:
        root = Path(tmp)
        paths = _write_saelens(root, n_saes, 576, hook)
        base = [sys.executable, "-m", "pseval", "eval", "--model", SMOLLM, "--max-pairs", str(max_pairs),
                "--standard-metrics-tokens", "0", "--interpret-tokens", "0", "--bootstrap", "0"]  # fmt: skip
        runs = {}
        for label, chosen in (("one", paths[:1]), ("many", paths)):
            args = [a for p in chosen for a in ("--sae", str(p))]
            peak, seconds, _ = _run_peak([*base, *args, "--out", str(root / f"out_{label}")])
            runs[label] = {
                "n_saes": len(chosen),
                "peak_rss_mib": round(peak, 1),
                "seconds": round(seconds, 1),
            }
    ratio = runs["many"]["peak_rss_mib"] / runs["one"]["peak_rss_mib"]
    return {"d_sae": WIDTH, "max_pairs": max_pairs, **runs, "ratio": round(ratio, 3), "goal_ratio": 1.15,
            "meets_goal": ratio <= 1.15}  # fmt: skip


def _bare_matmul_seconds(n: int, d_in: int, d_sae: int, repeats: int = 1) -> float:
    """Seconds of ``x [n, d_in] @ W [d_in, d_sae]`` with the weights in memory (in blocks if they are huge)."""
    x = torch.randn(n, d_in)
    step = max(1, min(d_sae, (1 << 24) // max(1, n)))
    W = torch.randn(d_in, min(d_sae, step))
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        for start in range(0, d_sae, step):
            width = min(step, d_sae - start)
            _ = x @ (W if width == W.shape[1] else W[:, :width])
        best = min(best, time.perf_counter() - started)
    return best


def _prepared(model: str, hook: str, max_pairs: int | None, baselines: bool) -> tuple[Any, Any, Any, Any]:
    from pseval.evals.config import PSEvalConfig
    from pseval.evals.runner import prompt_activations
    from pseval.models.loading import load_model

    loaded = load_model(model)
    config = PSEvalConfig(
        model_name=model, max_pairs=max_pairs, baselines=baselines, interpret_tokens=0, logit_lens_tokens=0
    )
    data = prompt_activations(loaded, config, [hook])
    return loaded, config, data, data.acts[hook]


def _write_gemma_scope_2(path: Path, d_in: int, d_sae: int, rows: int = 8) -> None:
    """A random Gemma Scope 2 ``params.safetensors``, streamed a few rows at a time (never whole in memory)."""
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
        size = 4 * int(torch.tensor(shape).prod())
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    gen = torch.Generator().manual_seed(0)
    scale = 2 / d_in**0.5
    with path.open("wb") as fh:
        fh.write(len(raw).to_bytes(8, "little") + raw)
        fh.write(torch.zeros(d_in).numpy().tobytes())
        fh.write(torch.zeros(d_sae).numpy().tobytes())
        fh.write(torch.full((d_sae,), 0.05).numpy().tobytes())
        for start in range(0, d_sae, 1 << 16):  # w_dec [d_sae, d_in]: unit-ish random rows
            n = min(1 << 16, d_sae - start)
            fh.write(((torch.rand(n, d_in, generator=gen) - 0.5) * scale).numpy().tobytes())
        for start in range(0, d_in, rows):  # w_enc [d_in, d_sae]
            n = min(rows, d_in - start)
            fh.write(((torch.rand(n, d_sae, generator=gen) - 0.5) * scale).numpy().tobytes())


def part_huge(max_pairs: int | None) -> dict[str, Any]:
    """Runs in its own subprocess (``--part huge-child``) so its peak RSS is its own."""
    peak, _seconds, out = _run_peak([sys.executable, __file__, "--part", "huge-child",
                                    *(["--max-pairs", str(max_pairs)] if max_pairs else [])])  # fmt: skip
    report: dict[str, Any] = json.loads(out[out.index("{") :])
    report["peak_rss_mib_subprocess"] = round(peak, 1)
    return report


def huge_child(max_pairs: int | None) -> dict[str, Any]:
    from pseval.evals.scoring import score_sae
    from pseval.sae.formats.loader import open_sae

    hook = "blocks.12.hook_resid_post"
    model, note = GEMMA, None
    try:
        from pseval.models.loading import load_model

        load_model(GEMMA)
    except Exception as exc:  # the optional Gemma 3 package or alias is missing: measure on SmolLM2
        model, note = SMOLLM, f"gemma3-270m unavailable ({str(exc).splitlines()[0][:160]}); SmolLM2, d_in 576"
    rss_before_model = _peak_rss_mib()
    loaded, config, data, acts = _prepared(model, hook, max_pairs, baselines=True)
    model_rss = _peak_rss_mib()
    d_in = acts.shape[1]
    with tempfile.TemporaryDirectory(prefix="pseval-bench-huge-") as tmp:
        folder = Path(tmp) / "resid_post" / "layer_12_width_1m_l0_small"
        folder.mkdir(parents=True)
        _write_gemma_scope_2(folder / "params.safetensors", d_in, HUGE_WIDTH)
        (folder / "config.json").write_text(json.dumps({"architecture": "jump_relu"}))
        writing_rss = _peak_rss_mib()
        source = open_sae(folder, hook_name=hook)
        n = acts.shape[0]
        bare = _bare_matmul_seconds(n, d_in, HUGE_WIDTH)
        off = config.model_copy(update={"baselines": False})
        started = time.perf_counter()
        _, details, _ = score_sae(loaded, source, hook, data, off)
        seconds_off = time.perf_counter() - started
        started = time.perf_counter()
        score_sae(loaded, source, hook, data, config, held_out=data, baselines_by_hook={})
        seconds_on = time.perf_counter() - started
        lens_seconds, n_lens = _logit_lens_seconds(loaded, source, details)
    return {
        "model": model,
        "note": note,
        "hook": hook,
        "d_in": d_in,
        "d_sae": HUGE_WIDTH,
        "n_prompts": n,
        "n_pairs": len(data.pairs),
        "rss_mib_python_and_torch": round(rss_before_model, 1),
        "rss_mib_after_model_and_prompts": round(model_rss, 1),
        "rss_mib_peak_while_writing_random_weights": round(writing_rss, 1),
        "peak_rss_mib_after_scoring": round(_peak_rss_mib(), 1),
        "bare_encode_matmul_seconds": round(bare, 3),
        "scoring_seconds_baselines_off": round(seconds_off, 3),
        "scoring_seconds_random_control_on": round(seconds_on, 3),
        "ratio_baselines_off": round(seconds_off / bare, 3),
        "ratio_random_control_on": round(seconds_on / bare, 3),
        "goal_ratio_off": 1.5,
        "goal_ratio_on": 3.0,
        "meets_goals": seconds_off / bare <= 1.5 and seconds_on / bare <= 3.0,
        "logit_lens_seconds": round(lens_seconds, 3),
        "logit_lens_latents": n_lens,
        "logit_lens_ratio": round(lens_seconds / bare, 3),
    }


def _logit_lens_seconds(loaded: Any, sae: Any, details: Any) -> tuple[float, int]:
    """Seconds of the logit lens of the chosen latents (timed apart: it does not depend on the encode)."""
    from pseval.evals.scoring import logit_lens
    from pseval.sae.lazy import lazy_blocks

    used = [d.latent_1 for d in details] + [d.latent_2 for d in details]
    blocks = lazy_blocks(sae)
    started = time.perf_counter()
    lens = logit_lens(loaded, blocks, used)
    return time.perf_counter() - started, len(lens)


def part_ratio(max_pairs: int | None) -> dict[str, Any]:
    from pseval.evals.scoring import score_sae
    from pseval.sae.config import config_from_dict
    from pseval.sae.model import SAE

    hook = "blocks.12.hook_resid_post"
    loaded, config, data, acts = _prepared(SMOLLM, hook, max_pairs, baselines=True)
    sae = SAE.create_random(
        config_from_dict(
            {"architecture": "jumprelu", "d_in": acts.shape[1], "d_sae": WIDTH, "hook_name": hook}
        ),
        seed=1,
    )
    cache: dict[str, Any] = {}
    score_sae(
        loaded, sae, hook, data, config, held_out=data, baselines_by_hook=cache
    )  # warm-up, dense baseline
    started = time.perf_counter()
    _, details, _ = score_sae(loaded, sae, hook, data, config, held_out=data, baselines_by_hook=cache)
    seconds = time.perf_counter() - started
    bare = _bare_matmul_seconds(acts.shape[0], acts.shape[1], WIDTH, repeats=5)
    lens_seconds, n_lens = _logit_lens_seconds(loaded, sae, details)
    return {
        "d_sae": WIDTH,
        "n_prompts": int(acts.shape[0]),
        "n_pairs": len(data.pairs),
        "bootstrap_resamples": config.bootstrap_resamples,
        "scoring_seconds": round(seconds, 3),
        "bare_encode_matmul_seconds": round(bare, 4),
        "ratio": round(seconds / bare, 2),
        "logit_lens_seconds": round(lens_seconds, 3),
        "logit_lens_latents": n_lens,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--part", choices=["all", "rss", "huge", "ratio", "huge-child"], default="all")
    parser.add_argument("--n-saes", type=int, default=32)
    parser.add_argument("--max-pairs", type=int, default=None, help="pairs for huge/ratio (default: all)")
    parser.add_argument("--rss-max-pairs", type=int, default=64)
    args = parser.parse_args()
    torch.manual_seed(0)
    if args.part == "huge-child":
        print(json.dumps(huge_child(args.max_pairs)))
        return
    report: dict[str, Any] = {"torch_threads": torch.get_num_threads()}
    if args.part in ("all", "rss"):
        report["rss"] = part_rss(args.n_saes, args.rss_max_pairs)
    if args.part in ("all", "huge"):
        report["huge"] = part_huge(args.max_pairs)
    if args.part in ("all", "ratio"):
        report["ratio"] = part_ratio(args.max_pairs)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
