"""Result tables for the terminal and for other tools: rich tables, Markdown, CSV and JSON.

The terminal table never cuts an SAE name or a number: the full table is printed when it fits the
console, a compact one (the headline metric with its interval, the others without) when it does not, and
one block of lines per SAE when even that is too wide. Markdown, CSV and JSON always carry every column.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import Any, Literal

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from pseval._format import finite_number, format_number
from pseval.evals.categories import ReportColumn, SAEFacts, report_columns, report_values
from pseval.report import vs_dense
from pseval.report.fvu_flag import fvu_cell, fvu_notes
from pseval.report.no_active import flag, no_active_cell, no_active_fields, no_active_notes
from pseval.report.site_note import site_check_fields, site_notes

OutputFormat = Literal["table", "markdown", "csv", "json"]
OUTPUT_FORMATS: tuple[str, ...] = ("table", "markdown", "csv", "json")

CI_METRICS: tuple[str, ...] = ("specificity", "recall", "accuracy", "youden_j", "balanced_accuracy")
"""PS-Eval ratios carried with their bootstrap interval: the paper's headline (specificity), and Youden's J,
which a specificity bought with recall cannot raise."""

CAPTION = (
    "[ ] = 95% bootstrap interval; J = recall + specificity − 1 (0 = blind to meaning); "
    "> random = J above the random SAE's (paired, Holm p < 0.05)"
)


def youden_j_of(metrics: dict[str, Any]) -> float | None:
    """Youden's J as stored, or from recall and specificity (results written before J was stored)."""
    stored = finite_number(metrics.get("youden_j"))
    if stored is not None:
        return stored
    recall, specificity = finite_number(metrics.get("recall")), finite_number(metrics.get("specificity"))
    return None if recall is None or specificity is None else recall + specificity - 1.0


def _ci(m: dict[str, Any], name: str) -> tuple[float | None, float | None, float | None]:
    ci = m.get("ps_eval_ci", {})
    ps = m.get("ps_eval", {})
    value = youden_j_of(ps) if name == "youden_j" else finite_number(ps.get(name))
    if name == "balanced_accuracy" and value is None and youden_j_of(ps) is not None:
        value = (youden_j_of(ps) + 1.0) / 2.0  # type: ignore[operator]
    return value, finite_number(ci.get(f"{name}_low")), finite_number(ci.get(f"{name}_high"))


def beats_random(m: dict[str, Any]) -> str:
    """On which of J and accuracy the SAE beats its random control significantly ("" if neither or untested)."""
    vs = m.get("vs_random_sae") or {}
    return ", ".join(
        label for key, label in (("beats_on_youden_j", "J"), ("beats_on_accuracy", "acc.")) if vs.get(key)
    )


def _with_ci(value: float | None, low: float | None, high: float | None) -> str:
    if value is None:
        return "–"
    if low is None or high is None:
        return f"{value:.3f}"
    return f"{value:.3f} [{low:.2f}, {high:.2f}]"


def result_rows(results: Sequence[Any]) -> list[dict[str, Any]]:
    """One flat record per SAE (raw numbers, full names): what CSV and JSON print."""
    rows = []
    for r in results:
        m = r.eval_result_metrics
        facts = m.sae or SAEFacts()
        ps = m.get("ps_eval", {})
        row: dict[str, Any] = {
            "sae": r.sae_name,
            "hook": r.hook_name,
            "architecture": facts.architecture,
            "d_sae": facts.d_sae,
            "n_pairs": ps.get("n_pairs"),
        }
        for name in CI_METRICS:
            value, low, high = _ci(m, name)
            row[name], row[f"{name}_low"], row[f"{name}_high"] = value, low, high
        row["f1"] = finite_number(ps.get("f1"))
        row["n_pairs_no_active"] = ps.get("n_pairs_no_active", 0)
        row.update(no_active_fields(ps))
        row["random_youden_j"] = youden_j_of(m["baseline_random_sae"]) if "baseline_random_sae" in m else None
        row["beats_random_on"] = beats_random(m)
        row.update(vs_dense.vs_dense_fields(m))
        row.update(site_check_fields(m))
        std = m.get("standard")
        if std is not None:
            row["fvu"] = finite_number(std.get("fvu"))
            row["l0"] = finite_number(std.get("l0"))
            row["ce_loss_recovered"] = finite_number(std.get("ce_loss_recovered"))
        for key, value in report_values(m).items():
            row.setdefault(key, value)
        rows.append(row)
    return rows


