"""The hook-site check: before any score, is each dictionary read where it was trained?

A correct reader pointed at the wrong site gives numbers that mean nothing, with exit code 0: a layer off by
one, a hook of another kind (``hook_attn_out`` read at ``hook_resid_post``), prompts without the BOS the SAE
was trained with, an input scale the SAE never saw. Before scoring, every SAE of a run is measured on a small
sample of held-out corpus text (``site_check_tokens``, default 2,048) at the site pseval will read (its hook,
its BOS policy, its activation processing): FVU and L0, compared with what its config records
(:func:`recorded_stats`). The model runs once per BOS policy for every hook of the run
(:func:`pseval.metrics.site.site_activations`, cached on disk), so each SAE costs its encode and decode.

Verdicts (:func:`judge`):

- ``fail`` when FVU > :data:`FVU_LIMIT` (worse than predicting the mean), the L0 is more than
  :data:`L0_FACTOR` times off the recorded L0, or the inputs' median norm is more than :data:`NORM_FACTOR` times
  off the norm the SAE was trained on (recorded by pseval's trainer as ``activation_scale``; each either way),
  or the run's BOS policy contradicts the one the SAE's config records (``bos_mismatch``): the run stops
  before scoring, with one line naming the likely cause and the fix, unless ``--no-site-check``.
  The norm catches what FVU cannot: the residual stream carries its features across layers, so a residual
  SAE read six layers early still reconstructs better than the mean, but the stream's norm grows with depth.
  A BOS contradiction is known from the configs alone, so :func:`refuse_bos_contradictions` stops the run
  on it before the model loads: without BOS most positions move by a few percent only (SmolLM2 makes its
  first text token the attention sink; Gemma-3-270m's stream shrinks by up to a fifth), which no limit on
  FVU, L0 or the median norm separates from the drift of other text (docs/methodology.md);
- ``poor_sae`` for the same numbers from an SAE pseval trained, read at the model, hook and BOS policy its
  own training record names: the site is known right, so the SAE itself reconstructs poorly (tiny training
  budgets do); recorded and reported, not stopped;
- ``pass`` otherwise.

A transcoder is checked at its output: its encoder reads the input hook, its decoder's reconstruction is
compared with the output hook's rows. Its FVU is not measured when the output hook is not one pseval can read
or the transcoder has a skip connection (pseval does not hold the skip weights); its L0 still is.
Random and untrained controls are built inside the scoring, never checked.
"""

from __future__ import annotations

import gc
import math
import re
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pseval.errors import SAEError
from pseval.evals.config import PSEvalConfig
from pseval.evals.regime import PSEVAL_TRAINED, processed
from pseval.metrics.site import SiteCheck, Verdict

__all__ = [
    "FVU_LIMIT",
    "L0_FACTOR",
    "NORM_FACTOR",
    "SiteCheck",
    "bos_contradiction",
    "check_sites",
    "judge",
    "recorded_bos",
    "recorded_stats",
    "refuse_bos_contradictions",
]

FVU_LIMIT = 1.0
"""Above it the SAE reconstructs worse than the sample's mean would: not the site it was trained at."""

L0_FACTOR = 3.0
"""The measured L0 may differ from the recorded one by at most this factor, either way (text other than the
SAE's training text moves L0 by tens of percent; another site moves it by several times)."""

NORM_FACTOR = 1.2
"""The inputs' median norm may differ from the norm the SAE was trained on by at most this factor, either way
(2,048 held-out tokens at the SAE's own site land within a few percent; see docs/methodology.md)."""

MAX_CONTEXT = 4096
"""Longest recorded context length the check follows (longer ones are read in contexts of this length)."""

_FOLDER_L0 = re.compile(r"(?:^|[/_-])(?:average_)?l0_(\d+(?:\.\d+)?)(?=$|[/_-])")


# ---------------------------------------------------------------------------------------------- recorded


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(float(value)) else None


def recorded_stats(
    metadata: Mapping[str, Any], names: Sequence[str | None] = ()
) -> tuple[float | None, float | None, str | None]:
    """``(recorded_l0, recorded_fvu, where from)`` of an SAE, the most direct record first.

    pseval's held-out evaluation (``metadata.eval``), then its last training batches (``final_train_l0``,
    ``1 - final_train_explained_variance``), then the SAELens registry's ``l0``, an ``l0``/``fvu`` in the
    metadata, and last an ``l0_N``/``average_l0_N`` in the folder or SAE id (Gemma Scope).
    """
    held_out = metadata.get("eval")
    if isinstance(held_out, Mapping) and _number(held_out.get("l0")) is not None:
        return _number(held_out.get("l0")), _number(held_out.get("fvu")), "pseval held-out evaluation"
    train_l0 = _number(metadata.get("final_train_l0"))
    if train_l0 is not None:
        explained = _number(metadata.get("final_train_explained_variance"))
        return train_l0, None if explained is None else 1 - explained, "pseval training (last batches)"
    for key, where in (
        ("registry_l0", "SAELens registry"),
        ("l0", "SAE config"),
        ("average_l0", "SAE config"),
    ):
        if _number(metadata.get(key)) is not None:
            return _number(metadata.get(key)), _number(metadata.get("fvu")), where
    for name in names:
        match = _FOLDER_L0.search(str(name or ""))
        if match:
            return float(match.group(1)), None, "folder name"
    fvu = _number(metadata.get("fvu"))
    return None, fvu, "SAE config" if fvu is not None else None


