"""The HTML report's sortable summary table: one row per SAE, then its dense and random-SAE baselines.

Cells carry their sort value in ``data-v``; columns other than the essential ones are hidden on a phone-width
screen. A score most of whose pairs have no active latent is flagged beside it (:mod:`pseval.report.no_active`)
and explained in a line under the table, as in the terminal.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pseval.evals.categories import report_columns
from pseval.metrics.ps_eval import MOSTLY_NO_ACTIVE, mostly_no_active
from pseval.metrics.registry import metric_label
from pseval.report.fvu_flag import fvu_above_one
from pseval.report.load import architecture_label, hook_kind_rank
from pseval.report.no_active import FLAG
from pseval.report.site_note import site_summary
from pseval.report.vs_dense import difference_cell

Row = dict[str, Any]


def _esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


@dataclass
class Column:
    """One column of the summary table: its header, sort type and how a row fills it."""

    label: str
    kind: str  # "num" or "text"
    cell: Callable[[Row], tuple[str, Any]]  # (inner HTML, sort value)
    title: str = ""
    essential: bool = False  # still shown on a phone-width screen (the others are hidden there)


FLAGGED_METRICS = frozenset({"specificity", "recall", "accuracy"})
"""Scores a silent SAE sets by itself (no active latent: predicted 'different'), flagged when it is silent."""


def flag_mark(row: Row) -> str:
    """The flag after a score of a row most of whose pairs have no active latent, else nothing."""
    if not row.get("_mostly_no_active"):
        return ""
    return (
        f' <span class="flag" title="most pairs have no active latent: this score describes a silent SAE">'
        f"{FLAG}</span>"
    )


def flag_notes_html(rows: Sequence[Row]) -> str:
    """One legend line per flagged row of ``rows`` (SAEs and baselines), or ``""`` when none is flagged."""
    lines = []
    for row in rows:
        n_silent, n_pairs = row.get("n_pairs_no_active"), row.get("n_pairs")
        if n_silent is not None and n_pairs and mostly_no_active(n_silent, n_pairs):
            lines.append(
                f'<li><span class="flag">{FLAG}</span> <strong>{_esc(row["name"])}</strong>: no active latent in '
                f"{n_silent / n_pairs:.0%} of pairs (over {MOSTLY_NO_ACTIVE:.0%}): they count as "
                "'different' whatever their meaning, so its specificity, recall and accuracy describe a "
                "silent SAE, not its features</li>"
            )
    return f'<ul class="flag-notes">{"".join(lines)}</ul>' if lines else ""


SITE_TITLE = (
    "the hook-site check before scoring: the SAE's FVU and L0 on held-out corpus tokens at the site it is read "
    "at (pass; poor_sae: over a limit at its own training site; fail: a wrong hook, BOS policy or "
    "normalisation; hover for the limit crossed)"
)


def _site_cell(row: Row) -> tuple[str, Any]:
    verdict = row.get("site_check_verdict")
    if verdict is None:
        return '<span class="na">–</span>', None
    reason = row.get("site_check_reason")
    text = _esc(site_summary(row))
    return (f'<span title="{_esc(reason)}">{text}</span>' if reason else text), verdict


def _num_cell(key: str, digits: int = 3) -> Callable[[Row], tuple[str, Any]]:
    def cell(row: Row) -> tuple[str, Any]:
        value = row.get(key)
        if value is None:
            return '<span class="na">–</span>', None
        low, high = row.get(f"{key}_low"), row.get(f"{key}_high")
        text = f"{value:.{digits}f}"
        mark = flag_mark(row) if key in FLAGGED_METRICS else ""
        if low is not None and high is not None:
            return f'<span title="95 % interval [{low:.3f}, {high:.3f}]">{text}</span>{mark}', value
        return text + mark, value

    return cell


def _ci_cell(key: str) -> Callable[[Row], tuple[str, Any]]:
    def cell(row: Row) -> tuple[str, Any]:
        value = row.get(key)
        if value is None:
            return '<span class="na">–</span>', None
        low, high = row.get(f"{key}_low"), row.get(f"{key}_high")
        interval = (
            f' <span class="ci">[{low:.2f}, {high:.2f}]</span>'
            if low is not None and high is not None
            else ""
        )
        mark = flag_mark(row) if key in FLAGGED_METRICS else ""
        return f"<strong>{value:.3f}</strong>{mark}{interval}", value

    return cell


def _sci(value: float) -> str:
    """Three significant digits (trailing zeros kept so columns align), whole numbers as such."""
    if float(value).is_integer() or abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 100:  # "#.3g" would print "280." here
        return f"{value:.1f}"
    return f"{value:#.3g}"


def _name_cell(row: Row) -> tuple[str, Any]:
    if row.get("_baseline"):
        return f'<span class="badge">baseline</span> {_esc(row["name"])}', row["name"]
    index = row["_index"]
    # On narrow screens the hook, architecture and width columns are hidden; this line carries them.
    ratio = row.get("expansion_ratio")
    facts = [row["hook"], row.get("arch_label") or "", f"×{ratio:g}" if ratio else ""]
    sub = " · ".join(_esc(f) for f in facts if f)
    return (
        f'<a class="sae-link" href="#drilldown" data-sae="{index}">{_breakable(row["name"])}</a>'
        f'<span class="sub">{sub}</span>',
        row["name"],
    )


def _breakable(text: str) -> str:
    """Escaped text that may wrap after ``_``, ``/``, ``.`` and ``-`` (long SAE ids wrap at their parts)."""
    return re.sub(r"([_/.\-])", r"\1<wbr>", _esc(text))


def _hook_cell(row: Row) -> tuple[str, Any]:
    layer = row.get("layer")
    rank = hook_kind_rank(row.get("hook_kind"))
    key = f"{row.get('model', '')}|{-1 if layer is None else layer:05d}|{rank[0]}{rank[1]}|{row['hook']}"
    return f"<code>{_esc(row['hook'])}</code>", key


def _width_cell(row: Row) -> tuple[str, Any]:
    ratio, d_sae = row.get("expansion_ratio"), row.get("d_sae")
    if ratio is None and d_sae is None:
        return '<span class="na">–</span>', None
    if ratio is None:
        return f"{d_sae:,}", d_sae
    title = f' title="{d_sae:,} latents"' if d_sae is not None else ""
    return f"<span{title}>×{ratio:g}</span>", ratio


def _no_active_cell(row: Row) -> tuple[str, Any]:
    value, n = row.get("n_pairs_no_active"), row.get("n_pairs")
    if value is None:
        return '<span class="na">–</span>', None
    title = f' title="{value / n:.1%} of {n:,} pairs"' if n else ""
    return f"<span{title}>{value}</span>{flag_mark(row)}", value


def _fvu_text(value: float) -> str:
    """The FVU, marked when above 1 (worse than predicting the mean activation)."""
    if not fvu_above_one(value):
        return _sci(value)
    return (
        f'{_sci(value)} <span class="flag" title="FVU above 1: worse than predicting the mean">&gt; 1!</span>'
    )


def _plain_num(key: str, fmt: Callable[[float], str] = _sci) -> Callable[[Row], tuple[str, Any]]:
    def cell(row: Row) -> tuple[str, Any]:
        value = row.get(key)
        return ('<span class="na">–</span>', None) if value is None else (fmt(value), value)

    return cell


def summary_columns(rows: Sequence[Row]) -> list[Column]:
    """The summary table's columns; optional ones only when some SAE has the value."""

    def present(key: str) -> bool:
        return any(r.get(key) is not None for r in rows)

    columns = [
        Column("SAE", "text", _name_cell, essential=True),
        Column("Architecture", "text", lambda r: (_esc(r.get("arch_label", "")), r.get("arch_label", ""))),
        Column("Hook", "text", _hook_cell),
        Column("Width", "num", _width_cell, "expansion ratio d_sae / d_in (hover for the number of latents)"),
    ]
    if present("k"):
        columns.append(Column("k", "num", _plain_num("k", lambda v: f"{v:g}"), "TopK / BatchTopK k"))
    columns += [
        Column(
            metric_label("specificity"),
            "num",
            _ci_cell("specificity"),
            "TN / (TN + FP) with its 95 % bootstrap interval",
            essential=True,
        ),
        Column(metric_label("recall"), "num", _num_cell("recall"), "TP / (TP + FN)", essential=True),
        Column(
            "Youden J",
            "num",
            _ci_cell("youden_j"),
            "recall + specificity − 1 with its 95 % bootstrap interval: 0 for any rule blind to the meaning, "
            "however specific; a specificity bought with recall does not raise it",
            essential=True,
        ),
        Column(metric_label("accuracy"), "num", _num_cell("accuracy"), "(TP + TN) / pairs"),
        Column(metric_label("f1"), "num", _num_cell("f1"), "2TP / (2TP + FP + FN)"),
        Column(
            "No-active pairs",
            "num",
            _no_active_cell,
            "pairs where a context has no active latent (predicted 'different')",
        ),
    ]
    if present("beats_random_on"):
        columns.append(
            Column(
                "Beats random",
                "text",
                lambda r: (_esc(r.get("beats_random_on") or "–"), r.get("beats_random_on") or ""),
                "where the SAE beats its random control: exact McNemar test (accuracy) and paired "
                "word-clustered bootstrap (J), Holm-adjusted p < 0.05",
            )
        )
    if present("dense_youden_j_difference"):
        columns.append(
            Column(
                "J − dense",
                "num",
                lambda r: (_esc(difference_cell(r)), r.get("dense_youden_j_difference")),
                "SAE J − dense cosine J on the same pairs, with the paired word-clustered 95 % interval; "
                "< / > dense: the dense baseline / the SAE is better (exact McNemar test of accuracy and "
                "paired bootstrap of J, Holm-adjusted p < 0.05). The dense threshold is never fitted on "
                "these pairs (dev split, or cross-validated)",
            )
        )
    if present("site_check_verdict"):
        columns.append(Column("Site", "text", _site_cell, SITE_TITLE))
    if len({r.get("n_pairs") for r in rows if not r.get("_baseline")}) > 1:
        columns.append(Column("Pairs", "num", _plain_num("n_pairs", lambda v: f"{v:,.0f}")))
    if present("jaccard_roc_auc"):
        columns.append(
            Column(
                metric_label("jaccard_roc_auc"),
                "num",
                _num_cell("jaccard_roc_auc"),
                "ROC AUC of the top-k latent Jaccard overlap",
            )
        )
    optional = (
        ("l0", "active latents per token (held-out corpus)"),
        ("fvu", "fraction of variance unexplained"),
        ("mse", "mean squared reconstruction error"),
        ("ce_loss_recovered", "share of the cross-entropy loss recovered with the SAE spliced in"),
    )
    for key, title in optional:
        if present(key) and not (key == "mse" and present("fvu")):
            fmt = _fvu_text if key == "fvu" else _sci
            columns.append(Column(metric_label(key), "num", _plain_num(key, fmt), title))
    shown = {"jaccard_roc_auc", *(key for key, _ in optional)}
    for extra in report_columns():
        if extra.row_key not in shown and present(extra.row_key):
            columns.append(Column(extra.spec.name, "num", _plain_num(extra.row_key), extra.title))
    return columns