def baseline_rows(results: Sequence[Any]) -> list[dict[str, Any]]:
    """Baselines, once per hook (dense cosine, MLP neurons) and once per hook and width (random SAE)."""
    rows: list[dict[str, Any]] = []
    seen: set[object] = set()

    def add(key: object, hook: str, name: str, d: dict[str, Any], auc: bool) -> None:
        if key in seen:
            return
        seen.add(key)
        row: dict[str, Any] = {"hook": hook, "baseline": name}
        for metric in ("specificity", "recall", "accuracy", "f1"):
            row[metric] = finite_number(d.get(metric))
        row["youden_j"] = youden_j_of(d)
        row["roc_auc"] = finite_number(d.get("roc_auc")) if auc else None
        rows.append(row)

    for r in results:
        m = r.eval_result_metrics
        hook = r.hook_name
        if "baseline_dense" in m:
            add((hook, "dense"), hook, "dense cosine", m["baseline_dense"], auc=True)
        if "baseline_neurons" in m:
            d = m["baseline_neurons"]
            add((hook, "neurons"), hook, f"MLP neurons ({d.get('n_neurons', '?')})", d, auc=False)
        width = (m.sae or SAEFacts()).d_sae
        if "baseline_random_sae" in m:
            add((hook, "random", width), hook, f"random SAE ({width})", m["baseline_random_sae"], auc=False)
        # Trained controls match one SAE's training config, so they are listed per SAE.
        for category, label in (
            ("baseline_frozen_decoder", "frozen random decoder"),
            ("baseline_frozen_encoder", "frozen random encoder"),
        ):
            if category in m:
                key = (hook, category, m[category].get("train_config_hash"))
                add(key, hook, f"{label} ({r.sae_name})", m[category], auc=False)
    return rows


def drop_lines(results: Sequence[Any]) -> list[str]:
    """How many pairs were read and dropped for which reason (once per distinct dataset filtering)."""
    lines: list[str] = []
    for r in results:
        stats = getattr(r, "dataset_stats", None) or {}
        if "n_raw" not in stats:
            continue
        dropped = {k: v for k, v in (stats.get("dropped") or {}).items() if v}
        kept = stats.get("kept") or {}
        n_kept = sum(int(v) for v in kept.values())
        config = getattr(r, "eval_config", None)
        where = f"{config.dataset} {config.split}" if config is not None else "dataset"
        reasons = ", ".join(f"{k} {v}" for k, v in dropped.items())
        line = (
            f"{where}: {stats['n_raw']} pairs read, "
            + (f"{sum(dropped.values())} dropped ({reasons})" if dropped else "none dropped")
            + f", {n_kept} scored"
        )
        if line not in lines:
            lines.append(line)
    return lines


# ---------------------------------------------------------------------------------------------------------
# Terminal (rich)
# ---------------------------------------------------------------------------------------------------------


def _num(value: Any, digits: int = 3) -> str:
    number = finite_number(value)
    return "–" if number is None else f"{number:.{digits}f}"


TABLE_HEAD = (
    "SAE",
    "hook",
    "arch",
    "width",
    "specificity",
    "recall",
    "J",
    "bal. acc.",
    "accuracy",
    "F1",
    "no-active",
)
"""Columns of the full and Markdown tables: specificity and J (Youden's) with their intervals (balanced
accuracy is (1 + J) / 2, its interval J's mapped the same way); the other intervals are in CSV and JSON."""


SHOWN_KEYS: frozenset[str] = frozenset(
    {*CI_METRICS, "f1", "n_pairs_no_active", "fvu", "l0", "ce_loss_recovered"}
)
"""Metrics the fixed layout shows; any other metric marked ``report`` gets a column after them."""


