"""PS-Eval speed: activation collection vs a bare forward pass, and scoring many SAEs on cached vectors.

Prints one JSON object with
- ``activation_collection``: the figures of ``bench_activations.py`` (collector tokens/s vs a bare forward of
  the same truncated model on the same batches; goal ratio >= 0.90);
- ``scoring``: seconds to score 10 SAEs of width 4,608 on the cached activations of the WiC test split
  (encode, top-1 latents, metrics, bootstrap intervals, threshold-free scores, per-pair details; goal < 5 s).

    python benchmarks/bench_eval.py [--model smollm2-135m] [--layer 12] [--n-saes 10] [--skip-collection]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch

from pseval.evals.config import PSEvalConfig
from pseval.evals.runner import prompt_activations
from pseval.evals.scoring import encode_all, score_codes
from pseval.models.loading import load_model
from pseval.sae.config import config_from_dict
from pseval.sae.model import SAE


def bench_collection(model: str, layer: int) -> dict[str, object]:
    script = Path(__file__).with_name("bench_activations.py")
    proc = subprocess.run(
        [sys.executable, str(script), "--model", model, "--layer", str(layer)],
        capture_output=True,
        text=True,
        check=True,
    )
    text = proc.stdout
    report: dict[str, object] = json.loads(text[text.index("{") :])  # the script prints one JSON object
    report["meets_goal"] = float(report["ratio"]) >= float(report["goal"])  # type: ignore[arg-type]
    return report


def bench_scoring(model: str, layer: int, n_saes: int, width: int) -> dict[str, object]:
    loaded = load_model(model)
    hook = f"blocks.{layer}.hook_resid_post"
    config = PSEvalConfig(model_name=model, baselines=False)
    data = prompt_activations(loaded, config, [hook])  # cached after the first run
    acts = data.acts[hook]
    d_in = acts.shape[1]
    saes = []
    for i in range(n_saes):
        arch = "topk" if i % 2 == 0 else "standard"
        fields: dict[str, object] = {"architecture": arch, "d_in": d_in, "d_sae": width, "hook_name": hook}
        if arch == "topk":
            fields["k"] = 32
        saes.append(SAE.create_random(config_from_dict(fields), seed=i))
    started = time.perf_counter()
    for sae in saes:
        feats = encode_all(sae, acts)
        score_codes(feats, data, config, sae)
    seconds = time.perf_counter() - started
    return {
        "n_saes": n_saes,
        "d_sae": width,
        "n_prompts": int(acts.shape[0]),
        "n_pairs": len(data.pairs),
        "bootstrap_resamples": config.bootstrap_resamples,
        "seconds_total": round(seconds, 3),
        "seconds_per_sae": round(seconds / n_saes, 3),
        "goal_seconds_total": 5.0,
        "meets_goal": seconds < 5.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--layer", type=int, default=12)
    parser.add_argument("--n-saes", type=int, default=10)
    parser.add_argument("--width", type=int, default=4608)
    parser.add_argument("--skip-collection", action="store_true")
    args = parser.parse_args()
    out: dict[str, object] = {
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
    }
    if not args.skip_collection:
        out["activation_collection"] = bench_collection(args.model, args.layer)
    out["scoring"] = bench_scoring(args.model, args.layer, args.n_saes, args.width)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
