"""TransformerLens-style hook points on Hugging Face models, built from plain PyTorch hooks.

SAEs are trained on named points of the residual stream (``blocks.6.hook_resid_post`` …). Hugging Face
models do not expose those points, so a small per-family adapter says where they live: the list of
decoder layers, the module whose output is what attention adds to the residual stream, the same for the
MLP, the module whose input is the residual stream between the two sublayers, and the final norm.

Supported hook names (``L`` is a layer index, ``0 <= L < n_layers``):

- ``blocks.L.hook_resid_pre``: the input of layer ``L`` (the residual stream before it).
- ``hook_embed``: the token embedding as the first block reads it, an alias of ``blocks.0.hook_resid_pre``
  for families without learned absolute position embeddings (Llama, Mistral, Qwen, Gemma, GPT-NeoX), where
  that input is the embedding alone (Gemma's ``sqrt(d_model)`` scale included, as in TransformerLens).
  Refused on GPT-2 and BERT, whose first block reads the token plus the position embedding.
- ``blocks.L.hook_attn_out``: what the attention sublayer adds to the residual stream (after the
  post-attention norm on Gemma 2/3).
- ``blocks.L.hook_resid_mid``: the residual stream between attention and MLP (not defined for
  parallel-residual models).
- ``blocks.L.hook_mlp_out``: what the MLP sublayer adds to the residual stream.
- ``blocks.L.hook_resid_post``: the output of layer ``L`` (``resid_pre`` of layer ``L + 1``).
- ``blocks.L.attn.hook_z``: the attention heads' outputs before the output projection, i.e. the input
  of ``o_proj`` (``c_proj`` on GPT-2, ``dense`` on GPT-NeoX, ``attention.output.dense`` on BERT),
  flattened head-major to ``n_heads * d_head`` (TransformerLens's ``[n_heads, d_head]`` reshaped), as
  attention SAEs such as Gemma Scope 2's ``attn_out`` ones read it.
- ``blocks.L.ln2.hook_normalized``: the pre-MLP norm's input after normalisation and before its weight
  (and bias): ``(x - mean) / std`` for LayerNorm, ``x / rms`` for RMSNorm, as TransformerLens defines it.
- ``blocks.L.hook_mlp_in``: what the MLP module reads, i.e. the pre-MLP norm's *output* (weight
  included: ``pre_feedforward_layernorm`` on Gemma 2/3, ``post_attention_layernorm`` on Llama, ``ln_2``
  on GPT-2). This is what Gemma Scope 2 transcoders (named ``hook_mlp_in``) read; TransformerLens's
  ``HookedTransformer`` uses the name for the norm's input instead, which pseval calls ``hook_resid_mid``.
- ``blocks.L.mlp.hook_post``: the MLP's hidden activation, after the nonlinearity (and the gating of
  SwiGLU/GeGLU MLPs), i.e. the input of its down projection (``down_proj`` on Llama, Mistral, Qwen and
  Gemma, ``c_proj`` on GPT-2, ``dense_4h_to_h`` on GPT-NeoX, ``output.dense`` on BERT). Its width is the
  MLP's hidden size, not ``d_model``; its coordinates are the MLP neurons. The name is TransformerLens's.

So ``resid_post == resid_pre + attn_out + mlp_out`` for every pre-LN family. :func:`run_with_cache`
stops the forward pass right after the deepest requested point: no compute is spent on later layers or
the LM head, which is most of the cost of collecting activations from a middle layer.
"""

from __future__ import annotations

import contextlib
import inspect
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import nn

from pseval.errors import ModelError

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


