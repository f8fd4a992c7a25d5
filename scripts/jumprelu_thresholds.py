"""Why a short JumpReLU run ends with a large L0: its thresholds against its encoder, read from the SAE folders.

    python scripts/jumprelu_thresholds.py --group tiny runs/activation-tiny-3seeds/saes/*-jumprelu-* \
        --out docs/results/jumprelu_thresholds.json

Per SAE folder written by ``pseval train`` (JumpReLU): the steps it took and the furthest Adam lets a
log-threshold move in them (about lr × ``jumprelu_threshold_lr_scale`` per step, so a factor
exp(lr × scale × steps) from ``jumprelu_init_threshold``); its thresholds in the normalised units training
sees (the stored threshold times the activation scale); the median column norm of ``W_enc`` (normalised
units too: the start is ``decoder_init_norm``) and the median ``b_enc``; and the training log's last numbers
(L0, MSE and the L0 term of the loss on the last batch). A folder trained for one batch gives the numbers at
initialisation: the training log's step-1 entry is measured before the first update. Groups accumulate in
``--out``.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

QUANTILES = (0.0, 0.01, 0.5, 0.99, 1.0)


def describe(folder: Path) -> dict[str, Any]:
    """The thresholds, encoder size and last training numbers of one JumpReLU SAE folder."""
    meta = json.loads((folder / "cfg.json").read_text(encoding="utf-8"))["metadata"]
    log = json.loads((folder / "training_log.json").read_text(encoding="utf-8"))
    train = meta["train_config"]
    weights = load_file(folder / "sae_weights.safetensors")
    scale = float(meta["activation_scale"])
    threshold_F = weights["threshold"].double() * scale
    steps = int(log["n_steps"])
    log_step = train["lr"] * train["jumprelu_threshold_lr_scale"]
    last = log["history"][-1]
    q = torch.tensor(QUANTILES, dtype=torch.float64)
    return {
        "sae": folder.name,
        "hook": meta["hook_name"],
        "seed": train["seed"],
        "training_tokens": log["n_tokens"],
        "steps": steps,
        "lr": train["lr"],
        "threshold_lr_scale": train["jumprelu_threshold_lr_scale"],
        "init_threshold": train["jumprelu_init_threshold"],
        "decoder_init_norm": train["decoder_init_norm"],
        "l0_coefficient": train["l0_coefficient"],
        "bandwidth": train["jumprelu_bandwidth"],
        "threshold_ceiling_at_lr_per_step": train["jumprelu_init_threshold"] * math.exp(log_step * steps),
        "threshold_quantiles": dict(
            zip(map(str, QUANTILES), torch.quantile(threshold_F, q).tolist(), strict=True)
        ),
        "w_enc_column_norm_median": float(weights["W_enc"].norm(dim=0).median()),
        "b_enc_median": float(weights["b_enc"].double().median() * scale),
        "last_batch": {
            key: last[key] for key in ("step", "l0", "mse", "aux", "explained_variance", "dense_fraction")
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("saes", nargs="+", type=Path, help="JumpReLU SAE folders written by pseval train")
    parser.add_argument("--group", required=True, help="name of this set of SAEs in --out")
    parser.add_argument("--about", default="", help="what this group is (stored with it)")
    parser.add_argument("--out", type=Path, required=True, help="JSON file (groups accumulate)")
    args = parser.parse_args()
    out = json.loads(args.out.read_text(encoding="utf-8")) if args.out.is_file() else {}
    out[args.group] = {"about": args.about, "saes": [describe(folder) for folder in sorted(args.saes)]}
    args.out.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    print(f"{len(args.saes)} SAEs -> {args.out} [{args.group}]")


if __name__ == "__main__":
    main()