def baseline_rows(rows: Sequence[Row]) -> list[Row]:
    """Rows for the dense baseline (one per hook) and the random SAE (one per hook and width), as baselines."""
    out: list[Row] = []
    seen: set[tuple[Any, ...]] = set()
    metrics = ("accuracy", "precision", "recall", "specificity", "f1", "youden_j", "n_pairs_no_active")
    for row in rows:
        key = (row["model"], row["dataset"], row["split"], row["hook"])
        if key not in seen and any(row.get(f"dense_{m}") is not None for m in metrics):
            seen.add(key)
            out.append(
                {
                    "name": "dense activations (cosine)",
                    "_baseline": "dense",
                    "arch_label": "–",
                    "hook": row["hook"],
                    "layer": row.get("layer"),
                    "hook_kind": row.get("hook_kind"),
                    "model": row["model"],
                    "n_pairs": row.get("n_pairs"),
                    **{m: row.get(f"dense_{m}") for m in metrics},
                }
            )
        random_key = (*key, row.get("d_sae"))
        if random_key not in seen and any(row.get(f"random_{m}") is not None for m in metrics):
            seen.add(random_key)
            width = f"{row['d_sae']:,} latents" if row.get("d_sae") else "same width"
            out.append(
                {
                    "name": f"random SAE ({width})",
                    "_baseline": "random",
                    "arch_label": "–",
                    "hook": row["hook"],
                    "layer": row.get("layer"),
                    "hook_kind": row.get("hook_kind"),
                    "model": row["model"],
                    "expansion_ratio": row.get("expansion_ratio"),
                    "d_sae": row.get("d_sae"),
                    "k": row.get("k"),
                    "n_pairs": row.get("n_pairs"),
                    **{m: row.get(f"random_{m}") for m in metrics},
                }
            )
    return out


