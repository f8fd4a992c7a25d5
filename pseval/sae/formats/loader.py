"""From a spec (a folder, a weights file, ``saelens:RELEASE/ID``) to an opened SAE, through the format registry."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from pseval.errors import SAEError
from pseval.sae.formats._common import check_dtype
from pseval.sae.formats._registry import (
    FORMAT_REGISTRY,
    MULTILAYER_FORMATS,
    MultiLayerFormat,
    SAEFormat,
    known_layouts,
)
from pseval.sae.model import SAE
from pseval.sae.source import SAESource

if TYPE_CHECKING:
    from pseval.sae.multilayer import MultiLayerDictionary

logger = logging.getLogger(__name__)


def detect_format(folder: str | Path) -> str | None:
    """The registered format of the SAE directly at ``folder`` (a folder, or a single-file SAE), or None."""
    path = Path(folder)
    return next((f.name for f in FORMAT_REGISTRY.values() if f.detect(path)), None)


def detect_multilayer(path: Path) -> MultiLayerFormat | None:
    """The cross-layer transcoder or crosscoder layout of the folder ``path``, or None."""
    return next((f for f in MULTILAYER_FORMATS.values() if path.is_dir() and f.detect(path)), None)


def open_multilayer(path: Path) -> MultiLayerDictionary:
    """Open the cross-layer transcoder or crosscoder folder ``path`` (configs and headers only)."""
    fmt = detect_multilayer(path)
    if fmt is None:
        layouts = ", ".join(f"{f.layout} ({f.name})" for f in MULTILAYER_FORMATS.values())
        raise SAEError(
            f"{path} is not a cross-layer transcoder or crosscoder folder", f"known layouts: {layouts}"
        )
    return fmt.open(path)


def _children(folder: Path) -> dict[str, tuple[Path, SAEFormat]]:
    """The SAEs directly inside ``folder`` (sub-folders, or single-file SAEs), by name."""
    try:
        entries = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    except OSError:
        return {}
    out: dict[str, tuple[Path, SAEFormat]] = {}
    for p in entries:
        fmt = next((f for f in FORMAT_REGISTRY.values() if f.detect(p)), None)
        if fmt is not None and (p.is_dir() or fmt.hook_of_child is not None):
            out[p.name] = (p, fmt)
    return out


def _select_child(folder: Path, children: dict[str, tuple[Path, SAEFormat]], hook_name: str | None) -> Path:
    def hook_of(name: str, fmt: SAEFormat) -> str | None:
        return fmt.hook_of_child(name) if fmt.hook_of_child is not None else None

    choices = ", ".join(
        f"{name} ({hook})" if (hook := hook_of(name, fmt)) else name for name, (_, fmt) in children.items()
    )
    if hook_name is None:
        if len(children) == 1:
            return next(iter(children.values()))[0]
        raise SAEError(
            f"{folder} holds {len(children)} SAEs: {choices}",
            "choose one with --hook (a folder name or a hook name), or pass that subfolder's path",
        )
    for name, (path, fmt) in children.items():
        if hook_name in (name, hook_of(name, fmt)):
            return path
    raise SAEError(f"{folder} holds no SAE for {hook_name!r}; it holds {choices}", "choose one of those")


def _sae_path(path: Path) -> Path:
    """The SAE folder (or single-file SAE) a user-given file path stands for."""
    if not path.is_file():
        return path
    if any(f.detect(path) for f in FORMAT_REGISTRY.values()):
        return path  # a single-file SAE
    folder = path.parent.parent if path.parent.name == "checkpoints" else path.parent
    if detect_format(folder) is None:
        raise SAEError(
            f"{path} is not a known SAE weights file",
            f"pass the SAE folder; known layouts: {known_layouts()}",
        )
    return folder


def open_path(path: Path, hook_name: str | None = None) -> tuple[SAESource, bool]:
    """Open the SAE at ``path``; also says whether ``hook_name`` was used to pick it among several."""
    if not path.exists():
        raise SAEError(
            f"SAE path {path} does not exist",
            "check the path, or use saelens:RELEASE/SAE_ID for a SAELens pretrained SAE",
        )
    path = _sae_path(path)
    selected_by_hook = False
    fmt_name = detect_format(path)
    if fmt_name is None and detect_multilayer(path) is not None:
        raise SAEError(
            f"{path} is a cross-layer transcoder or crosscoder, not one SAE",
            "score it with pseval eval --sae PATH (one result per layer and a global one)",
        )
    if fmt_name is None:
        children = _children(path)
        if not children:
            raise SAEError(f"no SAE found in {path}", f"pass a folder holding one of: {known_layouts()}")
        selected_by_hook = hook_name is not None
        path = _select_child(path, children, hook_name)
        fmt_name = detect_format(path)
        assert fmt_name is not None
    logger.debug("opening %s SAE at %s", fmt_name, path)
    return FORMAT_REGISTRY[fmt_name].open(path), selected_by_hook


def apply_hook_override(source: SAESource, hook_name: str | None) -> None:
    """Set the hook when the files record none; replace a different recorded one (kept in metadata)."""
    if hook_name is None or hook_name == source.cfg.hook_name:
        return
    if source.cfg.hook_name is not None:
        logger.warning("using hook %s instead of the SAE's recorded hook %s", hook_name, source.cfg.hook_name)
        source.cfg.metadata = {**source.cfg.metadata, "hook_name_in_file": source.cfg.hook_name}
    source.cfg.hook_name = hook_name


def open_sae(spec: str | Path, hook_name: str | None = None) -> SAESource:
    """Open the SAE at ``spec`` (folder, weights file, or ``saelens:RELEASE/SAE_ID``) without reading weights.

    ``hook_name`` picks one SAE from a folder holding several, or replaces the hook the files record.
    A missing, corrupt or unsupported SAE raises :class:`SAEError` (one line and a fix).
    """
    return open_source(spec if isinstance(spec, str) else os.fspath(spec), hook_name=hook_name)


def open_source(spec: str, hook_name: str | None = None) -> SAESource:
    """:func:`open_sae` of a spec string: configs and headers only."""
    if spec.startswith("saelens:"):
        from pseval.sae.pretrained import open_pretrained

        source = open_pretrained(spec)
        apply_hook_override(source, hook_name)
        return source
    source, selected_by_hook = open_path(Path(spec).expanduser(), hook_name)
    source.spec = spec
    if not selected_by_hook:
        apply_hook_override(source, hook_name)
    return source


def load_sae(
    spec: str | Path,
    device: str | torch.device = "cpu",
    dtype: str | None = None,
    hook_name: str | None = None,
) -> SAE:
    """Load an SAE from a folder, a weights file inside one, or ``saelens:RELEASE/SAE_ID``.

    ``dtype`` (``float32``, ``bfloat16``, ...) overrides the stored one. ``hook_name`` picks one SAE from a
    folder holding several (sparsify hook point folders, Qwen-Scope layer files); for a single SAE it sets the
    hook when the file records none, and otherwise replaces the recorded hook (kept in
    ``metadata["hook_name_in_file"]``). Safetensors weights are memory-mapped. Every problem with the input,
    NaN or Inf weights included, raises :class:`SAEError`. Equal to ``open_sae(spec, hook_name).load(...)``.
    """
    dtype = check_dtype(dtype)
    source = open_source(spec if isinstance(spec, str) else str(spec), hook_name=hook_name)
    return source.load(device=str(device), dtype=dtype)
