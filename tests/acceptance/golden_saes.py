"""The SAEs of the golden acceptance test: one per architecture and one per release format, all seeded.

Every SAE reads the tiny model of ``tests/evals/conftest.py`` (3 layers, d_model 32). Their folder names become
the result file names, so renaming one here renames a stored golden file.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pseval.sae.config import config_from_dict
from pseval.sae.formats import save_sae, write_dictionary_learning, write_gemma_scope, write_sparsify
from pseval.sae.model import SAE
from tests.sae.release_fixtures import write_gemma_scope_2, write_llama_scope, write_qwen_scope

D_MODEL = 32
ARCHITECTURES: tuple[str, ...] = ("standard", "topk", "batchtopk", "jumprelu", "gated")
"""Every architecture :mod:`pseval.sae.config` registers (Matryoshka SAEs are stored and scored as JumpReLU)."""


def _random_sae(architecture: str, hook: str, seed: int, d_sae: int = 64) -> SAE:
    fields: dict[str, object] = {
        "architecture": architecture,
        "d_in": D_MODEL,
        "d_sae": d_sae,
        "hook_name": hook,
        "model_name": "tiny-llama",
    }
    if architecture in ("topk", "batchtopk"):
        fields["k"] = 4
    return SAE.create_random(config_from_dict(fields), seed=seed)


def _architecture_writers() -> dict[str, Callable[[Path], Path]]:
    hooks = ("blocks.0.hook_resid_post", "blocks.1.hook_resid_post", "blocks.2.hook_resid_pre")
    return {
        f"arch-{arch}": (
            lambda root, arch=arch, i=i: save_sae(
                _random_sae(arch, hooks[i % len(hooks)], seed=10 + i), root / f"arch-{arch}"
            )
        )
        for i, arch in enumerate(ARCHITECTURES)
    }


def _release_writers() -> dict[str, Callable[[Path], Path]]:
    def saelens(root: Path) -> Path:
        return save_sae(_random_sae("jumprelu", "blocks.1.hook_resid_post", seed=20), root / "format-saelens")

    def sparsify(root: Path) -> Path:
        # sparsify names a hook point folder after the Hugging Face module: layers.1 = blocks.1.hook_resid_post
        folder = root / "format-sparsify" / "layers.1"
        write_sparsify(_random_sae("topk", "blocks.1.hook_resid_post", seed=21), folder)
        return folder

    def dictionary_learning(root: Path) -> Path:
        sae = _random_sae("standard", "blocks.1.hook_resid_post", seed=22)
        return write_dictionary_learning(sae, root / "format-dictionary_learning")

    def gemma_scope(root: Path) -> Path:
        # params.npz records no hook: it comes from the release's folder names (layer_1 of a -res release)
        sae = _random_sae("jumprelu", "blocks.1.hook_resid_post", seed=23)
        folder = (
            root / "format-gemma_scope" / "gemma-scope-2b-pt-res" / "layer_1" / "width_64" / "average_l0_8"
        )
        return write_gemma_scope(sae, folder)

    def gemma_scope_2(root: Path) -> Path:
        # the hook comes from the folder path, as in the release
        folder = root / "format-gemma_scope_2" / "resid_post" / "layer_1_width_64_l0_small"
        write_gemma_scope_2(folder, d_in=D_MODEL, d_sae=64, seed=24)
        return folder

    def qwen_scope(root: Path) -> Path:
        # k and width come only from the repo name: W1K = 1024 latents, L0_8 = k 8
        file = root / "format-qwen_scope" / "SAE-Res-tiny-W1K-L0_8" / "layer1.sae.pt"
        write_qwen_scope(file, d_in=D_MODEL, d_sae=1024, seed=25)
        return file

    def llama_scope(root: Path) -> Path:
        folder = root / "format-llama_scope"
        write_llama_scope(folder, d_model=D_MODEL, d_sae=64, seed=26)
        return folder

    return {
        "format-saelens": saelens,
        "format-sparsify": sparsify,
        "format-dictionary_learning": dictionary_learning,
        "format-gemma_scope": gemma_scope,
        "format-gemma_scope_2": gemma_scope_2,
        "format-qwen_scope": qwen_scope,
        "format-llama_scope": llama_scope,
    }


def write_golden_saes(root: Path) -> dict[str, Path]:
    """Write every golden SAE under ``root``; returns name -> the path given to ``pseval eval --sae``."""
    writers = {**_architecture_writers(), **_release_writers()}
    return {name: write(root) for name, write in writers.items()}
