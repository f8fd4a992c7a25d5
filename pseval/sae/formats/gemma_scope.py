"""Gemma Scope (Gemma 2) ``params.npz``: a JumpReLU SAE, ``b_dec`` not subtracted; the hook from the path
(``gemma-scope-2b-pt-res/layer_12/width_16k/average_l0_82/params.npz``).

The ``embedding/`` SAEs (``gemma-scope-2b-pt-res/embedding/width_4k/average_l0_6``, hook ``hook_embed``) were
trained on the embedding table's rows as stored, while Gemma multiplies them by ``sqrt(d_model)`` before the
first block (Hugging Face's ``Gemma2ScaledWordEmbedding``; TransformerLens folds the factor into ``W_E``, so its
``hook_embed`` includes it). As sae-lens's ``gemma_2`` converter does for every folder named ``embedding``,
``W_enc`` is divided and ``W_dec`` multiplied by ``sqrt(d_in)`` (in float32, before any cast), so the SAE reads
and reconstructs the scaled embeddings: on Gemma that is pseval's ``blocks.0.hook_resid_pre``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pseval._io import atomic_dir
from pseval.errors import SAEError
from pseval.sae.formats._common import materialise, npz_shapes_and_dtypes, read_npz, resolve
from pseval.sae.formats._registry import ReleaseFiles, SAEFormat, register_format
from pseval.sae.formats._writing import prepare_destination, require_plain_input
from pseval.sae.formats.hooks import gemma_scope_hook, is_gemma_scope_embedding
from pseval.sae.model import SAE
from pseval.sae.source import SAESource

GEMMA_SCOPE_WEIGHTS = "params.npz"
_ARRAYS = {"W_enc", "W_dec", "b_enc", "b_dec", "threshold"}


def open_gemma_scope(path: Path) -> SAESource:
    """Open a Gemma Scope folder (or its ``.npz`` file) from the arrays' headers."""
    file = path if path.is_file() else path / GEMMA_SCOPE_WEIGHTS
    shapes, dtypes = npz_shapes_and_dtypes(file)
    stored = next((d for d in dtypes.values() if d.is_floating_point), None)
    unexpected = sorted(set(shapes) - _ARRAYS)
    if unexpected:
        raise SAEError(
            f"{file}: unexpected arrays {', '.join(unexpected)} for a Gemma Scope JumpReLU SAE",
            "use a Gemma Scope params.npz",
        )
    hook, model = gemma_scope_hook(file)
    metadata: dict[str, Any] = {"source": str(file), "source_format": "gemma_scope", "prepend_bos": True}
    fields = {
        "architecture": "jumprelu",
        "apply_b_dec_to_input": False,
        "normalize_activations": "none",
        "hook_name": hook,
        "model_name": model,
        "metadata": metadata,
    }
    if stored == torch.float64:
        stored = torch.float32
    plan = resolve(fields, shapes, str(file), stored, dtypes)
    embedding_scale = math.sqrt(plan.cfg.d_in) if is_gemma_scope_embedding(file) else None
    if embedding_scale is not None:
        plan.cfg.metadata = {**plan.cfg.metadata, "embedding_scale_folded": embedding_scale}

    def build(dtype: str | None) -> SAE:
        tensors = {k: (v.float() if v.dtype == torch.float64 else v) for k, v in read_npz(file).items()}
        if embedding_scale is not None:
            # trained on unscaled embedding rows: read sqrt(d_in)-scaled ones instead (module docstring)
            tensors["W_enc"] = tensors["W_enc"].float() / embedding_scale
            tensors["W_dec"] = tensors["W_dec"].float() * embedding_scale
        return materialise(plan, tensors, dtype)

    return SAESource(
        spec=str(path),
        cfg=plan.cfg,
        format="gemma_scope",
        path=path,
        files=(file,),
        builder=build,
        conversion="embedding rescaled by sqrt(d_in)" if embedding_scale is not None else None,
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
    if is_gemma_scope_embedding(dest / GEMMA_SCOPE_WEIGHTS):
        # the reader rescales embedding/ folders (module docstring): store the weights at the release's scale
        scale = math.sqrt(out.cfg.d_in)
        arrays["W_enc"] = arrays["W_enc"] * np.float32(scale)
        arrays["W_dec"] = arrays["W_dec"] / np.float32(scale)
    with atomic_dir(dest) as tmp:
        np.savez(str(tmp / GEMMA_SCOPE_WEIGHTS), **arrays)  # type: ignore[arg-type]
    return dest
