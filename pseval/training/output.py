"""The trained SAE on disk: its export with provenance, and the output folder (written, reused or refused)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from pseval._io import atomic_dir, stable_hash, write_json_atomic
from pseval._version import __version__
from pseval.errors import ConfigError
from pseval.metrics.reliability import replicate_identity
from pseval.sae.config import SAE_CONFIGS
from pseval.sae.model import SAE
from pseval.training.architectures import TrainingSAE
from pseval.training.config import TrainConfig
from pseval.training.run_log import CHECKPOINTS_DIR, TRAINING_LOG_FILE, EvalMetrics, TrainLog


def config_hash(config: TrainConfig) -> str:
    """A short hash of everything that determines the trained weights."""
    return stable_hash(config.fingerprint_dict())


def export_sae(
    module: TrainingSAE,
    input_scale: float,
    *,
    config: TrainConfig,
    log: TrainLog | None = None,
    tokens: int | None = None,
    model_name: str | None = None,
    hook_name: str | None = None,
) -> SAE:
    """The inference :class:`SAE` of a training module, with the run's provenance in ``cfg.metadata``."""
    final = log.final if log is not None else None
    model_name = model_name or config.model
    hook_name = hook_name or config.hook_name
    metadata: dict[str, Any] = {
        "model_name": model_name,
        "hook_name": hook_name,
        "context_size": config.context_size,
        "dataset_path": config.corpus,
        "training_tokens": tokens if tokens is not None else config.training_tokens,
        "seed": config.seed,
        "pseval_version": __version__,
        "trained_with": "pseval",
        "training_architecture": config.architecture,
        "hyperparameters": config.architecture_hyperparameters(),
        "activation_scale": input_scale,
        "decoder_norms_folded": True,
        "train_config": config.fingerprint_dict(),
        "train_config_hash": config_hash(config),
        # Shared by the replicates of one config that differ only by seed (grouped by `pseval reliability`).
        "train_config_hash_without_seed": replicate_identity(config.fingerprint_dict()),
        **module.inference_metadata(),
    }
    if final is not None:
        metadata.update(
            final_train_mse=final.mse / input_scale**2,  # raw activation units, like the eval metrics
            final_train_explained_variance=final.explained_variance,
            final_train_l0=final.l0,
            final_dead_fraction=final.dead_fraction,
            final_dense_fraction=final.dense_fraction,
        )
    cfg_cls = SAE_CONFIGS[module.inference_architecture()]
    cfg = cfg_cls(
        d_in=module.d_in,
        d_sae=module.d_sae,
        dtype="float32",
        apply_b_dec_to_input=True,
        normalize_activations="none",
        hook_name=hook_name,
        model_name=model_name,
        metadata=metadata,
        **module.inference_config_fields(),
    )
    state = {name: t.cpu() for name, t in module.inference_state(input_scale).items()}
    return SAE.from_state_dict(cfg, state)


def _save_folder(sae: SAE, folder: Path, log: TrainLog | None) -> None:
    """Write a complete SAELens folder (plus the training log) atomically."""
    from pseval.sae.formats import save_sae

    with atomic_dir(folder) as tmp:
        save_sae(sae, tmp)
        if log is not None:
            write_json_atomic(tmp / TRAINING_LOG_FILE, log.model_dump(mode="json"))


def write_output(
    sae: SAE, out: str | os.PathLike[str], log: TrainLog | None = None, eval: EvalMetrics | None = None
) -> Path:
    """Write the final SAE into ``out`` without touching ``out/checkpoints``.

    Files are written into a temporary folder, then moved into place one by one, ``cfg.json`` last, so
    a folder with a ``cfg.json`` always holds a complete SAE.
    """
    from pseval.sae.formats import save_sae

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".sae.", suffix=".tmp", dir=out))
    try:
        save_sae(sae, tmp)
        if log is not None:
            payload = log.model_dump(mode="json")
            if eval is not None:
                payload["eval"] = eval.model_dump(mode="json")
            write_json_atomic(tmp / TRAINING_LOG_FILE, payload)
        names = sorted(p.name for p in tmp.iterdir())
        stale = out / "cfg.json"
        if stale.exists():
            stale.unlink()
        for name in sorted(names, key=lambda n: n == "cfg.json"):
            os.replace(tmp / name, out / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def check_output_dir(config: TrainConfig, out: Path) -> str:
    """Decide what to do with an existing output folder: 'new', 'reuse' (same config, complete) or 'overwrite'.

    A folder holding an SAE trained with a different config is refused unless ``overwrite``; a non-empty
    folder that is not an SAE folder is always refused (nothing there would be ours to replace).
    """
    if not out.exists():
        return "new"
    if not out.is_dir():
        raise ConfigError(f"output path {out} exists and is not a folder", "choose another --out")
    entries = [p for p in out.iterdir() if not p.name.startswith(".")]
    if not entries:
        return "new"
    cfg_path = out / "cfg.json"
    if not cfg_path.is_file() and not (out / CHECKPOINTS_DIR).is_dir():
        raise ConfigError(
            f"output folder {out} is not empty and holds no SAE", "choose an empty or new folder for --out"
        )
    stored_hash = None
    if cfg_path.is_file():
        try:
            stored_hash = (
                json.loads(cfg_path.read_text(encoding="utf-8")).get("metadata", {}).get("train_config_hash")
            )
        except (OSError, ValueError, AttributeError):
            stored_hash = None
    if config.overwrite:
        return "overwrite"
    if stored_hash == config_hash(config):
        return "reuse"
    if cfg_path.is_file():
        raise ConfigError(
            f"output folder {out} already holds an SAE trained with a different config",
            "pass --overwrite to replace it or choose another --out",
        )
    raise ConfigError(
        f"output folder {out} holds checkpoints of an unfinished run",
        "pass --overwrite to start over or choose another --out",
    )


def _clear_output(out: Path) -> None:
    for path in out.iterdir():
        if path.name.startswith(".") and not path.name.endswith(".tmp"):
            continue
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
