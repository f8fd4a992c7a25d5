"""Overhead of the Ray executor: ``paper-layers --budget tiny`` on one Ray worker against the local executor.

Both sides run the same sweep, in this one process run, each from an empty activation cache (the exported
model is shared, so neither pays for the export), into its own output folder:

(a) the local executor (:func:`pseval.sweep.runner.run_sweep`);
(b) the Ray executor (:func:`pseval.distributed.sweep.run_sweep_ray`) on a local cluster started by the
    run itself (its start-up is counted), with one task reserving all of the machine's CPUs, so the whole
    sweep is one hook group on one worker: what differs is only Ray (cluster start, task dispatch, the
    worker's own model load) and the driver's validation pass.

It prints one JSON object with both wall times, the ratio ray/local (goal: <= 1.2), the Ray run's time outside
its task (Ray's fixed cost, unaffected by load that changes between the two sides on a shared machine: compare
the load averages printed) and whether the result files are identical (minus ids, timestamps and the output folder's path) and the SAE weights bit-identical.
``--layers`` restricts the preset's layers for a quicker run (the full preset trains 33 SAEs, ~5 min per
side on 2 CPU cores).

    python benchmarks/bench_distributed.py [--layers 0 3 6] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _strip(out: Path) -> dict[str, Any]:
    stripped = {}
    for path in sorted((out / "results" / "ps_eval").glob("*_eval_results.json")):
        data = json.loads(path.read_text().replace(str(out), "<out>"))
        for key in ("eval_id", "datetime_epoch_millis"):
            data.pop(key, None)
        stripped[path.name] = data
    return stripped


def _weights(out: Path) -> dict[str, bytes]:
    return {p.parent.name: p.read_bytes() for p in sorted((out / "saes").glob("*/*.safetensors"))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--layers", type=int, nargs="*", default=None, help="Only these layers of the preset."
    )
    parser.add_argument("--keep", type=Path, default=None, help="Keep the outputs in this folder.")
    args = parser.parse_args()

    import torch

    from pseval._io import cache_dir
    from pseval.distributed.cluster import RayOptions
    from pseval.distributed.sweep import run_sweep_ray
    from pseval.models.loading import load_model
    from pseval.sweep.config import preset
    from pseval.sweep.runner import run_sweep

    base_cache = cache_dir()
    load_model("smollm2-135m")  # the one-time export, before either side is timed
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-distributed-"))
    config = preset("paper-layers", "tiny")
    if args.layers:
        grid = config.grid.model_copy(update={"layers": args.layers})  # type: ignore[union-attr]
        config = config.model_copy(update={"grid": grid})
    config = config.model_copy(update={"device": "cpu"})
    n_saes = len(config.runs())

    def fresh_cache(name: str) -> None:
        cache = work / f"cache-{name}"
        shutil.rmtree(cache, ignore_errors=True)
        cache.mkdir(parents=True)
        (cache / "models").symlink_to(base_cache / "models", target_is_directory=True)
        os.environ["PSEVAL_CACHE"] = str(cache)

    quiet = lambda _m: None  # noqa: E731
    fresh_cache("local")
    t0 = time.perf_counter()
    local = run_sweep(config.model_copy(update={"out": work / "local"}), status=quiet)
    local_s = time.perf_counter() - t0

    fresh_cache("ray")
    t0 = time.perf_counter()
    ray_summary = run_sweep_ray(
        config.model_copy(update={"out": work / "ray"}),
        RayOptions(address="local", progress=False),
        status=quiet,
    )
    ray_s = time.perf_counter() - t0
    os.environ["PSEVAL_CACHE"] = str(base_cache)

    report = {
        "benchmark": "bench_distributed",
        "sweep": f"paper-layers tiny, layers {args.layers or 'all'}",
        "n_saes": n_saes,
        "n_hooks": len(config.hook_names()),
        "local_s": round(local_s, 1),
        "ray_one_worker_s": round(ray_s, 1),
        "ratio_ray_over_local": round(ray_s / local_s, 3),
        "goal": "<= 1.2",
        # Ray's fixed cost (cluster start, dispatch, the driver's validation pass, the figures), measured
        # within the Ray run itself, so it does not depend on load that differs between the two sides.
        "ray_outside_tasks_s": round(ray_s - sum(g["seconds"] for g in ray_summary["groups"]), 1),
        "ray_groups": [
            {"hooks": len(g["hooks"]), "saes": g["n_saes"], "where": g["where"], "seconds": g["seconds"]}
            for g in ray_summary["groups"]
        ],
        "local_timings": local["timings"],
        "ray_timings": ray_summary["timings"],
        "results_identical": _strip(work / "ray") == _strip(work / "local"),
        "weights_identical": _weights(work / "ray") == _weights(work / "local"),
        "machine": {
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "load_avg": [round(x, 2) for x in os.getloadavg()],
            "python": platform.python_version(),
        },
    }
    if args.keep is None:
        shutil.rmtree(work, ignore_errors=True)
    json.dump(report, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
