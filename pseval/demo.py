"""The embedded default: train a small SAE suite on SmolLM2 (first time only) and evaluate it.

``pseval demo`` (and ``make demo``) trains a ReLU and a TopK SAE at the residual stream and at the attention
output of one middle layer, from the bundled corpus, caches them under ``$PSEVAL_CACHE/demo/``, then runs
PS-Eval with baselines, intervals and the standard metrics, and prints one table. A second run reuses the
SAEs and the finished results.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, Field

from pseval._io import cache_dir
from pseval.evals.config import PSEvalConfig
from pseval.evals.schema import PSEvalResult


class DemoConfig(BaseModel):
    """The default suite; small enough to train on 2 CPU cores in minutes."""

    model: str = Field(default="smollm2-135m", description="Model alias, Hugging Face id or local folder.")
    layer: int = Field(default=12, ge=0, description="The middle layer the suite is trained at.")
    hook_kinds: list[str] = Field(
        default=["resid_post", "attn_out"],
        description="Hook kinds: the residual stream and the attention output.",
    )
    architectures: list[str] = Field(default=["standard", "topk"], description="ReLU (L1) and TopK SAEs.")
    expansion_factor: int = Field(default=8, gt=0, description="Latents per input dimension (576 → 4,608).")
    k: int = Field(default=32, gt=0, description="k of the TopK SAE.")
    l1_coefficient: float = Field(default=5.0, ge=0, description="L1 coefficient of the ReLU SAE.")
    training_tokens: int = Field(default=131_072, gt=0, description="Training tokens per SAE.")
    batch_size: int = Field(default=1024, gt=0, description="Tokens per optimiser step.")
    lr: float = Field(default=1e-3, gt=0, description="Adam learning rate (short runs need a larger one).")
    standard_metrics_tokens: int = Field(
        default=4096, ge=0, description="Held-out corpus tokens for MSE/L0/CE-recovered."
    )
    standard_metrics_ce_tokens: int = Field(
        default=1024,
        ge=0,
        description="Of those, tokens for CE loss recovered and KL (three full forward passes).",
    )
    seed: int = Field(default=42, description="Training seed.")

    def hooks(self) -> list[str]:
        """The hook names of the suite."""
        return [f"blocks.{self.layer}.hook_{kind}" for kind in self.hook_kinds]


def demo_sae_dir() -> Path:
    """Where the demo's SAEs are cached."""
    return cache_dir() / "demo" / "saes"


def run_demo(
    config: DemoConfig | None = None,
    output_folder: str | Path = "results/demo",
    force_rerun: bool = False,
    status: Callable[[str], None] = print,
) -> tuple[list[PSEvalResult], dict[str, Any]]:
    """Train (or reuse) the suite, evaluate it, and return the results plus timings."""
    from pseval.evals.runner import evaluate
    from pseval.models.loading import load_model
    from pseval.training.config import TrainConfig
    from pseval.training.trainer import make_store, train_sae

    config = config or DemoConfig()
    timings: dict[str, float] = {}
    started = time.time()
    status(f"loading {config.model} (exported once to the cache on first use)")
    # Loaded on the device training uses, so every train_sae call below can reuse it.
    device = "cuda" if torch.cuda.is_available() else "cpu"
    loaded = load_model(config.model, device=device)
    timings["load_model_s"] = time.time() - started

    train_configs = []
    for hook in config.hooks():
        for arch in config.architectures:
            extra: dict[str, Any] = {"k": config.k} if arch in ("topk", "batchtopk") else {}
            if arch in ("standard", "gated"):
                extra["l1_coefficient"] = config.l1_coefficient
            name = f"L{config.layer}-{hook.split('hook_')[1]}-{arch}-x{config.expansion_factor}"
            train_configs.append(
                TrainConfig(
                    model=config.model,
                    hook_name=hook,
                    architecture=arch,  # type: ignore[arg-type]
                    expansion_factor=config.expansion_factor,
                    training_tokens=config.training_tokens,
                    batch_size=config.batch_size,
                    lr=config.lr,
                    seed=config.seed,
                    eval_tokens=0,
                    device=device,
                    out=demo_sae_dir() / name,
                    **extra,
                )
            )

    missing = [tc for tc in train_configs if not (Path(str(tc.out)) / "cfg.json").is_file()]
    t0 = time.time()
    if missing:
        first = missing[0]
        store = make_store(first, loaded)
        hooks = sorted({tc.hook_name for tc in missing})
        if any(store.find_cache(hook, config.training_tokens) is None for hook in hooks):
            status(
                f"harvesting {config.training_tokens:,} tokens at {', '.join(hooks)} (one pass for all hooks)"
            )
        store.harvest(hooks, config.training_tokens)
    timings["harvest_s"] = time.time() - t0

    t0 = time.time()
    sae_dirs = []
    for tc in train_configs:
        result = train_sae(tc, progress=True, loaded=loaded)
        status(("reused " if result.reused else "trained ") + str(result.out))
        sae_dirs.append(str(result.out))
    timings["train_s"] = time.time() - t0

    t0 = time.time()
    results = evaluate(
        loaded,
        sae_dirs,
        config=PSEvalConfig(
            model_name=config.model,
            standard_metrics_tokens=config.standard_metrics_tokens,
            standard_metrics_ce_tokens=config.standard_metrics_ce_tokens,
        ),
        output_folder=output_folder,
        force_rerun=force_rerun,
        on_status=status,
    )
    timings["eval_s"] = time.time() - t0
    timings["total_s"] = time.time() - started
    return results, timings
