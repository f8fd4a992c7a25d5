"""The hook-site check's verdict, FVU and L0 in the flat rows, under the tables and in the HTML summary."""

from __future__ import annotations

import csv
import io

from rich.console import Console

from pseval.evals.schema import PSEvalResult
from pseval.report.load import summary_table
from pseval.report.site_note import site_notes
from pseval.report.summary_html import render_summary_table
from pseval.report.tables import csv_table, markdown_tables, print_results
from tests.report.fabricate import FakeSAE, fake_result

NAMES = ["L15-attn_out-standard-x8-l1_5-seed43", "L15-attn_out-standard-x8-l1_5-seed44"]


def _check(verdict: str, fvu: float | None, l0: float, reason: str | None) -> dict[str, object]:
    return {
        "tokens": 2048,
        "hook_name": "blocks.15.hook_attn_out",
        "target_hook": "blocks.15.hook_attn_out",
        "prepend_bos": True,
        "context_size": 128,
        "corpus": "wikitext",
        "fvu": fvu,
        "l0": l0,
        "recorded_fvu": None,
        "recorded_l0": 30.0,
        "recorded_from": "cfg.json",
        "l0_ratio": max(l0 / 30.0, 30.0 / l0),
        "input_norm": 12.0,
        "recorded_input_norm": None,
        "input_norm_ratio": None,
        "fvu_limit": 1.0,
        "l0_factor": 3.0,
        "norm_factor": 1.2,
        "verdict": verdict,
        "reason": reason,
    }


def _results(checked: bool) -> list[PSEvalResult]:
    out = []
    for i, name in enumerate(NAMES):
        r = fake_result(FakeSAE("topk", 8, 6, "attn_out"), n_pairs=40, seed=i)
        r.sae_name = name
        if checked:
            check = (
                _check("pass", 0.125, 31.0, None) if i == 0 else _check("fail", 1.75, 120.0, "FVU 1.75 > 1")
            )
            r.eval_result_metrics["site_check"] = check
        out.append(r)
    return out


def _render(results: list[PSEvalResult], width: int) -> str:
    console = Console(width=width, record=True, file=io.StringIO(), color_system=None)
    print_results(results, console, "PS-Eval", "table", baselines=False)
    return console.export_text()


def test_the_site_check_reaches_the_rows_the_notes_and_the_html_summary() -> None:
    results = _results(checked=True)
    rows = list(csv.DictReader(io.StringIO(csv_table(results))))
    assert [r["site_check_verdict"] for r in rows] == ["pass", "fail"]
    assert float(rows[0]["site_check_fvu"]) == 0.125 and float(rows[1]["site_check_l0"]) == 120.0
    flat = summary_table(results)
    assert [r["site_check_verdict"] for r in flat] == ["pass", "fail"]

    text = _render(results, 80)
    assert max(len(line) for line in text.splitlines()) <= 80
    joined = " ".join(text.split())
    assert "site check passed (1 of 2 SAEs): FVU 0.125 · L0 31.0" in joined
    assert f"! {NAMES[1]}: site check fail · FVU 1.750 · L0 120.0 (FVU 1.75 > 1)" in joined
    assert "site check fail · FVU 1.750" in markdown_tables(results, "t")

    html = render_summary_table(flat)
    assert ">Site<" in html and "pass · FVU 0.125 · L0 31.0" in html
    assert '<span title="FVU 1.75 &gt; 1">fail · FVU 1.750 · L0 120.0</span>' in html


def test_no_site_check_no_column_and_no_note() -> None:
    results = _results(checked=False)
    assert "site check" not in _render(results, 80)
    assert "site_check_verdict" not in csv_table(results)
    assert ">Site<" not in render_summary_table(summary_table(results))


def test_the_passing_saes_share_one_line_with_the_range_of_their_numbers() -> None:
    rows = [
        {"sae": "a", "site_check_verdict": "pass", "site_check_fvu": 0.1, "site_check_l0": 20.0},
        {"sae": "b", "site_check_verdict": "pass", "site_check_fvu": None, "site_check_l0": 40.0},
        {"sae": "c", "site_check_verdict": "pass", "site_check_fvu": 0.3, "site_check_l0": 30.0},
        {"sae": "d"},
    ]
    assert site_notes(rows) == ["site check passed (3 of 3 SAEs): FVU 0.100–0.300 · L0 20.0–40.0"]
