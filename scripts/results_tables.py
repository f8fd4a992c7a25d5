"""Print the markdown tables of docs/results.md from a results folder (no model needed).

python scripts/results_tables.py runs/results-smollm2/results > /tmp/tables.md
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from typing import Any

from pseval.report.load import load_results, summary_table


def ci(row: dict[str, Any], metric: str) -> str:
    value, low, high = row.get(metric), row.get(f"{metric}_low"), row.get(f"{metric}_high")
    if value is None:
        return "–"
    if low is None or high is None:
        return f"{value:.3f}"
    return f"{value:.3f} [{low:.2f}, {high:.2f}]"


def num(value: Any, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def layer_table(rows: list[dict[str, Any]]) -> str:
    """Specificity (and recall) per layer × hook kind, TopK x8 k=32."""
    cells: dict[tuple[int, str], dict[str, Any]] = {}
    for r in rows:
        if r["architecture"] == "topk" and r["expansion_ratio"] == 8 and r.get("k") == 32:
            cells[(r["layer"], r["hook_kind"])] = r
    kinds = ["resid_post", "attn_out", "mlp_out"]
    layers = sorted({layer for layer, _ in cells})
    out = ["| layer | " + " | ".join(f"{k} specificity | {k} recall" for k in kinds) + " |"]
    out.append("|---|" + "---|---|" * len(kinds))
    for layer in layers:
        parts = []
        for kind in kinds:
            r = cells.get((layer, kind))
            parts += [ci(r, "specificity"), num(r.get("recall"))] if r else ["–", "–"]
        out.append(f"| {layer} | " + " | ".join(parts) + " |")
    return "\n".join(out)


def expansion_table(rows: list[dict[str, Any]], layer: int = 15) -> str:
    out = [
        "| hook | expansion | d_sae | specificity | recall | F1 | FVU | CE recovered | dead |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(rows, key=lambda r: (r["hook_kind"], r["expansion_ratio"])):
        if r["layer"] == layer and r["architecture"] == "topk" and r.get("k") == 32:
            out.append(
                f"| {r['hook_kind']} | {r['expansion_ratio']:g} | {r['d_sae']} | {ci(r, 'specificity')} | {ci(r, 'recall')} "
                f"| {num(r.get('f1'))} | {num(r.get('fvu'))} | {num(r.get('ce_loss_recovered'))} | {num(r.get('dead_fraction'))} |"
            )
    return "\n".join(out)


def architecture_table(rows: list[dict[str, Any]], layer: int = 15) -> str:
    out = [
        "| hook | architecture | setting | L0 | FVU | CE recovered | specificity | recall | F1 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    by_hook: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        if r["layer"] == layer and r["expansion_ratio"] == 8:
            by_hook[r["hook_kind"]].append(r)
    for hook, items in sorted(by_hook.items()):
        for r in sorted(items, key=lambda r: (r["architecture"], r.get("l0") or 0)):
            setting = r["name"].split(f"x{int(r['expansion_ratio'])}-")[-1] if "-" in r["name"] else ""
            out.append(
                f"| {hook} | {r['architecture']} | {setting} | {num(r.get('l0'), 1)} | {num(r.get('fvu'))} "
                f"| {num(r.get('ce_loss_recovered'))} | {ci(r, 'specificity')} | {ci(r, 'recall')} | {num(r.get('f1'))} |"
            )
    return "\n".join(out)


def baseline_table(rows: list[dict[str, Any]]) -> str:
    out = [
        "| hook | dense cosine specificity | dense recall | dense ROC-AUC | random-SAE specificity | random-SAE recall |",
        "|---|---|---|---|---|---|",
    ]
    seen = set()
    for r in sorted(rows, key=lambda r: (r["layer"], r["hook_kind"])):
        key = (r["layer"], r["hook_kind"])
        if key in seen or r["expansion_ratio"] != 8 or r["architecture"] != "topk":
            continue
        seen.add(key)
        out.append(
            f"| L{r['layer']} {r['hook_kind']} | {num(r.get('dense_specificity'))} | {num(r.get('dense_recall'))} "
            f"| {num(r.get('dense_roc_auc'))} | {num(r.get('random_specificity'))} | {num(r.get('random_recall'))} |"
        )
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results")
    parser.add_argument("--layer", type=int, default=15)
    args = parser.parse_args()
    rows = summary_table(load_results(args.results))
    sys.stdout.write("## Layers × hook kinds (TopK, x8, k=32)\n\n" + layer_table(rows) + "\n\n")
    sys.stdout.write(
        f"## Expansion ratio (layer {args.layer})\n\n" + expansion_table(rows, args.layer) + "\n\n"
    )
    sys.stdout.write(
        f"## Architectures (layer {args.layer}, x8)\n\n" + architecture_table(rows, args.layer) + "\n\n"
    )
    sys.stdout.write("## Baselines\n\n" + baseline_table(rows) + "\n")


if __name__ == "__main__":
    main()
