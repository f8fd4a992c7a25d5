"""The self-contained HTML report: content, escaping, size, determinism, and a real browser render."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest

from pseval.errors import DataError
from pseval.report.html import embed_json, fit_budget, render_report, report_data, write_report
from pseval.report.load import load_results, summary_table
from tests.report.cdp import Browser, chromium_path
from tests.report.fabricate import FakeSAE, fake_result, write_results_folder


@pytest.fixture(scope="module")
def report(results_folder: Path) -> Path:
    return write_report(results_folder)


def _data_block(page: str) -> dict:
    match = re.search(r'<script type="application/json" id="pseval-data">(.*?)</script>', page, re.S)
    assert match is not None
    return json.loads(match.group(1))


def test_report_is_written_beside_the_results(results_folder: Path, report: Path) -> None:
    assert report == results_folder / "report.html"
    page = report.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    for marker in (
        'id="summary"',
        'id="drilldown"',
        'id="dd-sae"',
        'id="dd-word"',
        'id="words"',
        'id="figures"',
    ):
        assert marker in page
    assert page.count('class="sae-link"') == 26
    assert page.count('class="baseline baseline-dense"') == 9  # one per hook with a dense baseline
    assert "data:image/svg+xml;base64," in page
    for heading in (
        "Specificity",
        "Recall",
        "Accuracy",
        "F1",
        "No-active pairs",
        "L0",
        "FVU",
        "CE recovered",
    ):
        assert f">{heading}</th>" in page
    for fact in ("smollm2-135m", "wic", "test", "72", "0.1.0"):
        assert f"<dd>{fact}</dd>" in page


def test_report_opens_offline(report: Path) -> None:
    page = report.read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "url(http" not in page and "@import" not in page
    assert "<script src" not in page and '<link rel="stylesheet"' not in page


def test_text_is_escaped_and_embedded_json_is_safe(report: Path) -> None:
    page = report.read_text(encoding="utf-8")
    # A context in the fixture contains "</script><b>bold</b>": only the page's own two scripts may close.
    assert page.count("</script>") == 2
    assert "<b>bold</b>" not in page
    data = _data_block(page)
    contexts = [c for c in data["pairs"]["c1"] + data["pairs"]["c2"] if c]
    assert any("</script><b>bold</b>" in c for c in contexts)
    assert any('"bank" on a card & left it <there>' in c for c in contexts)
    assert json.loads(embed_json({"a": "</script><!-- & >"})) == {"a": "</script><!-- & >"}


def test_pair_data_is_compact_and_complete(results_folder: Path, report: Path) -> None:
    data = _data_block(report.read_text(encoding="utf-8"))
    assert len(data["pairs"]["id"]) == 72  # shared by every SAE evaluated on the same split
    results = load_results(results_folder)
    for sae, result in zip(data["saes"], results, strict=True):
        assert sae["n"] == len(result.eval_result_details) == 72
        assert sae["l1"] == [d.latent_1 for d in result.eval_result_details]
        assert sae["same"] == "".join("1" if d.predicted_same else "0" for d in result.eval_result_details)
        assert set(sae["lens"]) <= {str(v) for v in sae["l1"] + sae["l2"]}
    with_ctx = [s for s in data["saes"] if s["ctx"]]
    assert [s["name"] for s in with_ctx] == ["topk_x16_L6_resid_post"]
    assert data["pairs"]["s1"][0] == [22, 26]


def test_report_is_deterministic(single_result_folder: Path, tmp_path: Path) -> None:
    a = write_report(single_result_folder, tmp_path / "a.html").read_bytes()
    b = write_report(single_result_folder, tmp_path / "b.html").read_bytes()
    assert a == b


def test_minimal_result_still_renders(single_result_folder: Path) -> None:
    page = render_report(load_results(single_result_folder))
    assert 'id="summary"' in page and 'class="baseline' not in page and 'id="show-dense"' not in page
    data = _data_block(page)
    assert data["pairs"]["c1"] == [None] * 20  # no contexts recorded: the page says so


def test_missing_results_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError):
        write_report(tmp_path)


def test_twenty_saes_of_1144_pairs_stay_under_5_mb(tmp_path: Path) -> None:
    saes = [
        FakeSAE(arch, exp, 6, "resid_post", contexts=True, top_contexts=True)
        for arch in ("standard", "topk", "jumprelu", "batchtopk")
        for exp in (4, 8, 16, 32, 64)
    ]
    folder = write_results_folder(tmp_path, saes, n_pairs=1144)
    path = write_report(folder)
    size = path.stat().st_size
    assert size < 5_000_000, size


@pytest.mark.browser
@pytest.mark.skipif(chromium_path() is None, reason="needs chromium (apt-get install chromium)")
def test_report_renders_in_headless_chromium(report: Path, tmp_path: Path) -> None:
    browser = Browser(tmp_path / "profile")
    try:
        browser.open(report.resolve().as_uri())
        assert browser.wait_for("document.body.getAttribute('data-ready')") == "1"
        # 26 SAEs, 9 dense baselines (one per hook), 13 random SAEs (one per hook and width, not per SAE).
        assert browser.evaluate("document.querySelectorAll('#summary tbody tr').length") == 26 + 9 + 13
        assert browser.evaluate("document.querySelectorAll('#dd-pairs article.pair').length") > 0
        assert browser.evaluate("document.querySelectorAll('#dd-pairs mark').length") > 0
        assert browser.evaluate("document.querySelectorAll('#figures img').length") == 5
        assert browser.wait_for("Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")
        # Sorting: click Specificity twice → ascending order of the SAE rows' values.
        browser.evaluate(
            "(() => { const th = [...document.querySelectorAll('#summary th')].find(t => t.textContent === 'Specificity');"
            " th.click(); th.click(); return th.getAttribute('aria-sort'); })()"
        )
        values = browser.evaluate(
            "[...document.querySelectorAll('#summary tbody tr:not(.baseline)')]"
            ".map(r => parseFloat(r.cells[5].dataset.v))"
        )
        assert values == sorted(values)
        # Drill-down: choose another SAE through its link, then a word in the word table.
        browser.evaluate("document.querySelector('a.sae-link[data-sae=\"5\"]').click()")
        assert browser.evaluate("document.getElementById('dd-sae').value") == "5"
        browser.evaluate("document.querySelector('#words tbody tr[data-word=\"play\"]').click()")
        assert browser.evaluate("document.getElementById('dd-word').value") == "play"
        heads = browser.evaluate("[...document.querySelectorAll('#dd-pairs mark')].map(m => m.textContent)")
        assert heads and set(heads) == {"play"}
        # Top contexts appear for the SAE whose result carries them.
        index = browser.evaluate(
            "[...document.querySelectorAll('#dd-sae option')].findIndex(o => o.textContent === 'topk_x16_L6_resid_post')"
        )
        browser.evaluate(
            f"(() => {{ const s = document.getElementById('dd-sae'); s.value = '{index}';"
            " s.dispatchEvent(new Event('change')); })()"
        )
        assert browser.evaluate("document.querySelectorAll('#dd-pairs details li').length") > 0
        # Only misclassified pairs.
        browser.evaluate("document.getElementById('dd-errors').click()")
        assert browser.evaluate("document.querySelectorAll('#dd-pairs article.pair:not(.wrong)').length") == 0
        browser.evaluate("window.scrollTo(0, 0)")
        shot = browser.screenshot(tmp_path / "report.png")
        full = browser.screenshot(tmp_path / "report-full.png", full_page=True)
        assert shot.stat().st_size > 10_000
        out = os.environ.get("PSEVAL_SCREENSHOT_DIR")
        if out:
            Path(out).mkdir(parents=True, exist_ok=True)
            shutil.copy(shot, Path(out) / "report.png")
            shutil.copy(full, Path(out) / "report-full.png")
        assert browser.errors() == []
        external = [u for u in browser.requested_urls() if not u.startswith(("file:", "data:", "about:"))]
        assert external == []
    finally:
        browser.close()


def test_budget_drops_top_contexts_first(results_folder: Path) -> None:
    results = load_results(results_folder)
    data = report_data(results, [r.sae_name for r in results])
    full = fit_budget(json.loads(json.dumps(data)))
    assert any(sae["ctx"] for sae in json.loads(full)["saes"])
    trimmed = json.loads(fit_budget(data, budget=len(full.encode()) - 1))
    assert all(sae["ctx"] == {} for sae in trimmed["saes"])
    assert trimmed["notes"] and "Top contexts" in trimmed["notes"][0]


def test_a_result_without_pairs_still_renders(tmp_path: Path) -> None:
    result = fake_result(FakeSAE("topk", 4, 1, "mlp_out", standard=False, baselines=False), 4, seed=0)
    result.eval_result_details = []
    result.eval_result_metrics["ps_eval"] = {k: None for k in ("accuracy", "recall", "specificity", "f1")}
    result.eval_result_metrics["ps_eval_ci"] = {}
    page = render_report([result])
    assert 'id="figures"' not in page and 'class="sae-link"' in page
    assert _data_block(page)["saes"][0]["n"] == 0


@pytest.mark.browser
@pytest.mark.skipif(chromium_path() is None, reason="needs chromium (apt-get install chromium)")
def test_report_on_a_phone_shows_specificity_without_sideways_scrolling(report: Path, tmp_path: Path) -> None:
    browser = Browser(tmp_path / "profile")
    try:
        browser.open(report.resolve().as_uri())
        browser.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": True},
        )
        assert browser.wait_for("document.body.getAttribute('data-ready')") == "1"
        browser.wait_for("window.innerWidth === 390")
        assert browser.evaluate("document.documentElement.scrollWidth") <= 390
        wrap = "document.querySelector('#summary').parentElement"
        assert browser.evaluate(f"{wrap}.scrollWidth <= {wrap}.clientWidth + 1")
        right = browser.evaluate(
            "Math.max(...[...document.querySelectorAll('#summary tr')].map(r => "
            "[...r.cells].find((c, i) => r.parentElement.parentElement.tHead.rows[0].cells[i].textContent"
            " === 'Specificity').getBoundingClientRect().right))"
        )
        assert right <= 390
        # The hook moves under the name; figures scale to the screen.
        assert (
            browser.evaluate("getComputedStyle(document.querySelector('#summary td.name .sub')).display")
            == "block"
        )
        assert browser.wait_for("Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")
        assert (
            browser.evaluate("Math.max(...[...document.images].map(i => i.getBoundingClientRect().right))")
            <= 390
        )
        shot = browser.screenshot(tmp_path / "phone.png")
        out = os.environ.get("PSEVAL_SCREENSHOT_DIR")
        if out:
            Path(out).mkdir(parents=True, exist_ok=True)
            shutil.copy(shot, Path(out) / "report-phone.png")
            shutil.copy(
                browser.screenshot(tmp_path / "phone-full.png", full_page=True),
                Path(out) / "report-phone-full.png",
            )
        assert browser.errors() == []
    finally:
        browser.close()


def test_random_baseline_once_per_hook_and_width(results_folder: Path) -> None:
    from pseval.report.html import baseline_rows

    rows = summary_table(load_results(results_folder))
    random_rows = [b for b in baseline_rows(rows) if b["_baseline"] == "random"]
    keys = [(b["hook"], b["d_sae"]) for b in random_rows]
    assert len(keys) == len(set(keys))
    expected = {(r["hook"], r["d_sae"]) for r in rows if r.get("random_specificity") is not None}
    assert set(keys) == expected
