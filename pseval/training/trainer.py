"""SAE training end to end: ``train_sae(config)`` and the evaluation of the result on held-out activations.

The loop itself is :mod:`pseval.training.loop` (:func:`train_sae_on_activations`, over any iterator of
``[batch, d_in]`` tensors); :func:`train_sae` feeds it from the activation store (model + corpus) and
writes the result through :mod:`pseval.training.output` as a SAELens-format folder.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from pseval._io import check_writable
from pseval.errors import DataError, SAEError
from pseval.sae.model import SAE
from pseval.training.config import TrainConfig
from pseval.training.loop import geometric_median, lr_factor, train_sae_on_activations
from pseval.training.output import _clear_output, check_output_dir, config_hash, export_sae, write_output
from pseval.training.run_log import (
    CHECKPOINTS_DIR,
    DENSE_THRESHOLD,
    TRAINING_LOG_FILE,
    EvalMetrics,
    ProgressCallback,
    StepMetrics,
    TrainLog,
    TrainResult,
)

__all__ = [
    "CHECKPOINTS_DIR",
    "DENSE_THRESHOLD",
    "TRAINING_LOG_FILE",
    "EvalMetrics",
    "ProgressCallback",
    "StepMetrics",
    "TrainLog",
    "TrainResult",
    "check_output_dir",
    "config_hash",
    "context_bos_metadata",
    "evaluate_sae_on_activations",
    "export_sae",
    "geometric_median",
    "lr_factor",
    "make_store",
    "train_sae",
    "train_sae_on_activations",
    "write_output",
]


@torch.no_grad()
def evaluate_sae_on_activations(
    sae: SAE, batches: Iterable[Tensor], max_tokens: int | None = None
) -> EvalMetrics:
    """MSE, explained variance, cosine, L0 and dead/dense fractions of ``sae`` on ``batches`` (raw units)."""
    device = sae.device
    sq_err = 0.0
    sum_x_D = torch.zeros(sae.d_in, dtype=torch.float64, device=device)
    sum_sq = 0.0
    cos_sum = 0.0
    l0_sum = 0.0
    counts_F = torch.zeros(sae.d_sae, dtype=torch.float64, device=device)
    n_tokens = 0
    for x_ND in batches:
        if max_tokens is not None and n_tokens >= max_tokens:
            break
        if max_tokens is not None:
            x_ND = x_ND[: max_tokens - n_tokens]
        x_ND = x_ND.to(device=device, dtype=sae.dtype)
        feats_NF = sae.encode(x_ND)
        recon_ND = sae.decode(feats_NF, x_ND)
        x64_ND = x_ND.double()
        sq_err += float((recon_ND.double() - x64_ND).pow(2).sum())
        sum_x_D += x64_ND.sum(dim=0)
        sum_sq += float(x64_ND.pow(2).sum())
        cos_sum += float(torch.nn.functional.cosine_similarity(recon_ND.double(), x64_ND, dim=-1).sum())
        active_NF = feats_NF > 0
        l0_sum += float(active_NF.sum())
        counts_F += active_NF.sum(dim=0).double()
        n_tokens += int(x_ND.shape[0])
    if n_tokens == 0:
        raise DataError("no held-out activations to evaluate on", "raise eval_tokens or check the corpus")
    total_var = sum_sq - float(sum_x_D.pow(2).sum()) / n_tokens
    return EvalMetrics(
        n_tokens=n_tokens,
        mse=sq_err / n_tokens,
        explained_variance=1.0 - sq_err / total_var if total_var > 0 else 0.0,
        cosine=cos_sum / n_tokens,
        l0=l0_sum / n_tokens,
        dead_fraction=float((counts_F == 0).double().mean()),
        dense_fraction=float((counts_F > DENSE_THRESHOLD * n_tokens).double().mean()),
    )


# --------------------------------------------------------------------------------------------------
# End to end


def train_sae(
    config: TrainConfig,
    *,
    callbacks: Sequence[ProgressCallback] = (),
    progress: bool = True,
    loaded: Any | None = None,
) -> TrainResult:
    """Train an SAE on a model's activations from the configured corpus and write it to the output folder.

    An output folder that already holds the SAE of an identical config is reused (nothing is retrained);
    one holding a different SAE is refused unless ``config.overwrite``. ``loaded`` is the already loaded
    ``config.model`` (callers training many SAEs pass it so the model is not loaded again for each).
    """
    from pseval.models.hooks import hook_width, parse_hook_name
    from pseval.models.loading import load_model
    from pseval.sae.formats import load_sae

    device = config.resolve_device()
    check_writable(config.output_dir(), "--out")
    # With an explicit folder, decide before loading the model (refusals and reuse cost nothing).
    if config.out is not None and check_output_dir(config, Path(config.out)) == "reuse":
        return _reused_result(config, Path(config.out), load_sae(str(config.out), device=device))
    if loaded is None:
        loaded = load_model(config.model, device=device)
    parse_hook_name(config.hook_name, loaded.model)
    d_in = hook_width(loaded.model, config.hook_name)
    d_sae = config.resolve_d_sae(d_in)
    out = config.output_dir(d_sae)
    action = check_output_dir(config, out)
    if action == "reuse":
        return _reused_result(config, out, load_sae(str(out), device=device))
    if action == "overwrite":
        _clear_output(out)

    store = make_store(config, loaded)
    batches = store.batches(config.hook_name, config.batch_size, config.training_tokens)
    sae, log = train_sae_on_activations(
        config,
        batches,
        d_in,
        callbacks=callbacks,
        progress=progress,
        checkpoint_dir=out / CHECKPOINTS_DIR if config.checkpoint_every else None,
        model_name=config.model,
        hook_name=config.hook_name,
    )
    sae.cfg.metadata = {**sae.cfg.metadata, **context_bos_metadata(store)}
    metrics = None
    if config.eval_tokens > 0:
        try:
            metrics = evaluate_sae_on_activations(
                sae.to(device), _holdout_batches(store, config), max_tokens=config.eval_tokens
            )
        except DataError as exc:  # a corpus too small to hold out text: keep the trained SAE anyway
            warnings.warn(f"held-out evaluation skipped: {exc}", stacklevel=2)
        else:
            sae.cfg.metadata = {**sae.cfg.metadata, "eval": metrics.model_dump(mode="json")}
    sae = sae.to("cpu")
    write_output(sae, out, log, metrics)
    return TrainResult(sae=sae, out=out, config=config, log=log, eval=metrics)


def context_bos_metadata(store: Any) -> dict[str, Any]:
    """How the training contexts began, for the SAE's config: evaluation builds its prompts the same way.

    ``prepend_bos`` is True when every context started with BOS; when the tokenizer has no BOS and its EOS
    stood in for it, ``bos_token_id``/``bos_token`` name that token.
    """
    add_bos = bool(getattr(store, "add_bos", False))
    out: dict[str, Any] = {"prepend_bos": add_bos}
    tokenizer = getattr(store, "tokenizer", None)
    if (
        add_bos
        and tokenizer is not None
        and tokenizer.bos_token_id is None
        and tokenizer.eos_token_id is not None
    ):
        out["bos_token_id"] = int(tokenizer.eos_token_id)
        out["bos_token"] = str(tokenizer.convert_ids_to_tokens(int(tokenizer.eos_token_id)))
    return out


def make_store(config: TrainConfig, loaded: Any) -> Any:
    """The activation store (and disk cache) that training with ``config`` reads from.

    Callers that train several SAEs (the demo, sweeps) harvest every hook through it in one pass first,
    so each ``train_sae`` call then finds its activations cached.
    """
    from pseval.activations.store import ActivationStore

    return ActivationStore(
        loaded,
        corpus=config.corpus,
        context_size=config.context_size,
        model_batch_size=config.model_batch_size,
        buffer_tokens=config.buffer_tokens,
        seed=config.seed,
        cache=config.cache_activations,
        cache_root=config.cache_dir,
        cache_dtype=config.cache_dtype,
    )


def _holdout_batches(store: Any, config: TrainConfig) -> Iterable[Tensor]:
    return store.holdout_activations(config.hook_name, config.eval_tokens)  # type: ignore[no-any-return]


def _reused_result(config: TrainConfig, out: Path, sae: SAE) -> TrainResult:
    log: TrainLog | None = None
    metrics: EvalMetrics | None = None
    log_path = out / TRAINING_LOG_FILE
    if log_path.is_file():
        try:
            payload = json.loads(log_path.read_text(encoding="utf-8"))
            eval_payload = payload.pop("eval", None)
            log = TrainLog.model_validate(payload)
            metrics = EvalMetrics.model_validate(eval_payload) if eval_payload else None
        except (OSError, ValueError) as exc:
            raise SAEError(
                f"training log {log_path} is unreadable: {exc}", "pass --overwrite to retrain"
            ) from None
    return TrainResult(sae=sae, out=out, config=config, log=log, eval=metrics, reused=True)
