"""EleutherAI sparsify: one folder per hook point with ``cfg.json`` + ``sae.safetensors``.

Folders are named after the Hugging Face module they hook: ``layers.N`` (residual stream after block N),
``layers.N.mlp`` (MLP), or ``layer_N`` in older releases. ``encode`` subtracts ``b_dec`` (unless
transcoding), applies the linear map and ReLU, then the top-k. Transcoders (``transcode``, optionally a
``skip_connection``) are read at the module's input.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch

from pseval._io import atomic_dir, write_json_atomic
from pseval._version import __version__ as _pseval_version
from pseval.errors import SAEError
from pseval.sae.config import TopKSAEConfig
from pseval.sae.formats._common import (
    header_shapes_and_dtypes,
    materialise,
    read_json,
    read_safetensors,
    resolve,
    transcoder_metadata,
)
from pseval.sae.formats._registry import ReleaseFiles, SAEFormat, register_format
from pseval.sae.formats._writing import prepare_destination, require_plain_input
from pseval.sae.formats.hooks import hf_module_input_to_hook, hf_module_to_hook
from pseval.sae.model import SAE
from pseval.sae.source import SAESource, TensorRef

SPARSIFY_CFG = "cfg.json"
SPARSIFY_WEIGHTS = "sae.safetensors"

#: file key -> (pseval name, stored transposed: nn.Linear weights are [out, in])
_KEYS: dict[str, tuple[str, bool]] = {
    "encoder.weight": ("W_enc", True),
    "encoder.bias": ("b_enc", False),
    "decoder.weight": ("W_dec", True),
    "decoder.bias": ("b_dec", False),
    "W_enc": ("W_enc", False),
    "W_dec": ("W_dec", False),
    "b_enc": ("b_enc", False),
    "b_dec": ("b_dec", False),
}


def sparsify_module_name(folder_name: str) -> str:
    """The Hugging Face module path of a sparsify folder (``layer_3`` -> ``layers.3``)."""
    match = re.fullmatch(r"layers?_(\d+)((?:\.\w+)?)", folder_name)
    if match is not None:
        return f"layers.{match.group(1)}{match.group(2)}"
    return folder_name


def sparsify_hook(folder_name: str, transcode: bool = False) -> str | None:
    """The hook a sparsify SAE (or the input hook of a transcoder) in folder ``folder_name`` reads."""
    module = sparsify_module_name(folder_name)
    return hf_module_input_to_hook(module) if transcode else hf_module_to_hook(module)


def _tensor_names(
    file_shapes: dict[str, Any], transcode: bool, where: str
) -> tuple[dict[str, str], dict[str, bool]]:
    """Each file tensor's SAELens name and whether the file stores it transposed (a ``Linear`` weight)."""
    names: dict[str, str] = {}
    transposed_in_file: dict[str, bool] = {}
    for key in file_shapes:
        if key == "W_skip" and transcode:
            continue  # the skip connection is not part of the encoder side
        if key not in _KEYS:
            raise SAEError(
                f"{where}: unexpected tensor {key!r} in {SPARSIFY_WEIGHTS}", "use a plain TopK sparsify SAE"
            )
        names[key], transposed_in_file[key] = _KEYS[key]
    return names, transposed_in_file


def _run_model_name(folder: Path) -> Any:
    """The model of the training run, from the run's ``config.json`` beside the hook folders (None: none)."""
    run_cfg = folder.parent / "config.json"
    if not run_cfg.is_file():
        return None
    try:
        return json.loads(run_cfg.read_text(encoding="utf-8")).get("model")
    except (json.JSONDecodeError, UnicodeDecodeError, OSError, AttributeError):
        return None


