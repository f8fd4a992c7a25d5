"""SAEs from the SAELens pretrained registry: ``saelens:RELEASE/SAE_ID`` and whole releases.

The registry (sae-lens's ``pretrained_saes.yaml``) maps a release to a Hugging Face repo, a conversion and
one folder per SAE. pseval fetches that folder's files through the Hugging Face cache (so a release fetched
once opens offline with ``HF_HUB_OFFLINE=1``) and reads them with its own reader for the conversion, which
opens the SAE from its config and headers only; releases of a conversion pseval has no reader for go through
``sae_lens.SAE.from_pretrained``. The registry's ``config_overrides`` (``model_from_pretrained_kwargs``,
``dataset_path``, ...) and the converter's ``prepend_bos`` land in ``cfg.metadata``.

Only the registry file is read from the installed ``sae_lens``; the package itself is not imported.
"""

from __future__ import annotations

import difflib
import importlib.util
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from pseval.errors import ConfigError, SAEError
from pseval.sae._saelens_eager import from_saelens, load_pretrained, network_errors, unreachable
from pseval.sae.source import SAESource

SPEC_PREFIX = "saelens:"
_INSTALL_FIX = "pip install 'pseval[saelens]', or download the SAE folder and pass its path"
_REGISTRY_FILE = "pretrained_saes.yaml"

__all__ = [
    "SPEC_PREFIX",
    "Release",
    "from_saelens",
    "load_pretrained",
    "open_pretrained",
    "parse_saelens_spec",
    "registry",
    "release_specs",
]


def parse_saelens_spec(spec: str) -> tuple[str, str]:
    """Split ``saelens:RELEASE/SAE_ID`` into ``(release, sae_id)``; SAE ids may contain slashes."""
    body = spec[len(SPEC_PREFIX) :] if spec.startswith(SPEC_PREFIX) else spec
    release, sep, sae_id = body.partition("/")
    if not sep or not release or not sae_id:
        raise SAEError(
            f"SAELens SAE spec {spec!r} is not of the form saelens:RELEASE/SAE_ID",
            "write e.g. saelens:gemma-scope-2-270m-pt-res/layer_12_width_16k_l0_small",
        )
    return release, sae_id


# ==================================================================================================
# the registry
# ==================================================================================================


@dataclass(frozen=True)
class Release:
    """One release of the SAELens pretrained registry."""

    name: str
    repo_id: str
    model: str | None
    conversion_func: str | None
    saes: dict[str, dict[str, Any]]  # id -> entry (path, l0, neuronpedia, norm_scaling_factor, ...)
    config_overrides: dict[str, Any] = field(default_factory=dict)


def _registry_path() -> Path:
    try:
        spec = importlib.util.find_spec("sae_lens")
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        candidate = Path(location) / _REGISTRY_FILE
        if candidate.is_file():
            return candidate
    raise SAEError("the SAELens pretrained registry needs the sae_lens package (not installed)", _INSTALL_FIX)


@cache
def registry() -> dict[str, Release]:
    """The SAELens pretrained registry of the installed ``sae_lens`` (read once)."""
    import yaml

    path = _registry_path()
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with path.open(encoding="utf-8") as fh:
        data = yaml.load(fh, Loader=loader)
    out: dict[str, Release] = {}
    for name, value in (data or {}).items():
        if not isinstance(value, dict) or "saes" not in value or "repo_id" not in value:
            continue
        saes = {str(entry["id"]): dict(entry) for entry in value["saes"] if "id" in entry and "path" in entry}
        for entry in saes.values():
            entry["path"] = str(entry["path"])
        out[str(name)] = Release(
            name=str(name),
            repo_id=str(value["repo_id"]),
            model=value.get("model"),
            conversion_func=value.get("conversion_func"),
            saes=saes,
            config_overrides=dict(value.get("config_overrides") or {}),
        )
    return out


