"""One self-contained HTML report of a results folder: it opens offline, from a mail attachment or a USB stick.

Nothing is fetched: CSS and JavaScript are inlined from ``pseval/resources/report/``, figures are embedded
as SVG data URIs, and per-pair data travels as one JSON block (pair texts once, per SAE only the
columns that differ), with ``<``, ``>`` and ``&`` escaped so no string can close the script element.
Server-side text goes through :func:`html.escape`; the script only ever sets ``textContent``.
The output has no timestamp, so the same folder always gives the same file.
"""

from __future__ import annotations

import base64
import html
import json
import re
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from pseval._format import finite_number
from pseval._io import write_text_atomic
from pseval.evals.categories import SAEFacts
from pseval.evals.schema import PSEvalResult
from pseval.report.figure_style import FigureSpec
from pseval.report.load import (
    ResultGroup,
    architecture_label,
    describe,
    display_names,
    group_results,
    load_results,
    summary_table,
)
from pseval.report.plots import build_figures, figure_bytes, summary_csv
from pseval.report.reliability import reliability_section
from pseval.report.senses_html import senses_section
from pseval.report.summary_html import baseline_rows, flag_notes_html, render_summary_table
from pseval.report.wordform_html import wordform_section
from pseval.report.wordform_plot import FIGURE_NAME as WORDFORM_FIGURE

Row = dict[str, Any]

MAX_DATA_BYTES = 3_500_000
"""Budget of the embedded per-pair JSON; above it top contexts, then logit-lens tokens, are trimmed."""

FIGURE_PX_PER_INCH = 110
"""Display scale of the embedded figures (their fonts then read like the page's small print)."""
TOP_CONTEXTS_PER_LATENT = 3
TOP_CONTEXT_CHARS = 240
LOGIT_LENS_TOKENS = 8


def _resource(name: str) -> str:
    return (resources.files("pseval") / "resources" / "report" / name).read_text(encoding="utf-8")


def _esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def embed_json(obj: Any) -> str:
    """JSON that is safe inside ``<script type="application/json">`` (no ``</script>``, no ``<!--``)."""
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


# ---------------------------------------------------------------------------------------------------------
# Per-pair data for the drill-down
# ---------------------------------------------------------------------------------------------------------


def _span(value: Any) -> list[int] | None:
    """A ``[start, end]`` character span from a list, tuple or ``{"start", "end"}`` mapping."""
    if isinstance(value, dict):
        value = [value.get("start"), value.get("end")]
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, int) for v in value):
        start, end = int(value[0]), int(value[1])
        if 0 <= start < end:
            return [start, end]
    return None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _pair_extras(detail: Any) -> dict[str, Any]:
    """A pair's contexts and spans: declared fields of PairDetail; older files carried them as extras."""
    return {**(detail.model_extra or {}), **{
        f: getattr(detail, f) for f in ("context_1", "context_2", "span_1", "span_2")
        if getattr(detail, f, None) is not None
    }}  # fmt: skip


def _pair_position(
    pairs: dict[str, list[Any]],
    pair_index: dict[tuple[str, str, str], int],
    key: tuple[str, str, str],
    detail: Any,
) -> int:
    """The pair's row in the shared pair table, added on first sight; a later result fills what it lacked."""
    extra = _pair_extras(detail)
    index = pair_index.get(key)
    if index is None:
        index = pair_index[key] = len(pairs["id"])
        pairs["id"].append(detail.id)
        pairs["word"].append(detail.word)
        pairs["pos"].append(detail.pos)
        pairs["label"].append(int(detail.label))
        for short, field in (("c1", "context_1"), ("c2", "context_2")):
            pairs[short].append(_text(extra.get(field)))
        for short, field in (("s1", "span_1"), ("s2", "span_2")):
            pairs[short].append(_span(extra.get(field)))
        return index
    for short, field in (("c1", "context_1"), ("c2", "context_2")):
        if pairs[short][index] is None and _text(extra.get(field)):
            pairs[short][index] = extra[field]
    for short, field in (("s1", "span_1"), ("s2", "span_2")):
        if pairs[short][index] is None:
            pairs[short][index] = _span(extra.get(field))
    return index


def _logit_lens_of(unstructured: dict[str, Any], used: set[str]) -> dict[str, list[str]]:
    """The logit lens of the latents the pairs use, each cut to LOGIT_LENS_TOKENS tokens."""
    lens_raw = unstructured.get("logit_lens") or {}
    return {
        lat: [str(t) for t in tokens[:LOGIT_LENS_TOKENS]]
        for lat, tokens in sorted(lens_raw.items())
        if lat in used and isinstance(tokens, list)
    }


