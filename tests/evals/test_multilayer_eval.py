"""``pseval eval --sae CLT_DIR``: per-layer and global results of CLTs and crosscoders, recomputed by hand."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from pseval.cli import app
from pseval.data.datasets import load_dataset
from pseval.data.prompts import build_prompts
from pseval.evals.schema import PSEvalResult
from pseval.models.hooks import run_with_cache
from pseval.models.loading import load_model
from pseval.sae.architectures.jumprelu import jumprelu_activation
from tests.sae.multilayer_fixtures import (
    write_circuit_tracer_clt,
    write_gemma_scope_2_clt,
    write_gemma_scope_2_crosscoder,
)


def _eval(model: Path, dataset: Path, sae: Path, out: Path, *extra: str) -> Any:
    args = ["eval", "--model", str(model), "--dataset", str(dataset), "--sae", str(sae)]
    return CliRunner().invoke(
        app, [*args, "--output-folder", str(out), "--bootstrap", "0", "--allow-model-mismatch", *extra]
    )


def _result(out: Path, name: str) -> PSEvalResult:
    return PSEvalResult.model_validate_json((out / "ps_eval" / f"{name}_eval_results.json").read_text())


def _inputs(
    model_dir: Path, dataset: Path, hooks: list[str], prepend_bos: bool | None = None
) -> tuple[list[Any], dict[str, torch.Tensor]]:
    """Each unique prompt's vector at its target, per hook, one prompt at a time (no batching)."""
    loaded = load_model(str(model_dir))
    ds = load_dataset(loaded.tokenizer, name=str(dataset), split="test")
    ps = build_prompts(loaded.tokenizer, ds, prepend_bos=prepend_bos)
    rows: dict[str, list[torch.Tensor]] = {h: [] for h in hooks}
    for prompt in ps.prompts:
        ids = torch.tensor([prompt.input_ids])
        acts = run_with_cache(loaded.model, ids, torch.ones_like(ids), hooks)
        for h in hooks:
            rows[h].append(acts[h][0, prompt.target_index])
    return ps.pair_index, {h: torch.stack(v) for h, v in rows.items()}


def _top1(codes_PF: torch.Tensor) -> list[int]:
    values, index = codes_PF.max(dim=-1)
    return [int(i) if v > 0 else -1 for v, i in zip(values, index, strict=True)]


def _check_latents(result: PSEvalResult, pair_index: list[Any], top: list[int]) -> None:
    for detail, (a, b) in zip(result.eval_result_details, pair_index, strict=True):
        assert (detail.latent_1, detail.latent_2) == (top[a], top[b])