def open_sparsify(folder: Path) -> SAESource:
    """Open a sparsify hook point folder from ``cfg.json`` and the safetensors header."""
    cfg = read_json(folder / SPARSIFY_CFG)
    weights = folder / SPARSIFY_WEIGHTS
    file_shapes, file_dtypes = header_shapes_and_dtypes(weights)
    where = str(folder)
    activation = cfg.get("activation", "topk")
    if activation != "topk":
        raise SAEError(
            f"{where}: sparsify activation {activation!r} is not supported", "use a TopK sparsify SAE"
        )
    if cfg.get("signed"):
        raise SAEError(f"{where}: signed sparsify SAEs are not supported", "use an unsigned TopK SAE")
    transcode = bool(cfg.get("transcode")) or bool(cfg.get("skip_connection")) or "W_skip" in file_shapes
    names, transposed_in_file = _tensor_names(file_shapes, transcode, where)
    shapes = {
        names[k]: (tuple(reversed(s)) if transposed_in_file[k] else s)
        for k, s in file_shapes.items()
        if k in names
    }
    d_in = cfg.get("d_in")
    d_sae = cfg.get("num_latents") or None
    if d_sae is None and d_in is not None and cfg.get("expansion_factor"):
        d_sae = int(d_in) * int(cfg["expansion_factor"])
    extras: dict[str, Any] = cfg["pseval"] if isinstance(cfg.get("pseval"), dict) else {}
    hook = extras.get("hook_name") or sparsify_hook(folder.name, transcode)
    model_name = extras.get("model_name")
    if model_name is None:
        model_name = _run_model_name(folder)
    if "k" not in cfg:
        raise SAEError(f"{where}: sparsify cfg.json has no k", "add k to cfg.json")
    metadata: dict[str, Any] = {
        "hf_hook_name": sparsify_module_name(folder.name),
        "source": where,
        "source_format": "sparsify",
        "sparsify_cfg": {k: v for k, v in cfg.items() if k != "pseval"},
    }
    if transcode:
        if d_in is None and "W_enc" in shapes:
            d_in = shapes["W_enc"][0]
        d_out = shapes["b_dec"][0] if "b_dec" in shapes else None
        metadata.update(
            transcoder_metadata(
                int(d_in) if d_in is not None else int(d_out or 0),
                d_out,
                hf_module_to_hook(sparsify_module_name(folder.name)),
                bool(cfg.get("skip_connection")) or "W_skip" in file_shapes,
                where,
            )
        )
    fields = {
        "architecture": "topk",
        "d_in": d_in,
        "d_sae": d_sae,
        "k": cfg["k"],
        "apply_b_dec_to_input": not transcode,
        "normalize_activations": "none",
        "hook_name": hook,
        "model_name": model_name,
        "metadata": metadata,
    }
    dtypes = {names[k]: d for k, d in file_dtypes.items() if k in names}
    stored = next((d for d in dtypes.values() if d.is_floating_point), None)
    plan = resolve(fields, shapes, where, stored, dtypes)
    # orientation relative to the file: a Linear weight is transposed once by the naming, maybe again by shape
    flips = {names[k]: transposed_in_file[k] != plan.transposed.get(names[k], False) for k in names}

    def build(dtype: str | None) -> SAE:
        raw = read_safetensors(weights, set(names))
        tensors = {names[k]: (t.T if transposed_in_file[k] else t) for k, t in raw.items()}
        return materialise(plan, tensors, dtype)

    return SAESource(
        spec=where,
        cfg=plan.cfg,
        format="sparsify",
        path=folder,
        tensors={name: TensorRef(weights, key, flips[name]) for key, name in names.items()},
        files=(folder / SPARSIFY_CFG, weights),
        builder=build,
    )


def _detect(path: Path) -> bool:
    return path.is_dir() and (path / SPARSIFY_WEIGHTS).is_file()


def _hook_of_child(name: str) -> str | None:
    return sparsify_hook(name)


SPARSIFY = register_format(
    SAEFormat(
        name="sparsify",
        layout=f"{SPARSIFY_CFG} + {SPARSIFY_WEIGHTS}",
        detect=_detect,
        open=open_sparsify,
        conversion_funcs=("sparsify",),
        release_files=ReleaseFiles(required=(SPARSIFY_CFG, SPARSIFY_WEIGHTS)),
        hook_of_child=_hook_of_child,
    )
)


def write_sparsify(sae: SAE, folder: str | Path, overwrite: bool = False) -> Path:
    """Write a TopK SAE as one sparsify hook point folder (``cfg.json`` + ``sae.safetensors``).

    Name the folder after the Hugging Face module (``layers.6``, see :func:`hook_to_hf_module`) to let
    sparsify-aware tools recover the hook; pseval also records it in ``cfg.json["pseval"]``.
    """
    from safetensors.torch import save_file

    if sae.cfg.architecture != "topk":
        raise SAEError(
            f"sparsify stores TopK SAEs only, not {sae.cfg.architecture}",
            "save it in SAELens format with save_sae",
        )
    require_plain_input(sae, "sparsify")
    out = sae.fold_decoder_norms() if getattr(sae.cfg, "rescale_acts_by_decoder_norm", False) else sae
    out = out.with_apply_b_dec_to_input(True)
    dest = Path(folder).expanduser()
    prepare_destination(dest, out, overwrite)
    assert isinstance(out.cfg, TopKSAEConfig)
    cfg = out.cfg
    norms = out.decoder_norms()
    cfg_json = {
        "activation": "topk",
        "expansion_factor": max(1, cfg.d_sae // cfg.d_in),
        "normalize_decoder": bool(torch.allclose(norms, torch.ones_like(norms), atol=1e-4)),
        "num_latents": cfg.d_sae,
        "k": cfg.k,
        "multi_topk": False,
        "skip_connection": False,
        "transcode": False,
        "d_in": cfg.d_in,
        "pseval": {
            "hook_name": cfg.hook_name,
            "model_name": cfg.model_name,
            "pseval_version": _pseval_version,
        },
    }
    state = {
        "encoder.weight": out.W_enc.detach().T.contiguous().cpu(),
        "encoder.bias": out.b_enc.detach().contiguous().cpu(),
        "W_dec": out.W_dec.detach().contiguous().cpu(),
        "b_dec": out.b_dec.detach().contiguous().cpu(),
    }
    with atomic_dir(dest) as tmp:
        save_file(state, str(tmp / SPARSIFY_WEIGHTS), metadata={"format": "pt"})
        write_json_atomic(tmp / SPARSIFY_CFG, cfg_json)
    return dest
