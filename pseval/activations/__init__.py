"""Batched, cached collection of activation vectors at each prompt's target token."""

from pseval.activations.collect import (
    ActivationResult,
    PromptLike,
    activation_cache_path,
    collect_activations,
    prompts_digest,
)

__all__ = [
    "ActivationResult",
    "PromptLike",
    "activation_cache_path",
    "collect_activations",
    "prompts_digest",
]
