"""Terminal tables of the ``wordform`` category: the 2 x 2 cells and the word and meaning effects.

One block per representation (each SAE, the random SAE of its width, the dense vectors of its hook; a
baseline shown once): a 2 x 2 grid (rows: same / different word, columns: same / different sense) whose
cells hold the share of pairs with the same top latent, the mean top-k overlap, the mean code cosine and n,
the synonym-substitution cell below it, and the effects with their bootstrap intervals. Fits 80 columns.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich import box
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from pseval._format import finite_number
from pseval.evals.schema import stored_wordform

MEASURE_LABELS: tuple[tuple[str, str], ...] = (
    ("share_same_top_latent", "same top"),
    ("topk_overlap", "overlap"),
    ("code_cosine", "cosine"),
)
EFFECT_LABELS: tuple[tuple[str, str], ...] = (("word_effect", "word"), ("meaning_effect", "meaning"))


def _num(value: Any) -> str:
    number = finite_number(value)
    return "–" if number is None else f"{number:.3f}"


def _with_ci(row: dict[str, Any], name: str) -> str:
    value, low, high = (finite_number(row.get(f"{name}{s}")) for s in ("", "_low", "_high"))
    if value is None:
        return "–"
    if low is None or high is None:
        return f"{value:+.3f}"
    return f"{value:+.2f} [{low:+.2f}, {high:+.2f}]"


def _cell_text(row: dict[str, Any] | None) -> Text:
    if not row or not row.get("n_pairs"):
        return Text("no pairs", style="dim")
    lines = [f"{label} {_num(row.get(name))}" for name, label in MEASURE_LABELS]
    return Text("\n".join([*lines, f"n {row['n_pairs']}"]))


def wordform_block(scores: dict[str, Any], title: str, confidence_level: float = 0.95) -> RenderableType:
    """The 2 x 2 grid, the substitution cell and the effects of one representation's scores."""
    cells = scores.get("cells", {})
    grid = Table(box=box.SIMPLE_HEAD, padding=(0, 1))
    grid.add_column("")
    grid.add_column("same sense", no_wrap=True)
    grid.add_column("different sense", no_wrap=True)
    for word, label in (("same_word", "same word"), ("different_word", "different word")):
        grid.add_row(
            label,
            _cell_text(cells.get(f"{word}_same_sense")),
            _cell_text(cells.get(f"{word}_different_sense")),
            end_section=True,
        )
    parts: list[RenderableType] = [Text(title, style="bold", overflow="fold"), grid]
    sub = cells.get("synonym_substitution")
    if sub and sub.get("n_pairs"):
        measures = " · ".join(f"{label} {_num(sub.get(name))}" for name, label in MEASURE_LABELS)
        parts.append(Text(f"synonym substitution (same sentence) · {measures} · n {sub['n_pairs']}"))
    effects = Table(
        title="effects",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        padding=(0, 1),
        caption=f"[ ] = {confidence_level:.0%} bootstrap interval; word effect = same word − different "
        "word (same sense); meaning effect = same sense − different sense (same word)",
        caption_justify="left",
    )
    effects.add_column("effect", no_wrap=True)
    for _, label in MEASURE_LABELS:
        effects.add_column(label, justify="right", no_wrap=True)
    for name, label in EFFECT_LABELS:
        row = scores.get("effects", {}).get(name, {})
        effects.add_row(label, *(_with_ci(row, measure) for measure, _ in MEASURE_LABELS))
    parts.append(effects)
    return Group(*parts)


def wordform_renderables(results: Sequence[Any]) -> list[RenderableType]:
    """One block per SAE with a ``wordform`` category, then its random SAE and dense vectors (once each)."""
    blocks: list[RenderableType] = []
    seen: set[object] = set()
    for r in results:
        category = stored_wordform(r)
        if not category:
            continue
        level = finite_number(category.get("confidence_level")) or 0.95
        hook = r.hook_name
        blocks.append(wordform_block(category["sae"], f"Word form × meaning · {r.sae_name} @ {hook}", level))
        width = r.eval_result_metrics.get("sae", {}).get("d_sae")
        for key, name, title in (
            ((hook, "random", width), "random_sae", f"Word form × meaning · random SAE ({width}) @ {hook}"),
            ((hook, "dense"), "dense", f"Word form × meaning · dense activations @ {hook} (no top latent)"),
        ):
            if category.get(name) and key not in seen:
                seen.add(key)
                blocks.append(wordform_block(category[name], title, level))
    return blocks


def print_wordform(results: Sequence[Any], console: Console, fmt: str = "table") -> None:
    """Print the word form x meaning blocks of the results that have them (tables only; JSON has them all)."""
    if fmt != "table":
        return
    for block in wordform_renderables(results):
        console.print(block)
