"""Scoring one SAE on cached prompt activations: codes, PS-Eval metrics, details, baselines, interpretation.

The runner (:mod:`pseval.evals.runner`) builds the pairs, collects the hook vectors once per hook and calls
these functions for each SAE. :func:`score_sae` works over blocks of latents (:mod:`pseval.sae.lazy`,
:mod:`pseval.metrics.blockwise`): no ``prompts × d_sae`` code matrix larger than one block exists, and an
:class:`~pseval.sae.source.SAESource` readable from safetensors is scored without loading its weights.
:func:`encode_all` + :func:`score_codes` is the dense computation it equals.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from pseval.errors import PsevalError
from pseval.evals.breakdowns import breakdown, token_count_breakdown, word_breakdown
from pseval.evals.categories import CodeMetrics, SAEFacts, ThresholdFreeMetrics
from pseval.evals.config import PSEvalConfig
from pseval.evals.dense_control import DENSE_DETAILS_KEY, score_dense_control
from pseval.evals.random_control import compare_with_control, control_details, random_control_stats
from pseval.evals.schema import PairDetail
from pseval.evals.senses import (
    ANCHORS_KEY,
    SENSE_CATEGORY,
    SensePlan,
    code_similarities,
    dense_similarities,
    sense_plan,
    sense_retrieval,
    split_stats,
)
from pseval.evals.versus import VS_DENSE
from pseval.evals.wordform import flat_wordform_metrics, has_wordform_cells, wordform_category
from pseval.metrics.blockwise import CodeStats, code_stats
from pseval.metrics.ps_eval import (
    METRIC_NAMES,
    NO_ACTIVE_FIELDS,
    NO_LATENT,
    predict_same,
    ps_eval_metrics,
    top1_latents,
)
from pseval.metrics.threshold_free import (
    best_threshold,
    cosine_rows,
    ranking_scores,
    roc_auc_interval,
    topk_jaccard,
)
from pseval.metrics.uncertainty import WORD_CLUSTERED, ClusterBootstrap, bootstrap_intervals
from pseval.sae.lazy import InMemoryBlocks, LatentBlocks, SafetensorsBlocks, feature_blocks, lazy_blocks
from pseval.sae.model import SAE
from pseval.sae.source import SAESource
from pseval.sae.threads import small_ops

ENCODE_CHUNK = 1024
"""Rows encoded at once: bounds the (chunk × d_sae) feature matrix in memory."""


@dataclass
class PromptActivations:
    """Hook vectors of the unique prompts of one dataset, and how pairs map onto them."""

    acts: dict[str, torch.Tensor]
    pair_index: list[tuple[int, int]]
    labels: np.ndarray
    pairs: list[Any]
    n_forward_passes: int
    dataset_stats: dict[str, Any] = field(default_factory=dict)
    word_n_tokens: list[int] = field(default_factory=list)
    """Per pair: tokens of ``" " + word`` (empty: all one token); drives the ``by_token_count`` breakdown."""
    senses: Any = None
    """The dataset's :class:`~pseval.data.senses.SenseSet` (within-lemma sense retrieval), or None."""
    item_index: list[int] = field(default_factory=list)
    """Per sense item: its prompt (row of ``acts``)."""


@torch.no_grad()
def encode_all(sae: SAE, acts_ND: torch.Tensor, fold_decoder_norms: bool = False) -> torch.Tensor:
    """SAE codes of every row, encoded in chunks."""
    model_sae = sae.fold_decoder_norms() if fold_decoder_norms else sae
    param = next(model_sae.parameters())
    chunks = [
        model_sae.encode(acts_ND[i : i + ENCODE_CHUNK].to(device=param.device, dtype=param.dtype))
        .float()
        .cpu()
        for i in range(0, acts_ND.shape[0], ENCODE_CHUNK)
    ]
    return torch.cat(chunks) if chunks else torch.zeros(0, sae.cfg.d_sae)


def _round(value: float | None, digits: int = 6) -> float | None:
    return None if value is None else round(float(value), digits)


