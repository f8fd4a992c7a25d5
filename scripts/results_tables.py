"""The markdown tables of docs/results.md, made from the committed summary CSVs (or a results folder).

python scripts/results_tables.py --check docs/results.md    # exit 1 if a generated table differs from the CSVs
python scripts/results_tables.py --write docs/results.md    # rewrite the generated tables in place
python scripts/results_tables.py runs/results-smollm2/results   # print the CPU tables from result files

Each generated table in docs/results.md sits between ``<!-- table:NAME -->`` and ``<!-- /table -->``; NAME is a
key of :data:`TABLES`. The document's text around the tables is written by hand and quotes these numbers.
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

Row = dict[str, Any]

RESULTS_DIR = Path(__file__).resolve().parents[1] / "docs" / "results"
CPU_SUMMARY = "summary.csv"
GPU_EXPANSION = {"1m": "summary_expansion_1m_gpu.csv", "3m": "summary_expansion_3m_gpu.csv"}
GPU_ACTIVATION = "summary_activation_3m_gpu.csv"
HOOK_ORDER = ("resid_post", "attn_out", "mlp_out")
ARCH_LABEL = {"standard": "ReLU", "topk": "TopK", "batchtopk": "BatchTopK", "jumprelu": "JumpReLU"}
ARCH_ORDER = ("topk", "batchtopk", "jumprelu", "standard")
BLOCK = re.compile(r"(<!-- table:([a-z0-9_]+) -->\n)(.*?)(\n?<!-- /table -->)", re.S)


def _typed(value: str) -> Any:
    if value == "":
        return None
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            continue
    return value


def read_summary(path: Path) -> list[Row]:
    """One typed row per SAE from a summary CSV written by ``pseval sweep``/``pseval report --format csv``."""
    with path.open(encoding="utf-8", newline="") as fh:
        return [{key: _typed(value) for key, value in row.items()} for row in csv.DictReader(fh)]


def ci(row: Row | None, metric: str) -> str:
    if row is None or row.get(metric) is None:
        return "–"
    value, low, high = row[metric], row.get(f"{metric}_low"), row.get(f"{metric}_high")
    if low is None or high is None:
        return f"{value:.3f}"
    return f"{value:.3f} [{low:.2f}, {high:.2f}]"


def num(value: Any, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _is_topk_x(row: Row, expansion: float) -> bool:
    return row["architecture"] == "topk" and row["expansion_ratio"] == expansion and row.get("k") == 32


def _setting(row: Row) -> str:
    """The training setting that names the SAE: ``k 32``, ``L1 20``, ``L0 0.5``."""
    tail = str(row["name"]).rsplit("-", 1)[-1]
    match = re.fullmatch(r"(k|l1|l0)_?([\d.]+)", tail)
    return f"{match.group(1).upper() if match.group(1) != 'k' else 'k'} {match.group(2)}" if match else tail


def layer_table(rows: list[Row]) -> str:
    """Specificity (with interval) and recall per layer × hook kind, TopK x8 k=32."""
    cells = {(r["layer"], r["hook_kind"]): r for r in rows if _is_topk_x(r, 8)}
    out = ["| layer | " + " | ".join(f"{k} specificity | {k} recall" for k in HOOK_ORDER) + " |"]
    out.append("|---|" + "---|---|" * len(HOOK_ORDER))
    for layer in sorted({layer for layer, _ in cells}):
        parts: list[str] = []
        for kind in HOOK_ORDER:
            r = cells.get((layer, kind))
            parts += [ci(r, "specificity"), num(r.get("recall"))] if r else ["–", "–"]
        out.append(f"| {layer} | " + " | ".join(parts) + " |")
    return "\n".join(out)


def expansion_table(rows: list[Row], layer: int = 15) -> str:
    out = [
        "| expansion | d_sae | specificity | recall | F1 | FVU | CE recovered | dead latents |",
        "|---|---|---|---|---|---|---|---|",
    ]
    chosen = [r for r in rows if r["layer"] == layer and r["hook_kind"] == "resid_post"]
    for r in sorted(chosen, key=lambda r: r["expansion_ratio"]):
        if r["architecture"] == "topk" and r.get("k") == 32:
            out.append(
                f"| {r['expansion_ratio']:g} | {r['d_sae']:,} | {ci(r, 'specificity')} | {ci(r, 'recall')} "
                f"| {num(r.get('f1'))} | {num(r.get('fvu'))} | {num(r.get('ce_loss_recovered'))} "
                f"| {num(r.get('dead_fraction'))} |"
            )
    return "\n".join(out)


def architecture_table(rows: list[Row], layer: int = 15) -> str:
    """Every architecture at ``layer``, x8, by hook and then by L0 (the MSE–L0 frontier's order)."""
    out = [
        "| hook | architecture | setting | L0 | FVU | CE recovered | specificity | recall | F1 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for hook in ("resid_post", "attn_out"):
        chosen = [
            r for r in rows if r["layer"] == layer and r["expansion_ratio"] == 8 and r["hook_kind"] == hook
        ]
        for r in sorted(chosen, key=lambda r: r.get("l0") or 0.0):
            out.append(
                f"| {hook} | {ARCH_LABEL[r['architecture']]} | {_setting(r)} | {num(r.get('l0'), 1)} "
                f"| {num(r.get('fvu'))} | {num(r.get('ce_loss_recovered'))} | {ci(r, 'specificity')} "
                f"| {ci(r, 'recall')} | {num(r.get('f1'))} |"
            )
    return "\n".join(out)


def gpu_expansion_table(cpu: list[Row], gpu_1m: list[Row], gpu_3m: list[Row], layer: int = 15) -> str:
    """Specificity at 131 k, 1 M and 3 M tokens per SAE, then the 3 M row in full."""

    def by_width(rows: list[Row]) -> dict[float, Row]:
        return {
            r["expansion_ratio"]: r
            for r in rows
            if r["layer"] == layer and r["hook_kind"] == "resid_post" and _is_topk_x(r, r["expansion_ratio"])
        }

    small, mid, full = by_width(cpu), by_width(gpu_1m), by_width(gpu_3m)
    out = [
        "| expansion | specificity, 131 k tokens | specificity, 1 M | specificity, 3 M | recall, 3 M | F1, 3 M "
        "| FVU, 3 M | CE recovered, 3 M | dead, 131 k → 3 M |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for width in sorted(full):
        big = full[width]
        out.append(
            f"| {width:g} | {ci(small.get(width), 'specificity')} | {ci(mid.get(width), 'specificity')} "
            f"| {ci(big, 'specificity')} | {ci(big, 'recall')} | {num(big.get('f1'))} | {num(big.get('fvu'))} "
            f"| {num(big.get('ce_loss_recovered'))} "
            f"| {num((small.get(width) or {}).get('dead_fraction'))} → {num(big.get('dead_fraction'))} |"
        )
    return "\n".join(out)


def gpu_activation_table(rows: list[Row]) -> str:
    out = [
        "| hook | architecture | L0 | FVU | CE recovered | specificity | recall | F1 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for hook in ("resid_post", "attn_out"):
        chosen = [r for r in rows if r["hook_kind"] == hook]
        for r in sorted(chosen, key=lambda r: ARCH_ORDER.index(r["architecture"])):
            out.append(
                f"| {hook} | {ARCH_LABEL[r['architecture']]} | {num(r.get('l0'), 1)} | {num(r.get('fvu'))} "
                f"| {num(r.get('ce_loss_recovered'))} | {ci(r, 'specificity')} | {ci(r, 'recall')} "
                f"| {num(r.get('f1'))} |"
            )
    return "\n".join(out)


BASELINE_HOOKS = (
    (0, "resid_post"),
    (6, "resid_post"),
    (15, "resid_post"),
    (15, "attn_out"),
    (15, "mlp_out"),
    (27, "resid_post"),
    (27, "attn_out"),
)


def baseline_table(rows: list[Row]) -> str:
    """The dense-cosine and random-SAE baselines of the TopK x8 rows at a few hooks."""
    cells = {(r["layer"], r["hook_kind"]): r for r in rows if _is_topk_x(r, 8)}
    out = [
        "| hook | dense specificity | dense recall | dense ROC-AUC | random-SAE specificity | random-SAE recall |",
        "|---|---|---|---|---|---|",
    ]
    for layer, kind in BASELINE_HOOKS:
        r = cells[(layer, kind)]
        out.append(
            f"| L{layer} {kind} | {num(r.get('dense_specificity'))} | {num(r.get('dense_recall'))} "
            f"| {num(r.get('dense_roc_auc'))} | {num(r.get('random_specificity'))} | {num(r.get('random_recall'))} |"
        )
    return "\n".join(out)


def youden_j(row: Row, prefix: str = "") -> float:
    """Youden's J = recall + specificity − 1 of a row (``prefix="random_"`` for its random-SAE control)."""
    return float(row[f"{prefix}recall"]) + float(row[f"{prefix}specificity"]) - 1.0


def control_table(rows: list[Row]) -> str:
    """Per layer × hook kind, TopK x8: Youden's J of the SAE beside its random-SAE control's, same pairs."""
    cells = {(r["layer"], r["hook_kind"]): r for r in rows if _is_topk_x(r, 8)}
    out = ["| layer | " + " | ".join(f"{k} J, SAE | {k} J, random SAE" for k in HOOK_ORDER) + " |"]
    out.append("|---|" + "---|---|" * len(HOOK_ORDER))
    for layer in sorted({layer for layer, _ in cells}):
        parts: list[str] = []
        for kind in HOOK_ORDER:
            r = cells.get((layer, kind))
            parts += [f"{youden_j(r):+.3f}", f"{youden_j(r, 'random_'):+.3f}"] if r else ["–", "–"]
        out.append(f"| {layer} | " + " | ".join(parts) + " |")
    return "\n".join(out)


def control_summary_table(rows: list[Row]) -> str:
    """How closely the trained SAEs' PS-Eval numbers follow the random SAE's across hooks (TopK x8)."""
    from scipy import stats

    chosen = [r for r in rows if _is_topk_x(r, 8)]
    spec, spec_random = [r["specificity"] for r in chosen], [r["random_specificity"] for r in chosen]
    j_diff = [youden_j(r) - youden_j(r, "random_") for r in chosen]
    acc_diff = [r["accuracy"] - r["random_accuracy"] for r in chosen]
    out = [
        "| hooks | specificity, SAE vs random: Pearson r | Spearman ρ | hooks where the SAE's specificity is higher "
        "| mean J, SAE − random | hooks where the SAE's J is higher | mean accuracy, SAE − random |",
        "|---|---|---|---|---|---|---|",
        f"| {len(chosen)} | {stats.pearsonr(spec, spec_random)[0]:.2f} | {stats.spearmanr(spec, spec_random)[0]:.2f} "
        f"| {sum(a > b for a, b in zip(spec, spec_random, strict=True))} | {sum(j_diff) / len(j_diff):+.3f} "
        f"| {sum(d > 0 for d in j_diff)} | {sum(acc_diff) / len(acc_diff):+.3f} |",
    ]
    return "\n".join(out)


def _cpu(folder: Path) -> list[Row]:
    return read_summary(folder / CPU_SUMMARY)


TABLES: dict[str, Callable[[Path], str]] = {
    "layers": lambda d: layer_table(_cpu(d)),
    "expansion": lambda d: expansion_table(_cpu(d)),
    "architectures": lambda d: architecture_table(_cpu(d)),
    "expansion_gpu": lambda d: gpu_expansion_table(
        _cpu(d), read_summary(d / GPU_EXPANSION["1m"]), read_summary(d / GPU_EXPANSION["3m"])
    ),
    "activation_gpu": lambda d: gpu_activation_table(read_summary(d / GPU_ACTIVATION)),
    "baselines": lambda d: baseline_table(_cpu(d)),
    "control_j": lambda d: control_table(_cpu(d)),
    "control_summary": lambda d: control_summary_table(_cpu(d)),
}
"""Each generated table of docs/results.md, made from the CSVs in a folder (docs/results)."""


def regenerate(document: str, results_dir: Path = RESULTS_DIR) -> tuple[str, list[str]]:
    """``document`` with every marked table made afresh, and the names of the tables that changed."""
    changed: list[str] = []

    def fill(match: re.Match[str]) -> str:
        name = match.group(2)
        if name not in TABLES:
            raise SystemExit(f"docs/results.md marks an unknown table {name!r}; known: {', '.join(TABLES)}")
        table = TABLES[name](results_dir)
        if table != match.group(3):
            changed.append(name)
        return match.group(1) + table + "\n<!-- /table -->"

    return BLOCK.sub(fill, document), changed


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("results", nargs="?", help="a results folder: print its CPU tables")
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--check", type=Path, metavar="DOC", help="exit 1 if a table of DOC differs from the CSVs"
    )
    group.add_argument("--write", type=Path, metavar="DOC", help="rewrite the tables of DOC from the CSVs")
    args = parser.parse_args()
    if args.check or args.write:
        doc: Path = args.check or args.write
        text, changed = regenerate(doc.read_text(encoding="utf-8"))
        if args.write:
            doc.write_text(text, encoding="utf-8")
        print(
            f"{len(changed)} table(s) {'rewritten' if args.write else 'differ'}: {', '.join(changed) or '-'}"
        )
        sys.exit(1 if changed and args.check else 0)
    if not args.results:
        parser.error("give a results folder, --check DOC or --write DOC")
    from pseval.report.load import load_results, summary_table

    rows = summary_table(load_results(args.results))
    for title, table in (
        ("Layers × hook kinds (TopK, x8, k=32)", layer_table(rows)),
        ("Expansion ratio (layer 15)", expansion_table(rows)),
        ("Architectures (layer 15, x8)", architecture_table(rows)),
    ):
        sys.stdout.write(f"## {title}\n\n{table}\n\n")


if __name__ == "__main__":
    main()
