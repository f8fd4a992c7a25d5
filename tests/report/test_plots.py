"""Figures: the right ones are drawn for the data there is, and regenerating them is byte-identical."""

from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from pseval.errors import DataError
from pseval.report.load import load_results, summary_table
from pseval.report.plots import build_figures, make_figures, matched_setting

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ALL_FIGURES = (
    "expansion_ratio",
    "architectures",
    "layer_hook_heatmap",
    "mse_l0_frontier",
    "recall_specificity",
)


def _digests(paths: list[Path]) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}


@pytest.fixture(scope="module")
def sweep_figures(results_folder: Path) -> list[Path]:
    return make_figures(results_folder)


def test_every_figure_is_drawn_for_a_sweep(results_folder: Path, sweep_figures: list[Path]) -> None:
    out = results_folder / "figures"
    names = {p.name for p in sweep_figures}
    for stem in ALL_FIGURES:
        assert f"{stem}.png" in names and f"{stem}.svg" in names
        png = (out / f"{stem}.png").read_bytes()
        assert png.startswith(PNG_SIGNATURE) and len(png) > 10_000
        root = ET.fromstring((out / f"{stem}.svg").read_bytes())
        assert root.tag.endswith("svg")
    assert {"architectures.md", "architectures.csv", "summary.csv"} <= names
    assert all(p.parent == out and p.exists() for p in sweep_figures)
    assert not list(out.glob(".*.tmp"))


def test_figures_name_model_dataset_split_and_pairs(results_folder: Path, sweep_figures: list[Path]) -> None:
    results = load_results(results_folder)
    specs = build_figures(results)
    assert [s.name for s in specs] == list(ALL_FIGURES)
    for spec in specs:
        title = spec.figure.get_suptitle()
        assert "smollm2-135m" in title and "wic" in title and "test split" in title and "72 pairs" in title
    table = (results_folder / "figures" / "architectures.md").read_text()
    assert table.splitlines()[0].startswith("| SAE | architecture | hook | expansion | Specificity")
    assert "| ReLU |" in table and "| TopK |" in table and "| JumpReLU |" in table
    assert "baseline: dense activations" in table and "baseline: random SAE" in table
    csv_text = (results_folder / "figures" / "summary.csv").read_text()
    assert csv_text.count("\n") == 27 and csv_text.startswith("name,")


def test_regenerating_gives_identical_files(
    results_folder: Path, sweep_figures: list[Path], tmp_path: Path
) -> None:
    again = make_figures(results_folder, tmp_path / "again")
    assert _digests(again) == _digests(sweep_figures)


def test_matched_setting_compares_architectures_at_one_hook_and_width(results_folder: Path) -> None:
    chosen = matched_setting(summary_table(load_results(results_folder)))
    assert [r["architecture"] for r in chosen] == ["standard", "topk", "jumprelu"]
    assert {r["hook"] for r in chosen} == {"blocks.6.hook_resid_post"}
    assert {r["expansion_ratio"] for r in chosen} == {64}


def test_only_figures_with_data_are_drawn_and_stale_ones_removed(
    single_result_folder: Path, tmp_path: Path
) -> None:
    out = tmp_path / "figs"
    out.mkdir()
    (out / "expansion_ratio.png").write_bytes(b"old")
    (out / "notes.txt").write_text("mine")
    paths = make_figures(single_result_folder, out)
    stems = {p.stem for p in paths if p.suffix == ".png"}
    assert stems == {"architectures", "recall_specificity"}
    assert not (out / "expansion_ratio.png").exists()
    assert (out / "notes.txt").read_text() == "mine"


def test_default_output_folder(single_result_folder: Path) -> None:
    paths = make_figures(single_result_folder)
    assert all(p.parent == single_result_folder / "figures" for p in paths)


def test_no_results_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError):
        make_figures(tmp_path)


def test_frontier_has_one_panel_per_hook(tmp_path: Path) -> None:
    """An MSE–L0 trade-off is only comparable at one hook: each hook gets its own, titled panel."""
    from pseval.report.load import load_results
    from pseval.report.plots import build_figures
    from tests.report.fabricate import FakeSAE, write_results_folder

    saes = [
        FakeSAE(arch, exp, layer, "resid_post")
        for arch in ("standard", "topk")
        for exp in (4, 16)
        for layer in (3, 9)
    ]
    root = write_results_folder(tmp_path, saes, n_pairs=24)
    spec = next(s for s in build_figures(load_results(root)) if s.name == "mse_l0_frontier")
    panels = [ax for ax in spec.figure.axes if ax.get_visible() and ax.get_title()]
    assert sorted(ax.get_title() for ax in panels) == ["blocks.3.hook_resid_post", "blocks.9.hook_resid_post"]
    for ax in panels:
        assert sum(len(c.get_offsets()) for c in ax.collections) == 4  # the 4 SAEs at that hook, no others
    assert "One panel per hook point" in spec.caption


def test_heatmap_says_which_of_several_saes_a_cell_shows(tmp_path: Path) -> None:
    from pseval._io import write_json_atomic
    from pseval.report.load import load_results
    from pseval.report.plots import build_figures
    from tests.report.fabricate import FakeSAE, fake_result, write_results_folder

    saes = [FakeSAE("topk", 16, layer, kind) for layer in (3, 9) for kind in ("resid_post", "attn_out")]
    root = write_results_folder(tmp_path, saes, n_pairs=24, nested=False)
    twin = fake_result(FakeSAE("topk", 16, 3, "resid_post"), 24, seed=7)
    twin.sae_name = "topk_x16_L3_resid_post_seed7"
    write_json_atomic(root / "ps_eval" / "twin_eval_results.json", twin.model_dump(mode="json"))
    spec = next(s for s in build_figures(load_results(root)) if s.name == "layer_hook_heatmap")
    texts = [t.get_text() for ax in spec.figure.axes for t in ax.texts]
    assert sum("1 of 2 SAEs" in t for t in texts) == 1
    assert "topk_x16_L3_resid_post (of topk_x16_L3_resid_post, topk_x16_L3_resid_post_seed7)" in spec.caption
