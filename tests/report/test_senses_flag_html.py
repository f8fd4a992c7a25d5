"""The HTML report shows what the terminal shows: the dead-SAE flag and the within-lemma sense retrieval."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pseval.cli import app
from pseval.evals.categories import EvalResultMetrics
from pseval.evals.schema import PSEvalResult
from pseval.report.html import render_report, write_report
from pseval.report.load import load_results
from pseval.report.senses_table import verdict
from tests.evals.conftest import make_sae, tiny_model_dir
from tests.evals.test_senses_eval import senses_file
from tests.report.cdp import Browser, chromium_path
from tests.report.fabricate import FakeSAE, fake_result

__all__ = ["senses_file", "tiny_model_dir"]  # fixtures used by the tests below

FLAG_SPAN = '<span class="flag"'


def _row_html(page: str, sae_name: str) -> str:
    rows = re.findall(r"<tr data-i=\"\d+\"[^>]*>.*?</tr>", page, re.S)
    matches = [row for row in rows if f">{sae_name}<" in re.sub(r"<wbr>", "", row)]
    assert len(matches) == 1, sae_name
    return matches[0]


def _silent(result: PSEvalResult, n_silent: int) -> PSEvalResult:
    ps_eval = {**result.eval_result_metrics["ps_eval"], "n_pairs_no_active": n_silent}
    ps_eval.pop("share_pairs_no_active", None)
    return result.model_copy(
        update={
            "eval_result_metrics": EvalResultMetrics.model_validate(
                {**result.eval_result_metrics, "ps_eval": ps_eval}
            )
        }
    )


def test_an_sae_silent_on_most_pairs_is_flagged_beside_its_scores(tmp_path: Path) -> None:
    live = fake_result(FakeSAE("topk", 8, 3, "resid_post"), 40, seed=1)
    dead = _silent(fake_result(FakeSAE("standard", 8, 3, "resid_post"), 40, seed=2), 31)
    half = _silent(fake_result(FakeSAE("jumprelu", 8, 3, "resid_post"), 40, seed=3), 20)  # exactly half
    page = render_report([live, dead, half], with_figures=False)
    dead_row = _row_html(page, dead.sae_name)
    cells = re.findall(r"<td[^>]*>(.*?)</td>", dead_row, re.S)
    flagged = [i for i, cell in enumerate(cells) if FLAG_SPAN in cell]
    header = re.findall(r"<th scope=\"col\"[^>]*>(.*?)</th>", page.split('id="summary"', 1)[1])
    assert [header[i] for i in flagged] == ["Specificity", "Recall", "Accuracy", "No-active pairs"]
    assert FLAG_SPAN not in _row_html(page, live.sae_name)
    assert FLAG_SPAN not in _row_html(page, half.sae_name)
    notes = re.findall(r'<ul class="flag-notes">(.*?)</ul>', page, re.S)
    assert len(notes) == 1 and notes[0].count("<li>") == 1
    assert f"<strong>{dead.sae_name}</strong>: no active latent in 78% of pairs (over 50%)" in notes[0]


def test_no_legend_without_a_flagged_sae(tmp_path: Path) -> None:
    page = render_report([fake_result(FakeSAE("topk", 8, 3, "resid_post"), 40, seed=1)], with_figures=False)
    assert 'class="flag-notes"' not in page and FLAG_SPAN not in page
    assert 'id="senses"' not in page


def _with_senses(row: dict[str, float]) -> PSEvalResult:
    result = fake_result(FakeSAE("topk", 8, 3, "resid_post"), 40, seed=4)
    metrics = {**result.eval_result_metrics, "sense_retrieval": row}
    return result.model_copy(update={"eval_result_metrics": EvalResultMetrics.model_validate(metrics)})


def _senses_row() -> dict[str, float]:
    """A sense_retrieval category: one difference above 0, one crossing it, one below it."""
    row = {"n_lemmas": 3, "n_anchors": 9, "mean_chance": 0.4, "confidence_level": 0.95}
    for name, value in (("sae_cosine", 0.7), ("sae_jaccard", 0.6), ("random_sae_cosine", 0.55)):
        row |= {f"{name}_auroc": value, f"{name}_auroc_low": value - 0.1, f"{name}_auroc_high": value + 0.1}
        row |= {f"{name}_nn_accuracy": value, f"{name}_nn_accuracy_low": 0.1, f"{name}_nn_accuracy_high": 0.9}
    row |= {
        f"random_sae_jaccard_{m}{s}": 0.5 for m in ("auroc", "nn_accuracy") for s in ("", "_low", "_high")
    }
    row |= {
        "sae_cosine_minus_random_sae_cosine_auroc": 0.15,
        "sae_cosine_minus_random_sae_cosine_auroc_low": 0.02,
        "sae_cosine_minus_random_sae_cosine_auroc_high": 0.3,
        "sae_cosine_minus_random_sae_cosine_nn_accuracy": 0.05,
        "sae_cosine_minus_random_sae_cosine_nn_accuracy_low": -0.1,
        "sae_cosine_minus_random_sae_cosine_nn_accuracy_high": 0.2,
        "sae_jaccard_minus_random_sae_jaccard_auroc": 0.1,
        "sae_jaccard_minus_random_sae_jaccard_auroc_low": -0.01,
        "sae_jaccard_minus_random_sae_jaccard_auroc_high": 0.2,
        "sae_jaccard_minus_random_sae_jaccard_nn_accuracy": -0.2,
        "sae_jaccard_minus_random_sae_jaccard_nn_accuracy_low": -0.3,
        "sae_jaccard_minus_random_sae_jaccard_nn_accuracy_high": -0.05,
    }
    return row


def test_beats_the_random_control_only_where_the_paired_interval_excludes_0() -> None:
    row = _senses_row()
    page = render_report([_with_senses(row)], with_figures=False)
    section = page.split('<section id="senses">', 1)[1].split("</section>", 1)[0]
    verdicts = re.findall(r'<span class="sr-verdict[^"]*">(.*?)</span>', section)
    assert verdicts == ["beats the random control (AUROC)", "below the random control (1-NN)"]
    assert "3 lemmas, 9 anchors · 1-NN chance 0.400" in section
    assert '<strong>+0.150</strong> <span class="ci">[+0.02, +0.30]</span>' in section
    assert "dense · centred cosine" not in section  # not in the result: no empty row


def test_a_real_senses_run_gets_the_section_with_its_numbers(
    tmp_path: Path, tmp_cache: Path, tiny_model_dir: Path, senses_file: Path
) -> None:
    sae = make_sae(tmp_path / "sae", "topk", "blocks.1.hook_resid_post", seed=3)
    out = tmp_path / "results"
    args = ["eval", "--model", str(tiny_model_dir), "--dataset", str(senses_file), "--sae", str(sae)]
    result = CliRunner().invoke(app, [*args, "--output-folder", str(out), "--bootstrap", "200"])
    assert result.exit_code == 0, result.output
    page = write_report(out).read_text(encoding="utf-8")
    (stored,) = load_results(out)
    row = stored.eval_result_metrics["sense_retrieval"]
    section = page.split('<section id="senses">', 1)[1].split("</section>", 1)[0]
    assert "<h2>Within-lemma sense retrieval</h2>" in section
    assert f"{row['n_lemmas']} lemmas, {row['n_anchors']} anchors" in section
    for label in (
        "SAE · code cosine",
        "random SAE · code cosine",
        "dense · centred cosine",
        "SAE − random SAE",
    ):
        assert label in section
    assert f"<strong>{row['sae_cosine_auroc']:.3f}</strong>" in section
    name = "sae_cosine_minus_random_sae_cosine"
    assert f"<strong>{row[f'{name}_auroc']:+.3f}</strong>" in section
    assert verdict(row, name, "the random control") in section


@pytest.mark.browser
@pytest.mark.skipif(chromium_path() is None, reason="needs chromium (apt-get install chromium)")
@pytest.mark.parametrize("width", [1280, 390])
def test_section_and_flag_fit_desktop_and_phone_widths(tmp_path: Path, width: int) -> None:
    senses = _with_senses(_senses_row())
    senses.sae_name = "gemma-scope-2b-pt-res/layer_12/width_16k/average_l0_82"  # long ids must wrap
    dead = _silent(fake_result(FakeSAE("standard", 8, 3, "resid_post"), 40, seed=2), 31)
    report = tmp_path / "report.html"
    report.write_text(render_report([senses, dead], with_figures=False), encoding="utf-8")
    browser = Browser(tmp_path / "profile")
    try:
        browser.open(report.resolve().as_uri())
        browser.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": width < 640},
        )
        assert browser.wait_for("document.body.getAttribute('data-ready')") == "1"
        browser.wait_for(f"window.innerWidth === {width}")
        assert browser.evaluate("document.documentElement.scrollWidth") <= width
        card = "document.querySelector('#senses .sr-card')"
        assert browser.evaluate(f"{card}.getBoundingClientRect().right") <= width
        assert browser.evaluate(f"{card}.scrollWidth <= {card}.clientWidth + 1")  # no table scrolls inside
        assert browser.evaluate("document.querySelectorAll('#summary .flag').length") == 4
        assert browser.evaluate("getComputedStyle(document.querySelector('.flag-notes')).display") != "none"
        assert browser.errors() == []
    finally:
        browser.close()
