"""SAE training: a loop over batches of activations, and the end-to-end ``train_sae(config)``.

The loop (:func:`train_sae_on_activations`) only needs an iterator of ``[batch, d_in]`` tensors, so it is
tested on synthetic data with a known dictionary; :func:`train_sae` feeds it from the activation store
(model + corpus) and writes the result as a SAELens-format folder.

What a step costs is kept close to a bare PyTorch loop of the same shapes: metrics stay on the device and
are read back only every ``log_every`` steps, dead-latent bookkeeping is a couple of vector operations,
and TopK decoders read only the selected rows. Same config and seed give the same weights on CPU.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, Field
from torch import Tensor

from pseval._io import atomic_dir, check_writable, stable_hash, write_json_atomic
from pseval._version import __version__
from pseval.errors import ConfigError, DataError, SAEError
from pseval.metrics.reliability import replicate_identity
from pseval.sae.config import SAE_CONFIGS
from pseval.sae.model import SAE
from pseval.training.architectures import TrainingSAE, build_training_sae
from pseval.training.config import TrainConfig

TRAINING_LOG_FILE = "training_log.json"
CHECKPOINTS_DIR = "checkpoints"
#: A latent firing on more than this fraction of tokens counts as dense.
DENSE_THRESHOLD = 0.1


class StepMetrics(BaseModel):
    """Training metrics averaged over the steps since the previous record."""

    step: int = Field(description="Optimiser steps done.")
    tokens: int = Field(description="Training tokens seen.")
    loss: float = Field(description="Total loss (MSE + sparsity/auxiliary terms).")
    mse: float = Field(
        description="Squared reconstruction error summed over d_in, mean over tokens (normalised units)."
    )
    explained_variance: float = Field(
        description="1 - MSE / variance of the inputs around their mean (variance from one batch per record)."
    )
    l0: float = Field(description="Mean number of active latents per token.")
    aux: float = Field(description="Weighted sparsity or auxiliary loss term.")
    dead_fraction: float = Field(
        description="Fraction of latents that have not fired within dead_feature_window."
    )
    dense_fraction: float = Field(
        description=f"Fraction of latents firing on more than {DENSE_THRESHOLD:.0%} of tokens."
    )
    lr: float = Field(description="Learning rate at this step.")


class TrainLog(BaseModel):
    """How a training run went: its metric history and final numbers."""

    architecture: str = Field(description="Architecture trained.")
    d_in: int = Field(description="Input width.")
    d_sae: int = Field(description="Number of latents.")
    n_steps: int = Field(description="Optimiser steps done.")
    n_tokens: int = Field(description="Training tokens seen.")
    seconds: float = Field(description="Wall-clock time of the loop.")
    tokens_per_second: float = Field(description="Training throughput.")
    input_scale: float = Field(
        description="Factor inputs were multiplied by during training (folded out on export)."
    )
    ran_out_of_data: bool = Field(
        default=False, description="True if the batches ended before training_tokens."
    )
    history: list[StepMetrics] = Field(default_factory=list, description="Metrics every log_every steps.")
    checkpoints: list[str] = Field(default_factory=list, description="Checkpoint folders written.")

    @property
    def final(self) -> StepMetrics | None:
        """The last metric record."""
        return self.history[-1] if self.history else None


class EvalMetrics(BaseModel):
    """Reconstruction and sparsity of the trained SAE on held-out activations (raw units)."""

    n_tokens: int = Field(description="Held-out tokens evaluated.")
    mse: float = Field(description="Squared error summed over d_in, mean over tokens.")
    explained_variance: float = Field(description="1 - total squared error / total variance around the mean.")
    cosine: float = Field(description="Mean cosine similarity between inputs and reconstructions.")
    l0: float = Field(description="Mean active latents per token.")
    dead_fraction: float = Field(description="Fraction of latents that never fired on the held-out tokens.")
    dense_fraction: float = Field(
        description=f"Fraction of latents firing on more than {DENSE_THRESHOLD:.0%} of tokens."
    )


@dataclass
class TrainResult:
    """A trained (or reused) SAE, where it was written and how training went."""

    sae: SAE
    out: Path
    config: TrainConfig
    log: TrainLog | None
    eval: EvalMetrics | None
    reused: bool = False


ProgressCallback = Callable[[StepMetrics], None]


# --------------------------------------------------------------------------------------------------
# Initialisation helpers


def geometric_median(points_ND: Tensor, n_iter: int = 30, eps: float = 1e-8) -> Tensor:
    """Weiszfeld's algorithm: the point minimising the sum of Euclidean distances to ``points``.

    A robust centre for ``b_dec`` (a mean is dragged by the few huge-norm activations of some tokens).
    """
    points = points_ND.double()
    median = points.mean(dim=0)
    for _ in range(n_iter):
        weights_N = 1.0 / (points - median).norm(dim=1).clamp_min(eps)
        new = (weights_N[:, None] * points).sum(dim=0) / weights_N.sum()
        if (new - median).norm() <= 1e-7 * median.norm().clamp_min(1.0):
            median = new
            break
        median = new
    return median.to(points_ND.dtype)


def lr_factor(step: int, n_steps: int, config: TrainConfig) -> float:
    """Learning-rate multiplier at ``step`` (0-based): warm-up, then constant (+ linear decay) or cosine."""
    warmup = config.lr_warmup_steps
    if warmup and step < warmup:
        return (step + 1) / warmup
    end = config.lr_end_factor
    if config.lr_schedule == "cosine":
        progress = (step - warmup) / max(1, n_steps - warmup - 1)
        return end + (1 - end) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
    decay = config.lr_decay_steps
    start = n_steps - decay
    if decay and step >= start:
        return 1.0 - (1.0 - end) * (step - start + 1) / decay
    return 1.0


def _sparsity_coefficient(base: float, step: int, warmup: int) -> float:
    return base * min(1.0, (step + 1) / warmup) if warmup else base


# --------------------------------------------------------------------------------------------------
# The training loop


class _Accumulator:
    """Sums of per-step metrics kept on the device, read back once per log record."""

    def __init__(self, d_sae: int, device: torch.device) -> None:
        self.sums = torch.zeros(4, device=device, dtype=torch.float64)  # loss, mse, l0, aux
        self.var = torch.zeros((), device=device)
        self.fire_counts_F = torch.zeros(d_sae, device=device)
        self.steps = 0
        self.tokens = 0

    def add(self, loss: Tensor, mse: Tensor, l0: Tensor, aux: Tensor, fire_counts_F: Tensor, n: int) -> None:
        self.sums += torch.stack([loss.detach(), mse, l0, aux]).double()
        self.fire_counts_F += fire_counts_F
        self.steps += 1
        self.tokens += n

    def reset(self) -> None:
        self.sums.zero_()
        self.fire_counts_F.zero_()
        self.steps = 0
        self.tokens = 0


def _check_batch(x: Any, d_in: int) -> Tensor:
    if not isinstance(x, Tensor) or x.ndim != 2 or x.shape[1] != d_in:
        shape = list(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise DataError(
            f"activation batch has shape {shape}, expected [batch, {d_in}]",
            "yield 2-D tensors of width d_in from the batch iterator",
        )
    return x


def _input_scale(x_ND: Tensor, d_in: int, normalize: bool) -> float:
    if not normalize:
        return 1.0
    mean_norm = float(x_ND.double().norm(dim=1).mean())
    if not math.isfinite(mean_norm) or mean_norm <= 0:
        raise DataError(
            f"the first activation batch has mean norm {mean_norm}", "check the hook and the input data"
        )
    return math.sqrt(d_in) / mean_norm


def _init_b_dec(module: TrainingSAE, first_ND: Tensor, how: str) -> None:
    if how == "zeros":
        return
    sample_ND = first_ND[:4096].double()
    centre_D = geometric_median(sample_ND) if how == "geometric_median" else sample_ND.mean(dim=0)
    with torch.no_grad():
        module.b_dec.copy_(centre_D.to(module.b_dec.dtype))


def _make_optimizer(module: TrainingSAE, config: TrainConfig, device: torch.device) -> torch.optim.Adam:
    groups = module.param_groups(config.lr)
    kwargs: dict[str, Any] = {"betas": (config.adam_beta1, config.adam_beta2)}
    # The fused kernel is the fastest on GPU; on CPU the foreach implementation is (several times) faster.
    if device.type == "cuda":
        try:
            return torch.optim.Adam(groups, fused=True, **kwargs)
        except (RuntimeError, TypeError, ValueError):
            pass
    return torch.optim.Adam(groups, foreach=True, **kwargs)


def train_sae_on_activations(
    config: TrainConfig,
    batches: Iterable[Tensor],
    d_in: int,
    *,
    callbacks: Sequence[ProgressCallback] = (),
    progress: bool = True,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    model_name: str | None = None,
    hook_name: str | None = None,
) -> tuple[SAE, TrainLog]:
    """Train an SAE on ``batches`` (tensors ``[batch, d_in]``) until ``config.training_tokens`` are seen.

    Returns the inference SAE (raw activation units, unit-norm decoder rows, ``cfg.metadata`` filled with
    the run's provenance) and the :class:`TrainLog`. ``callbacks`` get every :class:`StepMetrics` record.
    Checkpoints go to ``checkpoint_dir/<tokens>/`` every ``config.checkpoint_every`` tokens (default folder:
    ``<config.out>/checkpoints`` when ``out`` is set). Stops early, with ``ran_out_of_data``, if the
    batches end first.
    """
    device = torch.device(config.resolve_device())
    d_sae = config.resolve_d_sae(d_in)
    iterator = iter(batches)
    try:
        first_ND = _check_batch(next(iterator), d_in)
    except StopIteration:
        raise DataError("the activation batches are empty", "provide at least one batch") from None
    input_scale = _input_scale(first_ND, d_in, config.normalize_activations)

    generator = torch.Generator().manual_seed(config.seed)
    module = build_training_sae(config, d_in, d_sae, generator)
    _init_b_dec(module, first_ND.float() * input_scale, config.b_dec_init)
    module.to(device)
    optimizer = _make_optimizer(module, config, device)
    params = [p for group in optimizer.param_groups for p in group["params"]]

    if checkpoint_dir is None and config.checkpoint_every and config.out is not None:
        checkpoint_dir = Path(config.out) / CHECKPOINTS_DIR
    next_checkpoint = config.checkpoint_every or None

    n_steps = config.n_steps()
    base_coefficient = module.sparsity_coefficient()
    tokens_since_fired_F = torch.zeros(d_sae, device=device, dtype=torch.int64)
    any_dead = False
    acc = _Accumulator(d_sae, device)
    log = TrainLog(
        architecture=config.architecture,
        d_in=d_in,
        d_sae=d_sae,
        n_steps=0,
        n_tokens=0,
        seconds=0.0,
        tokens_per_second=0.0,
        input_scale=input_scale,
    )
    autocast = (
        torch.autocast(device_type=device.type, dtype=torch.bfloat16)
        if config.dtype == "bfloat16"
        else nullcontext()
    )
    bar = _progress_bar(config.training_tokens, progress)

    def export(tokens: int) -> SAE:
        return export_sae(
            module,
            input_scale,
            config=config,
            log=log,
            tokens=tokens,
            model_name=model_name,
            hook_name=hook_name,
        )

    def batch_stream() -> Iterator[Tensor]:
        yield first_ND
        for x in iterator:
            yield _check_batch(x, d_in)

    stream = batch_stream()
    tokens = 0
    step = 0
    start = time.perf_counter()
    module.train()
    while tokens < config.training_tokens:
        try:
            x_ND = next(stream)
        except StopIteration:
            log.ran_out_of_data = True
            break
        remaining = config.training_tokens - tokens
        if x_ND.shape[0] > remaining:
            x_ND = x_ND[:remaining]
        n = int(x_ND.shape[0])
        if n == 0:
            continue
        x_ND = x_ND.to(device, dtype=torch.float32, non_blocking=True)
        if input_scale != 1.0:
            x_ND = x_ND * input_scale

        factor = lr_factor(step, n_steps, config)
        for group in optimizer.param_groups:
            group["lr"] = config.lr * group["lr_scale"] * factor
        coefficient = _sparsity_coefficient(base_coefficient, step, config.l1_warmup_steps)
        dead_F = tokens_since_fired_F > config.dead_feature_window if any_dead else None

        with autocast:
            out = module.training_step(x_ND, coefficient, dead_F)
        optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        module.before_optimizer_step()
        if config.max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm, foreach=True)
        optimizer.step()
        module.after_optimizer_step(out)

        tokens_since_fired_F += n
        tokens_since_fired_F.masked_fill_(out.fire_counts_F > 0, 0)
        if acc.steps == 0:  # the input variance is stable: one batch per record is enough
            acc.var = (x_ND - x_ND.mean(dim=0)).pow(2).sum(dim=-1).mean()
        acc.add(out.loss, out.mse, out.l0, out.aux, out.fire_counts_F, n)
        tokens += n
        step += 1
        bar.update(n)

        last = tokens >= config.training_tokens
        if step % config.log_every == 0 or last:
            dead_now_F = tokens_since_fired_F > config.dead_feature_window
            any_dead = bool(dead_now_F.any())
            record = _record(acc, step, tokens, dead_now_F, optimizer.param_groups[0]["lr"])
            acc.reset()
            log.history.append(record)
            bar.set_postfix(
                # Raw activation units, the scale of the final summary and of `pseval metrics`.
                mse=f"{record.mse / input_scale**2:.4g}",
                ev=f"{record.explained_variance:.3f}",
                l0=f"{record.l0:.1f}",
                dead=f"{record.dead_fraction:.1%}",
                refresh=False,
            )
            for callback in callbacks:
                callback(record)
        if (
            next_checkpoint is not None
            and checkpoint_dir is not None
            and tokens >= next_checkpoint
            and not last
        ):
            folder = Path(checkpoint_dir) / str(tokens)
            sae = export(tokens)
            _save_folder(sae, folder, log)
            log.checkpoints.append(str(folder))
            while next_checkpoint <= tokens:
                next_checkpoint += config.checkpoint_every
    bar.close()
    if step == 0:
        raise DataError("no activations were trained on", "provide non-empty batches")
    if acc.steps:  # steps since the last record (the batches ran out between two records)
        dead_now_F = tokens_since_fired_F > config.dead_feature_window
        log.history.append(_record(acc, step, tokens, dead_now_F, optimizer.param_groups[0]["lr"]))
    log.seconds = time.perf_counter() - start
    log.n_steps = step
    log.n_tokens = tokens
    log.tokens_per_second = tokens / log.seconds if log.seconds > 0 else 0.0
    module.eval()
    return export(tokens), log


def _record(acc: _Accumulator, step: int, tokens: int, dead_F: Tensor, lr: float) -> StepMetrics:
    steps = max(acc.steps, 1)
    loss, mse, l0, aux = (float(v) / steps for v in acc.sums.tolist())
    var = float(acc.var)
    dense = float((acc.fire_counts_F > DENSE_THRESHOLD * max(acc.tokens, 1)).float().mean())
    return StepMetrics(
        step=step,
        tokens=tokens,
        loss=loss,
        mse=mse,
        explained_variance=1.0 - mse / var if var > 0 else 0.0,
        l0=l0,
        aux=aux,
        dead_fraction=float(dead_F.float().mean()),
        dense_fraction=dense,
        lr=float(lr),
    )


def _progress_bar(total: int, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(
        total=total, unit="tok", unit_scale=True, desc="train", disable=not enabled, dynamic_ncols=True
    )


# --------------------------------------------------------------------------------------------------
# Export and output folders


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


# --------------------------------------------------------------------------------------------------
# Evaluation on held-out activations


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
