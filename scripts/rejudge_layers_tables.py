"""The committed artifacts of "Layers and hook kinds, re-judged" (docs/results.md), from result folders.

pseval sweep docs/results/rejudge_layers.yaml --seeds 3 --out runs/layers-3seeds          # SAEs + WiC results
pseval eval --sae … --dataset wordnet-senses --out runs/layers-3seeds-senses …            # sense retrieval
python scripts/rejudge_layers_tables.py --wic runs/layers-3seeds/results \\
    --senses runs/layers-3seeds-senses                                                  # the artifacts

The Gemma-3-270m grid (docs/results/rejudge_layers_gemma3.yaml) writes the same artifacts under its own prefix:

python scripts/rejudge_layers_tables.py --prefix rejudge_layers_gemma3 --wic runs/gemma-3seeds/results \\
    --senses runs/gemma-3seeds-senses

Writes, under docs/results/ (names for the default ``--prefix rejudge_layers``; another prefix replaces it):

- ``rejudge_layers_3seeds.csv``: one row per SAE (layer × hook kind × seed), the columns of
  ``rejudge_activation_tiny_3seeds.csv`` (scripts/rejudge_tables.py): PS-Eval with word-clustered intervals, the
  centred random control and the paired tests against it, the dense baseline, the sweep's FVU and L0, and the
  within-lemma sense retrieval of the SAE, its random control and the centred dense activation;
- ``rejudge_layers_by_config.csv``: per layer × hook kind, the mean and standard deviation over the seeds of
  every number of the per-SAE rows;
- ``rejudge_layers.json``: ``pseval reliability`` of both folders and the same statistics of the numbers it does
  not read; per layer × hook kind the seed-mean SAE − random and SAE − dense differences with paired
  cluster-bootstrap intervals (WiC: words; senses: lemmas), Holm-adjusted over the configs; and the contrasts
  the paper's layer and hook-kind claims make (deeper minus shallower at each hook kind, one hook kind minus
  another at each layer) for the SAEs, their random controls, the dense activation and the SAE − random
  difference-in-differences, Holm-adjusted within each family.

Every seed-mean quantity averages the three SAEs' per-item predictions or scores' statistics; the same resamples
serve every config, so every difference between configs is paired.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any, NamedTuple

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO / "docs" / "results"
PREFIX = "rejudge_layers"
"""The SmolLM2 grid's artifact names start with it."""
GRIDS = {"smollm2": PREFIX, "gemma3": "rejudge_layers_gemma3"}
"""Each grid of docs/results.md and the prefix of its artifacts and tables."""
ARCHITECTURE_LABELS = {"topk": "TopK", "batchtopk": "BatchTopK", "jumprelu": "JumpReLU", "relu": "ReLU"}


def per_sae_name(prefix: str = PREFIX) -> str:
    """The per-SAE CSV of the grid whose artifacts start with ``prefix``."""
    return f"{prefix}_3seeds.csv"


def by_config_name(prefix: str = PREFIX) -> str:
    """The per-config CSV (mean and SD over the seeds)."""
    return f"{prefix}_by_config.csv"


def summary_name(prefix: str = PREFIX) -> str:
    """The JSON of reliability, per-config tests and contrasts."""
    return f"{prefix}.json"


PER_SAE = per_sae_name()
BY_CONFIG = by_config_name()
SUMMARY = summary_name()

HOOK_KINDS = ("resid_post", "attn_out", "mlp_out")
HOOK_PAIRS = (("attn_out", "resid_post"), ("attn_out", "mlp_out"), ("mlp_out", "resid_post"))
WIC_METRICS = ("youden_j", "specificity")
N_RESAMPLES = 2000
BOOT_SEED = 0
LEVEL = 0.95
ALPHA = 0.05

Config = tuple[int, str]


