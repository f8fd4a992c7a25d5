"""circuit-tracer's cross-layer transcoders (``mntss/clt-*``): ``config.yaml`` + ``W_enc_{i}`` / ``W_dec_{i}`` files.

``W_enc_{i}.safetensors`` holds ``W_enc_{i} [n, d_model]`` (latents as rows), ``b_enc_{i} [n]``,
``b_dec_{i} [d_model]`` and, for JumpReLU CLTs, ``threshold_{i} [n]``; ``W_dec_{i}.safetensors`` holds
``W_dec_{i} [n, n_layers - i, d_model]``, layer ``i``'s latents' decoders to layers ``i`` and later.
``config.yaml`` names the model, ``model_kind`` (``cross_layer_transcoder`` for this layout) and
``feature_input_hook`` / ``feature_output_hook``: TransformerLens hook names relative to a block, which
circuit-tracer reads as ``blocks.{i}.`` + the name (its TransformerLens backend) or through its
TransformerLens-to-HuggingFace table (its NNSight backend, ``circuit_tracer/utils/tl_nnsight_mapping.py``).
In that table ``hook_resid_mid`` is the pre-MLP norm's input (pseval's ``hook_resid_mid``), ``mlp.hook_in``
the pre-MLP norm's output, i.e. what the MLP module reads (pseval's ``hook_mlp_in``), ``ln2.hook_normalized``
the norm's normalised input before its weight, and ``hook_mlp_out`` the MLP output after any post-MLP norm.
TransformerLens's own ``hook_mlp_in`` is the *pre*-norm residual, which pseval's ``hook_mlp_in`` is not and
circuit-tracer's table does not list; a config naming it, or any other name, is refused. The encoder is ``x @ W_enc_i.T + b_enc_i`` with no ``b_dec`` subtracted and no input
normalisation, as sae-lens's ``mntss_clt_layer_transcoder`` converter reads it; the threshold is applied
where the file holds one (circuit-tracer's JumpReLU), which that converter leaves out (it reads the layer as a
ReLU transcoder); without a threshold the encoder is a ReLU.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pseval.errors import SAEError
from pseval.sae.formats._common import header_shapes_and_dtypes
from pseval.sae.formats._registry import MultiLayerFormat, register_multilayer_format
from pseval.sae.multilayer import LayerEncoder, MultiLayerDictionary
from pseval.sae.source import TensorRef

CONFIG = "config.yaml"
_INPUT_HOOKS = {
    "hook_resid_mid": "hook_resid_mid",
    "mlp.hook_in": "hook_mlp_in",
    "ln2.hook_normalized": "ln2.hook_normalized",
}
"""circuit-tracer's ``feature_input_hook`` -> pseval's name for the same point (see the module docstring)."""
_OUTPUT_HOOKS = {"hook_mlp_out": "hook_mlp_out"}
"""``feature_output_hook`` names with a pseval equivalent. ``mlp.hook_out`` (the MLP module's output, before
a post-MLP norm where the model has one) is recorded as it is named, with no pseval hook."""
_ENC = re.compile(r"^W_enc_(\d+)\.safetensors$")


def _encoder_files(folder: Path) -> dict[int, Path]:
    try:
        entries = list(folder.iterdir())
    except OSError:
        return {}
    return {int(m.group(1)): p for p in entries if (m := _ENC.match(p.name)) and p.is_file()}


def _detect(folder: Path) -> bool:
    return (folder / CONFIG).is_file() and bool(_encoder_files(folder))


def _read_config(path: Path) -> dict[str, Any]:
    import yaml

    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise SAEError(f"cannot read {path} ({type(exc).__name__})", "re-download config.yaml") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("feature_input_hook"), str):
        raise SAEError(f"{path} names no feature_input_hook", "use circuit-tracer's config.yaml as shipped")
    kind = raw.get("model_kind", "cross_layer_transcoder")
    if kind != "cross_layer_transcoder":
        raise SAEError(
            f"{path} says model_kind {kind!r}; W_enc_{{i}}/W_dec_{{i}} files are a cross_layer_transcoder",
            "use circuit-tracer's config.yaml as shipped with these files",
        )
    hook = raw["feature_input_hook"]
    if hook not in _INPUT_HOOKS:
        reason = (
            "TransformerLens's hook_mlp_in is the pre-norm residual, pseval's the MLP module's (normalised) input"
            if hook == "hook_mlp_in"
            else "pseval cannot tell which point of the model it is"
        )
        raise SAEError(
            f"{path}: feature_input_hook {hook!r} is ambiguous ({reason})",
            f"use one of {', '.join(sorted(_INPUT_HOOKS))} (circuit-tracer's names) in config.yaml",
        )
    return raw


def _layer(folder: Path, i: int, enc_path: Path, hook: str, n_layers: int) -> LayerEncoder:
    where = str(folder)
    shapes, dtypes = header_shapes_and_dtypes(enc_path)
    keys = {name: f"{name}_{i}" for name in ("W_enc", "b_enc", "b_dec", "threshold")}
    missing = [keys[n] for n in ("W_enc", "b_enc") if keys[n] not in shapes]
    if missing:
        raise SAEError(
            f"{where}: {enc_path.name} has no {', '.join(missing)}", "use circuit-tracer's files as shipped"
        )
    if any(not d.is_floating_point for d in dtypes.values()):
        raise SAEError(f"{where}: {enc_path.name} stores integer tensors", "re-download the files")
    d_sae, d_in = shapes[keys["W_enc"]]
    dec_path = folder / f"W_dec_{i}.safetensors"
    decoder: tuple[TensorRef, ...] = ()
    if dec_path.is_file():
        dec_shape = header_shapes_and_dtypes(dec_path)[0].get(f"W_dec_{i}")
        if dec_shape is None or len(dec_shape) != 3 or dec_shape[0] != d_sae or dec_shape[1] != n_layers - i:
            raise SAEError(
                f"{where}: W_dec_{i} has shape {list(dec_shape or [])}, expected [{d_sae}, {n_layers - i}, d_model]",
                "use circuit-tracer's files as shipped",
            )
        decoder = (TensorRef(dec_path, f"W_dec_{i}"),)
    for name, size in (("b_enc", d_sae), ("threshold", d_sae), ("b_dec", d_in)):
        if keys[name] in shapes and tuple(shapes[keys[name]]) != (size,):
            raise SAEError(
                f"{where}: {keys[name]} has shape {list(shapes[keys[name]])}, expected [{size}]",
                "re-download the files",
            )
    return LayerEncoder(
        layer=i,
        hook=f"blocks.{i}.{hook}",
        d_in=d_in,
        d_sae=d_sae,
        w_enc=TensorRef(enc_path, keys["W_enc"], transposed=True),
        b_enc=TensorRef(enc_path, keys["b_enc"]),
        threshold=TensorRef(enc_path, keys["threshold"]) if keys["threshold"] in shapes else None,
        decoder=decoder,
        others={"b_dec": TensorRef(enc_path, keys["b_dec"])} if keys["b_dec"] in shapes else {},
    )


def open_circuit_tracer(folder: Path) -> MultiLayerDictionary:
    """Open a circuit-tracer CLT folder from ``config.yaml`` and the files' headers."""
    raw = _read_config(folder / CONFIG)
    files = _encoder_files(folder)
    n_layers = max(files) + 1
    if sorted(files) != list(range(n_layers)):
        raise SAEError(
            f"{folder}: W_enc files for layers {sorted(set(range(n_layers)) - set(files))} are missing",
            "download every W_enc_{i} and W_dec_{i} file",
        )
    hook = _INPUT_HOOKS[raw["feature_input_hook"]]
    encoders = [_layer(folder, i, files[i], hook, n_layers) for i in range(n_layers)]
    if any(not e.decoder for e in encoders):
        raise SAEError(
            f"{folder}: W_dec files are missing", "download every W_dec_{i} file (decoder norms need them)"
        )
    decoder_files = tuple(sorted(folder / f"W_dec_{i}.safetensors" for i in range(n_layers)))
    d_out = header_shapes_and_dtypes(encoders[0].decoder[0].path)[0][encoders[0].decoder[0].key][-1]
    output_hook = raw.get("feature_output_hook")
    metadata = {
        "circuit_tracer_cfg": raw,
        "d_model_out": d_out,
        "layers": list(range(n_layers)),
        "hook_name_out": f"blocks.{{layer}}.{_OUTPUT_HOOKS[output_hook]}"
        if output_hook in _OUTPUT_HOOKS
        else None,
        "feature_output_hook": output_hook,
        "activation": "jumprelu" if all(e.threshold is not None for e in encoders) else "relu",
    }
    return MultiLayerDictionary(
        kind="clt",
        name=folder.name,
        path=folder,
        format="circuit_tracer",
        encoders=tuple(encoders),
        model_name=raw.get("model_name"),
        metadata=metadata,
        files=(folder / CONFIG, *sorted(files.values()), *decoder_files),
    )


CIRCUIT_TRACER = register_multilayer_format(
    MultiLayerFormat(
        name="circuit_tracer",
        layout="config.yaml + W_enc_{i}.safetensors + W_dec_{i}.safetensors (circuit-tracer CLT)",
        detect=_detect,
        open=open_circuit_tracer,
    )
)
