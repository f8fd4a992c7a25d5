"""Pre-flight checks of an evaluation: settings that only make sense against each SAE's config.

They run on the SAEs' configs alone (no weights, no model), so a run that cannot give a meaningful number
stops before any long work, with one line naming the option to change.
"""

from __future__ import annotations

from typing import Any

from pseval.errors import ConfigError
from pseval.evals.config import PSEvalConfig


def check_topk_overlap_k(sae_name: str, d_sae: int, k: int) -> None:
    """``--topk-overlap-k`` must not exceed the SAE's width: a top-k of more latents than exist is not one."""
    if k > d_sae:
        raise ConfigError(
            f"--topk-overlap-k {k} exceeds the {d_sae} latents of the SAE {sae_name!r}",
            f"pass --topk-overlap-k {min(16, d_sae)} (at most {d_sae})",
        )


def check_token_budgets(standard_metrics_tokens: int, standard_metrics_ce_tokens: int | None) -> None:
    """Token counts are never negative: a negative one used to skip its metrics without a word."""
    if standard_metrics_tokens < 0:
        raise ConfigError(
            f"--standard-metrics-tokens {standard_metrics_tokens} is negative",
            "pass 0 (no standard metrics) or a positive number of tokens",
        )
    if standard_metrics_ce_tokens is not None and standard_metrics_ce_tokens < 0:
        raise ConfigError(
            f"{standard_metrics_ce_tokens} CE tokens is negative",
            "pass 0 (no CE metrics) or a positive number",
        )


def check_sae_settings(sae_name: str, cfg: Any, config: PSEvalConfig) -> None:
    """Every check of one SAE's config against the run's settings, before the model loads."""
    check_topk_overlap_k(sae_name, int(cfg.d_sae), config.topk_overlap_k)