class Quantity(NamedTuple):
    """A seed-mean statistic: its value, its values over the resamples every config shares (``R``), and its value
    for each training seed (``S``; a difference between two representations of one config pairs each seed's SAE
    with its own random control)."""

    value: float
    samples_R: np.ndarray
    seeds_S: np.ndarray

    def __sub__(self, other: Quantity) -> Quantity:  # type: ignore[override]
        return Quantity(
            self.value - other.value, self.samples_R - other.samples_R, self.seeds_S - other.seeds_S
        )


@functools.cache
def _script(name: str) -> ModuleType:
    """A sibling script as a module (scripts/ is no package)."""
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _config_of(result: dict[str, Any]) -> Config:
    hook = result["hook_name"]
    return int(hook.split(".")[1]), hook.rsplit("hook_", 1)[-1]


def _by_config(results: dict[str, dict[str, Any]]) -> dict[Config, list[dict[str, Any]]]:
    grouped: dict[Config, list[dict[str, Any]]] = {}
    for result in results.values():
        grouped.setdefault(_config_of(result), []).append(result)
    return dict(sorted(grouped.items(), key=lambda kv: (kv[0][0], HOOK_KINDS.index(kv[0][1]))))


def _same_items(ids: list[str], other: list[str], name: str) -> None:
    if ids != other:
        raise SystemExit(
            f"{name}: its items differ from the first result's; evaluate every SAE on the same items"
        )


def summarise(quantity: Quantity) -> dict[str, float | None]:
    """Value, percentile interval, two-sided bootstrap p-value of "= 0", and SD over the seeds of a statistic."""
    value, samples_R = quantity.value, quantity.samples_R
    finite = samples_R.size > 0 and bool(np.all(np.isfinite(samples_R)))
    seeds = quantity.seeds_S
    spread = {"seed_sd": float(np.std(seeds, ddof=1)) if seeds.size > 1 else None}
    if not finite:
        return {"value": value, "low": None, "high": None, "p": None, **spread}
    tail = (1.0 - LEVEL) / 2.0
    low, high = np.quantile(samples_R, [tail, 1.0 - tail])
    far_side = min(int(np.sum(samples_R <= 0)), int(np.sum(samples_R >= 0)))
    p = min(1.0, 2.0 * (far_side + 1) / (samples_R.size + 1))
    return {"value": value, "low": float(low), "high": float(high), "p": p, **spread}


def wic_quantities(
    wic: dict[str, dict[str, Any]],
) -> tuple[dict[Config, dict[str, dict[str, Quantity]]], int]:
    """Per config, for the SAEs and their random controls: the seed mean of each of :data:`WIC_METRICS` and its
    values on word-clustered resamples shared by every config; the dense cosine's value; the number of pairs."""
    from pseval.metrics.ps_eval import confusion_counts, metrics_from_counts
    from pseval.metrics.uncertainty import ClusterBootstrap, resampled_metrics

    first = next(iter(wic.values()))["eval_result_details"]
    ids = [d["id"] for d in first]
    labels = np.array([d["label"] == 1 for d in first])
    boot = ClusterBootstrap(len(ids), [d["word"] for d in first], N_RESAMPLES, BOOT_SEED)
    out: dict[Config, dict[str, dict[str, Quantity]]] = {}
    for config, results in _by_config(wic).items():
        out[config] = {}
        for rep, key in (("sae", None), ("random", "random_sae_details")):
            points: dict[str, list[float]] = {m: [] for m in WIC_METRICS}
            samples: dict[str, list[np.ndarray]] = {m: [] for m in WIC_METRICS}
            for result in results:
                rows = result["eval_result_unstructured"][key] if key else result["eval_result_details"]
                _same_items(ids, [d["id"] for d in rows], result["sae_name"])
                predicted = np.array([d["predicted_same"] for d in rows])
                point = metrics_from_counts(*confusion_counts(labels, predicted))
                resampled = resampled_metrics(boot, labels, predicted)
                for metric in WIC_METRICS:
                    points[metric].append(float(getattr(point, metric)))
                    samples[metric].append(resampled[metric])
            out[config][rep] = {
                m: Quantity(float(np.mean(points[m])), np.mean(samples[m], axis=0), np.array(points[m]))
                for m in WIC_METRICS
            }
        # The dense cosine keeps no per-pair rows: its value only (no resamples, hence no interval).
        dense = results[0]["eval_result_metrics"]["baseline_dense"]
        dense_values = {
            "youden_j": _script("rejudge_tables")._j(dense),
            "specificity": dense.get("specificity"),
        }
        out[config]["dense"] = {
            m: Quantity(float(v), np.full(N_RESAMPLES, np.nan), np.array([v]))
            for m, v in dense_values.items()
            if v is not None
        }
    return out, len(ids)