def _top_contexts_of(unstructured: dict[str, Any], used: set[str]) -> dict[str, list[list[Any]]]:
    """The top corpus contexts of the latents the pairs use: [text (cut), activation] per context."""
    contexts_raw = unstructured.get("top_contexts") or {}
    contexts: dict[str, list[list[Any]]] = {}
    for lat, items in sorted(contexts_raw.items()) if isinstance(contexts_raw, dict) else []:
        if lat not in used or not isinstance(items, list):
            continue
        kept = []
        for item in items[:TOP_CONTEXTS_PER_LATENT]:
            if isinstance(item, dict) and isinstance(item.get("text"), str):
                text = item["text"]
                if len(text) > TOP_CONTEXT_CHARS:
                    text = text[: TOP_CONTEXT_CHARS - 1] + "…"
                activation = finite_number(item.get("activation"))
                kept.append([text, None if activation is None else round(activation, 3)])
        if kept:
            contexts[lat] = kept
    return contexts


def report_data(results: Sequence[PSEvalResult], names: Sequence[str]) -> dict[str, Any]:
    """The drill-down's data: a shared pair table and, per SAE, its latents, activations and interpretations."""
    pair_index: dict[tuple[str, str, str], int] = {}
    pairs: dict[str, list[Any]] = {k: [] for k in ("id", "word", "pos", "label", "c1", "c2", "s1", "s2")}
    saes: list[dict[str, Any]] = []
    for result, name in zip(results, names, strict=True):
        key_prefix = (result.eval_config.dataset, result.eval_config.split)
        details = result.eval_result_details
        indices = [_pair_position(pairs, pair_index, (*key_prefix, d.id), d) for d in details]
        l1 = [int(d.latent_1) for d in details]
        l2 = [int(d.latent_2) for d in details]
        used = {str(v) for v in l1 + l2 if v >= 0}
        unstructured = result.eval_result_unstructured or {}
        start = indices[0] if indices else 0
        sae: dict[str, Any] = {
            "name": name,
            "hook": result.hook_name,
            "arch": architecture_label((result.eval_result_metrics.sae or SAEFacts()).architecture),
            "n": len(indices),
            "l1": l1,
            "a1": [round(finite_number(d.activation_1) or 0.0, 3) for d in details],
            "l2": l2,
            "a2": [round(finite_number(d.activation_2) or 0.0, 3) for d in details],
            "same": "".join("1" if d.predicted_same else "0" for d in details),
            "lens": _logit_lens_of(unstructured, used),
            "ctx": _top_contexts_of(unstructured, used),
        }
        if indices == list(range(start, start + len(indices))):
            sae["pstart"] = start
        else:
            sae["pidx"] = indices
        saes.append(sae)
    return {"pairs": pairs, "saes": saes, "notes": []}


def fit_budget(data: dict[str, Any], budget: int = MAX_DATA_BYTES) -> str:
    """Embedded JSON within ``budget`` bytes: drop top contexts, then shorten the logit lens, if needed."""
    text = embed_json(data)
    if len(text.encode()) <= budget:
        return text
    if any(sae["ctx"] for sae in data["saes"]):
        for sae in data["saes"]:
            sae["ctx"] = {}
        data["notes"].append(
            "Top contexts were left out to keep this file small; they are in the JSON results."
        )
        text = embed_json(data)
    if len(text.encode()) > budget:
        for sae in data["saes"]:
            sae["lens"] = {lat: tokens[:3] for lat, tokens in sae["lens"].items()}
        data["notes"].append("Logit-lens lists were cut to 3 tokens to keep this file small.")
        text = embed_json(data)
    return text


# ---------------------------------------------------------------------------------------------------------
# The page
# ---------------------------------------------------------------------------------------------------------


def _join(values: Sequence[Any]) -> str:
    return ", ".join(str(v) for v in values) if values else "–"


def figure_card(spec: FigureSpec, id_prefix: str = "") -> str:
    """A figure as an embedded SVG with its title and caption."""
    svg = base64.b64encode(figure_bytes(spec.figure, "svg")).decode("ascii")
    width_px = round(float(spec.figure.get_size_inches()[0]) * FIGURE_PX_PER_INCH)
    return (
        f'<figure class="card figure" id="fig-{_esc(id_prefix + spec.name)}">'
        f"<h3>{_esc(spec.title)}</h3>"
        f'<img alt="{_esc(spec.title)}" style="width: min(100%, {width_px}px)" '
        f'src="data:image/svg+xml;base64,{svg}">'
        f"<figcaption>{_esc(spec.caption)}</figcaption></figure>"
    )


def _facts_html(info: dict[str, Any], groups: Sequence[ResultGroup]) -> str:
    pairs = info["n_pairs"]
    pairs_text = f"{pairs[0]:,}" if len(pairs) == 1 else (f"{min(pairs):,}–{max(pairs):,}" if pairs else "–")
    facts = [
        ("Model", _join(info["models"])),
        ("Dataset", _join(info["datasets"])),
        ("Split", _join(info["splits"])),
        ("Pairs", pairs_text),
        ("SAEs", str(info["n_saes"])),
        ("pseval", _join(info["pseval_versions"])),
    ]
    if len(groups) > 1:
        facts.append(("Compared within", f"{len(groups)} groups of the same pairs"))
    return "".join(f"<div><dt>{_esc(k)}</dt><dd>{_esc(v)}</dd></div>" for k, v in facts)


