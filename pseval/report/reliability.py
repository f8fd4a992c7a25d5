"""``pseval reliability``: how much each metric moves when only the SAEs' training seed changes.

Results are grouped into replicates: results of one comparison scope (model, dataset, split, input regime and
every evaluation setting, i.e. the result identity without the SAE and its hook) whose SAEs were trained with
the same config except the seed (``metadata.train_config`` without ``seed``; pseval records its hash as
``metadata.train_config_hash_without_seed``). Per metric — the PS-Eval ratios first, then every other numeric
metric the files hold (PS-Eval, threshold-free and standard categories) — it reports the pooled reseed
standard deviation, the minimum detectable difference and the share of config pairs whose order holds across
seeds (:mod:`pseval.metrics.reliability`), as a terminal table (80 columns), JSON, CSV or an HTML section.
"""

from __future__ import annotations

import csv
import html
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from rich import box
from rich.table import Table

from pseval._format import finite_number
from pseval._io import stable_hash
from pseval.errors import ConfigError, DataError
from pseval.evals.results_store import SAE_IDENTITY_KEYS
from pseval.evals.schema import PSEvalResult
from pseval.metrics.reliability import metric_reliability, replicate_identity

HEADLINE: tuple[str, ...] = ("specificity", "recall", "accuracy", "f1", "precision")
"""PS-Eval's ratios, reported first in this order."""
CATEGORIES: tuple[str, ...] = ("ps_eval", "threshold_free", "standard")
"""Result categories whose numeric entries are metrics of the SAE itself (not baselines or intervals)."""
NOT_METRICS: frozenset[str] = frozenset(
    {"tp", "fp", "tn", "fn", "n_pairs", "n_same_meaning", "n_different_meaning", "n_pairs_no_active"}
)
"""Counts of the ``ps_eval`` category: their ratios are the metrics."""

NO_REPLICATES_FIX = (
    "train every SAE with several seeds: `pseval sweep ... --seeds 3` or `pseval train ... --seeds 3`, "
    "then evaluate them into one results folder"
)


@dataclass
class ConfigReplicates:
    """The results of one training config (up to the seed) in one comparison scope, by seed."""

    name: str
    scope: str
    by_seed: dict[int, PSEvalResult] = field(default_factory=dict)


@dataclass
class ReliabilityReport:
    """Per-metric reliability rows and what they were computed from."""

    rows: list[dict[str, Any]]
    configs: list[ConfigReplicates]
    level: float
    n_results: int
    n_untraced: int
    """Results whose SAE records no pseval training config (not trained by pseval): left out."""
    n_duplicates: int
    """Results of a config and seed already seen (the same SAE evaluated twice): left out."""

    @property
    def replicated(self) -> list[ConfigReplicates]:
        """The configs with at least two seeds."""
        return [c for c in self.configs if len(c.by_seed) >= 2]


def training_replicate(result: PSEvalResult) -> tuple[str, int] | None:
    """``(config identity without the seed, training seed)`` of a pseval-trained SAE's result, else None."""
    metadata = result.sae_cfg_dict.get("metadata")
    if not isinstance(metadata, dict) or not isinstance(metadata.get("train_config"), dict):
        return None
    train_config = metadata["train_config"]
    seed = train_config.get("seed", metadata.get("seed"))
    if not isinstance(seed, int):
        return None
    identity = metadata.get("train_config_hash_without_seed") or replicate_identity(train_config)
    return str(identity), seed


def comparison_scope(result: PSEvalResult) -> str:
    """A key shared by results whose numbers are comparable: same model, data and evaluation settings."""
    identity = dict(result.result_identity or {})
    if identity:
        for key in (*SAE_IDENTITY_KEYS, "hook_name"):
            identity.pop(key, None)
    else:  # results written before result identities: the evaluation config decides
        identity = {"model_name": result.model_name, **result.eval_config.identity()}
    return stable_hash(identity)


def group_replicates(results: Sequence[PSEvalResult]) -> tuple[list[ConfigReplicates], int, int]:
    """The results grouped by (scope, config without seed); also the untraced and duplicate counts."""
    groups: dict[tuple[str, str], ConfigReplicates] = {}
    untraced = duplicates = 0
    for result in results:
        replicate = training_replicate(result)
        if replicate is None:
            untraced += 1
            continue
        identity, seed = replicate
        scope = comparison_scope(result)
        group = groups.setdefault((scope, identity), ConfigReplicates(result.sae_name, scope))
        if seed in group.by_seed:
            duplicates += 1
            continue
        group.by_seed[seed] = result
    for group in groups.values():  # named after its first seed's SAE (the one without a -seed suffix)
        group.by_seed = dict(sorted(group.by_seed.items()))
        group.name = next(iter(group.by_seed.values())).sae_name
    return list(groups.values()), untraced, duplicates