def extra_columns(rows: Sequence[dict[str, Any]]) -> list[ReportColumn]:
    """The registry's ``report`` metrics that some row holds and the fixed layout does not show."""
    return [
        column
        for column in report_columns()
        if column.row_key not in SHOWN_KEYS and any(column.row_key in r for r in rows)
    ]


def _extra_cells(r: dict[str, Any], extras: Sequence[ReportColumn]) -> list[str]:
    return [column.spec.format_value(r.get(column.row_key)) for column in extras]


def _full_cells(r: dict[str, Any], sae: str, hook: str) -> list[str]:
    return [
        sae,
        hook,
        str(r["architecture"] or ""),
        str(r["d_sae"] or ""),
        _with_ci(r["specificity"], r["specificity_low"], r["specificity_high"]) + flag(r),
        _num(r["recall"]) + flag(r),
        _with_ci(r["youden_j"], r["youden_j_low"], r["youden_j_high"]),
        _num(r["balanced_accuracy"]),  # = (1 + J) / 2: its interval is J's, mapped
        _num(r["accuracy"]) + flag(r),
        _num(r["f1"]),
        no_active_cell(r),
    ]


def _stacked_ci(value: float | None, low: float | None, high: float | None) -> Text:
    """A value over its interval (and nothing more), so a column stays narrow."""
    text = Text("–" if value is None else f"{value:.3f}")
    if value is not None and low is not None and high is not None:
        text.append(f"\n[{low:.2f}, {high:.2f}]")
    return text


def full_table(rows: Sequence[dict[str, Any]], title: str) -> Table:
    """Every column: name, hook, architecture, width, the metrics with intervals, standard metrics."""
    table = Table(title=title, title_justify="left")
    has_std = any("fvu" in r for r in rows)
    extras = extra_columns(rows)
    columns = [*TABLE_HEAD, "> random"]
    with_dense = vs_dense.has_vs_dense(list(rows))
    if with_dense:
        columns.append("J − dense")
        table.caption, table.caption_justify = vs_dense.VS_DENSE_CAPTION, "left"
    if has_std:
        columns += ["FVU", "L0", "CE rec."]
    columns += [column.spec.name for column in extras]
    for column in columns:
        left = column in ("SAE", "hook", "arch", "> random")
        table.add_column(column, justify="left" if left else "right", no_wrap=not left, overflow="fold")
    for r in rows:
        cells = [*_full_cells(r, r["sae"], r["hook"]), r["beats_random_on"] or "–"]
        if with_dense:
            cells.append(vs_dense.difference_cell(r))
        if has_std:
            cells += [fvu_cell(r.get("fvu")), _num(r.get("l0"), 1), _num(r.get("ce_loss_recovered"))]
        table.add_row(*cells, *_extra_cells(r, extras))
    return table


def compact_table(rows: Sequence[dict[str, Any]], title: str, balanced: bool = True) -> Table:
    """Narrow terminals: the name (hook, architecture and width below it), then specificity, recall, Youden's J
    and (``balanced``) balanced accuracy, each value over its interval."""
    caption = CAPTION if balanced else CAPTION + "; b.a. = balanced accuracy = (1 + J) / 2"
    if vs_dense.has_vs_dense(list(rows)):
        caption += "; " + vs_dense.VS_DENSE_CAPTION
    table = Table(title=title, title_justify="left", caption=caption, caption_justify="left")
    table.add_column("SAE", overflow="fold")
    table.add_column("specificity", justify="right", no_wrap=True)
    table.add_column("recall", justify="right", no_wrap=True)
    table.add_column("J", justify="right", no_wrap=True)
    if balanced:
        table.add_column("bal. acc.", justify="right", no_wrap=True)
    for r in rows:
        name = Text(r["sae"])
        name.append(f"\n{r['hook']} · {r['architecture'] or '?'} · {r['d_sae'] or '?'}", style="dim")
        specificity = _stacked_ci(r["specificity"], r["specificity_low"], r["specificity_high"])
        specificity.append(flag(r))
        j = _stacked_ci(r["youden_j"], r["youden_j_low"], r["youden_j_high"])
        if not balanced:  # the column is dropped first: the value stays readable under J
            j.append(f"\nb.a. {_num(r['balanced_accuracy'])}")
        if "J" in r["beats_random_on"].split(", "):
            j.append("\n> random")
        if vs_dense.mark(r):
            j.append(f"\n{vs_dense.mark(r)}")
        cells: list[RenderableType] = [name, specificity, _num(r["recall"]) + flag(r), j]
        if balanced:
            ba = ("balanced_accuracy", "balanced_accuracy_low", "balanced_accuracy_high")
            cells.append(_stacked_ci(*(r[key] for key in ba)))
        table.add_row(*cells)
    return table