@dataclass(frozen=True)
class FamilyAdapter:
    """Where the hook points of one model family live.

    Attribute paths are dotted names relative to the model (``layers``, ``final_norm``, ``unembed``) or
    to one decoder layer (``attn_out``, ``mlp_out``, ``resid_mid_input``). Several candidates are tried
    in order so the same adapter serves ``XForCausalLM``, the bare ``XModel`` and multimodal wrappers.
    """

    families: tuple[str, ...]
    layers: tuple[str, ...]
    attn_out: str | None
    """Module (in a layer) whose output, or its first element when a tuple, is added to the residual."""
    mlp_out: str | None
    """Module (in a layer) whose output is what the MLP adds to the residual stream."""
    resid_mid_input: str | None
    """Module (in a layer) whose first input is the residual stream between attention and MLP."""
    final_norm: tuple[str, ...] = ()
    unembed: tuple[str, ...] = ()
    """Explicit unembedding module paths; empty means ``model.get_output_embeddings()``."""
    parallel_residual: Callable[[Any], bool] | None = None
    """Given the config, whether attention and MLP read the same input (no ``resid_mid``)."""
    unsupported_reason: str | None = None
    """Why ``attn_out``/``resid_mid``/``mlp_out`` do not exist for this family (e.g. post-LN)."""
    mlp_hidden_input: str | None = None
    """Module (in a layer) whose first input is the MLP's hidden activation (``mlp.hook_post``): the
    down projection. ``None`` when the family has no such point."""
    attn_z_input: str | None = None
    """Module (in a layer) whose first input is the heads' concatenated outputs (``attn.hook_z``): the
    attention's output projection."""
    mlp_input: str | None = None
    """Module (in a layer) whose first input is what the MLP reads (``hook_mlp_in``): the MLP itself."""
    mlp_norm: str | None = None
    """The pre-MLP norm (in a layer), whose normalised input is ``ln2.hook_normalized``; ``None`` when
    the family has none (post-LN)."""
    learned_position_embeddings: bool = False
    """Whether the first block reads token plus learned absolute position embeddings (GPT-2, BERT), so
    ``blocks.0.hook_resid_pre`` is not the token embedding (``hook_embed``)."""

    def is_parallel(self, config: Any) -> bool:
        """Whether attention and MLP run in parallel on the same residual input for this config."""
        return bool(self.parallel_residual(config)) if self.parallel_residual else False


_DECODER_LAYERS = ("model.layers", "model.language_model.layers", "language_model.model.layers", "layers")
_DECODER_NORM = ("model.norm", "model.language_model.norm", "language_model.model.norm", "norm")

_LLAMA_LIKE = FamilyAdapter(
    families=("llama", "mistral", "qwen2", "qwen3", "gemma"),
    layers=_DECODER_LAYERS,
    attn_out="self_attn",
    mlp_out="mlp",
    resid_mid_input="post_attention_layernorm",
    final_norm=_DECODER_NORM,
    mlp_hidden_input="mlp.down_proj",
    attn_z_input="self_attn.o_proj",
    mlp_input="mlp",
    mlp_norm="post_attention_layernorm",
)
_GEMMA2_LIKE = FamilyAdapter(
    families=("gemma2", "gemma3", "gemma3_text"),
    layers=_DECODER_LAYERS,
    attn_out="post_attention_layernorm",
    mlp_out="post_feedforward_layernorm",
    resid_mid_input="pre_feedforward_layernorm",
    final_norm=_DECODER_NORM,
    mlp_hidden_input="mlp.down_proj",
    attn_z_input="self_attn.o_proj",
    mlp_input="mlp",
    mlp_norm="pre_feedforward_layernorm",
)
_GPT2 = FamilyAdapter(
    families=("gpt2",),
    layers=("transformer.h", "h"),
    attn_out="attn",
    mlp_out="mlp",
    resid_mid_input="ln_2",
    final_norm=("transformer.ln_f", "ln_f"),
    mlp_hidden_input="mlp.c_proj",
    attn_z_input="attn.c_proj",
    mlp_input="mlp",
    mlp_norm="ln_2",
    learned_position_embeddings=True,
)
_GPT_NEOX = FamilyAdapter(
    families=("gpt_neox",),
    layers=("gpt_neox.layers", "layers"),
    attn_out="post_attention_dropout",
    mlp_out="post_mlp_dropout",
    resid_mid_input="post_attention_layernorm",
    final_norm=("gpt_neox.final_layer_norm", "final_layer_norm"),
    parallel_residual=lambda cfg: bool(getattr(cfg, "use_parallel_residual", False)),
    mlp_hidden_input="mlp.dense_4h_to_h",
    attn_z_input="attention.dense",
    mlp_input="mlp",
    mlp_norm="post_attention_layernorm",
)
_BERT = FamilyAdapter(
    families=("bert",),
    layers=("bert.encoder.layer", "encoder.layer"),
    attn_out=None,
    mlp_out=None,
    resid_mid_input=None,
    final_norm=(),
    unembed=("cls.predictions",),
    unsupported_reason=(
        "BERT is post-LN: each sublayer's output is layer-normalised together with its input, so no "
        "attention or MLP output is ever added to a residual stream and resid_mid does not exist"
    ),
    mlp_hidden_input="output.dense",
    attn_z_input="attention.output.dense",
    mlp_input="intermediate",
    mlp_norm=None,
    learned_position_embeddings=True,
)

