"""Helpers shared by the format writers."""

from __future__ import annotations

from pathlib import Path

import torch

from pseval.errors import SAEError
from pseval.sae.model import SAE


def prepare_destination(folder: Path, sae: SAE, overwrite: bool) -> None:
    """Refuse to replace a folder holding something else than this SAE, unless ``overwrite``."""
    if folder.is_file():
        raise SAEError(f"{folder} is a file, not a folder", "choose a folder path for the SAE")
    if not folder.is_dir() or overwrite or not any(folder.iterdir()):
        return
    from pseval.sae.formats.loader import load_sae

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


def state_for_saving(sae: SAE) -> dict[str, torch.Tensor]:
    return {name: t.detach().to("cpu").contiguous() for name, t in sae.state_dict().items()}


def require_plain_input(sae: SAE, fmt: str) -> None:
    if sae.cfg.normalize_activations in ("constant_norm_rescale", "layer_norm"):
        raise SAEError(
            f"{fmt} cannot express normalize_activations={sae.cfg.normalize_activations!r}",
            "save it in SAELens format with save_sae",
        )
