"""Pre-flight checks of an evaluation: settings that only make sense against each SAE's config.

They run on the SAEs' configs alone (no weights, no model), so a run that cannot give a meaningful number
stops before any long work, with one line naming the option to change.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pseval.errors import ConfigError
from pseval.evals.config import PSEvalConfig


def check_topk_overlap_k(sae_name: str, d_sae: int, k: int) -> None:
    """``--topk-overlap-k`` must not exceed the SAE's width (it was silently cut to the width before)."""
    if k > d_sae:
        raise ConfigError(
            f"--topk-overlap-k {k} exceeds the {d_sae} latents of the SAE {sae_name!r}",
            f"pass --topk-overlap-k {min(16, d_sae)} (at most {d_sae})",
        )


def check_seed(seed: int) -> None:
    """``--seed`` seeds numpy's generators, which take no negative seed."""
    if seed < 0:
        raise ConfigError(f"--seed {seed} is negative", "pass --seed 0 or another seed >= 0")


def check_count(value: int | None, option: str, zero_means: str) -> None:
    """A count of tokens is never negative: a negative one used to skip its metrics without a word."""
    if value is not None and value < 0:
        raise ConfigError(
            f"{option} {value} is negative", f"pass {option} 0 ({zero_means}) or a positive count"
        )


def check_token_budgets(standard_metrics_tokens: int, standard_metrics_ce_tokens: int | None) -> None:
    """:func:`check_count` of the standard-metrics token counts of a run."""
    check_count(standard_metrics_tokens, "--standard-metrics-tokens", "no standard metrics")
    check_count(standard_metrics_ce_tokens, "standard_metrics_ce_tokens", "no CE loss or KL")


def check_model_matches(
    sae_name: str,
    recorded: str | None,
    model: str,
    allow_mismatch: bool,
    status: Callable[[str], None] = lambda _msg: None,
) -> None:
    """Refuse an SAE whose config records another model than ``model`` (unless ``allow_mismatch``).

    A matching width is no evidence: SAEs of many models read 576- or 768-wide activations, and an SAE
    scored on another model's activations gives numbers that mean nothing. Names are compared with
    :func:`pseval.models.names.same_model`; an SAE that records no model is accepted.
    """
    from pseval.models.names import same_model, suggested_model_option

    if not recorded:
        status(f"{sae_name}: its config records no model name, so it is assumed to fit {model}")
        return
    if same_model(recorded, model):
        return
    if allow_mismatch:
        status(f"{sae_name}: trained on {recorded}, scored on {model} (--allow-model-mismatch)")
        return
    raise ConfigError(
        f"the SAE {sae_name!r} was trained on {recorded} (its config's model_name), not on {model}",
        f"pass --model {suggested_model_option(recorded)}, or --allow-model-mismatch if both names are the "
        "same weights",
    )


def check_sae_settings(
    sae_name: str, cfg: Any, config: PSEvalConfig, status: Callable[[str], None] = lambda _msg: None
) -> None:
    """Every check of one SAE's config against the run's settings, before the model loads."""
    check_model_matches(sae_name, cfg.model_name, config.model_name, config.allow_model_mismatch, status)
    check_topk_overlap_k(sae_name, int(cfg.d_sae), config.topk_overlap_k)
