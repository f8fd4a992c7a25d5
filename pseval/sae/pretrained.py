"""SAEs from the SAELens pretrained registry (``saelens:RELEASE/SAE_ID``), through the optional ``sae_lens``.

``sae_lens`` is imported lazily: the rest of pseval works without it. Downloads go through the Hugging Face
hub cache, so a release fetched once loads offline (``HF_HUB_OFFLINE=1``) afterwards.
"""

from __future__ import annotations

import os
from typing import Any

import torch

from pseval.errors import SAEError
from pseval.sae.config import ARCHITECTURES, config_from_dict
from pseval.sae.model import SAE

SPEC_PREFIX = "saelens:"
_INSTALL_FIX = "pip install 'pseval[saelens]', or download the SAE folder and pass its path"


def parse_saelens_spec(spec: str) -> tuple[str, str]:
    """Split ``saelens:RELEASE/SAE_ID`` into ``(release, sae_id)``; SAE ids may contain slashes."""
    body = spec[len(SPEC_PREFIX) :] if spec.startswith(SPEC_PREFIX) else spec
    release, sep, sae_id = body.partition("/")
    if not sep or not release or not sae_id:
        raise SAEError(
            f"SAELens SAE spec {spec!r} is not of the form saelens:RELEASE/SAE_ID",
            "write e.g. saelens:gemma-scope-2b-pt-res-canonical/layer_12/width_16k/canonical",
        )
    return release, sae_id


def _import_sae_lens() -> Any:
    try:
        import sae_lens
    except ImportError as exc:
        raise SAEError(
            f"loading a SAELens pretrained SAE needs the sae_lens package ({exc})", _INSTALL_FIX
        ) from None
    return sae_lens


def _network_errors() -> tuple[type[BaseException], ...]:
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
    release, sae_id = _split_repo_release(release, sae_id)
    try:
        sl_sae = sae_lens.SAE.from_pretrained(release, sae_id, device=str(device), dtype=dtype or "float32")
    except ValueError as exc:
        raise SAEError(
            f"{label} is not in the SAELens pretrained registry: {exc}",
            "check the release and SAE id against sae_lens' pretrained_saes.yaml",
        ) from None
    except LocalEntryNotFoundError:
        raise _unreachable(label) from None
    except (RepositoryNotFoundError, EntryNotFoundError) as exc:
        raise SAEError(
            f"{label} was not found on the Hugging Face hub ({type(exc).__name__})",
            "check the release and SAE id, or download the SAE folder and pass its path",
        ) from None
    except _network_errors():
        raise _unreachable(label) from None
    sae = from_saelens(sl_sae)
    sae.cfg.metadata = {**sae.cfg.metadata, "source": label, "source_format": "saelens_pretrained"}
    return sae


def _split_repo_release(release: str, sae_id: str) -> tuple[str, str]:
    """SAELens also accepts a Hugging Face repo id (``owner/repo``) as the release: re-split for that case."""
    try:
        from sae_lens.loading.pretrained_saes_directory import get_pretrained_saes_directory

        known = release in get_pretrained_saes_directory()
    except (ImportError, OSError, KeyError):  # pragma: no cover - registry layout of other versions
        return release, sae_id
    if known or "/" not in sae_id:
        return release, sae_id
    repo, _, rest = sae_id.partition("/")
    return f"{release}/{repo}", rest


def _unreachable(label: str) -> SAEError:
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
    if architecture == "jumprelu" and metadata.get("training_architecture") == "batchtopk":
        details = metadata.get("training_architecture_details") or {}
        if details.get("k") is not None:
            architecture, cfg_dict["k"] = "batchtopk", details["k"]
    if architecture not in ARCHITECTURES:
        raise SAEError(
            f"SAELens architecture {architecture!r} is not supported",
            f"use an SAE of architecture {', '.join(ARCHITECTURES)}",
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
    state = {name: t for name, t in sl_sae.state_dict().items() if isinstance(t, torch.Tensor)}
    return SAE.from_state_dict(cfg, state, device=sl_sae.W_enc.device)
