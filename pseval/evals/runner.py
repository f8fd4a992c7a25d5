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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pseval._io import write_json_atomic
from pseval._version import __version__
from pseval.errors import ConfigError, SAEError
from pseval.evals.config import PSEvalConfig
from pseval.evals.schema import EVAL_TYPE_ID, PSEvalResult
from pseval.evals.scoring import (
    PromptActivations,
    score_sae,
)
from pseval.sae.model import SAE


@dataclass
class NamedSAE:
    """An SAE with the name its result file is called by and where it came from."""

    name: str
    sae: SAE
    path: str | None = None
    release: str | None = None
    sae_id: str | None = None


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
        categories, details, unstructured = score_sae(
            loaded,
            item.sae,
            hook,
            data,
            config,
            held_out=held_out,
            neuron_acts_PN=data.acts[neuron_hooks[hook]] if hook in neuron_hooks else None,
            baselines_by_hook=baselines_by_hook,
            status=status,
        )
        if item.name in standard_by_name:
            categories["standard"] = standard_by_name[item.name].model_dump()
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
