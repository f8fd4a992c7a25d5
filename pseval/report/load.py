"""Read a results folder back: every PS-Eval result file under it, and one flat row of key numbers per SAE.

The report is built from the result files alone (no model, no SAE weights), so anything a figure or the
HTML page shows must be recoverable from here. Files are found recursively because a sweep nests them
(``<out>/results/ps_eval/*.json``); files of other SAEBench evals that share the folder are skipped.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from pseval._format import finite_number
from pseval.errors import DataError, parse_error_details, validation_details
from pseval.evals.categories import CATEGORIES, SAEFacts, ThresholdFreeMetrics, report_values
from pseval.evals.schema import EVAL_TYPE_ID, PSEvalResult, checksum_mismatch, edited_problem
from pseval.metrics.ps_eval import METRIC_NAMES
from pseval.metrics.registry import metric_fields
from pseval.report.site_note import site_check_fields
from pseval.report.vs_dense import vs_dense_fields

RESULT_GLOB = "*_eval_results.json"
"""File names the runner writes (SAEBench's layout: ``<out>/ps_eval/<name>_eval_results.json``)."""

METRICS: tuple[str, ...] = METRIC_NAMES
"""PS-Eval ratios, each with a bootstrap interval in the ``ps_eval_ci`` category (Youden's J and balanced
accuracy are derived from recall and specificity for results written before they were stored)."""


def _with_derived(metrics: dict[str, Any]) -> dict[str, Any]:
    """``metrics`` with Youden's J and balanced accuracy filled in from recall and specificity if absent."""
    recall, specificity = finite_number(metrics.get("recall")), finite_number(metrics.get("specificity"))
    if recall is None or specificity is None or "youden_j" in metrics:
        return metrics
    return {
        **metrics,
        "youden_j": recall + specificity - 1.0,
        "balanced_accuracy": (recall + specificity) / 2,
    }


COUNTS: tuple[str, ...] = ("tp", "fp", "tn", "fn", "n_pairs", "n_same_meaning", "n_different_meaning")

THRESHOLD_FREE: tuple[str, ...] = tuple(metric_fields(ThresholdFreeMetrics))
"""The threshold-free scores in the summary rows (every metric of the ``threshold_free`` category)."""

BASELINES: tuple[str, ...] = (
    "baseline_dense",
    "baseline_random_sae",
    "baseline_frozen_decoder",
    "baseline_frozen_encoder",
)
"""Baseline categories whose metrics the summary rows hold, as ``<row prefix><metric>`` (``dense_roc_auc``)."""

HOOK_KIND_ORDER: tuple[str, ...] = ("resid_pre", "attn_out", "resid_mid", "mlp_out", "resid_post")
"""Hook kinds in the order they occur inside a transformer block (the report's column order)."""

ARCHITECTURE_LABELS: dict[str, str] = {
    "standard": "ReLU",
    "topk": "TopK",
    "batchtopk": "BatchTopK",
    "matryoshka_batchtopk": "Matryoshka BatchTopK",
    "jumprelu": "JumpReLU",
    "gated": "Gated",
}
"""Display names of the architecture tags ("standard" is the L1-trained ReLU SAE)."""

_HOOK_RE = re.compile(r"^blocks\.(\d+)\.(?:[a-z_]+\.)*?(?:hook_)?([A-Za-z0-9_]+)$")


def parse_hook(hook_name: str) -> tuple[int | None, str | None]:
    """Layer and kind of a hook name (``blocks.12.hook_attn_out`` → ``(12, "attn_out")``).

    Written here rather than imported from :mod:`pseval.models.hooks` so reading results never needs torch,
    and lenient: an unrecognised name gives ``(None, None)`` instead of an error, since the report should
    still show such an SAE.
    """
    if hook_name.strip() == "hook_embed":  # the input of block 0 (see pseval.models.hooks.EMBED_HOOK)
        return 0, "resid_pre"
    match = _HOOK_RE.match(hook_name.strip())
    if match is None:
        return None, None
    return int(match.group(1)), match.group(2)


def architecture_label(architecture: str | None) -> str:
    """Human name of an architecture tag (unknown tags are shown as they are)."""
    if not architecture:
        return "unknown"
    return ARCHITECTURE_LABELS.get(architecture, architecture)


def architecture_rank(architecture: str | None) -> tuple[int, str]:
    """Sort key: ReLU, TopK, BatchTopK, JumpReLU, Gated, then unknown tags alphabetically."""
    order = tuple(ARCHITECTURE_LABELS)
    if architecture in order:
        return order.index(architecture), ""
    return len(order), architecture or ""


def hook_kind_rank(kind: str | None) -> tuple[int, str]:
    """Sort key putting hook kinds in block order, unknown kinds after them alphabetically."""
    if kind in HOOK_KIND_ORDER:
        return HOOK_KIND_ORDER.index(kind), ""
    return len(HOOK_KIND_ORDER), kind or ""


def find_result_files(folder: str | Path) -> list[Path]:
    """Every ``*_eval_results.json`` under ``folder`` (or ``folder`` itself if it is such a file), sorted."""
    root = Path(folder)
    if root.is_file():
        return [root]
    files = [
        path
        for path in root.rglob(RESULT_GLOB)
        if path.is_file() and not any(part.startswith(".") for part in path.relative_to(root).parts)
    ]
    return sorted(files)


def _read(path: Path) -> PSEvalResult | None:
    """A PS-Eval result, ``None`` for another eval's file; a corrupt PS-Eval file is an error."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(
            f"cannot read the result file {path} ({parse_error_details(exc)})",
            "delete it and rerun `pseval eval` for that SAE",
        ) from None
    if not isinstance(raw, dict) or raw.get("eval_type_id") != EVAL_TYPE_ID:
        return None
    if checksum_mismatch(raw):
        raise DataError(edited_problem(path), "recompute it with `pseval eval ... --force-rerun`")
    try:
        return PSEvalResult.model_validate(raw)
    except ValidationError as exc:
        raise DataError(
            f"{path} is not a valid PS-Eval result ({validation_details(exc)})",
            "delete it and rerun `pseval eval` for that SAE with this pseval version",
        ) from None


def sort_key(result: PSEvalResult) -> tuple[Any, ...]:
    """Stable order: model, dataset, split, layer, hook kind, architecture, width, k, name."""
    layer, kind = parse_hook(result.hook_name)
    facts = result.eval_result_metrics.sae or SAEFacts()
    expansion = finite_number(facts.expansion_ratio)
    k = finite_number(result.sae_cfg_dict.get("k"))
    return (
        result.model_name,
        result.eval_config.dataset,
        result.eval_config.split,
        -1 if layer is None else layer,
        hook_kind_rank(kind),
        architecture_rank(facts.architecture or result.sae_cfg_dict.get("architecture")),
        math.inf if expansion is None else expansion,
        math.inf if k is None else k,
        result.sae_name,
        result.eval_id,
    )


def load_results(folder: str | Path) -> list[PSEvalResult]:
    """All PS-Eval results under ``folder``, sorted by model, hook, architecture and width.

    Raises :class:`DataError` when the folder is missing or holds no PS-Eval result.
    """
    root = Path(folder)
    if not root.exists():
        raise DataError(
            f"the results folder {root} does not exist",
            "pass the folder given to `pseval eval --out` (it holds ps_eval/*_eval_results.json)",
        )
    results = [result for path in find_result_files(root) if (result := _read(path)) is not None]
    if not results:
        raise DataError(
            f"no PS-Eval result (*{RESULT_GLOB[1:]} with eval_type_id 'ps_eval') under {root}",
            "run `pseval eval --out FOLDER` first and pass that FOLDER",
        )
    return sorted(results, key=sort_key)


def display_names(results: Sequence[PSEvalResult]) -> list[str]:
    """One unique label per result: the SAE name, extended by its hook (then a counter) where names repeat."""
    counts: dict[str, int] = {}
    for result in results:
        counts[result.sae_name] = counts.get(result.sae_name, 0) + 1
    names: list[str] = []
    seen: set[str] = set()
    for result in results:
        name = result.sae_name
        if counts[name] > 1:
            name = f"{name} @ {result.hook_name}"
        base, n = name, 1
        while name in seen:
            n += 1
            name = f"{base} ({n})"
        seen.add(name)
        names.append(name)
    return names


def summary_row(result: PSEvalResult, name: str | None = None) -> dict[str, Any]:
    """The key numbers of one result as a flat dict (``None`` where a value is absent).

    Keys: identity (``name``, ``model``, ``dataset``, ``split``, ``hook``, ``layer``, ``hook_kind``), SAE
    (``architecture``, ``d_in``, ``d_sae``, ``expansion_ratio``, ``k``), PS-Eval (:data:`METRICS`,
    :data:`COUNTS`, ``n_pairs_no_active``, ``<metric>_low``/``<metric>_high``), threshold-free scores,
    every numeric ``standard`` metric under its own name (``l0``, ``l0_normalised``, ``mse``, ``fvu``,
    ``ce_loss_recovered`` …; ``standard_<name>`` if the name is taken), and the baselines as
    ``dense_<metric>`` and ``random_<metric>``.
    """
    categories = result.eval_result_metrics
    ps = _with_derived(categories.get("ps_eval", {}))
    ci = categories.get("ps_eval_ci", {})
    facts = categories.sae or SAEFacts()
    cfg = result.sae_cfg_dict
    layer, kind = parse_hook(result.hook_name)
    architecture = facts.architecture or cfg.get("architecture")
    d_in = finite_number(cfg.get("d_in") if facts.d_in is None else facts.d_in)
    d_sae = finite_number(cfg.get("d_sae") if facts.d_sae is None else facts.d_sae)
    expansion = finite_number(facts.expansion_ratio)
    if expansion is None and d_in and d_sae:
        expansion = d_sae / d_in
    row: dict[str, Any] = {
        "name": name or result.sae_name,
        "sae_name": result.sae_name,
        "model": result.model_name,
        "dataset": result.eval_config.dataset,
        "split": result.eval_config.split,
        "hook": result.hook_name,
        "layer": layer,
        "hook_kind": kind,
        "architecture": architecture,
        "d_in": None if d_in is None else int(d_in),
        "d_sae": None if d_sae is None else int(d_sae),
        "expansion_ratio": expansion,
        "k": finite_number(cfg.get("k")),
        "pseval_version": result.pseval_version,
    }
    for metric in METRICS:
        row[metric] = finite_number(ps.get(metric))
        row[f"{metric}_low"] = finite_number(ci.get(f"{metric}_low"))
        row[f"{metric}_high"] = finite_number(ci.get(f"{metric}_high"))
    for count in (*COUNTS, "n_pairs_no_active"):
        value = finite_number(ps.get(count))
        row[count] = None if value is None else int(value)
    if row["n_pairs"] is None:
        row["n_pairs"] = len(result.eval_result_details)
    row["confidence_level"] = finite_number(ci.get("confidence_level"))
    threshold_free = categories.get("threshold_free", {})
    for key in THRESHOLD_FREE:
        row[key] = finite_number(threshold_free.get(key))
    standard = categories.get("standard") or {}
    for key, value in sorted(standard.items()):
        number = finite_number(value)
        if number is not None:
            row[key if key not in row else f"standard_{key}"] = number
    if row.get("l0_normalised") is None and row.get("l0") is not None and row["d_sae"]:
        row["l0_normalised"] = row["l0"] / row["d_sae"]
    for category in BASELINES:
        values = _with_derived(categories.get(category) or {})
        for metric in (*METRICS, "n_pairs_no_active", *metric_fields(CATEGORIES[category].model)):
            if metric in values and f"{CATEGORIES[category].row_prefix}{metric}" not in row:
                row[f"{CATEGORIES[category].row_prefix}{metric}"] = finite_number(values.get(metric))
    versus = categories.get("vs_random_sae") or {}
    row["beats_random_on"] = ", ".join(
        label for key, label in (("beats_on_youden_j", "J"), ("beats_on_accuracy", "accuracy")) if versus.get(key)
    ) if versus else None  # fmt: skip
    for key, value in report_values(categories).items():
        row.setdefault(key, value)  # metrics marked ``report``: the table and HTML columns of new metrics
    row.update(vs_dense_fields(categories))  # dense_youden_j_difference … (absent without vs_dense)
    row.update(site_check_fields(categories))  # site_check_verdict … (absent without a site check)
    return row


def summary_table(results: Sequence[PSEvalResult]) -> list[dict[str, Any]]:
    """One :func:`summary_row` per result, in the given order, with unique ``name`` values."""
    return [summary_row(result, name) for result, name in zip(results, display_names(results), strict=True)]


def table_columns(rows: Iterable[dict[str, Any]]) -> list[str]:
    """The union of the rows' keys, in first-seen order (the column order of a CSV export)."""
    columns: dict[str, None] = {}
    for row in rows:
        for key in row:
            columns.setdefault(key, None)
    return list(columns)


def describe(results: Sequence[PSEvalResult]) -> dict[str, Any]:
    """What the results were computed on: models, datasets, splits, pair counts and pseval versions."""

    def distinct(values: Iterable[Any]) -> list[Any]:
        return sorted({value for value in values if value is not None}, key=str)

    return {
        "models": distinct(r.model_name for r in results),
        "datasets": distinct(r.eval_config.dataset for r in results),
        "splits": distinct(r.eval_config.split for r in results),
        "n_pairs": distinct(r.metric("ps_eval", "n_pairs") or len(r.eval_result_details) for r in results),
        "pseval_versions": distinct(r.pseval_version for r in results),
        "training_tokens": distinct(training_tokens(r) for r in results),
        "n_saes": len(results),
    }


def training_tokens(result: PSEvalResult) -> int | None:
    """Tokens the SAE was trained on, as its config's metadata records it (None for SAEs trained elsewhere)."""
    metadata = result.sae_cfg_dict.get("metadata")
    value = metadata.get("training_tokens") if isinstance(metadata, dict) else None
    return int(value) if isinstance(value, (int, float)) and value > 0 else None


def context_line(results: Sequence[PSEvalResult]) -> str:
    """A one-line description for figure subtitles: model · dataset (split) · pairs · training tokens."""
    info = describe(results)

    def join(values: list[Any]) -> str:
        return ", ".join(str(v) for v in values) if values else "?"

    pairs = info["n_pairs"]
    if len(pairs) == 1:
        pairs_text = f"{pairs[0]:,} pairs"
    elif pairs:
        pairs_text = f"{min(pairs):,}–{max(pairs):,} pairs"
    else:
        pairs_text = "? pairs"
    line = f"{join(info['models'])} · {join(info['datasets'])} ({join(info['splits'])} split) · {pairs_text}"
    # Only stated when every SAE records its budget: a partial claim would mislabel the others.
    tokens = info["training_tokens"] if all(training_tokens(r) for r in results) else []
    if len(tokens) == 1:
        line += f" · SAEs trained on {tokens[0]:,} tokens"
    elif tokens:
        line += f" · SAEs trained on {min(tokens):,}–{max(tokens):,} tokens"
    return line


def pairs_scored(result: PSEvalResult) -> int:
    """How many pairs a result scored (its ``n_pairs`` metric, else its per-pair details)."""
    value = finite_number(result.metric("ps_eval", "n_pairs"))
    return int(value) if value is not None else len(result.eval_result_details)


@dataclass(frozen=True)
class ResultGroup:
    """Results scored on the same pairs (dataset, split and pair count), so their numbers compare."""

    dataset: str
    split: str
    n_pairs: int
    results: list[PSEvalResult]
    variant: str = ""
    """Tells apart groups of the same dataset, split and count but other pairs (e.g. ``seed 1``)."""

    @property
    def title(self) -> str:
        """``wic · test split · 1,144 pairs``: what every table, figure and section of the group says."""
        title = f"{dataset_label(self.dataset)} · {self.split} split · {self.n_pairs:,} pairs"
        return f"{title} · {self.variant}" if self.variant else title

    @property
    def slug(self) -> str:
        """A folder name unique to the group, e.g. ``wic-test-1144pairs``."""
        name = re.sub(r"[^A-Za-z0-9._-]+", "_", dataset_label(self.dataset)).strip("._") or "dataset"
        variant = re.sub(r"[^A-Za-z0-9]+", "", self.variant)
        return f"{name}-{self.split}-{self.n_pairs}pairs" + (f"-{variant}" if variant else "")


def dataset_label(dataset: str) -> str:
    """A dataset as a title shows it: a JSONL file by its stem, a built-in dataset by its name."""
    return Path(dataset).stem if dataset.endswith(".jsonl") else dataset


def _pair_set(result: PSEvalResult) -> str:
    """A digest of the pair ids a result scored and of its dataset's content ("" when it has neither).

    The content counts because one id can name other pairs in another version of a file (a rebuilt
    ``wordnet-2x2``); results stored before the content was recorded count as of the files shipped then.
    """
    from pseval.evals.results_store import DATASET_HASH_KEY, with_dataset_hash

    ids = sorted(detail.id for detail in result.eval_result_details)
    identity = with_dataset_hash(result.result_identity or {"dataset": result.eval_config.dataset})
    parts = [str(identity.get(DATASET_HASH_KEY) or ""), *ids]
    return hashlib.sha1("\n".join(parts).encode("utf-8")).hexdigest() if any(parts) else ""


def group_results(results: Sequence[PSEvalResult]) -> list[ResultGroup]:
    """``results`` split by the pairs they scored: dataset, split, pair count and pair ids.

    Specificity on 1,144 WiC test pairs and on 400 pairs of another dataset are different quantities:
    one table or figure holding both would invite comparing them, so the report shows each group apart.
    Groups are ordered by dataset, split and pair count; groups that share those three but scored other
    pairs (another seed of ``--max-pairs``, another balancing draw) are told apart by their seed when it
    differs, else by a counter. Each group keeps the given order of its results.
    """
    groups: dict[tuple[str, str, int, str], list[PSEvalResult]] = {}
    for result in results:
        key = (result.eval_config.dataset, result.eval_config.split, pairs_scored(result), _pair_set(result))
        groups.setdefault(key, []).append(result)
    ordered = sorted(groups.items(), key=lambda item: (*item[0][:3], item[1][0].eval_config.seed, item[0][3]))
    out: list[ResultGroup] = []
    for (dataset, split, n_pairs, _), members in ordered:
        siblings = [m for k, m in ordered if k[:3] == (dataset, split, n_pairs)]
        variant = ""
        if len(siblings) > 1:
            seeds = [m[0].eval_config.seed for m in siblings]
            seed = members[0].eval_config.seed
            position = next(i for i, sibling in enumerate(siblings) if sibling is members)
            variant = f"seed {seed}" if seeds.count(seed) == 1 else f"pair set {position + 1}"
        out.append(ResultGroup(dataset, split, n_pairs, members, variant))
    return out
