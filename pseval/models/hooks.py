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
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

import torch
from torch import nn

from pseval.errors import ModelError
from pseval.models.adapters import (
    ADAPTERS,
    FamilyAdapter,
    _first,
    as_module,
    config_of,
    d_model_of,
    get_adapter,
    get_layers,
    model_family,
    n_layers_of,
    register_adapter,
    text_config_of,
)
from pseval.models.composite import hook_parts, is_composite
from pseval.models.hook_names import (
    ATTN_Z,
    EMBED_HOOK,
    HOOK_KINDS,
    LN2_NORMALIZED,
    MLP_IN,
    MLP_POST,
    HookPoint,
    _submodule,
    canonical_hook_name,
    hook_width,
    parse_hook_name,
)

__all__ = [
    "ADAPTERS",
    "ATTN_Z",
    "EMBED_HOOK",
    "HOOK_KINDS",
    "LN2_NORMALIZED",
    "MLP_IN",
    "MLP_POST",
    "FamilyAdapter",
    "HookPoint",
    "LogitLens",
    "Observer",
    "as_module",
    "canonical_hook_name",
    "config_of",
    "d_model_of",
    "final_norm_and_unembed",
    "get_adapter",
    "get_layers",
    "hook_width",
    "model_family",
    "n_layers_of",
    "parse_hook_name",
    "patch_hook",
    "register_adapter",
    "run_with_cache",
    "text_config_of",
]


class LogitLens(NamedTuple):
    """The two last steps of a model, to read logits off any residual-stream vector."""

    final_norm: Callable[[torch.Tensor], torch.Tensor]
    unembed: Callable[[torch.Tensor], torch.Tensor]


class _StopForward(Exception):
    """Raised from a hook to end a forward pass once every requested value has been captured."""


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


Observer = Callable[[torch.Tensor], torch.Tensor | None]
"""Called with the hook's value; a returned tensor replaces it, ``None`` leaves it unchanged."""


def _attach(model: nn.Module, point: HookPoint, observer: Observer, patch: bool = False) -> list[Any]:
    """Register PyTorch hooks that call ``observer`` on the value of ``point``; return the handles.

    ``patch`` says the observer returns replacements (only ``resid_mid`` is hooked differently then).
    """
    layer = get_layers(model)[point.layer]
    adapter = get_adapter(model)
    if point.kind in (MLP_POST, ATTN_Z, MLP_IN):
        # Each is the first input of one module (the down projection, the attention output
        # projection, the MLP): read (and replace) it there.
        path = {MLP_POST: adapter.mlp_hidden_input, ATTN_Z: adapter.attn_z_input, MLP_IN: adapter.mlp_input}
        return [_attach_to_input(_submodule(layer, path[point.kind], point), observer)]
    if point.kind == LN2_NORMALIZED:
        return [_attach_normalized(layer, adapter, point, observer, patch)]
    if point.kind == "resid_pre":
        return [_attach_to_input(layer, observer)]
    if point.kind == "resid_post":
        return [_attach_to_output(layer, observer)]
    if point.kind in ("attn_out", "mlp_out"):
        path_out = adapter.attn_out if point.kind == "attn_out" else adapter.mlp_out
        return [_attach_to_output(_submodule(layer, path_out, point), observer)]
    return _attach_resid_mid(layer, adapter, point, observer, patch)


def _attach_to_input(target: nn.Module, observer: Observer) -> Any:
    """Observe (and maybe replace) the first input of ``target``."""

    def input_pre_hook(_m: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        new = observer(_hidden_from_inputs(args, kwargs))
        return None if new is None else _replace_hidden_in_inputs(args, kwargs, new)

    return target.register_forward_pre_hook(input_pre_hook, with_kwargs=True)


def _attach_to_output(target: nn.Module, observer: Observer) -> Any:
    """Observe (and maybe replace) the output of ``target``, or its first element when a tuple."""

    def fwd_hook(_m: nn.Module, _args: tuple[Any, ...], output: Any) -> Any:
        new = observer(_first_tensor(output))
        return None if new is None else _replace_first(output, new)

    return target.register_forward_hook(fwd_hook)


def _attach_normalized(
    layer: nn.Module, adapter: FamilyAdapter, point: HookPoint, observer: Observer, patch: bool
) -> Any:
    if patch:
        raise ModelError(
            f"hook '{point.name}' can be read but not patched (its value is recomputed from the norm's input)",
            f"patch blocks.{point.layer}.hook_mlp_in instead",
        )
    norm_module = _submodule(layer, adapter.mlp_norm, point)

    def norm_pre_hook(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        observer(_normalized(module, _hidden_from_inputs(args, kwargs)))

    return norm_module.register_forward_pre_hook(norm_pre_hook, with_kwargs=True)


def _attach_resid_mid(
    layer: nn.Module, adapter: FamilyAdapter, point: HookPoint, observer: Observer, patch: bool
) -> list[Any]:
    """``resid_mid`` is read as the input of the pre-MLP norm.

    Replacing it there would only change the MLP's input, not the residual skip, so a replacement is
    applied through the attention output instead: ``attn_out' = fn(resid_pre + attn_out) - resid_pre``
    makes the residual stream equal ``fn(resid_mid)``.
    """
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
    if any(is_composite(name) for name in names):
        parts = list(dict.fromkeys(part for name in names for part in hook_parts(name)))
        values = run_with_cache(model, input_ids, attention_mask, parts)
        return {name: torch.cat([values[part] for part in hook_parts(name)], dim=-1) for name in names}
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
    if is_composite(hook_name):
        raise ModelError(
            f"hook '{hook_name}' joins several points and cannot be replaced by one value",
            "patch each point on its own",
        )
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