SENSE_REPRESENTATIONS = {"sae": "sae_cosine", "random": "random_sae_cosine", "dense": "dense_centred_cosine"}


def sense_quantities(senses: dict[str, dict[str, Any]]) -> tuple[dict[Config, dict[str, Quantity]], int, int]:
    """Per config and representation, the macro anchor AUROC (mean over lemmas of the mean over their anchors
    of the seed-mean anchor AUROC) and its values on lemma resamples shared by every config (drawn as
    :func:`pseval.metrics.cluster_bootstrap.cluster_bootstrap` draws them); the numbers of lemmas and anchors."""
    from pseval.metrics.cluster_bootstrap import RESAMPLE_CHUNK, cluster_means

    first = next(iter(senses.values()))["sense_retrieval_details"]
    ids = [a["id"] for a in first]
    lemmas = np.array([f"{a['lemma']}/{a['pos']}" for a in first], dtype=object)
    keys: list[tuple[Config, str]] = []
    values: list[np.ndarray] = []
    seed_values: list[np.ndarray] = []
    for config, results in _by_config(senses).items():
        for rep, similarity in SENSE_REPRESENTATIONS.items():
            per_seed = []
            for result in results:
                anchors = result["sense_retrieval_details"]
                _same_items(ids, [a["id"] for a in anchors], result["sae_name"])
                per_seed.append([a["scores"][similarity]["auroc"] for a in anchors])
            keys.append((config, rep))
            values.append(np.mean(np.asarray(per_seed, dtype=np.float64), axis=0))
            seed_values.append(
                np.array([cluster_means(np.asarray(row), lemmas)[1].mean() for row in per_seed])
            )
    means_SC = np.stack([cluster_means(row, lemmas)[1] for row in values])
    rng = np.random.default_rng(BOOT_SEED)
    n_lemmas = means_SC.shape[1]
    boot_SB = np.empty((len(values), N_RESAMPLES))
    for lo in range(0, N_RESAMPLES, RESAMPLE_CHUNK):
        hi = min(N_RESAMPLES, lo + RESAMPLE_CHUNK)
        draw_BC = rng.integers(0, n_lemmas, size=(hi - lo, n_lemmas))
        boot_SB[:, lo:hi] = means_SC[:, draw_BC].mean(-1)
    out: dict[Config, dict[str, Quantity]] = {}
    for (config, rep), point, samples, seeds in zip(
        keys, means_SC.mean(1), boot_SB, seed_values, strict=True
    ):
        out.setdefault(config, {})[rep] = Quantity(float(point), samples, seeds)
    return out, n_lemmas, len(ids)


def _holm_in_place(tests: list[dict[str, Any]]) -> None:
    """Adds ``p_holm`` (Holm over ``tests``, a family) and ``excludes_zero`` (adjusted p < 0.05) to each."""
    from pseval.metrics.uncertainty import holm

    ps = [t["p"] for t in tests]
    if not tests or any(p is None for p in ps):
        for t in tests:
            t.update(p_holm=None, excludes_zero=None)
        return
    for t, adjusted in zip(tests, holm(ps), strict=True):
        t.update(p_holm=float(adjusted), excludes_zero=bool(adjusted < ALPHA))


