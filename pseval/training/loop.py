"""The SAE training loop over batches of activations.

The loop (:func:`train_sae_on_activations`) only needs an iterator of ``[batch, d_in]`` tensors, so it is
tested on synthetic data with a known dictionary; :func:`train_sae` feeds it from the activation store
(model + corpus) and writes the result as a SAELens-format folder.

What a step costs is kept close to a bare PyTorch loop of the same shapes: metrics stay on the device and
are read back only every ``log_every`` steps, dead-latent bookkeeping is a couple of vector operations,
and TopK decoders read only the selected rows. Same config and seed give the same weights on CPU.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from pseval.errors import DataError
from pseval.sae.model import SAE
from pseval.training.architectures import TrainingSAE, build_training_sae
from pseval.training.config import TrainConfig
from pseval.training.output import _save_folder, export_sae
from pseval.training.run_log import CHECKPOINTS_DIR, DENSE_THRESHOLD, ProgressCallback, StepMetrics, TrainLog

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
    if checkpoint_dir is None and config.checkpoint_every and config.out is not None:
        checkpoint_dir = Path(config.out) / CHECKPOINTS_DIR
    run = _TrainingRun(
        config,
        module,
        device,
        input_scale,
        checkpoint_dir=checkpoint_dir,
        model_name=model_name,
        hook_name=hook_name,
    )
    bar = _progress_bar(config.training_tokens, progress)
    stream = _checked_batches(first_ND, iterator, d_in)
    start = time.perf_counter()
    module.train()
    while run.tokens < config.training_tokens:
        try:
            x_ND = next(stream)
        except StopIteration:
            run.log.ran_out_of_data = True
            break
        remaining = config.training_tokens - run.tokens
        if x_ND.shape[0] > remaining:
            x_ND = x_ND[:remaining]
        if x_ND.shape[0] == 0:
            continue
        run.train_step(x_ND)
        bar.update(int(x_ND.shape[0]))
        last = run.tokens >= config.training_tokens
        if run.step % config.log_every == 0 or last:
            run.write_record(bar, callbacks)
        if run.checkpoint_due() and not last:
            run.write_checkpoint()
    bar.close()
    return run.finish(time.perf_counter() - start)


def _checked_batches(first_ND: Tensor, rest: Iterator[Any], d_in: int) -> Iterator[Tensor]:
    yield first_ND
    for x in rest:
        yield _check_batch(x, d_in)


class _TrainingRun:
    """One training run's state: the module and its optimiser, dead-latent counters, the metric log."""

    def __init__(
        self,
        config: TrainConfig,
        module: TrainingSAE,
        device: torch.device,
        input_scale: float,
        *,
        checkpoint_dir: str | os.PathLike[str] | None,
        model_name: str | None,
        hook_name: str | None,
    ) -> None:
        self.config = config
        self.module = module
        self.device = device
        self.input_scale = input_scale
        self.optimizer = _make_optimizer(module, config, device)
        self.params = [p for group in self.optimizer.param_groups for p in group["params"]]
        self.checkpoint_dir = checkpoint_dir
        self.next_checkpoint: int | None = config.checkpoint_every or None
        self.model_name = model_name
        self.hook_name = hook_name
        self.n_steps = config.n_steps()
        self.base_coefficient = module.sparsity_coefficient()
        self.tokens_since_fired_F = torch.zeros(module.d_sae, device=device, dtype=torch.int64)
        self.any_dead = False
        self.acc = _Accumulator(module.d_sae, device)
        self.log = TrainLog(
            architecture=config.architecture,
            d_in=module.d_in,
            d_sae=module.d_sae,
            n_steps=0,
            n_tokens=0,
            seconds=0.0,
            tokens_per_second=0.0,
            input_scale=input_scale,
        )
        self.autocast: Any = (
            torch.autocast(device_type=device.type, dtype=torch.bfloat16)
            if config.dtype == "bfloat16"
            else nullcontext()
        )
        self.tokens = 0
        self.step = 0

    def train_step(self, x_ND: Tensor) -> None:
        """One optimiser step on the (non-empty) batch ``x_ND``, in raw activation units."""
        config = self.config
        n = int(x_ND.shape[0])
        x_ND = x_ND.to(self.device, dtype=torch.float32, non_blocking=True)
        if self.input_scale != 1.0:
            x_ND = x_ND * self.input_scale

        factor = lr_factor(self.step, self.n_steps, config)
        for group in self.optimizer.param_groups:
            group["lr"] = config.lr * group["lr_scale"] * factor
        coefficient = _sparsity_coefficient(self.base_coefficient, self.step, config.l1_warmup_steps)
        dead_F = self.tokens_since_fired_F > config.dead_feature_window if self.any_dead else None

        with self.autocast:
            out = self.module.training_step(x_ND, coefficient, dead_F)
        self.optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        self.module.before_optimizer_step()
        if config.max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(self.params, config.max_grad_norm, foreach=True)
        self.optimizer.step()
        self.module.after_optimizer_step(out)

        self.tokens_since_fired_F += n
        self.tokens_since_fired_F.masked_fill_(out.fire_counts_F > 0, 0)
        if self.acc.steps == 0:  # the input variance is stable: one batch per record is enough
            self.acc.var = (x_ND - x_ND.mean(dim=0)).pow(2).sum(dim=-1).mean()
        self.acc.add(out.loss, out.mse, out.l0, out.aux, out.fire_counts_F, n)
        self.tokens += n
        self.step += 1

    def write_record(self, bar: Any, callbacks: Sequence[ProgressCallback]) -> None:
        """Average the steps since the last record into the log, the progress bar and the callbacks."""
        dead_now_F = self.tokens_since_fired_F > self.config.dead_feature_window
        self.any_dead = bool(dead_now_F.any())
        record = _record(self.acc, self.step, self.tokens, dead_now_F, self.optimizer.param_groups[0]["lr"])
        self.acc.reset()
        self.log.history.append(record)
        bar.set_postfix(
            # Raw activation units, the scale of the final summary and of `pseval metrics`.
            mse=f"{record.mse / self.input_scale**2:.4g}",
            ev=f"{record.explained_variance:.3f}",
            l0=f"{record.l0:.1f}",
            dead=f"{record.dead_fraction:.1%}",
            refresh=False,
        )
        for callback in callbacks:
            callback(record)

    def checkpoint_due(self) -> bool:
        return (
            self.next_checkpoint is not None
            and self.checkpoint_dir is not None
            and self.tokens >= self.next_checkpoint
        )

    def write_checkpoint(self) -> None:
        assert self.checkpoint_dir is not None and self.next_checkpoint is not None
        folder = Path(self.checkpoint_dir) / str(self.tokens)
        _save_folder(self.export(), folder, self.log)
        self.log.checkpoints.append(str(folder))
        while self.next_checkpoint <= self.tokens:
            self.next_checkpoint += self.config.checkpoint_every

    def export(self) -> SAE:
        return export_sae(
            self.module,
            self.input_scale,
            config=self.config,
            log=self.log,
            tokens=self.tokens,
            model_name=self.model_name,
            hook_name=self.hook_name,
        )

    def finish(self, seconds: float) -> tuple[SAE, TrainLog]:
        """The final SAE and log, after a last record of the steps since the previous one."""
        if self.step == 0:
            raise DataError("no activations were trained on", "provide non-empty batches")
        if self.acc.steps:  # steps since the last record (the batches ran out between two records)
            dead_now_F = self.tokens_since_fired_F > self.config.dead_feature_window
            lr = self.optimizer.param_groups[0]["lr"]
            self.log.history.append(_record(self.acc, self.step, self.tokens, dead_now_F, lr))
        log = self.log
        log.seconds = seconds
        log.n_steps = self.step
        log.n_tokens = self.tokens
        log.tokens_per_second = self.tokens / seconds if seconds > 0 else 0.0
        self.module.eval()
        return self.export(), log


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
