"""The PS-Eval runner: one activation pass per input regime, however many SAEs and hooks are evaluated.

Flow, so that every mistake surfaces before the long work starts and memory does not grow with the SAE count:

1. :func:`pseval.evals.plan.plan_run`: open every SAE from its config (no weights read) and parse its hook;
   resolve its input regime (:mod:`pseval.evals.regime`) and its result identity; pick its result file and
   skip it when that file already holds this very result, or stop, naming what differs, when it holds
   another (:mod:`pseval.evals.results_store`); stop when the run's BOS policy contradicts an SAE's config
   (:func:`pseval.evals.site_check.refuse_bos_contradictions`);
2. load the model; check each SAE's width against its hook, its BOS token and its activation processing;
   load the dataset splits; measure each SAE at the site it is read at, and stop when it does not fit it
   (:mod:`pseval.evals.site_check`);
3. per distinct prompt set (SAEs whose regimes give the same token ids share one), collect every hook those
   SAEs need in one batched pass (cached on disk);
4. per SAE, grouped by hook: load its weights, score it (:func:`pseval.evals.scoring.score_sae`), write its
   JSON atomically, free it.
"""

from __future__ import annotations

import contextlib
import gc
import importlib.metadata
import json
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pseval._io import check_writable
from pseval._version import __version__
from pseval.errors import ConfigError, DataError
from pseval.evals.categories import EvalResultMetrics
from pseval.evals.config import PSEvalConfig
from pseval.evals.plan import (
    NamedSAE,
    RunPlan,
    SAEItem,
    _check_weights,
    check_sae_fits,
    decoder_rows_key,
    hook_for,
    open_items,
    plan_run,
    reads_whole_decoder,
    resolve_saes,
    result_identity,
    sanitize_name,
)
from pseval.evals.regime import InputRegime, check_processing, processed
from pseval.evals.results_store import result_path, write_result
from pseval.evals.schema import EVAL_TYPE_ID, SAE_BENCH_COMMIT_UNKNOWN, PSEvalResult
from pseval.evals.scoring import PromptActivations, dense_baseline, score_sae
from pseval.evals.senses import ANCHORS_KEY, count_anchors, no_anchor_note

__all__ = [  # the plan's names stay importable from here
    "NamedSAE",
    "RunPlan",
    "SAEItem",
    "check_sae_fits",
    "evaluate",
    "hook_for",
    "open_items",
    "plan_run",
    "resolve_saes",
    "result_identity",
    "result_path",
    "sanitize_name",
]


# ---------------------------------------------------------------------------------------------- data


def _held_out_split(split: str) -> str | None:
    """The split the dense threshold is chosen on (None for ``all``, which has no split left over)."""
    return {"test": "dev", "train": "dev", "dev": "train"}.get(split)


@dataclass
class _Splits:
    evaluated: Any
    held_out: Any | None
    held_out_split: str | None
    why_no_held_out: str | None = None


def _load_splits(loaded: Any, config: PSEvalConfig, status: Callable[[str], None]) -> _Splits:
    from pseval.data.datasets import load_dataset

    def load(split: str) -> Any:
        return load_dataset(
            loaded.tokenizer,
            name=config.dataset,
            split=split,
            balance=config.balance,
            seed=config.seed,
            max_pairs=config.max_pairs,
            multi_token=config.multi_token,
        )

    evaluated = load(config.split)
    note = no_anchor_note(evaluated, config.split, lambda: _anchors_of_all(loaded, config, load))
    if note is not None:
        status(note)
    if not config.baselines:
        return _Splits(evaluated, None, None)
    held_split = _held_out_split(config.split)
    if held_split is None:
        return _Splits(evaluated, None, None, "--split all leaves no held-out split")
    try:
        # The held-out split only sets the dense threshold: no sense items, so no prompts built for them.
        return _Splits(evaluated, load(held_split).model_copy(update={"senses": None}), held_split)
    except DataError as exc:
        return _Splits(evaluated, None, None, f"no usable {held_split} split: {exc.problem}")


