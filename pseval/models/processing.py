"""Activations as a processed TransformerLens model would give them.

SAELens trains on ``HookedTransformer.from_pretrained_no_processing(model, **model_from_pretrained_kwargs)``
and records those keyword arguments in the SAE's config. Some of them change the values at hook points,
so an SAE trained with them expects different vectors than a plain Hugging Face forward pass produces:

- ``center_writing_weights``: every weight that writes to the residual stream (embeddings, attention and
  MLP output projections and biases) is centred over ``d_model``. TransformerLens only does this for
  LayerNorm models (GPT-2, GPT-NeoX, ...), where the next LayerNorm removes the mean anyway, so the model
  computes the same function and every residual-stream write equals the raw write minus its mean over
  the last dimension: ``resid_pre``, ``resid_mid``, ``resid_post``, ``attn_out`` and ``mlp_out``. Points
  read after a LayerNorm (``attn.hook_z``, ``hook_mlp_in``, ``ln2.hook_normalized``, ``mlp.hook_post``)
  do not change. For RMSNorm models (Llama, Mistral, Qwen, Gemma) TransformerLens leaves the weights
  uncentred (centring would change what RMSNorm computes), so its activations are the raw ones and so
  are pseval's. Post-LN models (BERT) are not supported: TransformerLens does not centre them the same
  way, and pseval raises a :class:`~pseval.errors.ConfigError` rather than guess.
- ``fold_value_biases``: TransformerLens moves the value biases into the attention output bias, which
  changes ``attn.hook_z`` by the value bias of each head. pseval supports this only where the model has no
  value biases (the flag then changes nothing) and raises a :class:`ConfigError` otherwise.
- ``refactor_factored_attn_matrices``: rotates the value/output matrices, which changes ``attn.hook_z``;
  not supported at that hook (a :class:`ConfigError`), no effect elsewhere.

``fold_ln`` and ``center_unembed`` change no hook pseval exposes (``ln2.hook_normalized`` is read before
the norm's weight in TransformerLens either way), so they are accepted and ignored.
"""

from __future__ import annotations

import re
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict

from pseval.errors import ConfigError

_RESIDUAL_WRITES = frozenset({"resid_pre", "resid_mid", "resid_post", "attn_out", "mlp_out"})
"""Hook kinds that are sums of residual-stream writes: centred by ``center_writing_weights``."""

_LAYERNORM_FAMILIES = frozenset({"gpt2", "gpt_neox"})
"""Pre-LN families with LayerNorm: TransformerLens centres their writing weights."""

_RMSNORM_FAMILIES = frozenset(
    {"llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3", "gemma3_text"}
)
"""RMSNorm families: TransformerLens skips ``center_writing_weights`` for them (activations stay raw)."""

_ATTN_Z_RE = re.compile(r"^blocks\.\d+\.attn\.hook_z$")
_RESIDUAL_RE = re.compile(r"^blocks\.\d+\.hook_(resid_pre|resid_mid|resid_post|attn_out|mlp_out)$")

# model_from_pretrained_kwargs keys that never change activation values.
_NEUTRAL_KWARGS = frozenset(
    {
        "fold_ln",
        "center_unembed",
        "n_devices",
        "device",
        "dtype",
        "torch_dtype",
        "default_prepend_bos",
        "default_padding_side",
        "move_to_device",
        "trust_remote_code",
        "first_n_layers",
        "n_ctx",
        "revision",
        "checkpoint_index",
        "checkpoint_value",
        "use_attn_result",
        "use_split_qkv_input",
        "use_hook_mlp_in",
        "use_attn_in",
        "attn_implementation",
        "device_map",
        "low_cpu_mem_usage",
    }
)


class ActivationProcessing(BaseModel):
    """How activations must be transformed to match the (processed) model an SAE was trained on."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    center_writing_weights: bool = False
    """TransformerLens' processed-model residual writes: centred over ``d_model`` (LayerNorm models)."""
    fold_value_biases: bool = False
    """Value biases folded into the output bias (changes ``attn.hook_z`` on models with value biases)."""
    refactor_factored_attn_matrices: bool = False
    """Value/output matrices refactored by SVD (changes ``attn.hook_z``)."""

    def is_identity(self) -> bool:
        """Whether no flag is set, i.e. raw Hugging Face activations are what the SAE expects."""
        return not (
            self.center_writing_weights or self.fold_value_biases or self.refactor_factored_attn_matrices
        )

    def key(self) -> dict[str, Any]:
        """The flags that are set, as a JSON-able dict (``{}`` for raw activations) for cache keys and results."""
        return {name: True for name, value in self.model_dump().items() if value}


