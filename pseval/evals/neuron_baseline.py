"""The neuron-basis baseline: PS-Eval with the MLP's own neurons in place of SAE latents.

An SAE on an MLP's output is meant to find more meaningful directions than the MLP neurons it is built
from. The fair comparison is therefore PS-Eval run on the neurons themselves: the "top-1 latent" of a
context is the MLP neuron with the largest activation at the target token, read at
``blocks.L.mlp.hook_post`` (the MLP's hidden activation, the input of its down projection; see
:mod:`pseval.models.hooks`), and a pair is predicted "same meaning" when both contexts have the same
top neuron.

As for SAE latents, only a positive activation counts as active: the top neuron is the one with the
largest *positive* value, and a context with no positive neuron has no top neuron (and its pair is
predicted "different"). With GELU MLPs almost every neuron is either near zero or positive, but gated
MLPs (SwiGLU on Llama/Qwen/Mistral, GeGLU on Gemma) produce large negative values too; those are
ignored, so the baseline reads "the neuron that fires most", not "the neuron with the largest
magnitude".

The runner collects ``blocks.L.mlp.hook_post`` in the same forward pass as the SAE hooks
(:func:`neuron_hook_for` names it) and scores it with :func:`neuron_baseline_metrics`;
:func:`neuron_baseline` is the stand-alone version.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from numpy.typing import ArrayLike

from pseval.errors import ConfigError, PsevalError
from pseval.metrics.ps_eval import NO_LATENT, ps_eval_metrics, top1_latents
from pseval.models.composite import is_composite
from pseval.models.hooks import MLP_POST, parse_hook_name

__all__ = ["neuron_baseline", "neuron_baseline_metrics", "neuron_hook_for", "neuron_hook_name"]


def neuron_hook_name(layer: int) -> str:
    """The hook of layer ``layer``'s MLP neurons, ``blocks.{layer}.mlp.hook_post``."""
    return f"blocks.{int(layer)}.mlp.hook_post"


def neuron_hook_for(sae_hook_name: str) -> str | None:
    """The MLP-neuron hook that is the natural baseline of an SAE on ``sae_hook_name``, or None.

    ``blocks.L.hook_mlp_out`` (what the MLP writes, a linear map of its neurons) and
    ``blocks.L.mlp.hook_post`` (the neurons themselves) give ``blocks.L.mlp.hook_post``; other hooks
    (residual stream, attention) have no neuron basis of their own and give None, as does a name that
    is not a hook name.
    """
    if is_composite(sae_hook_name):
        return None  # several points read together have no neuron basis of their own
    try:
        point = parse_hook_name(sae_hook_name)
    except PsevalError:
        return None
    if point.kind in ("mlp_out", MLP_POST):
        return neuron_hook_name(point.layer)
    return None


def neuron_baseline_metrics(
    acts_PD: torch.Tensor, pair_index: Sequence[tuple[int, int]], labels: ArrayLike
) -> dict[str, Any]:
    """PS-Eval metrics with MLP neurons as the latents (the runner's ``ps_eval`` category, plus two counts).

    ``acts_PD`` holds the ``mlp.hook_post`` vector of every unique prompt at its target token,
    ``pair_index`` the two prompt rows of each pair and ``labels`` each pair's label (1 = same meaning).
    The top neuron of a prompt is its largest positive activation (none if no neuron is positive).
    Adds ``n_neurons`` (the MLP width) and ``n_distinct_top_neurons``.
    """
    labels_N = np.asarray(labels, dtype=np.int64)
    if len(pair_index) != labels_N.shape[0]:
        raise ConfigError(
            f"{len(pair_index)} pairs but {labels_N.shape[0]} labels", "pass one label per pair"
        )
    if acts_PD.ndim != 2:
        raise ConfigError(
            f"expected neuron activations of shape [prompts, neurons], got {tuple(acts_PD.shape)}",
            "pass the mlp.hook_post vectors at the target tokens, one row per prompt",
        )
    index_P, _ = top1_latents(acts_PD.float())
    idx1 = torch.tensor([a for a, _ in pair_index], dtype=torch.long)
    idx2 = torch.tensor([b for _, b in pair_index], dtype=torch.long)
    lat1, lat2 = index_P[idx1].numpy(), index_P[idx2].numpy()
    metrics = ps_eval_metrics(labels_N, lat1, lat2).model_dump()
    tops = np.concatenate([lat1, lat2])
    metrics["n_neurons"] = int(acts_PD.shape[1])
    metrics["n_distinct_top_neurons"] = int(np.unique(tops[tops != NO_LATENT]).size)
    return metrics


def neuron_baseline(loaded: Any, prompts_data: Any, layer: int, batch_size: int = 32) -> dict[str, Any]:
    """PS-Eval metrics of the MLP neurons of layer ``layer`` (see :func:`neuron_baseline_metrics`).

    ``prompts_data`` has ``pair_index`` and ``labels`` (like the runner's ``PromptActivations``) and
    either ``acts`` holding ``blocks.{layer}.mlp.hook_post`` already (no forward pass), or ``prompts``
    (the unique prompts, e.g. ``PromptSet.prompts``), whose activations are then collected, cached like
    every prompt activation.
    """
    hook = neuron_hook_name(layer)
    parse_hook_name(hook, loaded.model)
    acts = getattr(prompts_data, "acts", None) or {}
    if hook in acts:
        acts_PD = acts[hook]
    else:
        prompts = getattr(prompts_data, "prompts", None)
        if prompts is None:
            raise ConfigError(
                f"the prompt data holds no {hook} activations and no prompts to collect them from",
                f"collect {hook} together with the SAE hooks, or pass data with its prompts",
            )
        from pseval.activations.collect import collect_activations

        acts_PD = collect_activations(loaded, prompts, [hook], batch_size=batch_size).acts[hook]
    return neuron_baseline_metrics(acts_PD, prompts_data.pair_index, prompts_data.labels)