def _anchors_of_all(loaded: Any, config: PSEvalConfig, load: Callable[[str], Any]) -> int:
    """The sense anchors of ``--split all`` loaded with the run's options, for a status note: counted once per
    dataset content, options and tokenizer, then read from the cache (loading every split takes a second)."""
    from pseval._io import cache_dir, stable_hash, write_json_atomic
    from pseval.data.datasets import dataset_sha256

    options = [config.balance, config.seed, config.max_pairs, config.multi_token]
    tok = loaded.tokenizer
    tokenizer = [
        getattr(loaded, "fingerprint", None),
        getattr(tok, "name_or_path", None),
        type(tok).__name__,
        len(tok),
    ]
    key = stable_hash(dataset_sha256(config.dataset), options, tokenizer)
    path = cache_dir() / "anchors" / f"{key}.json"
    try:
        return int(json.loads(path.read_text())["anchors"])
    except (OSError, ValueError, KeyError, TypeError):
        n_all = count_anchors(load("all").senses)
        with contextlib.suppress(OSError):  # a read-only cache only costs the count next time
            write_json_atomic(path, {"anchors": n_all})
        return n_all


def _prompt_set(
    loaded: Any, config: PSEvalConfig, dataset: Any, prepend_bos: bool | None, bos_id: int | None
) -> Any:
    from pseval.data.prompts import build_prompts

    return build_prompts(
        loaded.tokenizer,
        dataset,
        template=config.template,
        position=config.position,
        prepend_bos=prepend_bos,
        multi_token=config.multi_token,
        bos_token_id=bos_id,
    )


def _activations(
    loaded: Any, config: PSEvalConfig, dataset: Any, prompt_set: Any, split: str, hooks: Sequence[str]
) -> PromptActivations:
    from pseval.activations.collect import collect_activations

    cache_key = {
        **config.cache_key(),
        "split": split,
        "prepend_bos": prompt_set.prepend_bos,
        "bos_token_id": prompt_set.bos_token_id,
    }
    result = collect_activations(
        loaded,
        prompt_set.prompts,
        list(hooks),
        batch_size=config.batch_size,
        cache=config.cache_activations,
        cache_key=cache_key,
    )
    return PromptActivations(
        acts=result.acts,
        pair_index=list(prompt_set.pair_index),
        labels=np.array([pair.label for pair in dataset.pairs], dtype=np.int64),
        pairs=list(dataset.pairs),
        n_forward_passes=result.n_forward_passes,
        dataset_stats=dataset.stats.model_dump(mode="json"),
        word_n_tokens=list(dataset.word_n_tokens),
        senses=dataset.senses,
        item_index=list(prompt_set.item_index),
    )


def prompt_activations(
    loaded: Any,
    config: PSEvalConfig,
    hooks: Sequence[str],
    split: str | None = None,
    prepend_bos: bool | None = None,
    bos_token_id: int | None = None,
) -> PromptActivations:
    """Build the pairs and unique prompts of a split and collect every hook in one batched pass."""
    from pseval.data.datasets import load_dataset

    split = split or config.split
    dataset = load_dataset(
        loaded.tokenizer,
        name=config.dataset,
        split=split,
        balance=config.balance,
        seed=config.seed,
        max_pairs=config.max_pairs,
        multi_token=config.multi_token,
    )
    bos = config.prepend_bos if prepend_bos is None else prepend_bos
    prompt_set = _prompt_set(loaded, config, dataset, bos, bos_token_id)
    return _activations(loaded, config, dataset, prompt_set, split, hooks)


def _sae_lens_version() -> str | None:
    try:
        return importlib.metadata.version("sae-lens")
    except importlib.metadata.PackageNotFoundError:
        return None