def score_codes(
    feats_PF: torch.Tensor,
    data: PromptActivations,
    config: PSEvalConfig,
    sae: SAE | None = None,
) -> tuple[dict[str, dict[str, Any]], list[PairDetail], dict[str, Any]]:
    """Metrics, per-pair details and breakdowns of one set of codes (one row per unique prompt).

    The dense computation on the whole code matrix; :func:`score_sae` gets the same numbers block by block.
    """
    index_P, value_P = top1_latents(feats_PF)
    idx1, idx2 = _pair_tensors(data)
    feats_1_NF, feats_2_NF = feats_PF[idx1], feats_PF[idx2]
    jaccard = topk_jaccard(feats_1_NF, feats_2_NF, config.topk_overlap_k).numpy()
    code_cos = cosine_rows(feats_1_NF, feats_2_NF).numpy()
    del feats_1_NF, feats_2_NF
    active_PF = feats_PF > 0
    mean_l0 = float(active_PF.sum(-1).float().mean()) if len(feats_PF) else 0.0
    n_alive = int(active_PF.any(0).sum())
    blocks = InMemoryBlocks(sae) if sae is not None else None
    return _score(index_P, value_P, jaccard, code_cos, mean_l0, n_alive, data, config, blocks)


def _pair_tensors(data: PromptActivations) -> tuple[torch.Tensor, torch.Tensor]:
    idx1 = torch.tensor([a for a, _ in data.pair_index], dtype=torch.long)
    idx2 = torch.tensor([b for _, b in data.pair_index], dtype=torch.long)
    return idx1, idx2


@small_ops()  # short passes over a few hundred rows: one thread
def score_stats(
    stats: CodeStats, data: PromptActivations, config: PSEvalConfig, blocks: LatentBlocks | None = None
) -> tuple[dict[str, dict[str, Any]], list[PairDetail], dict[str, Any]]:
    """:func:`score_codes` from block-wise :class:`~pseval.metrics.blockwise.CodeStats`."""
    idx1, idx2 = _pair_tensors(data)
    jaccard = stats.jaccard(idx1, idx2).numpy()
    code_cos = stats.code_cosine(idx1, idx2).numpy()
    mean_l0 = float(stats.l0_P.float().mean()) if len(stats.l0_P) else 0.0
    return _score(
        stats.top_index_P, stats.top_value_P, jaccard, code_cos, mean_l0, stats.n_latents_active, data, config,
        blocks,
    )  # fmt: skip


def _silent_prompts(index_P: torch.Tensor) -> dict[str, Any]:
    """How many unique prompts have no active latent (their top-1 latent is undefined)."""
    n_silent = int((index_P == NO_LATENT).sum())
    n_prompts = int(index_P.numel())
    return {
        "n_prompts_no_active": n_silent,
        "share_prompts_no_active": n_silent / n_prompts if n_prompts else None,
    }


def _score(
    index_P: torch.Tensor,
    value_P: torch.Tensor,
    jaccard: np.ndarray,
    code_cos: np.ndarray,
    mean_l0: float,
    n_alive: int,
    data: PromptActivations,
    config: PSEvalConfig,
    blocks: LatentBlocks | None,
) -> tuple[dict[str, dict[str, Any]], list[PairDetail], dict[str, Any]]:
    idx1, idx2 = _pair_tensors(data)
    lat1, lat2 = index_P[idx1].numpy(), index_P[idx2].numpy()
    val1, val2 = value_P[idx1].numpy(), value_P[idx2].numpy()
    same = predict_same(lat1, lat2)
    labels = data.labels
    enc_cos, dec_cos = _top_latent_cosines(lat1, lat2, blocks)
    details = [
        PairDetail(
            id=pair.id,
            word=pair.word,
            pos=pair.pos,
            label=int(labels[i]),
            latent_1=int(lat1[i]),
            activation_1=round(float(val1[i]), 6),
            latent_2=int(lat2[i]),
            activation_2=round(float(val2[i]), 6),
            predicted_same=bool(same[i]),
            correct=bool(same[i] == (labels[i] == 1)),
            jaccard=round(float(jaccard[i]), 6),
            code_cosine=round(float(code_cos[i]), 6),
            encoder_cosine=_round(enc_cos[i]),
            decoder_cosine=_round(dec_cos[i]),
            context_1=pair.context_1,
            context_2=pair.context_2,
            span_1=list(pair.span_1),
            span_2=list(pair.span_2),
        )
        for i, pair in enumerate(data.pairs)
    ]
    categories = _pair_categories(lat1, lat2, same, jaccard, code_cos, data, config)
    categories["codes"] = CodeMetrics(
        mean_l0_on_prompts=mean_l0,
        n_latents_active_on_prompts=n_alive,
        n_distinct_top_latents=int(np.unique(np.concatenate([lat1, lat2])).size),
        **_silent_prompts(index_P),
    ).model_dump()
    unstructured = {
        "by_pos": breakdown(details, lambda r: r.pos),
        "by_word": word_breakdown(details),
    }
    if any(n > 1 for n in data.word_n_tokens):
        unstructured |= token_count_breakdown(details, data.pairs, data.word_n_tokens, labels, same, config)
    return categories, details, unstructured