ADAPTERS: dict[str, FamilyAdapter] = {
    family: adapter
    for adapter in (_LLAMA_LIKE, _GEMMA2_LIKE, _GPT2, _GPT_NEOX, _BERT)
    for family in adapter.families
}
"""Adapters by ``config.model_type``. Add a family with :func:`register_adapter`."""


def register_adapter(adapter: FamilyAdapter) -> None:
    """Make hooks available for ``adapter.families`` (model types as in ``config.model_type``)."""
    for family in adapter.families:
        ADAPTERS[family] = adapter


class LogitLens(NamedTuple):
    """The two last steps of a model, to read logits off any residual-stream vector."""

    final_norm: Callable[[torch.Tensor], torch.Tensor]
    unembed: Callable[[torch.Tensor], torch.Tensor]


class _StopForward(Exception):
    """Raised from a hook to end a forward pass once every requested value has been captured."""


# --------------------------------------------------------------------------------------------------
# Model access


def as_module(model: Any) -> nn.Module:
    """The ``torch.nn.Module`` of ``model``, which may be a module or a ``LoadedModel``."""
    if isinstance(model, nn.Module):
        return model
    inner = getattr(model, "model", None)
    if isinstance(inner, nn.Module):
        return inner
    raise TypeError(f"expected a torch.nn.Module or a LoadedModel, got {type(model).__name__}")


def model_family(model: Any) -> str:
    """The model family, i.e. ``config.model_type`` (``'llama'``, ``'gpt2'`` …)."""
    config = getattr(as_module(model), "config", None)
    return str(getattr(config, "model_type", "") or type(as_module(model)).__name__)


def get_adapter(model: Any) -> FamilyAdapter:
    """The hook adapter of ``model``'s family; a :class:`ModelError` names the supported families."""
    family = model_family(model)
    adapter = ADAPTERS.get(family)
    if adapter is None:
        raise ModelError(
            f"hooks are not available for model family '{family}' (supported: {', '.join(sorted(ADAPTERS))})",
            "use a model of a supported family, or add a FamilyAdapter with pseval.models.hooks.register_adapter",
        )
    return adapter


def _resolve(root: nn.Module, path: str) -> Any:
    obj: Any = root
    for part in path.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj


def _first(root: nn.Module, paths: Sequence[str]) -> Any:
    for path in paths:
        obj = _resolve(root, path)
        if obj is not None:
            return obj
    return None


def get_layers(model: Any) -> nn.ModuleList:
    """The list of decoder (or encoder) layers of ``model``."""
    module = as_module(model)
    adapter = get_adapter(module)
    layers = _first(module, adapter.layers)
    if not isinstance(layers, nn.ModuleList):
        raise ModelError(
            f"cannot find the layers of this {model_family(module)} model (looked for {', '.join(adapter.layers)})",
            "pass a standard Hugging Face model of this family",
        )
    return layers


def n_layers_of(model: Any) -> int:
    """The number of layers, i.e. the valid range of ``L`` in hook names."""
    return len(get_layers(model))


def d_model_of(model: Any) -> int:
    """The residual-stream width of ``model``."""
    return int(text_config_of(model).hidden_size)


