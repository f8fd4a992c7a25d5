"""SAELens folders: ``cfg.json`` + ``sae_weights.safetensors``, 6.x configs and the flat pre-6 ones.

Also reads SAELens transcoders (``transcoder``, ``skip_transcoder``, ``jumprelu_transcoder``,
``jumprelu_skip_transcoder``) at their input hook, and Matryoshka/BatchTopK SAEs saved for inference as
JumpReLU with their training architecture in the metadata. ``save_sae`` writes the 6.x format, which
``sae_lens.SAE.load_from_disk`` reads back to the same latents.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

from pseval._io import atomic_dir, write_json_atomic
from pseval._version import __version__ as _pseval_version
from pseval.errors import SAEError
from pseval.sae.config import ARCHITECTURES, SAE_CONFIGS, TopKSAEConfig, own_fields
from pseval.sae.formats._common import (
    DTYPE_NAMES,
    SAELENS_BATCHTOPK_TRAINING,
    SAELENS_TRANSCODERS,
    check_normalize,
    header_shapes_and_dtypes,
    materialise,
    read_json,
    read_safetensors,
    resolve,
    transcoder_metadata,
)
from pseval.sae.formats._registry import ReleaseFiles, SAEFormat, register_format
from pseval.sae.formats._writing import prepare_destination, state_for_saving
from pseval.sae.model import SAE
from pseval.sae.source import SAESource, TensorRef

SAELENS_CFG = "cfg.json"
SAELENS_WEIGHTS = "sae_weights.safetensors"
_MIN_SAELENS_FORMAT = "6.0.0"


def _saelens6_fields(
    cfg: dict[str, Any], metadata: dict[str, Any], where: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    architecture = cfg["architecture"]
    k = cfg.get("k")
    if architecture == "jumprelu" and metadata.get("training_architecture") in SAELENS_BATCHTOPK_TRAINING:
        details = metadata.get("training_architecture_details") or {}
        if isinstance(details, dict) and details.get("k") is not None:
            architecture, k = "batchtopk", details["k"]
    apply_b_dec = bool(cfg.get("apply_b_dec_to_input", True))
    if architecture in SAELENS_TRANSCODERS:
        inner, skip = SAELENS_TRANSCODERS[architecture]
        metadata["sae_lens_architecture"] = architecture
        metadata.update(
            transcoder_metadata(
                int(cfg["d_in"]), cfg.get("d_out"), metadata.get("hook_name_out"), skip, where
            )
        )
        architecture, apply_b_dec = inner, False
    if architecture not in SAE_CONFIGS:
        raise SAEError(
            f"{where}: SAELens architecture {architecture!r} is not supported",
            f"use an SAE of architecture {', '.join(SAE_CONFIGS)}",
        )
    if cfg.get("reshape_activations", "none") not in (None, "none"):
        metadata["reshape_activations"] = cfg["reshape_activations"]
    fields: dict[str, Any] = {
        "architecture": architecture,
        "d_in": cfg.get("d_in"),
        "d_sae": cfg.get("d_sae"),
        "dtype": cfg.get("dtype"),
        "apply_b_dec_to_input": apply_b_dec,
        "normalize_activations": check_normalize(cfg.get("normalize_activations", "none"), where),
        "hook_name": metadata.get("hook_name"),
        "model_name": metadata.get("model_name"),
    }
    if architecture in ("topk", "batchtopk"):
        if k is None:
            raise SAEError(f"{where}: {architecture} SAE config has no k", "add k to cfg.json")
        fields["k"] = k
    if architecture == "topk":
        fields["rescale_acts_by_decoder_norm"] = bool(cfg.get("rescale_acts_by_decoder_norm", False))
    if architecture not in ARCHITECTURES:  # registered beyond the built-ins: its own fields, as written
        fields.update({n: cfg[n] for n in own_fields(SAE_CONFIGS[architecture]) if n in cfg})
    return fields, metadata


_FLAT_METADATA_KEYS = (
    "model_name",
    "hook_head_index",
    "hook_point_head_index",
    "hook_layer",
    "prepend_bos",
    "context_size",
    "dataset_path",
    "neuronpedia_id",
    "sae_lens_version",
    "sae_lens_training_version",
    "model_from_pretrained_kwargs",
    "finetuning_scaling_factor",
)


def _saelens_flat_fields(cfg: dict[str, Any], where: str) -> tuple[dict[str, Any], dict[str, Any]]:
    activation = cfg.get("activation_fn_str", cfg.get("activation_fn", "relu")) or "relu"
    kwargs = cfg.get("activation_fn_kwargs") or {}
    architecture = cfg.get("architecture", "standard") or "standard"
    k = cfg.get("k")
    if activation == "topk":
        k = kwargs.get("k", k)
        if k is None:
            raise SAEError(f"{where}: topk SAE config has no activation_fn_kwargs.k", "add k to cfg.json")
        architecture = "topk"
    elif activation != "relu" and architecture == "standard":
        raise SAEError(
            f"{where}: activation function {activation!r} is not supported",
            "use a ReLU, TopK, JumpReLU or gated SAE",
        )
    if architecture not in SAE_CONFIGS:
        raise SAEError(
            f"{where}: SAELens architecture {architecture!r} is not supported",
            f"use one of {', '.join(SAE_CONFIGS)}",
        )
    metadata = {key: cfg[key] for key in _FLAT_METADATA_KEYS if key in cfg}
    hook = cfg.get("hook_name", cfg.get("hook_point"))
    metadata["hook_name"] = hook
    fields: dict[str, Any] = {
        "architecture": architecture,
        "d_in": cfg.get("d_in"),
        "d_sae": cfg.get("d_sae"),
        "dtype": cfg.get("dtype"),
        "apply_b_dec_to_input": bool(cfg.get("apply_b_dec_to_input", True)),
        "normalize_activations": check_normalize(cfg.get("normalize_activations"), where),
        "hook_name": hook,
        "model_name": cfg.get("model_name"),
    }
    if architecture == "topk":
        fields["k"] = k
    return fields, metadata


def open_saelens(folder: Path) -> SAESource:
    """Open a SAELens folder from ``cfg.json`` and the safetensors header."""
    cfg = read_json(folder / SAELENS_CFG)
    weights = folder / SAELENS_WEIGHTS
    file_shapes, file_dtypes = header_shapes_and_dtypes(weights)
    where = str(folder)
    meta_in = cfg.get("metadata")
    if isinstance(meta_in, dict) and "architecture" in cfg:
        fields, metadata = _saelens6_fields(cfg, dict(meta_in), where)
    else:
        fields, metadata = _saelens_flat_fields(cfg, where)
    # file key -> pseval name; tensors that need a conversion (log threshold, scaling factor) are not lazy
    names = {key: key for key in file_shapes}
    converted = False
    if "threshold" not in names and "log_threshold" in names:
        names["log_threshold"] = "threshold"
        converted = True
    scaling_key = next((k for k in ("scaling_factor", "finetuning_scaling_factor") if k in names), None)
    if scaling_key is not None:
        del names[scaling_key]
        converted = True
    names.pop("W_skip", None)  # a skip-transcoder's affine skip connection: not part of the encoder side
    shapes = {names[k]: s for k, s in file_shapes.items() if k in names}
    dtypes = {names[k]: d for k, d in file_dtypes.items() if k in names}
    stored = next((d for d in dtypes.values() if d.is_floating_point), None)
    fields["metadata"] = {**metadata, "source": where, "source_format": "saelens"}
    plan = resolve(fields, shapes, where, stored, dtypes)

    def build(dtype: str | None) -> SAE:
        raw = read_safetensors(weights)
        tensors = {names[k]: t for k, t in raw.items() if k in names}
        if names.get("log_threshold") == "threshold":
            tensors["threshold"] = raw["log_threshold"].exp()
        if scaling_key is not None:
            scaling = raw[scaling_key]
            if not torch.allclose(scaling.float(), torch.ones_like(scaling, dtype=torch.float32)):
                # SAELens <6 multiplied the latents by this factor inside decode; folding it into W_dec keeps
                # both the latents and the reconstruction of the original.
                W_dec = tensors["W_dec"]
                if plan.transposed["W_dec"]:
                    W_dec = W_dec.T
                if W_dec.shape[0] != scaling.numel():
                    raise SAEError(
                        f"{where}: scaling_factor has {scaling.numel()} entries but W_dec has shape "
                        f"{list(W_dec.shape)}",
                        "the weights are inconsistent; re-download or re-save the SAE",
                    )
                W_dec = W_dec * scaling.reshape(-1, 1).to(W_dec.dtype)
                tensors["W_dec"] = W_dec.T if plan.transposed["W_dec"] else W_dec
                sae = materialise(plan, tensors, dtype)
                sae.cfg.metadata = {**sae.cfg.metadata, "finetuning_scaling_factor_folded": True}
                return sae
        return materialise(plan, tensors, dtype)

    refs = None
    if not converted:
        refs = {
            name: TensorRef(weights, key, plan.transposed.get(name, False)) for key, name in names.items()
        }
    return SAESource(
        spec=str(folder),
        cfg=plan.cfg,
        format="saelens",
        path=folder,
        tensors=refs,
        files=(folder / SAELENS_CFG, weights),
        builder=build,
    )


def _detect(path: Path) -> bool:
    return path.is_dir() and (path / SAELENS_WEIGHTS).is_file()


SAELENS = register_format(
    SAEFormat(
        name="saelens",
        layout=f"{SAELENS_CFG} + {SAELENS_WEIGHTS}",
        detect=_detect,
        open=open_saelens,
        conversion_funcs=("sae_lens",),
        release_files=ReleaseFiles(required=(SAELENS_CFG, SAELENS_WEIGHTS)),
    )
)


# ==================================================================================================
# writing
# ==================================================================================================


def _saelens_version_for_files() -> str:
    """The SAELens version to stamp: the installed one when >= 6, else the minimum 6.x format version."""
    try:
        from importlib.metadata import PackageNotFoundError, version

        installed = version("sae-lens")
    except (ImportError, PackageNotFoundError):
        return _MIN_SAELENS_FORMAT
    match = re.match(r"(\d+)", installed)
    return installed if match and int(match.group(1)) >= 6 else _MIN_SAELENS_FORMAT


def saelens_cfg_dict(sae: SAE) -> dict[str, Any]:
    """The SAELens 6.x ``cfg.json`` content for ``sae`` (batchtopk is written as jumprelu, as SAELens does)."""
    cfg = sae.cfg
    dtype = DTYPE_NAMES.get(sae.dtype, cfg.dtype)
    metadata: dict[str, Any] = {
        "hook_head_index": None,
        "prepend_bos": None,
        "context_size": None,
        "dataset_path": None,
        **{
            k: v
            for k, v in cfg.metadata.items()
            if k not in ("source", "source_format", "reshape_activations")
        },
        "model_name": cfg.model_name,
        "hook_name": cfg.hook_name,
        "sae_lens_version": _saelens_version_for_files(),
        "pseval_version": _pseval_version,
        "pseval_architecture": cfg.architecture,
    }
    metadata.setdefault("sae_lens_training_version", metadata["sae_lens_version"])
    out: dict[str, Any] = {
        "architecture": "jumprelu" if cfg.architecture == "batchtopk" else cfg.architecture,
        "d_in": cfg.d_in,
        "d_sae": cfg.d_sae,
        "dtype": dtype,
        "device": "cpu",
        "apply_b_dec_to_input": cfg.apply_b_dec_to_input,
        "normalize_activations": cfg.normalize_activations,
        "reshape_activations": cfg.metadata.get("reshape_activations", "none"),
    }
    if isinstance(cfg, TopKSAEConfig):
        out["k"] = cfg.k
        out["rescale_acts_by_decoder_norm"] = cfg.rescale_acts_by_decoder_norm
    if cfg.architecture not in ARCHITECTURES:  # registered beyond the built-ins: its own fields
        out.update({name: getattr(cfg, name) for name in own_fields(type(cfg))})
    if cfg.architecture == "batchtopk":
        details = dict(metadata.get("training_architecture_details") or {})
        details["k"] = getattr(cfg, "k", None)
        # A Matryoshka BatchTopK SAE keeps its training architecture (SAELens writes both as JumpReLU).
        if metadata.get("training_architecture") not in SAELENS_BATCHTOPK_TRAINING:
            metadata["training_architecture"] = "batchtopk"
        metadata["training_architecture_details"] = details
    out["metadata"] = metadata
    return out


def save_sae(sae: SAE, folder: str | Path, overwrite: bool = False) -> Path:
    """Write ``sae`` in SAELens 6.x format (``cfg.json`` + ``sae_weights.safetensors``), atomically.

    An existing folder holding the same SAE is rewritten; one holding a different SAE (or other files) is
    refused unless ``overwrite``.
    """
    from safetensors.torch import save_file

    dest = Path(folder).expanduser()
    prepare_destination(dest, sae, overwrite)
    cfg = saelens_cfg_dict(sae)
    state = state_for_saving(sae)
    with atomic_dir(dest) as tmp:
        save_file(state, str(tmp / SAELENS_WEIGHTS), metadata={"format": "pt"})
        write_json_atomic(tmp / SAELENS_CFG, cfg)
    return dest
