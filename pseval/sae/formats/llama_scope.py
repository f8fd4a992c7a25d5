"""Llama Scope (Llama-3.1-8B): ``hyperparams.json`` + ``checkpoints/final.safetensors`` per SAE folder
(``Llama3_1-8B-Base-L15R-8x``).

As sae-lens's ``llama_scope`` converter: ``W_enc = encoder.weight.T``, ``W_dec = decoder.weight.T``, a JumpReLU
with one threshold for every latent, ``b_dec`` not subtracted. The SAE was trained on activations scaled
by ``s = sqrt(d_model) / dataset_average_activation_norm.in``; that factor is folded into the weights
(``W_enc * s``, ``W_dec / s``, ``b_dec / s``, as ``SAE.fold_activation_norm_scaling_factor``) and the threshold
rescaled by it, so the SAE reads raw activations. The weights are stored in bfloat16; like every other
reader (and ``SAE.from_pretrained``), the SAE is built in the requested dtype, float32 unless asked, with the
weights cast to it before the fold, as sae-lens does.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from pseval.errors import SAEError
from pseval.sae.formats._common import (
    header_shapes_and_dtypes,
    materialise,
    read_json,
    read_safetensors,
    resolve,
)
from pseval.sae.formats._registry import ReleaseContext, ReleaseFiles, SAEFormat, register_format
from pseval.sae.model import SAE
from pseval.sae.source import SAESource

LLAMA_SCOPE_CFG = "hyperparams.json"
LLAMA_SCOPE_WEIGHTS = "checkpoints/final.safetensors"
LLAMA_SCOPE_MODEL = "meta-llama/Llama-3.1-8B"
_KEYS = {
    "encoder.weight": "W_enc",
    "decoder.weight": "W_dec",
    "encoder.bias": "b_enc",
    "decoder.bias": "b_dec",
}


def _weights_file(folder: Path) -> Path:
    final = folder / LLAMA_SCOPE_WEIGHTS
    if final.is_file():
        return final
    found = sorted((folder / "checkpoints").glob("*.safetensors"))
    if len(found) == 1:
        return found[0]
    raise SAEError(
        f"{folder} has no {LLAMA_SCOPE_WEIGHTS}" + (f" and {len(found)} other checkpoints" if found else ""),
        "download the release folder with its checkpoints/final.safetensors",
    )


def open_llama_scope(folder: Path, norm_scaling_factor: float | None = None) -> SAESource:
    """Open a Llama Scope folder. ``norm_scaling_factor`` (the registry's, for ``saelens:`` specs) replaces
    the one derived from ``hyperparams.json`` for the weights fold, as sae-lens does."""
    where = str(folder)
    hp = read_json(folder / LLAMA_SCOPE_CFG)
    weights = _weights_file(folder)
    file_shapes, file_dtypes = header_shapes_and_dtypes(weights)
    try:
        d_model = int(hp["d_model"])
        d_sae = int(hp["d_sae"])
        threshold = float(hp["jump_relu_threshold"])
        norm_in = float(hp["dataset_average_activation_norm"]["in"])
    except (KeyError, TypeError, ValueError) as exc:
        raise SAEError(
            f"{folder / LLAMA_SCOPE_CFG} lacks {exc} (d_model, d_sae, jump_relu_threshold, "
            "dataset_average_activation_norm.in)",
            "use the hyperparams.json of the release",
        ) from None
    if norm_in <= 0:
        raise SAEError(f"{where}: dataset_average_activation_norm.in is {norm_in}", "use the release's file")
    threshold_scale = math.sqrt(d_model) / norm_in
    fold = float(norm_scaling_factor) if norm_scaling_factor is not None else threshold_scale
    unexpected = sorted(set(file_shapes) - set(_KEYS))
    if unexpected:
        raise SAEError(f"{where}: unexpected tensors {', '.join(unexpected)}", "use a Llama Scope checkpoint")
    shapes = {_KEYS[k]: tuple(reversed(s)) if k.endswith("weight") else s for k, s in file_shapes.items()}
    metadata: dict[str, Any] = {
        "source": where,
        "source_format": "llama_scope",
        "prepend_bos": True,
        "hook_name_in_release": hp.get("hook_point_in"),
        "jump_relu_threshold": threshold,
        "norm_scaling_factor_folded": fold,
        "threshold_rescaled_by": threshold_scale,
    }
    if hp.get("hook_point_out") not in (None, hp.get("hook_point_in")):
        metadata["hook_name_out"] = hp.get("hook_point_out")
    fields = {
        "architecture": "jumprelu",
        "d_in": d_model,
        "d_sae": d_sae,
        "dtype": "float32",
        "apply_b_dec_to_input": False,
        "normalize_activations": "none",
        "hook_name": hp.get("hook_point_in"),
        "model_name": LLAMA_SCOPE_MODEL,
        "metadata": metadata,
    }
    dtypes = {_KEYS[k]: d for k, d in file_dtypes.items()}
    stored = next((d for d in dtypes.values() if d.is_floating_point), None)
    plan = resolve({**fields}, {**shapes, "threshold": (d_sae,)}, where, stored, dtypes)

    def build(dtype: str | None) -> SAE:
        raw = read_safetensors(weights)
        # as sae-lens: the weights are cast to the requested dtype (float32 by default) and folded in it
        work = getattr(torch, dtype or "float32")
        t = {_KEYS[k]: (v.T if k.endswith("weight") else v).to(work) for k, v in raw.items()}
        with torch.no_grad():
            t["W_enc"] = (t["W_enc"].float() * fold).to(work)
            t["W_dec"] = (t["W_dec"].float() / fold).to(work)
            t["b_dec"] = (t["b_dec"].float() / fold).to(work)
            t["threshold"] = torch.ones(d_sae, dtype=work) * (threshold * threshold_scale)
        return materialise(plan, t, dtype)

    return SAESource(
        spec=where,
        cfg=plan.cfg,
        format="llama_scope",
        path=folder,
        files=(folder / LLAMA_SCOPE_CFG, weights),
        builder=build,
        conversion="folded in the requested dtype, float32 by default",
    )


def _open_in_release(folder: Path, release: ReleaseContext) -> SAESource:
    # the registry, not hyperparams.json, holds the norm scaling factor sae-lens folds in
    return open_llama_scope(folder, norm_scaling_factor=release.entry.get("norm_scaling_factor"))


def _detect(path: Path) -> bool:
    return path.is_dir() and (path / LLAMA_SCOPE_CFG).is_file() and (path / "checkpoints").is_dir()


LLAMA_SCOPE = register_format(
    SAEFormat(
        name="llama_scope",
        layout=f"{LLAMA_SCOPE_CFG} + {LLAMA_SCOPE_WEIGHTS}",
        detect=_detect,
        open=open_llama_scope,
        conversion_funcs=("llama_scope",),
        release_files=ReleaseFiles(required=(LLAMA_SCOPE_CFG, LLAMA_SCOPE_WEIGHTS)),
        open_in_release=_open_in_release,
    )
)
