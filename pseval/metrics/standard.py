"""The standard SAE metrics: how well an SAE reconstructs activations and what splicing it in costs the model.

PS-Eval asks whether an SAE's latents separate word senses; these metrics say whether the SAE is a good
SAE at all, so that a PS-Eval score can be read next to its sparsity and fidelity (as in SAEBench's
``core`` eval). They are always measured on held-out corpus text (:mod:`pseval.data.corpus`), never
on PS-Eval prompts, and never at BOS, separators or other special-token positions, whose activations
carry no text (and, at BOS, dwarf everything else).

Reconstruction (:func:`reconstruction_metrics`) is accumulated over batches as running sums, so any
number of tokens fits in memory:

- ``mse``: mean over elements of ``(x - x̂)²``;
- ``fvu``: ``Σ‖x - x̂‖² / Σ‖x - mean(x)‖²``, the unexplained fraction of the variance *about the mean
  over the dataset* (the mean is accumulated with Chan's parallel update, numerically stable even when
  the mean is far larger than the spread); ``explained_variance = 1 - fvu``;
- ``l0``: mean number of non-zero latents per token (``l0_normalised = l0 / d_sae``);
- ``dead_fraction``: latents never active on the sample; ``dense_fraction``: active on more than
  ``dense_threshold`` of the tokens;
- ``cosine``: mean cosine of ``x`` and ``x̂``; ``l2_ratio``: mean ``‖x̂‖ / ‖x‖``;
- ``relative_reconstruction_bias``: ``Σ‖x̂‖² / Σ x̂·x`` (Wright & Sharkey): the γ for which
  ``x̂ / γ`` reconstructs best; below 1 means the SAE shrinks its outputs.

Downstream (:func:`downstream_metrics`): next-token cross-entropy with the hook left alone, with the
hook's value replaced by the SAE reconstruction (at text positions only; BOS and separators keep their
value), and with the hook zeroed at the same positions; ``ce_loss_recovered = (zero - sae) / (zero -
clean)``; and the mean ``KL(clean ‖ spliced)`` per token. A prediction counts when both the position and
its target are text tokens.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from pydantic import BaseModel, Field

from pseval._progress import track
from pseval.data.corpus import BUNDLED, ContextBatch, iter_context_batches
from pseval.errors import ConfigError, DataError, ModelError
from pseval.metrics.registry import metric_field
from pseval.models.hooks import as_module, patch_hook, run_with_cache

__all__ = [
    "ReconstructionAccumulator",
    "SAELike",
    "StandardMetrics",
    "downstream_metrics",
    "reconstruction_metrics",
    "standard_metrics",
]

DEFAULT_DENSE_THRESHOLD = 0.1
_ENCODER_FAMILIES = frozenset({"bert", "roberta", "distilbert"})


class SAELike(Protocol):
    """What the metrics need from an SAE: ``encode`` to latents and ``decode`` back."""

    def encode(self, x_ND: torch.Tensor) -> torch.Tensor: ...

    def decode(self, feats_NF: torch.Tensor) -> torch.Tensor: ...


def _sae_device_dtype(sae: Any) -> tuple[torch.device | None, torch.dtype | None]:
    param = next(sae.parameters(), None) if hasattr(sae, "parameters") else None
    if param is None:
        return None, None
    return param.device, param.dtype


def _encode_decode(sae: Any, x_ND: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Latents and reconstruction of ``x_ND`` (moved to the SAE's device; returned on ``x_ND``'s)."""
    device, dtype = _sae_device_dtype(sae)
    x_in = x_ND.to(device=device or x_ND.device, dtype=dtype or x_ND.dtype)
    feats_NF = sae.encode(x_in)
    x_hat_ND = sae.decode(feats_NF)
    return feats_NF.to(x_ND.device), x_hat_ND.to(device=x_ND.device, dtype=x_ND.dtype)


# ----------------------------------------------------------------------------------------------------
# Reconstruction


def active_counts(feats_NF: torch.Tensor) -> torch.Tensor:
    """How many rows each latent is active in, int64 ``[d_sae]`` on the CPU.

    ``feats_NF`` is dense, or a sparse CSR code holding its active entries only (``Tensor.to_sparse_csr``
    drops the zeros), whose counts come from its column indices without a pass over every entry.
    """
    if feats_NF.layout == torch.sparse_csr:
        return torch.bincount(feats_NF.col_indices().cpu(), minlength=int(feats_NF.shape[-1]))
    return (feats_NF.detach() != 0).cpu().sum(dim=0, dtype=torch.int64)


