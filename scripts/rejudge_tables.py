"""The committed artifacts of "Re-judged against the controls, three seeds" (docs/results.md), from result folders.

python scripts/rejudge_tables.py --wic RUNS/wic --senses RUNS/senses --standard SWEEP/results   # the artifacts
python scripts/rejudge_tables.py --print                                        # print the doc's tables from them

Writes, under docs/results/:

- ``rejudge_activation_tiny_3seeds.csv``: one row per SAE, from its WiC result (PS-Eval with word-clustered
  intervals, the centred random control, the paired tests against it, the dense baseline, FVU and L0) and its
  ``wordnet-senses`` result (within-lemma sense retrieval of the SAE, its random control and the centred dense
  activation, and the paired differences, with lemma-clustered intervals);
- ``rejudge_by_config.csv``: per hook kind × architecture the mean and standard deviation over the training
  seeds of every number of the per-SAE rows, and per hook kind (``architecture`` = ``all``) the same over
  every SAE at that hook;
- ``rejudge_reliability.json``: ``pseval reliability``'s JSON of both folders, and the same statistics
  (:func:`pseval.metrics.reliability.metric_reliability`) of the numbers that ``pseval reliability`` does not read
  (the sense-retrieval scores, the random control's J, the paired differences, and FVU and L0 of the sweep's
  own standard metrics), grouped the same way.

The markdown tables are made from these files by ``scripts/results_tables.py`` (tables ``rejudge_*``).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import statistics
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO / "docs" / "results"
PER_SAE = "rejudge_activation_tiny_3seeds.csv"
BY_CONFIG = "rejudge_by_config.csv"
RELIABILITY = "rejudge_reliability.json"

PS_METRICS = ("specificity", "recall", "accuracy", "youden_j", "balanced_accuracy")
SENSE_SIMS = {"sae": "sae_cosine", "random": "random_sae_cosine", "dense": "dense_centred_cosine"}
SENSE_DIFFS = {
    "sae_minus_random": "sae_cosine_minus_random_sae_cosine",
    "sae_minus_dense": "sae_cosine_minus_dense_centred_cosine",
}
SENSE_SCORES = {"auroc": "auroc", "nn": "nn_accuracy"}
EXTRA_RELIABILITY = (
    "fvu",
    "l0",
    "random_youden_j",
    "vs_random_j_difference",
    "sense_sae_auroc",
    "sense_sae_nn",
    "sense_random_auroc",
    "sense_sae_minus_random_auroc",
    "sense_sae_minus_dense_auroc",
    "sense_sae_minus_random_nn",
)
"""Per-SAE numbers whose seed spread ``pseval reliability`` does not report (computed here the same way)."""


def _results(folder: Path) -> dict[str, dict[str, Any]]:
    """Every PS-Eval result JSON under ``folder`` by SAE name."""
    out: dict[str, dict[str, Any]] = {}
    for path in sorted(folder.rglob("*_eval_results.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("eval_type_id") == "ps_eval":
            out[data["sae_name"]] = data
    return out


def _j(values: dict[str, Any]) -> float | None:
    if values.get("youden_j") is not None:
        return float(values["youden_j"])
    if values.get("recall") is None or values.get("specificity") is None:
        return None
    return float(values["recall"]) + float(values["specificity"]) - 1.0


def wic_row(result: dict[str, Any]) -> dict[str, Any]:
    """Identity, PS-Eval, the random control and the paired tests, the dense baseline and the standard metrics."""
    metrics = result["eval_result_metrics"]
    ps, ci = metrics["ps_eval"], metrics["ps_eval_ci"]
    cfg = result["sae_cfg_dict"]
    meta = cfg.get("metadata") or {}
    hook = result["hook_name"]
    row: dict[str, Any] = {
        "name": result["sae_name"],
        "layer": int(hook.split(".")[1]),
        "hook_kind": hook.rsplit("hook_", 1)[-1],
        # The training config names the architecture (a Matryoshka BatchTopK SAE runs as "batchtopk").
        "architecture": (meta.get("train_config") or {}).get("architecture")
        or metrics["sae"]["architecture"],
        "seed": (meta.get("train_config") or {}).get("seed", meta.get("seed")),
        "d_sae": metrics["sae"]["d_sae"],
        "training_tokens": meta.get("training_tokens"),
        "n_pairs": ps["n_pairs"],
        "interval_method": ci.get("interval_method"),
    }
    for metric in PS_METRICS:
        row[metric] = ps.get(metric)
        row[f"{metric}_low"] = ci.get(f"{metric}_low")
        row[f"{metric}_high"] = ci.get(f"{metric}_high")
    random = metrics["baseline_random_sae"]
    row["random_centring"] = random.get("centring")
    for metric in ("specificity", "recall", "accuracy"):
        row[f"random_{metric}"] = random.get(metric)
    row["random_youden_j"] = _j(random)
    row["random_youden_j_low"] = random.get("youden_j_low")
    row["random_youden_j_high"] = random.get("youden_j_high")
    versus = metrics["vs_random_sae"]
    row.update(
        {
            "vs_random_accuracy_difference": versus["accuracy_difference"],
            "vs_random_sae_only_correct": versus["sae_only_correct"],
            "vs_random_random_only_correct": versus["random_only_correct"],
            "vs_random_mcnemar_p": versus["accuracy_p_value"],
            "vs_random_mcnemar_p_holm": versus["accuracy_p_holm"],
            "vs_random_j_difference": versus["youden_j_difference"],
            "vs_random_j_difference_low": versus["youden_j_difference_low"],
            "vs_random_j_difference_high": versus["youden_j_difference_high"],
            "vs_random_j_p": versus["youden_j_p_value"],
            "vs_random_j_p_holm": versus["youden_j_p_holm"],
            "beats_random_on_j": versus["beats_on_youden_j"],
            "beats_random_on_accuracy": versus["beats_on_accuracy"],
        }
    )
    dense = metrics["baseline_dense"]
    row["dense_youden_j"] = _j(dense)
    row["dense_accuracy"] = dense.get("accuracy")
    row["dense_roc_auc"] = dense.get("roc_auc")
    threshold_free = metrics.get("threshold_free") or {}
    for key in ("jaccard_roc_auc", "code_cosine_roc_auc"):
        row[key] = threshold_free.get(key)
        row[f"{key}_low"] = threshold_free.get(f"{key}_low")
        row[f"{key}_high"] = threshold_free.get(f"{key}_high")
    return row


def sense_columns(result: dict[str, Any] | None) -> dict[str, Any]:
    """Within-lemma sense retrieval of the SAE, its random control and the centred dense activation."""
    names = ["sense_n_lemmas", "sense_n_anchors", "sense_chance"]
    for label in (*SENSE_SIMS, *SENSE_DIFFS):
        for short in SENSE_SCORES:
            names += [f"sense_{label}_{short}", f"sense_{label}_{short}_low", f"sense_{label}_{short}_high"]
    row: dict[str, Any] = dict.fromkeys(names)
    if result is None:
        return row
    senses = result["eval_result_metrics"].get("sense_retrieval") or {}
    row.update(
        sense_n_lemmas=senses.get("n_lemmas"),
        sense_n_anchors=senses.get("n_anchors"),
        sense_chance=senses.get("mean_chance"),
    )
    for label, key in {**SENSE_SIMS, **SENSE_DIFFS}.items():
        for short, metric in SENSE_SCORES.items():
            for side in ("", "_low", "_high"):
                row[f"sense_{label}_{short}{side}"] = senses.get(f"{key}_{metric}{side}")
    return row


def standard_columns(result: dict[str, Any], other: dict[str, Any] | None) -> dict[str, Any]:
    """FVU, L0, CE recovered and dead fraction from ``other`` (a result of the same SAE, e.g. the sweep's own)
    when given, else from ``result``; refuses a result of another SAE."""
    source = result
    if other is not None:
        if other.get("sae_content_hash") != result.get("sae_content_hash"):
            raise SystemExit(f"{result['sae_name']}: the --standard result is of another SAE (content hash)")
        source = other
    standard = source["eval_result_metrics"].get("standard") or {}
    columns = {key: standard.get(key) for key in ("fvu", "l0", "ce_loss_recovered", "dead_fraction")}
    columns["standard_metrics_tokens"] = standard.get("n_tokens")
    return columns


def per_sae_rows(wic: Path, senses: Path | None, standard: Path | None = None) -> list[dict[str, Any]]:
    wic_results = _results(wic)
    sense_results = _results(senses) if senses is not None else {}
    standard_results = _results(standard) if standard is not None else {}
    rows = [
        {
            **wic_row(result),
            **standard_columns(result, standard_results.get(name) if standard is not None else None),
            **sense_columns(sense_results.get(name)),
        }
        for name, result in wic_results.items()
    ]
    return sorted(
        rows, key=lambda r: (r["layer"], r["hook_kind"] != "resid_post", r["architecture"], r["seed"])
    )


def _numeric_keys(rows: list[dict[str, Any]]) -> list[str]:
    skip = {"layer", "seed", "d_sae", "training_tokens", "n_pairs", "standard_metrics_tokens"}
    keys: list[str] = []
    for key in rows[0]:
        if key in skip or key.endswith(("_low", "_high", "_p", "_p_holm", "_only_correct")):
            continue
        if any(isinstance(r.get(key), (int, float)) and not isinstance(r.get(key), bool) for r in rows):
            keys.append(key)
    return keys


def by_config_rows(
    rows: list[dict[str, Any]],
    group_fields: tuple[str, ...] = ("hook_kind", "architecture"),
    pooled_field: str | None = "architecture",
) -> list[dict[str, Any]]:
    """Seed mean and SD of every number per config (the values of ``group_fields``: hook kind × architecture by
    default), then, when ``pooled_field`` is given, per config with that field set to ``all`` (per hook kind
    over every architecture by default)."""
    keys = _numeric_keys(rows)
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(row[f] for f in group_fields), []).append(row)
        if pooled_field is not None:
            pooled = tuple("all" if f == pooled_field else row[f] for f in group_fields)
            groups.setdefault(pooled, []).append(row)
    out = []
    for config, members in groups.items():
        record: dict[str, Any] = {
            **dict(zip(group_fields, config, strict=True)),
            "n_saes": len(members),
            "seeds": " ".join(str(m["seed"]) for m in members),
            "n_beats_random_on_j": sum(bool(m.get("beats_random_on_j")) for m in members),
            "n_beats_random_on_accuracy": sum(bool(m.get("beats_random_on_accuracy")) for m in members),
            "n_below_random_on_j": sum(
                m.get("vs_random_j_difference") is not None
                and m["vs_random_j_difference"] < 0
                and m["vs_random_j_p_holm"] < 0.05
                for m in members
            ),
            "n_sense_auroc_above_random": sum(
                (m["sense_sae_minus_random_auroc_low"] or 0) > 0 for m in members
            ),
            "n_sense_auroc_below_random": sum(
                (m["sense_sae_minus_random_auroc_high"] if m["sense_sae_minus_random_auroc_high"] is not None
                 else 0) < 0
                for m in members
            ),
            "n_sense_auroc_above_dense": sum((m["sense_sae_minus_dense_auroc_low"] or 0) > 0 for m in members),
            "n_sense_auroc_below_dense": sum(
                (m["sense_sae_minus_dense_auroc_high"] if m["sense_sae_minus_dense_auroc_high"] is not None
                 else 0) < 0
                for m in members
            ),
            "n_j_above_dense": sum(
                m.get("youden_j") is not None and m["youden_j"] > m["dense_youden_j"] for m in members
            ),
        }  # fmt: skip
        for key in keys:
            values = [float(m[key]) for m in members if m.get(key) is not None]
            record[f"{key}_mean"] = statistics.fmean(values) if values else None
            record[f"{key}_sd"] = statistics.stdev(values) if len(values) > 1 else None
        out.append(record)
    return out


def extra_reliability(
    rows: list[dict[str, Any]],
    level: float = 0.95,
    group_fields: tuple[str, ...] = ("hook_kind", "architecture"),
) -> dict[str, Any]:
    """pseval's reliability statistics of :data:`EXTRA_RELIABILITY`, one scope, configs = the values of
    ``group_fields`` (hook kind × architecture by default)."""
    from pseval.metrics.reliability import metric_reliability

    out: dict[str, Any] = {}
    for metric in EXTRA_RELIABILITY:
        groups: dict[str, list[float]] = {}
        for row in rows:
            if row.get(metric) is not None:
                config = "/".join(str(row[f]) for f in group_fields)
                groups.setdefault(config, []).append(float(row[metric]))
        if groups:
            out[metric] = metric_reliability([groups], level).as_dict()
    return out


CONTRASTED = (
    "fvu",
    "l0",
    "youden_j",
    "vs_random_j_difference",
    "sense_sae_auroc",
    "sense_sae_minus_random_auroc",
)
"""Metrics whose architecture differences are set against the minimum detectable difference of 3-seed means."""


def architecture_contrasts(
    rows: list[dict[str, Any]], reliability: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    """Per hook kind and metric: the architectures' seed means in order, their range, and how many of the
    architecture pairs differ by more than the MDD between means of 3 seeds (the pooled reseed SD's)."""
    out = []
    for hook in ("resid_post", "attn_out"):
        for metric in CONTRASTED:
            means: dict[str, float] = {}
            for architecture in sorted({r["architecture"] for r in rows}):
                values = [
                    float(r[metric])
                    for r in rows
                    if r["hook_kind"] == hook
                    and r["architecture"] == architecture
                    and r.get(metric) is not None
                ]
                if values:
                    means[architecture] = statistics.fmean(values)
            mdd = (reliability.get(metric) or {}).get("mdd_seed_means")
            ordered = sorted(means.items(), key=lambda kv: kv[1], reverse=True)
            pairs = [(a, b) for i, (a, _) in enumerate(ordered) for b, _ in ordered[i + 1 :]]
            beyond = [f"{a} > {b}" for a, b in pairs if mdd is not None and means[a] - means[b] > mdd]
            out.append(
                {
                    "hook_kind": hook,
                    "metric": metric,
                    "order": [a for a, _ in ordered],
                    "seed_means": dict(ordered),
                    "range": ordered[0][1] - ordered[-1][1] if ordered else None,
                    "mdd_seed_means": mdd,
                    "n_architecture_pairs": len(pairs),
                    "pairs_beyond_mdd": beyond,
                }
            )  # fmt: skip
    return out


def hook_contrasts(
    wic: Path, senses: Path | None, n_resamples: int = 2000, seed: int = 0
) -> list[dict[str, Any]]:
    """attn_out − resid_post at one layer for the SAEs (mean over every SAE at the hook), their random controls
    (the same) and the dense activation, on the same items: WiC J with a paired word-clustered bootstrap, sense
    AUROC and 1-NN with a paired lemma-clustered bootstrap. The dense WiC J has no per-pair rows: no interval."""
    import numpy as np

    from pseval.metrics.cluster_bootstrap import cluster_bootstrap
    from pseval.metrics.ps_eval import confusion_counts, metrics_from_counts
    from pseval.metrics.uncertainty import ClusterBootstrap, resampled_metrics

    hooks = ("resid_post", "attn_out")
    out: list[dict[str, Any]] = []
    by_hook: dict[str, list[dict[str, Any]]] = {h: [] for h in hooks}
    for result in _results(wic).values():
        by_hook[result["hook_name"].rsplit("hook_", 1)[-1]].append(result)
    first = by_hook[hooks[0]][0]["eval_result_details"]
    ids = [d["id"] for d in first]
    labels = np.array([d["label"] == 1 for d in first])
    boot = ClusterBootstrap(len(ids), [d["word"] for d in first], n_resamples, seed)
    for rep, key in (("sae", None), ("random_sae", "random_sae_details")):
        point: dict[str, float] = {}
        resampled: dict[str, Any] = {}
        for hook in hooks:
            js, samples = [], []
            for result in by_hook[hook]:
                rows = result["eval_result_unstructured"][key] if key else result["eval_result_details"]
                same = dict((d["id"], d["predicted_same"]) for d in rows)
                pred = np.array([same[i] for i in ids])
                js.append(metrics_from_counts(*confusion_counts(labels, pred)).youden_j)
                samples.append(resampled_metrics(boot, labels, pred)["youden_j"])
            point[hook] = float(np.mean(js))
            resampled[hook] = np.mean(samples, axis=0)
        interval = boot.interval(resampled["attn_out"] - resampled["resid_post"], 0.95)
        out.append({
            "dataset": "wic", "metric": "youden_j", "representation": rep,
            "resid_post": point["resid_post"], "attn_out": point["attn_out"],
            "attn_minus_resid": point["attn_out"] - point["resid_post"],
            "attn_minus_resid_low": interval.low, "attn_minus_resid_high": interval.high,
        })  # fmt: skip
    dense = {h: _j(by_hook[h][0]["eval_result_metrics"]["baseline_dense"]) for h in hooks}
    out.append({
        "dataset": "wic", "metric": "youden_j", "representation": "dense",
        "resid_post": dense["resid_post"], "attn_out": dense["attn_out"],
        "attn_minus_resid": dense["attn_out"] - dense["resid_post"],
        "attn_minus_resid_low": None, "attn_minus_resid_high": None,
    })  # fmt: skip
    if senses is None:
        return out
    sense_by_hook: dict[str, list[dict[str, Any]]] = {h: [] for h in hooks}
    for result in _results(senses).values():
        sense_by_hook[result["hook_name"].rsplit("hook_", 1)[-1]].append(result)
    anchors = [
        (a["id"], f"{a['lemma']}/{a['pos']}") for a in sense_by_hook[hooks[0]][0]["sense_retrieval_details"]
    ]
    lemmas = np.array([g for _, g in anchors], dtype=object)
    for metric, field in (("auroc", "auroc"), ("nn_accuracy", "nn_correct")):
        for rep, sim in SENSE_SIMS.items():
            per_hook = {}
            for hook in hooks:
                tables = [
                    {a["id"]: a["scores"][sim][field] for a in r["sense_retrieval_details"]}
                    for r in sense_by_hook[hook]
                ]
                per_hook[hook] = np.array([np.mean([t[i] for t in tables]) for i, _ in anchors])
            values = np.stack(
                [per_hook["resid_post"], per_hook["attn_out"], per_hook["attn_out"] - per_hook["resid_post"]]
            )
            resid, attn, diff = cluster_bootstrap(values, lemmas, n_resamples=n_resamples, seed=seed)
            out.append({
                "dataset": "wordnet-senses", "metric": metric, "representation": rep if rep != "random" else "random_sae",
                "resid_post": resid.value, "attn_out": attn.value, "attn_minus_resid": diff.value,
                "attn_minus_resid_low": diff.low, "attn_minus_resid_high": diff.high,
            })  # fmt: skip
    return out


def reliability_payload(wic: Path, senses: Path | None, rows: list[dict[str, Any]]) -> dict[str, Any]:
    from pseval.report.load import load_results
    from pseval.report.reliability import reliability_json, reliability_report

    payload: dict[str, Any] = {"wic": json.loads(reliability_json(reliability_report(load_results(wic))))}
    if senses is not None:
        payload["wordnet_senses"] = json.loads(reliability_json(reliability_report(load_results(senses))))
    payload["per_sae_numbers"] = {
        "source": PER_SAE,
        "grouping": "configs = hook kind x architecture, seeds 42, 43, 44; one scope",
        "metrics": extra_reliability(rows),
    }
    pooled = {row["metric"]: row for row in payload["wic"]["metrics"]} | payload["per_sae_numbers"]["metrics"]
    payload["architecture_contrasts"] = architecture_contrasts(rows, pooled)
    payload["hook_contrasts"] = {
        "what": "attn_out minus resid_post at layer 15; SAE and random rows: mean over every SAE at the hook; "
        "paired 95% cluster-bootstrap intervals (WiC: words, senses: lemmas; 2,000 resamples, seed 0)",
        "rows": hook_contrasts(wic, senses),
    }
    return payload


def _cell(value: Any) -> Any:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    return value


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({key: _cell(row.get(key)) for key in columns})


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--wic", type=Path, help="results folder of `pseval eval --dataset wic`")
    parser.add_argument(
        "--senses", type=Path, help="results folder of `pseval eval --dataset wordnet-senses`"
    )
    parser.add_argument(
        "--standard",
        type=Path,
        help="results folder whose standard metrics (FVU, L0, ...) to use, e.g. the sweep's",
    )
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="where the artifacts go (docs/results)")
    parser.add_argument(
        "--print", action="store_true", help="print the doc's rejudge tables from the artifacts"
    )
    args = parser.parse_args()
    if args.wic is not None:
        rows = per_sae_rows(args.wic, args.senses, args.standard)
        write_csv(args.out / PER_SAE, rows)
        write_csv(args.out / BY_CONFIG, by_config_rows(rows))
        payload = reliability_payload(args.wic, args.senses, rows)
        (args.out / RELIABILITY).write_text(
            json.dumps(payload, indent=2, allow_nan=False) + "\n", encoding="utf-8"
        )
        print(f"{len(rows)} SAEs -> {args.out / PER_SAE}, {args.out / BY_CONFIG}, {args.out / RELIABILITY}")
    if args.print:
        import importlib.util

        spec = importlib.util.spec_from_file_location(
            "results_tables", REPO / "scripts" / "results_tables.py"
        )
        assert spec and spec.loader
        tables = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(tables)
        for name, make in tables.TABLES.items():
            if name.startswith("rejudge"):
                sys.stdout.write(f"<!-- table:{name} -->\n{make(args.out)}\n<!-- /table -->\n\n")
    if args.wic is None and not args.print:
        parser.error("give --wic (and --senses) to build the artifacts, or --print")


if __name__ == "__main__":
    main()