def _configs(*per_config: dict[Config, Any]) -> list[Config]:
    """The configs of any of ``per_config``, by layer then hook kind."""
    union = {config for mapping in per_config for config in mapping}
    return sorted(union, key=lambda c: (c[0], HOOK_KINDS.index(c[1])))


def config_tests(
    wic_q: dict[Config, dict[str, dict[str, Quantity]]], sense_q: dict[Config, dict[str, Quantity]]
) -> list[dict[str, Any]]:
    """Per config: SAE − random on WiC J and specificity, SAE − random and SAE − dense on sense AUROC; each test
    Holm-adjusted over the configs."""
    families: dict[str, list[dict[str, Any]]] = {}
    rows: list[dict[str, Any]] = []
    for layer, hook in _configs(wic_q, sense_q):
        row: dict[str, Any] = {"layer": layer, "hook_kind": hook}
        tests: dict[str, Quantity] = {}
        reps = wic_q.get((layer, hook))
        if reps is not None:
            for m in WIC_METRICS:
                row[f"wic_{m}_sae"] = reps["sae"][m].value
                row[f"wic_{m}_random"] = reps["random"][m].value
                tests[f"wic_{m}_sae_minus_random"] = reps["sae"][m] - reps["random"][m]
        sense = sense_q.get((layer, hook))
        if sense is not None:
            for rep in SENSE_REPRESENTATIONS:
                row[f"sense_auroc_{rep}"] = sense[rep].value
            tests["sense_auroc_sae_minus_random"] = sense["sae"] - sense["random"]
            tests["sense_auroc_sae_minus_dense"] = sense["sae"] - sense["dense"]
        for name, quantity in tests.items():
            row[name] = summarise(quantity)
            families.setdefault(name, []).append(row[name])
        rows.append(row)
    for family in families.values():
        _holm_in_place(family)
    return rows


def seed_mdd(per_config: list[Quantity]) -> float | None:
    """Minimum detectable difference between two configs' means of their seeds, from the reseed SD pooled over
    ``per_config`` (:func:`pseval.metrics.reliability.minimum_detectable_difference`): seeds of two configs are
    not paired, so a contrast of configs must exceed it to be told from training noise."""
    from pseval.metrics.reliability import minimum_detectable_difference

    groups = [q.seeds_S for q in per_config if q.seeds_S.size >= 2]
    df = sum(g.size - 1 for g in groups)
    if df == 0:
        return None
    pooled_sd = float(np.sqrt(sum(float(((g - g.mean()) ** 2).sum()) for g in groups) / df))
    return minimum_detectable_difference(pooled_sd, df, LEVEL, min(g.size for g in groups))


def _metric_views(
    wic_q: dict[Config, dict[str, dict[str, Quantity]]], sense_q: dict[Config, dict[str, Quantity]]
) -> dict[str, Callable[[Config], dict[str, Quantity]]]:
    """Per metric: config → its quantities per representation, SAE − random included."""

    def wic_view(metric: str) -> Callable[[Config], dict[str, Quantity]]:
        def view(config: Config) -> dict[str, Quantity]:
            reps = {rep: q[metric] for rep, q in wic_q[config].items() if metric in q}
            return {**reps, "sae_minus_random": reps["sae"] - reps["random"]}

        return view

    def sense_view(config: Config) -> dict[str, Quantity]:
        reps = sense_q[config]
        return {**reps, "sae_minus_random": reps["sae"] - reps["random"]}

    views = {f"wic_{m}": wic_view(m) for m in WIC_METRICS} if wic_q else {}
    if sense_q:
        views["sense_auroc"] = sense_view
    return views