RAW = ActivationProcessing()
"""Raw activations, as a plain Hugging Face forward pass gives them."""


def processing_from_sae_metadata(metadata: dict[str, Any] | None) -> ActivationProcessing:
    """The processing an SAE expects, from ``metadata["model_from_pretrained_kwargs"]``.

    A missing or empty entry means raw activations (SAELens loads with
    ``from_pretrained_no_processing``). A keyword that may change activations and that pseval does not
    know raises a :class:`ConfigError`, so an unknown processing is never silently ignored.
    """
    kwargs = (metadata or {}).get("model_from_pretrained_kwargs") or {}
    if not isinstance(kwargs, dict):
        raise ConfigError(
            f"the SAE's model_from_pretrained_kwargs is a {type(kwargs).__name__}, not a mapping",
            "fix model_from_pretrained_kwargs in the SAE's cfg.json (a JSON object, e.g. {})",
        )
    fields = set(ActivationProcessing.model_fields)
    unknown = sorted(k for k in kwargs if k not in fields and k not in _NEUTRAL_KWARGS)
    if unknown:
        raise ConfigError(
            f"the SAE was trained on a model loaded with {', '.join(unknown)} "
            "(model_from_pretrained_kwargs), which pseval cannot reproduce",
            "remove those keys from the SAE's cfg.json only if they do not change activations",
        )
    values: dict[str, bool] = {}
    for name in fields:
        if name in kwargs:
            value = kwargs[name]
            if not isinstance(value, bool):
                raise ConfigError(
                    f"model_from_pretrained_kwargs.{name} is {value!r}, not true or false",
                    f"set {name} to true or false in the SAE's cfg.json",
                )
            values[name] = value
    return ActivationProcessing(**values)


def _family(model: Any) -> str:
    module = model if isinstance(model, torch.nn.Module) else getattr(model, "model", model)
    config = getattr(module, "config", None)
    return str(getattr(config, "model_type", "") or type(module).__name__)


def _value_biases_are_zero(model: Any, family: str) -> bool:
    """Whether the model's attention value projections carry no (or all-zero) biases."""
    module = model if isinstance(model, torch.nn.Module) else getattr(model, "model", model)
    if family in _RMSNORM_FAMILIES:
        for name, param in module.named_parameters():
            if name.endswith("v_proj.bias") and bool(param.detach().abs().max() > 0):
                return False
        return True
    return False


def apply_processing(
    model: Any, hook_name: str, acts_ND: torch.Tensor, processing: ActivationProcessing
) -> torch.Tensor:
    """What TransformerLens's processed model would give at ``hook_name``, from raw activations ``acts_ND``.

    ``acts_ND`` may have any number of leading dimensions; the last one is the hook's width. Raises
    :class:`ConfigError` when the combination of model family, hook and processing is not supported:
    raw activations are never returned for a processing that would change them.
    """
    if processing.is_identity():
        return acts_ND
    family = _family(model)
    if family not in _LAYERNORM_FAMILIES and family not in _RMSNORM_FAMILIES:
        raise ConfigError(
            f"the SAE expects activations of a processed TransformerLens model ({processing.key()}), "
            f"which pseval cannot reproduce for model family '{family}'",
            "use an SAE trained on raw activations (model_from_pretrained_kwargs empty) for this model",
        )
    is_z = bool(_ATTN_Z_RE.match(hook_name.strip()))
    if is_z and processing.refactor_factored_attn_matrices:
        raise ConfigError(
            f"the SAE at '{hook_name}' expects refactored attention matrices "
            "(refactor_factored_attn_matrices), which pseval cannot reproduce",
            "use an SAE trained without refactor_factored_attn_matrices, or another hook",
        )
    if is_z and processing.fold_value_biases and not _value_biases_are_zero(model, family):
        raise ConfigError(
            f"the SAE at '{hook_name}' expects folded value biases (fold_value_biases) and this "
            f"{family} model has value biases, which pseval does not fold",
            "use an SAE trained without fold_value_biases, or another hook",
        )
    if (
        processing.center_writing_weights
        and family in _LAYERNORM_FAMILIES
        and _RESIDUAL_RE.match(hook_name.strip())
    ):
        return acts_ND - acts_ND.mean(dim=-1, keepdim=True)
    return acts_ND


__all__ = [
    "RAW",
    "ActivationProcessing",
    "apply_processing",
    "processing_from_sae_metadata",
]
