"""Gemma Scope 2 (Gemma 3): ``params.safetensors`` (``w_enc [d_in, d_sae]``, ``w_dec [d_sae, d_out]``,
``b_enc``, ``b_dec``, ``threshold``) + ``config.json``, one folder per SAE as the release ships it
(``resid_post/layer_12_width_16k_l0_small``).

As sae-lens's ``gemma_3`` converter: JumpReLU, ``b_dec`` not subtracted from the input, no input
normalisation, BOS prepended; the hook comes from the folder path (see
:func:`~pseval.sae.formats.hooks.gemma_scope_2_hooks`). Transcoders (``transcoder`` folders; a skip
connection ``affine_skip_connection`` when ``affine_connection``) are read on their encoder side at
``blocks.L.hook_mlp_in``. The stored orientation already is pseval's, so every tensor is a lazy
:class:`~pseval.sae.source.TensorRef`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pseval.errors import SAEError
from pseval.sae.formats._common import (
    header_shapes_and_dtypes,
    materialise,
    read_json,
    read_safetensors,
    resolve,
    transcoder_metadata,
)
from pseval.sae.formats._registry import ReleaseFiles, SAEFormat, register_format
from pseval.sae.formats.hooks import gemma_3_model_name, gemma_scope_2_hooks, infer_gemma_scope_2_config
from pseval.sae.model import SAE
from pseval.sae.source import SAESource, TensorRef

GEMMA_SCOPE_2_WEIGHTS = "params.safetensors"
GEMMA_SCOPE_2_CFG = "config.json"
_KEYS = {"w_enc": "W_enc", "w_dec": "W_dec", "b_enc": "b_enc", "b_dec": "b_dec", "threshold": "threshold"}
_SKIP = "affine_skip_connection"


def open_gemma_scope_2(folder: Path) -> SAESource:
    """Open a Gemma Scope 2 SAE folder from ``config.json`` and the safetensors header."""
    where = str(folder)
    weights = folder / GEMMA_SCOPE_2_WEIGHTS
    cfg_path = folder / GEMMA_SCOPE_2_CFG
    # without config.json, infer it from the path as sae-lens does, so both routes record the same model and hooks
    raw_cfg: dict[str, Any] = (
        read_json(cfg_path) if cfg_path.is_file() else infer_gemma_scope_2_config(folder)
    )
    architecture = raw_cfg.get("architecture", "jump_relu")
    if architecture != "jump_relu":
        raise SAEError(
            f"{where}: Gemma Scope 2 architecture {architecture!r} is not supported", "use a jump_relu SAE"
        )
    file_shapes, file_dtypes = header_shapes_and_dtypes(weights)
    unexpected = sorted(set(file_shapes) - set(_KEYS) - {_SKIP})
    if unexpected:
        raise SAEError(
            f"{where}: unexpected tensors {', '.join(unexpected)} in {GEMMA_SCOPE_2_WEIGHTS}",
            "use a Gemma Scope 2 params.safetensors",
        )
    if len(file_shapes.get("w_dec", ())) == 3:
        raise SAEError(
            f"{where} is a cross-layer transcoder (w_dec has 3 dimensions)",
            "use a per-layer Gemma Scope 2 SAE or transcoder",
        )
    hook, hook_out = gemma_scope_2_hooks(folder, raw_cfg.get("hf_hook_point_in"))
    metadata: dict[str, Any] = {
        "source": where,
        "source_format": "gemma_scope_2",
        "prepend_bos": True,
        "hf_hook_name": raw_cfg.get("hf_hook_point_in"),
        "gemma_scope_2_cfg": raw_cfg,
        "gemma_scope_2_cfg_inferred": not cfg_path.is_file(),
    }
    if hook_out is not None:
        d_in = file_shapes["w_enc"][0] if "w_enc" in file_shapes else 0
        d_out = file_shapes["w_dec"][-1] if "w_dec" in file_shapes else None
        skip = bool(raw_cfg.get("affine_connection")) or _SKIP in file_shapes
        metadata.update(transcoder_metadata(d_in, d_out, hook_out, skip, where))
        metadata["hf_hook_name_out"] = raw_cfg.get("hf_hook_point_out")
    fields = {
        "architecture": "jumprelu",
        "apply_b_dec_to_input": False,
        "normalize_activations": "none",
        "hook_name": hook,
        "model_name": gemma_3_model_name(raw_cfg.get("model_name")),
        "metadata": metadata,
    }
    shapes = {_KEYS[k]: s for k, s in file_shapes.items() if k in _KEYS}
    dtypes = {_KEYS[k]: d for k, d in file_dtypes.items() if k in _KEYS}
    stored = next((d for d in dtypes.values() if d.is_floating_point), None)
    plan = resolve(fields, shapes, where, stored, dtypes)

    def build(dtype: str | None) -> SAE:
        raw = read_safetensors(weights, set(_KEYS))
        return materialise(plan, {_KEYS[k]: t for k, t in raw.items()}, dtype)

    files = (weights, cfg_path) if cfg_path.is_file() else (weights,)
    return SAESource(
        spec=where,
        cfg=plan.cfg,
        format="gemma_scope_2",
        path=folder,
        tensors={
            name: TensorRef(weights, key, plan.transposed.get(name, False))
            for key, name in _KEYS.items()
            if key in file_shapes
        },
        files=files,
        builder=build,
    )


def _detect(path: Path) -> bool:
    return path.is_dir() and (path / GEMMA_SCOPE_2_WEIGHTS).is_file()


GEMMA_SCOPE_2 = register_format(
    SAEFormat(
        name="gemma_scope_2",
        layout=f"{GEMMA_SCOPE_2_WEIGHTS} + {GEMMA_SCOPE_2_CFG}",
        detect=_detect,
        open=open_gemma_scope_2,
        conversion_funcs=("gemma_3",),
        release_files=ReleaseFiles(required=(GEMMA_SCOPE_2_WEIGHTS,), optional=(GEMMA_SCOPE_2_CFG,)),
    )
)