def stacked(rows: Sequence[dict[str, Any]], title: str) -> Group:
    """Very narrow terminals: a few short lines per SAE."""
    parts: list[RenderableType] = [Text(title, style="italic")]
    for r in rows:
        ci = {name: _with_ci(r[name], r[f"{name}_low"], r[f"{name}_high"]) for name in CI_METRICS}
        parts.append(Text(r["sae"], style="bold", overflow="fold"))
        parts.append(Text(f"  specificity {ci['specificity']}{flag(r)}", overflow="fold"))
        parts.append(Text(f"  recall {ci['recall']} · accuracy {ci['accuracy']}", overflow="fold"))
        beats = f" · beats random on {r['beats_random_on']}" if r["beats_random_on"] else ""
        parts.append(
            Text(f"  J {ci['youden_j']} · random J {_num(r['random_youden_j'])}{beats}", overflow="fold")
        )
        parts.append(Text(f"  balanced accuracy {ci['balanced_accuracy']}", overflow="fold"))
        dense_line = vs_dense.stacked_line(r)
        if dense_line is not None:
            parts.append(Text(dense_line, overflow="fold"))
        parts.append(
            Text(
                f"  F1 {_num(r['f1'])} · no active latent: {no_active_cell(r)} · "
                f"{r['hook']} · {r['architecture'] or '?'} · {r['d_sae'] or '?'}",
                overflow="fold",
            )
        )
        if "fvu" in r:
            parts.append(
                Text(
                    f"  FVU {fvu_cell(r['fvu'])} · L0 {_num(r['l0'], 1)} · CE rec. {_num(r['ce_loss_recovered'])}"
                )
            )
    return Group(*parts)


def _measure(console: Console, renderable: RenderableType) -> tuple[int, int]:
    """Minimum and natural width of ``renderable``, not clamped to the console (as rich's own measure is)."""
    measured = console.measure(renderable, options=console.options.update_width(1_000_000))
    return measured.minimum, measured.maximum


def results_renderable(results: Sequence[Any], console: Console, title: str = "PS-Eval") -> RenderableType:
    """The widest layout that fits ``console`` without cutting a name or a number."""
    rows = result_rows(results)
    table = full_table(rows, title)
    if _measure(console, table)[1] <= console.width:
        return table
    # Rich shrinks a table down to its columns' minimum widths before it cuts anything; the name column's
    # minimum is its longest name (names have no spaces), so a compact table whose minimum fits keeps them.
    # Balanced accuracy is (1 + J) / 2: it is the column dropped first.
    for balanced in (True, False):
        compact = compact_table(rows, title, balanced)
        if _measure(console, compact)[0] <= console.width and _keeps_names(console, compact, rows):
            return compact
    return stacked(rows, title)


def _keeps_names(console: Console, table: Table, rows: Sequence[dict[str, Any]]) -> bool:
    """Whether ``table`` rendered at ``console``'s width shows every SAE name on one line, uncut."""
    probe = Console(width=console.width, file=io.StringIO(), color_system=None, legacy_windows=False)
    with probe.capture() as captured:
        probe.print(table)
    lines = captured.get().splitlines()
    return all(any(r["sae"] in line for line in lines) for r in rows)


BASELINE_HEAD = ("specificity", "recall", "J", "accuracy", "F1")
BASELINE_KEYS = ("specificity", "recall", "youden_j", "accuracy", "f1")