class ReconstructionAccumulator:
    """Running sums for the reconstruction metrics, updated one batch at a time.

    Only ``O(d_in + d_sae)`` numbers are kept, in float64, whatever the number of tokens.
    """

    def __init__(self, dense_threshold: float = DEFAULT_DENSE_THRESHOLD) -> None:
        if not 0 <= dense_threshold <= 1:
            raise ConfigError(f"dense_threshold={dense_threshold} is not a fraction", "use a value in [0, 1]")
        self.dense_threshold = dense_threshold
        self.n_tokens = 0
        self.d_in = 0
        self.sum_sq_error = 0.0
        self.sum_cosine = 0.0
        self.sum_l2_ratio = 0.0
        self.sum_active = 0
        self.sum_xhat_sq = 0.0
        self.sum_xhat_dot_x = 0.0
        self.mean_D: torch.Tensor | None = None
        self.m2_D: torch.Tensor | None = None
        self.fire_count_F: torch.Tensor | None = None

    def update(self, x_ND: torch.Tensor, x_hat_ND: torch.Tensor, feats_NF: torch.Tensor) -> None:
        """Add a batch: inputs ``x``, reconstructions ``x̂`` and latents (dense or sparse CSR)."""
        n = int(x_ND.shape[0])
        if n == 0:
            return
        x = x_ND.detach().to(torch.float64).cpu()
        x_hat = x_hat_ND.detach().to(torch.float64).cpu()
        self.d_in = int(x.shape[1])
        self.sum_sq_error += float(((x - x_hat) ** 2).sum())
        x_norm = x.norm(dim=-1)
        x_hat_norm = x_hat.norm(dim=-1)
        self.sum_cosine += float(F.cosine_similarity(x, x_hat, dim=-1, eps=1e-12).sum())
        self.sum_l2_ratio += float((x_hat_norm / x_norm.clamp(min=1e-12)).sum())
        self.sum_xhat_sq += float((x_hat_norm**2).sum())
        self.sum_xhat_dot_x += float((x_hat * x).sum())
        counts_F = active_counts(feats_NF)
        self.sum_active += int(counts_F.sum())  # the number of active entries, without a second pass
        self.fire_count_F = counts_F if self.fire_count_F is None else self.fire_count_F + counts_F
        # Chan et al.'s parallel update of the per-dimension mean and sum of squared deviations.
        batch_mean_D = x.mean(dim=0)
        batch_m2_D = ((x - batch_mean_D) ** 2).sum(dim=0)
        if self.mean_D is None or self.m2_D is None:
            self.mean_D, self.m2_D = batch_mean_D, batch_m2_D
        else:
            total = self.n_tokens + n
            delta_D = batch_mean_D - self.mean_D
            self.mean_D = self.mean_D + delta_D * (n / total)
            self.m2_D = self.m2_D + batch_m2_D + delta_D**2 * (self.n_tokens * n / total)
        self.n_tokens += n

    def compute(self) -> dict[str, float | int | None]:
        """The metrics over everything added so far (see the module docstring)."""
        if self.n_tokens == 0 or self.fire_count_F is None or self.m2_D is None:
            raise DataError("no activations to measure", "pass at least one token of held-out text")
        n, d_sae = self.n_tokens, int(self.fire_count_F.shape[0])
        total_variance = float(self.m2_D.sum())
        fvu = self.sum_sq_error / total_variance if total_variance > 0 else None
        frequency_F = self.fire_count_F.to(torch.float64) / n
        l0 = self.sum_active / n
        return {
            "n_tokens": n,
            "d_sae": d_sae,
            "mse": self.sum_sq_error / (n * self.d_in),
            "fvu": fvu,
            "explained_variance": 1 - fvu if fvu is not None else None,
            "l0": l0,
            "l0_normalised": l0 / d_sae,
            "dead_fraction": float((self.fire_count_F == 0).to(torch.float64).mean()),
            "dense_fraction": float((frequency_F > self.dense_threshold).to(torch.float64).mean()),
            "dense_threshold": self.dense_threshold,
            "cosine": self.sum_cosine / n,
            "l2_ratio": self.sum_l2_ratio / n,
            "relative_reconstruction_bias": (
                self.sum_xhat_sq / self.sum_xhat_dot_x if self.sum_xhat_dot_x != 0 else None
            ),
        }