def config_of(model: Any) -> Any:
    """The Hugging Face config of ``model`` (``None`` for a plain module)."""
    return getattr(as_module(model), "config", None)


def text_config_of(model: Any) -> Any:
    """The config of the language part (the config itself, except for multimodal wrappers)."""
    config = config_of(model)
    return config.get_text_config() if hasattr(config, "get_text_config") else config


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
    """
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


# --------------------------------------------------------------------------------------------------
# Raw PyTorch hooks for one hook point


def _first_tensor(value: Any) -> torch.Tensor:
    """A module output may be a tensor or a tuple/ModelOutput whose first element is the hidden state."""
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, (tuple, list)) and value and isinstance(value[0], torch.Tensor):
        return value[0]
    if hasattr(value, "to_tuple"):
        return _first_tensor(value.to_tuple())
    raise TypeError(f"cannot find a hidden-state tensor in a {type(value).__name__}")


def _replace_first(value: Any, new: torch.Tensor) -> Any:
    if isinstance(value, torch.Tensor):
        return new
    if isinstance(value, tuple):
        return (new, *value[1:])
    if isinstance(value, list):
        return [new, *value[1:]]
    raise TypeError(f"cannot replace the hidden state in a {type(value).__name__}")


def _hidden_from_inputs(args: tuple[Any, ...], kwargs: dict[str, Any]) -> torch.Tensor:
    if args:
        return _first_tensor(args[0])
    return _first_tensor(kwargs["hidden_states"])


def _replace_hidden_in_inputs(
    args: tuple[Any, ...], kwargs: dict[str, Any], new: torch.Tensor
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    if args:
        return (new, *args[1:]), kwargs
    return args, {**kwargs, "hidden_states": new}


def _submodule(layer: nn.Module, path: str | None, point: HookPoint) -> nn.Module:
    module = _resolve(layer, path) if path else None
    if not isinstance(module, nn.Module):
        raise ModelError(
            f"cannot find the module of hook '{point.name}' (expected '{path}' in layer {point.layer})",
            "pass a standard Hugging Face model of this family",
        )
    return module


Observer = Callable[[torch.Tensor], torch.Tensor | None]
"""Called with the hook's value; a returned tensor replaces it, ``None`` leaves it unchanged."""


