"""Tiny random SAEs written in the layouts public releases ship, and a temporary Hugging Face cache."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def write_gemma_scope_2(
    folder: Path,
    d_in: int = 8,
    d_sae: int = 32,
    seed: int = 0,
    skip: bool = False,
    config: dict[str, Any] | None = None,
) -> dict[str, torch.Tensor]:
    """``params.safetensors`` + ``config.json`` as Gemma Scope 2 ships them."""
    g = _gen(seed)
    tensors = {
        "w_enc": torch.randn(d_in, d_sae, generator=g) / math.sqrt(d_in),
        "w_dec": torch.randn(d_sae, d_in, generator=g) / math.sqrt(d_sae),
        "b_enc": torch.randn(d_sae, generator=g) * 0.1,
        "b_dec": torch.randn(d_in, generator=g) * 0.5,  # large enough that subtracting it would show
        "threshold": torch.rand(d_sae, generator=g) * 0.4,
    }
    if skip:
        tensors["affine_skip_connection"] = torch.randn(d_in, d_in, generator=g) * 0.1
    folder.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(folder / "params.safetensors"))
    cfg = {"architecture": "jump_relu", "model_name": "gemma-v3-270m-pt", **(config or {})}
    (folder / "config.json").write_text(json.dumps(cfg))
    return tensors


def write_qwen_scope(file: Path, d_in: int = 16, d_sae: int = 1024, seed: int = 0) -> dict[str, torch.Tensor]:
    """One ``layer{n}.sae.pt``: ``W_enc [d_sae, d_in]``, ``W_dec [d_in, d_sae]`` (transposed), biases."""
    g = _gen(seed)
    tensors = {
        "W_enc": torch.randn(d_sae, d_in, generator=g) / math.sqrt(d_in),
        "W_dec": torch.randn(d_in, d_sae, generator=g) / math.sqrt(d_sae),
        "b_enc": torch.randn(d_sae, generator=g) * 0.1,
        "b_dec": torch.randn(d_in, generator=g) * 0.5,
    }
    file.parent.mkdir(parents=True, exist_ok=True)
    torch.save(tensors, str(file))
    return tensors


def write_llama_scope(
    folder: Path, d_model: int = 16, d_sae: int = 64, seed: int = 0, norm_in: float = 0.57
) -> dict[str, torch.Tensor]:
    """``hyperparams.json`` + ``checkpoints/final.safetensors`` (bfloat16 nn.Linear weights)."""
    g = _gen(seed)
    tensors = {
        "encoder.weight": (torch.randn(d_sae, d_model, generator=g) / math.sqrt(d_model)).bfloat16(),
        "decoder.weight": (torch.randn(d_model, d_sae, generator=g) / math.sqrt(d_sae)).bfloat16(),
        "encoder.bias": (torch.randn(d_sae, generator=g) * 0.1).bfloat16(),
        "decoder.bias": (torch.randn(d_model, generator=g) * 0.5).bfloat16(),
    }
    (folder / "checkpoints").mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(folder / "checkpoints" / "final.safetensors"))
    hyper = {
        "d_model": d_model,
        "d_sae": d_sae,
        "hook_point_in": "blocks.0.hook_attn_out",
        "hook_point_out": "blocks.0.hook_attn_out",
        "jump_relu_threshold": 0.02,
        "dataset_average_activation_norm": {"in": norm_in, "out": norm_in},
        "act_fn": "jumprelu",
    }
    (folder / "hyperparams.json").write_text(json.dumps(hyper))
    return tensors


def write_sparsify_folder(
    folder: Path, d_in: int = 16, d_sae: int = 64, k: int = 6, seed: int = 0, transcode: bool = False
) -> dict[str, torch.Tensor]:
    """``cfg.json`` + ``sae.safetensors`` as sparsify writes them (``encoder.weight [d_sae, d_in]``)."""
    g = _gen(seed)
    tensors = {
        "encoder.weight": torch.randn(d_sae, d_in, generator=g) / math.sqrt(d_in),
        "encoder.bias": torch.randn(d_sae, generator=g) * 0.1,
        "W_dec": torch.randn(d_sae, d_in, generator=g) / math.sqrt(d_sae),
        "b_dec": torch.randn(d_in, generator=g) * 0.5,
    }
    if transcode:
        tensors["W_skip"] = torch.randn(d_in, d_in, generator=g) * 0.1
    folder.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(folder / "sae.safetensors"))
    cfg = {
        "activation": "topk",
        "expansion_factor": d_sae // d_in,
        "normalize_decoder": False,
        "num_latents": d_sae,
        "k": k,
        "multi_topk": False,
        "skip_connection": transcode,
        "transcode": transcode,
        "d_in": d_in,
    }
    (folder / "cfg.json").write_text(json.dumps(cfg))
    return tensors


class HFCache:
    """A temporary Hugging Face hub cache laid out as ``huggingface_hub`` writes it (blobs + symlinks)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def snapshot(self, repo_id: str) -> Path:
        """The snapshot folder of ``repo_id`` (created, with ``refs/main``)."""
        repo = self.root / f"models--{repo_id.replace('/', '--')}"
        commit = hashlib.sha1(repo_id.encode()).hexdigest()
        (repo / "refs").mkdir(parents=True, exist_ok=True)
        (repo / "refs" / "main").write_text(commit)
        snap = repo / "snapshots" / commit
        snap.mkdir(parents=True, exist_ok=True)
        return snap

    def commit(self, repo_id: str) -> None:
        """Turn every file of the snapshot into a symlink to a content-addressed blob, as the hub cache does."""
        snap = self.snapshot(repo_id)
        blobs = snap.parent.parent / "blobs"
        blobs.mkdir(exist_ok=True)
        for path in sorted(p for p in snap.rglob("*") if p.is_file() and not p.is_symlink()):
            data = path.read_bytes()
            blob = blobs / hashlib.sha256(data).hexdigest()
            blob.write_bytes(data)
            path.unlink()
            path.symlink_to(Path("../" * (len(path.relative_to(snap).parts) + 1)) / "blobs" / blob.name)


@pytest.fixture
def hf_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> HFCache:
    """An empty offline Hugging Face cache that huggingface_hub (and child processes) read."""
    import huggingface_hub.constants as hf_constants

    root = tmp_path / "hf_cache"
    root.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(root))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(root))
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    return HFCache(root)
