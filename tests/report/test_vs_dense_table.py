"""The SAE-vs-dense comparison in the result tables, and J with balanced accuracy readable at 80 columns."""

from __future__ import annotations

import csv
import io

from rich.console import Console

from pseval.evals.schema import PSEvalResult
from pseval.report.tables import csv_table, markdown_tables, print_results
from tests.report.fabricate import FakeSAE, fake_result

LONG_NAMES = ["L15-attn_out-standard-x8-l1_5-seed43", "L15-attn_out-standard-x8-l1_5-seed44"]

VS_DENSE = {
    "n_pairs": 40,
    "threshold_selection": "dev split",
    "accuracy_difference": -0.1,
    "accuracy_difference_low": -0.2,
    "accuracy_difference_high": -0.02,
    "sae_only_correct": 3,
    "dense_only_correct": 7,
    "accuracy_p_value": 0.34,
    "youden_j_difference": -0.2,
    "youden_j_difference_low": -0.31,
    "youden_j_difference_high": -0.09,
    "youden_j_p_value": 0.004,
    "accuracy_p_holm": 0.34,
    "youden_j_p_holm": 0.008,
    "beats_on_accuracy": False,
    "beats_on_youden_j": False,
    "below_on_accuracy": False,
    "below_on_youden_j": True,
}


def _results(with_dense: bool) -> list[PSEvalResult]:
    out = []
    for i, name in enumerate(LONG_NAMES):
        r = fake_result(FakeSAE("topk", 8, 6, "resid_post"), n_pairs=40, seed=i)
        r.sae_name = name
        if with_dense:
            r.eval_result_metrics["vs_dense"] = dict(VS_DENSE)
        out.append(r)
    return out


def _render(results: list[PSEvalResult], width: int) -> str:
    console = Console(width=width, record=True, file=io.StringIO(), color_system=None)
    print_results(results, console, "PS-Eval", "table", baselines=False)
    return console.export_text()


def _row_block(text: str, name: str) -> str:
    """The lines of ``name``'s row in a compact table (from its name to the next rule or name)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if name in line)
    block = [lines[start]]
    for line in lines[start + 1 :]:
        if any(other in line for other in LONG_NAMES) or line.startswith(("└", "├")):
            break
        block.append(line)
    return "\n".join(block)


def test_long_names_at_80_columns_keep_j_and_balanced_accuracy() -> None:
    results = _results(with_dense=False)
    text = _render(results, 80)
    assert max(len(line) for line in text.splitlines()) <= 80
    for r in results:
        block = _row_block(text, r.sae_name)
        j = r.metric("ps_eval", "youden_j")
        balanced = r.metric("ps_eval", "balanced_accuracy")
        assert f"{j:.3f}" in block, text
        assert f"{balanced:.3f}" in block, text


def test_dense_comparison_in_every_layout() -> None:
    results = _results(with_dense=True)
    wide = _render(results, 320)
    assert "J − dense" in wide and "< -0.200 [-0.31, -0.09]" in wide
    compact = _render(results, 80)
    assert all("< dense" in _row_block(compact, name) for name in LONG_NAMES), compact
    assert "dense cosine J on the same pairs" in " ".join(compact.split())
    stacked = _render(results, 44)
    assert "J − dense < -0.200 [-0.31, -0.09]" in " ".join(stacked.split())
    rows = list(csv.DictReader(io.StringIO(csv_table(results))))
    assert float(rows[0]["dense_youden_j_difference"]) == -0.2 and rows[0]["below_dense_on"] == "J"
    assert rows[0]["dense_threshold_selection"] == "dev split"
    assert "| J − dense |" in markdown_tables(results, "t")


def test_no_dense_column_without_the_comparison() -> None:
    results = _results(with_dense=False)
    assert "J − dense" not in _render(results, 320)
    assert "dense_youden_j_difference" not in csv_table(results)


def test_html_summary_has_the_dense_comparison_and_flags_fvu_above_one() -> None:
    from pseval.report.load import summary_table
    from pseval.report.summary_html import render_summary_table

    results = _results(with_dense=True)
    results[0].eval_result_metrics["standard"] = {**results[0].eval_result_metrics["standard"], "fvu": 2.433}
    html = render_summary_table(summary_table(results))
    assert "J − dense" in html and "&lt; -0.200 [-0.31, -0.09]" in html
    assert html.count("&gt; 1!") == 1
    assert "J − dense" not in render_summary_table(summary_table(_results(with_dense=False)))