# ---------------------------------------------------------------------------------------------- verdicts


def recorded_input_norm(cfg: Any) -> float | None:
    """The mean input norm the SAE was trained on, when its config records it (pseval's ``activation_scale``)."""
    scale = _number((cfg.metadata or {}).get("activation_scale"))
    if scale is None or scale <= 0 or cfg.normalize_activations not in ("none", "expected_average_only_in"):
        return None
    return math.sqrt(cfg.d_in) / scale


def ratio_off(measured: float, recorded: float | None) -> float | None:
    """How many times ``measured`` is off ``recorded``, either way (None without a positive record)."""
    if recorded is None or recorded <= 0:
        return None
    return math.inf if measured <= 0 else max(measured / recorded, recorded / measured)


def judge(
    fvu: float | None,
    l0_ratio: float | None,
    norm_ratio: float | None,
    own_site: bool,
    bos_problem: str | None = None,
) -> tuple[Verdict, str | None]:
    """``(verdict, reason)`` of a measurement (see the module docstring).

    ``bos_problem`` (:func:`bos_contradiction`) is a known wrong site: ``fail`` whatever the numbers.
    """
    problems: list[str] = [] if bos_problem is None else [bos_problem]
    if fvu is not None and fvu > FVU_LIMIT:
        problems.append(f"FVU {fvu:.3g} > {FVU_LIMIT:g} (worse than predicting the mean)")
    if l0_ratio is not None and l0_ratio > L0_FACTOR:
        problems.append(f"L0 {l0_ratio:.3g}x off the recorded L0 (limit {L0_FACTOR:g}x)")
    if norm_ratio is not None and norm_ratio > NORM_FACTOR:
        problems.append(f"input norm {norm_ratio:.3g}x off the trained-on norm (limit {NORM_FACTOR:g}x)")
    if not problems:
        return "pass", None
    return ("poor_sae" if own_site and bos_problem is None else "fail"), "; ".join(problems)


def recorded_bos(metadata: Mapping[str, Any]) -> bool | None:
    """The BOS policy an SAE was trained with, as its config records it (None: not recorded).

    pseval's trainer and every release reader record ``prepend_bos``; an SAE pseval trained before it did
    was trained on BOS-prefixed contexts.
    """
    recorded = metadata.get("prepend_bos")
    if recorded is None:
        return True if metadata.get("trained_with") == PSEVAL_TRAINED else None
    return bool(recorded)


def bos_contradiction(item: Any) -> str | None:
    """The problem when the run builds an SAE's prompts with another BOS policy than its config records."""
    recorded = recorded_bos(item.cfg.metadata or {})
    read = item.regime.prepend_bos
    if recorded is None or read is None or bool(read) == recorded:
        return None
    return (
        f"its prompts are built {'with' if read else 'without'} BOS ({item.regime.source}) but its config "
        f"records prepend_bos={recorded}"
    )


def refuse_bos_contradictions(items: Sequence[Any]) -> None:
    """SAEError naming the first SAE read with a BOS policy its config contradicts (configs only, no model).

    Without BOS most positions move a little only, so the measured limits let such a run pass
    (docs/methodology.md); the recorded policy settles it.
    """
    refused = [(item, problem) for item in items if (problem := bos_contradiction(item)) is not None]
    if not refused:
        return
    item, problem = refused[0]
    more = f" ({len(refused) - 1} more SAE(s) too)" if len(refused) > 1 else ""
    raise SAEError(
        f"the SAE {item.name!r} does not fit the site it is read at (bos_mismatch): {problem}{more}",
        f"{_bos_fix(item)}, or --no-site-check to score it anyway",
    )


def _bos_fix(item: Any) -> str:
    """Drop the flag that overrides the recorded BOS policy (or pass its opposite)."""
    flag = "--no-prepend-bos" if item.regime.prepend_bos else "--prepend-bos"
    if item.regime.source.startswith("--"):
        return f"drop {item.regime.source} (or pass {flag})"
    return f"pass {flag}"


