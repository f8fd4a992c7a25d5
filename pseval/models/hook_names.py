"""TransformerLens hook names: parsing, checking against a model's family, and each point's width.

The forms and what each point is are listed in :mod:`pseval.models.hooks`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from pseval.errors import ModelError
from pseval.models.adapters import (
    FamilyAdapter,
    _resolve,
    as_module,
    d_model_of,
    get_adapter,
    get_layers,
    model_family,
    n_layers_of,
)
from pseval.models.composite import hook_parts, is_composite, join_hooks

HOOK_KINDS: tuple[str, ...] = ("resid_pre", "attn_out", "resid_mid", "mlp_out", "resid_post")
"""Residual-stream hook kinds (width ``d_model``) in the order they fire inside one layer."""

MLP_POST = "mlp_post"
"""Kind of ``blocks.L.mlp.hook_post``, the MLP's hidden activation (width = the MLP's hidden size)."""
ATTN_Z = "attn_z"
"""Kind of ``blocks.L.attn.hook_z``, the heads' outputs before ``o_proj`` (width = n_heads * d_head)."""
MLP_IN = "mlp_in"
"""Kind of ``blocks.L.hook_mlp_in``, the MLP module's input (width = d_model)."""
LN2_NORMALIZED = "ln2_normalized"
"""Kind of ``blocks.L.ln2.hook_normalized``, the pre-MLP norm's normalised input before its weight."""

_FIRING_ORDER: tuple[str, ...] = (
    "resid_pre",
    ATTN_Z,
    "attn_out",
    "resid_mid",
    LN2_NORMALIZED,
    MLP_IN,
    MLP_POST,
    "mlp_out",
    "resid_post",
)
_KIND_ORDER = {kind: i for i, kind in enumerate(_FIRING_ORDER)}
_HOOK_RE = re.compile(r"^blocks\.(\d+)\.hook_([a-z_]+)$")
_SUBMODULE_HOOKS: dict[str, str] = {
    "mlp.hook_post": MLP_POST,
    "attn.hook_z": ATTN_Z,
    "hook_mlp_in": MLP_IN,
    "ln2.hook_normalized": LN2_NORMALIZED,
}
_NAMES_BY_KIND = {kind: suffix for suffix, kind in _SUBMODULE_HOOKS.items()}
_OTHER_HOOK_RE = re.compile(
    r"^blocks\.(\d+)\.(mlp\.hook_post|attn\.hook_z|hook_mlp_in|ln2\.hook_normalized)$"
)
_VALID_FORMS = (
    "blocks.<L>.hook_resid_pre | hook_resid_mid | hook_resid_post | hook_attn_out | hook_mlp_out | "
    "hook_mlp_in, or blocks.<L>.attn.hook_z | ln2.hook_normalized | mlp.hook_post, or hook_embed"
)
EMBED_HOOK = "hook_embed"
"""TransformerLens's token-embedding point: ``blocks.0.hook_resid_pre`` where no position embedding is added."""
_POSITION_EMBEDDING_NAMES = frozenset({"wpe", "embed_positions", "position_embeddings"})


@dataclass(frozen=True)
class HookPoint:
    """One parsed hook name: a layer index and a kind from :data:`HOOK_KINDS`."""

    layer: int
    kind: str

    @property
    def name(self) -> str:
        """The canonical TransformerLens-style name, e.g. ``blocks.3.hook_resid_post``."""
        if self.kind in _NAMES_BY_KIND:
            return f"blocks.{self.layer}.{_NAMES_BY_KIND[self.kind]}"
        return f"blocks.{self.layer}.hook_{self.kind}"

    @property
    def order(self) -> tuple[int, int]:
        """Position in the forward pass; a larger value fires later."""
        return (self.layer, _KIND_ORDER[self.kind])


# --------------------------------------------------------------------------------------------------
# Hook names


def _match_hook_name(name: str) -> HookPoint | None:
    if not isinstance(name, str):
        return None
    text = name.strip()
    if text == EMBED_HOOK:
        return HookPoint(layer=0, kind="resid_pre")
    match = _HOOK_RE.match(text)
    if match is not None and match.group(2) in HOOK_KINDS:
        return HookPoint(layer=int(match.group(1)), kind=match.group(2))
    match = _OTHER_HOOK_RE.match(text)
    if match is not None:
        return HookPoint(layer=int(match.group(1)), kind=_SUBMODULE_HOOKS[match.group(2)])
    return None