def _top_latent_cosines(
    lat1: np.ndarray, lat2: np.ndarray, blocks: LatentBlocks | None
) -> tuple[list[float | None], list[float | None]]:
    """Per pair: encoder and decoder cosine of the two top latents; None where either context has none."""
    enc_cos: list[float | None] = [None] * len(lat1)
    dec_cos: list[float | None] = [None] * len(lat1)
    if blocks is not None:
        active = (lat1 != NO_LATENT) & (lat2 != NO_LATENT)
        if active.any():
            a, b = lat1[active].tolist(), lat2[active].tolist()
            e = cosine_rows(*(blocks.latent_rows("W_enc", ids).float().cpu() for ids in (a, b))).tolist()
            d = cosine_rows(*(blocks.latent_rows("W_dec", ids).float().cpu() for ids in (a, b))).tolist()
            for j, i in enumerate(np.flatnonzero(active)):
                enc_cos[i], dec_cos[i] = e[j], d[j]
    return enc_cos, dec_cos


def _pair_categories(
    lat1: np.ndarray,
    lat2: np.ndarray,
    same: np.ndarray,
    jaccard: np.ndarray,
    code_cos: np.ndarray,
    data: PromptActivations,
    config: PSEvalConfig,
) -> dict[str, dict[str, Any]]:
    """``ps_eval``, its word-clustered intervals and ``threshold_free``: the categories read from the pairs."""
    labels = data.labels
    words = [pair.word for pair in data.pairs]
    boot = ClusterBootstrap(len(words), words, config.bootstrap_resamples, config.seed)
    ci = bootstrap_intervals(
        labels,
        same,
        n_resamples=config.bootstrap_resamples,
        confidence_level=config.confidence_level,
        seed=config.seed,
        clusters=words,
    )
    jac = ranking_scores(labels, jaccard)
    cos = ranking_scores(labels, code_cos)
    jac_ci = roc_auc_interval(labels, jaccard, boot, config.confidence_level)
    cos_ci = roc_auc_interval(labels, code_cos, boot, config.confidence_level)
    return {
        "ps_eval": ps_eval_metrics(labels, lat1, lat2).model_dump(),
        "ps_eval_ci": {
            f"{name}_{side}": getattr(interval, side)
            for name, interval in ci.items()
            for side in ("low", "high")
        }
        | {
            "confidence_level": config.confidence_level,
            "n_resamples": config.bootstrap_resamples,
            "interval_method": WORD_CLUSTERED,
        },
        "threshold_free": ThresholdFreeMetrics(
            topk_overlap_k=config.topk_overlap_k,
            jaccard_roc_auc=jac.roc_auc,
            jaccard_roc_auc_low=jac_ci.low,
            jaccard_roc_auc_high=jac_ci.high,
            jaccard_average_precision=jac.average_precision,
            code_cosine_roc_auc=cos.roc_auc,
            code_cosine_roc_auc_low=cos_ci.low,
            code_cosine_roc_auc_high=cos_ci.high,
            code_cosine_average_precision=cos.average_precision,
            interval_method=WORD_CLUSTERED,
        ).model_dump(),
    }