def baselines_table(results: Sequence[Any], console: Console | None = None) -> RenderableType | None:
    """Baselines per hook (and per width for the random SAE), or ``None`` when there are none.

    With ``console``, the widest layout that fits it: the full table, then one without the hook column
    (the hook below each baseline's name, no ROC-AUC), then plain lines.
    """
    rows = baseline_rows(results)
    if not rows:
        return None
    table = Table(title="Baselines", title_justify="left")
    for column in ("hook", "baseline", *BASELINE_HEAD, "ROC-AUC"):
        left = column in ("hook", "baseline")
        table.add_column(column, justify="left" if left else "right", overflow="fold", no_wrap=not left)
    for r in rows:
        table.add_row(r["hook"], r["baseline"], *(_num(r[k]) for k in (*BASELINE_KEYS, "roc_auc")))
    if console is None or _measure(console, table)[1] <= console.width:
        return table
    compact = Table(title="Baselines", title_justify="left")
    compact.add_column("baseline", overflow="fold")
    for column in ("specificity", "recall", "J", "acc.", "F1"):
        compact.add_column(column, justify="right", no_wrap=True)
    for r in rows:
        name = Text(r["baseline"], overflow="fold")
        name.append(f"\n{r['hook']}", style="dim")
        compact.add_row(name, *(_num(r[k]) for k in BASELINE_KEYS))
    if _measure(console, compact)[0] <= console.width:
        return compact
    lines: list[RenderableType] = [Text("Baselines", style="italic")]
    for r in rows:
        lines.append(Text(f"{r['hook']} · {r['baseline']}", style="bold", overflow="fold"))
        lines.append(
            Text(
                f"  specificity {_num(r['specificity'])} · recall {_num(r['recall'])} · "
                f"J {_num(r['youden_j'])} · accuracy {_num(r['accuracy'])} · F1 {_num(r['f1'])}",
                overflow="fold",
            )
        )
    return Group(*lines)


def dataset_table(tokenizer: Any, model: str, name: str, balance: bool, seed: int, policy: str) -> Table:
    """Pairs per split of a dataset for one tokenizer: read, dropped (by reason), kept per label.

    A split left empty shows its reason in the table; a dataset that cannot be read (unknown, missing,
    malformed) or that has no pair in any split raises DataError instead, so the command fails.
    """
    from pseval.data.datasets import check_dataset, load_dataset
    from pseval.errors import PsevalError

    check_dataset(name)
    errors: list[PsevalError] = []

    multi = policy != "drop"
    table = Table(title=f"{name} pairs for {model} (' ' + word must be one token)", title_justify="left")
    columns = ["split", "raw", "dropped", "different (0)", "same (1)", "kept"]
    for column in [*columns, *(["single + multi-token"] if multi else [])]:
        table.add_column(column, justify="left" if column in ("split", "dropped") else "right")
    for split in ("train", "dev", "test"):
        try:
            ds = load_dataset(
                tokenizer,
                name=name,
                split=split,
                balance=balance,
                seed=seed,
                multi_token=policy,  # type: ignore[arg-type]  # checked by check_multi_token
            )
        except PsevalError as exc:
            errors.append(exc)
            table.add_row(split, "–", str(exc), "–", "–", "0", *(["–"] if multi else []))
            continue
        st = ds.stats
        before = st.kept_before_balance
        by_count = st.kept_by_token_count
        table.add_row(
            split,
            str(st.n_raw),
            ", ".join(f"{k}: {v}" for k, v in st.dropped.items() if v) or "none",
            f"{st.kept.get(0, 0)} (of {before.get(0, 0)})",
            f"{st.kept.get(1, 0)} (of {before.get(1, 0)})",
            str(len(ds)),
            *([f"{by_count.get('single', 0)} + {by_count.get('multi', 0)}"] if multi else []),
        )
    if len(errors) == table.row_count:
        raise errors[-1]  # no split has a pair: the test split's reason and fix
    return table


# ---------------------------------------------------------------------------------------------------------
# Text formats
# ---------------------------------------------------------------------------------------------------------


def _markdown(headers: Sequence[str], body: Sequence[Sequence[str]]) -> str:
    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    return "\n".join([line(headers), "|" + "|".join("---" for _ in headers) + "|", *map(line, body)])


