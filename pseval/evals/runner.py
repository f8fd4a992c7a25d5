"""The PS-Eval runner: one activation pass per hook, however many SAEs are evaluated.

Flow: resolve and load the SAEs (cheap, so bad paths fail before the model loads) → skip the SAEs whose
result file already exists for the same configuration → load the model and check every SAE fits its hook →
build the pairs and their unique prompts → collect every needed hook in one batched forward pass (cached on
disk) → score each SAE on the cached vectors → write one JSON file per SAE, atomically.
"""

from __future__ import annotations

import importlib.metadata
import re
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pseval._io import write_json_atomic
from pseval._version import __version__
from pseval.errors import ConfigError, PsevalError, SAEError
from pseval.evals.config import PSEvalConfig
from pseval.evals.schema import EVAL_TYPE_ID, PairDetail, PSEvalResult
from pseval.metrics.ps_eval import NO_LATENT, predict_same, ps_eval_metrics, top1_latents
from pseval.metrics.threshold_free import best_threshold, cosine_rows, ranking_scores, topk_jaccard
from pseval.metrics.uncertainty import bootstrap_intervals
from pseval.sae.model import SAE

ENCODE_CHUNK = 1024
"""Rows encoded at once: bounds the (chunk × d_sae) feature matrix in memory."""


@dataclass
class NamedSAE:
    """An SAE with the name its result file is called by and where it came from."""

    name: str
    sae: SAE
    path: str | None = None
    release: str | None = None
    sae_id: str | None = None


@dataclass
class PromptActivations:
    """Hook vectors of the unique prompts of one dataset, and how pairs map onto them."""

    acts: dict[str, torch.Tensor]
    pair_index: list[tuple[int, int]]
    labels: np.ndarray
    pairs: list[Any]
    n_forward_passes: int
    dataset_stats: dict[str, Any] = field(default_factory=dict)


def sanitize_name(text: str) -> str:
    """A file-name-safe version of an SAE name."""
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", text).strip("_") or "sae"


def resolve_saes(saes: Sequence[Any], device: str = "cpu") -> list[NamedSAE]:
    """Load every SAE spec (path, ``saelens:RELEASE/ID``, SAE object or ``(name, SAE)``) and name it uniquely."""
    from pseval.sae.formats import load_sae

    named: list[NamedSAE] = []
    for spec in saes:
        if isinstance(spec, NamedSAE):
            named.append(spec)
        elif isinstance(spec, SAE):
            named.append(NamedSAE(name=f"sae{len(named)}", sae=spec))
        elif isinstance(spec, tuple):
            name, sae = spec
            named.append(NamedSAE(name=sanitize_name(str(name)), sae=sae))
        else:
            text = str(spec)
            sae = load_sae(text, device=device)
            if text.startswith("saelens:"):
                release, _, sae_id = text[len("saelens:") :].partition("/")
                named.append(
                    NamedSAE(
                        name=sanitize_name(f"{release}_{sae_id}"),
                        sae=sae,
                        path=text,
                        release=release,
                        sae_id=sae_id,
                    )
                )
            else:
                path = Path(text)
                stem = path.stem if path.is_file() else path.name
                named.append(NamedSAE(name=sanitize_name(stem), sae=sae, path=str(path.resolve())))
    seen: dict[str, int] = defaultdict(int)
    for item in named:
        seen[item.name] += 1
        if seen[item.name] > 1:
            item.name = f"{item.name}-{seen[item.name]}"
    return named


def hook_for(item: NamedSAE, hook_name: str | None) -> str:
    """The hook an SAE is applied to: the explicit one, else the one its config records."""
    hook = hook_name or item.sae.cfg.hook_name
    if not hook:
        raise ConfigError(
            f"the SAE {item.name!r} records no hook point",
            "pass one with --hook, e.g. --hook blocks.12.hook_resid_post",
        )
    return hook


def result_path(output_folder: str | Path, name: str) -> Path:
    """SAEBench's layout: ``<output>/ps_eval/<name>_eval_results.json``."""
    return Path(output_folder) / EVAL_TYPE_ID / f"{name}_eval_results.json"