def _iter_rows(acts: torch.Tensor | Iterable[torch.Tensor], batch_size: int) -> Iterator[torch.Tensor]:
    if isinstance(acts, torch.Tensor):
        flat = acts.reshape(-1, acts.shape[-1])
        yield from flat.split(batch_size)
    else:
        for chunk in acts:
            yield from chunk.reshape(-1, chunk.shape[-1]).split(batch_size)


@torch.no_grad()
def reconstruction_metrics(
    sae: SAELike | Any,
    acts_ND: torch.Tensor | Iterable[torch.Tensor],
    dense_threshold: float = DEFAULT_DENSE_THRESHOLD,
    batch_size: int = 4096,
) -> dict[str, float | int | None]:
    """Reconstruction metrics of ``sae`` on activations (a ``[N, D]`` tensor or an iterable of them).

    Returns ``n_tokens``, ``d_sae``, ``mse``, ``fvu``, ``explained_variance``, ``l0``,
    ``l0_normalised``, ``dead_fraction``, ``dense_fraction`` (with ``dense_threshold``), ``cosine``,
    ``l2_ratio`` and ``relative_reconstruction_bias``; a value that is undefined (e.g. FVU of constant
    activations) is None.
    """
    accumulator = ReconstructionAccumulator(dense_threshold)
    for x_ND in _iter_rows(acts_ND, batch_size):
        feats_NF, x_hat_ND = _encode_decode(sae, x_ND)
        accumulator.update(x_ND, x_hat_ND, feats_NF)
    return accumulator.compute()


# ----------------------------------------------------------------------------------------------------
# Downstream


def _splice(
    mask_BT: torch.Tensor, replace: Callable[[torch.Tensor], torch.Tensor]
) -> Callable[[torch.Tensor], torch.Tensor]:
    """A patch function that replaces the hook's value by ``replace(rows)`` at ``mask_BT`` positions only."""

    def patch(value_BTD: torch.Tensor) -> torch.Tensor:
        mask = mask_BT.to(value_BTD.device)
        out_BTD = value_BTD.clone()
        out_BTD[mask] = replace(value_BTD[mask]).to(out_BTD.dtype)
        return out_BTD

    return patch


def _log_probs(module: torch.nn.Module, batch: ContextBatch, device: torch.device) -> torch.Tensor:
    output = module(input_ids=batch.input_ids.to(device), attention_mask=batch.attention_mask.to(device))
    logits = output.logits if hasattr(output, "logits") else output[0]
    return F.log_softmax(logits[:, :-1].float(), dim=-1)


@torch.no_grad()
def downstream_metrics(
    loaded: Any,
    sae: SAELike | Any,
    hook_name: str,
    contexts: Iterable[ContextBatch] | ContextBatch,
) -> dict[str, float | int | None]:
    """Cross-entropy and KL divergence of the model with the SAE spliced in at ``hook_name``.

    ``contexts`` are held-out :class:`ContextBatch` es (e.g. from ``iter_context_batches``). Returns
    ``ce_loss_clean``, ``ce_loss_with_sae``, ``ce_loss_zero_ablation``, ``ce_loss_recovered``,
    ``kl_div_with_sae``, ``kl_div_zero_ablation``, ``kl_div_score`` (``1 - kl_sae / kl_zero``) and
    ``n_predictions``. A score whose denominator is 0 is None.
    """
    return downstream_metrics_many(loaded, [("sae", sae, hook_name)], contexts)["sae"]


