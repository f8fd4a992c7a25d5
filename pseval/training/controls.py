"""Trained controls: SAEs with a frozen random decoder or a frozen random encoder, matched to an SAE.

Korznikov et al. (2026) show that an SAE whose decoder stays at its random initialisation while the
encoder trains, or whose encoder stays random while the decoder trains, comes close to a fully trained
SAE on several benchmarks. "Better than chance" should therefore mean better than such a trained control,
not only better than an untrained random SAE. Each control is trained by pseval with the evaluated SAE's
own recorded training config (model, hook, corpus, architecture, width, k or sparsity coefficient,
token budget, seed), only ``freeze`` changed, so width, budget and (for the k-architectures) L0 match.

Controls are trained once and cached under ``<pseval cache>/controls/``: the folder name carries the
hash of the control's training config, and :func:`pseval.training.trainer.train_sae` reuses a folder that
already holds the SAE of an identical config.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pseval._io import cache_dir
from pseval.errors import ConfigError
from pseval.sae.config import SAEConfig
from pseval.sae.model import SAE
from pseval.training.config import K_ARCHITECTURES, TrainConfig

#: Result category of each control -> what its training keeps frozen.
CONTROLS: dict[str, str] = {
    "baseline_frozen_decoder": "decoder",
    "baseline_frozen_encoder": "encoder",
}
CONTROLS_DIR = "controls"


def _needed_flags(cfg: SAEConfig) -> str:
    k = getattr(cfg, "k", None)
    sparsity = f"--k {int(k) if k is not None else 'K'}" if k is not None else "--k K (or --l1-coefficient C)"
    hook = cfg.hook_name or "HOOK"
    model = cfg.model_name or "MODEL"
    return (
        f"pseval train --freeze decoder (and again with --freeze encoder) --model {model} --hook-name {hook} "
        f"--architecture ARCH --d-sae {cfg.d_sae} {sparsity} --training-tokens N"
    )


def control_train_config(
    cfg: SAEConfig, freeze: str, device: str = "cpu", root: str | Path | None = None
) -> TrainConfig:
    """The training config of ``cfg``'s control with ``freeze`` ('decoder' or 'encoder').

    Raises :class:`ConfigError` when the SAE records no pseval training config (e.g. a released SAE), when
    it is a control itself, or when its recorded config no longer validates.
    """
    if freeze not in CONTROLS.values():
        raise ConfigError(f"unknown control {freeze!r}", "use 'decoder' or 'encoder'")
    recorded = cfg.metadata.get("train_config")
    if cfg.metadata.get("trained_with") != "pseval" or not isinstance(recorded, dict):
        raise ConfigError(
            f"the SAE ({cfg.architecture}, d_sae={cfg.d_sae}) records no pseval training config, so no control "
            "can be trained to match its width, L0 and budget",
            f"drop --controls for it, or train matched controls yourself: {_needed_flags(cfg)}",
        )
    if recorded.get("freeze", "none") != "none":
        raise ConfigError(
            f"the SAE is itself a control (trained with --freeze {recorded['freeze']})",
            "pass the fully trained SAE with --controls",
        )
    try:
        base = TrainConfig.model_validate(recorded)
    except ConfigError as exc:
        raise ConfigError(
            f"the SAE's recorded training config is not valid for this pseval version ({exc.problem})",
            f"drop --controls for it, or train matched controls yourself: {_needed_flags(cfg)}",
        ) from None
    config = base.model_copy(update={"freeze": freeze, "device": device, "overwrite": False, "out": None})
    config = TrainConfig.model_validate({**config.model_dump(), "out": _control_dir(config, root)})
    return config


def _control_dir(config: TrainConfig, root: str | Path | None) -> Path:
    from pseval.training.trainer import config_hash

    model = re.sub(r"[^A-Za-z0-9_.-]+", "_", config.model.strip("/").split("/")[-1])
    width = config.d_sae or f"x{config.expansion_factor or 8}"
    name = f"{config.architecture}-{width}-frozen_{config.freeze}-{config_hash(config)}"
    return Path(root) if root is not None else cache_dir() / CONTROLS_DIR / model / config.hook_name / name


def control_saes(
    cfg: SAEConfig,
    loaded: Any | None = None,
    device: str = "cpu",
    root: str | Path | None = None,
    progress: bool = False,
) -> dict[str, SAE]:
    """The frozen-decoder and frozen-encoder controls of this SAE, trained once and reused, by result category.

    What an evaluation asks for: the first request trains each control into its cache folder, every later one
    (the same SAE, another run) loads it from there. ``cfg`` is the evaluated SAE's config; ``loaded`` is the
    already loaded model, used when it is the model the SAE was trained on.
    ``root`` (tests) replaces the cache folder; each control gets its own subfolder there.
    """
    from pseval.training.trainer import train_sae

    configs = {
        category: control_train_config(
            cfg, freeze, device, None if root is None else Path(root) / f"frozen_{freeze}"
        )
        for category, freeze in CONTROLS.items()
    }
    out: dict[str, SAE] = {}
    for category, config in configs.items():
        model_matches = loaded is not None and getattr(loaded, "name", None) == config.model
        result = train_sae(config, progress=progress, loaded=loaded if model_matches else None)
        out[category] = result.sae
    return out


def control_summary(control: SAE, metrics: dict[str, Any], mean_l0_on_prompts: float) -> dict[str, Any]:
    """The result category of one control: the random SAE's metrics plus what it was matched on."""
    train = control.cfg.metadata.get("train_config") or {}
    return {
        **metrics,
        "mean_l0_on_prompts": mean_l0_on_prompts,
        "d_sae": control.cfg.d_sae,
        "training_tokens": train.get("training_tokens"),
        "l0_matched_by_k": train.get("architecture") in K_ARCHITECTURES,
        "train_config_hash": control.cfg.metadata.get("train_config_hash"),
    }