def _finished(
    path: Path, config: PSEvalConfig, hook: str, model_name: str, standard_metrics_tokens: int = 0
) -> PSEvalResult | None:
    """The stored result when it was produced by the same configuration, else ``None``."""
    if not path.exists():
        return None
    try:
        stored = PSEvalResult.model_validate_json(path.read_text(encoding="utf-8"))
    except Exception:
        return None
    if stored.eval_config != config or stored.hook_name != hook or stored.model_name != model_name:
        return None
    if standard_metrics_tokens > 0:
        standard = stored.eval_result_metrics.get("standard") or {}
        if standard.get("n_tokens") != standard_metrics_tokens:
            return None
    return stored


def check_sae_fits(loaded: Any, item: NamedSAE, hook: str) -> None:
    """Fail early, naming both numbers, when the SAE's input width differs from the hook's."""
    from pseval.models.hooks import hook_width

    width = hook_width(loaded.model, hook)
    if item.sae.cfg.d_in != width:
        raise SAEError(
            f"the SAE {item.name!r} expects d_in={item.sae.cfg.d_in} but {hook} of {loaded.name} has width {width}",
            "pass an SAE trained on this model and hook, or the hook it was trained on with --hook",
        )


def prompt_activations(
    loaded: Any, config: PSEvalConfig, hooks: Sequence[str], split: str | None = None
) -> PromptActivations:
    """Build the pairs and unique prompts of a split and collect every hook in one batched pass."""
    from pseval.activations.collect import collect_activations
    from pseval.data.datasets import load_dataset
    from pseval.data.prompts import build_prompts

    split = split or config.split
    dataset = load_dataset(
        loaded.tokenizer,
        name=config.dataset,
        split=split,
        balance=config.balance,
        seed=config.seed,
        max_pairs=config.max_pairs,
    )
    prompt_set = build_prompts(
        loaded.tokenizer,
        dataset,
        template=config.template,
        position=config.position,
        prepend_bos=config.prepend_bos,
    )
    cache_key = {**config.cache_key(), "split": split}
    result = collect_activations(
        loaded,
        prompt_set.prompts,
        list(hooks),
        batch_size=config.batch_size,
        cache=config.cache_activations,
        cache_key=cache_key,
    )
    labels = np.array([pair.label for pair in dataset.pairs], dtype=np.int64)
    return PromptActivations(
        acts=result.acts,
        pair_index=list(prompt_set.pair_index),
        labels=labels,
        pairs=list(dataset.pairs),
        n_forward_passes=result.n_forward_passes,
        dataset_stats=dataset.stats.model_dump(mode="json"),
    )


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


def breakdown(details: Sequence[PairDetail], key: Callable[[PairDetail], str]) -> dict[str, dict[str, Any]]:
    """PS-Eval metrics per group of pairs (e.g. per part of speech)."""
    groups: dict[str, list[PairDetail]] = defaultdict(list)
    for row in details:
        groups[key(row)].append(row)
    out: dict[str, dict[str, Any]] = {}
    for group, rows in sorted(groups.items()):
        metrics = ps_eval_metrics(
            [r.label for r in rows], [r.latent_1 for r in rows], [r.latent_2 for r in rows]
        )
        out[group] = metrics.model_dump()
    return out


def word_breakdown(details: Sequence[PairDetail]) -> dict[str, dict[str, Any]]:
    """Per word: pairs, how often both contexts got one latent, and the accuracy."""
    groups: dict[str, list[PairDetail]] = defaultdict(list)
    for row in details:
        groups[row.word].append(row)
    return {
        word: {
            "n_pairs": len(rows),
            "n_same_meaning": sum(r.label for r in rows),
            "share_same_latent": float(np.mean([r.predicted_same for r in rows])),
            "accuracy": float(np.mean([r.correct for r in rows])),
            "latents": sorted({r.latent_1 for r in rows} | {r.latent_2 for r in rows}),
        }
        for word, rows in sorted(groups.items())
    }


