"""A results folder mixing datasets, splits and pair counts: one table and one figure set per group."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pseval._io import write_json_atomic
from pseval.cli import app
from pseval.evals.schema import EVAL_TYPE_ID, PSEvalResult
from pseval.report.load import load_results
from tests.report.fabricate import FakeSAE, fake_result

# (dataset, split, pairs, SAE names): three groups that must never share a table or a figure.
GROUPS = [
    ("wic", "test", 40, ["topk_x8", "topk_x16"]),
    ("wic", "test", 24, ["topk_x32"]),
    ("my_pairs.jsonl", "all", 30, ["jumprelu_x8", "jumprelu_x16"]),
]


@pytest.fixture(scope="module")
def mixed_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("mixed")
    seed = 0
    for dataset, split, n_pairs, names in GROUPS:
        for name in names:
            architecture, expansion = name.split("_x")
            result = fake_result(FakeSAE(architecture, int(expansion), 6, "resid_post"), n_pairs, seed)
            config = result.eval_config.model_copy(update={"dataset": dataset, "split": split})
            result = result.model_copy(update={"eval_config": config, "sae_name": name})
            path = root / EVAL_TYPE_ID / f"{name}_eval_results.json"
            write_json_atomic(path, result.model_dump(mode="json"), indent=None)
            seed += 1
    return root


def test_results_are_grouped_by_dataset_split_and_pairs(mixed_folder: Path) -> None:
    from pseval.report.load import group_results

    groups = group_results(load_results(mixed_folder))
    assert [(g.dataset, g.split, g.n_pairs) for g in groups] == [
        ("my_pairs.jsonl", "all", 30),
        ("wic", "test", 24),
        ("wic", "test", 40),
    ]
    assert [sorted(r.sae_name for r in g.results) for g in groups] == [
        ["jumprelu_x16", "jumprelu_x8"],
        ["topk_x32"],
        ["topk_x16", "topk_x8"],
    ]
    assert groups[0].title == "my_pairs · all split · 30 pairs"
    assert len({g.slug for g in groups}) == 3


def _linked_names(html_text: str) -> list[str]:
    """The SAE names a table links to the drill-down (word-break hints removed)."""
    return [re.sub(r"<[^>]+>", "", name) for name in re.findall(r'data-sae="\d+">(.*?)</a>', html_text)]


def test_report_has_one_titled_table_per_group(mixed_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    result = CliRunner().invoke(app, ["report", str(mixed_folder), "--out", str(out), "--no-figures"])
    assert result.exit_code == 0, result.output
    page = out.read_text(encoding="utf-8")
    tables = re.findall(r'<table id="summary-[^"]+".*?</table>', page, flags=re.S)
    assert len(tables) == 3
    for title in (
        "my_pairs · all split · 30 pairs",
        "wic · test split · 24 pairs",
        "wic · test split · 40 pairs",
    ):
        assert f">{title}</h3>" in page
    by_names = [sorted(_linked_names(table)) for table in tables]
    assert by_names == [["jumprelu_x16", "jumprelu_x8"], ["topk_x32"], ["topk_x16", "topk_x8"]]
    # The drill-down links still select the right SAE among all of them.
    indices = sorted(int(i) for i in re.findall(r'class="sae-link" href="#drilldown" data-sae="(\d+)"', page))
    assert indices == list(range(5))


def test_plot_writes_one_figure_set_per_group(mixed_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "figures"
    result = CliRunner().invoke(app, ["plot", str(mixed_folder), "--out", str(out)])
    assert result.exit_code == 0, result.output
    subfolders = sorted(p.name for p in out.iterdir() if p.is_dir())
    assert subfolders == ["my_pairs-all-30pairs", "wic-test-24pairs", "wic-test-40pairs"]
    expected = [["jumprelu_x16", "jumprelu_x8"], ["topk_x32"], ["topk_x16", "topk_x8"]]
    for folder, names in zip(subfolders, expected, strict=True):
        with (out / folder / "summary.csv").open(encoding="utf-8") as handle:
            assert sorted(row["name"] for row in csv.DictReader(handle)) == names
        assert (out / folder / "recall_specificity.svg").exists()
    # No figure mixes groups at the top level; the top summary lists every SAE with its dataset.
    assert not list(out.glob("*.svg"))
    with (out / "summary.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 5 and {row["dataset"] for row in rows} == {"wic", "my_pairs.jsonl"}


def test_the_same_count_of_other_pairs_is_another_group() -> None:
    """Two --max-pairs draws of one size are different pairs: never one table, titles tell them apart."""
    from pseval.report.load import group_results

    def scored(seed: int, name: str, id_prefix: str) -> PSEvalResult:
        result = fake_result(FakeSAE("topk", 8, 6, "resid_post"), 20, seed)
        details = [d.model_copy(update={"id": f"{id_prefix}-{d.id}"}) for d in result.eval_result_details]
        config = result.eval_config.model_copy(update={"seed": seed, "max_pairs": 20})
        return result.model_copy(
            update={"eval_config": config, "sae_name": name, "eval_result_details": details}
        )

    groups = group_results([scored(0, "a", "s0"), scored(1, "b", "s1"), scored(0, "c", "s0")])
    assert [(g.title, [r.sae_name for r in g.results]) for g in groups] == [
        ("wic · test split · 20 pairs · seed 0", ["a", "c"]),
        ("wic · test split · 20 pairs · seed 1", ["b"]),
    ]
    assert len({g.slug for g in groups}) == 2
    same_seed = group_results([scored(0, "a", "x"), scored(0, "b", "y")])
    assert [g.title for g in same_seed] == [
        "wic · test split · 20 pairs · pair set 1",
        "wic · test split · 20 pairs · pair set 2",
    ]


def test_the_same_ids_of_another_dataset_file_are_another_group() -> None:
    """A rebuilt wordnet-2x2 reuses its ids for other pairs: results of the two files never share a table."""
    from pseval.data.datasets import dataset_sha256
    from pseval.report.load import group_results

    def scored(name: str, identity: dict[str, str] | None) -> PSEvalResult:
        result = fake_result(FakeSAE("topk", 8, 6, "resid_post"), 20, 0)
        config = result.eval_config.model_copy(update={"dataset": "wordnet-2x2"})
        return result.model_copy(
            update={"eval_config": config, "sae_name": name, "result_identity": identity}
        )

    now = {"dataset": "wordnet-2x2", "dataset_sha256": dataset_sha256("wordnet-2x2")}
    groups = group_results([scored("new", now), scored("old", None), scored("new_too", now)])
    assert [[r.sae_name for r in g.results] for g in groups] in (
        [["new", "new_too"], ["old"]],
        [["old"], ["new", "new_too"]],
    )
    assert len({g.title for g in groups}) == 2
