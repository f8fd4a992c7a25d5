"""What every SAE architecture shares: input preprocessing, the encode-kernel interface and the registry.

An architecture is one :class:`SAEArchitecture` subclass registered with :func:`register_architecture`
together with its pydantic config class. Its kernel encodes one block of latents ``[start, stop)`` from the
preprocessed input ``sae_in_ND`` and that block's encoder columns and per-latent vectors, so that
:meth:`SAE.encode <pseval.sae.model.SAE.encode>` (one block as wide as the SAE), the block-wise scoring path
(:func:`pseval.sae.lazy.feature_blocks`) and training run the same floating-point operations in the same
order.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import torch

from pseval.errors import SAEError
from pseval.sae.config import SAE_CONFIGS, SAEConfig
from pseval.sae.threads import matmul_threads

# --------------------------------------------------------------------------------------------------
# input preprocessing (cast, normalisation, b_dec subtraction): the same for every architecture
# --------------------------------------------------------------------------------------------------


@dataclass
class NormState:
    """Per-input statistics of the input normalisation, needed to undo it in decode."""

    shape: tuple[int, ...]
    coeff: torch.Tensor | None = None  # constant_norm_rescale: sqrt(d_in) / ||x||
    mu: torch.Tensor | None = None  # layer_norm
    std: torch.Tensor | None = None  # layer_norm


def check_width(cfg: SAEConfig, x_ND: torch.Tensor) -> None:
    """Refuse activations whose width is not the SAE's ``d_in``."""
    if x_ND.shape[-1] != cfg.d_in:
        hook = f" ({cfg.hook_name})" if cfg.hook_name else ""
        raise SAEError(
            f"activations have width {x_ND.shape[-1]} but the SAE expects d_in={cfg.d_in}",
            f"feed the SAE activations from the hook it was trained on{hook}",
        )


def normalize_input(cfg: SAEConfig, x_ND: torch.Tensor) -> tuple[torch.Tensor, NormState | None]:
    """SAELens' ``normalize_activations`` applied to ``x_ND`` (already in the compute dtype)."""
    mode = cfg.normalize_activations
    if mode == "constant_norm_rescale":
        coeff = (cfg.d_in**0.5) / x_ND.norm(dim=-1, keepdim=True)
        return x_ND * coeff, NormState(tuple(x_ND.shape[:-1]), coeff=coeff)
    if mode == "layer_norm":
        mu = x_ND.mean(dim=-1, keepdim=True)
        centred = x_ND - mu
        std = centred.std(dim=-1, keepdim=True)
        return centred / (std + 1e-5), NormState(tuple(x_ND.shape[:-1]), mu=mu, std=std)
    # "none", and "expected_average_only_in", whose constant scale SAELens applies outside the SAE
    # (it is folded into the weights when known).
    return x_ND, None


def sae_input(
    cfg: SAEConfig, b_dec_D: torch.Tensor, x_ND: torch.Tensor
) -> tuple[torch.Tensor, NormState | None]:
    """The kernels' input: ``x`` cast to the compute dtype, normalised, ``b_dec`` subtracted when configured."""
    check_width(cfg, x_ND)
    x_ND, state = normalize_input(cfg, x_ND.to(cfg.torch_dtype()))
    if cfg.apply_b_dec_to_input:
        x_ND = x_ND - b_dec_D
    return x_ND, state


# --------------------------------------------------------------------------------------------------
# kernel building blocks
# --------------------------------------------------------------------------------------------------


def affine(
    sae_in_ND: torch.Tensor, W_enc_DB: torch.Tensor, bias_B: torch.Tensor, out_NB: torch.Tensor | None
) -> torch.Tensor:
    """``sae_in @ W_enc + bias``; into ``out_NB`` when given (same matmul, then the bias added in place).

    The matmul runs on torch's own thread count even inside :func:`pseval.sae.threads.small_ops`.
    """
    if out_NB is None:
        with matmul_threads():
            product_NB = sae_in_ND @ W_enc_DB
        return product_NB + bias_B
    with matmul_threads():
        torch.matmul(sae_in_ND, W_enc_DB, out=out_NB)
    return out_NB.add_(bias_B)


