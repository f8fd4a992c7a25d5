"""Gemma Scope 2 cross-layer transcoders and crosscoders: one ``params_layer_{i}.safetensors`` per layer.

- CLT: ``clt/width_{W}_l0_{L0}[_affine]/params_layer_{i}.safetensors``, one file per source layer ``i`` with
  ``w_enc [d_model, n]``, ``b_enc [n]``, ``threshold [n]``, ``b_dec [d_model]`` and ``w_dec [n, m, d_model]``
  (latent ``f``'s decoder to the ``m`` layers it writes; optionally ``affine_skip_connection``). Layer ``i``'s
  encoder reads the normalised MLP input of layer ``i`` (``blocks.i.hook_mlp_in``, the input Gemma Scope 2's
  per-layer transcoders read, and the one sae-lens's ``gemma_3`` converter gives a ``clt`` folder).
- Crosscoder: ``crosscoder/layer_{a}_{b}_{c}_{d}_width_{W}_l0_{L0}/params_layer_{k}.safetensors``, file ``k``
  the ``k``-th layer named in the folder, reading the residual stream after that layer
  (``blocks.L.hook_resid_post``; the release's ``config.json`` says ``model.layers.{a,b,c,d}.output``). Its
  tensors are the CLT's: ``w_enc [d_model, n]``, ``b_enc [n]``, ``threshold [n]``, ``b_dec [d_model]`` and
  ``w_dec [n, 4, d_model]``, the decoders of file ``k``'s own latents to the four layers. Gemma Scope 2's
  tutorial reads both kinds with one class (``JumpReLUMultiLayerSAE``: the files stacked on a leading layer
  axis, ``encode`` per layer, ``"... layer d_in, layer d_in d_sae -> ... layer d_sae"`` + ``b_enc``, then
  ``relu(pre) * (pre > threshold)``; ``decode`` sums over source layers), so a crosscoder's latents are
  ``4 * n`` (the width in its name counts them all) and each reads one layer. What tells the kinds apart is
  the folder (``layer_..._width_...`` for a crosscoder) or ``config.json``'s ``type``, not the tensors.

Both are JumpReLU with ``b_dec`` not subtracted from the input and BOS prepended, as every Gemma Scope 2 SAE;
the model comes from ``config.json`` when the folder has one, else from the repo name in the path.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pseval.errors import SAEError
from pseval.sae.formats._common import header_shapes_and_dtypes, read_json
from pseval.sae.formats._registry import MultiLayerFormat, register_multilayer_format
from pseval.sae.formats.hooks import gemma_3_model_name, infer_gemma_scope_2_config
from pseval.sae.multilayer import LayerEncoder, MultiLayerDictionary
from pseval.sae.source import TensorRef

_FILE = re.compile(r"^params_layer_(\d+)\.safetensors$")
_CROSSCODER_LAYERS = re.compile(r"layer_(\d+(?:_\d+)+)_width")
_KNOWN = {"w_enc", "b_enc", "threshold", "b_dec", "w_dec", "affine_skip_connection"}


def _layer_files(folder: Path) -> dict[int, Path]:
    try:
        entries = list(folder.iterdir())
    except OSError:
        return {}
    return {int(m.group(1)): p for p in entries if (m := _FILE.match(p.name)) and p.is_file()}


def _detect(folder: Path) -> bool:
    return bool(_layer_files(folder)) and not (folder / "params.safetensors").is_file()


def _encoder(path: Path, layer: int, hook: str, where: str, decoder_ndim: int) -> LayerEncoder:
    shapes, dtypes = header_shapes_and_dtypes(path)
    unexpected = sorted(set(shapes) - _KNOWN)
    missing = sorted({"w_enc", "b_enc", "w_dec"} - set(shapes))
    if unexpected or missing:
        problem = f"unexpected tensors {', '.join(unexpected)}" if unexpected else f"no {', '.join(missing)}"
        raise SAEError(
            f"{where}: {path.name} has {problem}", "use the release's params_layer files as shipped"
        )
    bad = sorted(k for k, d in dtypes.items() if not d.is_floating_point)
    if bad:
        raise SAEError(f"{where}: {path.name} stores {', '.join(bad)} as integers", "re-download the files")
    w_enc, w_dec = shapes["w_enc"], shapes["w_dec"]
    if len(w_enc) != 2 or len(w_dec) != decoder_ndim or w_dec[0] != w_enc[1]:
        raise SAEError(
            f"{where}: {path.name} has w_enc {list(w_enc)} and w_dec {list(w_dec)}, expected [d_model, n] and "
            f"{'[n, layers, d_model]' if decoder_ndim == 3 else '[n, d_model]'}",
            "use the release's params_layer files as shipped",
        )
    d_in, d_sae = w_enc
    for name, size in (("b_enc", d_sae), ("threshold", d_sae), ("b_dec", w_dec[-1])):
        if name in shapes and tuple(shapes[name]) != (size,):
            raise SAEError(
                f"{where}: {path.name} has {name} {list(shapes[name])}, expected [{size}]",
                "re-download the files",
            )
    others: dict[str, TensorRef] = {
        k: TensorRef(path, k) for k in ("b_dec", "affine_skip_connection") if k in shapes
    }
    return LayerEncoder(
        layer=layer,
        hook=hook,
        d_in=d_in,
        d_sae=d_sae,
        w_enc=TensorRef(path, "w_enc"),
        b_enc=TensorRef(path, "b_enc"),
        threshold=TensorRef(path, "threshold") if "threshold" in shapes else None,
        decoder=(TensorRef(path, "w_dec"),),
        others=others,
    )


def open_gemma_scope_2_multilayer(folder: Path) -> MultiLayerDictionary:
    """Open a Gemma Scope 2 CLT or crosscoder folder from its files' headers."""
    where = str(folder)
    files = _layer_files(folder)
    cfg_path = folder / "config.json"
    raw: dict[str, Any] = read_json(cfg_path) if cfg_path.is_file() else infer_gemma_scope_2_config(folder)
    if raw.get("architecture", "jump_relu") != "jump_relu":
        raise SAEError(
            f"{where}: architecture {raw.get('architecture')!r} is not supported", "use a jump_relu release"
        )
    match = _CROSSCODER_LAYERS.search(folder.name)
    kind = str(raw.get("type") or ("crosscoder" if match else "clt"))
    if kind not in ("clt", "crosscoder"):
        raise SAEError(f"{where}: config.json says type {kind!r}", "use a clt or crosscoder folder")
    if kind == "clt":
        encoders = [_encoder(files[i], i, f"blocks.{i}.hook_mlp_in", where, 3) for i in sorted(files)]
    else:
        layers = [int(x) for x in match.group(1).split("_")] if match else []
        if sorted(files) != list(range(len(layers))):
            raise SAEError(
                f"{where}: a crosscoder folder must be named layer_A_B_..._width_... with one params_layer_k file "
                f"per layer named (found files {sorted(files)}, layers {layers})",
                "keep the release's folder name and files",
            )
        encoders = [
            _encoder(files[k], layer, f"blocks.{layer}.hook_resid_post", where, 3)
            for k, layer in enumerate(layers)
        ]
        writes = {header_shapes_and_dtypes(p)[0]["w_dec"][1] for p in files.values()}
        if writes != {len(layers)}:
            raise SAEError(
                f"{where}: w_dec writes to {sorted(writes)} layers, expected [n, {len(layers)}, d_model] "
                f"(one decoder per layer named in the folder)",
                "use the release's params_layer files as shipped",
            )
    if len({(e.d_in, e.d_sae) for e in encoders}) != 1:
        raise SAEError(f"{where}: the layers' files disagree on d_model or width", "re-download the files")
    d_out = header_shapes_and_dtypes(files[min(files)])[0]["w_dec"][-1]
    metadata = {
        "prepend_bos": True,
        "gemma_scope_2_cfg": raw,
        "gemma_scope_2_cfg_inferred": not cfg_path.is_file(),
        "d_model_out": d_out,
        "layers": [e.layer for e in encoders],
    }
    if kind == "clt":
        metadata["hook_name_out"] = "blocks.{layer}.hook_mlp_out"
        metadata["affine_connection"] = bool(raw.get("affine_connection")) or any(
            "affine_skip_connection" in e.others for e in encoders
        )
    return MultiLayerDictionary(
        kind=kind,  # type: ignore[arg-type]
        name=folder.name,
        path=folder,
        format=f"gemma_scope_2_{kind}",
        encoders=tuple(encoders),
        model_name=gemma_3_model_name(raw.get("model_name")),
        metadata=metadata,
        files=tuple(sorted(files.values())) + ((cfg_path,) if cfg_path.is_file() else ()),
        decoder_rows="sum" if kind == "clt" else "last",
    )


GEMMA_SCOPE_2_MULTILAYER = register_multilayer_format(
    MultiLayerFormat(
        name="gemma_scope_2_multilayer",
        layout="params_layer_{i}.safetensors (Gemma Scope 2 CLT or crosscoder)",
        detect=_detect,
        open=open_gemma_scope_2_multilayer,
    )
)