@torch.no_grad()
def downstream_metrics_many(
    loaded: Any,
    items: Sequence[tuple[str, SAELike | Any, str]],
    contexts: Iterable[ContextBatch] | ContextBatch,
    total_tokens: int | None = None,
) -> dict[str, dict[str, Any]]:
    """:func:`downstream_metrics` for many ``(name, sae, hook_name)`` on the same contexts.

    The clean pass is shared by every SAE and the zero-ablation pass by every SAE of a hook, so each SAE
    costs one spliced forward pass. With ``total_tokens`` (the text tokens ``contexts`` covers) the loop
    reports its progress (:mod:`pseval._progress`).
    """
    family = str(getattr(loaded, "family", "") or "")
    if family in _ENCODER_FAMILIES:
        raise ModelError(
            f"the cross-entropy metrics need a causal language model, not a {family} encoder",
            "skip the downstream metrics for this model",
        )
    module = as_module(loaded)
    param = next(module.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    hooks = list(dict.fromkeys(hook for _, _, hook in items))
    batches = track(
        [contexts] if isinstance(contexts, ContextBatch) else contexts,
        f"CE loss and KL ({len(items)} SAE{'s' if len(items) != 1 else ''}, {len(items) + len(hooks) + 1} passes)",
        total_tokens or 0,
        "tokens",
        size=_text_tokens,
    )
    downstream: dict[str, dict[str, Any]] = {}
    keys = [f"sae:{name}" for name, _, _ in items] + [f"zero:{hook}" for hook in hooks]
    sums = {key: 0.0 for key in keys} | {f"kl_{key}": 0.0 for key in keys} | {"clean": 0.0}
    n_predictions = 0
    for batch in batches:
        token_mask_BT = batch.token_mask.to(device)
        valid_BT = token_mask_BT[:, :-1] & token_mask_BT[:, 1:]
        if not bool(valid_BT.any()):
            continue
        targets_BT1 = batch.input_ids[:, 1:].to(device).unsqueeze(-1)
        n_predictions += int(valid_BT.sum())
        logp_clean_BTV = _log_probs(module, batch, device)
        sums["clean"] += float(-logp_clean_BTV.gather(-1, targets_BT1).squeeze(-1)[valid_BT].sum())
        p_clean_BTV = logp_clean_BTV.exp()
        patches: list[tuple[str, str, Callable[[torch.Tensor], torch.Tensor]]] = [
            (f"zero:{hook}", hook, _splice(token_mask_BT, torch.zeros_like)) for hook in hooks
        ]
        for name, sae, hook in items:
            patches.append((f"sae:{name}", hook, _splice(token_mask_BT, _reconstruct_with(sae))))
        for key, hook, patch in patches:
            with patch_hook(module, hook, patch):
                logp_BTV = _log_probs(module, batch, device)
            sums[key] += float(-logp_BTV.gather(-1, targets_BT1).squeeze(-1)[valid_BT].sum())
            kl_BT = (p_clean_BTV * (logp_clean_BTV - logp_BTV)).sum(dim=-1)
            sums[f"kl_{key}"] += float(kl_BT[valid_BT].sum())
            del logp_BTV, kl_BT
    if n_predictions == 0:
        raise DataError(
            "no next-token prediction between text tokens to measure", "pass longer held-out contexts"
        )
    clean = sums["clean"] / n_predictions
    for name, _, hook in items:
        sae_ce = sums[f"sae:{name}"] / n_predictions
        zero_ce = sums[f"zero:{hook}"] / n_predictions
        kl_sae = sums[f"kl_sae:{name}"] / n_predictions
        kl_zero = sums[f"kl_zero:{hook}"] / n_predictions
        denominator = zero_ce - clean
        downstream[name] = {
            "n_predictions": n_predictions,
            "ce_loss_clean": clean,
            "ce_loss_with_sae": sae_ce,
            "ce_loss_zero_ablation": zero_ce,
            "ce_loss_recovered": (zero_ce - sae_ce) / denominator if denominator != 0 else None,
            "kl_div_with_sae": kl_sae,
            "kl_div_zero_ablation": kl_zero,
            "kl_div_score": 1 - kl_sae / kl_zero if kl_zero != 0 else None,
        }
    return downstream


# ----------------------------------------------------------------------------------------------------
# Both, on held-out text


class StandardMetrics(BaseModel):
    """The standard metrics of one SAE at one hook, on held-out corpus text."""

    hook_name: str = Field(description="Hook point the SAE reads and, for the CE metrics, writes.")
    corpus: str = Field(description="Corpus the held-out text comes from ('bundled' or a path/dataset name).")
    split: str = Field(default="holdout", description="Corpus split measured on (always the held-out split).")
    context_size: int = Field(description="Tokens per context (BOS included).")
    n_tokens: int = Field(description="Text tokens the reconstruction metrics were measured on.")
    d_sae: int = Field(description="Number of latents.")
    mse: float = metric_field(
        "MSE",
        "Mean over elements of (x - x̂)².",
        direction="lower",
        format="real",
        aggregation="mean over tokens",
        default=...,
    )
    fvu: float | None = metric_field(
        "FVU",
        "Fraction of variance unexplained: Σ‖x - x̂‖² / Σ‖x - mean(x)‖².",
        direction="lower",
        aggregation="pooled over tokens",
        default=...,
    )
    explained_variance: float | None = metric_field(
        "Explained variance", "1 - fvu.", direction="higher", aggregation="pooled over tokens", default=...
    )
    cosine: float = metric_field(
        "Reconstruction cosine",
        "Mean cosine similarity of x and x̂ per token.",
        direction="higher",
        aggregation="mean over tokens",
        default=...,
    )
    l2_ratio: float = metric_field(
        "L2 ratio",
        "Mean ‖x̂‖ / ‖x‖ per token.",
        direction="neither",
        format="real",
        aggregation="mean over tokens",
        default=...,
    )
    relative_reconstruction_bias: float | None = metric_field(
        "Reconstruction bias",
        "Σ‖x̂‖² / Σ x̂·x; below 1 means the SAE shrinks its reconstructions.",
        direction="neither",
        format="real",
        aggregation="pooled over tokens",
        default=...,
    )
    l0: float = metric_field(
        "L0",
        "Mean number of active (non-zero) latents per token.",
        direction="neither",
        format="real",
        aggregation="mean over tokens",
        default=...,
    )
    l0_normalised: float = metric_field(
        "L0 / width", "l0 / d_sae.", direction="neither", aggregation="mean over tokens", default=...
    )
    dead_fraction: float = metric_field(
        "Dead latents",
        "Fraction of latents never active on the sample.",
        direction="lower",
        aggregation="share of latents",
        default=...,
    )
    dense_fraction: float = metric_field(
        "Dense latents", "Fraction of latents active on more than dense_threshold of tokens.",
        direction="lower", aggregation="share of latents", default=...,
    )  # fmt: skip
    dense_threshold: float = Field(description="Firing frequency above which a latent counts as dense.")
    n_predictions: int | None = Field(
        default=None,
        description="Next-token predictions the CE/KL metrics were averaged over (None if skipped).",
    )
    ce_loss_clean: float | None = metric_field(
        "CE loss (clean)",
        "Next-token cross-entropy of the unmodified model.",
        direction="neither",
        format="nats",
        aggregation="mean over predictions",
    )
    ce_loss_with_sae: float | None = metric_field(
        "CE loss with SAE",
        "Cross-entropy with the hook replaced by the SAE reconstruction at text positions.",
        direction="lower",
        format="nats",
        aggregation="mean over predictions",
    )
    ce_loss_zero_ablation: float | None = metric_field(
        "CE loss zero-ablated",
        "Cross-entropy with the hook zeroed at text positions.",
        direction="neither",
        format="nats",
        aggregation="mean over predictions",
    )
    ce_loss_recovered: float | None = metric_field(
        "CE recovered",
        "(zero - sae) / (zero - clean): 1 = lossless, 0 = as bad as zeroing.",
        direction="higher",
        format="real",
        aggregation="pooled over predictions",
    )
    kl_div_with_sae: float | None = metric_field(
        "KL with SAE",
        "Mean KL(clean ‖ with SAE) of the next-token distributions, in nats.",
        direction="lower",
        format="nats",
        aggregation="mean over predictions",
    )
    kl_div_zero_ablation: float | None = metric_field(
        "KL zero-ablated",
        "Mean KL(clean ‖ zero-ablated) of the next-token distributions, in nats.",
        direction="neither",
        format="nats",
        aggregation="mean over predictions",
    )
    kl_div_score: float | None = metric_field(
        "KL score",
        "1 - kl_div_with_sae / kl_div_zero_ablation: 1 = lossless.",
        direction="higher",
        format="real",
        aggregation="pooled over predictions",
    )


@torch.no_grad()
def standard_metrics(
    loaded: Any,
    sae: SAELike | Any,
    hook_name: str,
    corpus: str = BUNDLED,
    n_tokens: int = 16_384,
    n_tokens_ce: int | None = None,
    context_size: int = 128,
    batch_size: int = 8,
    dense_threshold: float = DEFAULT_DENSE_THRESHOLD,
    add_bos: bool | None = None,
) -> StandardMetrics:
    """Reconstruction and downstream metrics of ``sae`` at ``hook_name`` on held-out ``corpus`` text.

    Reconstruction uses ``n_tokens`` text tokens (the forward passes stop after the hook's layer); the
    CE/KL metrics, which need three full forward passes each, use the first ``n_tokens_ce`` of them
    (default: ``min(n_tokens, 4096)``; 0 skips them). ``batch_size`` is in contexts.
    """
    return standard_metrics_many(
        loaded,
        [("sae", sae, hook_name)],
        corpus=corpus,
        n_tokens=n_tokens,
        n_tokens_ce=n_tokens_ce,
        context_size=context_size,
        batch_size=batch_size,
        dense_threshold=dense_threshold,
        add_bos=add_bos,
    )["sae"]


def _text_tokens(batch: ContextBatch) -> int:
    """The tokens of a batch that count towards a token budget (progress units)."""
    return int(batch.token_mask.sum())


def _reconstruct_with(sae: Any) -> Callable[[torch.Tensor], torch.Tensor]:
    """``rows -> sae(rows)``, binding ``sae`` now (not when called)."""

    def reconstruct(rows_ND: torch.Tensor) -> torch.Tensor:
        return _encode_decode(sae, rows_ND)[1]

    return reconstruct


@torch.no_grad()
def standard_metrics_many(
    loaded: Any,
    items: Sequence[tuple[str, SAELike | Any, str]],
    corpus: str = BUNDLED,
    n_tokens: int = 16_384,
    n_tokens_ce: int | None = None,
    context_size: int = 128,
    batch_size: int = 8,
    dense_threshold: float = DEFAULT_DENSE_THRESHOLD,
    add_bos: bool | None = None,
) -> dict[str, StandardMetrics]:
    """:func:`standard_metrics` for many ``(name, sae, hook_name)`` at once, sharing the forward passes.

    Reconstruction: one pass per batch of held-out contexts collects every hook (stopping after the deepest).
    CE/KL: the clean pass is shared by all SAEs and the zero-ablation pass by all SAEs of a hook, so each SAE
    costs one spliced pass instead of three. Results equal per-SAE :func:`standard_metrics` calls.
    """
    if n_tokens < 1:
        raise ConfigError(f"n_tokens={n_tokens} must be positive", "measure on at least one token")
    if not items:
        return {}
    tokenizer = loaded.tokenizer
    module = as_module(loaded)
    param = next(module.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    hooks = list(dict.fromkeys(hook for _, _, hook in items))

    def contexts(limit: int) -> Iterator[ContextBatch]:
        return iter_context_batches(tokenizer, corpus, "holdout", context_size, batch_size, limit, add_bos)

    accumulators = {name: ReconstructionAccumulator(dense_threshold) for name, _, _ in items}
    remaining = n_tokens
    description = f"reconstruction metrics ({len(items)} SAE{'s' if len(items) != 1 else ''})"
    for batch in track(contexts(n_tokens), description, n_tokens, "tokens", size=_text_tokens):
        acts = run_with_cache(module, batch.input_ids.to(device), batch.attention_mask.to(device), hooks)
        mask_BT = batch.token_mask.to(device)
        rows_by_hook = {hook: acts[hook][mask_BT][:remaining] for hook in hooks}
        remaining -= next(iter(rows_by_hook.values())).shape[0]
        for name, sae, hook in items:
            feats_NF, x_hat_ND = _encode_decode(sae, rows_by_hook[hook])
            accumulators[name].update(rows_by_hook[hook], x_hat_ND, feats_NF)
        if remaining <= 0:
            break
    reconstruction = {name: acc.compute() for name, acc in accumulators.items()}

    ce_tokens = min(n_tokens, 4096) if n_tokens_ce is None else n_tokens_ce
    downstream: dict[str, dict[str, Any]] = {name: {} for name, _, _ in items}
    family = str(getattr(loaded, "family", "") or "")
    if ce_tokens > 0 and family not in _ENCODER_FAMILIES:
        downstream = downstream_metrics_many(loaded, items, contexts(ce_tokens), total_tokens=ce_tokens)
    return {
        name: StandardMetrics.model_validate(
            {
                "hook_name": hook,
                "corpus": corpus,
                "context_size": context_size,
                **reconstruction[name],
                **downstream[name],
            }
        )
        for name, _, hook in items
    }