def test_gemma_scope_2_clt_per_layer_and_global(
    tmp_path: Path, tmp_cache: Path, tiny_model_dir: Path, tiny_dataset_file: Path
) -> None:
    folder = tmp_path / "gemma-scope-2-270m-pt" / "clt" / "width_16k_l0_medium"
    tensors = write_gemma_scope_2_clt(folder, n_layers=3, d=32, n=48, seed=1)
    out = tmp_path / "results"
    # A few corpus tokens: the interpretation reads the global view's composite hook from the corpus too.
    result = _eval(tiny_model_dir, tiny_dataset_file, folder, out, "--interpret-tokens", "256")
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in (out / "ps_eval").glob("*.json"))
    stems = ["layer_0", "layer_1", "layer_2", "global_2"]
    assert names == sorted(f"width_16k_l0_medium_{s}_eval_results.json" for s in stems)

    hooks = [f"blocks.{i}.hook_mlp_in" for i in range(3)]
    pairs, acts = _inputs(
        tiny_model_dir, tiny_dataset_file, hooks, prepend_bos=True
    )  # Gemma Scope 2's policy
    codes = [
        jumprelu_activation(acts[h] @ t["w_enc"] + t["b_enc"], t["threshold"])
        for h, t in zip(hooks, tensors, strict=True)
    ]
    for i in range(3):
        layer = _result(out, f"width_16k_l0_medium_layer_{i}")
        assert layer.hook_name == hooks[i] and layer.sae_cfg_dict["d_sae"] == 48
        _check_latents(layer, pairs, _top1(codes[i]))
    norms = [t["w_dec"].flatten(1).norm(dim=-1) for t in tensors]
    scaled = torch.cat([c * n for c, n in zip(codes, norms, strict=True)], dim=1)
    whole = _result(out, "width_16k_l0_medium_global_2")
    assert whole.hook_name == "+".join(hooks) and whole.sae_cfg_dict["d_sae"] == 144
    assert whole.sae_cfg_dict["metadata"]["multilayer"]["scaled_by_decoder_norm"] is True
    _check_latents(whole, pairs, _top1(scaled))
    # The decoder-norm scaling decides the winner: unscaled, some pair's top latent differs.
    assert _top1(torch.cat(codes, dim=1)) != _top1(scaled)
    # The same files again: every result is found finished; a pattern picks views.
    again = _eval(
        tiny_model_dir,
        tiny_dataset_file,
        folder,
        out,
        "--sae-pattern",
        "layer_1|global_1",
        "--interpret-tokens",
        "256",
    )
    assert again.exit_code == 0, again.output
    assert "skip width_16k_l0_medium_layer_1" in again.output
    assert _result(out, "width_16k_l0_medium_global_1").sae_cfg_dict["d_sae"] == 96


def test_crosscoder_views(
    tmp_path: Path, tmp_cache: Path, tiny_model_dir: Path, tiny_dataset_file: Path
) -> None:
    folder, tensors = write_gemma_scope_2_crosscoder(tmp_path / "crosscoder", layers=(0, 2), seed=2)
    out = tmp_path / "results"
    result = _eval(tiny_model_dir, tiny_dataset_file, folder, out, "--interpret-tokens", "0")
    assert result.exit_code == 0, result.output
    hooks = ["blocks.0.hook_resid_post", "blocks.2.hook_resid_post"]
    pairs, acts = _inputs(tiny_model_dir, tiny_dataset_file, hooks, prepend_bos=True)
    codes = [
        jumprelu_activation(acts[h] @ t["w_enc"] + t["b_enc"], t["threshold"])
        for h, t in zip(hooks, tensors, strict=True)
    ]
    norms = [t["w_dec"].flatten(1).norm(dim=-1) for t in tensors]
    name = folder.name
    whole = torch.cat([c * n for c, n in zip(codes, norms, strict=True)], dim=1)
    _check_latents(_result(out, f"{name}_global"), pairs, _top1(whole))
    # The report reads the composite hook of the global result like any other.
    report = CliRunner().invoke(app, ["report", str(out), "--out", str(out / "report.html"), "--no-figures"])
    assert report.exit_code == 0, report.output
    assert f"{folder.name}_global" in (out / "report.html").read_text()
    _check_latents(_result(out, f"{name}_layer_2"), pairs, _top1(codes[1]))


def test_circuit_tracer_clt_and_sense_retrieval(
    tmp_path: Path, tmp_cache: Path, tiny_model_dir: Path, tiny_dataset_file: Path
) -> None:
    folder = tmp_path / "clt-tiny"
    tensors = write_circuit_tracer_clt(folder, n_layers=3, seed=3)
    out = tmp_path / "results"
    result = _eval(
        tiny_model_dir,
        tiny_dataset_file,
        folder,
        out,
        "--sae-pattern",
        "layer_1|global_2",
        "--interpret-tokens",
        "0",
    )
    assert result.exit_code == 0, result.output
    hooks = [f"blocks.{i}.hook_mlp_in" for i in range(3)]
    pairs, acts = _inputs(tiny_model_dir, tiny_dataset_file, hooks)
    codes = [
        jumprelu_activation(acts[h] @ t[f"W_enc_{i}"].T + t[f"b_enc_{i}"], t[f"threshold_{i}"])
        for i, (h, t) in enumerate(zip(hooks, tensors, strict=True))
    ]
    _check_latents(_result(out, "clt-tiny_layer_1"), pairs, _top1(codes[1]))
    norms = [t[f"W_dec_{i}"].flatten(1).norm(dim=-1) for i, t in enumerate(tensors)]
    whole = _result(out, "clt-tiny_global_2")
    _check_latents(whole, pairs, _top1(torch.cat([c * n for c, n in zip(codes, norms, strict=True)], 1)))
    # Sense retrieval rides on the same pass as on any SAE (the pair dataset's labels give the senses).
    assert "sense_retrieval" in whole.eval_result_metrics
    assert "baseline_random_sae" in whole.eval_result_metrics


