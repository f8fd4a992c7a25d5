"""The hook-site check: SAEs trained on the tiny model at one site, read at another, stop before scoring."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from pseval.cli import app
from pseval.evals import site_check
from pseval.evals.regime import InputRegime
from pseval.evals.site_check import judge, ratio_off, recorded_input_norm, recorded_stats
from pseval.metrics.site import site_reconstruction
from pseval.sae.config import config_from_dict
from tests.helpers import write_word_corpus

runner = CliRunner()

RESID = "blocks.2.hook_resid_post"
ATTN = "blocks.1.hook_attn_out"


# ---------------------------------------------------------------------------------------------- units


def test_recorded_stats_prefers_the_most_direct_record() -> None:
    held_out = {
        "eval": {"l0": 12.0, "fvu": 0.3},
        "final_train_l0": 20.0,
        "final_train_explained_variance": 0.5,
    }
    assert recorded_stats(held_out) == (12.0, 0.3, "pseval held-out evaluation")
    training = {"final_train_l0": 20.0, "final_train_explained_variance": 0.75}
    assert recorded_stats(training) == (20.0, 0.25, "pseval training (last batches)")
    assert recorded_stats({"registry_l0": 82}) == (82.0, None, "SAELens registry")
    folder = "/x/gemma-scope-2b-pt-res/layer_12/width_16k/average_l0_82"
    assert recorded_stats({}, (folder,)) == (82.0, None, "folder name")
    assert recorded_stats({}, (None, "layer_12_width_16k_l0_small")) == (None, None, None)
    assert recorded_stats({"l0": True}) == (None, None, None)  # a flag is no count


def test_judge_names_each_crossed_limit_and_spares_an_sae_at_its_own_site() -> None:
    assert judge(0.4, 1.1, 1.05, own_site=False) == ("pass", None)
    verdict, reason = judge(1.3, 4.0, 1.5, own_site=False)
    assert verdict == "fail" and reason is not None
    assert "FVU 1.3 > 1" in reason and "L0 4x off" in reason and "input norm 1.5x off" in reason
    assert judge(1.3, None, None, own_site=True)[0] == "poor_sae"
    assert judge(None, None, 1.21, own_site=False)[0] == "fail"


def test_ratio_off_is_symmetric_and_needs_a_positive_record() -> None:
    assert ratio_off(10.0, 5.0) == ratio_off(5.0, 10.0) == 2.0
    assert ratio_off(0.0, 5.0) == math.inf
    assert ratio_off(3.0, None) is None and ratio_off(3.0, 0.0) is None


def test_recorded_input_norm_only_for_unnormalised_inputs() -> None:
    cfg = config_from_dict({"architecture": "standard", "d_in": 16, "d_sae": 32})
    assert recorded_input_norm(cfg) is None
    cfg.metadata = {"activation_scale": 0.5}
    assert recorded_input_norm(cfg) == pytest.approx(8.0)
    cfg.normalize_activations = "layer_norm"
    assert recorded_input_norm(cfg) is None


def test_site_reconstruction_compares_a_transcoder_with_its_output_rows() -> None:
    class Doubler:
        def encode(self, x_ND: torch.Tensor) -> torch.Tensor:
            return x_ND

        def decode(self, feats_NF: torch.Tensor) -> torch.Tensor:
            return 2 * feats_NF

    x_ND = torch.randn(64, 8, generator=torch.Generator().manual_seed(0))
    assert site_reconstruction(Doubler(), x_ND, 2 * x_ND)["fvu"] == pytest.approx(0.0, abs=1e-12)
    assert site_reconstruction(Doubler(), x_ND)["fvu"] > 0.5


def _item(metadata: dict[str, Any], hook: str, regime: InputRegime, cfg_hook: str | None = None) -> Any:
    cfg = SimpleNamespace(metadata=metadata, hook_name=cfg_hook or metadata.get("hook_name"), model_name=None)
    return SimpleNamespace(cfg=cfg, hook=hook, regime=regime)


def test_the_likely_cause_names_what_the_run_overrides() -> None:
    meta = {"hook_name": RESID, "prepend_bos": True}
    cause, fix = site_check._likely_cause(_item(meta, "blocks.0.hook_resid_post", InputRegime(True)), True)
    assert "records blocks.2.hook_resid_post" in cause and fix.startswith("drop --hook")
    no_bos = InputRegime(False, source="--no-prepend-bos")
    cause, fix = site_check._likely_cause(_item(meta, RESID, no_bos), False)
    assert "--no-prepend-bos" in cause and fix == "drop --no-prepend-bos (or pass --prepend-bos)"


def test_a_bos_policy_the_config_contradicts_is_a_wrong_site_whatever_the_numbers() -> None:
    no_bos, bos = InputRegime(False, source="--no-prepend-bos"), InputRegime(True, source="--prepend-bos")
    problem = site_check.bos_contradiction(_item({"prepend_bos": True}, RESID, no_bos))
    assert (
        problem is not None and "without BOS (--no-prepend-bos)" in problem and "prepend_bos=True" in problem
    )
    assert site_check.bos_contradiction(_item({"prepend_bos": False}, RESID, bos)) is not None
    assert site_check.bos_contradiction(_item({"prepend_bos": True}, RESID, bos)) is None
    assert site_check.bos_contradiction(_item({}, RESID, no_bos)) is None  # nothing recorded: nothing known
    old_pseval = {"trained_with": "pseval"}  # trained on BOS-prefixed contexts before it recorded the policy
    assert site_check.recorded_bos(old_pseval) is True
    assert site_check.bos_contradiction(_item(old_pseval, RESID, no_bos)) is not None
    assert site_check.bos_contradiction(_item({"prepend_bos": True}, RESID, InputRegime(None))) is None
    verdict, reason = judge(0.2, 1.0, 1.01, own_site=True, bos_problem=problem)
    assert verdict == "fail" and reason == problem


def test_own_site_needs_the_recorded_model_hook_and_bos() -> None:
    config = SimpleNamespace(model_name="tiny")
    meta = {"trained_with": "pseval", "hook_name": RESID, "model_name": "tiny"}
    assert site_check.own_site(_item(meta, RESID, InputRegime(True)), config)
    assert not site_check.own_site(_item(meta, "blocks.0.hook_resid_post", InputRegime(True)), config)
    assert not site_check.own_site(_item(meta, RESID, InputRegime(False)), config)
    assert not site_check.own_site(_item({**meta, "trained_with": "x"}, RESID, InputRegime(True)), config)


# ---------------------------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> dict[str, Path]:
    """TopK SAEs pseval trains on the tiny model at RESID and at ATTN (a few seconds each)."""
    from pseval.training.config import TrainConfig
    from pseval.training.trainer import train_sae

    root = tmp_path_factory.mktemp("site-check")
    corpus = write_word_corpus(root / "docs.txt", 12_000)  # ~2,900 held-out tokens
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    folders = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PSEVAL_CACHE", str(root / "cache"))
        for name, hook in (("resid", RESID), ("attn", ATTN)):
            config = TrainConfig(
                model=str(tiny_model_dir),
                hook_name=hook,
                corpus=corpus,
                context_size=16,
                model_batch_size=8,
                architecture="topk",
                expansion_factor=4,
                k=4,
                batch_size=128,
                training_tokens=128 * 30,
                eval_tokens=256,
                buffer_tokens=1024,
                lr=3e-3,
                device="cpu",
                cache_dir=root / "acts",
                out=root / name,
            )
            folders[name] = train_sae(config, progress=False).out
    torch.set_num_threads(threads)
    return folders


def _eval(model: Path, data: Path, out: Path, sae: Path, *extra: str) -> Any:
    args = ["eval", "--model", str(model), "--dataset", str(data), "--bootstrap", "0", "--no-baselines"]
    return runner.invoke(app, [*args, "--interpret-tokens", "0", "--sae", str(sae), "-o", str(out), *extra])


@pytest.mark.site_check
def test_at_its_own_site_the_result_records_fvu_and_l0(
    trained: dict[str, Path], tiny_model_dir: Path, tiny_dataset_file: Path, tmp_path: Path, tmp_cache: Path
) -> None:
    result = _eval(tiny_model_dir, tiny_dataset_file, tmp_path / "out", trained["resid"])
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "out" / "ps_eval" / "resid_eval_results.json").read_text())
    check = saved["eval_result_metrics"]["site_check"]
    assert check["verdict"] == "pass" and check["hook_name"] == check["target_hook"] == RESID
    assert check["tokens"] == 2048 and check["prepend_bos"] is True and check["context_size"] == 16
    assert 0 < check["fvu"] < 1 and check["l0"] == pytest.approx(4.0)
    assert (
        check["recorded_l0"] == pytest.approx(4.0) and check["recorded_from"] == "pseval held-out evaluation"
    )
    assert check["input_norm_ratio"] < site_check.NORM_FACTOR
    assert check["corpus"].endswith("docs.txt")  # its own training corpus, read offline


@pytest.mark.site_check
@pytest.mark.parametrize(
    ("sae", "hook", "crossed"),
    [
        ("attn", "blocks.1.hook_resid_post", "input norm"),  # the wrong kind of hook
        ("resid", "blocks.0.hook_resid_post", "input norm"),  # two layers early
    ],
)
def test_read_at_another_site_it_stops_before_scoring_with_one_line(
    trained: dict[str, Path],
    tiny_model_dir: Path,
    tiny_dataset_file: Path,
    tmp_path: Path,
    tmp_cache: Path,
    sae: str,
    hook: str,
    crossed: str,
) -> None:
    out = tmp_path / "out"
    result = _eval(tiny_model_dir, tiny_dataset_file, out, trained[sae], "--hook", hook)
    assert result.exit_code == 2, result.output
    refusals = [line for line in result.output.splitlines() if "does not fit the site" in line]
    assert len(refusals) == 1 and "Traceback" not in result.output
    message = refusals[0]
    assert crossed in message
    assert f"its config records {RESID if sae == 'resid' else ATTN}" in message
    assert "drop --hook" in message and "--no-site-check" in message
    assert "scoring" not in message  # stopped before any SAE was scored
    assert not list(out.glob("ps_eval/*.json"))
    forced = _eval(tiny_model_dir, tiny_dataset_file, out, trained[sae], "--hook", hook, "--no-site-check")
    assert forced.exit_code == 0, forced.output
    saved = json.loads(next(out.glob("ps_eval/*.json")).read_text())
    assert "site_check" not in saved["eval_result_metrics"] and saved["eval_config"]["site_check"] is False


@pytest.mark.site_check
def test_read_without_the_bos_its_config_records_it_stops_before_the_model_loads(
    trained: dict[str, Path],
    tiny_model_dir: Path,
    tiny_dataset_file: Path,
    tmp_path: Path,
    tmp_cache: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import pseval.models.loading as loading

    out = tmp_path / "out"
    loads: list[Any] = []
    real_load = loading.load_model
    monkeypatch.setattr(loading, "load_model", lambda *a, **k: loads.append(a) or real_load(*a, **k))
    result = _eval(tiny_model_dir, tiny_dataset_file, out, trained["resid"], "--no-prepend-bos")
    assert result.exit_code == 2, result.output
    refusals = [line for line in result.output.splitlines() if "does not fit the site" in line]
    assert len(refusals) == 1 and "Traceback" not in result.output
    message = refusals[0]
    assert "bos_mismatch" in message and "without BOS (--no-prepend-bos)" in message
    assert "records prepend_bos=True" in message
    assert "drop --no-prepend-bos (or pass --prepend-bos)" in message and "--no-site-check" in message
    assert not loads and not list(out.glob("ps_eval/*.json"))
    forced = _eval(
        tiny_model_dir, tiny_dataset_file, out, trained["resid"], "--no-prepend-bos", "--no-site-check"
    )
    assert forced.exit_code == 0, forced.output


@pytest.mark.site_check
def test_the_check_records_a_bos_mismatch_in_its_verdict(
    trained: dict[str, Path], tiny_llama_loaded: Any, tmp_cache: Path
) -> None:
    from pseval.errors import SAEError
    from pseval.evals.config import PSEvalConfig
    from pseval.evals.regime import input_regime
    from pseval.evals.runner import open_items
    from pseval.metrics.site import site_activations

    config = PSEvalConfig(model_name="tiny", allow_model_mismatch=True, prepend_bos=False)
    (item,) = open_items([trained["resid"]])
    item.name, item.regime = "resid", input_regime(item.cfg.metadata, config)
    corpus = str(trained["resid"].parent / "docs.txt")
    rows = site_activations(tiny_llama_loaded, [RESID], 2048, False, corpus=corpus, context_size=16)
    check = site_check._measure_one(tiny_llama_loaded, item, rows, (False, 16, corpus), config, "cpu")
    assert check.verdict == "fail" and check.bos_mismatch and check.recorded_prepend_bos is True
    assert check.reason is not None and check.reason.startswith("its prompts are built without BOS")
    with pytest.raises(SAEError, match="bos_mismatch"):
        site_check.check_sites(tiny_llama_loaded, [item], config, "cpu")


@pytest.mark.site_check
def test_one_corpus_pass_serves_every_sae_of_a_hook(
    trained: dict[str, Path], tiny_llama_loaded: Any, monkeypatch: pytest.MonkeyPatch, tmp_cache: Path
) -> None:
    import pseval.metrics.site as site
    from pseval.evals.config import PSEvalConfig
    from pseval.evals.regime import input_regime
    from pseval.evals.runner import open_items

    calls: list[list[str]] = []
    real = site.site_activations

    def counted(loaded: Any, hooks: list[str], *args: Any, **kwargs: Any) -> Any:
        calls.append(list(hooks))
        return real(loaded, hooks, *args, **kwargs)

    monkeypatch.setattr(site, "site_activations", counted)
    config = PSEvalConfig(model_name="tiny", allow_model_mismatch=True)
    items = open_items([trained["resid"], trained["resid"], trained["attn"]])
    for i, item in enumerate(items):
        item.name, item.regime = f"sae{i}", input_regime(item.cfg.metadata, config)
    checks = site_check.check_sites(tiny_llama_loaded, items, config, "cpu")
    assert calls == [[ATTN, RESID]]  # one pass: same BOS, context length and corpus
    assert checks["sae0"] == checks["sae1"] and checks["sae0"].verdict == "pass"


def test_the_site_check_settings_are_not_part_of_a_result_identity() -> None:
    from pseval.evals.config import PSEvalConfig

    changed = PSEvalConfig(site_check=False, site_check_tokens=512, site_check_corpus="docs.txt")
    assert changed.identity() == PSEvalConfig().identity()  # results stored before the check stay finished


def test_a_transcoder_is_checked_at_its_output_hook(tiny_llama_loaded: Any) -> None:
    def target(transcoder: dict[str, Any]) -> tuple[str | None, str | None]:
        item = _item({"transcoder": transcoder}, "blocks.1.hook_mlp_in", InputRegime(True))
        return site_check._target_hook(item, tiny_llama_loaded)

    assert target({"hook_name_out": "blocks.1.hook_mlp_out"}) == ("blocks.1.hook_mlp_out", None)
    assert target({"hook_name_out": "blocks.1.hook_mlp_out", "skip_connection": True})[0] is None
    none, why = target({"hook_name_out": "model.layers.1.post_feedforward_layernorm"})
    assert none is None and why is not None and "not one pseval reads" in why
    plain = _item({}, RESID, InputRegime(True))
    assert site_check._target_hook(plain, tiny_llama_loaded) == (RESID, None)