def markdown_tables(results: Sequence[Any], title: str) -> str:
    """The result table (and baselines) as GitHub-flavoured Markdown."""
    rows = result_rows(results)
    has_std = any("fvu" in r for r in rows)
    extras = extra_columns(rows)
    headers = [*TABLE_HEAD, "> random"]
    with_dense = vs_dense.has_vs_dense(rows)
    if with_dense:
        headers.append("J − dense")
    if has_std:
        headers += ["FVU", "L0", "CE rec."]
    headers += [column.spec.name for column in extras]
    body = []
    for r in rows:
        cells = [*_full_cells(r, f"`{r['sae']}`", f"`{r['hook']}`"), r["beats_random_on"] or "–"]
        if with_dense:
            cells.append(vs_dense.difference_cell(r))
        if has_std:
            cells += [fvu_cell(r.get("fvu")), _num(r.get("l0"), 1), _num(r.get("ce_loss_recovered"))]
        body.append([*cells, *_extra_cells(r, extras)])
    parts = [f"**{title}**", "", _markdown(headers, body)]
    if with_dense:
        parts += ["", vs_dense.VS_DENSE_CAPTION]
    notes = no_active_notes(rows) + fvu_notes(rows) + site_notes(rows)
    if notes:
        parts += ["", *(f"{line}  " for line in notes)]
    base = baseline_rows(results)
    if base:
        parts += ["", "**Baselines**", ""]
        parts.append(
            _markdown(
                ["hook", "baseline", *BASELINE_HEAD, "ROC-AUC"],
                [
                    [f"`{b['hook']}`", b["baseline"], *(_num(b[k]) for k in (*BASELINE_KEYS, "roc_auc"))]
                    for b in base
                ],
            )
        )
    drops = drop_lines(results)
    if drops:
        parts += ["", *(f"{line}  " for line in drops)]
    return "\n".join(parts) + "\n"


def csv_table(results: Sequence[Any]) -> str:
    """One CSV row per SAE with raw numbers (intervals in ``*_low``/``*_high`` columns)."""
    rows = result_rows(results)
    fields: list[str] = []
    for r in rows:
        fields += [k for k in r if k not in fields]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in fields})
    return buffer.getvalue()


def json_tables(results: Sequence[Any]) -> str:
    """Results, baselines and dataset filtering counts as one JSON object."""
    stats = []
    for r in results:
        s = getattr(r, "dataset_stats", None) or {}
        if s and s not in stats:
            stats.append(s)
    return json.dumps(
        {"results": result_rows(results), "baselines": baseline_rows(results), "dataset_stats": stats},
        indent=2,
    )


def print_results(
    results: Sequence[Any], console: Console, title: str, fmt: str = "table", baselines: bool = True
) -> None:
    """Print an evaluation's results in ``fmt``: table (rich), markdown, csv or json."""
    if fmt == "json":
        console.print_json(json_tables(results)) if console.is_terminal else _plain(
            console, json_tables(results)
        )
        return
    if fmt == "csv":
        _plain(console, csv_table(results))
        return
    if fmt == "markdown":
        _plain(console, markdown_tables(results, title))
        return
    console.print(results_renderable(results, console, title))
    rows = result_rows(results)
    for line in no_active_notes(rows) + fvu_notes(rows) + site_notes(rows):
        console.print(Text(line, overflow="fold"), highlight=False)
    base = baselines_table(results, console) if baselines else None
    if base is not None:
        console.print(base)
    for line in drop_lines(results):
        console.print(Text(line, overflow="fold"), highlight=False)


def _plain(console: Console, text: str) -> None:
    """Machine-readable text: no markup, no highlighting, no wrapping."""
    console.print(text.rstrip("\n"), markup=False, highlight=False, soft_wrap=True, emoji=False)


__all__ = [
    "OUTPUT_FORMATS",
    "baseline_rows",
    "baselines_table",
    "csv_table",
    "drop_lines",
    "format_number",
    "json_tables",
    "markdown_tables",
    "print_results",
    "result_rows",
    "results_renderable",
]