def dense_baseline(held_out: PromptActivations, data: PromptActivations, hook: str) -> dict[str, Any]:
    """Raw activations: cosine of the two contexts' hook vectors, thresholded at the held-out best threshold."""

    def cosines(d: PromptActivations) -> np.ndarray:
        acts = d.acts[hook]
        i1 = torch.tensor([a for a, _ in d.pair_index], dtype=torch.long)
        i2 = torch.tensor([b for _, b in d.pair_index], dtype=torch.long)
        return cosine_rows(acts[i1], acts[i2]).numpy()

    threshold = best_threshold(held_out.labels, cosines(held_out))
    scores = cosines(data)
    same = scores >= threshold
    from pseval.metrics.ps_eval import confusion_counts, metrics_from_counts

    metrics = metrics_from_counts(*confusion_counts(data.labels, same))
    ranking = ranking_scores(data.labels, scores)
    return {
        **{k: v for k, v in metrics.model_dump().items() if k not in NO_ACTIVE_FIELDS},
        "threshold": threshold,
        "roc_auc": ranking.roc_auc,
        "average_precision": ranking.average_precision,
        "cosine_mean": float(scores.mean()) if scores.size else None,
        "cosine_std": float(scores.std()) if scores.size else None,
    }


def dense_roc_auc_interval(data: PromptActivations, hook: str, config: PSEvalConfig) -> dict[str, Any]:
    """Word-clustered bootstrap interval of the dense cosine's ROC-AUC (keys ``roc_auc_low``/``_high``)."""
    from pseval.evals.threshold_cv import pair_cosines

    words = [pair.word for pair in data.pairs]
    boot = ClusterBootstrap(len(words), words, config.bootstrap_resamples, config.seed)
    interval = roc_auc_interval(
        data.labels, pair_cosines(data.acts[hook], data.pair_index), boot, config.confidence_level
    )
    return {"roc_auc_low": interval.low, "roc_auc_high": interval.high, "interval_method": WORD_CLUSTERED}


def logit_lens(
    loaded: Any, sae: SAE | LatentBlocks, latents: Sequence[int], top_n: int = 8
) -> dict[str, list[str]]:
    """Top tokens promoted by each latent's decoder direction through the final norm and the unembedding."""
    from pseval.models.hooks import final_norm_and_unembed

    latents = sorted({int(i) for i in latents if int(i) != NO_LATENT})
    if not latents:
        return {}
    try:
        norm, unembed = final_norm_and_unembed(loaded.model)
    except PsevalError:
        return {}
    with torch.no_grad():
        blocks = InMemoryBlocks(sae) if isinstance(sae, SAE) else sae
        W_dec_LD = blocks.latent_rows("W_dec", latents)
        param = next(loaded.model.parameters())
        logits_LV = unembed(norm(W_dec_LD.to(device=param.device, dtype=param.dtype).unsqueeze(0))).squeeze(0)
        top = logits_LV.float().topk(top_n, dim=-1).indices.cpu().tolist()
    tokenizer = loaded.tokenizer
    return {str(lat): [tokenizer.decode([t]) for t in row] for lat, row in zip(latents, top, strict=True)}


def interpret(
    loaded: Any,
    sae: SAE | LatentBlocks,
    hook: str,
    latents: Sequence[int],
    details: Sequence[PairDetail],
    config: PSEvalConfig,
    categories: dict[str, dict[str, Any]],
    unstructured: dict[str, Any],
    status: Callable[[str], None],
    device: str | torch.device = "cpu",
) -> None:
    """Firing frequency and top corpus contexts of the chosen latents, from the training activation cache.

    Reads the cached corpus activations of the hook (the same cache the trainer fills, so no second model
    pass when the SAE was trained by pseval); a breakdown of PS-Eval by how often the chosen latent fires.
    ``sae`` may be the latent blocks of an SAE read lazily: they are encoded block by block on ``device``.
    """
    from pseval.evals.interpret import corpus_latent_stats, frequency_breakdown

    status(
        f"top contexts and firing frequencies of the chosen latents on {config.interpret_tokens:,} corpus tokens"
    )
    stats = corpus_latent_stats(loaded, sae, hook, latents, n_tokens=config.interpret_tokens, device=device)
    categories["latent_frequency"] = dict(stats.frequency_all)
    unstructured["firing_frequency"] = stats.firing_frequency
    unstructured["top_contexts"] = {k: [c.model_dump() for c in v] for k, v in stats.top_contexts.items()}
    unstructured["by_frequency"] = frequency_breakdown(details, stats.firing_frequency)


