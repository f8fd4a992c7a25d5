"""Gemma Scope (Gemma 2) ``params.npz``: a JumpReLU SAE, ``b_dec`` not subtracted; the hook from the path
(``gemma-scope-2b-pt-res/layer_12/width_16k/average_l0_82/params.npz``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from pseval._io import atomic_dir
from pseval.errors import SAEError
from pseval.sae.formats._common import materialise, npz_shapes, read_npz, resolve
from pseval.sae.formats._registry import ReleaseFiles, SAEFormat, register_format
from pseval.sae.formats._writing import prepare_destination, require_plain_input
from pseval.sae.formats.hooks import gemma_scope_hook
from pseval.sae.model import SAE
from pseval.sae.source import SAESource

GEMMA_SCOPE_WEIGHTS = "params.npz"
_ARRAYS = {"W_enc", "W_dec", "b_enc", "b_dec", "threshold"}


def open_gemma_scope(path: Path) -> SAESource:
    """Open a Gemma Scope folder (or its ``.npz`` file) from the arrays' headers."""
    file = path if path.is_file() else path / GEMMA_SCOPE_WEIGHTS
    shapes, stored = npz_shapes(file)
    unexpected = sorted(set(shapes) - _ARRAYS)
    if unexpected:
        raise SAEError(
            f"{file}: unexpected arrays {', '.join(unexpected)} for a Gemma Scope JumpReLU SAE",
            "use a Gemma Scope params.npz",
        )
    hook, model = gemma_scope_hook(file)
    fields = {
        "architecture": "jumprelu",
        "apply_b_dec_to_input": False,
        "normalize_activations": "none",
        "hook_name": hook,
        "model_name": model,
        "metadata": {"source": str(file), "source_format": "gemma_scope", "prepend_bos": True},
    }
    if stored == torch.float64:
        stored = torch.float32
    plan = resolve(fields, shapes, str(file), stored)

    def build(dtype: str | None) -> SAE:
        tensors = {k: (v.float() if v.dtype == torch.float64 else v) for k, v in read_npz(file).items()}
        return materialise(plan, tensors, dtype)

    return SAESource(
        spec=str(path), cfg=plan.cfg, format="gemma_scope", path=path, files=(file,), builder=build
    )


def _detect(path: Path) -> bool:
    if path.is_file():
        return path.suffix == ".npz"
    return (path / GEMMA_SCOPE_WEIGHTS).is_file()


GEMMA_SCOPE = register_format(
    SAEFormat(
        name="gemma_scope",
        layout=GEMMA_SCOPE_WEIGHTS,
        detect=_detect,
        open=open_gemma_scope,
        conversion_funcs=("gemma_2",),
        release_files=ReleaseFiles(required=(GEMMA_SCOPE_WEIGHTS,)),
    )
)


def write_gemma_scope(sae: SAE, folder: str | Path, overwrite: bool = False) -> Path:
    """Write a JumpReLU (or BatchTopK) SAE as a Gemma Scope ``params.npz`` (float32, b_dec not subtracted)."""
    if sae.cfg.architecture not in ("jumprelu", "batchtopk"):
        raise SAEError(
            f"Gemma Scope params.npz stores JumpReLU SAEs only, not {sae.cfg.architecture}",
            "save it in SAELens format with save_sae",
        )
    require_plain_input(sae, "Gemma Scope")
    out = sae.with_apply_b_dec_to_input(False).to(torch.float32)
    dest = Path(folder).expanduser()
    prepare_destination(dest, out, overwrite)
    arrays = {
        name: getattr(out, name).detach().to("cpu", torch.float32).numpy()
        for name in ("W_enc", "W_dec", "b_enc", "b_dec", "threshold")
    }
    with atomic_dir(dest) as tmp:
        np.savez(str(tmp / GEMMA_SCOPE_WEIGHTS), **arrays)  # type: ignore[arg-type]
    return dest
