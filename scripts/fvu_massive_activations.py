"""FVU of SAEs on held-out text with and without the few massive-activation tokens of the hook.

    python scripts/fvu_massive_activations.py --model smollm2-135m --hook blocks.12.hook_resid_post \
        --tokens 8192 --norm-threshold 1000 runs/beyond-paper-smollm2/saes/*

At SmolLM2's middle residual stream a handful of tokens (about 1 in 2,700, nearly all at the first text
position of a context) have norms of 1,000 to 27,000 where the median is 140, and they carry most of the
variance about the mean. The fraction of variance unexplained (FVU) over all tokens is then mostly a
measure of how well an SAE reconstructs those few tokens. This prints, per SAE, the FVU over all held-out
tokens (as ``pseval metrics`` computes it) and over the tokens below ``--norm-threshold``, with the number
of tokens excluded and their share of the variance. Held-out text: the corpus's holdout split, never trained
on. Nothing is written.
"""

from __future__ import annotations

import argparse
import json

import torch

from pseval.activations.store import ActivationStore
from pseval.models import load_model
from pseval.sae import load_sae


def _sum_sq_about_mean(x_ND: torch.Tensor) -> float:
    return float((x_ND - x_ND.mean(dim=0)).pow(2).sum())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("saes", nargs="+", help="SAE folders trained at --hook")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--hook", default="blocks.12.hook_resid_post")
    parser.add_argument("--tokens", type=int, default=8192, help="held-out tokens")
    parser.add_argument("--norm-threshold", type=float, default=1000.0)
    args = parser.parse_args()

    loaded = load_model(args.model)
    store = ActivationStore(loaded)
    x_ND = torch.cat(list(store.holdout_activations(args.hook, args.tokens))).double()
    norms_N = x_ND.norm(dim=1)
    typical_N = norms_N < args.norm_threshold
    total_ss = _sum_sq_about_mean(x_ND)
    typical_ss = _sum_sq_about_mean(x_ND[typical_N])
    summary = {
        "model": args.model,
        "hook": args.hook,
        "held_out_tokens": int(x_ND.shape[0]),
        "median_norm": float(norms_N.median()),
        "max_norm": float(norms_N.max()),
        "tokens_above_threshold": int((~typical_N).sum()),
        "share_of_variance_above_threshold": 1.0 - typical_ss / total_ss,
        "saes": [],
    }
    for folder in args.saes:
        sae = load_sae(folder)
        with torch.no_grad():
            recon_ND = sae.decode(sae.encode(x_ND.float()), x_ND.float()).double()
        err_N = (recon_ND - x_ND).pow(2).sum(dim=1)
        summary["saes"].append(
            {
                "sae": folder,
                "fvu_all_tokens": float(err_N.sum()) / total_ss,
                "fvu_below_threshold": float(err_N[typical_N].sum()) / typical_ss,
                "share_of_error_above_threshold": float(err_N[~typical_N].sum() / err_N.sum()),
            }
        )
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