def _dense_baseline(
    data: PromptActivations, held_out: PromptActivations | None, hook: str, seed: int, why_cv: str | None
) -> dict[str, Any] | None:
    """The dense baseline, its threshold from the held-out split or, without one, cross-validated."""
    if held_out is not None:
        return {**dense_baseline(held_out, data, hook), "threshold_selection": "dev split"}
    from pseval.evals.threshold_cv import cv_dense_baseline

    result = cv_dense_baseline(data.acts[hook], data.pair_index, data.labels, seed)
    if result is not None and why_cv:
        result["threshold_selection_reason"] = why_cv
    return result


def _with_processed(
    loaded: Any, data: PromptActivations, hook: str, regime: InputRegime, memo: dict[Any, torch.Tensor]
) -> PromptActivations:
    """``data`` with the SAE's hook vectors processed as the SAE expects (shared across SAEs via ``memo``)."""
    if regime.processing is None:
        return data
    key = (id(data), hook, tuple(sorted(regime.processing_key().items())))
    if key not in memo:
        memo[key] = processed(loaded, hook, data.acts[hook], regime)
    return replace(data, acts={**data.acts, hook: memo[key]})


def evaluate(
    model: Any = "smollm2-135m",
    saes: Sequence[Any] = (),
    config: PSEvalConfig | None = None,
    hook_name: str | None = None,
    output_folder: str | Path | None = "results",
    force_rerun: bool = False,
    on_status: Callable[[str], None] | None = None,
    run_log: dict[str, list[str]] | None = None,
    **overrides: Any,
) -> list[PSEvalResult]:
    """Evaluate SAEs with PS-Eval, one activation pass per input regime, and return one result per SAE.

    ``model`` is an alias, Hugging Face id or folder, or an already loaded ``LoadedModel``. ``saes`` are paths,
    ``saelens:RELEASE/ID`` specs, ``SAE`` objects or ``(name, SAE)`` tuples. ``hook_name`` overrides the hook
    recorded in each SAE's config. Each SAE's prompts get BOS as its config records (``config.prepend_bos``
    overrides it for all) and its activations the processing its config asks for. With ``output_folder``,
    one JSON file per SAE is written there as soon as the SAE is scored; an SAE whose file already holds
    this very result (same SAE content, model, hook, regime and settings) is skipped, and a file holding a
    different result stops the run before the model loads unless ``force_rerun``.
    ``overrides`` are :class:`PSEvalConfig` fields (e.g. ``standard_metrics_tokens=16384``), validated.
    ``run_log``, when given, receives the names of the SAEs ``evaluated`` and ``skipped``.
    """
    status = on_status or (lambda _msg: None)
    config = _run_config(model, config, overrides)
    if not saes:
        raise ConfigError("no SAE to evaluate", "pass at least one SAE with --sae PATH")
    if output_folder is not None:
        check_writable(output_folder, "--output-folder")
        if (Path(output_folder) / EVAL_TYPE_ID).is_dir():  # where the files go, when it exists already
            check_writable(Path(output_folder) / EVAL_TYPE_ID, "--output-folder")

    # 1. Configs only: every SAE opened, its hook parsed, its regime, identity and result file decided. The
    # files of SAEs without a stored result are read (hash, NaN/Inf check) while the model loads.
    plan = plan_run(saes, config, hook_name, output_folder, force_rerun, status, read_later=True)
    items, finished = plan.items, plan.finished
    todo = [item for item in items if item.name not in finished]
    try:
        _refuse_before_the_model(config, todo)
    except BaseException:
        plan.cancel_reads()
        raise
    if run_log is not None:
        run_log["skipped"] = [item.name for item in items if item.name in finished]
        run_log["evaluated"] = [item.name for item in todo]
    if not todo:
        return [finished[item.name] for item in items]

    # 2. The model: widths, BOS tokens and processing checked, datasets loaded, before any forward pass.
    loaded, device, bos_ids = _load_while_reading(model, config, plan, todo)
    splits = _load_splits(loaded, config, status)
    if config.baselines and splits.held_out is None:
        status(f"{splits.why_no_held_out}: the dense threshold is chosen by seeded 5-fold cross-validation")

    sae_device = device if isinstance(model, str) else str(getattr(loaded, "device", device))
    if config.site_check:  # before any score: each SAE measured where it will be read
        from pseval.evals import site_check

        for name, check in site_check.check_sites(loaded, todo, config, sae_device, status).items():
            next(item for item in todo if item.name == name).site_check = check.model_dump(mode="json")

    # 3. One prompt set per distinct token ids; SAEs sharing one share its activation pass.
    run = _Run(
        loaded=loaded,
        config=config,
        splits=splits,
        device=sae_device,
        output_folder=output_folder,
        identities=plan.identities,
        status=status,
    )
    fresh: dict[str, PSEvalResult] = {}
    groups = _by_prompt_set(run, todo, bos_ids)
    for i, (prompt_sets, members) in enumerate(groups):
        fresh.update(_score_group(run, prompt_sets, members))
        if i + 1 < len(groups):  # the next group's activations take the memory this group's held
            gc.collect()
    return [finished.get(item.name) or fresh[item.name] for item in items]