def render_summary_table(
    rows: Sequence[Row], indices: Sequence[int] | None = None, table_id: str = "summary"
) -> str:
    """The sortable summary table (SAE rows, then baseline rows) as HTML.

    ``indices`` are the rows' positions among all the report's SAEs (what the drill-down links select);
    by default ``0, 1, ...``.
    """
    positions = range(len(rows)) if indices is None else indices
    sae_rows = [
        {**row, "_index": i, "arch_label": architecture_label(row.get("architecture"))}
        for i, row in zip(positions, rows, strict=True)
    ]
    all_rows = [
        {**row, "_mostly_no_active": mostly_no_active(row.get("n_pairs_no_active"), row.get("n_pairs"))}
        for row in sae_rows + baseline_rows(sae_rows)
    ]
    columns = summary_columns(sae_rows)
    head = "".join(
        f'<th scope="col" data-type="{c.kind}"'
        + ("" if c.essential else ' class="opt"')
        + (f' title="{_esc(c.title)}"' if c.title else "")
        + f">{_esc(c.label)}</th>"
        for c in columns
    )
    body_parts: list[str] = []
    for i, row in enumerate(all_rows):
        cells = []
        for column in columns:
            inner, sort_value = column.cell(row)
            value = (
                ""
                if sort_value is None
                else (repr(float(sort_value)) if column.kind == "num" else str(sort_value))
            )
            classes = ["num" if column.kind == "num" else ("name" if column.label == "SAE" else "")]
            classes += [] if column.essential else ["opt"]
            css = f' class="{" ".join(c for c in classes if c)}"' if any(classes) else ""
            cells.append(f'<td{css} data-v="{_esc(value)}">{inner}</td>')
        kind = row.get("_baseline")
        attrs = f' class="baseline baseline-{kind}"' if kind else ""
        body_parts.append(f'<tr data-i="{i}"{attrs}>{"".join(cells)}</tr>')
    return (
        f'<table id="{_esc(table_id)}" class="data sortable summary-table">'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(body_parts)}</tbody></table>"
    )
