"""Tables of the "Beyond the paper" sections of docs/results.md, read from the result files alone.

    python scripts/beyond_paper_tables.py --smollm2 runs/beyond-paper-smollm2 \
        --gemma runs/beyond-paper-gemma3-270m --csv docs/results/beyond_paper_summary.csv \
        --wordform-csv docs/results/wordform_2x2.csv

Prints markdown: the WiC table of the SAEs beside their trained controls, the random SAE and the dense
vectors; exact McNemar tests between the SAEs (``pseval compare``); the word form x meaning cells and
effects (``--dataset wordnet-2x2``) of every representation, with the effects also as ROC-AUCs and log odds
ratios, and each SAE's effects minus its random control's on the same pairs; paired bootstrap intervals of
the difference of the word and meaning effects between two SAEs on the same pairs; and the multi-token
results with the recovered pairs apart from the single-token ones. ``--csv`` writes every number in long
format, the 2 x 2 ones to ``--wordform-csv`` when it is given; ``--only-wordform`` reads the 2 x 2 results
alone (``RUN/wordform``), without the WiC, controls and multi-token runs.

Intervals: the SAEs' WiC intervals and the 2 x 2 cell/effect intervals are the 95 % bootstrap intervals
stored in the result files, the 2 x 2 ROC-AUCs' DeLong and the log odds ratios' Woolf intervals too. The
controls' WiC intervals are 95 % Wilson score intervals of the proportion (the result files store the
controls' rates on the same pairs, not bootstrap intervals). Differences between two SAEs, or between an SAE
and its random control, on the 2 x 2 pairs use a paired percentile bootstrap (2,000 resamples, pairs
resampled within each cell, seed 0).

:data:`DOC_TABLES` makes the 2 x 2 tables of docs/results.md from the committed ``docs/results/wordform_2x2.csv``
(``scripts/results_tables.py --write docs/results.md`` fills them in).
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from pseval.data.datasets import dataset_sha256, wordnet_2x2_pairs_path
from pseval.evals.compare import compare_results
from pseval.evals.results_store import DATASET_HASH_KEY, with_dataset_hash

CELL_ORDER = (
    "same_word_same_sense",
    "same_word_different_sense",
    "different_word_same_sense",
    "different_word_different_sense",
    "synonym_substitution",
)
CELL_LABELS = {
    "same_word_same_sense": "same word, same sense",
    "same_word_different_sense": "same word, different sense",
    "different_word_same_sense": "different word, same sense",
    "different_word_different_sense": "different word, different sense",
    "synonym_substitution": "synonym substitution",
}
EFFECTS = ("word_effect", "meaning_effect", "word_effect_different_sense", "meaning_effect_different_word",
           "word_effect_substitution")  # fmt: skip
MEASURES = ("share_same_top_latent", "topk_overlap", "code_cosine")
EFFECT_CELLS: dict[str, tuple[str | None, str]] = {
    "word_effect": ("same_word_same_sense", "different_word_same_sense"),
    "meaning_effect": ("same_word_same_sense", "same_word_different_sense"),
    "word_effect_different_sense": ("same_word_different_sense", "different_word_different_sense"),
    "meaning_effect_different_word": ("different_word_same_sense", "different_word_different_sense"),
    "word_effect_substitution": (None, "synonym_substitution"),
}
ARCH_LABELS = {
    "standard": "ReLU",
    "topk": "TopK",
    "batchtopk": "BatchTopK",
    "matryoshka_batchtopk": "Matryoshka BatchTopK",
}
CONTROL_LABELS = {
    "baseline_frozen_decoder": "frozen random decoder",
    "baseline_frozen_encoder": "frozen random encoder",
}

ROWS: list[dict[str, Any]] = []


def record(section: str, model: str, representation: str, metric: str, value: Any, low: Any = None,
           high: Any = None, n: Any = None, note: str = "") -> None:  # fmt: skip
    ROWS.append(
        {
            "section": section,
            "model": model,
            "representation": representation,
            "metric": metric,
            "value": value,
            "low": low,
            "high": high,
            "n": n,
            "note": note,
        }
    )


def fmt(x: Any, digits: int = 3) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def ci(x: Any, low: Any, high: Any, signed: bool = False) -> str:
    if x is None:
        return "–"
    if signed:
        return f"{x:+.3f} [{low:+.2f}, {high:+.2f}]"
    return f"{x:.3f} [{low:.2f}, {high:.2f}]"


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def results_in(folder: Path) -> dict[str, tuple[Path, dict[str, Any]]]:
    files = sorted((folder / "ps_eval").glob("*_eval_results.json"))
    if not files:
        sys.exit(f"no result files in {folder / 'ps_eval'}")
    return {load(f)["sae_name"]: (f, load(f)) for f in files}


def wordform_of(result: dict[str, Any]) -> dict[str, Any]:
    """The nested wordform category: in eval_result_unstructured, or in the metrics of older files."""
    nested = (result.get("eval_result_unstructured") or {}).get("wordform")
    return nested if nested is not None else result["eval_result_metrics"]["wordform"]


def arch_of(result: dict[str, Any]) -> str:
    meta = result["sae_cfg_dict"].get("metadata", {})
    arch = meta.get("training_architecture") or result["sae_cfg_dict"]["architecture"]
    return ARCH_LABELS.get(arch, arch)


def wilson(successes: int, n: int) -> tuple[float, float]:
    interval = stats.binomtest(successes, n).proportion_ci(confidence_level=0.95, method="wilson")
    return float(interval.low), float(interval.high)


# --------------------------------------------------------------------------------------------------
# WiC: SAEs beside their controls


def wic_table(model: str, folder: Path, controls_folder: Path | None = None) -> None:
    """One row per SAE (``folder``), its trained controls (from ``controls_folder``, an ``--controls`` run)."""
    results = results_in(folder)
    controls = (
        results_in(controls_folder) if controls_folder and (controls_folder / "ps_eval").is_dir() else {}
    )
    print(f"\n### WiC test, {model}: SAEs, trained controls and baselines\n")
    print("| representation | L0 | FVU | CE recovered | specificity | recall | accuracy | F1 |")
    print("|---|---|---|---|---|---|---|---|")
    for name, (_, r) in results.items():
        m = r["eval_result_metrics"]
        ps, c, std = m["ps_eval"], m["ps_eval_ci"], m.get("standard", {})
        label = f"{arch_of(r)} (`{name}`)"
        cells = [ci(ps[k], c[f"{k}_low"], c[f"{k}_high"]) for k in ("specificity", "recall", "accuracy")]
        print(
            f"| {label} | {fmt(std.get('l0'), 1)} | {fmt(std.get('fvu'))} | {fmt(std.get('ce_loss_recovered'))} | "
            f"{' | '.join(cells)} | {fmt(ps['f1'])} |"
        )
        for k in ("specificity", "recall", "accuracy", "f1"):
            record("wic", model, name, k, ps[k], c.get(f"{k}_low"), c.get(f"{k}_high"), ps["n_pairs"])
        for k in ("l0", "fvu", "explained_variance", "ce_loss_recovered", "dead_fraction"):
            record("wic", model, name, f"standard_{k}", std.get(k), n=std.get("n_tokens"))
        n0, n1 = ps["n_different_meaning"], ps["n_same_meaning"]
        with_controls = controls[name][1]["eval_result_metrics"] if name in controls else m
        for category, what in CONTROL_LABELS.items():
            ctl = with_controls.get(category)
            if not ctl:
                continue
            spec_lo, spec_hi = wilson(round(ctl["specificity"] * n0), n0)
            rec_lo, rec_hi = wilson(round(ctl["recall"] * n1), n1)
            acc_lo, acc_hi = wilson(round(ctl["accuracy"] * (n0 + n1)), n0 + n1)
            print(
                f"| {arch_of(r)}, {what} | {fmt(ctl.get('mean_l0_on_prompts'), 1)}* | – | – | "
                f"{ci(ctl['specificity'], spec_lo, spec_hi)} | {ci(ctl['recall'], rec_lo, rec_hi)} | "
                f"{ci(ctl['accuracy'], acc_lo, acc_hi)} | {fmt(ctl['f1'])} |"
            )
            rep = f"{name} {category}"
            record(
                "wic", model, rep, "specificity", ctl["specificity"], spec_lo, spec_hi, n0, "Wilson interval"
            )
            record("wic", model, rep, "recall", ctl["recall"], rec_lo, rec_hi, n1, "Wilson interval")
            record("wic", model, rep, "accuracy", ctl["accuracy"], acc_lo, acc_hi, n0 + n1, "Wilson interval")
            record("wic", model, rep, "mean_l0_on_prompts", ctl.get("mean_l0_on_prompts"))
    first = next(iter(results.values()))[1]["eval_result_metrics"]
    for category, what in (("baseline_random_sae", "random SAE (untrained, same width)"),
                           ("baseline_dense", "dense activations (cosine, dev threshold)")):  # fmt: skip
        b = first.get(category)
        if not b:
            continue
        ps = first["ps_eval"]
        n0, n1 = ps["n_different_meaning"], ps["n_same_meaning"]
        spec_lo, spec_hi = wilson(round(b["specificity"] * n0), n0)
        rec_lo, rec_hi = wilson(round(b["recall"] * n1), n1)
        acc_lo, acc_hi = wilson(round(b["accuracy"] * (n0 + n1)), n0 + n1)
        print(
            f"| {what} | – | – | – | {ci(b['specificity'], spec_lo, spec_hi)} | {ci(b['recall'], rec_lo, rec_hi)} | "
            f"{ci(b['accuracy'], acc_lo, acc_hi)} | {fmt(b['f1'])} |"
        )
        record(
            "wic", model, category, "specificity", b["specificity"], spec_lo, spec_hi, n0, "Wilson interval"
        )
        record("wic", model, category, "recall", b["recall"], rec_lo, rec_hi, n1, "Wilson interval")
    print(
        "\n\\* mean L0 of the control on the evaluation prompts (it has the SAE's k). Controls, random SAE and "
        "dense rows: 95 % Wilson intervals."
    )


def mcnemar_table(model: str, folder: Path, title: str) -> None:
    results = results_in(folder)
    names = list(results)
    print(f"\n### Paired tests ({title}, {model}): exact McNemar on the shared pairs\n")
    print("| A | B | class | pairs | A | B | only A right | only B right | p |")
    print("|---|---|---|---|---|---|---|---|---|")
    for a, b in itertools.combinations(names, 2):
        out = compare_results(results[a][0], results[b][0])
        for row in out["by_class"]:
            print(
                f"| {arch_of(results[a][1])} | {arch_of(results[b][1])} | {row['metric']} | {row['n_pairs']} | "
                f"{fmt(row['value_a'])} | {fmt(row['value_b'])} | {row['a_only_correct']} | "
                f"{row['b_only_correct']} | {row['p_value']:.3g} |"
            )
            record(f"mcnemar_{title}", model, f"{a} vs {b}", row["metric"], row["difference"],
                   n=row["n_pairs"], note=f"p={row['p_value']:.4g}; value_a={row['value_a']:.4f}; "
                   f"value_b={row['value_b']:.4f}; difference is B - A")  # fmt: skip


# --------------------------------------------------------------------------------------------------
# Word form x meaning


MEASURE_LABELS = {
    "share_same_top_latent": "share with the same top latent",
    "topk_overlap": "top-16 overlap",
    "code_cosine": "code cosine",
}
TWO_CELL_EFFECTS = tuple(e for e in EFFECTS if EFFECT_CELLS[e][0] is not None)


def wordform_representations(folder: Path) -> list[tuple[str, str, dict[str, Any]]]:
    """(CSV name, label, scores) of every SAE, each SAE's own random control and each hook's dense vectors.

    Each SAE has its own random control: the control's input is centred like the SAE's (its ``b_dec``), so
    the controls of SAEs at one hook differ.
    """
    results = results_in(folder)
    reps: list[tuple[str, str, dict[str, Any]]] = []
    dense: dict[str, dict[str, Any]] = {}
    for name, (_, r) in results.items():
        check_scored_on_shipped_2x2(name, r)
        w = wordform_of(r)
        reps.append((name, f"{arch_of(r)} `{name}`", w["sae"]))
        if w.get("random_sae"):
            reps.append((f"{name} random_sae", f"random control of `{name}`", w["random_sae"]))
        if w.get("dense"):
            dense.setdefault(r["hook_name"], w["dense"])
    reps += [(f"dense {hook}", f"dense `{hook}`", scores) for hook, scores in dense.items()]
    return reps


def wordform_tables(model: str, folder: Path) -> None:
    """Cells, effects and base-rate-free separations of every representation, printed and recorded."""
    reps = wordform_representations(folder)
    sae_scores = next(scores for _, _, scores in reps)
    n_of = {c: sae_scores["cells"][c]["n_pairs"] for c in CELL_ORDER}
    counts = ", ".join(f"{CELL_LABELS[c]} {n_of[c]}" for c in CELL_ORDER)
    record("wordform_dataset", model, "wordnet-2x2", "sha256", None, n=sum(n_of.values()),
           note=dataset_sha256("wordnet-2x2"))  # fmt: skip
    for measure in MEASURES:
        print(f"\n### Word form x meaning, {model}: {measure} per cell (pairs per cell: {counts})\n")
        print("| representation | " + " | ".join(CELL_LABELS[c] for c in CELL_ORDER) + " |")
        print("|---|" + "---|" * len(CELL_ORDER))
        for rep, label, scores in reps:
            if scores["cells"][CELL_ORDER[0]].get(measure) is None:
                continue
            cells = []
            for c in CELL_ORDER:
                row = scores["cells"][c]
                cells.append(ci(row[measure], row[f"{measure}_low"], row[f"{measure}_high"]))
                record(f"wordform_cell_{measure}", model, rep, c, row[measure], row[f"{measure}_low"],
                       row[f"{measure}_high"], row["n_pairs"])  # fmt: skip
            print(f"| {label} | " + " | ".join(cells) + " |")
        print(f"\n### Word form x meaning, {model}: effects on {measure}\n")
        print("| representation | word effect | meaning effect | word effect (different sense) | "
              "meaning effect (different word) | 1 − synonym substitution |")  # fmt: skip
        print("|---|---|---|---|---|---|")
        for rep, label, scores in reps:
            if scores["effects"]["word_effect"].get(measure) is None:
                continue
            cells = []
            for e in EFFECTS:
                row = scores["effects"][e]
                cells.append(ci(row[measure], row[f"{measure}_low"], row[f"{measure}_high"], signed=True))
                record(f"wordform_effect_{measure}", model, rep, e, row[measure], row[f"{measure}_low"],
                       row[f"{measure}_high"])  # fmt: skip
            print(f"| {label} | " + " | ".join(cells) + " |")
    print(f"\n### Word form x meaning, {model}: the effects as ROC-AUC (per measure) and log odds ratio\n")
    print("| representation | effect | " + " | ".join(f"AUC, {MEASURE_LABELS[m]}" for m in MEASURES)
          + " | log odds ratio, same top latent |")  # fmt: skip
    print("|---|---|" + "---|" * (len(MEASURES) + 1))
    for rep, label, scores in reps:
        separation = scores.get("separation") or {}
        for e in TWO_CELL_EFFECTS:
            row = separation.get(e)
            if row is None:
                continue
            n, note = row["n_higher"] + row["n_lower"], f"{row['n_higher']} vs {row['n_lower']} pairs"
            cells = []
            for m in MEASURES:
                est = row["auc"].get(m)
                if est is None:
                    cells.append("–")
                    continue
                cells.append(ci(est["value"], est["low"], est["high"]))
                record(f"wordform_auc_{m}", model, rep, e, est["value"], est["low"], est["high"], n,
                       "DeLong interval; " + note)  # fmt: skip
            odds = row.get("log_odds_ratio_same_top_latent")
            if odds is None:
                cells.append("–")
            else:
                cells.append(ci(odds["value"], odds["low"], odds["high"], signed=True))
                record("wordform_log_odds_ratio_same_top_latent", model, rep, e, odds["value"], odds["low"],
                       odds["high"], n, "Woolf interval, 0.5 added to each count; " + note)  # fmt: skip
            print(f"| {label} | {e} | " + " | ".join(cells) + " |")


def _haldane_log_odds(same_higher: np.ndarray, same_lower: np.ndarray) -> np.ndarray:
    """Log odds ratio of "same top latent" (0/1 per pair) between two cells, 0.5 added to each count.

    The arrays hold pairs along the last axis; leading axes (bootstrap resamples) are kept.
    """
    a, c = same_higher.sum(axis=-1) + 0.5, same_lower.sum(axis=-1) + 0.5
    b, d = same_higher.shape[-1] - a + 1.0, same_lower.shape[-1] - c + 1.0
    return np.log(a * d / (b * c))


def wordform_versus_random(model: str, folder: Path, n_resamples: int = 2000) -> None:
    """Each SAE's effects minus its random control's, on the same pairs (paired bootstrap, seed 0).

    Per effect, on the share with the same top latent and on the log odds ratio of that share: the pairs of each
    cell are resampled (the same draw for the SAE and its control, which score the same pairs), and the 95 %
    interval is the percentile interval of the difference.
    """
    results = results_in(folder)
    cell_of = _cells_of_pairs()
    print(f"\n### Word form x meaning, {model}: each SAE's effects minus its random control's (same pairs)\n")
    print("| SAE | effect | on the share with the same top latent | on the log odds ratio |")
    print("|---|---|---|---|")
    for name, (_, r) in results.items():
        check_scored_on_shipped_2x2(name, r)
        control = {
            d["id"]: d for d in (r.get("eval_result_unstructured") or {}).get("random_sae_details", [])
        }
        if not control:
            continue
        own = {d["id"]: d for d in r["eval_result_details"]}
        rng = np.random.default_rng(0)
        per_cell: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        for c in CELL_ORDER:
            ids = [i for i in own if cell_of.get(i) == c]
            sae = np.array([own[i]["predicted_same"] for i in ids], dtype=float)
            rnd = np.array([control[i]["predicted_same"] for i in ids], dtype=float)
            idx = rng.integers(0, len(ids), size=(n_resamples, len(ids)))
            per_cell[c] = (sae, rnd, idx)
        for e in TWO_CELL_EFFECTS:
            hi, lo = EFFECT_CELLS[e]
            assert hi is not None
            (s_hi, r_hi, i_hi), (s_lo, r_lo, i_lo) = per_cell[hi], per_cell[lo]
            share = (s_hi.mean() - s_lo.mean()) - (r_hi.mean() - r_lo.mean())
            share_boot = (s_hi[i_hi].mean(1) - s_lo[i_lo].mean(1)) - (r_hi[i_hi].mean(1) - r_lo[i_lo].mean(1))
            odds = float(_haldane_log_odds(s_hi, s_lo) - _haldane_log_odds(r_hi, r_lo))
            odds_boot = _haldane_log_odds(s_hi[i_hi], s_lo[i_lo]) - _haldane_log_odds(r_hi[i_hi], r_lo[i_lo])
            cells = []
            for metric, point, boot in (("share_same_top_latent", share, share_boot),
                                        ("log_odds_ratio_same_top_latent", odds, odds_boot)):  # fmt: skip
                low, high = np.quantile(boot, [0.025, 0.975])
                cells.append(ci(point, low, high, signed=True))
                record("wordform_vs_random", model, name, f"{e} {metric}", point, low, high,
                       len(s_hi) + len(s_lo), "SAE minus its random control, paired bootstrap")  # fmt: skip
            print(f"| {arch_of(r)} `{name}` | {e} | " + " | ".join(cells) + " |")


def check_scored_on_shipped_2x2(name: str, result: dict[str, Any]) -> None:
    """Exit when ``result`` was scored on another ``wordnet-2x2`` file: its pair ids would name other pairs."""
    identity = with_dataset_hash(result.get("result_identity") or {"dataset": "wordnet-2x2"})
    if identity[DATASET_HASH_KEY] != dataset_sha256("wordnet-2x2"):
        sys.exit(
            f"{name} was scored on another wordnet-2x2 file than the one shipped now, so its pair ids name "
            "other pairs: evaluate it again (steps 3 and 5 of scripts/beyond_paper.sh, into a fresh --out)"
        )


def _cells_of_pairs() -> dict[str, str]:
    cells: dict[str, str] = {}
    for line in wordnet_2x2_pairs_path().read_text(encoding="utf-8").splitlines():
        if line.strip():
            rec = json.loads(line)
            cells[rec["id"]] = rec["cell"]
    return cells


def paired_effect_differences(model: str, folder: Path, a_name: str, b_name: str) -> None:
    """Effect(A) - effect(B) with a paired bootstrap over the shared 2 x 2 pairs, and per-cell McNemar."""
    results = results_in(folder)
    if a_name not in results or b_name not in results:
        return
    for name in (a_name, b_name):
        check_scored_on_shipped_2x2(name, results[name][1])
    cell_of = _cells_of_pairs()
    da = {d["id"]: d for d in results[a_name][1]["eval_result_details"]}
    db = {d["id"]: d for d in results[b_name][1]["eval_result_details"]}
    ids = [i for i in da if i in db]
    arch_a, arch_b = arch_of(results[a_name][1]), arch_of(results[b_name][1])
    print(f"\n### {arch_a} − {arch_b} on the same 2 x 2 pairs ({model})\n")
    print("Per cell: share of pairs with the same top latent, and the exact McNemar test on the pairs where "
          "the two SAEs disagree.\n")  # fmt: skip
    print(f"| cell | pairs | {arch_a} | {arch_b} | only {arch_a} same | only {arch_b} same | p |")
    print("|---|---|---|---|---|---|---|")
    per_cell: dict[str, dict[str, np.ndarray]] = {}
    for c in CELL_ORDER:
        cid = [i for i in ids if cell_of.get(i) == c]
        sa = np.array([da[i]["predicted_same"] for i in cid], dtype=float)
        sb = np.array([db[i]["predicted_same"] for i in cid], dtype=float)
        ja = np.array([da[i]["jaccard"] for i in cid], dtype=float)
        jb = np.array([db[i]["jaccard"] for i in cid], dtype=float)
        per_cell[c] = {"share_same_top_latent": sa - sb, "topk_overlap": ja - jb}
        a_only, b_only = int(((sa == 1) & (sb == 0)).sum()), int(((sa == 0) & (sb == 1)).sum())
        p = 1.0 if a_only + b_only == 0 else float(stats.binomtest(a_only, a_only + b_only, 0.5).pvalue)
        print(f"| {CELL_LABELS[c]} | {len(cid)} | {fmt(sa.mean())} | {fmt(sb.mean())} | {a_only} | {b_only} | "
              f"{p:.3g} |")  # fmt: skip
        record("wordform_paired_cell", model, f"{a_name} vs {b_name}", c, sa.mean() - sb.mean(), n=len(cid),
               note=f"McNemar p={p:.4g}; only A same {a_only}; only B same {b_only}")  # fmt: skip
    rng = np.random.default_rng(0)
    n_resamples = 2000
    print(f"\nDifference of effects, {arch_a} minus {arch_b} (paired bootstrap, 95 %):\n")
    print("| effect | on share same top latent | on top-16 overlap |")
    print("|---|---|---|")
    boot: dict[str, dict[str, np.ndarray]] = {m: {} for m in ("share_same_top_latent", "topk_overlap")}
    for m in boot:
        for c in CELL_ORDER:
            v = per_cell[c][m]
            idx = rng.integers(0, len(v), size=(n_resamples, len(v)))
            boot[m][c] = v[idx].mean(axis=1)
    for e in EFFECTS:
        plus, minus = EFFECT_CELLS[e]
        cells_txt = []
        for m in ("share_same_top_latent", "topk_overlap"):
            point = (0.0 if plus is None else per_cell[plus][m].mean()) - per_cell[minus][m].mean()
            samples = (0.0 if plus is None else boot[m][plus]) - boot[m][minus]
            low, high = np.quantile(samples, [0.025, 0.975])
            cells_txt.append(ci(point, low, high, signed=True))
            record("wordform_paired_effect", model, f"{a_name} vs {b_name}", f"{e} {m}", point, low, high,
                   note="effect(A) - effect(B), paired bootstrap")  # fmt: skip
        print(f"| {e} | " + " | ".join(cells_txt) + " |")


# --------------------------------------------------------------------------------------------------
# Multi-token words


def multi_token_table(model: str, folders: dict[str, Path]) -> None:
    print(f"\n### Multi-token words, {model}: WiC test, recovered pairs apart from single-token ones\n")
    print("| SAE | policy | pairs | specificity | recall | accuracy |")
    print("|---|---|---|---|---|---|")
    for policy, folder in folders.items():
        for name, (_, r) in results_in(folder).items():
            u = r["eval_result_unstructured"]
            groups, cis = u.get("by_token_count", {}), u.get("by_token_count_ci", {})
            for group in ("single", "multi"):
                g, c = groups.get(group), cis.get(group, {})
                if not g:
                    continue
                cells = [
                    ci(g[k], c.get(f"{k}_low"), c.get(f"{k}_high"))
                    for k in ("specificity", "recall", "accuracy")
                ]
                what = "single-token (paper's)" if group == "single" else "multi-token (recovered)"
                print(f"| {arch_of(r)} | {policy}: {what} | {g['n_pairs']} | " + " | ".join(cells) + " |")
                for k in ("specificity", "recall", "accuracy"):
                    record(f"multi_token_{policy}", model, f"{name} {group}", k, g[k], c.get(f"{k}_low"),
                           c.get(f"{k}_high"), g["n_pairs"])  # fmt: skip


# --------------------------------------------------------------------------------------------------
# The 2 x 2 tables of docs/results.md, from the committed CSV

WORDFORM_CSV = "wordform_2x2.csv"
SMOLLM2, GEMMA = "SmolLM2-135M", "Gemma-3-270m"
NAME = re.compile(
    r"L(?P<layer>\d+)-(?P<hook>[a-z_]+?)-(?P<arch>standard|topk|batchtopk|matryoshka_batchtopk|jumprelu)-x"
)
ARCH_ORDER = ("topk", "batchtopk", "matryoshka_batchtopk", "jumprelu", "standard")
HOOK_ORDER = ("resid_post", "attn_out", "mlp_out")
Key = tuple[str, str, str, str]


def read_wordform_csv(folder: Path) -> dict[Key, dict[str, Any]]:
    """(section, model, representation, metric) -> the row, numbers as floats, of ``folder/wordform_2x2.csv``."""
    out: dict[Key, dict[str, Any]] = {}
    with (folder / WORDFORM_CSV).open(encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            for k in ("value", "low", "high", "n"):
                row[k] = float(row[k]) if row[k] not in ("", None) else None
            out[(row["section"], row["model"], row["representation"], row["metric"])] = row
    return out


def _saes(rows: dict[Key, dict[str, Any]], model: str) -> list[str]:
    names = {k[2] for k in rows if k[1] == model and k[0] == "wordform_vs_random"}

    def order(name: str) -> tuple[int, int, int]:
        m = NAME.match(name)
        assert m, name
        return int(m["layer"]), HOOK_ORDER.index(m["hook"]), ARCH_ORDER.index(m["arch"])

    return sorted(names, key=order)


def _arch(name: str) -> str:
    m = NAME.match(name)
    assert m, name
    return ARCH_LABELS.get(m["arch"], m["arch"])


def _est(rows: dict[Key, dict[str, Any]], section: str, model: str, rep: str, metric: str,
         signed: bool = False, digits: int = 3) -> str:  # fmt: skip
    row = rows.get((section, model, rep, metric))
    if row is None or row["value"] is None:
        return "–"
    value, low, high = row["value"], row["low"], row["high"]
    sign = "+" if signed else ""
    return f"{value:{sign}.{digits}f} [{low:{sign}.2f}, {high:{sign}.2f}]"


def _with_controls(rows: dict[Key, dict[str, Any]], model: str) -> list[tuple[str, str]]:
    """(representation, label): each SAE, then its random control."""
    out = []
    for name in _saes(rows, model):
        out += [(name, _arch(name)), (f"{name} random_sae", f"random control of {_arch(name)}")]
    return out


def wordform_cells_table(rows: dict[Key, dict[str, Any]], model: str = SMOLLM2) -> str:
    """Share of pairs with the same top latent per cell, each SAE beside its random control."""
    out = ["| representation | " + " | ".join(CELL_LABELS[c] for c in CELL_ORDER) + " |",
           "|---|" + "---|" * len(CELL_ORDER)]  # fmt: skip
    section = "wordform_cell_share_same_top_latent"
    for rep, label in _with_controls(rows, model):
        out.append(
            f"| {label} | " + " | ".join(_est(rows, section, model, rep, c) for c in CELL_ORDER) + " |"
        )
    return "\n".join(out)


def wordform_effects_table(rows: dict[Key, dict[str, Any]], model: str = SMOLLM2) -> str:
    """Word and meaning effects on the share and as log odds ratios, each SAE beside its random control."""
    out = ["| representation | word effect | meaning effect | word effect, log odds ratio | "
           "meaning effect, log odds ratio | 1 − synonym substitution |", "|---|---|---|---|---|---|"]  # fmt: skip
    share, odds = "wordform_effect_share_same_top_latent", "wordform_log_odds_ratio_same_top_latent"
    for rep, label in _with_controls(rows, model):
        cells = [_est(rows, share, model, rep, e, signed=True) for e in ("word_effect", "meaning_effect")]
        cells += [_est(rows, odds, model, rep, e, signed=True) for e in ("word_effect", "meaning_effect")]
        cells.append(_est(rows, share, model, rep, "word_effect_substitution", signed=True))
        out.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def wordform_versus_random_table(rows: dict[Key, dict[str, Any]], model: str = SMOLLM2) -> str:
    """Each SAE's word and meaning effects minus its random control's, paired on the same pairs."""
    out = ["| SAE | word effect − control's | meaning effect − control's | word effect, log odds ratio − "
           "control's | meaning effect, log odds ratio − control's |", "|---|---|---|---|---|"]  # fmt: skip
    for name in _saes(rows, model):
        cells = [
            _est(rows, "wordform_vs_random", model, name, f"{e} {m}", signed=True)
            for m in ("share_same_top_latent", "log_odds_ratio_same_top_latent")
            for e in ("word_effect", "meaning_effect")
        ]
        out.append(f"| {_arch(name)} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def wordform_auc_table(rows: dict[Key, dict[str, Any]], model: str = SMOLLM2) -> str:
    """The word and meaning effects as ROC-AUCs of the code cosine and the top-16 overlap, dense included."""
    out = ["| representation | word effect, AUC of the code cosine | meaning effect, AUC of the code cosine | "
           "word effect, AUC of the top-16 overlap | meaning effect, AUC of the top-16 overlap |",
           "|---|---|---|---|---|"]  # fmt: skip
    reps = _with_controls(rows, model)
    hooks = sorted({k[2] for k in rows if k[1] == model and k[2].startswith("dense ")})
    reps += [(h, "dense activations") for h in hooks]
    for rep, label in reps:
        cells = [
            _est(rows, f"wordform_auc_{m}", model, rep, e)
            for m in ("code_cosine", "topk_overlap")
            for e in ("word_effect", "meaning_effect")
        ]
        out.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def wordform_pair_table(rows: dict[Key, dict[str, Any]], model: str = SMOLLM2) -> str:
    """Matryoshka BatchTopK's effects minus BatchTopK's on the same pairs (paired bootstrap)."""
    pairs = sorted({k[2] for k in rows if k[0] == "wordform_paired_effect" and k[1] == model})
    out = ["| effect | on the same-top-latent share | on the top-16 overlap |", "|---|---|---|"]
    labels = {"word_effect": "word effect", "meaning_effect": "meaning effect",
              "word_effect_substitution": "1 − synonym substitution"}  # fmt: skip
    for pair in pairs:
        for e, label in labels.items():
            cells = [_est(rows, "wordform_paired_effect", model, pair, f"{e} {m}", signed=True)
                     for m in ("share_same_top_latent", "topk_overlap")]  # fmt: skip
            out.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def wordform_hooks_share_table(rows: dict[Key, dict[str, Any]], model: str = GEMMA) -> str:
    """Per hook (one SAE each): same-word same-sense share, word and meaning effects, the control's, paired."""
    out = ["| layer | hook | same top latent, same word and sense | word effect | meaning effect | random "
           "control's meaning effect | meaning effect − control's (paired) |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    share = "wordform_effect_share_same_top_latent"
    for name in _saes(rows, model):
        m = NAME.match(name)
        assert m
        same = rows[("wordform_cell_share_same_top_latent", model, name, "same_word_same_sense")]["value"]
        cells = [
            f"{same:.3f}",
            _est(rows, share, model, name, "word_effect", signed=True),
            _est(rows, share, model, name, "meaning_effect", signed=True),
            _est(rows, share, model, f"{name} random_sae", "meaning_effect", signed=True),
            _est(
                rows, "wordform_vs_random", model, name, "meaning_effect share_same_top_latent", signed=True
            ),
        ]
        out.append(f"| {m['layer']} | {m['hook']} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def wordform_hooks_scale_table(rows: dict[Key, dict[str, Any]], model: str = GEMMA) -> str:
    """Per hook: the word and meaning effects as log odds ratios, the meaning effect as the code cosine's ROC-AUC."""
    out = ["| layer | hook | word effect, log odds ratio | meaning effect, log odds ratio | random control's | "
           "− control's (paired) | meaning effect, AUC of the code cosine | random control's | dense activations' |",
           "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    odds, auc = "wordform_log_odds_ratio_same_top_latent", "wordform_auc_code_cosine"
    for name in _saes(rows, model):
        m = NAME.match(name)
        assert m
        hook = f"dense blocks.{m['layer']}.hook_{m['hook']}"
        cells = [
            _est(rows, odds, model, name, "word_effect", signed=True),
            _est(rows, odds, model, name, "meaning_effect", signed=True),
            _est(rows, odds, model, f"{name} random_sae", "meaning_effect", signed=True),
            _est(
                rows,
                "wordform_vs_random",
                model,
                name,
                "meaning_effect log_odds_ratio_same_top_latent",
                signed=True,
            ),
            _est(rows, auc, model, name, "meaning_effect"),
            _est(rows, auc, model, f"{name} random_sae", "meaning_effect"),
            _est(rows, auc, model, hook, "meaning_effect"),
        ]
        out.append(f"| {m['layer']} | {m['hook']} | " + " | ".join(cells) + " |")
    return "\n".join(out)


DOC_TABLES: dict[str, Callable[[Path], str]] = {
    "wordform_smollm2_cells": lambda d: wordform_cells_table(read_wordform_csv(d)),
    "wordform_smollm2_effects": lambda d: wordform_effects_table(read_wordform_csv(d)),
    "wordform_smollm2_vs_random": lambda d: wordform_versus_random_table(read_wordform_csv(d)),
    "wordform_smollm2_auc": lambda d: wordform_auc_table(read_wordform_csv(d)),
    "wordform_smollm2_matryoshka": lambda d: wordform_pair_table(read_wordform_csv(d)),
    "wordform_gemma3_share": lambda d: wordform_hooks_share_table(read_wordform_csv(d)),
    "wordform_gemma3_scales": lambda d: wordform_hooks_scale_table(read_wordform_csv(d)),
}
"""The 2 x 2 tables of docs/results.md, each made from ``docs/results/wordform_2x2.csv`` (``d``)."""


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".csv.tmp")
    with tmp.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]) if rows else ["section"])
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(path)
    print(f"\n{len(rows)} rows → {path}", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--smollm2", type=Path, help="the SmolLM2 run folder (runs/beyond-paper-smollm2)")
    parser.add_argument(
        "--gemma", type=Path, help="the Gemma-3-270m run folder (runs/beyond-paper-gemma3-270m)"
    )
    parser.add_argument("--csv", type=Path, help="write every number but the 2 x 2's here (long format)")
    parser.add_argument(
        "--wordform-csv", type=Path, help="write the 2 x 2 numbers (sections wordform_*) here (long format)"
    )
    parser.add_argument(
        "--only-wordform",
        action="store_true",
        help="read only the 2 x 2 results (RUN/wordform of each model), not WiC, controls or multi-token",
    )
    args = parser.parse_args()
    if args.smollm2:
        run = args.smollm2
        if not args.only_wordform:
            wic_table("SmolLM2-135M", run / "results", run / "controls")
            mcnemar_table("SmolLM2-135M", run / "results", "WiC test")
        if (run / "wordform" / "ps_eval").is_dir():
            wordform_tables("SmolLM2-135M", run / "wordform")
            wordform_versus_random("SmolLM2-135M", run / "wordform")
            names = list(results_in(run / "wordform"))
            matryoshka = [n for n in names if "matryoshka" in n]
            batchtopk = [n for n in names if "-batchtopk-" in n]
            if matryoshka and batchtopk:
                paired_effect_differences("SmolLM2-135M", run / "wordform", matryoshka[0], batchtopk[0])
        policies = {
            p: run / f"multi-token-{p}" for p in ("last", "mean") if (run / f"multi-token-{p}").is_dir()
        }
        if policies and not args.only_wordform:
            multi_token_table("SmolLM2-135M", policies)
    if args.gemma and (args.gemma / "wordform" / "ps_eval").is_dir():
        wordform_tables("Gemma-3-270m", args.gemma / "wordform")
        wordform_versus_random("Gemma-3-270m", args.gemma / "wordform")
    wordform_rows = [row for row in ROWS if str(row["section"]).startswith("wordform")]
    if args.wordform_csv:
        _write_csv(args.wordform_csv, wordform_rows)
    if args.csv:
        _write_csv(
            args.csv,
            [row for row in ROWS if not (args.wordform_csv and str(row["section"]).startswith("wordform"))],
        )


if __name__ == "__main__":
    main()
