"""Does a missing BOS show in the activations? The first text token's norm against the median, with and without BOS.

    python scripts/bos_sink_norms.py [--models smollm2-135m gemma3-270m] [--sae DIR ...] \
        [--out docs/results/bos_sink_norms.json]

Without BOS a model makes the first token of each context its attention sink, and from some layer on that
row's norm is many times the others'. For each model this reads 2,048 held-out tokens of the bundled corpus in
contexts of 128 (as the hook-site check does) at ``hook_resid_post`` of several layers, with BOS and without,
and records per layer: the median norm of the text rows, the first text token's norm over that median (per
context: smallest, median, largest) and the largest ratio of any other text row. A BOS row itself is a special
token, left out as everywhere in pseval. Each ``--sae`` (its hook and model from its config) is measured on
the same rows: FVU on the first text tokens and on the others, with and without BOS.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch

from pseval._io import write_json_atomic
from pseval.data.corpus import iter_context_batches
from pseval.metrics.site import site_reconstruction
from pseval.models.hooks import as_module, run_with_cache
from pseval.models.loading import load_model
from pseval.sae import load_sae

LAYERS = {"smollm2-135m": (1, 3, 6, 12, 18, 24, 29), "gemma3-270m": (1, 3, 6, 9, 12, 15, 17)}
N_TOKENS, CONTEXT = 2048, 128


@torch.no_grad()
def rows_by_position(
    loaded: Any, hooks: list[str], add_bos: bool
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Each hook's text rows ``[N, D]`` and whether each is its context's first text token ``[N]``."""
    rows: dict[str, list[torch.Tensor]] = {hook: [] for hook in hooks}
    firsts: list[torch.Tensor] = []
    for batch in iter_context_batches(loaded.tokenizer, "bundled", "holdout", CONTEXT, 8, N_TOKENS, add_bos):
        mask_BT = batch.token_mask
        first_BT = torch.zeros_like(mask_BT)
        first_BT[torch.arange(mask_BT.shape[0]), mask_BT.int().argmax(dim=1)] = True
        acts = run_with_cache(as_module(loaded), batch.input_ids, batch.attention_mask, hooks)
        for hook in hooks:
            rows[hook].append(acts[hook][mask_BT].float())
        firsts.append(first_BT[mask_BT])
    first_N = torch.cat(firsts)
    return {hook: (torch.cat(parts), first_N) for hook, parts in rows.items()}


def norm_stats(rows_ND: torch.Tensor, first_N: torch.Tensor) -> dict[str, float]:
    norms = rows_ND.norm(dim=-1)
    median = float(norms.median())
    first = norms[first_N] / median
    return {
        "median_norm": round(median, 2),
        "first_token_ratio_min": round(float(first.min()), 2),
        "first_token_ratio_median": round(float(first.median()), 2),
        "first_token_ratio_max": round(float(first.max()), 2),
        "other_rows_ratio_max": round(float(norms[~first_N].max()) / median, 2),
        "contexts": int(first_N.sum()),
    }


def sae_stats(sae: Any, rows_ND: torch.Tensor, first_N: torch.Tensor) -> dict[str, float]:
    return {
        "fvu_all": round(float(site_reconstruction(sae, rows_ND)["fvu"]), 4),
        "fvu_first_tokens": round(float(site_reconstruction(sae, rows_ND[first_N])["fvu"]), 4),
        "fvu_other_tokens": round(float(site_reconstruction(sae, rows_ND[~first_N])["fvu"]), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=list(LAYERS))
    parser.add_argument("--sae", nargs="*", type=Path, default=[])
    parser.add_argument("--out", type=Path, default=Path("docs/results/bos_sink_norms.json"))
    args = parser.parse_args()
    torch.manual_seed(0)
    saes = [load_sae(str(path)) for path in args.sae]
    report: dict[str, Any] = {"tokens": N_TOKENS, "context_size": CONTEXT, "corpus": "bundled", "models": {}}
    for name in args.models:
        loaded = load_model(name)
        mine = [(path, sae) for path, sae in zip(args.sae, saes, strict=True) if _model_of(sae) == name]
        hooks = sorted(
            {f"blocks.{layer}.hook_resid_post" for layer in LAYERS[name]}
            | {sae.cfg.hook_name for _, sae in mine},
            key=lambda hook: int(hook.split(".")[1]),
        )
        model_report: dict[str, Any] = {"layers": {}, "saes": {}}
        for add_bos in (True, False):
            rows = rows_by_position(loaded, hooks, add_bos)
            key = "bos" if add_bos else "no_bos"
            for hook, (rows_ND, first_N) in rows.items():
                model_report["layers"].setdefault(hook, {})[key] = norm_stats(rows_ND, first_N)
            for path, sae in mine:
                rows_ND, first_N = rows[sae.cfg.hook_name]
                model_report["saes"].setdefault(str(path), {"hook": sae.cfg.hook_name})[key] = sae_stats(
                    sae, rows_ND, first_N
                )
        report["models"][name] = model_report
        print(name, model_report)
    write_json_atomic(args.out, report)
    print(f"wrote {args.out}")


def _model_of(sae: Any) -> str:
    from pseval.models.names import same_model

    recorded = str((sae.cfg.metadata or {}).get("model_name") or sae.cfg.model_name or "")
    return next((name for name in LAYERS if same_model(recorded, name)), recorded)


if __name__ == "__main__":
    main()