RANDOM_SAE_METRICS = frozenset({*METRIC_NAMES, *NO_ACTIVE_FIELDS})
"""The control metrics reported for random and trained controls (their intervals are not counted here)."""


def _score_random_control(
    blocks: LatentBlocks,
    data: PromptActivations,
    hook: str,
    config: PSEvalConfig,
    run_on: torch.device,
    details: Sequence[PairDetail],
    categories: dict[str, dict[str, Any]],
    plan: SensePlan | None = None,
) -> tuple[list[PairDetail], dict[str, list[np.ndarray]]]:
    """Score the random control on centred inputs; add its metrics and the paired comparison to ``categories``.

    Returns the control's per-pair rows and, when ``plan`` holds within-lemma sense pairs, its similarity
    matrices for them (scored in the same block-wise pass).
    """
    all_pairs = data.pair_index + (plan.pairs if plan is not None else [])
    all_stats, centring = random_control_stats(
        blocks, data.acts[hook], all_pairs, config.topk_overlap_k, config.seed, run_on
    )
    stats, sense_dot = split_stats(all_stats, len(data.pair_index))
    sense_sims = code_similarities(stats, sense_dot, plan, "random_sae") if plan is not None else {}
    scored, random_details, _ = score_stats(stats, data, config.model_copy(update={"bootstrap_resamples": 0}))
    words = [pair.word for pair in data.pairs]
    same = [d.predicted_same for d in random_details]
    ci = bootstrap_intervals(
        data.labels, same, config.bootstrap_resamples, config.confidence_level, config.seed, clusters=words
    )
    categories["baseline_random_sae"] = {
        **{k: v for k, v in scored["ps_eval"].items() if k in RANDOM_SAE_METRICS},
        **{f"{name}_{side}": getattr(ci[name], side)
           for name in ("youden_j", "balanced_accuracy") for side in ("low", "high")},
        "centring": centring,
        "interval_method": WORD_CLUSTERED,
    }  # fmt: skip
    categories["vs_random_sae"] = compare_with_control(
        data.labels,
        [d.predicted_same for d in details],
        same,
        words,
        config.bootstrap_resamples,
        config.confidence_level,
        config.seed,
        centring,
    ).model_dump()
    return random_details, sense_sims


def score_controls(
    controls: dict[str, SAE], data: PromptActivations, hook: str, config: PSEvalConfig
) -> dict[str, dict[str, Any]]:
    """Trained controls (``baseline_frozen_decoder``, ``baseline_frozen_encoder``), scored as the random SAE."""
    from pseval.training.controls import control_summary

    out: dict[str, dict[str, Any]] = {}
    for category, control in controls.items():
        acts_PD = data.acts[hook]
        stats = code_stats(
            feature_blocks(InMemoryBlocks(control), acts_PD, device=control.device),
            acts_PD.shape[0],
            data.pair_index,
            config.topk_overlap_k,
        )
        scored, _, _ = score_stats(stats, data, config.model_copy(update={"bootstrap_resamples": 0}))
        metrics = {k: v for k, v in scored["ps_eval"].items() if k in RANDOM_SAE_METRICS}
        out[category] = control_summary(control, metrics, scored["codes"]["mean_l0_on_prompts"])
    return out


