"""The hook-site check's cost, as a ratio to a one-SAE eval (goal: <= 0.10), and what an extra SAE adds.

Both sides are measured from scratch (no activation cache: the eval runs its prompts through the model, the
check its 2,048 corpus tokens), interleaved eval / check / check of two SAEs at one hook, ``--repeats`` times,
on the same loaded model, so the shared cores' load falls on all three alike. Prints one JSON object with the
median seconds and

- ``ratio``: check / eval (what the check adds to a one-SAE eval that computes its activations);
- ``extra_sae_ratio``: check of two SAEs at one hook / check of one (one corpus pass serves both, so the second
  costs its encode and decode only).

A rerun reads the check's corpus rows from the activation cache, like the prompts, and costs the encode alone.

    python benchmarks/bench_site_check.py [--sae ~/.cache/pseval/demo/saes/L12-resid_post-topk-x8] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from pseval.evals.config import PSEvalConfig
from pseval.evals.regime import input_regime
from pseval.evals.runner import evaluate, open_items
from pseval.evals.site_check import check_sites
from pseval.models.loading import load_model

DEMO_SAE = Path.home() / ".cache" / "pseval" / "demo" / "saes" / "L12-resid_post-topk-x8"
GOAL = 0.10


def _items(sae: Path, config: PSEvalConfig, copies: int) -> list[object]:
    items = open_items([sae] * copies)
    for i, item in enumerate(items):
        item.name, item.regime = f"sae{i}", input_regime(item.cfg.metadata, config)
    return list(items)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument(
        "--sae", type=Path, default=DEMO_SAE, help="A trained SAE of --model (run pseval demo)."
    )
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if not args.sae.exists():
        raise SystemExit(f"{args.sae} does not exist: run `python -m pseval demo` first, or pass --sae")
    loaded = load_model(args.model)
    config = PSEvalConfig(model_name=args.model, cache_activations=False, site_check=False)
    check_config = config.model_copy(update={"site_check": True})
    times: dict[str, list[float]] = {"eval": [], "check": [], "check_two_saes": []}
    for _ in range(args.repeats):
        start = time.perf_counter()
        evaluate(loaded, [args.sae], config=config, output_folder=None)
        times["eval"].append(time.perf_counter() - start)
        for key, copies in (("check", 1), ("check_two_saes", 2)):
            items = _items(args.sae, check_config, copies)
            start = time.perf_counter()
            check_sites(loaded, items, check_config, "cpu")
            times[key].append(time.perf_counter() - start)
    median = {key: statistics.median(values) for key, values in times.items()}
    ratio = median["check"] / median["eval"]
    report = {
        "model": args.model,
        "sae": str(args.sae),
        "site_check_tokens": check_config.site_check_tokens,
        "repeats": args.repeats,
        "seconds": {key: [round(v, 2) for v in values] for key, values in times.items()},
        "median_seconds": {key: round(v, 2) for key, v in median.items()},
        "ratio": round(ratio, 4),
        "extra_sae_ratio": round(median["check_two_saes"] / median["check"], 4),
        "goal": GOAL,
        "meets_goal": ratio <= GOAL,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