def parse_hook_name(name: str, model: Any | None = None) -> HookPoint:
    """Parse ``blocks.L.hook_KIND``, ``blocks.L.attn.hook_z``, ``blocks.L.ln2.hook_normalized`` or
    ``blocks.L.mlp.hook_post``; with ``model``, also check the layer range and the family's support.

    Raises :class:`ModelError` with the valid forms (and the model's layer range) for anything else.
    A composite name (:mod:`pseval.models.composite`) is valid when each part is; its deepest part is
    returned (:func:`canonical_hook_name` names the whole).
    """
    if is_composite(name):
        parts = hook_parts(name)
        if len(set(parts)) != len(parts) or not all(parts):
            raise ModelError(
                f"composite hook name '{name}' repeats or leaves out a part", "name each hook once"
            )
        return max((parse_hook_name(part, model) for part in parts), key=lambda p: p.order)
    n_layers = n_layers_of(model) if model is not None else None
    layer_range = f"; this model has layers 0..{n_layers - 1}" if n_layers is not None else ""
    point = _match_hook_name(name)
    if point is None:
        raise ModelError(
            f"unknown hook name '{name}'",
            f"use one of {_VALID_FORMS}{layer_range}",
        )
    if model is None:
        return point
    assert n_layers is not None
    if point.layer >= n_layers:
        raise ModelError(
            f"hook '{name}' is past the last layer: this model has layers 0..{n_layers - 1}",
            f"use a layer between 0 and {n_layers - 1}",
        )
    module = as_module(model)
    adapter = get_adapter(module)
    if name.strip() == EMBED_HOOK and _adds_position_embeddings(module, adapter):
        raise ModelError(
            f"hook '{EMBED_HOOK}' is not available for {model_family(module)}: its first block reads the token "
            "embedding plus a learned position embedding, and pseval has no point for the token embedding alone",
            "evaluate an SAE trained on blocks.0.hook_resid_pre (token + position embedding) instead",
        )
    if point.kind == MLP_POST and not adapter.mlp_hidden_input:
        raise ModelError(
            f"hook '{name}' is not available for {model_family(module)}: pseval does not know where its "
            "MLP's hidden activation is",
            f"use blocks.{point.layer}.hook_mlp_out, or register a FamilyAdapter with mlp_hidden_input",
        )
    missing_module = {
        ATTN_Z: (adapter.attn_z_input, "its attention output projection"),
        MLP_IN: (adapter.mlp_input, "its MLP's input"),
        LN2_NORMALIZED: (adapter.mlp_norm, "a norm in front of its MLP"),
    }.get(point.kind)
    if missing_module is not None and not missing_module[0]:
        alternative = (
            f"blocks.{point.layer}.hook_mlp_in"
            if point.kind == LN2_NORMALIZED
            else f"blocks.{point.layer}.hook_resid_post"
        )
        raise ModelError(
            f"hook '{name}' is not available for {model_family(module)}: the family has no "
            f"{missing_module[1]} that pseval knows of",
            f"use {alternative}, or register a FamilyAdapter that names it",
        )
    if point.kind in ("attn_out", "mlp_out", "resid_mid") and adapter.unsupported_reason:
        raise ModelError(
            f"hook '{name}' does not exist for {model_family(module)}: {adapter.unsupported_reason}",
            f"use blocks.{point.layer}.hook_resid_pre or blocks.{point.layer}.hook_resid_post",
        )
    if point.kind == "resid_mid" and adapter.is_parallel(module.config):
        raise ModelError(
            f"hook '{name}' does not exist: this {model_family(module)} model uses a parallel residual "
            "(attention and MLP both read resid_pre), so there is no residual stream between them",
            f"use blocks.{point.layer}.hook_resid_pre, hook_attn_out, hook_mlp_out or hook_resid_post",
        )
    return point


def canonical_hook_name(name: str) -> str:
    """The canonical name of a hook (``hook_embed`` -> ``blocks.0.hook_resid_pre``), part by part."""
    return join_hooks([parse_hook_name(part).name for part in hook_parts(name)])


def _adds_position_embeddings(module: nn.Module, adapter: FamilyAdapter) -> bool:
    """Whether the input of the first block includes a learned absolute position embedding.

    The adapter says so for the known families; for a registered one, an ``nn.Embedding`` named like
    GPT-2's, OPT's or BERT's position table also counts, so ``hook_embed`` is never silently wrong.
    """
    if adapter.learned_position_embeddings:
        return True
    return any(
        isinstance(child, nn.Embedding) and path.rsplit(".", 1)[-1] in _POSITION_EMBEDDING_NAMES
        for path, child in module.named_modules()
    )


def hook_width(model: Any, name: str) -> int:
    """The width of the vectors at hook ``name``.

    ``d_model`` for the residual-stream points, ``hook_mlp_in`` and ``ln2.hook_normalized``; for
    ``mlp.hook_post``, the MLP's hidden size, read off the down projection's input features (so it is
    right for GPT-2's ``n_inner`` and any config name); for ``attn.hook_z``, ``n_heads * d_head``, read off
    the output projection's input features (Gemma's ``head_dim`` need not be ``d_model / n_heads``).
    """
    point = parse_hook_name(name, model)
    if is_composite(name):
        return sum(hook_width(model, part) for part in hook_parts(name))
    if point.kind == MLP_POST:
        return _in_features(_mlp_hidden_module(as_module(model), point))
    if point.kind == ATTN_Z:
        module = as_module(model)
        adapter = get_adapter(module)
        return _in_features(_submodule(get_layers(module)[point.layer], adapter.attn_z_input, point))
    return d_model_of(model)


def _mlp_hidden_module(model: nn.Module, point: HookPoint) -> nn.Module:
    """The down projection of layer ``point.layer``, whose input is ``mlp.hook_post``."""
    adapter = get_adapter(model)
    return _submodule(get_layers(model)[point.layer], adapter.mlp_hidden_input, point)


def _in_features(module: nn.Module) -> int:
    """Input width of a projection: ``nn.Linear.in_features``, GPT-2's ``Conv1D.nx``, or the weight's shape."""
    for attr in ("in_features", "nx"):
        value = getattr(module, attr, None)
        if isinstance(value, int):
            return value
    weight = getattr(module, "weight", None)
    if isinstance(weight, torch.Tensor) and weight.ndim == 2:
        return int(weight.shape[1])
    raise ModelError(
        f"cannot tell the input width of {type(module).__name__}", "pass a standard Hugging Face model"
    )


def _submodule(layer: nn.Module, path: str | None, point: HookPoint) -> nn.Module:
    module = _resolve(layer, path) if path else None
    if not isinstance(module, nn.Module):
        raise ModelError(
            f"cannot find the module of hook '{point.name}' (expected '{path}' in layer {point.layer})",
            "pass a standard Hugging Face model of this family",
        )
    return module