def score_sae(
    loaded: Any,
    sae: SAE | SAESource,
    hook: str,
    data: PromptActivations,
    config: PSEvalConfig,
    held_out: PromptActivations | None = None,
    neuron_acts_PN: torch.Tensor | None = None,
    baselines_by_hook: dict[str, dict[str, Any]] | None = None,
    status: Callable[[str], None] = lambda _msg: None,
    device: str = "cpu",
) -> tuple[dict[str, dict[str, Any]], list[PairDetail], dict[str, Any]]:
    """Everything PS-Eval reports for one SAE at one hook: metrics, details, baselines, interpretation.

    ``sae`` is an SAE, or an :class:`~pseval.sae.source.SAESource`: one whose tensors are readable lazily
    (``source.tensors``) is encoded block by block from its files on ``device`` (in ``config.dtype`` unless
    float32, else the stored dtype), the corpus interpretation (``interpret_tokens``) included, and never
    loaded whole; any other source is loaded. The random-SAE control is drawn block by block from ``config.seed``.
    ``baselines_by_hook`` caches the per-hook dense baseline across the SAEs of one run.
    """
    dtype = config.dtype if config.dtype != "float32" else None
    if isinstance(sae, SAESource) and not sae.blockwise:
        sae = sae.load(device=device, dtype=dtype)
    blocks = lazy_blocks(sae, dtype)
    run_on = sae.device if isinstance(sae, SAE) else torch.device(device)
    cfg = blocks.cfg
    acts_PD = data.acts[hook]
    n_prompts, k = acts_PD.shape[0], config.topk_overlap_k
    # Within-lemma sense retrieval rides on the same block-wise pass: its pairs follow the PS-Eval pairs.
    plan = sense_plan(data)
    all_pairs = data.pair_index + (plan.pairs if plan is not None else [])
    n_pairs = len(data.pair_index)
    stream = feature_blocks(blocks, acts_PD, config.fold_decoder_norms, device=run_on)
    # The running top-1's encoder columns are kept from each slab read: the pairs' cosines read no second W_enc.
    keep = blocks.keep_top_columns if isinstance(blocks, SafetensorsBlocks) else None
    stats, sense_dot = split_stats(code_stats(stream, n_prompts, all_pairs, k, after_block=keep), n_pairs)
    sense_sims = code_similarities(stats, sense_dot, plan, "sae") if plan is not None else {}
    categories, details, unstructured = score_stats(stats, data, config, blocks)
    del stats
    categories["sae"] = SAEFacts(
        d_in=cfg.d_in, d_sae=cfg.d_sae, architecture=cfg.architecture, expansion_ratio=cfg.d_sae / cfg.d_in
    ).model_dump()
    random_details: list[PairDetail] | None = None
    if config.baselines and held_out is not None:
        cache = baselines_by_hook if baselines_by_hook is not None else {}
        if hook not in cache:
            cache[hook] = {"baseline_dense": dense_baseline(held_out, data, hook)}
        dense = cache[hook].get("baseline_dense")
        if dense is not None and "roc_auc_low" not in dense:
            dense.update(dense_roc_auc_interval(data, hook, config))
        categories.update(cache[hook])
        if neuron_acts_PN is not None:
            from pseval.evals.neuron_baseline import neuron_baseline_metrics

            categories["baseline_neurons"] = neuron_baseline_metrics(
                neuron_acts_PN, data.pair_index, data.labels
            )
        random_details, random_sense_sims = _score_random_control(
            blocks, data, hook, config, run_on, details, categories, plan
        )
        unstructured["random_sae_details"] = control_details(random_details)
        sense_sims.update(random_sense_sims)
        if dense is not None:
            categories[VS_DENSE], unstructured[DENSE_DETAILS_KEY] = score_dense_control(
                acts_PD, data.pair_index, data.labels, data.pairs, [d.predicted_same for d in details],
                dense, config, in_sample=held_out is data,
            )  # fmt: skip
    if plan is not None:
        sense_sims.update(dense_similarities(acts_PD, plan))
        categories[SENSE_CATEGORY], anchors = sense_retrieval(plan, sense_sims, config)
        unstructured[ANCHORS_KEY] = anchors
    if has_wordform_cells(data.pairs):
        wordform = wordform_category(data, hook, config, details, random_details)
        unstructured["wordform"] = wordform  # nested; the metric categories must stay flat (SAEBench)
        categories.update(flat_wordform_metrics(wordform))
    used = [d.latent_1 for d in details] + [d.latent_2 for d in details]
    if config.logit_lens_tokens > 0:
        unstructured["logit_lens"] = logit_lens(loaded, blocks, used, top_n=config.logit_lens_tokens)
    if config.interpret_tokens > 0:
        # A lazily read SAE is interpreted block by block too, never loaded whole.
        encoder = sae if isinstance(sae, SAE) else blocks
        interpret(loaded, encoder, hook, used, details, config, categories, unstructured, status, run_on)
    return categories, details, unstructured
