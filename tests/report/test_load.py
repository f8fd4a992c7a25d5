"""Reading results folders back: discovery, validation, the flat summary table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pseval.errors import DataError
from pseval.report.load import (
    context_line,
    display_names,
    load_results,
    parse_hook,
    summary_table,
)
from tests.report.fabricate import FakeSAE, fake_result


def test_finds_nested_results_and_skips_other_evals(results_folder: Path) -> None:
    results = load_results(results_folder)
    assert len(results) == 26
    assert all(r.eval_type_id == "ps_eval" for r in results)
    # Sorted by layer, then hook kind in block order, then architecture, then width.
    hooks = [r.hook_name for r in results]
    assert hooks[:3] == ["blocks.0.hook_attn_out", "blocks.0.hook_mlp_out", "blocks.0.hook_resid_post"]
    at_l6 = [r.sae_name for r in results if r.hook_name == "blocks.6.hook_resid_post"]
    assert at_l6[:2] == ["standard_x4_L6_resid_post", "standard_x8_L6_resid_post"]


def test_summary_table_has_the_key_numbers(results_folder: Path) -> None:
    rows = summary_table(load_results(results_folder))
    row = next(r for r in rows if r["name"] == "topk_x16_L6_resid_post")
    assert row["layer"] == 6 and row["hook_kind"] == "resid_post"
    assert row["architecture"] == "topk" and row["k"] == 32 and row["expansion_ratio"] == 16
    assert row["d_sae"] == 576 * 16
    assert 0 <= row["specificity_low"] <= row["specificity"] <= row["specificity_high"] <= 1
    assert row["tp"] + row["fp"] + row["tn"] + row["fn"] == row["n_pairs"] == 72
    assert row["l0"] == 32 and row["fvu"] > 0 and row["ce_loss_recovered"] is not None
    assert row["dense_specificity"] is not None and row["random_specificity"] is not None
    no_standard = next(r for r in rows if r["name"] == "jumprelu_x4_L6_resid_post")
    assert no_standard.get("l0") is None and no_standard.get("fvu") is None
    assert no_standard["code_cosine_roc_auc"] is None  # a null in the file stays None
    no_baseline = next(r for r in rows if r["name"] == "topk_x16_L0_resid_post")
    assert no_baseline.get("dense_specificity") is None
    assert context_line(load_results(results_folder)) == "smollm2-135m · wic (test split) · 72 pairs"


def test_context_line_names_the_training_budget() -> None:
    one = fake_result(FakeSAE("topk", 8, 6, "resid_post"), n_pairs=10, seed=0)
    other = fake_result(FakeSAE("topk", 16, 6, "resid_post"), n_pairs=10, seed=1)
    one.sae_cfg_dict["metadata"] = {"training_tokens": 3_000_000}
    assert context_line([one]).endswith("10 pairs · SAEs trained on 3,000,000 tokens")
    other.sae_cfg_dict["metadata"] = {"training_tokens": 131_072}
    assert context_line([one, other]).endswith("SAEs trained on 131,072–3,000,000 tokens")
    other.sae_cfg_dict["metadata"] = {}  # an SAE trained elsewhere: no budget is claimed for the set
    assert context_line([one, other]).endswith("10 pairs")


@pytest.mark.parametrize(
    ("hook", "expected"),
    [
        ("blocks.12.hook_attn_out", (12, "attn_out")),
        ("blocks.0.hook_resid_pre", (0, "resid_pre")),
        ("blocks.3.hook_mlp_out", (3, "mlp_out")),
        ("blocks.5.attn.hook_z", (5, "z")),
        ("embed", (None, None)),
    ],
)
def test_parse_hook(hook: str, expected: tuple[int | None, str | None]) -> None:
    assert parse_hook(hook) == expected


def test_duplicate_names_are_disambiguated() -> None:
    a = fake_result(FakeSAE("topk", 8, 2, "resid_post"), 10, seed=1)
    b = fake_result(FakeSAE("topk", 8, 2, "resid_post"), 10, seed=2)
    b.hook_name = "blocks.3.hook_resid_post"
    c = fake_result(FakeSAE("topk", 8, 2, "resid_post"), 10, seed=3)
    names = display_names([a, b, c])
    assert len(set(names)) == 3
    assert names[1] == "topk_x8_L2_resid_post @ blocks.3.hook_resid_post"


def test_missing_folder_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        load_results(tmp_path / "nowhere")


def test_empty_folder_is_a_data_error_with_a_fix(tmp_path: Path) -> None:
    (tmp_path / "ps_eval").mkdir()
    (tmp_path / "ps_eval" / "x_eval_results.json").write_text(json.dumps({"eval_type_id": "core"}))
    with pytest.raises(DataError, match="pseval eval") as info:
        load_results(tmp_path)
    assert info.value.fix


def test_corrupt_result_is_a_data_error(tmp_path: Path) -> None:
    (tmp_path / "ps_eval").mkdir()
    (tmp_path / "ps_eval" / "bad_eval_results.json").write_text('{"eval_type_id": "ps_eval"')
    with pytest.raises(DataError, match=r"bad_eval_results\.json"):
        load_results(tmp_path)
    (tmp_path / "ps_eval" / "bad_eval_results.json").write_text('{"eval_type_id": "ps_eval"}')
    with pytest.raises(DataError, match="not a valid PS-Eval result"):
        load_results(tmp_path)


def test_a_single_file_can_be_loaded(single_result_folder: Path) -> None:
    path = single_result_folder / "ps_eval" / "standard_x8_L3_resid_pre_eval_results.json"
    assert [r.sae_name for r in load_results(path)] == ["standard_x8_L3_resid_pre"]