def _run_config(model: Any, config: PSEvalConfig | None, overrides: dict[str, Any]) -> PSEvalConfig:
    """``config`` with ``overrides`` (validated), or the defaults for ``model`` with them."""
    if config is None:
        model_name = model if isinstance(model, str) else getattr(model, "name", "model")
        return PSEvalConfig(model_name=str(model_name), **overrides)
    return PSEvalConfig(**{**config.model_dump(), **overrides}) if overrides else config


def _refuse_before_the_model(config: PSEvalConfig, todo: list[SAEItem]) -> None:
    """What stops a run before the model loads: a BOS policy an SAE's config contradicts (a wrong site, when the
    site check runs) and bad tensors of the SAEs whose files the plan read (SAE objects, SAEs with a stored
    result; the others are checked once read, while the model loads)."""
    if config.site_check:
        from pseval.evals import site_check

        site_check.refuse_bos_contradictions(todo)
    for item in todo:
        if not item.unread:
            _check_weights(item, reads_whole_decoder(config))


def _load_while_reading(
    model: Any, config: PSEvalConfig, plan: RunPlan, todo: list[SAEItem]
) -> tuple[Any, str, dict[str, int | None]]:
    """:func:`_load_checked` while the files the plan left unread are read on a background thread
    (:class:`~pseval.evals.plan.WeightReads`), then those SAEs' NaN/Inf checks: a bad tensor stops the run
    before any forward pass. Returns the model, its device and each SAE's BOS token."""
    from pseval.models.loading import resolve_device

    read_later = [item for item in todo if item.unread]
    try:
        device = resolve_device(config.device)
        loaded, bos_ids = _load_checked(model, config, device, todo)
        plan.finish_reads()
    finally:
        plan.cancel_reads()
    for item in read_later:
        _check_weights(item, reads_whole_decoder(config))
    return loaded, device, bos_ids


def _load_checked(
    model: Any, config: PSEvalConfig, device: str, todo: list[SAEItem]
) -> tuple[Any, dict[str, int | None]]:
    """The model (loaded unless given), each SAE's hook, width, BOS token and processing checked against it."""
    from pseval.models.hooks import hook_width, parse_hook_name
    from pseval.models.loading import load_model

    loaded = (
        load_model(config.model_name, device=device, dtype=config.dtype) if isinstance(model, str) else model
    )
    bos_ids: dict[str, int | None] = {}
    for item in todo:
        parse_hook_name(item.hook, loaded.model)
        check_sae_fits(loaded, item, item.hook)
        bos_ids[item.name] = item.regime.resolve_bos(loaded.tokenizer)
        check_processing(loaded, item.hook, hook_width(loaded.model, item.hook), item.regime)
    return loaded, bos_ids


@dataclass
class _Run:
    """What every SAE of one evaluation is scored with."""

    loaded: Any
    config: PSEvalConfig
    splits: _Splits
    device: str
    output_folder: str | Path | None
    identities: dict[str, dict[str, Any]]
    status: Callable[[str], None]


