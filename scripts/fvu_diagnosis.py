"""Where an SAE's FVU comes from, on the activations it was trained on: massive tokens, inference rule, budget.

    python scripts/fvu_diagnosis.py --cache ~/.cache/pseval/train_acts/<key>-24576 \
        --results runs/activation-tiny-3seeds/results/ps_eval --out docs/results/fvu_diagnosis.json \
        --group tiny-resid_post runs/activation-tiny-3seeds/saes/L15-resid_post-*

``--cache`` is a training-activation cache folder of the SAEs' hook (``pseval train`` writes one per hook and
token count under ``$PSEVAL_CACHE/train_acts``; its manifest names the hook). Per SAE, on the cache's first
``--tokens`` rows: the FVU over all rows and over the rows whose norm is below ``--norm-threshold`` (the
massive-activation tokens above it, nearly all at the first text position of a context, hold most of the
variance at SmolLM2's residual stream), the share of the squared error on those rows, the SAE's L0 on them
and on the others, and how large its reconstruction of them is (norm of reconstruction − b_dec over norm of
input − b_dec). For SAEs trained as BatchTopK (Matryoshka included), also the FVU when the codes are selected
as in training, the k × 512 largest of each shuffled batch of 512 rows, instead of by the stored inference
threshold. With ``--results``, the held-out FVU of the SAE's result file (``standard.fvu``) beside it, and
``pseval train``'s own held-out FVU when the SAE's metadata records it.
Results of several runs accumulate in ``--out``, one entry per ``--group``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import torch

from pseval.activations.store import iter_cached_rows
from pseval.sae import load_sae

BATCH = 512


def _fvu(x_ND: torch.Tensor, recon_ND: torch.Tensor, mean_D: torch.Tensor) -> float:
    return float((recon_ND - x_ND).pow(2).sum() / (x_ND - mean_D).pow(2).sum())


def _batch_topk_recon(sae: Any, x_ND: torch.Tensor, k: int, seed: int) -> torch.Tensor:
    """Reconstruction with BatchTopK's training-time selection on shuffled batches of ``BATCH`` rows."""
    order = torch.randperm(x_ND.shape[0], generator=torch.Generator().manual_seed(seed))
    recon_ND = torch.empty_like(x_ND)
    for start in range(0, x_ND.shape[0], BATCH):
        rows = order[start : start + BATCH]
        pre_NF = torch.relu((x_ND[rows] - sae.b_dec) @ sae.W_enc + sae.b_enc)
        vals, flat = pre_NF.reshape(-1).topk(k * rows.numel())
        feats_NF = torch.zeros_like(pre_NF).reshape(-1).index_put_((flat,), vals).reshape(pre_NF.shape)
        recon_ND[rows] = feats_NF @ sae.W_dec + sae.b_dec
    return recon_ND


@torch.no_grad()
def diagnose(
    folder: Path, x_ND: torch.Tensor, massive_N: torch.Tensor, results: Path | None
) -> dict[str, Any]:
    sae = load_sae(folder)
    meta = sae.cfg.metadata or {}
    mean_D = x_ND.mean(0)
    feats_NF = sae.encode(x_ND)
    recon_ND = sae.decode(feats_NF)
    l0_N = (feats_NF > 0).sum(1).float()
    err_N = (recon_ND - x_ND).pow(2).sum(1)
    typical_N = ~massive_N
    ratio_N = (recon_ND - sae.b_dec).norm(dim=1) / (x_ND - sae.b_dec).norm(dim=1)
    row: dict[str, Any] = {
        # a checkpoint folder is named by its token count: name it after its run
        "sae": f"{folder.parent.parent.name}@{folder.name}" if folder.name.isdigit() else folder.name,
        "training_architecture": meta.get("training_architecture", sae.cfg.architecture),
        "training_tokens": meta.get("training_tokens"),
        "fvu_all_rows": _fvu(x_ND, recon_ND, mean_D),
        "fvu_typical_rows": _fvu(x_ND[typical_N], recon_ND[typical_N], x_ND[typical_N].mean(0)),
        "squared_error_share_on_massive_rows": float(err_N[massive_N].sum() / err_N.sum()),
        "l0_typical_rows": float(l0_N[typical_N].mean()),
        "l0_massive_rows": float(l0_N[massive_N].mean()) if massive_N.any() else None,
        "reconstruction_ratio_massive_rows": float(ratio_N[massive_N].mean()) if massive_N.any() else None,
        "reconstruction_ratio_typical_rows": float(ratio_N[typical_N].mean()),
    }
    if row["training_architecture"] in ("batchtopk", "matryoshka_batchtopk"):
        k = int(float(getattr(sae.cfg, "k", 0) or meta.get("hyperparameters", {}).get("k", 0)))
        row["fvu_all_rows_batch_topk_selection"] = _fvu(x_ND, _batch_topk_recon(sae, x_ND, k, 0), mean_D)
        row["inference_threshold"] = float(sae.threshold[0])
    held_out = meta.get("eval")
    if isinstance(held_out, dict) and held_out.get("explained_variance") is not None:
        # pseval train's own held-out evaluation (--eval-tokens), written into the SAE's metadata
        row["trainer_held_out_fvu"] = 1.0 - float(held_out["explained_variance"])
        row["trainer_held_out_l0"] = held_out.get("l0")
        row["trainer_held_out_tokens"] = held_out.get("n_tokens")
    if results is not None:
        path = results / f"{folder.name}_eval_results.json"
        if path.is_file():
            standard = json.loads(path.read_text())["eval_result_metrics"].get("standard", {})
            row["held_out_fvu"] = standard.get("fvu")
            row["held_out_l0"] = standard.get("l0")
    return row


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("saes", nargs="+", type=Path, help="SAE folders trained at the cache's hook")
    parser.add_argument("--cache", type=Path, required=True, help="training-activation cache folder")
    parser.add_argument("--tokens", type=int, default=24_576, help="cached rows to use (from the start)")
    parser.add_argument("--norm-threshold", type=float, default=1000.0)
    parser.add_argument("--results", type=Path, help="folder of the SAEs' result files (held-out FVU)")
    parser.add_argument("--group", required=True, help="name of this set of SAEs in --out")
    parser.add_argument("--out", type=Path, required=True, help="JSON file (groups accumulate)")
    args = parser.parse_args()

    manifest = json.loads((args.cache / "manifest.json").read_text())
    x_ND = torch.cat([rows.float() for rows in iter_cached_rows(args.cache, args.tokens, 8192)])
    norms_N = x_ND.norm(dim=1)
    massive_N = norms_N >= args.norm_threshold
    centred_N = (x_ND - x_ND.mean(0)).pow(2).sum(1)
    group = {
        "hook": manifest["hook_name"],
        "cache_split": manifest["split"],
        "rows": int(x_ND.shape[0]),
        "median_norm": float(norms_N.median()),
        "max_norm": float(norms_N.max()),
        "massive_rows": int(massive_N.sum()),
        "norm_threshold": args.norm_threshold,
        "variance_share_of_massive_rows": float(centred_N[massive_N].sum() / centred_N.sum()),
        "saes": [diagnose(folder, x_ND, massive_N, args.results) for folder in args.saes],
    }
    out = json.loads(args.out.read_text()) if args.out.is_file() else {}
    out[args.group] = group
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(group, indent=2))


if __name__ == "__main__":
    main()
