"""Where each model family keeps its layers, sublayers and norms: the :class:`FamilyAdapter` table.

A Hugging Face model does not name TransformerLens's hook points; an adapter says, per family
(``config.model_type``), which modules hold them. :mod:`pseval.models.hook_names` parses hook names
against it and :mod:`pseval.models.hooks` attaches PyTorch hooks through it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from torch import nn

from pseval.errors import ModelError


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