def _unknown_release(release: str) -> SAEError:
    close = difflib.get_close_matches(release, list(registry()), n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return SAEError(
        f"release {release!r} is not in the SAELens pretrained registry{hint}",
        "check the release name against sae_lens' pretrained_saes.yaml",
    )


def _lookup(release: str, sae_id: str) -> tuple[Release, dict[str, Any]]:
    releases = registry()
    if release not in releases:
        # SAELens also accepts a Hugging Face repo id (``owner/repo``) as the release
        owner_repo = f"{release}/{sae_id.split('/', 1)[0]}"
        if "/" in sae_id:
            match = next((r for r in releases.values() if r.repo_id == owner_repo), None)
            rest = sae_id.split("/", 1)[1]
            if match is not None:
                entry = next((e for e in match.saes.values() if e["path"] == rest), None)
                if entry is not None:
                    return match, entry
            direct = Release(owner_repo, owner_repo, None, None, {rest: {"id": rest, "path": rest}})
            return direct, direct.saes[rest]
        raise _unknown_release(release)
    info = releases[release]
    if sae_id not in info.saes:
        ids = list(info.saes)
        close = difflib.get_close_matches(sae_id, ids, n=3, cutoff=0.6)
        shown = close or ids[:5]
        raise SAEError(
            f"saelens:{release}/{sae_id} is not in the SAELens pretrained registry "
            f"(release {release} has {len(ids)} SAEs, e.g. {', '.join(shown)})",
            "check the SAE id against sae_lens' pretrained_saes.yaml, or list them with --release",
        )
    return info, info.saes[sae_id]


def release_specs(release: str, pattern: str | None = None) -> list[str]:
    """The ``saelens:RELEASE/ID`` specs of ``release`` whose id matches ``pattern`` (a regular expression
    matched against the whole id; None: every SAE), in registry order."""
    releases = registry()
    if release not in releases:
        raise _unknown_release(release)
    try:
        regex = re.compile(pattern) if pattern is not None else None
    except re.error as exc:
        raise ConfigError(
            f"--sae-pattern {pattern!r} is not a valid regular expression ({exc})", "fix the pattern"
        ) from None
    ids = [i for i in releases[release].saes if regex is None or regex.fullmatch(i)]
    if not ids:
        example = ", ".join(list(releases[release].saes)[:3])
        raise SAEError(
            f"no SAE of release {release} matches --sae-pattern {pattern!r} (ids look like {example})",
            "change --sae-pattern; it must match the whole id",
        )
    return [f"{SPEC_PREFIX}{release}/{i}" for i in ids]


# ==================================================================================================
# opening a registry SAE from the Hugging Face cache
# ==================================================================================================


def _download(repo_id: str, filename: str, label: str, required: bool = True) -> Path | None:
    try:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import (
            EntryNotFoundError,
            LocalEntryNotFoundError,
            RepositoryNotFoundError,
        )
    except ImportError:  # pragma: no cover - huggingface_hub comes with transformers
        raise SAEError("fetching a registry SAE needs huggingface_hub", _INSTALL_FIX) from None
    try:
        return Path(hf_hub_download(repo_id, filename))
    except LocalEntryNotFoundError:
        if not required:
            return None
        raise unreachable(f"{label} ({repo_id}/{filename})") from None
    except (RepositoryNotFoundError, EntryNotFoundError) as exc:
        if not required:
            return None
        raise SAEError(
            f"{label}: {repo_id}/{filename} was not found on the Hugging Face hub ({type(exc).__name__})",
            "check the release and SAE id, or download the SAE folder and pass its path",
        ) from None
    except network_errors():
        if not required:
            return None
        raise unreachable(label) from None


def _strip(path: Path, relative: str) -> Path:
    for _ in Path(relative).parts:
        path = path.parent
    return path


CROSS_LAYER_CONVERSIONS = frozenset({"mntss_clt_layer_transcoder"})
"""sae-lens converters that read one layer of a cross-layer transcoder as an SAE, changing its encoder: refused,
with the folder route (:mod:`pseval.sae.multilayer`) as the fix."""


def open_pretrained(spec: str) -> SAESource:
    """Open ``saelens:RELEASE/SAE_ID``: fetch (or find in the cache) its files and open them with pseval's reader."""
    from pseval.sae.formats._registry import ReleaseContext, format_for_conversion

    release, sae_id = parse_saelens_spec(spec)
    label = f"{SPEC_PREFIX}{release}/{sae_id}"
    info, entry = _lookup(release, sae_id)
    if info.conversion_func in CROSS_LAYER_CONVERSIONS:
        raise SAEError(
            f"{label} is one layer of a circuit-tracer cross-layer transcoder, which sae-lens reads as a ReLU "
            "transcoder without its JumpReLU threshold",
            f"download {info.repo_id} (config.yaml, W_enc_*, W_dec_*) and pass the folder: "
            "pseval eval --sae FOLDER --sae-pattern 'layer_N|global_N'",
        )
    fmt = format_for_conversion(info.conversion_func)
    if fmt is None or fmt.release_files is None:
        return _open_eagerly(label, info, sae_id)
    folder_in_repo = entry["path"].strip("/")
    files = fmt.release_files
    if files.path_is_file:
        local = _download(info.repo_id, folder_in_repo, label)
        assert local is not None
    else:
        local = None
        for name in files.required:
            got = _download(info.repo_id, f"{folder_in_repo}/{name}", label)
            assert got is not None
            local = local or _strip(got, name)
        for name in files.optional:
            got = _download(info.repo_id, f"{folder_in_repo}/{name}", label, required=False)
            local = local or (_strip(got, name) if got is not None else None)
        assert local is not None
    source = fmt.open_release(local, ReleaseContext(repo_id=info.repo_id, entry=entry))
    _apply_registry(source, info, entry, label)
    source.spec, source.release, source.sae_id = label, info.name, sae_id
    return source


def _apply_registry(source: SAESource, info: Release, entry: dict[str, Any], label: str) -> None:
    """Registry facts into the source's config: overrides, BOS policy, neuronpedia id, norm scaling fold."""
    cfg = source.cfg
    overrides = dict(info.config_overrides)
    metadata = dict(cfg.metadata)
    for key in ("model_name", "hook_name"):
        if overrides.get(key):
            setattr(cfg, key, overrides.pop(key))
    normalize = overrides.pop("normalize_activations", None)
    if normalize is not None:
        cfg.normalize_activations = normalize
    metadata.update(overrides)
    # pseval's readers record the BOS policy themselves, the same on both routes; releases that sae-lens converts
    # keep its converter's value, True where it gives none (every converter of these releases sets it)
    eager = source.format == "saelens_pretrained"
    if eager and info.conversion_func not in (None, "sae_lens") and metadata.get("prepend_bos") is None:
        metadata["prepend_bos"] = True
    if entry.get("neuronpedia"):
        metadata["neuronpedia_id"] = entry["neuronpedia"]
    if entry.get("l0") is not None:
        metadata["registry_l0"] = entry["l0"]
    metadata.update(
        {
            "source": label,
            "source_format": "saelens_pretrained",
            "release_format": source.format,
            "sae_lens_release": info.name,
            "sae_lens_id": entry["id"],
            "repo_id": info.repo_id,
            "registry_model": info.model,
        }
    )
    if cfg.model_name is None and info.model:
        cfg.model_name = info.model
    scaling = entry.get("norm_scaling_factor")
    builder = source.builder
    if (
        cfg.normalize_activations == "expected_average_only_in"
        and scaling is not None
        and builder is not None
    ):
        # as SAE.from_pretrained: fold the registry's activation norm scaling factor into the weights
        factor = float(scaling)

        def folded(dtype: str | None) -> Any:
            return builder(dtype).fold_activation_norm_scaling_factor(factor)

        source.builder = folded
        source.tensors = None
        cfg.normalize_activations = "none"
        metadata["norm_scaling_factor_folded"] = factor
    cfg.metadata = metadata


def _open_eagerly(label: str, info: Release, sae_id: str) -> SAESource:
    """Releases whose conversion pseval has no reader for: ``sae_lens.SAE.from_pretrained`` (reads weights)."""
    sae = load_pretrained(info.name, sae_id)
    cfg = sae.cfg.model_copy(deep=True)
    fingerprint = sae.fingerprint()
    del sae

    def build(dtype: str | None) -> Any:
        return load_pretrained(info.name, sae_id, dtype=dtype)

    return SAESource(
        spec=label,
        cfg=cfg,
        format="saelens_pretrained",
        path=None,
        release=info.name,
        sae_id=sae_id,
        builder=build,
        weights_fingerprint=fingerprint,
    )
