"""Qwen-Scope (Qwen3 / Qwen3.5 TopK SAEs): one ``layer{n}.sae.pt`` per layer in a repo named
``SAE-Res-{model}-W{N}K-L0_{k}``.

Each file is a torch dict with ``W_enc [d_sae, d_in]``, ``W_dec [d_in, d_sae]``, ``b_enc``, ``b_dec``:
transposed relative to pseval (and SAELens). As sae-lens's ``qwen_scope`` converter: TopK with the k of
the repo name, ``b_dec`` not subtracted, hook ``blocks.{n}.hook_resid_post``, BOS prepended.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pseval.errors import SAEError
from pseval.sae.formats._common import materialise, read_torch_file, resolve
from pseval.sae.formats._registry import ReleaseContext, ReleaseFiles, SAEFormat, register_format
from pseval.sae.model import SAE
from pseval.sae.source import SAESource

_FILE = re.compile(r"layer(\d+)\.sae\.pt")
_REPO = re.compile(r"SAE-Res-(.+?)-W(\d+)K-L0_(\d+)")
_KEYS = ("W_enc", "W_dec", "b_enc", "b_dec")


def parse_qwen_scope_repo(text: str) -> tuple[str, int, int] | None:
    """``(model, d_sae, k)`` from a repo id or folder path naming ``SAE-Res-{model}-W{N}K-L0_{k}``.

    In a Hugging Face cache the repo folder is ``models--Qwen--SAE-Res-...``.
    """
    match = _REPO.search(text)
    if match is None:
        return None
    return match.group(1), int(match.group(2)) * 1024, int(match.group(3))


def open_qwen_scope(file: Path, repo_id: str | None = None) -> SAESource:
    """Open one ``layer{n}.sae.pt``; the k and model come from ``repo_id`` or the file's folder names."""
    where = str(file)
    match = _FILE.fullmatch(file.name)
    if match is None:
        raise SAEError(f"{where} is not a Qwen-Scope layer{{n}}.sae.pt file", "pass a layer{n}.sae.pt file")
    layer = int(match.group(1))
    parsed = parse_qwen_scope_repo(repo_id or "/".join(file.absolute().parts))
    if parsed is None:
        raise SAEError(
            f"{where}: cannot tell k: Qwen-Scope records it only in the repo name (SAE-Res-<model>-W<N>K-L0_<k>)",
            "keep the file inside a folder named after its repo, e.g. SAE-Res-Qwen3-1.7B-Base-W32K-L0_50/",
        )
    model_key, d_sae, k = parsed
    raw = read_torch_file(file)
    missing = [key for key in _KEYS if key not in raw]
    unexpected = sorted(set(raw) - set(_KEYS))
    if missing or unexpected:
        raise SAEError(
            f"{where}: expected tensors {', '.join(_KEYS)}"
            + (f"; missing {', '.join(missing)}" if missing else "")
            + (f"; unexpected {', '.join(unexpected)}" if unexpected else ""),
            "use a Qwen-Scope layer{n}.sae.pt file",
        )
    shapes = {key: tuple(t.shape) for key, t in raw.items()}
    dtypes = {key: t.dtype for key, t in raw.items()}
    stored = raw["W_enc"].dtype
    del raw
    metadata: dict[str, Any] = {
        "source": where,
        "source_format": "qwen_scope",
        "prepend_bos": True,
        "hf_hook_name": f"model.layers.{layer}",
    }
    fields = {
        "architecture": "topk",
        "d_sae": d_sae,
        "k": k,
        "apply_b_dec_to_input": False,
        "normalize_activations": "none",
        "hook_name": f"blocks.{layer}.hook_resid_post",
        "model_name": f"Qwen/{model_key}",
        "metadata": metadata,
    }
    plan = resolve(fields, shapes, where, stored, dtypes)

    def build(dtype: str | None) -> SAE:
        return materialise(plan, read_torch_file(file), dtype)

    return SAESource(spec=where, cfg=plan.cfg, format="qwen_scope", path=file, files=(file,), builder=build)


def _open_in_release(file: Path, release: ReleaseContext) -> SAESource:
    # k is only in the repo name, which a cached file's path may not show
    return open_qwen_scope(file, repo_id=release.repo_id)


def _detect(path: Path) -> bool:
    return path.is_file() and _FILE.fullmatch(path.name) is not None


def _hook_of_child(name: str) -> str | None:
    match = _FILE.fullmatch(name)
    return f"blocks.{match.group(1)}.hook_resid_post" if match else None


QWEN_SCOPE = register_format(
    SAEFormat(
        name="qwen_scope",
        layout="layer{n}.sae.pt",
        detect=_detect,
        open=open_qwen_scope,
        conversion_funcs=("qwen_scope",),
        release_files=ReleaseFiles(required=(), path_is_file=True),
        hook_of_child=_hook_of_child,
        open_in_release=_open_in_release,
    )
)
