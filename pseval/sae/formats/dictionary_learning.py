"""dictionary_learning folders: ``ae.pt`` (a torch state dict) + ``config.json`` with a ``trainer`` section.

Key names differ per class (AutoEncoder, AutoEncoderTopK, BatchTopKSAE, MatryoshkaBatchTopKSAE,
JumpReluAutoEncoder, GatedAutoEncoder); the BatchTopK family is run for inference through its learned
threshold. ``ae.pt`` is memory-mapped, so opening reads the shapes only.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from pseval._io import atomic_dir, write_json_atomic
from pseval._version import __version__ as _pseval_version
from pseval.errors import SAEError
from pseval.sae.config import BatchTopKSAEConfig, TopKSAEConfig
from pseval.sae.formats._common import materialise, read_json, read_torch_file, resolve
from pseval.sae.formats._registry import ReleaseFiles, SAEFormat, register_format
from pseval.sae.formats._writing import prepare_destination, require_plain_input
from pseval.sae.formats.hooks import dl_submodule_to_hook, hook_to_dl_submodule
from pseval.sae.model import SAE
from pseval.sae.source import SAESource

logger = logging.getLogger(__name__)

DL_WEIGHTS = "ae.pt"
DL_CFG = "config.json"

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


def _rename(
    raw: dict[str, torch.Tensor], architecture: str, dict_class: str, where: str
) -> tuple[dict[str, torch.Tensor], torch.Tensor | None, dict[str, Any]]:
    """pseval-named tensors (nn.Linear weights transposed as views), the ``k`` buffer and extra metadata."""
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
    return tensors, k_buffer, extra_meta


def open_dictionary_learning(folder: Path) -> SAESource:
    """Open a dictionary_learning folder (``ae.pt`` memory-mapped: only the shapes and small buffers are read)."""
    where = str(folder)
    weights = folder / DL_WEIGHTS
    raw = read_torch_file(weights)
    config = read_json(folder / DL_CFG) if (folder / DL_CFG).is_file() else {}
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
    tensors, k_buffer, extra_meta = _rename(raw, architecture, dict_class, where)
    apply_b_dec = not (
        dict_class == "JumpReluAutoEncoder" or (dict_class == "AutoEncoderNew" and "bias" not in raw)
    )
    layer = trainer.get("layer")
    submodule = trainer.get("submodule_name")
    hook = dl_submodule_to_hook(submodule, int(layer) if isinstance(layer, int) else None)
    metadata: dict[str, Any] = {
        **extra_meta,
        "dict_class": dict_class,
        "submodule_name": submodule,
        "layer": layer,
        "source": where,
        "source_format": "dictionary_learning",
        # dictionary_learning configs do not record it; sae-lens's dictionary_learning_1 converter (and so the
        # saelens: route) sets True, and a folder opened by path must be evaluated the same way
        "prepend_bos": True,
    }
    if dict_class == "MatryoshkaBatchTopKSAE" and "group_sizes" in extra_meta:
        metadata["matryoshka_widths"] = list(extra_meta["group_sizes"])
    fields: dict[str, Any] = {
        "architecture": architecture,
        "d_in": trainer.get("activation_dim"),
        "d_sae": trainer.get("dict_size"),
        "apply_b_dec_to_input": apply_b_dec,
        "normalize_activations": "none",
        "hook_name": hook,
        "model_name": trainer.get("lm_name"),
        "metadata": metadata,
    }
    if architecture in ("topk", "batchtopk"):
        k = trainer.get("k")
        if k is None and k_buffer is not None:
            k = k_buffer.item()
        if k is None:
            raise SAEError(f"{where}: {dict_class} without k", "add trainer.k to config.json")
        fields["k"] = int(k) if architecture == "topk" else k
    stored = next((t.dtype for t in tensors.values() if t.is_floating_point()), None)
    shapes = {n: tuple(t.shape) for n, t in tensors.items()}
    plan = resolve(fields, shapes, where, stored, {n: t.dtype for n, t in tensors.items()})
    del raw, tensors

    def build(dtype: str | None) -> SAE:
        loaded, _, _ = _rename(read_torch_file(weights), architecture, dict_class, where)
        return materialise(plan, loaded, dtype)

    files = (weights, folder / DL_CFG) if (folder / DL_CFG).is_file() else (weights,)
    return SAESource(
        spec=where, cfg=plan.cfg, format="dictionary_learning", path=folder, files=files, builder=build
    )


def _detect(path: Path) -> bool:
    return path.is_dir() and (path / DL_WEIGHTS).is_file()


DICTIONARY_LEARNING = register_format(
    SAEFormat(
        name="dictionary_learning",
        layout=f"{DL_WEIGHTS} + {DL_CFG}",
        detect=_detect,
        open=open_dictionary_learning,
        conversion_funcs=("dictionary_learning_1",),
        release_files=ReleaseFiles(required=(DL_WEIGHTS, DL_CFG)),
    )
)


# ==================================================================================================
# writing
# ==================================================================================================


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
    require_plain_input(sae, "dictionary_learning")
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
    prepare_destination(dest, out, overwrite)
    with atomic_dir(dest) as tmp:
        torch.save(state, str(tmp / DL_WEIGHTS))
        write_json_atomic(
            tmp / DL_CFG,
            {"trainer": trainer, "buffer": {"d_submodule": out.cfg.d_in}, "pseval_version": _pseval_version},
        )
    return dest