def _metric_values(result: PSEvalResult) -> dict[str, float]:
    """Every numeric metric of a result under its display name (category-prefixed if a name repeats)."""
    values: dict[str, float] = {}
    for category in CATEGORIES:
        for key, value in (result.eval_result_metrics.get(category) or {}).items():
            number = finite_number(value)
            if number is None or isinstance(value, bool) or (category == "ps_eval" and key in NOT_METRICS):
                continue
            values[key if key not in values else f"{category}.{key}"] = number
    return values


def _metric_order(names: Sequence[str]) -> list[str]:
    headline = [m for m in HEADLINE if m in names]
    return headline + [m for m in names if m not in headline]


def _varies_with_seed(values: dict[tuple[int, int], dict[str, float]], name: str) -> bool:
    """Whether a metric differs between the seeds of some config beyond float rounding (a model-only number
    such as the zero-ablation CE loss differs between one hook's results by 1e-15)."""
    by_config: dict[int, list[float]] = {}
    for (config, _seed), metrics in values.items():
        if name in metrics:
            by_config.setdefault(config, []).append(metrics[name])
    return any(max(xs) - min(xs) > 1e-9 * max(1.0, max(abs(x) for x in xs)) for xs in by_config.values())


def reliability_report(
    results: Sequence[PSEvalResult], level: float = 0.95, metrics: Sequence[str] | None = None
) -> ReliabilityReport:
    """The reliability of every metric over the replicates in ``results``.

    Raises :class:`DataError` when no config has two seeds, :class:`ConfigError` for an unknown metric or a
    level outside (0, 1). Without ``metrics``, the PS-Eval ratios and every metric that differs between the
    seeds of some config are reported (not the token counts, nor a TopK SAE's fixed L0 when all configs fix it).
    """
    if not 0 < level < 1:
        raise ConfigError(f"--level {level} is not a confidence level", "pass e.g. --level 0.95")
    configs, untraced, duplicates = group_replicates(results)
    replicated = [c for c in configs if len(c.by_seed) >= 2]
    if not replicated:
        raise DataError(
            f"none of the {len(results)} results share a training config with another seed", NO_REPLICATES_FIX
        )
    values = {(id(c), seed): _metric_values(result) for c in replicated for seed, result in c.by_seed.items()}
    available = list(dict.fromkeys(name for v in values.values() for name in v))
    if metrics:
        unknown = [m for m in metrics if m not in available]
        if unknown:
            raise ConfigError(
                f"unknown metric {', '.join(unknown)}", f"choose among {', '.join(_metric_order(available))}"
            )
        chosen = list(dict.fromkeys(metrics))
    else:
        chosen = [
            name for name in _metric_order(available) if name in HEADLINE or _varies_with_seed(values, name)
        ]
    scopes = sorted({c.scope for c in replicated})
    rows = []
    for name in chosen:
        by_scope = [
            {
                id(c): [values[(id(c), seed)][name] for seed in c.by_seed if name in values[(id(c), seed)]]
                for c in replicated
                if c.scope == scope
            }
            for scope in scopes
        ]
        rows.append({"metric": name, **metric_reliability(by_scope, level).as_dict()})
    return ReliabilityReport(rows, configs, level, len(results), untraced, duplicates)


# --------------------------------------------------------------------------------------------------
# Output


def _num(value: Any, digits: int = 4) -> str:
    number = finite_number(value)
    if number is None:
        return "–"
    return f"{number:.{digits}g}" if abs(number) >= 1e-3 or number == 0 else f"{number:.2e}"


def _share(row: dict[str, Any]) -> str:
    share = finite_number(row["order_holds"])
    return "–" if share is None else f"{share:.1%} of {row['n_pairings']:,}"


def summary_line(report: ReliabilityReport) -> str:
    """What the numbers rest on, in one line."""
    replicated = report.replicated
    seeds = sorted({seed for c in replicated for seed in c.by_seed})
    runs = sum(len(c.by_seed) for c in replicated)
    line = (
        f"{len(replicated)} configs × seeds {', '.join(map(str, seeds))} ({runs} SAEs"
        f"{'' if len({c.scope for c in replicated}) == 1 else ', several evaluation settings'})"
    )
    left = len(report.configs) - len(replicated)
    if left or report.n_untraced or report.n_duplicates:
        parts = [
            f"{left} config(s) with one seed" if left else "",
            f"{report.n_untraced} SAE(s) not trained by pseval" if report.n_untraced else "",
            f"{report.n_duplicates} duplicate(s)" if report.n_duplicates else "",
        ]
        line += "; left out: " + ", ".join(p for p in parts if p)
    return line


