"""The eager path through ``sae_lens.SAE.from_pretrained``, for registry releases whose conversion pseval has no
reader of its own, and the conversion of in-memory ``sae_lens`` SAEs."""

from __future__ import annotations

import os
from typing import Any

import torch

from pseval.errors import SAEError
from pseval.sae.config import SAE_CONFIGS, config_from_dict
from pseval.sae.formats._common import SAELENS_BATCHTOPK_TRAINING, SAELENS_TRANSCODERS, transcoder_metadata
from pseval.sae.model import SAE

_INSTALL_FIX = "pip install 'pseval[saelens]', or download the SAE folder and pass its path"


def _import_sae_lens() -> Any:
    try:
        import sae_lens
    except ImportError as exc:
        raise SAEError(
            f"loading a SAELens pretrained SAE needs the sae_lens package ({exc})", _INSTALL_FIX
        ) from None
    return sae_lens


def network_errors() -> tuple[type[BaseException], ...]:
    """The exception types a failed Hugging Face download raises."""
    errors: list[type[BaseException]] = [OSError]
    try:
        import httpx

        errors.append(httpx.HTTPError)
    except ImportError:  # pragma: no cover - httpx comes with huggingface_hub
        pass
    try:
        import requests

        errors.append(requests.RequestException)
    except ImportError:  # pragma: no cover
        pass
    return tuple(errors)


def load_pretrained(release: str, sae_id: str, device: str = "cpu", dtype: str | None = None) -> SAE:
    """Load ``release``/``sae_id`` with ``sae_lens.SAE.from_pretrained`` and convert it to a pseval :class:`SAE`.

    SAELens folds a registry-recorded activation norm scaling factor into the weights, as it does for its
    own users. An unknown release or id, a missing ``sae_lens``, or an unreachable hub raise :class:`SAEError`.
    """
    sae_lens = _import_sae_lens()
    try:
        from huggingface_hub.errors import (
            EntryNotFoundError,
            LocalEntryNotFoundError,
            RepositoryNotFoundError,
        )
    except ImportError:  # pragma: no cover - huggingface_hub comes with sae_lens
        EntryNotFoundError = LocalEntryNotFoundError = RepositoryNotFoundError = ()  # type: ignore[assignment,misc]

    label = f"saelens:{release}/{sae_id}"
    try:
        sl_sae = sae_lens.SAE.from_pretrained(release, sae_id, device=str(device), dtype=dtype or "float32")
    except ValueError as exc:
        raise SAEError(
            f"{label} is not in the SAELens pretrained registry: {exc}",
            "check the release and SAE id against sae_lens' pretrained_saes.yaml",
        ) from None
    except LocalEntryNotFoundError:
        raise unreachable(label) from None
    except (RepositoryNotFoundError, EntryNotFoundError) as exc:
        raise SAEError(
            f"{label} was not found on the Hugging Face hub ({type(exc).__name__})",
            "check the release and SAE id, or download the SAE folder and pass its path",
        ) from None
    except network_errors():
        raise unreachable(label) from None
    sae = from_saelens(sl_sae)
    sae.cfg.metadata = {**sae.cfg.metadata, "source": label, "source_format": "saelens_pretrained"}
    return sae


def unreachable(label: str) -> SAEError:
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
    why = (
        "offline mode is on (HF_HUB_OFFLINE) and it is not in the local cache" if offline else "no connection"
    )
    return SAEError(
        f"cannot fetch {label}: the Hugging Face hub is unreachable ({why})",
        "download the SAE folder on a connected machine and pass its path",
    )


def from_saelens(sl_sae: Any) -> SAE:
    """Convert an in-memory ``sae_lens.SAE`` (6.x) into a pseval :class:`SAE` with the same weights."""
    cfg_dict: dict[str, Any] = dict(sl_sae.cfg.to_dict())
    metadata = dict(cfg_dict.pop("metadata", {}) or {})
    architecture = cfg_dict.get("architecture")
    if architecture == "jumprelu" and metadata.get("training_architecture") in SAELENS_BATCHTOPK_TRAINING:
        details = metadata.get("training_architecture_details") or {}
        if details.get("k") is not None:
            architecture, cfg_dict["k"] = "batchtopk", details["k"]
    transcoder = architecture in SAELENS_TRANSCODERS
    if transcoder:
        inner, skip = SAELENS_TRANSCODERS[str(architecture)]
        metadata["sae_lens_architecture"] = architecture
        metadata.update(
            transcoder_metadata(
                int(cfg_dict["d_in"]),
                cfg_dict.get("d_out"),
                metadata.get("hook_name_out"),
                skip,
                "SAELens SAE",
            )
        )
        architecture = inner
        cfg_dict["apply_b_dec_to_input"] = False
    if architecture not in SAE_CONFIGS:
        raise SAEError(
            f"SAELens architecture {architecture!r} is not supported",
            f"use an SAE of architecture {', '.join(SAE_CONFIGS)}",
        )
    normalize = cfg_dict.get("normalize_activations", "none")
    if normalize not in ("none", "expected_average_only_in", "constant_norm_rescale", "layer_norm"):
        raise SAEError(
            f"SAELens normalize_activations={normalize!r} is not supported", "fold it into the weights first"
        )
    if cfg_dict.get("reshape_activations", "none") != "none":
        metadata["reshape_activations"] = cfg_dict["reshape_activations"]
    fields = {
        "architecture": architecture,
        "d_in": cfg_dict["d_in"],
        "d_sae": cfg_dict["d_sae"],
        "dtype": str(cfg_dict.get("dtype", "float32")).removeprefix("torch."),
        "apply_b_dec_to_input": cfg_dict.get("apply_b_dec_to_input", True),
        "normalize_activations": normalize,
        "hook_name": metadata.get("hook_name"),
        "model_name": metadata.get("model_name"),
        "metadata": metadata,
    }
    if architecture in ("topk", "batchtopk"):
        fields["k"] = cfg_dict["k"]
    if architecture == "topk":
        fields["rescale_acts_by_decoder_norm"] = cfg_dict.get("rescale_acts_by_decoder_norm", False)
    cfg = config_from_dict(fields)
    state = {
        name: t
        for name, t in sl_sae.state_dict().items()
        if isinstance(t, torch.Tensor) and not (transcoder and name == "W_skip")
    }
    return SAE.from_state_dict(cfg, state, device=sl_sae.W_enc.device)