def score_codes(
    feats_PF: torch.Tensor,
    data: PromptActivations,
    config: PSEvalConfig,
    sae: SAE | None = None,
) -> tuple[dict[str, dict[str, Any]], list[PairDetail], dict[str, Any]]:
    """Metrics, per-pair details and breakdowns of one set of codes (one row per unique prompt)."""
    index_P, value_P = top1_latents(feats_PF)
    idx1 = torch.tensor([a for a, _ in data.pair_index], dtype=torch.long)
    idx2 = torch.tensor([b for _, b in data.pair_index], dtype=torch.long)
    lat1, lat2 = index_P[idx1].numpy(), index_P[idx2].numpy()
    val1, val2 = value_P[idx1].numpy(), value_P[idx2].numpy()
    same = predict_same(lat1, lat2)
    labels = data.labels
    metrics = ps_eval_metrics(labels, lat1, lat2)
    feats_1_NF, feats_2_NF = feats_PF[idx1], feats_PF[idx2]
    jaccard = topk_jaccard(feats_1_NF, feats_2_NF, config.topk_overlap_k).numpy()
    code_cos = cosine_rows(feats_1_NF, feats_2_NF).numpy()
    del feats_1_NF, feats_2_NF

    enc_cos: list[float | None] = [None] * len(lat1)
    dec_cos: list[float | None] = [None] * len(lat1)
    if sae is not None:
        active = (lat1 != NO_LATENT) & (lat2 != NO_LATENT)
        if active.any():
            a = torch.as_tensor(lat1[active])
            b = torch.as_tensor(lat2[active])
            W_enc_FD = sae.W_enc.detach().float().T
            W_dec_FD = sae.W_dec.detach().float()
            e = cosine_rows(W_enc_FD[a], W_enc_FD[b]).tolist()
            d = cosine_rows(W_dec_FD[a], W_dec_FD[b]).tolist()
            for j, i in enumerate(np.flatnonzero(active)):
                enc_cos[i], dec_cos[i] = e[j], d[j]

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
    ci = bootstrap_intervals(
        labels,
        same,
        n_resamples=config.bootstrap_resamples,
        confidence_level=config.confidence_level,
        seed=config.seed,
    )
    jac = ranking_scores(labels, jaccard)
    cos = ranking_scores(labels, code_cos)
    active_PF = feats_PF > 0
    alive = active_PF.any(0)
    categories: dict[str, dict[str, Any]] = {
        "ps_eval": metrics.model_dump(),
        "ps_eval_ci": {
            f"{name}_{side}": getattr(interval, side)
            for name, interval in ci.items()
            for side in ("low", "high")
        }
        | {"confidence_level": config.confidence_level, "n_resamples": config.bootstrap_resamples},
        "threshold_free": {
            "topk_overlap_k": config.topk_overlap_k,
            "jaccard_roc_auc": jac.roc_auc,
            "jaccard_average_precision": jac.average_precision,
            "code_cosine_roc_auc": cos.roc_auc,
            "code_cosine_average_precision": cos.average_precision,
        },
        "codes": {
            "mean_l0_on_prompts": float(active_PF.sum(-1).float().mean()) if len(feats_PF) else 0.0,
            "n_latents_active_on_prompts": int(alive.sum()),
            "n_distinct_top_latents": int(np.unique(np.concatenate([lat1, lat2])).size),
        },
    }
    unstructured = {
        "by_pos": breakdown(details, lambda r: r.pos),
        "by_word": word_breakdown(details),
    }
    return categories, details, unstructured


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
        **{k: v for k, v in metrics.model_dump().items() if k != "n_pairs_no_active"},
        "threshold": threshold,
        "roc_auc": ranking.roc_auc,
        "average_precision": ranking.average_precision,
        "cosine_mean": float(scores.mean()) if scores.size else None,
        "cosine_std": float(scores.std()) if scores.size else None,
    }


def logit_lens(loaded: Any, sae: SAE, latents: Sequence[int], top_n: int = 8) -> dict[str, list[str]]:
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
        W_dec_LD = sae.W_dec.detach()[latents]
        param = next(loaded.model.parameters())
        logits_LV = unembed(norm(W_dec_LD.to(device=param.device, dtype=param.dtype).unsqueeze(0))).squeeze(0)
        top = logits_LV.float().topk(top_n, dim=-1).indices.cpu().tolist()
    tokenizer = loaded.tokenizer
    return {str(lat): [tokenizer.decode([t]) for t in row] for lat, row in zip(latents, top, strict=True)}


