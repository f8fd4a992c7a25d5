"""Terminal views of one or two result files: breakdowns, a word's pairs, and a paired comparison.

Breakdowns carry 95% Wilson intervals computed from the pair rows (a group of a few pairs says little,
and the interval shows how little); a word's drill-down marks the word in each sentence and describes each
latent once, however many sentences it is the top latent of.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text
from scipy import stats

from pseval._format import format_number
from pseval.errors import DataError
from pseval.evals.schema import PairDetail, PSEvalResult

CONFIDENCE = 0.95


def wilson(successes: int, n: int) -> tuple[float | None, float | None, float | None]:
    """Proportion and its 95% Wilson score interval (``None`` for an empty group)."""
    if n == 0:
        return None, None, None
    ci = stats.binomtest(successes, n).proportion_ci(confidence_level=CONFIDENCE, method="wilson")
    return successes / n, float(ci.low), float(ci.high)


def _cell(value: float | None, low: float | None, high: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.2f} [{low:.2f}, {high:.2f}]"


def group_metrics(rows: Sequence[PairDetail]) -> dict[str, tuple[float | None, float | None, float | None]]:
    """Specificity (different-meaning pairs), recall (same-meaning pairs) and accuracy, each with its interval."""
    different = [r for r in rows if r.label == 0]
    same = [r for r in rows if r.label == 1]
    return {
        "specificity": wilson(sum(r.correct for r in different), len(different)),
        "recall": wilson(sum(r.correct for r in same), len(same)),
        "accuracy": wilson(sum(r.correct for r in rows), len(rows)),
    }


def _groups(rows: Sequence[PairDetail], key: Callable[[PairDetail], str]) -> dict[str, list[PairDetail]]:
    groups: dict[str, list[PairDetail]] = defaultdict(list)
    for row in rows:
        groups[key(row)].append(row)
    return groups


def breakdown_table(result: PSEvalResult, by: str, top: int = 25, width: int | None = None) -> Table:
    """Pairs and metrics per part of speech or per word (most pairs first), with 95% Wilson intervals.

    With ``width``, columns are left out (top latents, then accuracy) until the table fits.
    """
    details = result.eval_result_details
    if by == "pos":
        groups = sorted(_groups(details, lambda r: r.pos).items())
    else:
        groups = sorted(_groups(details, lambda r: r.word).items(), key=lambda kv: (-len(kv[1]), kv[0]))[:top]
    metrics = ["specificity", "recall", "accuracy"]
    latents_column = by == "word"
    while True:
        table = _breakdown(result, by, groups, metrics, latents_column)
        if width is None or _natural_width(table) <= width or len(metrics) == 2:
            return table
        if latents_column:
            latents_column = False
        else:
            metrics = metrics[:2]


def _natural_width(table: Table) -> int:
    console = Console(width=1_000_000, file=None)
    return console.measure(table).maximum


def _breakdown(
    result: PSEvalResult,
    by: str,
    groups: list[tuple[str, list[PairDetail]]],
    metrics: list[str],
    latents_column: bool,
) -> Table:
    table = Table(
        title=f"{result.sae_name}: by {'part of speech' if by == 'pos' else 'word'}",
        title_justify="left",
        caption="[ ] = 95% Wilson interval",
        caption_justify="left",
    )
    table.add_column(by, no_wrap=True)
    table.add_column("pairs", justify="right", no_wrap=True)
    for column in metrics:
        table.add_column(column, justify="right", no_wrap=True)
    if latents_column:
        table.add_column("top latents", overflow="fold")
    for name, rows in groups:
        values = group_metrics(rows)
        cells = [name, str(len(rows)), *(_cell(*values[m]) for m in metrics)]
        if latents_column:
            latents = sorted({lat for r in rows for lat in (r.latent_1, r.latent_2) if lat >= 0})
            cells.append(", ".join(map(str, latents[:6])) + (" …" if len(latents) > 6 else ""))
        table.add_row(*cells)
    return table


def frequency_table(result: PSEvalResult, path: str) -> Table:
    """The stored breakdown by the chosen latent's corpus firing frequency."""
    groups = (result.eval_result_unstructured or {}).get("by_frequency")
    if not groups:
        raise DataError(
            f"{path} has no frequency breakdown", "re-run `pseval eval` with --interpret-tokens 16384"
        )
    table = Table(title=f"{result.sae_name}: by firing frequency", title_justify="left")
    for column in ("frequency", "pairs", "specificity", "recall", "accuracy", "F1"):
        table.add_column(column, justify="left" if column == "frequency" else "right")
    for group, m in groups.items():
        table.add_row(
            group,
            str(m["n_pairs"]),
            *(format_number(m.get(k)) for k in ("specificity", "recall", "accuracy", "f1")),
        )
    return table


