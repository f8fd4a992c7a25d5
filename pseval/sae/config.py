"""SAE configurations: one pydantic class per architecture, in a registry keyed by the architecture tag.

The fields and their defaults follow SAELens 6.x so that a config round-trips through a SAELens
``cfg.json`` without loss; the two top-level fields ``hook_name`` and ``model_name`` (which SAELens keeps
in ``metadata``) are lifted out because every pseval stage needs them.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pseval.errors import ConfigError

NormalizeActivations = Literal["none", "expected_average_only_in", "constant_norm_rescale", "layer_norm"]
DType = Literal["float32", "float16", "bfloat16", "float64"]

NORMALIZE_ACTIVATIONS: tuple[str, ...] = (
    "none",
    "expected_average_only_in",
    "constant_norm_rescale",
    "layer_norm",
)


class SAEConfig(BaseModel):
    """Fields shared by every SAE architecture (the SAELens 6.x ``SAEConfig`` fields plus hook and model)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    #: Parameters this architecture holds besides ``W_enc``, ``W_dec`` and ``b_dec``.
    extra_parameters: ClassVar[tuple[str, ...]] = ("b_enc",)

    architecture: str = Field(description="Architecture tag, the key of this class in SAE_CONFIGS.")
    d_in: int = Field(gt=0, description="Width of the activations the SAE reads (the hook's width).")
    d_sae: int = Field(gt=0, description="Number of latents (dictionary size).")
    dtype: DType = Field(default="float32", description="Dtype of the parameters and of the computation.")
    apply_b_dec_to_input: bool = Field(
        default=True, description="Subtract b_dec from the input before encoding (SAELens default)."
    )
    normalize_activations: NormalizeActivations = Field(
        default="none",
        description=(
            "Input normalisation, as in SAELens: 'none'; 'expected_average_only_in' (a constant scale applied "
            "outside the SAE, identity here); 'constant_norm_rescale' (each input scaled to norm sqrt(d_in), "
            "undone on the output); 'layer_norm' (per-input standardisation, undone on the output)."
        ),
    )
    hook_name: str | None = Field(
        default=None,
        description="TransformerLens-style hook the SAE was trained on, e.g. blocks.6.hook_resid_post.",
    )
    model_name: str | None = Field(
        default=None, description="Name of the language model the SAE was trained on."
    )
    metadata: dict[str, Any] = Field(
        default_factory=dict,
        description="Free-form provenance (SAELens metadata, source format and path, training details).",
    )

    def torch_dtype(self) -> Any:
        """The torch dtype named by ``dtype``."""
        import torch

        return getattr(torch, self.dtype)

    def arch_fields(self) -> dict[str, Any]:
        """The fields that change what the SAE computes (everything but hook, model and metadata)."""
        return self.model_dump(exclude={"hook_name", "model_name", "metadata", "dtype"})


class StandardSAEConfig(SAEConfig):
    """ReLU SAE: ``relu(x @ W_enc + b_enc)``."""

    architecture: Literal["standard"] = Field(default="standard", description="Architecture tag.")


class TopKSAEConfig(SAEConfig):
    """TopK SAE: keep the k largest pre-activations of each input, then ReLU them."""

    architecture: Literal["topk"] = Field(default="topk", description="Architecture tag.")
    k: int = Field(description="Number of latents kept per input.")
    rescale_acts_by_decoder_norm: bool = Field(
        default=False,
        description=(
            "Multiply pre-activations by the decoder row norms before the top-k selection and divide "
            "them out again in decode (SAELens option for SAEs trained that way)."
        ),
    )

    @model_validator(mode="after")
    def _check_k(self) -> TopKSAEConfig:
        _check_k(self.k, self.d_sae, "topk")
        return self


class BatchTopKSAEConfig(SAEConfig):
    """BatchTopK SAE: trained with a batch-level top-k, run per input through a per-latent threshold."""

    extra_parameters: ClassVar[tuple[str, ...]] = ("b_enc", "threshold")

    architecture: Literal["batchtopk"] = Field(default="batchtopk", description="Architecture tag.")
    k: float = Field(
        description="Average number of latents kept per input during training (may be fractional)."
    )

    @model_validator(mode="after")
    def _check_k(self) -> BatchTopKSAEConfig:
        _check_k(self.k, self.d_sae, "batchtopk")
        return self


class JumpReLUSAEConfig(SAEConfig):
    """JumpReLU SAE: ``relu(pre) * (pre > threshold)`` with a learned per-latent threshold."""

    extra_parameters: ClassVar[tuple[str, ...]] = ("b_enc", "threshold")

    architecture: Literal["jumprelu"] = Field(default="jumprelu", description="Architecture tag.")


class GatedSAEConfig(SAEConfig):
    """Gated SAE: a binary gate path and a ReLU magnitude path that share W_enc (no b_enc)."""

    extra_parameters: ClassVar[tuple[str, ...]] = ("b_gate", "b_mag", "r_mag")

    architecture: Literal["gated"] = Field(default="gated", description="Architecture tag.")


#: Config class of every architecture, by tag; :func:`pseval.sae.architectures.register_architecture` adds more.
SAE_CONFIGS: dict[str, type[SAEConfig]] = {
    "standard": StandardSAEConfig,
    "topk": TopKSAEConfig,
    "batchtopk": BatchTopKSAEConfig,
    "jumprelu": JumpReLUSAEConfig,
    "gated": GatedSAEConfig,
}

#: The built-in architectures (every registered one is a key of SAE_CONFIGS).
ARCHITECTURES: tuple[str, ...] = tuple(SAE_CONFIGS)


def own_fields(config_class: type[SAEConfig]) -> tuple[str, ...]:
    """The fields an architecture's config class adds to :class:`SAEConfig`'s (e.g. ``k``)."""
    return tuple(name for name in config_class.model_fields if name not in SAEConfig.model_fields)


def _check_k(k: float, d_sae: int, architecture: str) -> None:
    if not 1 <= k <= d_sae:
        raise ConfigError(
            f"{architecture} SAE has k={k}, outside 1..d_sae={d_sae}",
            "set k to at least 1 and at most the number of latents",
        )


def config_from_dict(d: dict[str, Any]) -> SAEConfig:
    """Build the config class named by ``d["architecture"]`` (default ``standard``) from a plain dict.

    Unknown architectures and invalid values raise :class:`ConfigError` with the offending field.
    """
    data = dict(d)
    architecture = data.setdefault("architecture", "standard")
    cls = SAE_CONFIGS.get(str(architecture))
    if cls is None:
        raise ConfigError(
            f"unknown SAE architecture {architecture!r}",
            f"use one of {', '.join(SAE_CONFIGS)}",
        )
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "config"
        raise ConfigError(
            f"invalid {architecture} SAE config: {where}: {first.get('msg', 'invalid value')}",
            f"fix the value of {where!r}",
        ) from None