def _by_prompt_set(
    run: _Run, todo: list[SAEItem], bos_ids: dict[str, int | None]
) -> list[tuple[tuple[Any, Any], list[SAEItem]]]:
    """The SAEs grouped by the token ids of their prompts: (evaluated, held-out) prompt sets, members."""
    from pseval.activations.collect import prompts_digest

    groups: dict[str, list[SAEItem]] = defaultdict(list)
    prompt_sets: dict[str, tuple[Any, Any]] = {}
    splits = run.splits
    # The prompts depend on the BOS policy and token alone: built once per pair (SAEs of one release share it).
    digests: dict[tuple[bool | None, int | None], str] = {}
    for item in todo:
        bos, bos_id = item.regime.prepend_bos, bos_ids[item.name]
        if (bos, bos_id) not in digests:
            evaluated = _prompt_set(run.loaded, run.config, splits.evaluated, bos, bos_id)
            digests[bos, bos_id] = digest = prompts_digest(evaluated.prompts)
            if digest not in prompt_sets:
                held = (
                    _prompt_set(run.loaded, run.config, splits.held_out, bos, bos_id)
                    if splits.held_out is not None
                    else None
                )
                prompt_sets[digest] = (evaluated, held)
        groups[digests[bos, bos_id]].append(item)
    return [(prompt_sets[digest], members) for digest, members in groups.items()]


def _bos_text(prepend_bos: bool | None) -> str:
    if prepend_bos:
        return "with BOS"
    return "without BOS" if prepend_bos is False else "with the tokenizer's special tokens"


def _score_group(run: _Run, prompt_sets: tuple[Any, Any], members: list[SAEItem]) -> dict[str, PSEvalResult]:
    """One activation pass over the hooks ``members`` read, then each of them scored, written and freed."""
    loaded, config, splits, status = run.loaded, run.config, run.splits, run.status
    evaluated_set, held_set = prompt_sets
    needed_hooks = sorted({item.hook for item in members})
    neuron_hooks: dict[str, str] = {}
    if config.baselines:
        from pseval.evals.neuron_baseline import neuron_hook_for

        neuron_hooks = {h: nh for h in needed_hooks if (nh := neuron_hook_for(h)) is not None}
    collected = sorted(set(needed_hooks) | set(neuron_hooks.values()))
    bos_text = _bos_text(evaluated_set.prepend_bos)
    status(f"collecting {len(collected)} hook(s) on the {config.split} split, prompts {bos_text}")
    data = _activations(loaded, config, splits.evaluated, evaluated_set, config.split, collected)
    held_out = None
    if held_set is not None:
        status(f"collecting the held-out {splits.held_out_split} split for the dense baseline threshold")
        held_out = _activations(
            loaded, config, splits.held_out, held_set, str(splits.held_out_split), needed_hooks
        )
    group = _Group(run, data, held_out, neuron_hooks, memo={}, baselines=defaultdict(dict))
    return {item.name: _score_one(group, item) for item in sorted(members, key=lambda it: it.hook)}


@dataclass(frozen=True)
class _Group:
    """What the SAEs of one prompt set share: the run, its activations and the caches filled as they are scored."""

    run: _Run
    data: PromptActivations
    """The evaluated split's activations at every hook the group reads."""
    held_out: PromptActivations | None
    """The held-out split's, for the dense baseline's threshold (None without one)."""
    neuron_hooks: dict[str, str]
    """Hook -> the MLP-neuron hook of its layer (the neuron baseline)."""
    memo: dict[Any, torch.Tensor]
    """Processed activations by hook and input regime, shared by SAEs that read them alike."""
    baselines: dict[Any, dict[str, dict[str, Any]]]
    """Baseline categories by input regime and hook, computed for the first SAE that needs them."""


