"""The HTML report's word form × meaning section: one 2 × 2 table per representation, its effects, the figure.

Drawn only when some result holds the ``wordform`` category (``pseval eval --dataset wordnet-2x2``); the
representations are those of :func:`pseval.report.wordform_plot.wordform_series` (every SAE, then each
random SAE and dense baseline once), all of them, also when the figure shows only the first SAEs.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from pseval._format import finite_number
from pseval.evals.schema import PSEvalResult
from pseval.report.wordform_plot import WordformSeries, wordform_series

MEASURES: tuple[tuple[str, str, str], ...] = (
    ("share_same_top_latent", "same top", "share of pairs whose two contexts have the same top latent"),
    ("topk_overlap", "overlap", "mean Jaccard overlap of the two contexts' top-k latents"),
    ("code_cosine", "cosine", "mean cosine of the two contexts' codes"),
)
EFFECTS: tuple[tuple[str, str, str], ...] = (
    ("word_effect", "word effect", "same word − different word, at the same sense"),
    ("meaning_effect", "meaning effect", "same sense − different sense, for the same word"),
)
KIND_NOTES: dict[str, str] = {
    "sae": "SAE codes",
    "random_sae": "baseline: a random SAE of the same width and activation function",
    "dense": "baseline: the raw hook vectors (no sparse top latent, so no “same top” share)",
}


def _esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _bounds(row: dict[str, Any], measure: str) -> tuple[float | None, float | None]:
    return finite_number(row.get(f"{measure}_low")), finite_number(row.get(f"{measure}_high"))


def _cell(row: dict[str, Any] | None, level: float) -> str:
    """One cell of the 2 × 2 table: each measure's mean (interval on hover) and the number of pairs."""
    if not row or not row.get("n_pairs"):
        return '<td><span class="na">no pairs</span></td>'
    lines = []
    for measure, label, _ in MEASURES:
        value = finite_number(row.get(measure))
        low, high = _bounds(row, measure)
        text = '<span class="na">–</span>' if value is None else f"{value:.3f}"
        title = (
            f' title="{level * 100:g} % interval [{low:.3f}, {high:.3f}]"'
            if value is not None and low is not None and high is not None
            else ""
        )
        lines.append(f'<span class="wf-m">{label}</span> <span{title}>{text}</span>')
    lines.append(f'<span class="wf-m">n</span> {int(row["n_pairs"]):,}')
    return f'<td class="num">{"<br>".join(lines)}</td>'


def _effect(row: dict[str, Any] | None, measure: str) -> str:
    value = finite_number((row or {}).get(measure))
    if value is None:
        return '<td class="num"><span class="na">–</span></td>'
    low, high = _bounds(row or {}, measure)
    interval = (
        f'<span class="ci">[{low:+.2f}, {high:+.2f}]</span>' if low is not None and high is not None else ""
    )
    return f'<td class="num"><strong>{value:+.3f}</strong>{interval}</td>'


def _separation_cell(value_row: dict[str, Any] | None, signed: bool) -> str:
    value = finite_number((value_row or {}).get("value"))
    if value is None:
        return '<td class="num"><span class="na">–</span></td>'
    low, high = (finite_number((value_row or {}).get(end)) for end in ("low", "high"))
    sign = "+" if signed else ""
    interval = (
        f'<span class="ci">[{low:{sign}.2f}, {high:{sign}.2f}]</span>'
        if low is not None and high is not None
        else ""
    )
    return f'<td class="num"><strong>{value:{sign}.3f}</strong>{interval}</td>'


def separation_table(separation: dict[str, Any]) -> str:
    """The effects on base-rate-free scales: ROC-AUC of each measure and the log odds ratio of the same top
    latent (``""`` for results stored before they were recorded)."""
    effects = [separation.get(effect) or {} for effect, _, _ in EFFECTS]
    if not any(effects):
        return ""
    head = "".join(
        f'<th scope="col" data-type="num" title="{_esc(title)}">{label}</th>' for _, label, title in EFFECTS
    )
    rows = "".join(
        f'<tr><th scope="row" title="P(a pair of the higher cell scores above one of the lower cell): 0.5 is '
        f'no separation">AUC {label}</th>'
        + "".join(_separation_cell((e.get("auc") or {}).get(measure), signed=False) for e in effects)
        + "</tr>"
        for measure, label, _ in MEASURES
        if any((e.get("auc") or {}).get(measure) for e in effects)
    )
    if any(e.get("log_odds_ratio_same_top_latent") for e in effects):
        rows += (
            '<tr><th scope="row" title="log odds ratio of sharing the top latent, higher cell against lower: '
            '0 is no separation">log OR same top</th>'
            + "".join(_separation_cell(e.get("log_odds_ratio_same_top_latent"), signed=True) for e in effects)
            + "</tr>"
        )
    return (
        '<table class="data compact wf-separation"><thead><tr><th scope="col">separation</th>'
        f"{head}</tr></thead><tbody>{rows}</tbody></table>"
    )