def test_hook_and_bad_pattern_are_one_line(
    tmp_path: Path, tmp_cache: Path, tiny_model_dir: Path, tiny_dataset_file: Path
) -> None:
    folder = tmp_path / "clt" / "width_16k_l0_small"
    write_gemma_scope_2_clt(folder, n_layers=3)
    out = tmp_path / "results"
    for extra, needle in (
        (["--hook", "blocks.1.hook_mlp_in"], "--hook does not apply"),
        (["--sae-pattern", "layer_7"], "matches none of"),
    ):
        result = _eval(tiny_model_dir, tiny_dataset_file, folder, out, *extra)
        assert result.exit_code == 2 and needle in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("bad", ["b_enc", "missing_decoder"])
def test_refused_layouts(tmp_path: Path, tmp_cache: Path, bad: str) -> None:
    from pseval.errors import SAEError
    from pseval.evals.multilayer import expand_multilayer
    from pseval.sae.lazy import lazy_blocks

    if bad == "b_enc":
        folder, tensors = write_gemma_scope_2_crosscoder(tmp_path, layers=(0, 1))
        from safetensors.torch import save_file

        changed = {**tensors[1], "b_enc": tensors[1]["b_enc"][:-1].contiguous()}
        save_file(changed, str(folder / "params_layer_1.safetensors"))
        with pytest.raises(SAEError, match="b_enc"):
            lazy_blocks(expand_multilayer([str(folder)])[-1])
    else:
        folder = tmp_path / "ct"
        write_circuit_tracer_clt(folder)
        (folder / "W_dec_1.safetensors").unlink()
        with pytest.raises(SAEError, match="W_dec files are missing"):
            expand_multilayer([str(folder)])
    json.dumps({})  # keep json imported for the fixtures' config files


def test_ray_executor_refuses_cross_layer_folders(tmp_path: Path) -> None:
    from pseval.distributed.evaluate import evaluate_ray
    from pseval.errors import ConfigError
    from pseval.evals.config import PSEvalConfig

    folder = tmp_path / "clt" / "width_16k_l0_small"
    write_gemma_scope_2_clt(folder, n_layers=2)
    with pytest.raises(ConfigError, match="--executor local"):
        evaluate_ray("m", [str(folder)], config=PSEvalConfig(model_name="m"), output_folder=tmp_path / "out")


@pytest.mark.site_check
def test_the_site_check_passes_over_cross_layer_views(
    tmp_path: Path, tmp_cache: Path, tiny_model_dir: Path, tiny_dataset_file: Path
) -> None:
    """With the hook-site check on (the default), a CLT folder is scored; its views are named as not checked."""
    folder = tmp_path / "gemma-scope-2-270m-pt" / "clt" / "width_16k_l0_medium"
    write_gemma_scope_2_clt(folder, n_layers=2, d=32, n=16, seed=3)
    out = tmp_path / "results"
    result = _eval(tiny_model_dir, tiny_dataset_file, folder, out, "--interpret-tokens", "0")
    assert result.exit_code == 0, result.output
    assert "cross-layer view(s) not checked" in result.output
    assert len(list((out / "ps_eval").glob("*.json"))) == 3