def _group_heading(group: ResultGroup) -> str:
    return f'<h3 class="group-title" id="group-{_esc(group.slug)}">{_esc(group.title)}</h3>'


def _tables_html(results: Sequence[PSEvalResult], rows: Sequence[Row], groups: Sequence[ResultGroup]) -> str:
    """One summary table, or with several groups one titled table per group (rows keep their SAE index).

    Under each table, one line per SAE or baseline flagged for having no active latent in most pairs.
    """
    if len(groups) == 1:
        notes = flag_notes_html([*rows, *baseline_rows(rows)])
        return f'<div class="table-wrap">{render_summary_table(rows)}</div>{notes}'
    position = {id(result): i for i, result in enumerate(results)}
    parts = [
        '<p class="help group-note">These results were scored on different pairs (dataset, split or pair '
        "count), so each group has its own table and figures: compare SAEs within a group only.</p>"
    ]
    for group in groups:
        indices = [position[id(result)] for result in group.results]
        group_rows = [rows[i] for i in indices]
        table = render_summary_table(group_rows, indices, f"summary-{group.slug}")
        notes = flag_notes_html([*group_rows, *baseline_rows(group_rows)])
        parts.append(f'{_group_heading(group)}<div class="table-wrap">{table}</div>{notes}')
    return "".join(parts)


def _figures_html(
    results: Sequence[PSEvalResult], rows: Sequence[Row], groups: Sequence[ResultGroup]
) -> tuple[str, str]:
    """The figures section and the word form figure's card(s), drawn per group of comparable results."""
    cards: list[str] = []
    wordform_cards: list[str] = []
    for group in groups:
        group_rows = rows if len(groups) == 1 else summary_table(group.results)
        prefix = "" if len(groups) == 1 else f"{group.slug}-"
        specs = build_figures(group.results, group_rows)
        # The word form figure goes into its own section, beside its tables.
        wordform_cards += [figure_card(spec, prefix) for spec in specs if spec.name == WORDFORM_FIGURE]
        group_cards = [figure_card(spec, prefix) for spec in specs if spec.name != WORDFORM_FIGURE]
        if group_cards and len(groups) > 1:
            group_cards.insert(0, _group_heading(group))
        cards += group_cards
    if not cards:
        return "", "".join(wordform_cards)
    return '<section id="figures"><h2>Figures</h2>' + "".join(cards) + "</section>", "".join(wordform_cards)


def render_report(results: Sequence[PSEvalResult], with_figures: bool = True) -> str:
    """The whole HTML page for ``results`` (already loaded and sorted).

    Results scored on different pairs (:func:`pseval.report.load.group_results`) get one titled table and
    one set of figures per group; the drill-down and the CSV cover every SAE.
    """
    rows = summary_table(results)
    names = display_names(results)
    info = describe(results)
    groups = group_results(results)
    data_json = fit_budget(report_data(results, names))
    figures_html, wordform_cards = _figures_html(results, rows, groups) if with_figures else ("", "")

    baselines = baseline_rows(rows)
    toggles = []
    if any(b["_baseline"] == "dense" for b in baselines):
        toggles.append(
            '<label><input type="checkbox" id="show-dense" checked> dense-activation baselines</label>'
        )
    n_random = sum(1 for b in baselines if b["_baseline"] == "random")
    if n_random:
        checked = " checked" if n_random <= 8 else ""
        toggles.append(
            f'<label><input type="checkbox" id="show-random"{checked}> random-SAE baselines</label>'
        )
    csv_b64 = base64.b64encode(summary_csv(rows).encode("utf-8")).decode("ascii")
    title = f"PS-Eval report · {_join(info['models'])}"
    page = _resource("report.html")
    replacements = {
        "__TITLE__": _esc(title),
        "__CSS__": _resource("report.css"),
        "__JS__": _resource("report.js"),
        "__FACTS__": _facts_html(info, groups),
        "__TABLE__": _tables_html(results, rows, groups),
        "__TOGGLES__": "\n".join(toggles),
        "__CSV__": csv_b64,
        "__FIGURES__": figures_html,
        "__WORDFORM__": wordform_section(results, wordform_cards) + reliability_section(results),
        "__SENSES__": senses_section(results, names),
        "__DATA__": data_json,
        "__FOOTER__": _esc(
            f"Written by pseval {_join(info['pseval_versions'])} from {len(results)} PS-Eval result file(s)."
        ),
    }
    # One pass, so text inserted for one marker is never scanned for another.
    pattern = re.compile("|".join(re.escape(marker) for marker in replacements))
    return pattern.sub(lambda match: replacements[match.group(0)], page)


def write_report(results_folder: str | Path, out_path: str | Path | None = None) -> Path:
    """Write the self-contained HTML report of a results folder and return its path.

    ``out_path`` defaults to ``<results_folder>/report.html``. Raises :class:`pseval.errors.DataError` when
    the folder holds no PS-Eval result.
    """
    results = load_results(results_folder)
    root = Path(results_folder)
    path = (
        Path(out_path) if out_path is not None else (root.parent if root.is_file() else root) / "report.html"
    )
    return write_text_atomic(path, render_report(results))