def series_card(series: WordformSeries) -> str:
    """The 2 × 2 table, the synonym-substitution cell and the effects of one representation."""
    cells = series.scores.get("cells", {})
    level = series.confidence_level
    grid_rows = "".join(
        f'<tr><th scope="row">{label}</th>'
        + _cell(cells.get(f"{word}_same_sense"), level)
        + _cell(cells.get(f"{word}_different_sense"), level)
        + "</tr>"
        for word, label in (("same_word", "same word"), ("different_word", "different word"))
    )
    grid = (
        '<table class="data compact wf-cells"><thead><tr><th scope="col"></th>'
        '<th scope="col" data-type="num">same sense</th><th scope="col" data-type="num">different sense</th>'
        f"</tr></thead><tbody>{grid_rows}</tbody></table>"
    )
    substitution = ""
    sub = cells.get("synonym_substitution")
    if sub and sub.get("n_pairs"):
        parts = [
            f"{label} {value:.3f}"
            for measure, label, _ in MEASURES
            if (value := finite_number(sub.get(measure))) is not None
        ]
        substitution = (
            '<p class="wf-sub">synonym substitution (same sentence, the word replaced): '
            + _esc(" · ".join([*parts, f"n {int(sub['n_pairs']):,}"]))
            + "</p>"
        )
    effects = series.scores.get("effects", {})
    effect_head = "".join(
        f'<th scope="col" data-type="num" title="{_esc(title)}">{label}</th>' for _, label, title in EFFECTS
    )
    effect_rows = "".join(
        f'<tr><th scope="row" title="{_esc(title)}">{label}</th>'
        + "".join(_effect(effects.get(effect), measure) for effect, _, _ in EFFECTS)
        + "</tr>"
        for measure, label, title in MEASURES
    )
    effect_table = (
        f'<table class="data compact wf-effects"><thead><tr><th scope="col">effect on</th>{effect_head}'
        f"</tr></thead><tbody>{effect_rows}</tbody></table>"
    )
    where = f"<code>{_esc(series.hook)}</code> · {_esc(KIND_NOTES.get(series.kind, series.kind))}"
    kind = "" if series.kind == "sae" else " wf-baseline"
    return (
        f'<div class="card wf-card{kind}"><h3>{_esc(series.label)}</h3><p class="sub">{where}</p>'
        f"{grid}{substitution}{effect_table}{separation_table(series.scores.get('separation') or {})}</div>"
    )


def wordform_section(results: Sequence[PSEvalResult], figure_card: str = "") -> str:
    """The section's HTML, or ``""`` when no result holds the ``wordform`` category."""
    series = wordform_series(results)
    if not series:
        return ""
    levels = {s.confidence_level for s in series}
    level = f"{levels.pop() * 100:g} %" if len(levels) == 1 else "bootstrap"
    cards = "".join(series_card(s) for s in series)
    return (
        '<section id="wordform"><h2>Word form vs meaning (2 × 2)</h2>'
        '<p class="help">Each pair is two contexts of the WordNet word form × meaning design: the <strong>same'
        "</strong> or a <strong>different word</strong>, in the <strong>same</strong> or a <strong>different"
        " sense</strong>. Each cell gives how much the two contexts' codes overlap: the share of pairs with "
        "the same top latent, the mean top-k overlap and the mean cosine (hover a value for its interval). "
        "The <strong>word effect</strong> is same word − different word at the same sense; the "
        "<strong>meaning effect</strong> is same sense − different sense for the same word. Brackets are "
        f"{_esc(level)} bootstrap intervals. A representation that tracks meanings rather than word forms "
        "shows a meaning effect larger than its word effect. The <strong>separation</strong> rows give the same "
        "effects on scales that do not depend on how often the measure is high overall: the ROC-AUC of each "
        "measure (0.5: the two cells are not separated) and the log odds ratio of sharing the top latent (0: "
        "not separated), with DeLong and Woolf normal intervals.</p>"
        f'<div class="wf-grid">{cards}</div>{figure_card}</section>'
    )


__all__ = ["separation_table", "series_card", "wordform_section"]
