"""Result tables: layouts that fit the width without cutting names or numbers, and the text formats."""

from __future__ import annotations

import csv
import io
import json

import pytest
from rich.console import Console

from pseval.evals.schema import PSEvalResult
from pseval.report.tables import (
    baseline_rows,
    csv_table,
    drop_lines,
    json_tables,
    markdown_tables,
    print_results,
)
from tests.report.fabricate import FakeSAE, fake_result

STATS = {
    "n_raw": 80,
    "dropped": {"target_not_found": 0, "span_not_word": 35, "multi_token_word": 1},
    "kept_before_balance": {0: 20, 1: 24},
    "kept": {0: 20, 1: 20},
}


def _results(names: list[str], widths: tuple[int, ...] = (8, 16)) -> list[PSEvalResult]:
    out = []
    for i, name in enumerate(names):
        r = fake_result(FakeSAE("topk", widths[i % len(widths)], 6, "resid_post"), n_pairs=40, seed=i)
        r.sae_name = name
        r.dataset_stats = STATS
        out.append(r)
    return out


def _render(results: list[PSEvalResult], width: int, fmt: str = "table") -> str:
    console = Console(width=width, record=True, file=io.StringIO(), color_system=None)
    print_results(results, console, "PS-Eval on smollm2-135m · wic test · 40 pairs", fmt)
    return console.export_text()


@pytest.mark.parametrize("width", [200, 80, 60, 40])
@pytest.mark.parametrize("name_length", [12, 26, 48])
def test_every_width_keeps_names_and_specificity_whole(width: int, name_length: int) -> None:
    names = [("a" * name_length)[:-2] + "-1", ("b" * name_length)[:-2] + "-2"]
    results = _results(names)
    text = _render(results, width)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= width
    assert "…" not in text
    for r in results:
        spec = f"{r.metric('ps_eval', 'specificity'):.3f}"
        at = [i for i, line in enumerate(lines) if r.sae_name in line]
        if len(r.sae_name) <= width:
            assert at, f"{r.sae_name} cut at width {width}:\n{text}"
            assert spec in lines[at[0]] or spec in lines[at[0] + 1]


def test_layout_narrows_step_by_step() -> None:
    results = _results(["L6-resid_post-topk-x8", "L6-resid_post-topk-x16"])
    wide = _render(results, 200)
    assert "hook" in wide and "FVU" in wide  # every column
    compact = _render(results, 80)
    assert "FVU" not in compact and "[ ] = 95% bootstrap interval" in compact
    lines = compact.splitlines()
    at = next(i for i, line in enumerate(lines) if "L6-resid_post-topk-x16" in line)
    # the value beside the name, its interval right below it (so J and balanced accuracy fit beside them)
    assert f"{results[1].metric('ps_eval', 'specificity'):.3f}" in lines[at] and "[" in lines[at + 1]
    flat = " ".join(compact.split())
    assert "bal. acc." in compact or "balanced accuracy = (1 + J) / 2" in flat
    stacked = _render(results, 44)
    assert "  specificity " in stacked


def test_drop_counts_under_the_table() -> None:
    results = _results(["a", "b"])
    assert drop_lines(results) == [
        "wic test: 80 pairs read, 36 dropped (span_not_word 35, multi_token_word 1), 40 scored"
    ]
    assert "36 dropped" in _render(results, 80)
    assert "36 dropped" in markdown_tables(results, "t")


def test_random_baseline_once_per_hook_and_width() -> None:
    results = _results(["a", "b", "c", "d"], widths=(8, 16))
    random_rows = [r for r in baseline_rows(results) if r["baseline"].startswith("random SAE")]
    assert len(random_rows) == 2
    assert len([r for r in baseline_rows(results) if r["baseline"] == "dense cosine"]) == 1


def test_csv_json_markdown_carry_raw_numbers() -> None:
    results = _results(["first-sae", "second-sae"])
    rows = list(csv.DictReader(io.StringIO(csv_table(results))))
    assert [r["sae"] for r in rows] == ["first-sae", "second-sae"]
    assert float(rows[0]["specificity"]) == pytest.approx(results[0].metric("ps_eval", "specificity"))
    assert float(rows[0]["specificity_low"]) == pytest.approx(
        results[0].metric("ps_eval_ci", "specificity_low")
    )
    data = json.loads(json_tables(results))
    assert data["results"][1]["sae"] == "second-sae" and data["dataset_stats"][0]["n_raw"] == 80
    md = markdown_tables(results, "title")
    assert "| `first-sae` |" in md and "**Baselines**" in md
    # The plain formats print unwrapped, whatever the width.
    assert _render(results, 40, "csv").splitlines()[0].startswith("sae,hook,architecture")


def test_metrics_fall_back_to_one_line_per_metric_when_narrow() -> None:
    from pseval.report.metrics_table import metrics_renderable

    rows = {"L12-resid_post-topk-x8-a-long-name": {"mse": 1.5, "fvu": 0.25, "l0": 32.0}}
    for width in (80, 250):
        console = Console(width=width, record=True, file=io.StringIO(), color_system=None)
        console.print(metrics_renderable(rows, console, "Standard metrics"))
        text = console.export_text()
        assert max(len(line) for line in text.splitlines()) <= width
        assert "L12-resid_post-topk-x8-a-long-name" in text and "0.2500" in text and "…" not in text


def test_result_tables_load_without_the_figure_modules() -> None:
    """``pseval eval`` prints its tables through pseval.report.tables: matplotlib (a quarter second to import)
    is loaded only by the report and figure commands."""
    import subprocess
    import sys

    script = (
        "import sys, pseval.report.tables\n"
        "assert 'matplotlib' not in sys.modules, 'pseval.report.tables imported matplotlib'\n"
        "from pseval.report import write_report, make_figures\n"
        "assert 'matplotlib' in sys.modules and callable(write_report) and callable(make_figures)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
