"""The hook-site check's cost, as a ratio to a one-SAE eval (goal: <= 0.10), and what an extra SAE adds.

Both sides are measured from scratch (no activation cache: the eval runs its prompts through the model, the
check its 2,048 corpus tokens), interleaved eval / check / check of two SAEs at one hook, ``--repeats`` times,
on the same loaded model, so the shared cores' load falls on all of them alike. Prints one JSON object with the
median seconds and

- ``ratio``: check / eval (what the check adds to a one-SAE eval that computes its activations);
- ``extra_sae_ratio``: check of two SAEs at one hook / check of one (one corpus pass serves both, so the second
  costs its encode and decode only);
- with ``--width``, ``extra_sae_vs_encode``: (check of two - check of one) / the bare encode of the check's
  2,048 rows by one SAE (1.0: the extra SAE costs its encode and nothing else); ``per_sae_sparse_vs_encode``
  and ``per_sae_dense_vs_encode``: one SAE's measurement on the cached rows (encode, decode, sums) with the
  sparse decode and with the dense one it replaced, over the bare encode; and the whole check with the dense
  decode (``check_dense``, ``dense_ratio``). The sparse and dense FVUs must agree.

A rerun reads the check's corpus rows from the activation cache, like the prompts, and costs the encode alone.

    python benchmarks/bench_site_check.py [--sae ~/.cache/pseval/demo/saes/L12-resid_post-topk-x8] [--repeats 3]
    python benchmarks/bench_site_check.py --width 36864 [--max-pairs 128] [--repeats 2]

``--width`` scores random JumpReLU SAEs of that width at ``blocks.12.hook_resid_post`` instead, their threshold
set for a mean L0 of 50 on the check's corpus rows (as ``bench_scale.py`` sets it on the prompts). Random
weights fit no site (FVU far above 1): their check is timed to its end with its refusal left out.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch

import pseval.metrics.site as site
from pseval.evals import site_check
from pseval.evals.config import PSEvalConfig
from pseval.evals.regime import input_regime
from pseval.evals.runner import evaluate, open_items
from pseval.models.loading import load_model

DEMO_SAE = Path.home() / ".cache" / "pseval" / "demo" / "saes" / "L12-resid_post-topk-x8"
HOOK = "blocks.12.hook_resid_post"
TARGET_L0 = 50
GOAL = 0.10


def _items(saes: list[Path], config: PSEvalConfig) -> list[Any]:
    items = open_items(saes)
    for i, item in enumerate(items):
        item.name, item.regime = f"sae{i}", input_regime(item.cfg.metadata, config)
    return list(items)


def write_wide_saes(loaded: Any, folder: Path, width: int, n: int) -> tuple[list[Path], list[float]]:
    """``n`` random JumpReLU SAEs at HOOK, each with one threshold giving a mean L0 of ~TARGET_L0 on the check's rows."""
    from pseval.sae.config import config_from_dict
    from pseval.sae.formats import save_sae
    from pseval.sae.model import SAE

    rows_ND = site.site_activations(loaded, [HOOK], 2048, True)[HOOK]
    paths, l0s = [], []
    for i in range(n):
        cfg = config_from_dict({"architecture": "jumprelu", "d_in": rows_ND.shape[1], "d_sae": width,
                                "hook_name": HOOK, "model_name": loaded.name})  # fmt: skip
        sae = SAE.create_random(cfg, seed=i)
        with torch.no_grad():
            pre_NF = (rows_ND - sae.b_dec) @ sae.W_enc + sae.b_enc
            threshold = float(pre_NF.flatten().kthvalue(pre_NF.numel() - TARGET_L0 * rows_ND.shape[0]).values)
            sae.threshold.fill_(threshold)
            l0s.append(float((pre_NF > threshold).sum(-1).float().mean()))
        del pre_NF
        paths.append(save_sae(sae, folder / f"sae_{i:02d}"))
    return paths, l0s


def _check(loaded: Any, saes: list[Path], config: PSEvalConfig, dense: bool = False) -> dict[str, Any]:
    """Seconds of the check of ``saes`` (never refused) and the first SAE's FVU; ``dense``: the old decode."""
    real_decodable, real_report = site._sparse_decodable, site_check._report
    if dense:
        site._sparse_decodable = lambda _sae: False  # type: ignore[assignment]
    site_check._report = lambda *_args: None  # type: ignore[assignment]  # measured to the end, never refused
    start = time.perf_counter()
    try:
        checks = site_check.check_sites(loaded, _items(saes, config), config, "cpu")
    finally:
        seconds = time.perf_counter() - start
        site._sparse_decodable, site_check._report = real_decodable, real_report  # type: ignore[assignment]
    return {"seconds": seconds, "fvu": checks["sae0"].fvu}


