"""The HTML report's within-lemma sense retrieval section: what ``pseval eval`` prints, one card per result.

Drawn only when some result holds the ``sense_retrieval`` category. Each card gives the macro anchor AUROC
and 1-NN sense accuracy of the SAE, its centred random control and the dense activation, each with its
lemma-clustered interval, then the paired differences, with a verdict that says "beats" only where the
interval of the difference excludes 0 (:func:`pseval.report.senses_table.verdict`).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from pseval._format import finite_number
from pseval.evals.schema import PSEvalResult
from pseval.report.senses_table import DIFFERENCE_LABELS, METRICS, SIMILARITY_LABELS, verdict

CATEGORY = "sense_retrieval"


def _esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _cell(row: dict[str, Any], name: str, signed: bool = False) -> str:
    """A value with its interval under it, or a dash."""
    value, low, high = (finite_number(row.get(f"{name}{s}")) for s in ("", "_low", "_high"))
    if value is None:
        return '<td class="num"><span class="na">–</span></td>'
    sign = "+" if signed else ""
    interval = (
        f' <span class="ci">[{low:{sign}.2f}, {high:{sign}.2f}]</span>'
        if low is not None and high is not None
        else ""
    )
    return f'<td class="num"><strong>{value:{sign}.3f}</strong>{interval}</td>'


def _verdict(row: dict[str, Any], name: str, control: str) -> str:
    """The verdict, under the difference's label (a column of its own would not fit a phone)."""
    text = verdict(row, name, control)
    css = "sr-beats" if text.startswith("beats") else ("sr-below" if "below" in text else "sr-none")
    return f'<span class="sr-verdict {css}">{_esc(text)}</span>'


def senses_card(result: PSEvalResult, name: str) -> str:
    """The card of one result: similarities, then paired differences with their verdicts."""
    row = result.eval_result_metrics.get(CATEGORY) or {}
    chance = finite_number(row.get("mean_chance"))
    head = "".join(
        f'<th scope="col" data-type="num">{label}</th>' for label in ("anchor AUROC", "1-NN accuracy")
    )
    similarity_rows = "".join(
        f'<tr><th scope="row">{_esc(label)}</th>{_cell(row, f"{key}_auroc")}{_cell(row, f"{key}_nn_accuracy")}</tr>'
        for key, label in SIMILARITY_LABELS
        if f"{key}_auroc" in row
    )
    difference_rows = "".join(
        f'<tr><th scope="row">{_esc(label)}{_verdict(row, key, control)}</th>'
        f"{_cell(row, f'{key}_auroc', signed=True)}{_cell(row, f'{key}_nn_accuracy', signed=True)}</tr>"
        for key, label, control in DIFFERENCE_LABELS
        if f"{key}_auroc" in row
    )
    facts = (
        f"<code>{_esc(result.hook_name)}</code> · {_esc(row.get('n_lemmas'))} lemmas, {_esc(row.get('n_anchors'))} "
        f"anchors · 1-NN chance {'–' if chance is None else f'{chance:.3f}'}"
    )
    tables = (
        f'<table class="data compact sr-scores"><thead><tr><th scope="col">similarity</th>{head}</tr></thead>'
        f"<tbody>{similarity_rows}</tbody></table>"
    )
    if difference_rows:
        tables += (
            '<table class="data compact sr-differences"><thead><tr><th scope="col">paired difference · verdict'
            f"</th>{head}</tr></thead><tbody>{difference_rows}</tbody></table>"
        )
    return f'<div class="card sr-card"><h3>{_esc(name)}</h3><p class="sub">{facts}</p>{tables}</div>'


def senses_section(results: Sequence[PSEvalResult], names: Sequence[str]) -> str:
    """The section's HTML, or ``""`` when no result holds the ``sense_retrieval`` category."""
    kept = [(r, n) for r, n in zip(results, names, strict=True) if r.eval_result_metrics.get(CATEGORY)]
    if not kept:
        return ""
    levels = {finite_number(r.eval_result_metrics[CATEGORY].get("confidence_level")) or 0.95 for r, _ in kept}
    level = f"{levels.pop():.0%}" if len(levels) == 1 else "bootstrap"
    metric_names = " and ".join(label for _, label in METRICS)
    return (
        '<section id="senses"><h2>Within-lemma sense retrieval</h2>'
        '<p class="help">Each <strong>anchor</strong> is a sentence of a word with another sentence of the same '
        "word in the same sense and one in a different sense. <strong>Anchor AUROC</strong> is the chance that "
        "the anchor is more similar to a same-sense sentence than to a different-sense one; <strong>1-NN "
        "accuracy</strong> is how often its most similar sentence has its sense (chance: the share of same-sense "
        "sentences among its candidates). Scores are means over lemmas of the means over their anchors, for "
        "the SAE's codes, a random SAE of the same width (centred, as the SAE's input is) and the raw hook "
        f"vectors. Brackets are {_esc(level)} intervals with lemmas resampled; the differences are paired (same "
        f"anchors, same resamples), and a verdict says <em>beats</em> only where the interval of the "
        f"difference lies above 0 ({_esc(metric_names)} each).</p>"
        f'<div class="sr-grid">{"".join(senses_card(r, n) for r, n in kept)}</div></section>'
    )


__all__ = ["senses_card", "senses_section"]