Block = Mapping[str, torch.Tensor]
"""Tensors of one block of latents: ``W_enc [d_in, B]``, ``W_dec [B, d_in]`` and per-latent vectors ``[B]``."""


class SAEArchitecture:
    """One SAE architecture: its config class and its block-wise encode kernel.

    The kernel is two-stage. :meth:`pre_activations` and :meth:`activate` see only the block's own latents;
    their composition :meth:`encode_block` gives the block's codes for every architecture whose activation
    is per latent. An architecture whose rule selects latents per input across the whole dictionary (TopK)
    returns the values to rank from :meth:`encode_block`, states the per-input count in :meth:`row_top_k`,
    and applies the rule at full width in :meth:`select_rows`; block-wise callers select with a streaming
    top-k instead (:func:`pseval.sae.lazy.feature_blocks`).

    Kernels given an output buffer (``out_NB``, no autograd) compute in place into it and return it;
    without one they compute out of place and are differentiable. Both orders of operations are the same.
    """

    name: ClassVar[str]
    config_class: ClassVar[type[SAEConfig]]

    @classmethod
    def block_tensors(cls, cfg: SAEConfig) -> tuple[str, ...]:
        """Names of the tensors :meth:`encode_block` reads from a block."""
        return ("W_enc", *cfg.extra_parameters)

    @classmethod
    def pre_activations(
        cls, cfg: SAEConfig, sae_in_ND: torch.Tensor, block: Block, out_NB: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The values the activation function is applied to (SAELens' ``hook_sae_acts_pre``)."""
        return affine(sae_in_ND, block["W_enc"], block["b_enc"], out_NB)

    @classmethod
    def activate(
        cls, cfg: SAEConfig, pre_NB: torch.Tensor, sae_in_ND: torch.Tensor, block: Block, in_place: bool
    ) -> torch.Tensor:
        """The per-latent activation of ``pre_NB`` (overwriting it when ``in_place``)."""
        raise NotImplementedError

    @classmethod
    def encode_block(
        cls, cfg: SAEConfig, sae_in_ND: torch.Tensor, block: Block, out_NB: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Codes of the block's latents for every input (before :meth:`select_rows`), into ``out_NB`` if given."""
        pre_NB = cls.pre_activations(cfg, sae_in_ND, block, out_NB)
        codes_NB = cls.activate(cfg, pre_NB, sae_in_ND, block, in_place=out_NB is not None)
        if out_NB is not None and codes_NB is not out_NB:
            out_NB.copy_(codes_NB)
            return out_NB
        return codes_NB

    @classmethod
    def scaled_with_activations(cls, cfg: SAEConfig) -> tuple[str, ...]:
        """Per-latent tensors that scale with a latent's activation: folding decoder norms multiplies them
        (with the latent's ``W_enc`` column) by the norm. Every per-latent parameter unless overridden."""
        return cfg.extra_parameters

    @classmethod
    def row_top_k(cls, cfg: SAEConfig) -> int | None:
        """Latents kept per input by a dictionary-wide selection; None when the activation is per latent."""
        return None

    @classmethod
    def select_rows(cls, cfg: SAEConfig, codes_NF: torch.Tensor) -> torch.Tensor:
        """The dictionary-wide rule applied to the full-width output of :meth:`encode_block` (identity here)."""
        return codes_NF


ARCHITECTURE_CLASSES: dict[str, type[SAEArchitecture]] = {}
"""Registered architectures by tag (the ``architecture`` field of their configs)."""


def register_architecture(
    name: str, architecture: type[SAEArchitecture], config_class: type[SAEConfig]
) -> type[SAEArchitecture]:
    """Make ``name`` a loadable, scorable SAE architecture: its configs parse, its SAEs encode block-wise."""
    architecture.name = name
    architecture.config_class = config_class
    ARCHITECTURE_CLASSES[name] = architecture
    SAE_CONFIGS[name] = config_class
    return architecture


def architecture_of(cfg: SAEConfig) -> type[SAEArchitecture]:
    """The registered architecture of ``cfg``."""
    found = ARCHITECTURE_CLASSES.get(cfg.architecture)
    if found is None:
        raise SAEError(
            f"unsupported SAE architecture {cfg.architecture!r}",
            f"use one of {', '.join(ARCHITECTURE_CLASSES)}",
        )
    return found