def _score_one(group: _Group, item: SAEItem) -> PSEvalResult:
    """Load one SAE, score it, write its JSON and let its weights go."""
    run, config, data = group.run, group.run.config, group.data
    loaded, device, status = run.loaded, run.device, run.status
    hook, regime = item.hook, item.regime
    status(f"scoring {item.name} at {hook}")
    # Scored straight from its safetensors files, block by block, unless the standard metrics need the SAE.
    lazy = config.standard_metrics_tokens <= 0 and item.sae is None and item.source.blockwise
    sae = item.source if lazy else item.load(device, config.dtype if config.dtype != "float32" else None)
    sae_data = _with_processed(loaded, data, hook, regime, group.memo)
    held_out = group.held_out
    sae_held_out = (
        _with_processed(loaded, held_out, hook, regime, group.memo) if held_out is not None else None
    )
    cache = group.baselines[tuple(sorted(regime.processing_key().items()))]
    if config.baselines and hook not in cache:
        dense = _dense_baseline(sae_data, sae_held_out, hook, config.seed, run.splits.why_no_held_out)
        cache[hook] = {"baseline_dense": dense} if dense is not None else {}
    categories, details, unstructured = score_sae(
        loaded,
        sae,
        hook,
        sae_data,
        config,
        # The dense baseline is in ``cache`` already; a non-None held_out turns the other baselines on.
        held_out=(sae_held_out or sae_data) if config.baselines else None,
        neuron_acts_PN=data.acts[group.neuron_hooks[hook]] if hook in group.neuron_hooks else None,
        baselines_by_hook=cache,
        status=status,
        device=device,
    )
    if config.controls:
        from pseval.evals.scoring import score_controls
        from pseval.training.controls import control_saes

        status(f"training (or reusing) the frozen-decoder and frozen-encoder controls of {item.name}")
        controls = control_saes(item.cfg, loaded, device=device)
        categories.update(score_controls(controls, sae_data, hook, config))
    if config.standard_metrics_tokens > 0:
        from pseval.metrics.standard import standard_metrics_many

        standard = standard_metrics_many(
            loaded,
            [(item.name, sae, hook)],
            n_tokens=config.standard_metrics_tokens,
            n_tokens_ce=config.standard_metrics_ce_tokens,
            add_bos=False if regime.prepend_bos is False else None,
        )
        categories["standard"] = standard[item.name].model_dump()
    if item.site_check is not None:
        categories["site_check"] = item.site_check
    result = _result(run, item, data, categories, details, unstructured)
    result.result_identity = {**run.identities[item.name], **decoder_rows_key(item, details)}
    if run.output_folder is not None:
        result = write_result(result_path(run.output_folder, item.name), result)
    del sae
    if not lazy:  # a loaded SAE's weights go now; a lazily read one holds nothing a collection would free
        gc.collect()
    return result


def _result(
    run: _Run,
    item: SAEItem,
    data: PromptActivations,
    categories: dict[str, Any],
    details: Any,
    unstructured: dict[str, Any],
) -> PSEvalResult:
    """One SAE's result record: its categories and details with the run's and the SAE's provenance."""
    anchors = unstructured.pop(ANCHORS_KEY, [])
    return PSEvalResult(
        eval_type_id=EVAL_TYPE_ID,
        eval_config=run.config,
        eval_id=str(uuid.uuid4()),
        datetime_epoch_millis=int(time.time() * 1000),
        eval_result_metrics=EvalResultMetrics.model_validate(categories),
        eval_result_details=details,
        sense_retrieval_details=anchors,
        eval_result_unstructured=unstructured,
        sae_bench_commit_hash=SAE_BENCH_COMMIT_UNKNOWN,
        sae_lens_id=item.sae_id,
        sae_lens_release_id=item.release,
        sae_lens_version=_sae_lens_version(),
        sae_cfg_dict=item.cfg.model_dump(mode="json"),
        pseval_version=__version__,
        sae_name=item.name,
        sae_path=item.path,
        hook_name=item.hook,
        model_name=run.config.model_name,
        model_fingerprint=str(getattr(run.loaded, "fingerprint", "")),
        dataset_stats=data.dataset_stats,
        n_forward_passes=data.n_forward_passes,
        sae_content_hash=item.content_hash,
        input_regime=item.regime.record(run.loaded.tokenizer),
        result_identity=run.identities[item.name],
    )
