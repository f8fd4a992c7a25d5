"""What the hook-site check catches: layer-12 SmolLM2 SAEs measured at other layers and hooks, with and without BOS.

    python scripts/site_check_layers.py [--sae-dir ~/.cache/pseval/demo/saes] \
        [--out docs/results/site_check_layers.json]

For each SAE of ``--sae-dir`` (the layer-12 ``resid_post`` and ``attn_out`` SAEs ``pseval demo`` trains), this reads
2,048 held-out tokens of the bundled corpus at ``blocks.{6,9..15}.hook_resid_post`` and
``blocks.{6,11,12,13}.hook_attn_out``, with BOS and without, exactly as the check does before an eval
(``pseval.metrics.site``; context length and corpus from the SAE's config), and records FVU, L0, the input
norm's ratio to the trained-on norm and the verdict the check would give to an SAE read there by ``--hook``
(``pseval.evals.site_check.judge``). One forward pass per BOS policy serves every SAE and hook.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from pseval._io import write_json_atomic
from pseval.evals.site_check import (
    FVU_LIMIT,
    L0_FACTOR,
    NORM_FACTOR,
    judge,
    ratio_off,
    recorded_input_norm,
    recorded_stats,
)
from pseval.metrics.site import site_activations, site_reconstruction
from pseval.models.loading import load_model
from pseval.sae import load_sae

RESID_LAYERS = (6, 9, 10, 11, 12, 13, 14, 15)
ATTN_LAYERS = (6, 11, 12, 13)


def measure(sae: Any, rows_ND: Any, own: bool) -> dict[str, Any]:
    """One SAE at one site: the check's numbers and verdict (``own``: its recorded site and BOS policy)."""
    measured = site_reconstruction(sae, rows_ND)
    recorded_l0, _fvu, _where = recorded_stats(sae.cfg.metadata)
    l0_ratio = ratio_off(float(measured["l0"]), recorded_l0)
    norm_ratio = ratio_off(float(rows_ND.norm(dim=-1).median()), recorded_input_norm(sae.cfg))
    verdict, reason = judge(measured["fvu"], l0_ratio, norm_ratio, own_site=own)
    return {
        "fvu": round(float(measured["fvu"]), 4),
        "l0": round(float(measured["l0"]), 2),
        "recorded_l0": recorded_l0,
        "l0_ratio": None if l0_ratio is None else round(l0_ratio, 3),
        "input_norm_ratio": None if norm_ratio is None else round(norm_ratio, 3),
        "verdict": verdict,
        "reason": reason,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--sae-dir", type=Path, default=Path.home() / ".cache" / "pseval" / "demo" / "saes")
    parser.add_argument("--tokens", type=int, default=2048)
    parser.add_argument("--out", type=Path, default=Path("docs/results/site_check_layers.json"))
    args = parser.parse_args()
    folders = sorted(p for p in args.sae_dir.iterdir() if (p / "cfg.json").is_file())
    saes = {folder.name: load_sae(str(folder)) for folder in folders}
    contexts = {int(sae.cfg.metadata.get("context_size", 128)) for sae in saes.values()}
    if len(contexts) != 1:
        raise SystemExit(f"the SAEs record several context lengths {sorted(contexts)}: measure them apart")
    (context_size,) = contexts
    loaded = load_model(args.model)
    hooks = [f"blocks.{layer}.hook_resid_post" for layer in RESID_LAYERS]
    hooks += [f"blocks.{layer}.hook_attn_out" for layer in ATTN_LAYERS]
    rows: list[dict[str, Any]] = []
    for bos in (True, False):
        acts = site_activations(loaded, hooks, args.tokens, bos, context_size=context_size)
        for name, sae in saes.items():
            for hook in hooks:
                own = hook == sae.cfg.hook_name and bos
                rows.append(
                    {"sae": name, "trained_at": sae.cfg.hook_name, "read_at": hook, "prepend_bos": bos}
                    | measure(sae, acts[hook], own)
                )
    report = {
        "model": args.model,
        "tokens": args.tokens,
        "corpus": "bundled (held-out split)",
        "context_size": context_size,
        "limits": {"fvu": FVU_LIMIT, "l0_factor": L0_FACTOR, "norm_factor": NORM_FACTOR},
        "rows": rows,
    }
    write_json_atomic(args.out, report)
    print(f"wrote {args.out} ({len(rows)} rows)")


if __name__ == "__main__":
    main()