def _contrast_rows(
    pairs: list[tuple[str, Config, Config]],
    wic_q: dict[Config, dict[str, dict[str, Quantity]]],
    sense_q: dict[Config, dict[str, Quantity]],
) -> list[dict[str, Any]]:
    """For each (label, minuend config, subtrahend config) and metric: the difference of the SAEs, of their random
    controls, of the dense activation (senses) and of SAE − random (a difference of differences), each with its
    paired interval, Holm over the pairs per metric and representation, and the MDD of 3-seed means."""
    families: dict[tuple[str, str], list[dict[str, Any]]] = {}
    rows: list[dict[str, Any]] = []
    configs = _configs(wic_q, sense_q)
    for metric, view in _metric_views(wic_q, sense_q).items():
        mdds = {rep: seed_mdd([view(c)[rep] for c in configs]) for rep in view(configs[0])}
        for label, a, b in pairs:
            qa, qb = view(a), view(b)
            row: dict[str, Any] = {"contrast": label, "metric": metric, "a": list(a), "b": list(b)}
            for rep in qa:
                cell = summarise(qa[rep] - qb[rep])
                del cell["seed_sd"]  # the seeds of two configs are not paired: the MDD below stands for them
                mdd = mdds[rep]
                cell["mdd_seed_means"] = mdd
                cell["beyond_seed_noise"] = None if mdd is None else bool(abs(cell["value"] or 0.0) > mdd)
                row[rep] = cell
                families.setdefault((metric, rep), []).append(cell)
            rows.append(row)
    for family in families.values():
        _holm_in_place(family)
    return rows


def claim_contrasts(
    wic_q: dict[Config, dict[str, dict[str, Quantity]]], sense_q: dict[Config, dict[str, Quantity]]
) -> dict[str, list[dict[str, Any]]]:
    """Deeper minus shallower at each hook kind (every pair of layers), and one hook kind minus another at each
    layer (:data:`HOOK_PAIRS`)."""
    configs = set(_configs(wic_q, sense_q))
    layers = sorted({layer for layer, _ in configs})
    depth = [
        (f"{hook}: L{deep} − L{shallow}", (deep, hook), (shallow, hook))
        for hook in HOOK_KINDS
        for i, shallow in enumerate(layers)
        for deep in layers[i + 1 :]
        if (deep, hook) in configs and (shallow, hook) in configs
    ]
    hooks = [
        (f"L{layer}: {a} − {b}", (layer, a), (layer, b))
        for layer in layers
        for a, b in HOOK_PAIRS
        if (layer, a) in configs and (layer, b) in configs
    ]
    return {
        "depth": _contrast_rows(depth, wic_q, sense_q),
        "hook_kinds": _contrast_rows(hooks, wic_q, sense_q),
    }


def sense_only_rows(senses_dir: Path) -> list[dict[str, Any]]:
    """Per-SAE rows from sense-retrieval results alone (the identity and sense columns of the per-SAE CSV)."""
    rt = _script("rejudge_tables")
    rows = []
    for result in rt._results(senses_dir).values():
        layer, hook = _config_of(result)
        train_config = (result["sae_cfg_dict"].get("metadata") or {}).get("train_config") or {}
        identity = {
            "name": result["sae_name"],
            "layer": layer,
            "hook_kind": hook,
            "architecture": train_config.get("architecture"),
            "seed": train_config.get("seed"),
            "d_sae": result["eval_result_metrics"]["sae"]["d_sae"],
            "training_tokens": train_config.get("training_tokens"),
        }
        rows.append({**identity, **rt.sense_columns(result)})
    return sorted(rows, key=lambda r: (r["layer"], HOOK_KINDS.index(r["hook_kind"]), r["seed"]))


def describe_saes(results: dict[str, dict[str, Any]]) -> str:
    """``TopK x8 SAEs per layer x hook kind, seeds 42, 43, 44``, from the results' training configs."""
    configs = [
        (result["sae_cfg_dict"].get("metadata") or {}).get("train_config") or {}
        for result in results.values()
    ]
    kinds = sorted({(c.get("architecture"), c.get("expansion_factor")) for c in configs}, key=str)
    saes = ", ".join(f"{ARCHITECTURE_LABELS.get(str(a), str(a))} x{e}" for a, e in kinds)
    seeds = ", ".join(str(s) for s in sorted({int(c["seed"]) for c in configs if c.get("seed") is not None}))
    return f"{saes} SAEs per layer x hook kind, seeds {seeds}"