def _per_sae(loaded: Any, sae_path: Path) -> dict[str, Any]:
    """One SAE on the check's 2,048 rows (from the activation cache): its bare encode, and the check's
    measurement with the sparse decode and with the dense one (each the encode, decode and sums)."""
    from pseval.sae import load_sae

    rows_ND = site.site_activations(loaded, [HOOK], 2048, True)[HOOK]
    sae = load_sae(str(sae_path))
    out: dict[str, Any] = {}
    with torch.no_grad():
        start = time.perf_counter()
        for x_BD in rows_ND.split(1024):
            sae.encode(x_BD)
        out["encode"] = time.perf_counter() - start
        start = time.perf_counter()
        out["fvu_sparse"] = site.site_reconstruction(sae, rows_ND)["fvu"]
        out["measure_sparse"] = time.perf_counter() - start
        real = site._sparse_decodable
        site._sparse_decodable = lambda _sae: False  # type: ignore[assignment]
        try:
            start = time.perf_counter()
            out["fvu_dense"] = site.site_reconstruction(sae, rows_ND)["fvu"]
            out["measure_dense"] = time.perf_counter() - start
        finally:
            site._sparse_decodable = real  # type: ignore[assignment]
    out["seconds"] = out["encode"]
    return out


def measure(loaded: Any, saes: list[Path], config: PSEvalConfig, repeats: int, wide: bool) -> dict[str, Any]:
    """Interleaved timings: eval, check (one SAE), [check dense, encode,] check (two SAEs), ``repeats`` times."""
    check_config = config.model_copy(update={"site_check": True})
    steps: dict[str, Callable[[], dict[str, Any]]] = {
        "eval": lambda: _timed(lambda: evaluate(loaded, saes[:1], config=config, output_folder=None)),
        "check": lambda: _check(loaded, saes[:1], check_config),
    }
    if wide:
        steps["check_dense"] = lambda: _check(loaded, saes[:1], check_config, dense=True)
        steps["encode"] = lambda: _per_sae(loaded, saes[0])
    steps["check_two_saes"] = lambda: _check(loaded, saes[:2], check_config)
    times: dict[str, list[float]] = {key: [] for key in steps}
    fvus: dict[str, float | None] = {}
    for repeat in range(repeats):
        for key, step in steps.items():
            got = step()
            times[key].append(got["seconds"])
            for extra in ("measure_sparse", "measure_dense"):
                if extra in got:
                    times.setdefault(extra, []).append(got[extra])
            for name in ("fvu", "fvu_sparse", "fvu_dense"):
                if got.get(name) is not None:
                    fvus[key if name == "fvu" else name] = got[name]
            print(f"repeat {repeat + 1}/{repeats}: {key} {got['seconds']:.1f} s", file=sys.stderr, flush=True)
    return {"times": times, "fvu": fvus}


def _timed(fn: Callable[[], Any]) -> dict[str, Any]:
    start = time.perf_counter()
    fn()
    return {"seconds": time.perf_counter() - start}


def report(
    args: argparse.Namespace, saes: list[Path], measured: dict[str, Any], info: dict[str, Any]
) -> dict:
    times = measured["times"]
    median = {key: statistics.median(values) for key, values in times.items()}
    ratio = median["check"] / median["eval"]
    out: dict[str, Any] = {
        "model": args.model,
        "sae": str(saes[0]) if not args.width else f"random JumpReLU, width {args.width}",
        **info,
        "site_check_tokens": 2048,
        "max_pairs": args.max_pairs,
        "repeats": args.repeats,
        "seconds": {key: [round(v, 2) for v in values] for key, values in times.items()},
        "median_seconds": {key: round(v, 2) for key, v in median.items()},
        "ratio": round(ratio, 4),
        "extra_sae_ratio": round(median["check_two_saes"] / median["check"], 4),
        "goal": GOAL,
        "meets_goal": ratio <= GOAL,
    }
    if args.width:
        out["dense_ratio"] = round(median["check_dense"] / median["eval"], 4)
        out["sparse_vs_dense_check"] = round(median["check"] / median["check_dense"], 4)
        extra = median["check_two_saes"] - median["check"]
        out["extra_sae_vs_encode"] = round(extra / median["encode"], 4)
        out["per_sae_sparse_vs_encode"] = round(median["measure_sparse"] / median["encode"], 4)
        out["per_sae_dense_vs_encode"] = round(median["measure_dense"] / median["encode"], 4)
        out["per_sae_sparse_vs_dense"] = round(median["measure_sparse"] / median["measure_dense"], 4)
        fvu = measured["fvu"]
        out["fvu_sparse_vs_dense"] = {
            "check": [fvu.get("check"), fvu.get("check_dense")],
            "rows": [fvu.get("fvu_sparse"), fvu.get("fvu_dense")],
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument(
        "--sae", type=Path, default=DEMO_SAE, help="A trained SAE of --model (run pseval demo)."
    )
    parser.add_argument("--width", type=int, default=0, help="Random SAEs of this width instead of --sae.")
    parser.add_argument("--max-pairs", type=int, default=None, help="The eval's --max-pairs (default: all).")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None, help="Also write the JSON here.")
    args = parser.parse_args()
    loaded = load_model(args.model)
    config = PSEvalConfig(
        model_name=args.model, cache_activations=False, site_check=False, max_pairs=args.max_pairs
    )
    with tempfile.TemporaryDirectory() as tmp:
        info: dict[str, Any] = {}
        if args.width:
            saes, l0s = write_wide_saes(loaded, Path(tmp), args.width, 2)
            info = {"width": args.width, "calibrated_mean_l0": [round(x, 1) for x in l0s]}
        elif not args.sae.exists():
            raise SystemExit(f"{args.sae} does not exist: run `python -m pseval demo` first, or pass --sae")
        else:
            saes = [args.sae, args.sae]
        result = report(args, saes, measure(loaded, saes, config, args.repeats, bool(args.width)), info)
    print(json.dumps(result, indent=2))
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
