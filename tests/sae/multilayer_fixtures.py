"""Random cross-layer transcoders and crosscoders written in the layouts their releases ship."""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from safetensors.torch import save_file

Tensors = dict[str, torch.Tensor]


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _encoder(g: torch.Generator, d: int, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    w_enc = torch.randn(d, n, generator=g) / math.sqrt(d)
    b_enc = torch.randn(n, generator=g) * 0.1
    threshold = torch.rand(n, generator=g) * 0.3
    return w_enc, b_enc, threshold


def write_gemma_scope_2_clt(
    folder: Path,
    n_layers: int = 3,
    d: int = 32,
    n: int = 48,
    seed: int = 0,
    all_layers_decoder: bool = False,
    skip: bool = False,
    dtype: torch.dtype = torch.float32,
) -> list[Tensors]:
    """``params_layer_{i}.safetensors`` per source layer: ``w_dec [n, n_layers - i, d]`` (or ``n_layers``)."""
    g = _gen(seed)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n_layers):
        w_enc, b_enc, threshold = _encoder(g, d, n)
        m = n_layers if all_layers_decoder else n_layers - i
        # Decoder norms vary by latent and layer, so scaling by them changes which latent is largest.
        w_dec = torch.randn(n, m, d, generator=g) * torch.rand(n, 1, 1, generator=g) * 2
        tensors = {
            "w_enc": w_enc,
            "b_enc": b_enc,
            "threshold": threshold,
            "b_dec": torch.randn(d, generator=g),
            "w_dec": w_dec,
        }
        if skip:
            tensors["affine_skip_connection"] = torch.randn(d, d, generator=g) * 0.1
        tensors = {k: v.to(dtype).contiguous() for k, v in tensors.items()}
        save_file(tensors, str(folder / f"params_layer_{i}.safetensors"))
        out.append(tensors)
    return out


def write_gemma_scope_2_crosscoder(
    parent: Path,
    layers: tuple[int, ...] = (0, 1, 2),
    d: int = 32,
    n: int = 48,
    seed: int = 0,
    width: str = "16k",
) -> tuple[Path, list[Tensors]]:
    """``layer_{a}_{b}_..._width_{W}_l0_medium/params_layer_{k}.safetensors``, as Gemma Scope 2's
    ``JumpReLUMultiLayerSAE`` stacks them: file ``k`` holds layer ``k``'s own latents (``w_enc [d, n]``,
    ``b_enc``, ``threshold``, ``b_dec``) and their decoders to every layer, ``w_dec [n, len(layers), d]``."""
    g = _gen(seed)
    folder = parent / f"layer_{'_'.join(map(str, layers))}_width_{width}_l0_medium"
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for _ in layers:
        w_enc, b_enc, threshold = _encoder(g, d, n)
        w_dec = torch.randn(n, len(layers), d, generator=g) * torch.rand(n, 1, 1, generator=g) * 2
        tensors = {
            "w_enc": w_enc,
            "b_enc": b_enc,
            "threshold": threshold,
            "b_dec": torch.randn(d, generator=g),
            "w_dec": w_dec,
        }
        save_file(tensors, str(folder / f"params_layer_{len(out)}.safetensors"))
        out.append(tensors)
    return folder, out


def write_circuit_tracer_clt(
    folder: Path,
    n_layers: int = 3,
    d: int = 32,
    n: int = 48,
    seed: int = 0,
    threshold: bool = True,
    model_name: str = "tiny-llama",
    input_hook: str = "mlp.hook_in",
) -> list[Tensors]:
    """circuit-tracer's layout: ``W_enc_{i} [n, d]``, ``b_enc_{i}``, ``b_dec_{i}``, ``threshold_{i}`` in
    ``W_enc_{i}.safetensors``, ``W_dec_{i} [n, n_layers - i, d]`` in ``W_dec_{i}.safetensors``, ``config.yaml``."""
    g = _gen(seed)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n_layers):
        w_enc, b_enc, thr = _encoder(g, d, n)
        enc = {
            f"W_enc_{i}": w_enc.T.contiguous(),
            f"b_enc_{i}": b_enc,
            f"b_dec_{i}": torch.randn(d, generator=g),
        }
        if threshold:
            enc[f"threshold_{i}"] = thr
        dec = {f"W_dec_{i}": torch.randn(n, n_layers - i, d, generator=g) * torch.rand(n, 1, 1, generator=g)}
        save_file(enc, str(folder / f"W_enc_{i}.safetensors"))
        save_file(dec, str(folder / f"W_dec_{i}.safetensors"))
        out.append({**enc, **dec})
    (folder / "config.yaml").write_text(
        json.dumps(
            {
                "model_name": model_name,
                "model_kind": "cross_layer_transcoder",
                "feature_input_hook": input_hook,
                "feature_output_hook": "hook_mlp_out",
            }
        )
    )
    return out
