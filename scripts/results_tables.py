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
GEMMA_SUMMARY = "summary_gemma3_270m.csv"
HOOK_ORDER = ("resid_post", "attn_out", "mlp_out")
ARCH_LABEL = {
    "standard": "ReLU",
    "topk": "TopK",
    "batchtopk": "BatchTopK",
    "jumprelu": "JumpReLU",
    "matryoshka_batchtopk": "Matryoshka BatchTopK",
}
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


def gemma_table(rows: list[Row]) -> str:
    """Every SAE of the single-seed Gemma-3-270m sweep: PS-Eval with intervals and the standard metrics."""
    head = "| SAE | hook | arch | width | specificity | recall | accuracy | F1 | no-active | FVU | L0 | CE rec. |"
    out = [head, "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: (r["layer"], r["hook_kind"])):
        cells = [f"`{r['name']}`", f"`{r['hook']}`", r["architecture"], str(r["d_sae"])]
        cells += [ci(r, "specificity"), ci(r, "recall"), ci(r, "accuracy"), num(r["f1"])]
        cells += [str(r["n_pairs_no_active"]), num(r["fvu"]), f"{r['l0']:.1f}", num(r["ce_loss_recovered"])]
        out.append("| " + " | ".join(cells) + " |")
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


# --------------------------------------------------------------------------------------------------
# Re-judged against the controls, three seeds (artifacts made by scripts/rejudge_tables.py)

REJUDGE_PER_SAE = "rejudge_activation_tiny_3seeds.csv"
REJUDGE_BY_CONFIG = "rejudge_by_config.csv"
REJUDGE_RELIABILITY = "rejudge_reliability.json"
REJUDGE_ARCH_ORDER = ("standard", "topk", "batchtopk", "matryoshka_batchtopk", "jumprelu")


def signed(row: Row | None, metric: str) -> str:
    """A signed difference with its interval: ``+0.012 [-0.03, +0.05]``."""
    if row is None or row.get(metric) is None:
        return "–"
    value, low, high = row[metric], row.get(f"{metric}_low"), row.get(f"{metric}_high")
    if low is None or high is None:
        return f"{value:+.3f}"
    return f"{value:+.3f} [{low:+.2f}, {high:+.2f}]"


def p_value(value: Any) -> str:
    if value is None:
        return "–"
    return f"{value:.2g}" if value >= 0.001 else f"{value:.0e}"


def mean_sd(row: Row, metric: str, signed_mean: bool = False, digits: int = 3) -> str:
    mean, sd = row.get(f"{metric}_mean"), row.get(f"{metric}_sd")
    if mean is None:
        return "–"
    text = f"{mean:+.{digits}f}" if signed_mean else f"{mean:.{digits}f}"
    return text if sd is None else f"{text} ± {sd:.{digits}f}"


def _rejudge_sorted(rows: list[Row]) -> list[Row]:
    return sorted(
        rows,
        key=lambda r: (
            HOOK_ORDER.index(r["hook_kind"]),
            REJUDGE_ARCH_ORDER.index(r["architecture"]),
            r.get("seed") or 0,
        ),
    )


def rejudge_wic_table(rows: list[Row]) -> str:
    """Per SAE: PS-Eval's Youden's J beside its centred random control's, and the paired tests."""
    out = [
        "| hook | architecture | seed | L0 | FVU | J, SAE | J, random SAE | J, SAE − random | p, J (Holm) "
        "| accuracy, SAE − random | p, McNemar (Holm) | beats random |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in _rejudge_sorted(rows):
        beats = ", ".join(
            label for key, label in (("beats_random_on_j", "J"), ("beats_random_on_accuracy", "accuracy"))
            if str(r.get(key)) == "True"
        ) or "no"  # fmt: skip
        out.append(
            f"| {r['hook_kind']} | {ARCH_LABEL[r['architecture']]} | {r['seed']} | {num(r.get('l0'), 1)} "
            f"| {num(r.get('fvu'))} | {signed(r, 'youden_j')} | {signed(r, 'random_youden_j')} "
            f"| {signed(r, 'vs_random_j_difference')} | {p_value(r.get('vs_random_j_p_holm'))} "
            f"| {r['vs_random_accuracy_difference']:+.3f} | {p_value(r.get('vs_random_mcnemar_p_holm'))} | {beats} |"
        )
    return "\n".join(out)


def rejudge_senses_table(rows: list[Row]) -> str:
    """Per SAE: within-lemma sense retrieval (macro anchor AUROC) of the SAE, its random control and the centred
    dense activation, and the paired differences."""
    out = [
        "| hook | architecture | seed | AUROC, SAE | AUROC, random SAE | AUROC, dense (centred) | SAE − random "
        "| SAE − dense | 1-NN, SAE | 1-NN, SAE − random | 1-NN, SAE − dense |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in _rejudge_sorted(rows):
        out.append(
            f"| {r['hook_kind']} | {ARCH_LABEL[r['architecture']]} | {r['seed']} | {ci(r, 'sense_sae_auroc')} "
            f"| {num(r.get('sense_random_auroc'))} | {num(r.get('sense_dense_auroc'))} "
            f"| {signed(r, 'sense_sae_minus_random_auroc')} | {signed(r, 'sense_sae_minus_dense_auroc')} "
            f"| {num(r.get('sense_sae_nn'))} | {signed(r, 'sense_sae_minus_random_nn')} "
            f"| {signed(r, 'sense_sae_minus_dense_nn')} |"
        )
    return "\n".join(out)


def rejudge_config_table(rows: list[Row]) -> str:
    """Per hook kind × architecture: mean ± SD over the three training seeds."""
    out = [
        "| hook | architecture | L0 | FVU | J, SAE | J, random SAE | J, SAE − random | above / below random, J "
        "| sense AUROC, SAE | sense AUROC, random SAE | sense AUROC, SAE − random | above / below random, AUROC |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    chosen = [r for r in rows if r["architecture"] != "all"]
    for r in _rejudge_sorted(chosen):
        out.append(
            f"| {r['hook_kind']} | {ARCH_LABEL[r['architecture']]} | {mean_sd(r, 'l0', digits=1)} | {mean_sd(r, 'fvu')} "
            f"| {mean_sd(r, 'youden_j', True)} | {mean_sd(r, 'random_youden_j', True)} "
            f"| {mean_sd(r, 'vs_random_j_difference', True)} "
            f"| {r['n_beats_random_on_j']} / {r['n_below_random_on_j']} of {r['n_saes']} "
            f"| {mean_sd(r, 'sense_sae_auroc')} | {mean_sd(r, 'sense_random_auroc')} "
            f"| {mean_sd(r, 'sense_sae_minus_random_auroc', True)} "
            f"| {r['n_sense_auroc_above_random']} / {r['n_sense_auroc_below_random']} of {r['n_saes']} |"
        )
    return "\n".join(out)


def rejudge_hook_table(rows: list[Row], contrasts: list[Row]) -> str:
    """Per hook kind: every SAE there (mean), their random controls (mean) and the dense activation; then the
    attention-minus-residual differences with paired intervals."""
    cells = {(c["dataset"], c["metric"], c["representation"]): c for c in contrasts}
    by_hook = {r["hook_kind"]: r for r in rows if r["architecture"] == "all"}
    out = [
        "| quantity | representation | resid_post | attn_out | attn_out − resid_post |",
        "|---|---|---|---|---|",
    ]
    for dataset, metric, label in (
        ("wic", "youden_j", "WiC Youden's J"),
        ("wordnet-senses", "auroc", "sense AUROC"),
        ("wordnet-senses", "nn_accuracy", "sense 1-NN accuracy"),
    ):
        for rep, rep_label in (("sae", "SAEs (mean of 15)"), ("random_sae", "random SAEs (mean of 15)"),
                               ("dense", "dense activation")):  # fmt: skip
            c = cells.get((dataset, metric, rep))
            if c is None:
                continue
            diff = signed(
                {
                    "d": c["attn_minus_resid"],
                    "d_low": c["attn_minus_resid_low"],
                    "d_high": c["attn_minus_resid_high"],
                },
                "d",
            )
            sign = "+" if metric == "youden_j" else ""
            out.append(
                f"| {label} | {rep_label} | {c['resid_post']:{sign}.3f} | {c['attn_out']:{sign}.3f} | {diff} |"
            )
    for hook in ("resid_post", "attn_out"):
        r = by_hook.get(hook)
        if r is not None:
            out.append(
                f"| SAEs beating their random control | {hook} | J: {r['n_beats_random_on_j']} of {r['n_saes']} "
                f"(significantly below it: {r['n_below_random_on_j']}) "
                f"| sense AUROC: {r['n_sense_auroc_above_random']} of {r['n_saes']} "
                f"| below the centred dense AUROC: {r['n_sense_auroc_below_dense']} of {r['n_saes']} |"
            )
    return "\n".join(out)


REJUDGE_RELIABILITY_ROWS = (
    ("wic", "specificity", "WiC specificity"),
    ("wic", "recall", "WiC recall"),
    ("wic", "accuracy", "WiC accuracy"),
    ("wic", "youden_j", "WiC Youden's J"),
    ("extra", "random_youden_j", "WiC J of the random control"),
    ("extra", "vs_random_j_difference", "WiC J, SAE − random"),
    ("extra", "sense_sae_auroc", "sense AUROC"),
    ("extra", "sense_sae_minus_random_auroc", "sense AUROC, SAE − random"),
    ("extra", "sense_sae_minus_dense_auroc", "sense AUROC, SAE − dense"),
    ("extra", "sense_sae_nn", "sense 1-NN accuracy"),
    ("extra", "fvu", "FVU"),
    ("extra", "l0", "L0"),
)


def rejudge_reliability_table(payload: dict[str, Any]) -> str:
    """Reseed SD, MDD (one seed each, and means of 3 seeds) and order agreement per metric."""
    wic = {row["metric"]: row for row in payload["wic"]["metrics"]}
    extra = payload["per_sae_numbers"]["metrics"]
    out = [
        "| metric | reseed SD | MDD, one seed each | MDD, means of 3 seeds | order holds across seeds |",
        "|---|---|---|---|---|",
    ]
    for source, metric, label in REJUDGE_RELIABILITY_ROWS:
        row = (wic if source == "wic" else extra).get(metric)
        if row is None:
            continue
        share = row.get("order_holds")
        out.append(
            f"| {label} | {num(row.get('reseed_sd'))} | {num(row.get('mdd'))} | {num(row.get('mdd_seed_means'))} "
            f"| {'–' if share is None else f'{100 * share:.0f} %'} |"
        )
    return "\n".join(out)


METRIC_LABEL = {
    "fvu": "FVU",
    "l0": "L0",
    "youden_j": "WiC J",
    "vs_random_j_difference": "WiC J, SAE − random",
    "sense_sae_auroc": "sense AUROC",
    "sense_sae_minus_random_auroc": "sense AUROC, SAE − random",
}


def rejudge_architecture_table(payload: dict[str, Any]) -> str:
    """Per hook and metric: the architectures' seed means in order, and which differences exceed the MDD."""
    out = [
        "| hook | metric | architectures, highest first (seed means) | range | MDD, means of 3 seeds "
        "| pairs beyond the MDD |",
        "|---|---|---|---|---|---|",
    ]
    for c in payload["architecture_contrasts"]:
        digits = 1 if c["metric"] == "l0" else 3
        order = ", ".join(f"{ARCH_LABEL[a]} {c['seed_means'][a]:.{digits}f}" for a in c["order"])
        beyond = "; ".join(
            " > ".join(ARCH_LABEL[x] for x in pair.split(" > ")) for pair in c["pairs_beyond_mdd"]
        )
        out.append(
            f"| {c['hook_kind']} | {METRIC_LABEL[c['metric']]} | {order} | {num(c['range'], digits)} "
            f"| {num(c['mdd_seed_means'], digits)} | {len(c['pairs_beyond_mdd'])} of {c['n_architecture_pairs']}"
            f"{': ' + beyond if beyond else ''} |"
        )
    return "\n".join(out)


def _rejudge_json(folder: Path) -> dict[str, Any]:
    import json

    return json.loads((folder / REJUDGE_RELIABILITY).read_text(encoding="utf-8"))


def _cpu(folder: Path) -> list[Row]:
    return read_summary(folder / CPU_SUMMARY)


def _script_module(name: str) -> Any:
    """The module of ``scripts/NAME.py`` (scripts are not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f"{name}.py"))
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _layer_tables() -> dict[str, Callable[[Path], str]]:
    """The tables of "Layers and hook kinds, re-judged", made by scripts/rejudge_layers_tables.py."""
    return dict(_script_module("rejudge_layers_tables").TABLES)


def _wordform_tables() -> dict[str, Callable[[Path], str]]:
    """The word form x meaning (2 x 2) tables of "Beyond the paper", made by scripts/beyond_paper_tables.py."""
    return dict(_script_module("beyond_paper_tables").DOC_TABLES)


TABLES: dict[str, Callable[[Path], str]] = {
    "layers": lambda d: layer_table(_cpu(d)),
    "expansion": lambda d: expansion_table(_cpu(d)),
    "architectures": lambda d: architecture_table(_cpu(d)),
    "expansion_gpu": lambda d: gpu_expansion_table(
        _cpu(d), read_summary(d / GPU_EXPANSION["1m"]), read_summary(d / GPU_EXPANSION["3m"])
    ),
    "activation_gpu": lambda d: gpu_activation_table(read_summary(d / GPU_ACTIVATION)),
    "gemma3_270m": lambda d: gemma_table(read_summary(d / GEMMA_SUMMARY)),
    "baselines": lambda d: baseline_table(_cpu(d)),
    "control_j": lambda d: control_table(_cpu(d)),
    "control_summary": lambda d: control_summary_table(_cpu(d)),
    "rejudge_configs": lambda d: rejudge_config_table(read_summary(d / REJUDGE_BY_CONFIG)),
    "rejudge_architectures": lambda d: rejudge_architecture_table(_rejudge_json(d)),
    "rejudge_hooks": lambda d: rejudge_hook_table(
        read_summary(d / REJUDGE_BY_CONFIG), _rejudge_json(d)["hook_contrasts"]["rows"]
    ),
    "rejudge_reliability": lambda d: rejudge_reliability_table(_rejudge_json(d)),
    "rejudge_wic": lambda d: rejudge_wic_table(read_summary(d / REJUDGE_PER_SAE)),
    "rejudge_senses": lambda d: rejudge_senses_table(read_summary(d / REJUDGE_PER_SAE)),
    **_layer_tables(),
    **_wordform_tables(),
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
