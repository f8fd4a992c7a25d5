"""Reading and writing SAEs in the formats of the main SAE libraries.

``load_sae`` recognises, from the files present:

* SAELens 6.x folders (``cfg.json`` with ``architecture`` and ``metadata`` + ``sae_weights.safetensors``)
  and the flat pre-6 configs (``hook_point``, ``activation_fn_str``, boolean ``normalize_activations``);
* EleutherAI sparsify folders (``cfg.json`` + ``sae.safetensors``), or a parent holding one per hook point;
* dictionary_learning folders (``ae.pt`` + ``config.json`` with a ``trainer`` section);
* Gemma Scope ``params.npz`` (JumpReLU);
* ``saelens:RELEASE/SAE_ID`` from the SAELens pretrained registry (optional ``sae_lens``).

Tensor orientation is checked against ``d_in``/``d_sae`` and transposed when a file stores a matrix the
other way round; shapes that fit neither way are refused. ``save_sae`` writes SAELens 6.x, which
``sae_lens.SAE.load_from_disk`` reads back to the same latents; the other writers exist so that every
reader can be tested and so that users can hand SAEs to those libraries.
"""

from __future__ import annotations

import json
import logging
import re
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pseval._io import atomic_dir, write_json_atomic
from pseval._version import __version__ as _pseval_version
from pseval.errors import ConfigError, SAEError
from pseval.sae.config import (
    ARCHITECTURES,
    NORMALIZE_ACTIVATIONS,
    BatchTopKSAEConfig,
    TopKSAEConfig,
    config_from_dict,
)
from pseval.sae.model import SAE

logger = logging.getLogger(__name__)

SAELENS_CFG = "cfg.json"
SAELENS_WEIGHTS = "sae_weights.safetensors"
SPARSIFY_CFG = "cfg.json"
SPARSIFY_WEIGHTS = "sae.safetensors"
DL_WEIGHTS = "ae.pt"
DL_CFG = "config.json"
GEMMA_SCOPE_WEIGHTS = "params.npz"

FORMATS: tuple[str, ...] = ("saelens", "sparsify", "dictionary_learning", "gemma_scope")
_WEIGHT_FILES = {SAELENS_WEIGHTS, SPARSIFY_WEIGHTS, DL_WEIGHTS, GEMMA_SCOPE_WEIGHTS}
_KNOWN_LAYOUTS = (
    "cfg.json + sae_weights.safetensors (SAELens), cfg.json + sae.safetensors (sparsify), "
    "ae.pt + config.json (dictionary_learning), params.npz (Gemma Scope)"
)
_MIN_SAELENS_FORMAT = "6.0.0"


# ==================================================================================================
# hook names
# ==================================================================================================

_HF_LAYER = r"(?:model\.|transformer\.|gpt_neox\.)?(?:layers|h|blocks|layer)\.(\d+)"


def hf_module_to_hook(module: str) -> str | None:
    """TransformerLens hook for a Hugging Face module path as sparsify names its folders, or None.

    sparsify hooks a module's output: ``layers.N`` is the residual stream after block N.
    """
    if re.fullmatch(r"(?:model\.|transformer\.|gpt_neox\.)?(?:embed_tokens|wte|embed_in)", module):
        return "hook_embed"
    match = re.fullmatch(_HF_LAYER + r"(?:\.(mlp|self_attn|attn|attention))?", module)
    if match is None:
        return None
    layer, sub = match.group(1), match.group(2)
    if sub is None:
        return f"blocks.{layer}.hook_resid_post"
    if sub == "mlp":
        return f"blocks.{layer}.hook_mlp_out"
    return f"blocks.{layer}.hook_attn_out"


def hook_to_hf_module(hook_name: str | None) -> str | None:
    """The sparsify folder name (Hugging Face module path) for a TransformerLens hook, where one exists."""
    if hook_name is None:
        return None
    if hook_name == "hook_embed":
        return "embed_tokens"
    match = re.fullmatch(r"blocks\.(\d+)\.hook_(resid_post|mlp_out|attn_out)", hook_name)
    if match is None:
        return None
    layer, kind = match.groups()
    return {
        "resid_post": f"layers.{layer}",
        "mlp_out": f"layers.{layer}.mlp",
        "attn_out": f"layers.{layer}.self_attn",
    }[kind]


def dl_submodule_to_hook(submodule_name: str | None, layer: int | None) -> str | None:
    """TransformerLens hook for a dictionary_learning ``submodule_name`` (+ ``layer``), or None."""
    if not submodule_name:
        return None
    if re.fullmatch(r"blocks\.\d+\.\S+|hook_embed", submodule_name):
        return submodule_name
    if submodule_name in ("embed", "embedding", "embed_tokens"):
        return "hook_embed"
    match = re.fullmatch(
        r"(resid_post|resid_pre|resid|mlp_out|mlp|attn_out|attn|attention)(?:_layer_?(\d+))?", submodule_name
    )
    if match is None:
        return None
    kind, num = match.group(1), match.group(2)
    index = int(num) if num is not None else layer
    if index is None:
        return None
    hook = {
        "resid_post": "hook_resid_post",
        "resid": "hook_resid_post",
        "resid_pre": "hook_resid_pre",
        "mlp_out": "hook_mlp_out",
        "mlp": "hook_mlp_out",
        "attn_out": "hook_attn_out",
        "attn": "hook_attn_out",
        "attention": "hook_attn_out",
    }[kind]
    return f"blocks.{index}.{hook}"


