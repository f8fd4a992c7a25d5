"""The registry of SAE formats: each format module registers how to recognise and open its layout.

A new release format is one module that calls :func:`register_format`; the loader, ``detect_format`` and
``saelens:RELEASE/ID`` resolution pick it up from here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pseval.sae.multilayer import MultiLayerDictionary
    from pseval.sae.source import SAESource


@dataclass(frozen=True)
class ReleaseFiles:
    """Files of one SAE inside a Hugging Face repo, relative to the SAE's registry path."""

    required: tuple[str, ...]
    optional: tuple[str, ...] = ()
    path_is_file: bool = False
    """True when the registry path names the weights file itself (Qwen-Scope ``layer{n}.sae.pt``)."""


@dataclass(frozen=True)
class ReleaseContext:
    """What the sae-lens registry says about one SAE of a release, beside its files."""

    repo_id: str
    """The Hugging Face repo the files come from."""
    entry: Mapping[str, Any] = field(default_factory=dict)
    """The registry's entry of this SAE (``id``, ``path``, ``norm_scaling_factor``, ...)."""


@dataclass(frozen=True)
class SAEFormat:
    """One on-disk SAE layout."""

    name: str
    layout: str
    """The files that make it up, for messages (``cfg.json + sae.safetensors``)."""
    detect: Callable[[Path], bool]
    """Whether the SAE directly at this path (a folder, or a file for single-file formats) is of this format."""
    open: Callable[[Path], SAESource]
    """Reads configs and tensor headers only and returns the source (spec set to the path)."""
    conversion_funcs: tuple[str, ...] = ()
    """sae-lens ``conversion_func`` names of the registry whose releases this format reads."""
    release_files: ReleaseFiles | None = None
    """Which files of a release folder to fetch from the Hugging Face cache."""
    hook_of_child: Callable[[str], str | None] | None = None
    """Hook name of a sub-SAE from its folder or file name, when a parent holds several."""
    open_in_release: Callable[[Path, ReleaseContext], SAESource] | None = None
    """Like :attr:`open`, for formats whose files leave out what the release's registry entry or repo name
    records (Llama Scope's norm scaling factor, Qwen-Scope's k); None: :attr:`open`."""

    def open_release(self, path: Path, release: ReleaseContext) -> SAESource:
        """Open the SAE fetched from a release, with what its registry entry says."""
        if self.open_in_release is not None:
            return self.open_in_release(path, release)
        return self.open(path)


FORMAT_REGISTRY: dict[str, SAEFormat] = {}


def register_format(fmt: SAEFormat) -> SAEFormat:
    """Add ``fmt`` to the registry (detection tries formats in registration order)."""
    if fmt.name in FORMAT_REGISTRY:
        raise ValueError(f"SAE format {fmt.name!r} is registered twice")
    FORMAT_REGISTRY[fmt.name] = fmt
    return fmt


@dataclass(frozen=True)
class MultiLayerFormat:
    """One on-disk layout of a cross-layer transcoder or crosscoder (:mod:`pseval.sae.multilayer`)."""

    name: str
    layout: str
    detect: Callable[[Path], bool]
    """Whether the folder holds a dictionary of this layout."""
    open: Callable[[Path], MultiLayerDictionary]
    """Reads configs and tensor headers only."""


MULTILAYER_FORMATS: dict[str, MultiLayerFormat] = {}


def register_multilayer_format(fmt: MultiLayerFormat) -> MultiLayerFormat:
    """Add ``fmt`` to the multi-layer layouts (detection tries them in registration order)."""
    if fmt.name in MULTILAYER_FORMATS:
        raise ValueError(f"multi-layer format {fmt.name!r} is registered twice")
    MULTILAYER_FORMATS[fmt.name] = fmt
    return fmt


def format_for_conversion(conversion_func: str | None) -> SAEFormat | None:
    """The registered format reading sae-lens releases of ``conversion_func`` (None: plain SAELens)."""
    name = conversion_func or "sae_lens"
    return next((f for f in FORMAT_REGISTRY.values() if name in f.conversion_funcs), None)


def known_layouts() -> str:
    """All registered layouts, for error messages."""
    return ", ".join(f"{f.layout} ({f.name})" for f in FORMAT_REGISTRY.values())
