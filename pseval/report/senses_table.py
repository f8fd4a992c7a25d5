"""Terminal table of the ``sense_retrieval`` category: SAE, random SAE and dense activation, paired differences.

One table per result: the macro anchor AUROC and 1-NN sense accuracy of each similarity with its
lemma-clustered interval, then the paired differences SAE − random SAE and SAE − centred dense with a
verdict that says "beats" only when the interval of the difference excludes 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from pseval._format import finite_number
from pseval.metrics.registry import metric_fields
from pseval.metrics.sense_retrieval import SimilarityScore

SIMILARITY_LABELS: tuple[tuple[str, str], ...] = (
    ("sae_cosine", "SAE · code cosine"),
    ("sae_jaccard", "SAE · top-k Jaccard"),
    ("random_sae_cosine", "random SAE · code cosine"),
    ("random_sae_jaccard", "random SAE · top-k Jaccard"),
    ("dense_centred_cosine", "dense · centred cosine"),
    ("dense_cosine", "dense · raw cosine"),
)
DIFFERENCE_LABELS: tuple[tuple[str, str, str], ...] = (
    ("sae_cosine_minus_random_sae_cosine", "SAE − random SAE (cosine)", "the random control"),
    ("sae_jaccard_minus_random_sae_jaccard", "SAE − random SAE (Jaccard)", "the random control"),
    ("sae_cosine_minus_dense_centred_cosine", "SAE − dense (centred cosine)", "the dense activation"),
)
METRICS: tuple[tuple[str, str], ...] = tuple(
    (key, spec.name) for key, spec in metric_fields(SimilarityScore).items()
)
"""(key, display name) of the sense-retrieval scores, from the metric registry (``auroc``, ``nn_accuracy``)."""


def _with_ci(row: dict[str, Any], name: str, signed: bool = False) -> str:
    """The value over its interval (two lines), so the table fits an 80-column terminal."""
    value, low, high = (finite_number(row.get(f"{name}{s}")) for s in ("", "_low", "_high"))
    if value is None:
        return "–"
    sign = "+" if signed else ""
    if low is None or high is None:
        return f"{value:{sign}.3f}"
    return f"{value:{sign}.3f}\n[{low:{sign}.2f}, {high:{sign}.2f}]"


def _count(n: Any, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def verdict(row: dict[str, Any], name: str, control: str) -> str:
    """'beats {control}' per metric whose interval of the difference lies above 0, 'below' when under it."""
    above, below = [], []
    for metric, label in METRICS:
        low, high = (finite_number(row.get(f"{name}_{metric}_{s}")) for s in ("low", "high"))
        if low is not None and low > 0:
            above.append(label)
        elif high is not None and high < 0:
            below.append(label)
    parts = []
    if above:
        parts.append(f"beats {control} ({', '.join(above)})")
    if below:
        parts.append(f"below {control} ({', '.join(below)})")
    return "; ".join(parts) or "no difference shown"


def senses_table(result: Any) -> Table | None:
    """The sense-retrieval table of one result (None when it has no ``sense_retrieval`` category)."""
    row = result.eval_result_metrics.get("sense_retrieval")
    if not row:
        return None
    level = finite_number(row.get("confidence_level")) or 0.95
    chance = finite_number(row.get("mean_chance"))
    table = Table(
        title=f"Within-lemma sense retrieval · {result.sae_name} @ {result.hook_name}\n"
        f"{_count(row.get('n_lemmas'), 'lemma')}, {_count(row.get('n_anchors'), 'anchor')} · 1-NN chance "
        f"{'–' if chance is None else f'{chance:.3f}'}",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        padding=(0, 1),
        caption=f"[ ] = {level:.0%} interval, lemmas resampled; macro = mean over lemmas of the mean over "
        "their anchors; differences are paired (same anchors, same resamples)",
        caption_justify="left",
    )
    table.add_column("similarity", overflow="fold")
    table.add_column("anchor AUROC", justify="right", no_wrap=True)
    table.add_column("1-NN accuracy", justify="right", no_wrap=True)
    for name, label in SIMILARITY_LABELS:
        if f"{name}_auroc" in row:
            table.add_row(label, _with_ci(row, f"{name}_auroc"), _with_ci(row, f"{name}_nn_accuracy"))
    table.add_section()
    for name, label, control in DIFFERENCE_LABELS:
        if f"{name}_auroc" in row:
            # the verdict goes under the label: a fourth column would not fit 80 columns
            table.add_row(
                f"{label}\n→ {verdict(row, name, control)}",
                _with_ci(row, f"{name}_auroc", signed=True),
                _with_ci(row, f"{name}_nn_accuracy", signed=True),
            )
    return table


def print_senses(results: Sequence[Any], console: Console, fmt: str = "table") -> None:
    """Print the sense-retrieval table of every result that has one (tables only; JSON has them all)."""
    if fmt != "table":
        return
    for result in results:
        table = senses_table(result)
        if table is not None:
            console.print(table)