def interpret(
    loaded: Any,
    sae: SAE,
    hook: str,
    latents: Sequence[int],
    details: Sequence[PairDetail],
    config: PSEvalConfig,
    categories: dict[str, dict[str, Any]],
    unstructured: dict[str, Any],
    status: Callable[[str], None],
) -> None:
    """Firing frequency and top corpus contexts of the chosen latents, from the training activation cache.

    Reads the cached corpus activations of the hook (the same cache the trainer fills, so no second model
    pass when the SAE was trained by pseval); a breakdown of PS-Eval by how often the chosen latent fires.
    """
    from pseval.evals.interpret import corpus_latent_stats, frequency_breakdown

    status(
        f"top contexts and firing frequencies of the chosen latents on {config.interpret_tokens:,} corpus tokens"
    )
    stats = corpus_latent_stats(loaded, sae, hook, latents, n_tokens=config.interpret_tokens)
    categories["latent_frequency"] = dict(stats.frequency_all)
    unstructured["firing_frequency"] = stats.firing_frequency
    unstructured["top_contexts"] = {k: [c.model_dump() for c in v] for k, v in stats.top_contexts.items()}
    unstructured["by_frequency"] = frequency_breakdown(details, stats.firing_frequency)


def _sae_lens_version() -> str | None:
    try:
        return importlib.metadata.version("sae-lens")
    except importlib.metadata.PackageNotFoundError:
        return None


