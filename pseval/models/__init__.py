"""Language models: loading (with a stable fingerprint) and TransformerLens-style hook points."""

from pseval.models.hooks import (
    ADAPTERS,
    HOOK_KINDS,
    FamilyAdapter,
    HookPoint,
    LogitLens,
    final_norm_and_unembed,
    get_adapter,
    get_layers,
    hook_width,
    parse_hook_name,
    patch_hook,
    register_adapter,
    run_with_cache,
)
from pseval.models.loading import (
    DEFAULT_MODEL,
    MODEL_ALIASES,
    GGUFSource,
    LoadedModel,
    load_model,
    model_fingerprint,
    wrap_model,
)

__all__ = [
    "ADAPTERS",
    "DEFAULT_MODEL",
    "HOOK_KINDS",
    "MODEL_ALIASES",
    "FamilyAdapter",
    "GGUFSource",
    "HookPoint",
    "LoadedModel",
    "LogitLens",
    "final_norm_and_unembed",
    "get_adapter",
    "get_layers",
    "hook_width",
    "load_model",
    "model_fingerprint",
    "parse_hook_name",
    "patch_hook",
    "register_adapter",
    "run_with_cache",
    "wrap_model",
]