def build(wic_dir: Path | None, senses_dir: Path | None, out: Path, prefix: str = PREFIX) -> None:
    """Writes the three artifacts, named after ``prefix``, from the sweep's WiC results and the sense-retrieval
    results (either may be missing: its columns, tests and contrasts are then left out)."""
    from pseval.report.load import load_results
    from pseval.report.reliability import reliability_json, reliability_report

    rt = _script("rejudge_tables")
    if wic_dir is not None:
        rows = rt.per_sae_rows(wic_dir, senses_dir)
    elif senses_dir is not None:
        rows = sense_only_rows(senses_dir)
    else:
        raise SystemExit("give --wic, --senses or both")
    fields = ("layer", "hook_kind")
    per_sae, by_config, summary = (
        out / per_sae_name(prefix),
        out / by_config_name(prefix),
        out / summary_name(prefix),
    )
    rt.write_csv(per_sae, rows)
    rt.write_csv(by_config, rt.by_config_rows(rows, group_fields=fields, pooled_field=None))
    wic = rt._results(wic_dir) if wic_dir is not None else {}
    senses = rt._results(senses_dir) if senses_dir is not None else {}
    wic_q, n_pairs = wic_quantities(wic) if wic else ({}, 0)
    sense_q, n_lemmas, n_anchors = sense_quantities(senses) if senses else ({}, 0, 0)
    payload: dict[str, Any] = {
        "what": f"{describe_saes(wic or senses)}; seed means of the SAEs' and their "
        "random controls' statistics; paired 95% percentile cluster-bootstrap intervals (WiC: words, "
        f"senses: lemmas; {N_RESAMPLES} resamples, seed {BOOT_SEED}, shared by every config); two-sided "
        "bootstrap p-values, Holm-adjusted within each family",
        "n_wic_pairs": n_pairs,
        "n_sense_lemmas": n_lemmas,
        "n_sense_anchors": n_anchors,
    }
    if wic_dir is not None:
        payload["wic_reliability"] = json.loads(reliability_json(reliability_report(load_results(wic_dir))))
    if senses_dir is not None:
        payload["senses_reliability"] = json.loads(
            reliability_json(reliability_report(load_results(senses_dir)))
        )
    payload["per_sae_numbers_reliability"] = rt.extra_reliability(rows, LEVEL, group_fields=fields)
    payload["configs"] = config_tests(wic_q, sense_q)
    payload["contrasts"] = claim_contrasts(wic_q, sense_q)
    summary.write_text(json.dumps(payload, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    print(f"{len(rows)} SAEs -> {per_sae}, {by_config}, {summary}")


# --------------------------------------------------------------------------------------------------
# The tables of docs/results.md made from the artifacts (scripts/results_tables.py lists them in TABLES)

LABELS = {"wic_specificity": "WiC specificity", "wic_youden_j": "WiC J", "sense_auroc": "sense AUROC"}


def _summary(folder: Path, prefix: str = PREFIX) -> dict[str, Any]:
    return json.loads((folder / summary_name(prefix)).read_text(encoding="utf-8"))


def _by_config_rows(folder: Path, prefix: str = PREFIX) -> dict[tuple[int, str], dict[str, Any]]:
    rows = _script("results_tables").read_summary(folder / by_config_name(prefix))
    return {(r["layer"], r["hook_kind"]): r for r in rows}


def _test_cells(cell: dict[str, Any] | None) -> tuple[str, str]:
    """``+0.012 [-0.03, +0.05]`` and its Holm-adjusted p-value."""
    rt = _script("results_tables")
    if cell is None:
        return "–", "–"
    return rt.signed({"d": cell["value"], "d_low": cell["low"], "d_high": cell["high"]}, "d"), rt.p_value(
        cell.get("p_holm")
    )


def wic_table(folder: Path, prefix: str = PREFIX, ce_recovered: bool = False) -> str:
    """Per layer × hook kind: FVU (and with ``ce_recovered`` the CE loss recovered), specificity and J of the SAEs
    and their random controls (seed mean ± SD), the dense cosine's J, and the seed-mean J difference SAE − random
    with its interval, Holm p and seed SD."""
    rt = _script("results_tables")
    by_config = _by_config_rows(folder, prefix)
    ce_header = " CE recovered |" if ce_recovered else ""
    out = [
        f"| layer | hook | FVU |{ce_header} specificity, SAE | specificity, random SAE | J, SAE | J, random SAE "
        "| J, dense | J, SAE − random | p (Holm) | SD over seeds, SAE − random |",
        "|---|---|---|---|---|---|---|---|---|---|---|" + ("---|" if ce_recovered else ""),
    ]
    for test in _summary(folder, prefix)["configs"]:
        if "wic_youden_j_sae_minus_random" not in test:
            continue
        r = by_config[(test["layer"], test["hook_kind"])]
        diff, p = _test_cells(test.get("wic_youden_j_sae_minus_random"))
        sd = test["wic_youden_j_sae_minus_random"]["seed_sd"]
        ce = f" {rt.mean_sd(r, 'ce_loss_recovered', True)} |" if ce_recovered else ""
        out.append(
            f"| {test['layer']} | {test['hook_kind']} | {rt.mean_sd(r, 'fvu')} |{ce} {rt.mean_sd(r, 'specificity')} "
            f"| {rt.mean_sd(r, 'random_specificity')} | {rt.mean_sd(r, 'youden_j', True)} "
            f"| {rt.mean_sd(r, 'random_youden_j', True)} | {r['dense_youden_j_mean']:+.3f} | {diff} | {p} "
            f"| {rt.num(sd)} |"
        )
    return "\n".join(out)


def senses_table(folder: Path, prefix: str = PREFIX) -> str:
    """Per layer × hook kind: macro anchor AUROC of the SAEs, their random controls (seed mean ± SD) and the
    centred dense activation, and the seed-mean differences SAE − random and SAE − dense with intervals."""
    rt = _script("results_tables")
    by_config = _by_config_rows(folder, prefix)
    out = [
        "| layer | hook | AUROC, SAE | AUROC, random SAE | AUROC, dense (centred) | SAE − random | p (Holm) "
        "| SD over seeds, SAE − random | SAE − dense | p (Holm) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for test in _summary(folder, prefix)["configs"]:
        if "sense_auroc_sae_minus_random" not in test:
            continue
        r = by_config[(test["layer"], test["hook_kind"])]
        vs_random, p_random = _test_cells(test["sense_auroc_sae_minus_random"])
        vs_dense, p_dense = _test_cells(test["sense_auroc_sae_minus_dense"])
        out.append(
            f"| {test['layer']} | {test['hook_kind']} | {rt.mean_sd(r, 'sense_sae_auroc')} "
            f"| {rt.mean_sd(r, 'sense_random_auroc')} | {test['sense_auroc_dense']:.3f} | {vs_random} | {p_random} "
            f"| {rt.num(test['sense_auroc_sae_minus_random']['seed_sd'])} | {vs_dense} | {p_dense} |"
        )
    return "\n".join(out)


def verdict(row: dict[str, Any]) -> str:
    """The claim "a > b" for this contrast: it holds for the SAEs when their difference is positive, excludes 0
    after Holm and exceeds the MDD of 3-seed means; against the control when SAE − random does the same."""

    def clear(cell: dict[str, Any]) -> int:
        if not cell.get("excludes_zero") or not cell.get("beyond_seed_noise"):
            return 0
        return 1 if cell["value"] > 0 else -1

    sae, control = clear(row["sae"]), clear(row["sae_minus_random"])
    if sae > 0:
        return "holds against the random control" if control > 0 else "holds only against nothing"
    if sae < 0:
        return "reversed" + (" (also against the control)" if control < 0 else "")
    return "does not hold"


def contrast_table(folder: Path, family: str, prefix: str = PREFIX) -> str:
    """One claim family's contrasts: the difference of the SAEs, of their random controls, of the dense
    activation and of SAE − random, with paired intervals, and the verdict of the claim "a > b"."""
    rt = _script("results_tables")
    out = [
        "| contrast | metric | SAEs | random SAEs | dense | SAE − random | p (Holm), SAE − random "
        "| MDD of 3-seed means: SAEs / SAE − random | claim a > b |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in _summary(folder, prefix)["contrasts"][family]:
        sae, _ = _test_cells(row["sae"])
        random, _ = _test_cells(row["random"])
        dense, _ = _test_cells(row.get("dense"))
        did, p = _test_cells(row["sae_minus_random"])
        mdd = f"{rt.num(row['sae']['mdd_seed_means'])} / {rt.num(row['sae_minus_random']['mdd_seed_means'])}"
        out.append(
            f"| {row['contrast']} | {LABELS[row['metric']]} | {sae} | {random} | {dense} | {did} | {p} | {mdd} "
            f"| {verdict(row)} |"
        )
    return "\n".join(out)


def reliability_table(folder: Path, prefix: str = PREFIX) -> str:
    """Reseed SD and MDD of this grid (9 configs × 3 seeds) per metric."""
    rt = _script("results_tables")
    payload = _summary(folder, prefix)
    wic = {row["metric"]: row for row in (payload.get("wic_reliability") or {"metrics": []})["metrics"]}
    extra = payload["per_sae_numbers_reliability"]
    out = [
        "| metric | reseed SD | MDD, one seed each | MDD, means of 3 seeds | order holds across seeds |",
        "|---|---|---|---|---|",
    ]
    for source, metric, label in rt.REJUDGE_RELIABILITY_ROWS:
        row = (wic if source == "wic" else extra).get(metric)
        if row is None or metric == "l0":
            continue
        share = row.get("order_holds")
        out.append(
            f"| {label} | {rt.num(row.get('reseed_sd'))} | {rt.num(row.get('mdd'))} "
            f"| {rt.num(row.get('mdd_seed_means'))} | {'–' if share is None else f'{100 * share:.0f} %'} |"
        )
    return "\n".join(out)


def grid_tables(prefix: str) -> dict[str, Callable[[Path], str]]:
    """The five tables of one grid, named ``<prefix>_wic`` … ``<prefix>_reliability``; Gemma's WiC table also
    shows the CE loss recovered, negative for some of its SAEs."""
    return {
        f"{prefix}_wic": functools.partial(wic_table, prefix=prefix, ce_recovered=prefix != PREFIX),
        f"{prefix}_senses": functools.partial(senses_table, prefix=prefix),
        f"{prefix}_depth": functools.partial(contrast_table, family="depth", prefix=prefix),
        f"{prefix}_hook_kinds": functools.partial(contrast_table, family="hook_kinds", prefix=prefix),
        f"{prefix}_reliability": functools.partial(reliability_table, prefix=prefix),
    }


TABLES: dict[str, Callable[[Path], str]] = {
    name: table for prefix in GRIDS.values() for name, table in grid_tables(prefix).items()
}
"""The tables of "Layers and hook kinds, re-judged" in docs/results.md (every grid of :data:`GRIDS`), made from
the artifacts in a folder."""


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--wic", type=Path, help="results folder of the sweep (WiC)")
    parser.add_argument(
        "--senses", type=Path, help="results folder of `pseval eval --dataset wordnet-senses`"
    )
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="where the artifacts go (docs/results)")
    parser.add_argument(
        "--prefix",
        default=PREFIX,
        help=f"start of the artifacts' names: {PREFIX} (SmolLM2, the default) or {GRIDS['gemma3']} (Gemma-3-270m)",
    )
    args = parser.parse_args()
    build(args.wic, args.senses, args.out, args.prefix)


if __name__ == "__main__":
    main()