def reliability_table(report: ReliabilityReport) -> Table:
    """The terminal table (fits 80 columns)."""
    level = f"{report.level:.0%}"
    table = Table(
        title=f"Training noise · {summary_line(report)}",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        padding=(0, 1),
        caption=f"σ seed: reseed standard deviation pooled over configs (df = Σ(n−1)). MDD: smallest "
        f"difference between two single-seed SAEs that a two-sided {level} test tells from reseed noise, "
        f"t·√2·σ; MDD n=…: the same for SAEs compared by their mean over n seeds, t·σ·√(2/n). Order holds: "
        "share of seed pairings of two configs that order them as their seed means do.",
        caption_justify="left",
    )
    sizes = {row["seeds_per_config"] for row in report.rows}
    common = sizes.pop() if len(sizes) == 1 else None  # the n of the MDD of seed means, in the header
    table.add_column("metric", overflow="fold", max_width=26)
    table.add_column("σ seed", justify="right", no_wrap=True)
    table.add_column("df", justify="right", no_wrap=True)
    table.add_column("MDD", justify="right", no_wrap=True)
    table.add_column(f"MDD n={common}" if common else "MDD mean", justify="right", no_wrap=True)
    table.add_column("order holds", justify="right", no_wrap=True)
    for row in report.rows:
        n = "" if common else f" (n={row['seeds_per_config']})"
        table.add_row(
            row["metric"],
            _num(row["reseed_sd"]),
            str(row["df"]),
            _num(row["mdd"]),
            "–" if row["mdd_seed_means"] is None else f"{_num(row['mdd_seed_means'])}{n}",
            _share(row),
        )
    return table


def _config_records(report: ReliabilityReport) -> list[dict[str, Any]]:
    return [
        {
            "name": c.name,
            "scope": c.scope,
            "seeds": list(c.by_seed),
            "sae_names": [r.sae_name for r in c.by_seed.values()],
        }
        for c in report.configs
    ]


def reliability_json(report: ReliabilityReport) -> str:
    """Every row and the configs they pool, as JSON."""
    payload = {
        "level": report.level,
        "n_results": report.n_results,
        "n_untraced": report.n_untraced,
        "n_duplicates": report.n_duplicates,
        "metrics": report.rows,
        "configs": _config_records(report),
    }
    return json.dumps(payload, indent=2, allow_nan=False)


def reliability_csv(report: ReliabilityReport) -> str:
    """One CSV row per metric."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(report.rows[0]), lineterminator="\n")
    writer.writeheader()
    for row in report.rows:
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return buffer.getvalue()


def reliability_section(results: Sequence[PSEvalResult], level: float = 0.95) -> str:
    """The HTML report's section, or ``""`` when no config was trained with several seeds."""
    try:
        report = reliability_report(results, level)
    except DataError:
        return ""
    esc = html.escape
    body = "".join(
        "<tr>"
        f"<td>{esc(row['metric'])}</td>"
        f'<td class="num">{esc(_num(row["reseed_sd"]))}</td>'
        f'<td class="num">{row["df"]}</td>'
        f'<td class="num">{esc(_num(row["mdd"]))}</td>'
        f'<td class="num">{esc(_num(row["mdd_seed_means"]))}</td>'
        f'<td class="num">{esc(_share(row))}</td>'
        "</tr>"
        for row in report.rows
    )
    n = min((len(c.by_seed) for c in report.replicated), default=0)
    pct = f"{report.level * 100:g} %"
    return (
        '<section id="reliability"><h2>Training noise (replicate seeds)</h2>'
        f'<p class="help">{esc(summary_line(report))}. <strong>σ seed</strong>: standard deviation of the '
        "metric between SAEs that differ only by training seed, pooled over configs. <strong>MDD</strong>: "
        f"the smallest difference between two single-seed SAEs that a two-sided {pct} test tells from reseed "
        f"noise (t·√2·σ); <strong>MDD mean</strong>: the same for means over {n} seeds (t·σ·√(2/{n})). "
        "<strong>Order holds</strong>: share of seed pairings of two configs that order them as their seed "
        "means do. Smaller differences between the SAEs above than the MDD are not evidence of a better "
        "SAE.</p>"
        '<div class="table-wrap"><table><thead><tr><th>metric</th><th>σ seed</th><th>df</th><th>MDD</th>'
        f"<th>MDD mean</th><th>order holds</th></tr></thead><tbody>{body}</tbody></table></div></section>"
    )