def own_site(item: Any, config: PSEvalConfig) -> bool:
    """Whether ``item`` is a pseval-trained SAE read at the model, hook and BOS policy of its training record."""
    from pseval.models.names import same_model

    metadata = item.cfg.metadata or {}
    if metadata.get("trained_with") != PSEVAL_TRAINED or metadata.get("hook_name") != item.hook:
        return False
    recorded_model = metadata.get("model_name") or item.cfg.model_name
    if not recorded_model or not same_model(str(recorded_model), config.model_name):
        return False
    expected_bos = recorded_bos(metadata)  # the trainer's contexts began with BOS
    return bool(item.regime.prepend_bos) == expected_bos and item.regime.processing is None


def _likely_cause(item: Any, prepend_bos: bool) -> tuple[str, str]:
    """The likely cause of a failed check and its fix, from what the run overrides of the SAE's record."""
    metadata = item.cfg.metadata or {}
    recorded_hook = metadata.get("hook_name") or item.cfg.hook_name  # cfg.hook_name holds --hook when given
    if recorded_hook and recorded_hook != item.hook:
        return (
            f"it is read at {item.hook} but its config records {recorded_hook}",
            f"drop --hook (or pass --hook {recorded_hook})",
        )
    problem = bos_contradiction(item)
    if problem is not None:
        return problem, _bos_fix(item)
    if not prepend_bos:
        return (
            "it is read without a BOS token",
            "pass --prepend-bos, or --hook with the hook it was trained at",
        )
    return (
        "it was probably trained at another hook, BOS policy or input normalisation",
        "pass the hook it was trained at with --hook, try --no-prepend-bos/--prepend-bos, check its "
        "normalize_activations",
    )


# ---------------------------------------------------------------------------------------------- measuring


def _default_bos(tokenizer: Any) -> bool:
    """Whether the tokenizer starts a text with BOS by itself (the prompts' regime ``prepend_bos=None``)."""
    bos = getattr(tokenizer, "bos_token_id", None)
    if bos is None:
        return False
    try:
        ids = tokenizer("a")["input_ids"]
    except Exception:  # pragma: no cover - a tokenizer that cannot encode a letter
        return False
    return bool(ids) and int(ids[0]) == int(bos)


def _target_hook(item: Any, loaded: Any) -> tuple[str | None, str | None]:
    """``(hook the reconstruction is compared with, why none)`` of an SAE or transcoder."""
    from pseval.errors import PsevalError
    from pseval.models.hooks import parse_hook_name

    transcoder = (item.cfg.metadata or {}).get("transcoder")
    if not isinstance(transcoder, Mapping):
        return item.hook, None
    if transcoder.get("skip_connection"):
        return None, "a skip transcoder's skip weights are not read"
    out = transcoder.get("hook_name_out")
    if not out:
        return None, "the transcoder records no output hook"
    try:
        parse_hook_name(str(out), loaded.model)
    except PsevalError:
        return None, f"its output hook {out} is not one pseval reads"
    return str(out), None


def _measure_one(
    loaded: Any,
    item: Any,
    rows: dict[str, Any],
    site: tuple[bool, int, str],
    config: PSEvalConfig,
    device: str,
) -> SiteCheck:
    """One SAE measured on its group's rows; ``site`` is the group's (BOS, context size, corpus)."""
    from pseval.metrics.site import site_reconstruction

    target, why_no_fvu = _target_hook(item, loaded)
    x_ND = processed(loaded, item.hook, rows[item.hook], item.regime)
    sae = item.load(device, config.dtype if config.dtype != "float32" else None)
    measured = site_reconstruction(sae, x_ND, rows[target] if target not in (None, item.hook) else None)
    del sae
    fvu = measured["fvu"] if target is not None else None
    l0 = float(measured["l0"] or 0.0)
    norm = float(x_ND.norm(dim=-1).median())
    metadata = item.cfg.metadata or {}
    recorded_l0, recorded_fvu, where = recorded_stats(metadata, (item.path, item.sae_id))
    expected_norm = recorded_input_norm(item.cfg)
    l0_ratio, norm_ratio = ratio_off(l0, recorded_l0), ratio_off(norm, expected_norm)
    bos_problem = bos_contradiction(item)
    verdict, reason = judge(fvu, l0_ratio, norm_ratio, own_site(item, config), bos_problem)
    return SiteCheck(
        tokens=int(measured["n_tokens"] or 0),
        hook_name=item.hook,
        target_hook=target,
        prepend_bos=site[0],
        context_size=site[1],
        corpus=site[2],
        fvu=fvu,
        l0=l0,
        recorded_fvu=recorded_fvu,
        recorded_l0=recorded_l0,
        recorded_from=where,
        l0_ratio=l0_ratio,
        input_norm=norm,
        recorded_input_norm=expected_norm,
        input_norm_ratio=norm_ratio,
        fvu_limit=FVU_LIMIT,
        l0_factor=L0_FACTOR,
        norm_factor=NORM_FACTOR,
        verdict=verdict,
        reason=reason,
        fvu_not_measured=why_no_fvu,
        recorded_prepend_bos=recorded_bos(metadata),
        bos_mismatch=bos_problem is not None,
    )


