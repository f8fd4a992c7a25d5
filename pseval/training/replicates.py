"""Replicates: one training config trained with several seeds, to measure training noise.

Replicate ``i`` (0-based) of a config with seed ``S`` is trained with seed ``S + i`` and is otherwise the same
config. The first replicate keeps the config's own output folder, so ``--seeds 1`` (the default) names and
finds exactly what a plain run does and raising ``--seeds`` later reuses it; replicate ``i > 0`` goes to that
folder's name with ``-seed<S+i>`` appended (``topk-4608``, ``topk-4608-seed43``, ``topk-4608-seed44``).
Every replicate records its seed and the hash of its config without the seed
(``metadata.train_config_hash_without_seed``), which is how ``pseval reliability`` groups them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pseval.training import trainer
from pseval.training.config import TrainConfig
from pseval.training.trainer import ProgressCallback, TrainResult, check_output_dir


def replicate_seeds(seed: int, n: int) -> list[int]:
    """The seeds of ``n`` replicates of a config whose seed is ``seed``: ``seed, seed+1, ..., seed+n-1``."""
    return [seed + i for i in range(n)]


def seed_suffix(index: int, seed: int) -> str:
    """What replicate ``index`` (trained with ``seed``) appends to its config's name: nothing for the first."""
    return "" if index == 0 else f"-seed{seed}"


def replicate_configs(config: TrainConfig, d_sae: int | None = None) -> list[TrainConfig]:
    """One single-seed TrainConfig per replicate of ``config`` (``config.seeds`` of them).

    Replicates after the first get an explicit ``out``: ``config``'s folder (its default one resolved with
    ``d_sae`` when ``out`` is unset) plus ``-seed<S>``.
    """
    configs = []
    for index, seed in enumerate(replicate_seeds(config.seed, config.seeds)):
        update: dict[str, Any] = {"seed": seed, "seeds": 1}
        if index > 0:
            update["out"] = Path(f"{config.output_dir(d_sae)}{seed_suffix(index, seed)}")
        configs.append(config.model_copy(update=update))
    return configs


def train_replicates(
    config: TrainConfig,
    *,
    callbacks: Sequence[ProgressCallback] = (),
    progress: bool = True,
    loaded: Any | None = None,
) -> list[TrainResult]:
    """Train (or reuse) every replicate of ``config`` one after another; the model is loaded once."""
    if config.seeds == 1:
        return [trainer.train_sae(config, callbacks=callbacks, progress=progress, loaded=loaded)]
    d_sae = None
    with_folders = config.out is not None  # every replicate's folder is known without the model
    if not (
        with_folders
        and all(check_output_dir(r, r.output_dir()) == "reuse" for r in replicate_configs(config))
    ):
        from pseval.models.hooks import hook_width, parse_hook_name
        from pseval.models.loading import load_model

        loaded = loaded or load_model(config.model, device=config.resolve_device())
        parse_hook_name(config.hook_name, loaded.model)
        d_sae = config.resolve_d_sae(hook_width(loaded.model, config.hook_name))
    return [
        trainer.train_sae(replicate, callbacks=callbacks, progress=progress, loaded=loaded)
        for replicate in replicate_configs(config, d_sae)
    ]