def evaluate(
    model: Any = "smollm2-135m",
    saes: Sequence[Any] = (),
    config: PSEvalConfig | None = None,
    hook_name: str | None = None,
    output_folder: str | Path | None = "results",
    force_rerun: bool = False,
    standard_metrics_tokens: int = 0,
    standard_metrics_ce_tokens: int | None = None,
    on_status: Callable[[str], None] | None = None,
    run_log: dict[str, list[str]] | None = None,
    **overrides: Any,
) -> list[PSEvalResult]:
    """Evaluate SAEs with PS-Eval, one activation pass per hook, and return one result per SAE.

    ``model`` is an alias, Hugging Face id or folder, or an already loaded ``LoadedModel``. ``saes`` are paths,
    ``saelens:RELEASE/ID`` specs, ``SAE`` objects or ``(name, SAE)`` tuples. ``hook_name`` overrides the hook
    recorded in each SAE's config. With ``output_folder``, one JSON file per SAE is written there, and SAEs
    whose file already holds a result of the same configuration are skipped unless ``force_rerun``.
    ``standard_metrics_tokens > 0`` adds MSE/L0/CE-recovered measured on that many held-out corpus tokens
    (CE loss and KL on ``standard_metrics_ce_tokens`` of them; default ``min(tokens, 4096)``).
    ``run_log``, when given, receives the names of the SAEs ``evaluated`` and ``skipped``.
    """
    status = on_status or (lambda _msg: None)
    if config is None:
        model_name = model if isinstance(model, str) else getattr(model, "name", "model")
        config = PSEvalConfig(model_name=str(model_name), **overrides)
    elif overrides:
        config = config.model_copy(update=overrides)
    if not saes:
        raise ConfigError("no SAE to evaluate", "pass at least one SAE with --sae PATH")

    named = resolve_saes(saes, device="cpu")
    hooks = {item.name: hook_for(item, hook_name) for item in named}

    finished: dict[str, PSEvalResult] = {}
    if output_folder is not None and not force_rerun:
        for item in named:
            stored = _finished(
                result_path(output_folder, item.name),
                config,
                hooks[item.name],
                config.model_name,
                standard_metrics_tokens,
            )
            if stored is not None:
                finished[item.name] = stored
                status(f"skip {item.name}: finished result found (use --force-rerun to redo)")
    todo = [item for item in named if item.name not in finished]
    if run_log is not None:
        run_log["skipped"] = [item.name for item in named if item.name in finished]
        run_log["evaluated"] = [item.name for item in todo]
    if not todo:
        return [finished[item.name] for item in named]

    from pseval.models.hooks import parse_hook_name
    from pseval.models.loading import load_model

    loaded = (
        load_model(config.model_name, device=config.device, dtype=config.dtype)
        if isinstance(model, str)
        else model
    )
    for item in todo:
        parse_hook_name(hooks[item.name])
        check_sae_fits(loaded, item, hooks[item.name])
    needed_hooks = sorted({hooks[item.name] for item in todo})
    if config.baselines:
        from pseval.evals.neuron_baseline import neuron_hook_for

        neuron_hooks = {h: nh for h in needed_hooks if (nh := neuron_hook_for(h)) is not None}
    else:
        neuron_hooks = {}
    collected_hooks = sorted(set(needed_hooks) | set(neuron_hooks.values()))

    status(f"collecting {len(collected_hooks)} hook(s) on the {config.split} split")
    data = prompt_activations(loaded, config, collected_hooks)
    held_out = None
    if config.baselines:
        held_out_split = "dev" if config.split in ("test", "train") else "train"
        status(f"collecting the held-out {held_out_split} split for the dense baseline threshold")
        held_out = prompt_activations(loaded, config, needed_hooks, split=held_out_split)

    standard_by_name: dict[str, Any] = {}
    if standard_metrics_tokens > 0:
        from pseval.metrics.standard import standard_metrics_many

        status(f"standard metrics of {len(todo)} SAE(s) on {standard_metrics_tokens:,} held-out tokens")
        standard_by_name = standard_metrics_many(
            loaded,
            [(item.name, item.sae, hooks[item.name]) for item in todo],
            n_tokens=standard_metrics_tokens,
            n_tokens_ce=standard_metrics_ce_tokens,
        )

    baselines_by_hook: dict[str, dict[str, Any]] = {}
    results: list[PSEvalResult] = []
    fresh: dict[str, PSEvalResult] = {}
    for item in todo:
        hook = hooks[item.name]
        status(f"scoring {item.name} at {hook}")
        acts_PD = data.acts[hook]
        feats_PF = encode_all(item.sae, acts_PD, config.fold_decoder_norms)
        categories, details, unstructured = score_codes(feats_PF, data, config, item.sae)
        categories["sae"] = {
            "d_in": item.sae.cfg.d_in,
            "d_sae": item.sae.cfg.d_sae,
            "architecture": item.sae.cfg.architecture,
            "expansion_ratio": item.sae.cfg.d_sae / item.sae.cfg.d_in,
        }
        if config.baselines and held_out is not None:
            if hook not in baselines_by_hook:
                baselines_by_hook[hook] = {"baseline_dense": dense_baseline(held_out, data, hook)}
            categories.update(baselines_by_hook[hook])
            if hook in neuron_hooks:
                from pseval.evals.neuron_baseline import neuron_baseline_metrics

                categories["baseline_neurons"] = neuron_baseline_metrics(
                    data.acts[neuron_hooks[hook]], data.pair_index, data.labels
                )
            random_sae = SAE.create_random(item.sae.cfg, seed=config.seed)
            random_feats = encode_all(random_sae, acts_PD)
            random_categories, _, _ = score_codes(
                random_feats, data, config.model_copy(update={"bootstrap_resamples": 0})
            )
            categories["baseline_random_sae"] = {
                k: v
                for k, v in random_categories["ps_eval"].items()
                if k in ("accuracy", "precision", "recall", "specificity", "f1", "n_pairs_no_active")
            }
        if item.name in standard_by_name:
            categories["standard"] = standard_by_name[item.name].model_dump()
        used = [d.latent_1 for d in details] + [d.latent_2 for d in details]
        unstructured["logit_lens"] = logit_lens(loaded, item.sae, used)
        if config.interpret_tokens > 0:
            interpret(loaded, item.sae, hook, used, details, config, categories, unstructured, status)
        result = PSEvalResult(
            eval_type_id=EVAL_TYPE_ID,
            eval_config=config,
            eval_id=str(uuid.uuid4()),
            datetime_epoch_millis=int(time.time() * 1000),
            eval_result_metrics=categories,
            eval_result_details=details,
            eval_result_unstructured=unstructured,
            sae_lens_id=item.sae_id or item.name,
            sae_lens_release_id=item.release,
            sae_lens_version=_sae_lens_version(),
            sae_cfg_dict=item.sae.cfg.model_dump(mode="json"),
            pseval_version=__version__,
            sae_name=item.name,
            sae_path=item.path,
            hook_name=hook,
            model_name=config.model_name,
            model_fingerprint=str(getattr(loaded, "fingerprint", "")),
            dataset_stats=data.dataset_stats,
            n_forward_passes=data.n_forward_passes,
        )
        if output_folder is not None:
            write_json_atomic(result_path(output_folder, item.name), result.model_dump(mode="json"))
        fresh[item.name] = result
    for item in named:
        results.append(finished.get(item.name) or fresh[item.name])
    return results