def hook_to_dl_submodule(hook_name: str | None) -> tuple[str | None, int | None]:
    """dictionary_learning ``(submodule_name, layer)`` for a TransformerLens hook."""
    if hook_name is None:
        return None, None
    if hook_name == "hook_embed":
        return "embed", 0
    match = re.fullmatch(r"blocks\.(\d+)\.hook_(resid_post|resid_pre|mlp_out|attn_out)", hook_name)
    if match is None:
        return hook_name, None
    layer, kind = int(match.group(1)), match.group(2)
    return f"{kind}_layer_{layer}", layer


def _gemma_scope_hook(path: Path) -> tuple[str | None, str | None]:
    """(hook_name, model_name) from a Gemma Scope path such as ``gemma-scope-2b-pt-res/layer_12/width_16k/...``."""
    text = "/".join(path.resolve().parts)
    repo = re.search(r"gemma-scope-(\d+b)-(pt|it)-(res|mlp|att)", text)
    layer = re.search(r"layer_(\d+)", text)
    model = None
    hook = None
    if repo is not None:
        size, flavour, kind = repo.groups()
        model = f"gemma-2-{size}" + ("-it" if flavour == "it" else "")
        if "embedding" in text and kind == "res":
            hook = "hook_embed"
        elif layer is not None:
            suffix = {"res": "hook_resid_post", "mlp": "hook_mlp_out", "att": "attn.hook_z"}[kind]
            hook = f"blocks.{layer.group(1)}.{suffix}"
    return hook, model


# ==================================================================================================
# reading files
# ==================================================================================================


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SAEError(
            f"{path} is not valid JSON ({exc})", "the file is corrupt or truncated; re-download or re-save it"
        ) from None
    except OSError as exc:
        raise SAEError(
            f"cannot read {path} ({exc.strerror or exc})", "check the file's permissions"
        ) from None
    if not isinstance(data, dict):
        raise SAEError(
            f"{path} holds a JSON {type(data).__name__}, not an object", "re-download or re-save it"
        )
    return data


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise SAEError(
            f"{path} is not a readable safetensors file ({_first_line(exc)})",
            "the file is corrupt or truncated; re-download or re-save it",
        ) from None