def _attach(model: nn.Module, point: HookPoint, observer: Observer, patch: bool = False) -> list[Any]:
    """Register PyTorch hooks that call ``observer`` on the value of ``point``; return the handles.

    ``patch`` says the observer returns replacements (only ``resid_mid`` is hooked differently then).
    """
    layers = get_layers(model)
    adapter = get_adapter(model)
    layer = layers[point.layer]

    if point.kind in (MLP_POST, ATTN_Z, MLP_IN):
        # Each is the first input of one module (the down projection, the attention output
        # projection, the MLP): read (and replace) it there.
        path = {MLP_POST: adapter.mlp_hidden_input, ATTN_Z: adapter.attn_z_input, MLP_IN: adapter.mlp_input}
        target_in = _submodule(layer, path[point.kind], point)

        def input_pre_hook(_m: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            new = observer(_hidden_from_inputs(args, kwargs))
            return None if new is None else _replace_hidden_in_inputs(args, kwargs, new)

        return [target_in.register_forward_pre_hook(input_pre_hook, with_kwargs=True)]

    if point.kind == LN2_NORMALIZED:
        if patch:
            raise ModelError(
                f"hook '{point.name}' can be read but not patched (its value is recomputed from the norm's input)",
                f"patch blocks.{point.layer}.hook_mlp_in instead",
            )
        norm_module = _submodule(layer, adapter.mlp_norm, point)

        def norm_pre_hook(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            observer(_normalized(module, _hidden_from_inputs(args, kwargs)))

        return [norm_module.register_forward_pre_hook(norm_pre_hook, with_kwargs=True)]

    if point.kind == "resid_pre":

        def pre_hook(_m: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            new = observer(_hidden_from_inputs(args, kwargs))
            return None if new is None else _replace_hidden_in_inputs(args, kwargs, new)

        return [layer.register_forward_pre_hook(pre_hook, with_kwargs=True)]

    if point.kind in ("resid_post", "attn_out", "mlp_out"):
        if point.kind == "resid_post":
            target = layer
        else:
            target = _submodule(
                layer, adapter.attn_out if point.kind == "attn_out" else adapter.mlp_out, point
            )

        def fwd_hook(_m: nn.Module, _args: tuple[Any, ...], output: Any) -> Any:
            new = observer(_first_tensor(output))
            return None if new is None else _replace_first(output, new)

        return [target.register_forward_hook(fwd_hook)]

    # resid_mid: read as the input of the pre-MLP norm. Replacing it there would only change the MLP's
    # input, not the residual skip, so a replacement is applied through the attention output instead:
    # attn_out' = fn(resid_pre + attn_out) - resid_pre makes the residual stream equal fn(resid_mid).
    norm = _submodule(layer, adapter.resid_mid_input, point)
    attn = _submodule(layer, adapter.attn_out, point)
    state: dict[str, torch.Tensor] = {}

    def mid_pre_hook(_m: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        observer(_hidden_from_inputs(args, kwargs))

    def save_resid_pre(_m: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        state["resid_pre"] = _hidden_from_inputs(args, kwargs)

    def patch_attn(_m: nn.Module, _args: tuple[Any, ...], output: Any) -> Any:
        resid_pre = state.pop("resid_pre")
        resid_mid = resid_pre + _first_tensor(output)
        new = observer(resid_mid)
        return None if new is None else _replace_first(output, new - resid_pre)

    if patch:
        return [
            layer.register_forward_pre_hook(save_resid_pre, with_kwargs=True),
            attn.register_forward_hook(patch_attn),
        ]
    return [norm.register_forward_pre_hook(mid_pre_hook, with_kwargs=True)]


def _normalized(norm: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """TransformerLens's ``hook_normalized`` of ``norm`` at input ``x``: normalised, before weight and bias.

    LayerNorm centres and divides by the standard deviation; RMSNorm (Llama, Gemma, ...) divides by the
    root mean square. Computed in float32 as the Hugging Face norms do.
    """
    x32 = x.float()
    if isinstance(norm, nn.LayerNorm):
        x32 = x32 - x32.mean(dim=-1, keepdim=True)
        eps = float(norm.eps)
    else:
        found = getattr(norm, "variance_epsilon", getattr(norm, "eps", None))
        if not isinstance(found, (int, float)):
            raise ModelError(
                f"cannot tell the epsilon of the pre-MLP norm {type(norm).__name__}",
                "pass a standard Hugging Face model of this family",
            )
        eps = float(found)
    scale = (x32.pow(2).mean(dim=-1, keepdim=True) + eps).sqrt()
    return (x32 / scale).to(x.dtype)


def _validate(model: nn.Module, hook_names: Sequence[str]) -> list[HookPoint]:
    if isinstance(hook_names, str):
        hook_names = [hook_names]
    if not hook_names:
        raise ModelError("no hook names given", "pass at least one name such as blocks.0.hook_resid_post")
    return [parse_hook_name(name, model) for name in hook_names]


def _forward_kwargs(
    model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor | None
) -> dict[str, Any]:
    """Forward arguments; with left padding, position ids follow the mask so real tokens keep their positions.

    Position ids are only passed when some row starts with padding: passing them for right-padded
    batches (where the default positions are already right) makes transformers take a several times
    slower attention-mask path.
    """
    params = inspect.signature(model.forward).parameters
    kwargs: dict[str, Any] = {"input_ids": input_ids}
    if attention_mask is not None:
        kwargs["attention_mask"] = attention_mask
        left_padded = bool((attention_mask[:, 1:] > attention_mask[:, :-1]).any())
        if left_padded and "position_ids" in params:
            kwargs["position_ids"] = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
    if "use_cache" in params:
        kwargs["use_cache"] = False
    return kwargs


# --------------------------------------------------------------------------------------------------
# Public API


@torch.no_grad()
def run_with_cache(
    model: Any,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None,
    hook_names: Sequence[str],
) -> dict[str, torch.Tensor]:
    """Run ``model`` on a batch and return the value of every hook, each ``[B, T, D]``.

    All hooks are captured in one forward pass, which is stopped right after the deepest requested
    point (later layers and the LM head never run). Position ids are derived from ``attention_mask`` so
    left- and right-padded batches give the same vectors at real tokens.
    """
    module = as_module(model)
    names = [hook_names] if isinstance(hook_names, str) else list(hook_names)
    points = _validate(module, names)
    by_name = {point.name: point for point in points}
    last = max(points, key=lambda p: p.order)
    captured: dict[str, torch.Tensor] = {}
    handles: list[Any] = []

    def make_observer(point: HookPoint) -> Observer:
        def observe(value: torch.Tensor) -> None:
            captured[point.name] = value.detach().clone()
            if point == last:
                raise _StopForward

        return observe

    try:
        for point in by_name.values():
            handles.extend(_attach(module, point, make_observer(point)))
        with contextlib.suppress(_StopForward):
            module(**_forward_kwargs(module, input_ids, attention_mask))
    finally:
        for handle in handles:
            handle.remove()
    missing = [name for name in by_name if name not in captured]
    if missing:
        raise ModelError(
            f"hooks {missing} never fired during the forward pass",
            "check that the model's forward pass runs every layer (no layer skipping)",
        )
    return {name: captured[point.name] for name, point in zip(names, points, strict=True)}


@contextlib.contextmanager
def patch_hook(model: Any, hook_name: str, fn: Callable[[torch.Tensor], torch.Tensor]) -> Iterator[HookPoint]:
    """Within the block, every forward pass of ``model`` uses ``fn(value)`` instead of the hook's value.

    The forward pass runs to the end (logits included), e.g. to measure the cross-entropy loss with an
    SAE reconstruction spliced in. ``fn`` receives ``[B, T, D]`` and must return the same shape.
    """
    module = as_module(model)
    point = _validate(module, [hook_name])[0]

    def observer(value: torch.Tensor) -> torch.Tensor:
        new = fn(value)
        if not isinstance(new, torch.Tensor) or new.shape != value.shape:
            got = tuple(new.shape) if isinstance(new, torch.Tensor) else type(new).__name__
            raise ModelError(
                f"the patch function for '{hook_name}' returned {got}, expected shape {tuple(value.shape)}",
                "return a tensor with the same shape as its input",
            )
        return new.to(value.dtype)

    handles = _attach(module, point, observer, patch=True)
    try:
        yield point
    finally:
        for handle in handles:
            handle.remove()


def final_norm_and_unembed(model: Any) -> LogitLens:
    """The final norm and the unembedding of ``model``, to apply a logit lens to residual vectors.

    The unembedding includes the final logit soft-capping of Gemma 2/3 when the config sets one.
    """
    module = as_module(model)
    adapter = get_adapter(module)
    norm: Callable[[torch.Tensor], torch.Tensor]
    if adapter.final_norm:
        found = _first(module, adapter.final_norm)
        if not isinstance(found, nn.Module):
            raise ModelError(
                f"cannot find the final norm of this {model_family(module)} model",
                "pass a standard Hugging Face model of this family",
            )
        norm = found
    else:
        norm = nn.Identity()
    head = _first(module, adapter.unembed) if adapter.unembed else None
    get_output_embeddings: Any = getattr(module, "get_output_embeddings", None)
    if head is None and callable(get_output_embeddings):
        head = get_output_embeddings()
    if not isinstance(head, nn.Module):
        raise ModelError(
            f"this {model_family(module)} model has no unembedding (it was loaded without its LM head)",
            "load the model with its language-modelling head (e.g. AutoModelForCausalLM)",
        )
    text_config = text_config_of(module)
    softcap = getattr(text_config, "final_logit_softcapping", None)
    if softcap:
        cap = float(softcap)
        linear = head

        def unembed(x: torch.Tensor) -> torch.Tensor:
            return torch.tanh(linear(x) / cap) * cap

        return LogitLens(norm, unembed)
    return LogitLens(norm, head)