def _context_size(item: Any) -> int:
    """The context length the SAE records (activations depend on the position), else the standard metrics'."""
    from pseval.metrics.site import CONTEXT_SIZE

    recorded = (item.cfg.metadata or {}).get("context_size")
    if isinstance(recorded, int) and not isinstance(recorded, bool) and recorded >= 2:
        return min(recorded, MAX_CONTEXT)
    return CONTEXT_SIZE


def _corpus(item: Any, config: PSEvalConfig) -> str:
    """The corpus an SAE is checked on: the configured one, else its own training corpus when local."""
    from pseval.data.corpus import BUNDLED

    if config.site_check_corpus is not None:
        return config.site_check_corpus
    recorded = (item.cfg.metadata or {}).get("dataset_path")
    if isinstance(recorded, str) and (recorded == BUNDLED or Path(recorded).expanduser().is_file()):
        return recorded
    return BUNDLED


def check_sites(
    loaded: Any,
    items: Sequence[Any],
    config: PSEvalConfig,
    device: str,
    status: Callable[[str], None] = lambda _msg: None,
) -> dict[str, SiteCheck]:
    """Measure every SAE at its site; SAEError naming the first refused one (see the module docstring).

    ``items`` are the runner's ``SAEItem`` s (their hook and input regime decided). One corpus pass per BOS
    policy and context length collects every hook; the SAEs are then loaded, measured and let go one at a
    time.
    """
    from pseval.metrics.site import site_activations

    default_bos = _default_bos(loaded.tokenizer)
    groups: dict[tuple[bool, int, str], list[Any]] = defaultdict(list)
    views = [item.name for item in items if "multilayer" in (item.cfg.metadata or {})]
    if views:
        # A cross-layer view is read block by block from several hooks and has no single-site
        # reconstruction to compare; its layers' inputs are checked by their own hook names only.
        status(f"site check: {len(views)} cross-layer view(s) not checked ({', '.join(views[:3])}…)")
    for item in items:
        if item.name in views:
            continue
        bos = item.regime.prepend_bos
        key = (default_bos if bos is None else bool(bos), _context_size(item), _corpus(item, config))
        groups[key].append(item)
    checks: dict[str, SiteCheck] = {}
    for (prepend_bos, context_size, corpus), members in groups.items():
        targets = {hook for item in members if (hook := _target_hook(item, loaded)[0]) is not None}
        hooks = sorted({item.hook for item in members} | targets)
        status(f"site check: {config.site_check_tokens:,} corpus tokens at {len(hooks)} hook(s)")
        rows = site_activations(
            loaded,
            hooks,
            config.site_check_tokens,
            prepend_bos,
            corpus=corpus,
            batch_size=max(1, 1024 // context_size),
            cache=config.cache_activations,
            context_size=context_size,
        )
        got = int(next(iter(rows.values())).shape[0])
        if got < config.site_check_tokens:
            status(f"site check: the held-out text of {corpus} holds only {got:,} tokens")
        for item in members:
            checks[item.name] = _measure_one(
                loaded, item, rows, (prepend_bos, context_size, corpus), config, device
            )
            gc.collect()
    _report([item for item in items if item.name in checks], checks, status)
    return checks


def _report(items: Sequence[Any], checks: dict[str, SiteCheck], status: Callable[[str], None]) -> None:
    """Status lines for the SAEs over a limit, and SAEError for the first refused one."""
    failed = [item for item in items if checks[item.name].verdict == "fail"]
    for item in items:
        check = checks[item.name]
        if check.verdict == "poor_sae":
            status(
                f"{item.name}: {check.reason} at the site pseval trained it at: the SAE reconstructs poorly "
                "(recorded in site_check, scored anyway)"
            )
    if not failed:
        return
    first = checks[failed[0].name]
    cause, fix = _likely_cause(failed[0], first.prepend_bos)
    more = f" ({len(failed) - 1} more SAE(s) fail too)" if len(failed) > 1 else ""
    tag = " (bos_mismatch)" if first.bos_mismatch else ""
    likely = "" if first.bos_mismatch and cause in (first.reason or "") else f"; likely cause: {cause}"
    raise SAEError(
        f"the SAE {failed[0].name!r} does not fit the site it is read at{tag}: {first.reason} on "
        f"{first.tokens:,} corpus tokens at {first.hook_name}{likely}{more}",
        f"{fix}, or --no-site-check to score it anyway",
    )