def _read_torch_state_dict(path: Path) -> dict[str, torch.Tensor]:
    import pickle

    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise SAEError(
            f"{path} holds pickled Python objects, not a plain state dict ({_first_line(exc)})",
            "re-save it with torch.save(ae.state_dict(), 'ae.pt')",
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as exc:
        raise SAEError(
            f"{path} is not a readable torch file ({_first_line(exc)})",
            "the file is corrupt or truncated; re-download or re-save it",
        ) from None
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise SAEError(
            f"{path} does not hold a state dict of tensors",
            "re-save it with torch.save(ae.state_dict(), ...)",
        )
    return dict(obj)


def _read_npz(path: Path) -> dict[str, torch.Tensor]:
    try:
        with np.load(str(path), allow_pickle=False) as data:
            arrays = {key: np.asarray(data[key]) for key in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise SAEError(
            f"{path} is not a readable .npz file ({_first_line(exc)})",
            "the file is corrupt or truncated; re-download it",
        ) from None
    out: dict[str, torch.Tensor] = {}
    for key, array in arrays.items():
        name = "W_" + key[2:] if key.startswith("w_") else key
        out[name] = torch.from_numpy(np.ascontiguousarray(array))
    return out


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


# ==================================================================================================
# assembling an SAE from tensors of uncertain orientation
# ==================================================================================================


def _agree(name: str, values: dict[str, int], where: str) -> int | None:
    distinct = sorted(set(values.values()))
    if len(distinct) > 1:
        listed = ", ".join(f"{k}={v}" for k, v in values.items())
        raise SAEError(
            f"inconsistent {name} in {where}: {listed}",
            "the config does not match the weights; fix or re-save the SAE",
        )
    return distinct[0] if distinct else None


def _orient(name: str, t: torch.Tensor, rows: int, cols: int, where: str) -> torch.Tensor:
    """``t`` as a ``[rows, cols]`` matrix; a matrix stored transposed is transposed back."""
    shape = tuple(t.shape)
    if t.ndim == 2 and shape == (rows, cols):
        return t
    if t.ndim == 2 and shape == (cols, rows):
        logger.info(
            "%s in %s is stored transposed (%s); transposing to [%d, %d]",
            name,
            where,
            list(shape),
            rows,
            cols,
        )
        return t.T.contiguous()
    raise SAEError(
        f"{name} in {where} has shape {list(shape)}, which fits neither [{rows}, {cols}] nor its transpose",
        "the weights do not match d_in/d_sae; check the config or re-save the SAE",
    )


def _assemble(
    fields: dict[str, Any],
    tensors: dict[str, torch.Tensor],
    where: str,
    dtype: str | None,
) -> SAE:
    """Build an SAE from config fields and tensors named the SAELens way, in the format's usual orientation.

    ``d_in``/``d_sae`` come from the config and the bias lengths, which must agree; when neither is known the
    matrices decide, and two matrices of the same non-square shape (one of them transposed, but which?) are
    refused as ambiguous.
    """
    if "W_enc" not in tensors or "W_dec" not in tensors:
        missing = [n for n in ("W_enc", "W_dec") if n not in tensors]
        raise SAEError(
            f"{where} has no {' or '.join(missing)} tensor", "check that the file is a complete SAE"
        )
    W_enc, W_dec = tensors["W_enc"], tensors["W_dec"]
    if W_enc.ndim != 2 or W_dec.ndim != 2:
        raise SAEError(
            f"{where}: W_enc {list(W_enc.shape)} and W_dec {list(W_dec.shape)} must both be matrices",
            "check that the file is a complete SAE",
        )
    d_in_votes: dict[str, int] = (
        {"config d_in": int(fields["d_in"])} if fields.get("d_in") is not None else {}
    )
    if "b_dec" in tensors:
        d_in_votes["b_dec length"] = tensors["b_dec"].numel()
    d_sae_votes: dict[str, int] = (
        {"config d_sae": int(fields["d_sae"])} if fields.get("d_sae") is not None else {}
    )
    for name in ("b_enc", "threshold", "b_gate", "b_mag", "r_mag"):
        if name in tensors and tensors[name].ndim == 1:
            d_sae_votes[f"{name} length"] = tensors[name].numel()
    d_in = _agree("d_in", d_in_votes, where)
    d_sae = _agree("d_sae", d_sae_votes, where)
    if d_in is None and d_sae is None:
        if W_enc.shape == W_dec.shape and W_enc.shape[0] != W_enc.shape[1]:
            raise SAEError(
                f"{where}: W_enc and W_dec both have shape {list(W_enc.shape)} and no bias or config gives "
                "d_in/d_sae, so their orientation is ambiguous",
                "add d_in and d_sae to the config",
            )
        d_in, d_sae = int(W_enc.shape[0]), int(W_enc.shape[1])
    elif d_in is None:
        assert d_sae is not None
        d_in = _other_dim(W_enc, d_sae, "d_sae", where)
    elif d_sae is None:
        d_sae = _other_dim(W_enc, d_in, "d_in", where)
    state: dict[str, torch.Tensor] = {
        "W_enc": _orient("W_enc", W_enc, d_in, d_sae, where),
        "W_dec": _orient("W_dec", W_dec, d_sae, d_in, where),
    }
    for name, t in tensors.items():
        if name in state:
            continue
        if name == "threshold" and t.numel() == 1 and d_sae != 1:
            t = t.reshape(()).expand(d_sae).clone()
        state[name] = t.reshape(-1) if t.ndim == 0 else t
        length = d_in if name == "b_dec" else d_sae
        if state[name].shape != (length,):
            raise SAEError(
                f"{name} in {where} has shape {list(t.shape)}, expected [{length}]",
                "the weights do not match d_in/d_sae; check the config or re-save the SAE",
            )
    stored = next(iter(tensors.values())).dtype
    cfg_dtype = dtype or fields.get("dtype") or _DTYPE_NAMES.get(stored, "float32")
    cfg_fields = {**fields, "d_in": d_in, "d_sae": d_sae, "dtype": str(cfg_dtype).removeprefix("torch.")}
    try:
        cfg = config_from_dict(cfg_fields)
    except ConfigError as exc:
        raise SAEError(f"{where}: {exc.problem}", exc.fix) from None
    if "b_dec" not in state:
        state["b_dec"] = torch.zeros(d_in)
    return SAE.from_state_dict(cfg, state)


_DTYPE_NAMES: dict[torch.dtype, str] = {
    torch.float32: "float32",
    torch.float16: "float16",
    torch.bfloat16: "bfloat16",
    torch.float64: "float64",
}


def _other_dim(W: torch.Tensor, known: int, known_name: str, where: str) -> int:
    a, b = int(W.shape[0]), int(W.shape[1])
    if a == known:
        return b
    if b == known:
        return a
    raise SAEError(
        f"W_enc in {where} has shape {[a, b]}, which has no dimension equal to {known_name}={known}",
        "the weights do not match the config; check it or re-save the SAE",
    )


# ==================================================================================================
# format readers
# ==================================================================================================


def _load_saelens(folder: Path, dtype: str | None) -> SAE:
    cfg = _read_json(folder / SAELENS_CFG)
    tensors = _read_safetensors(folder / SAELENS_WEIGHTS)
    where = str(folder)
    meta_in = cfg.get("metadata")
    if isinstance(meta_in, dict) and "architecture" in cfg:
        fields, metadata = _saelens6_fields(cfg, dict(meta_in), where)
    else:
        fields, metadata = _saelens_flat_fields(cfg, where)
    tensors = dict(tensors)
    if "threshold" not in tensors and "log_threshold" in tensors:
        tensors["threshold"] = tensors.pop("log_threshold").exp()
    scaling = tensors.pop("scaling_factor", tensors.pop("finetuning_scaling_factor", None))
    if scaling is not None and not torch.allclose(scaling, torch.ones_like(scaling)):
        # SAELens <6 multiplied the latents by this factor inside decode; folding it into W_dec keeps both
        # the latents and the reconstruction of the original.
        W_dec = tensors["W_dec"]
        if W_dec.ndim != 2 or W_dec.shape[0] != scaling.numel():
            raise SAEError(
                f"{where}: scaling_factor has {scaling.numel()} entries but W_dec has shape {list(W_dec.shape)}",
                "the weights are inconsistent; re-download or re-save the SAE",
            )
        tensors["W_dec"] = W_dec * scaling.reshape(-1, 1).to(W_dec.dtype)
        metadata["finetuning_scaling_factor_folded"] = True
    fields["metadata"] = {**metadata, "source": str(folder), "source_format": "saelens"}
    return _assemble(fields, tensors, where, dtype)


def _check_normalize(value: Any, where: str) -> str:
    if value is None or value is False:
        return "none"
    if value is True:
        return "expected_average_only_in"
    if value not in NORMALIZE_ACTIVATIONS:
        raise SAEError(
            f"{where}: normalize_activations={value!r} is not supported",
            f"use an SAE with normalize_activations in {', '.join(NORMALIZE_ACTIVATIONS)} (or fold it into the weights)",
        )
    return str(value)


def _saelens6_fields(
    cfg: dict[str, Any], metadata: dict[str, Any], where: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    architecture = cfg["architecture"]
    k = cfg.get("k")
    if architecture == "jumprelu" and metadata.get("training_architecture") == "batchtopk":
        details = metadata.get("training_architecture_details") or {}
        if isinstance(details, dict) and details.get("k") is not None:
            architecture, k = "batchtopk", details["k"]
    if architecture not in ARCHITECTURES:
        raise SAEError(
            f"{where}: SAELens architecture {architecture!r} is not supported",
            f"use an SAE of architecture {', '.join(ARCHITECTURES)}",
        )
    if cfg.get("reshape_activations", "none") not in (None, "none"):
        metadata["reshape_activations"] = cfg["reshape_activations"]
    fields: dict[str, Any] = {
        "architecture": architecture,
        "d_in": cfg.get("d_in"),
        "d_sae": cfg.get("d_sae"),
        "dtype": cfg.get("dtype"),
        "apply_b_dec_to_input": bool(cfg.get("apply_b_dec_to_input", True)),
        "normalize_activations": _check_normalize(cfg.get("normalize_activations", "none"), where),
        "hook_name": metadata.get("hook_name"),
        "model_name": metadata.get("model_name"),
    }
    if architecture in ("topk", "batchtopk"):
        if k is None:
            raise SAEError(f"{where}: {architecture} SAE config has no k", "add k to cfg.json")
        fields["k"] = k
    if architecture == "topk":
        fields["rescale_acts_by_decoder_norm"] = bool(cfg.get("rescale_acts_by_decoder_norm", False))
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
    if architecture not in ARCHITECTURES:
        raise SAEError(
            f"{where}: SAELens architecture {architecture!r} is not supported",
            f"use one of {', '.join(ARCHITECTURES)}",
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
        "normalize_activations": _check_normalize(cfg.get("normalize_activations"), where),
        "hook_name": hook,
        "model_name": cfg.get("model_name"),
    }
    if architecture == "topk":
        fields["k"] = k
    return fields, metadata


def _load_sparsify(folder: Path, dtype: str | None) -> SAE:
    cfg = _read_json(folder / SPARSIFY_CFG)
    tensors = _read_safetensors(folder / SPARSIFY_WEIGHTS)
    where = str(folder)
    activation = cfg.get("activation", "topk")
    if activation != "topk":
        raise SAEError(
            f"{where}: sparsify activation {activation!r} is not supported", "use a TopK sparsify SAE"
        )
    if cfg.get("transcode") or cfg.get("skip_connection") or "W_skip" in tensors:
        raise SAEError(
            f"{where} is a sparsify transcoder (transcode/skip_connection), not an SAE",
            "use an SAE that reconstructs its own input",
        )
    if cfg.get("signed"):
        raise SAEError(f"{where}: signed sparsify SAEs are not supported", "use an unsigned TopK SAE")
    d_in = cfg.get("d_in")
    d_sae = cfg.get("num_latents") or None
    if d_sae is None and d_in is not None and cfg.get("expansion_factor"):
        d_sae = int(d_in) * int(cfg["expansion_factor"])
    renamed: dict[str, torch.Tensor] = {}
    for key, t in tensors.items():
        if key == "encoder.weight":
            renamed["W_enc"] = t.T  # nn.Linear weight is [d_sae, d_in]
        elif key == "encoder.bias":
            renamed["b_enc"] = t
        elif key == "decoder.weight":
            renamed["W_dec"] = t.T
        elif key == "decoder.bias":
            renamed["b_dec"] = t
        elif key in ("W_enc", "W_dec", "b_enc", "b_dec"):
            renamed[key] = t
        else:
            raise SAEError(
                f"{where}: unexpected tensor {key!r} in {SPARSIFY_WEIGHTS}", "use a plain TopK sparsify SAE"
            )
    extras: dict[str, Any] = cfg["pseval"] if isinstance(cfg.get("pseval"), dict) else {}
    hook = extras.get("hook_name") or hf_module_to_hook(folder.name)
    model_name = extras.get("model_name")
    run_cfg = folder.parent / "config.json"
    if model_name is None and run_cfg.is_file():
        try:
            model_name = json.loads(run_cfg.read_text(encoding="utf-8")).get("model")
        except (json.JSONDecodeError, UnicodeDecodeError, OSError, AttributeError):
            model_name = None
    if "k" not in cfg:
        raise SAEError(f"{where}: sparsify cfg.json has no k", "add k to cfg.json")
    fields = {
        "architecture": "topk",
        "d_in": d_in,
        "d_sae": d_sae,
        "k": cfg["k"],
        "apply_b_dec_to_input": True,
        "normalize_activations": "none",
        "hook_name": hook,
        "model_name": model_name,
        "metadata": {
            "hf_hook_name": folder.name,
            "source": str(folder),
            "source_format": "sparsify",
            "sparsify_cfg": {k: v for k, v in cfg.items() if k != "pseval"},
        },
    }
    return _assemble(fields, renamed, where, dtype)


_DL_TRAINER_TO_CLASS = {
    "StandardTrainer": "AutoEncoder",
    "StandardTrainerAprilUpdate": "AutoEncoder",
    "PAnnealTrainer": "AutoEncoder",
    "TopKTrainer": "AutoEncoderTopK",
    "BatchTopKTrainer": "BatchTopKSAE",
    "MatryoshkaBatchTopKTrainer": "MatryoshkaBatchTopKSAE",
    "JumpReluTrainer": "JumpReluAutoEncoder",
    "GatedSAETrainer": "GatedAutoEncoder",
    "GatedAnnealTrainer": "GatedAutoEncoder",
}
_DL_CLASS_TO_ARCH = {
    "AutoEncoder": "standard",
    "AutoEncoderNew": "standard",
    "AutoEncoderTopK": "topk",
    "BatchTopKSAE": "batchtopk",
    "MatryoshkaBatchTopKSAE": "batchtopk",
    "JumpReluAutoEncoder": "jumprelu",
    "GatedAutoEncoder": "gated",
}
_DL_CLASS_FOR_ARCH = {
    "standard": "AutoEncoder",
    "topk": "AutoEncoderTopK",
    "batchtopk": "BatchTopKSAE",
    "jumprelu": "JumpReluAutoEncoder",
    "gated": "GatedAutoEncoder",
}
_DL_TRAINER_FOR_CLASS = {
    "AutoEncoder": "StandardTrainer",
    "AutoEncoderTopK": "TopKTrainer",
    "BatchTopKSAE": "BatchTopKTrainer",
    "JumpReluAutoEncoder": "JumpReluTrainer",
    "GatedAutoEncoder": "GatedSAETrainer",
}


def _dl_class_from_keys(keys: set[str]) -> str | None:
    if {"gate_bias", "mag_bias", "r_mag"} <= keys:
        return "GatedAutoEncoder"
    if "W_enc" in keys and "threshold" in keys and "k" in keys:
        return "MatryoshkaBatchTopKSAE"
    if "W_enc" in keys and "threshold" in keys:
        return "JumpReluAutoEncoder"
    if "encoder.weight" in keys and "k" in keys:
        return "AutoEncoderTopK"
    if "encoder.weight" in keys and "bias" in keys:
        return "AutoEncoder"
    if "encoder.weight" in keys and "decoder.bias" in keys:
        return "AutoEncoderNew"
    return None


def _load_dictionary_learning(folder: Path, dtype: str | None) -> SAE:
    where = str(folder)
    raw = _read_torch_state_dict(folder / DL_WEIGHTS)
    config = _read_json(folder / DL_CFG) if (folder / DL_CFG).is_file() else {}
    trainer: dict[str, Any] = config["trainer"] if isinstance(config.get("trainer"), dict) else {}
    dict_class = trainer.get("dict_class") or _DL_TRAINER_TO_CLASS.get(str(trainer.get("trainer_class")))
    if dict_class is None:
        dict_class = _dl_class_from_keys(set(raw))
        logger.warning(
            "%s has no trainer.dict_class in config.json; guessed %s from its tensors", where, dict_class
        )
    if dict_class not in _DL_CLASS_TO_ARCH:
        raise SAEError(
            f"{where}: dictionary_learning class {dict_class!r} is not supported",
            f"use one of {', '.join(_DL_CLASS_TO_ARCH)}",
        )
    architecture = _DL_CLASS_TO_ARCH[dict_class]
    if dict_class == "AutoEncoderTopK" and "k" not in raw and trainer.get("k") is None:
        raise SAEError(f"{where}: AutoEncoderTopK without k", "add trainer.k to config.json")
    tensors: dict[str, torch.Tensor] = {}
    unexpected: list[str] = []
    k_buffer: torch.Tensor | None = None
    extra_meta: dict[str, Any] = {}
    for key, t in raw.items():
        if key == "encoder.weight":
            tensors["W_enc"] = t.T  # nn.Linear weight is [d_sae, d_in]
        elif key == "decoder.weight":
            tensors["W_dec"] = t.T  # nn.Linear weight is [d_in, d_sae]
        elif key == "encoder.bias":
            tensors["b_enc"] = t
        elif key in ("bias", "decoder_bias", "decoder.bias", "b_dec"):
            tensors["b_dec"] = t
        elif key == "gate_bias":
            tensors["b_gate"] = t
        elif key == "mag_bias":
            tensors["b_mag"] = t
        elif key in ("W_enc", "W_dec", "b_enc", "r_mag"):
            tensors[key] = t
        elif key == "k":
            k_buffer = t
        elif key == "threshold":
            if architecture in ("jumprelu", "batchtopk"):
                tensors["threshold"] = t
            else:  # AutoEncoderTopK keeps an unused inference threshold; its encode is per-input top-k
                extra_meta["dl_threshold"] = t.reshape(-1)[0].item() if t.numel() else None
        elif key == "group_sizes":
            extra_meta["group_sizes"] = t.tolist()
        else:
            unexpected.append(key)
    if unexpected:
        raise SAEError(
            f"{where}: unexpected tensors {', '.join(sorted(unexpected))} for dictionary_learning {dict_class}",
            "use a supported dictionary_learning SAE class",
        )
    apply_b_dec = not (
        dict_class == "JumpReluAutoEncoder" or (dict_class == "AutoEncoderNew" and "bias" not in raw)
    )
    layer = trainer.get("layer")
    submodule = trainer.get("submodule_name")
    hook = dl_submodule_to_hook(submodule, int(layer) if isinstance(layer, int) else None)
    lm_name = trainer.get("lm_name")
    fields: dict[str, Any] = {
        "architecture": architecture,
        "d_in": trainer.get("activation_dim"),
        "d_sae": trainer.get("dict_size"),
        "apply_b_dec_to_input": apply_b_dec,
        "normalize_activations": "none",
        "hook_name": hook,
        "model_name": lm_name,
        "metadata": {
            **extra_meta,
            "dict_class": dict_class,
            "submodule_name": submodule,
            "layer": layer,
            "source": where,
            "source_format": "dictionary_learning",
        },
    }
    if architecture in ("topk", "batchtopk"):
        k = trainer.get("k")
        if k is None and k_buffer is not None:
            k = k_buffer.item()
        if k is None:
            raise SAEError(f"{where}: {dict_class} without k", "add trainer.k to config.json")
        fields["k"] = int(k) if architecture == "topk" else k
    return _assemble(fields, tensors, where, dtype)


def _load_gemma_scope(folder: Path, dtype: str | None, file: Path | None = None) -> SAE:
    path = file or folder / GEMMA_SCOPE_WEIGHTS
    tensors = _read_npz(path)
    unexpected = sorted(set(tensors) - {"W_enc", "W_dec", "b_enc", "b_dec", "threshold"})
    if unexpected:
        raise SAEError(
            f"{path}: unexpected arrays {', '.join(unexpected)} for a Gemma Scope JumpReLU SAE",
            "use a Gemma Scope params.npz",
        )
    hook, model = _gemma_scope_hook(path)
    fields = {
        "architecture": "jumprelu",
        "apply_b_dec_to_input": False,
        "normalize_activations": "none",
        "hook_name": hook,
        "model_name": model,
        "metadata": {"source": str(path), "source_format": "gemma_scope"},
    }
    tensors = {k: (v.float() if v.dtype == torch.float64 else v) for k, v in tensors.items()}
    return _assemble(fields, tensors, str(path), dtype)


_READERS: dict[str, Callable[[Path, str | None], SAE]] = {
    "saelens": _load_saelens,
    "sparsify": _load_sparsify,
    "dictionary_learning": _load_dictionary_learning,
    "gemma_scope": _load_gemma_scope,
}


# ==================================================================================================
# detection and the public loader
# ==================================================================================================


def detect_format(folder: str | Path) -> str | None:
    """The format of the SAE directly in ``folder`` (one of ``FORMATS``), or None."""
    path = Path(folder)
    if (path / SAELENS_WEIGHTS).is_file():
        return "saelens"
    if (path / SPARSIFY_WEIGHTS).is_file():
        return "sparsify"
    if (path / DL_WEIGHTS).is_file():
        return "dictionary_learning"
    if (path / GEMMA_SCOPE_WEIGHTS).is_file():
        return "gemma_scope"
    return None


def _sub_saes(folder: Path) -> dict[str, Path]:
    try:
        children = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:
        return {}
    return {p.name: p for p in children if detect_format(p) is not None}


def _select_sub_sae(folder: Path, subs: dict[str, Path], hook_name: str | None) -> Path:
    def hook_of(name: str, path: Path) -> str | None:
        if detect_format(path) == "sparsify":
            return hf_module_to_hook(name)
        return None

    choices = ", ".join(
        f"{name} ({hook})" if (hook := hook_of(name, p)) else name for name, p in subs.items()
    )
    if hook_name is None:
        if len(subs) == 1:
            return next(iter(subs.values()))
        raise SAEError(
            f"{folder} holds {len(subs)} SAEs: {choices}",
            "choose one with hook_name (a folder name or a hook name), or pass that subfolder's path",
        )
    for name, path in subs.items():
        if hook_name in (name, hook_of(name, path)):
            return path
    raise SAEError(f"{folder} holds no SAE for {hook_name!r}; it holds {choices}", "choose one of those")


def load_sae(
    spec: str | Path,
    device: str | torch.device = "cpu",
    dtype: str | None = None,
    hook_name: str | None = None,
) -> SAE:
    """Load an SAE from a folder, a weights file inside one, or ``saelens:RELEASE/SAE_ID``.

    ``dtype`` (``float32``, ``bfloat16``, ...) overrides the stored one. ``hook_name`` picks one SAE from a
    folder holding several (sparsify hook point folders); for a single SAE it sets the hook when the file
    records none, and otherwise replaces the recorded hook (kept in ``metadata["hook_name_in_file"]``).
    Every problem with the input raises :class:`SAEError`.
    """
    if dtype is not None:
        dtype = str(dtype).removeprefix("torch.")
        if dtype not in _DTYPE_NAMES.values():
            raise SAEError(f"unknown dtype {dtype!r}", f"use one of {', '.join(_DTYPE_NAMES.values())}")
    selected_by_hook = False
    if isinstance(spec, str) and spec.startswith("saelens:"):
        from pseval.sae.pretrained import load_pretrained, parse_saelens_spec

        release, sae_id = parse_saelens_spec(spec)
        sae = load_pretrained(release, sae_id, device="cpu", dtype=dtype)
    else:
        path = Path(spec).expanduser()
        if not path.exists():
            raise SAEError(
                f"SAE path {path} does not exist",
                "check the path, or use saelens:RELEASE/SAE_ID for a SAELens pretrained SAE",
            )
        file: Path | None = None
        if path.is_file():
            if path.name not in _WEIGHT_FILES and path.suffix != ".npz":
                raise SAEError(
                    f"{path} is not a known SAE weights file",
                    f"pass the SAE folder; known layouts: {_KNOWN_LAYOUTS}",
                )
            file, path = (path, path.parent) if path.suffix == ".npz" else (None, path.parent)
        fmt = "gemma_scope" if file is not None else detect_format(path)
        if fmt is None:
            subs = _sub_saes(path)
            if not subs:
                raise SAEError(
                    f"no SAE found in {path}",
                    f"pass a folder holding one of: {_KNOWN_LAYOUTS}",
                )
            selected_by_hook = hook_name is not None
            path = _select_sub_sae(path, subs, hook_name)
            fmt = detect_format(path)
            assert fmt is not None
        logger.debug("loading %s SAE from %s", fmt, path)
        sae = _load_gemma_scope(path, dtype, file) if file is not None else _READERS[fmt](path, dtype)
    if hook_name is not None and not selected_by_hook and hook_name != sae.cfg.hook_name:
        if sae.cfg.hook_name is not None:
            logger.warning(
                "using hook %s instead of the SAE's recorded hook %s", hook_name, sae.cfg.hook_name
            )
            sae.cfg.metadata = {**sae.cfg.metadata, "hook_name_in_file": sae.cfg.hook_name}
        sae.cfg.hook_name = hook_name
    return sae.to(device)


# ==================================================================================================
# writers
# ==================================================================================================


def _prepare_destination(folder: Path, sae: SAE, overwrite: bool) -> None:
    """Refuse to replace a folder holding something else than this SAE, unless ``overwrite``."""
    if folder.is_file():
        raise SAEError(f"{folder} is a file, not a folder", "choose a folder path for the SAE")
    if not folder.is_dir() or overwrite or not any(folder.iterdir()):
        return
    try:
        existing = load_sae(folder)
    except SAEError:
        raise SAEError(
            f"{folder} already exists and holds files that are not an SAE",
            "choose another folder or pass overwrite=True to replace it",
        ) from None
    if existing.fingerprint() != sae.fingerprint():
        raise SAEError(
            f"{folder} already holds a different SAE",
            "choose another folder or pass overwrite=True to replace it",
        )


def _state_for_saving(sae: SAE) -> dict[str, torch.Tensor]:
    return {name: t.detach().to("cpu").contiguous() for name, t in sae.state_dict().items()}


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
    dtype = _DTYPE_NAMES.get(sae.dtype, cfg.dtype)
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
    if cfg.architecture == "batchtopk":
        details = dict(metadata.get("training_architecture_details") or {})
        details["k"] = getattr(cfg, "k", None)
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
    _prepare_destination(dest, sae, overwrite)
    cfg = saelens_cfg_dict(sae)
    state = _state_for_saving(sae)
    with atomic_dir(dest) as tmp:
        save_file(state, str(tmp / SAELENS_WEIGHTS), metadata={"format": "pt"})
        write_json_atomic(tmp / SAELENS_CFG, cfg)
    return dest


def _require_plain_input(sae: SAE, fmt: str) -> None:
    if sae.cfg.normalize_activations in ("constant_norm_rescale", "layer_norm"):
        raise SAEError(
            f"{fmt} cannot express normalize_activations={sae.cfg.normalize_activations!r}",
            "save it in SAELens format with save_sae",
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
    _require_plain_input(sae, "sparsify")
    out = sae.fold_decoder_norms() if getattr(sae.cfg, "rescale_acts_by_decoder_norm", False) else sae
    out = out.with_apply_b_dec_to_input(True)
    dest = Path(folder).expanduser()
    _prepare_destination(dest, out, overwrite)
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


def _cfg_k(sae: SAE) -> float:
    cfg = sae.cfg
    assert isinstance(cfg, (TopKSAEConfig, BatchTopKSAEConfig))
    return cfg.k


def write_dictionary_learning(sae: SAE, folder: str | Path, overwrite: bool = False) -> Path:
    """Write ``sae`` as a dictionary_learning folder (``ae.pt`` state dict + ``config.json``).

    The class follows the architecture (AutoEncoder, AutoEncoderTopK, BatchTopKSAE, JumpReluAutoEncoder,
    GatedAutoEncoder); ``apply_b_dec_to_input`` is moved into the encoder biases when the class fixes the
    other choice, which leaves the latents unchanged.
    """
    _require_plain_input(sae, "dictionary_learning")
    arch = sae.cfg.architecture
    dict_class = _DL_CLASS_FOR_ARCH[arch]
    out = sae.fold_decoder_norms() if getattr(sae.cfg, "rescale_acts_by_decoder_norm", False) else sae
    out = out.with_apply_b_dec_to_input(arch != "jumprelu")
    p = {name: t.detach().contiguous().cpu() for name, t in out.state_dict().items()}
    state: dict[str, torch.Tensor]
    if arch == "standard":
        state = {
            "encoder.weight": p["W_enc"].T,
            "encoder.bias": p["b_enc"],
            "decoder.weight": p["W_dec"].T,
            "bias": p["b_dec"],
        }
    elif arch == "topk":
        state = {
            "encoder.weight": p["W_enc"].T,
            "encoder.bias": p["b_enc"],
            "decoder.weight": p["W_dec"].T,
            "b_dec": p["b_dec"],
            "k": torch.tensor(int(_cfg_k(out)), dtype=torch.int),
            "threshold": torch.tensor(-1.0, dtype=torch.float32),
        }
    elif arch == "batchtopk":
        threshold = p["threshold"]
        if not torch.all(threshold == threshold[0]):
            raise SAEError(
                "dictionary_learning's BatchTopKSAE stores one threshold, but this SAE's thresholds differ per latent",
                "save it in SAELens format with save_sae",
            )
        k = _cfg_k(out)
        state = {
            "encoder.weight": p["W_enc"].T,
            "encoder.bias": p["b_enc"],
            "decoder.weight": p["W_dec"].T,
            "b_dec": p["b_dec"],
            "k": torch.tensor(round(k), dtype=torch.int),
            "threshold": threshold[0].clone().to(torch.float32),
        }
    elif arch == "jumprelu":
        state = {k: p[k] for k in ("W_enc", "b_enc", "W_dec", "b_dec", "threshold")}
    else:  # gated
        state = {
            "encoder.weight": p["W_enc"].T,
            "decoder.weight": p["W_dec"].T,
            "decoder_bias": p["b_dec"],
            "gate_bias": p["b_gate"],
            "mag_bias": p["b_mag"],
            "r_mag": p["r_mag"],
        }
    state = {k: v.contiguous() for k, v in state.items()}
    submodule, layer = hook_to_dl_submodule(out.cfg.hook_name)
    trainer: dict[str, Any] = {
        "dict_class": dict_class,
        "trainer_class": _DL_TRAINER_FOR_CLASS[dict_class],
        "activation_dim": out.cfg.d_in,
        "dict_size": out.cfg.d_sae,
        "layer": layer,
        "lm_name": out.cfg.model_name,
        "submodule_name": submodule,
    }
    if arch in ("topk", "batchtopk"):
        k_value = _cfg_k(out)
        trainer["k"] = int(k_value) if float(k_value).is_integer() else k_value
    dest = Path(folder).expanduser()
    _prepare_destination(dest, out, overwrite)
    with atomic_dir(dest) as tmp:
        torch.save(state, str(tmp / DL_WEIGHTS))
        write_json_atomic(
            tmp / DL_CFG,
            {"trainer": trainer, "buffer": {"d_submodule": out.cfg.d_in}, "pseval_version": _pseval_version},
        )
    return dest


def write_gemma_scope(sae: SAE, folder: str | Path, overwrite: bool = False) -> Path:
    """Write a JumpReLU (or BatchTopK) SAE as a Gemma Scope ``params.npz`` (float32, b_dec not subtracted)."""
    if sae.cfg.architecture not in ("jumprelu", "batchtopk"):
        raise SAEError(
            f"Gemma Scope params.npz stores JumpReLU SAEs only, not {sae.cfg.architecture}",
            "save it in SAELens format with save_sae",
        )
    _require_plain_input(sae, "Gemma Scope")
    out = sae.with_apply_b_dec_to_input(False).to(torch.float32)
    dest = Path(folder).expanduser()
    _prepare_destination(dest, out, overwrite)
    arrays = {
        name: getattr(out, name).detach().to("cpu", torch.float32).numpy()
        for name in ("W_enc", "W_dec", "b_enc", "b_dec", "threshold")
    }
    with atomic_dir(dest) as tmp:
        np.savez(str(tmp / GEMMA_SCOPE_WEIGHTS), **arrays)  # type: ignore[arg-type]
    return dest