def marked(context: str | None, span: Sequence[int] | None, word: str, styled: bool = True) -> Text:
    """``context`` with the target marked: the recorded span, else the word's first match (any case).

    ``styled`` shows it in bold reverse video (terminals); otherwise it is wrapped in ``[[ ]]`` so the
    mark survives in a pipe, a log file or a terminal without colour.
    """
    if not context:
        return Text("(context not recorded)", style="dim")
    if span is not None and len(span) == 2 and 0 <= span[0] < span[1] <= len(context):
        start, end = int(span[0]), int(span[1])
    else:
        start = context.lower().find(word.lower())
        end = start + len(word)
    if start < 0:
        return Text(context)
    if not styled:
        return Text(f"{context[:start]}[[{context[start:end]}]]{context[end:]}")
    text = Text(context)
    text.stylize("bold reverse", start, end)
    return text


def print_word(result: PSEvalResult, word: str, console: Console, path: str) -> None:
    """Every pair of ``word`` (case-insensitive), then each top latent once: frequency, logit lens, contexts."""
    rows = [d for d in result.eval_result_details if d.word.lower() == word.lower()]
    if not rows:
        raise DataError(f"no pair of the word {word!r} in {path}", "pick a word listed by --by word")
    un = result.eval_result_unstructured or {}
    metrics = group_metrics(rows)
    console.print(
        Text.assemble(
            (f"{rows[0].word}", "bold"),
            f": {len(rows)} pairs · specificity {_cell(*metrics['specificity'])}"
            f" · recall {_cell(*metrics['recall'])}",
        )
    )
    latents: list[int] = []
    for d in rows:
        verdict = "correct" if d.correct else "wrong"
        meaning = "same meaning" if d.label == 1 else "different meanings"
        predicted = "same" if d.predicted_same else "different"
        console.print(f"\n[bold]{escape(d.id)}[/] · {meaning} · predicted {predicted} ({verdict})")
        for context, span, latent, act in (
            (d.context_1, d.span_1, d.latent_1, d.activation_1),
            (d.context_2, d.span_2, d.latent_2, d.activation_2),
        ):
            styled = console.is_terminal and not console.no_color
            console.print(Text("  ") + marked(context, span, d.word, styled))
            console.print(
                "    no active latent" if latent < 0 else f"    latent {latent} ({act:.2f})", highlight=False
            )
            if latent >= 0 and latent not in latents:
                latents.append(latent)
    lens, contexts, freq = (
        un.get("logit_lens", {}),
        un.get("top_contexts", {}),
        un.get("firing_frequency", {}),
    )
    if latents:
        console.print("\n[bold]Latents[/]")
    for latent in latents:
        key = str(latent)
        f = freq.get(key)
        console.print(
            f"latent {latent}" + (f": fires on {f:.2%} of corpus tokens" if f is not None else ""),
            highlight=False,
        )
        if key in lens:
            console.print("  logit lens: " + " · ".join(repr(t) for t in lens[key]), highlight=False)
        for c in contexts.get(key, [])[:3]:
            console.print(Text(f"  top context ({c['activation']:.2f}): {c['text']}"))


def print_comparison(out: dict[str, Any], console: Console, err_console: Console, as_json: bool) -> None:
    """A paired comparison (see :func:`pseval.evals.compare.compare_results`) as a table or JSON."""
    if out["same_result"]:
        err_console.print(
            f"[yellow]warning:[/] {escape(out['a']['file'])} and {escape(out['b']['file'])} hold the same "
            "result; every difference below is zero by construction",
            soft_wrap=True,
        )
    if as_json:
        console.print(json.dumps(out, indent=2), markup=False, highlight=False, soft_wrap=True)
        return
    for side in ("a", "b"):
        s = out[side]
        console.print(Text.assemble((f"{side.upper()}: ", "bold"), f"{s['sae']} · {s['hook']} · {s['file']}"))
    if out["n_pairs_a"] != out["n_shared_pairs"] or out["n_pairs_b"] != out["n_shared_pairs"]:
        console.print(
            f"only the {out['n_shared_pairs']} shared pairs are compared "
            f"(A has {out['n_pairs_a']}, B has {out['n_pairs_b']})"
        )
    table = Table(
        title=f"Paired comparison on {out['n_shared_pairs']} shared pairs (exact McNemar test)",
        title_justify="left",
        caption="only A / only B: pairs one side gets right and the other wrong (the test's discordant pairs)",
        caption_justify="left",
    )
    for column in ("metric", "pairs", "A", "B", "B − A", "only A", "only B", "p"):
        table.add_column(
            column, justify="left" if column == "metric" else "right", no_wrap=column != "metric"
        )
    for row in out["by_class"]:
        table.add_row(
            f"{row['metric']} ({row['pairs']})",
            str(row["n_pairs"]),
            f"{row['value_a']:.3f}",
            f"{row['value_b']:.3f}",
            f"{row['difference']:+.3f}",
            str(row["a_only_correct"]),
            str(row["b_only_correct"]),
            f"{row['p_value']:.3g}",
        )
    console.print(table)
    for row in out["by_class"]:
        console.print(row["verdict"], highlight=False, soft_wrap=True)
    if "youden_j" in out:  # a paired bootstrap, not a McNemar test: its own line
        console.print(out["youden_j"]["verdict"], highlight=False, soft_wrap=True)
