"""Sweep configuration: a grid of SAEs to train and evaluate, validated up front.

A sweep is a YAML file (or a preset) whose keys are the fields below; unknown keys and bad values are
rejected with one line before anything runs.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from pseval.errors import ConfigError, parse_error_details, validation_details

HookKind = Literal["resid_pre", "resid_post", "attn_out", "mlp_out"]
Budget = Literal["tiny", "small", "full"]


class GridConfig(BaseModel):
    """The axes of the grid; every combination is one SAE."""

    model_config = ConfigDict(extra="forbid")

    layers: list[int] = Field(min_length=1, description="Layers to train SAEs at.")
    hook_kinds: list[HookKind] = Field(
        default=["resid_post"],
        min_length=1,
        description="Hook kinds: resid_pre, resid_post, attn_out, mlp_out.",
    )
    architectures: list[
        Literal["standard", "topk", "batchtopk", "matryoshka_batchtopk", "jumprelu", "gated"]
    ] = Field(default=["topk"], min_length=1, description="SAE architectures.")
    expansion_factors: list[int] = Field(
        default=[8], min_length=1, description="Latents per input dimension."
    )
    k: list[int] = Field(
        default=[32],
        min_length=1,
        description="k for topk/batchtopk/matryoshka_batchtopk (ignored by the others).",
    )
    l1_coefficients: list[float] = Field(
        default=[5.0], min_length=1, description="L1 coefficient for standard/gated (ignored by the others)."
    )
    l0_coefficients: list[float] = Field(
        default=[1.0], min_length=1, description="L0 coefficient for jumprelu (ignored by the others)."
    )

    @field_validator("layers", "expansion_factors", "k")
    @classmethod
    def _non_negative(cls, values: list[int]) -> list[int]:
        if any(v < 0 for v in values):
            raise ValueError("values must be >= 0")
        return values


class SweepConfig(BaseModel):
    """One sweep: what to train, how much, and how to evaluate it."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Sweep name (used in folder and figure names).")
    model: str = Field(default="smollm2-135m", description="Model alias, Hugging Face id or local folder.")
    corpus: str = Field(default="bundled", description="Training corpus: 'bundled' or a .txt/.jsonl file.")
    grid: GridConfig | list[GridConfig] = Field(
        description="The grid of SAEs, or a list of grids whose union is trained (duplicates once)."
    )
    training_tokens: int = Field(default=1_000_000, gt=0, description="Training tokens per SAE.")
    batch_size: int = Field(default=4096, gt=0, description="Tokens per optimiser step.")
    lr: float = Field(default=3e-4, gt=0, description="Adam learning rate.")
    seed: int = Field(default=42, description="Training seed (shared by every SAE).")
    seeds: int = Field(
        default=1,
        ge=1,
        description="Replicates of every SAE, trained with seeds seed, seed+1, ..., seed+N-1; the first keeps "
        "the SAE's name, the others append -seed<S> (`pseval reliability` measures their spread).",
    )
    train_overrides: dict[str, Any] = Field(
        default_factory=dict, description="Extra TrainConfig fields applied to every SAE (checked up front)."
    )
    eval_overrides: dict[str, Any] = Field(
        default_factory=dict, description="PSEvalConfig fields for the evaluation (dataset, split, ...)."
    )
    standard_metrics_tokens: int = Field(
        default=16_384, ge=0, description="Held-out corpus tokens for MSE/L0/CE-recovered (0 skips them)."
    )
    standard_metrics_ce_tokens: int | None = Field(
        default=None,
        ge=0,
        description="Of those, tokens for CE loss recovered and KL (default min(tokens, 4096)).",
    )
    device: str = Field(default="auto", description="'auto' uses a GPU when present, else the CPU.")
    out: Path | None = Field(default=None, description="Output folder; default runs/<name>.")

    def output_dir(self) -> Path:
        """Where SAEs, results and figures go."""
        return Path(self.out) if self.out is not None else Path("runs") / self.name

    def grids(self) -> list[GridConfig]:
        """The grid(s) as a list."""
        return self.grid if isinstance(self.grid, list) else [self.grid]

    def hook_names(self) -> list[str]:
        """Every hook of the sweep, once each, in order of first appearance."""
        return list(dict.fromkeys(run.hook_name for run in self.runs()))

    def training_seed(self) -> int:
        """The seed of every SAE's first replicate (``train_overrides`` may set it instead of ``seed``)."""
        return int(self.train_overrides.get("seed", self.seed))

    def runs(self) -> list[SweepRun]:
        """One run per SAE of the grid(s) and seed; axes that do not apply to an architecture are not multiplied.

        An SAE's replicates follow it (grid order, then seed); the first replicate is the run of a one-seed
        sweep, unchanged.
        """
        seen: dict[str, SweepRun] = {}
        for g in self.grids():
            for run in _grid_runs(g):
                seen.setdefault(run.name, run)
        base = self.training_seed()
        return [
            run if i == 0 else run.model_copy(update={"seed": seed})
            for run in seen.values()
            for i, seed in enumerate(range(base, base + self.seeds))
        ]


def _grid_runs(g: GridConfig) -> list[SweepRun]:
    out: list[SweepRun] = []
    for layer, kind, arch, expansion in itertools.product(
        g.layers, g.hook_kinds, g.architectures, g.expansion_factors
    ):
        if arch in ("topk", "batchtopk", "matryoshka_batchtopk"):
            variants: list[dict[str, Any]] = [{"k": k} for k in g.k]
        elif arch in ("standard", "gated"):
            variants = [{"l1_coefficient": c} for c in g.l1_coefficients]
        else:
            variants = [{"l0_coefficient": c} for c in g.l0_coefficients]
        for variant in variants:
            out.append(
                SweepRun(
                    hook_name=f"blocks.{layer}.hook_{kind}",
                    architecture=arch,
                    expansion_factor=expansion,
                    hyperparameters=variant,
                )
            )
    return out


class SweepRun(BaseModel):
    """One SAE of a sweep."""

    model_config = ConfigDict(frozen=True)

    hook_name: str
    architecture: str
    expansion_factor: int
    hyperparameters: dict[str, Any]
    seed: int | None = None
    """The training seed of a replicate after the first (``None``: the sweep's seed, and no name suffix)."""

    @property
    def name(self) -> str:
        """A readable, unique, file-safe name: ``L12-resid_post-topk-x8-k32`` (``...-k32-seed43`` for a
        replicate after the first)."""
        match = re.match(r"blocks\.(\d+)\.hook_(\w+)", self.hook_name)
        layer, kind = (match.group(1), match.group(2)) if match else ("?", self.hook_name)
        extra = "-".join(
            f"{_short(key)}{value:g}" if isinstance(value, float) else f"{_short(key)}{value}"
            for key, value in sorted(self.hyperparameters.items())
        )
        return (
            f"L{layer}-{kind}-{self.architecture}-x{self.expansion_factor}"
            + (f"-{extra}" if extra else "")
            + (f"-seed{self.seed}" if self.seed is not None else "")
        )


def _short(key: str) -> str:
    return {"k": "k", "l1_coefficient": "l1_", "l0_coefficient": "l0_"}.get(key, key)


# Token budgets per SAE and held-out tokens for the standard metrics, by --budget. `full` is the whole train
# split of the bundled corpus once (3.27 M SmolLM2 tokens); a larger budget needs a larger `corpus`.
BUDGETS: dict[str, dict[str, Any]] = {
    "tiny": {
        "training_tokens": 24_576,
        "batch_size": 512,
        "standard_metrics_tokens": 1_024,
        "standard_metrics_ce_tokens": 256,
    },
    "small": {"training_tokens": 1_000_000, "batch_size": 4096, "standard_metrics_tokens": 16_384},
    "full": {"training_tokens": 3_000_000, "batch_size": 4096, "standard_metrics_tokens": 65_536},
}

N_LAYERS_SMOLLM2 = 30


def preset(name: str, budget: Budget = "small") -> SweepConfig:
    """The paper's experiments on the embedded SmolLM2 (30 layers), scaled by ``budget``."""
    every_third = list(range(0, N_LAYERS_SMOLLM2, 3)) + [N_LAYERS_SMOLLM2 - 1]
    middle = 15
    grids: dict[str, dict[str, Any]] = {
        # Paper Fig. 5/6: which layer and which sublayer separates meanings best.
        "paper-layers": {
            "layers": every_third,
            "hook_kinds": ["resid_post", "attn_out", "mlp_out"],
            "architectures": ["topk"],
            "expansion_factors": [4 if budget == "tiny" else 8],
            "k": [32],
        },
        # Paper Fig. 3: wider SAEs help up to an expansion ratio of about 64.
        "paper-expansion": {
            "layers": [middle],
            "hook_kinds": ["resid_post"],
            "architectures": ["topk"],
            "expansion_factors": [4, 8, 16, 32] if budget == "tiny" else [4, 8, 16, 32, 64],
            "k": [32],
        },
        # Paper Fig. 4: activation functions (ReLU vs TopK vs JumpReLU) at comparable L0, plus Matryoshka
        # BatchTopK (default nested widths d_sae/16, d_sae/4, d_sae) at BatchTopK's k.
        "paper-activation": {
            "layers": [middle],
            "hook_kinds": ["resid_post", "attn_out"],
            "architectures": ["standard", "topk", "batchtopk", "matryoshka_batchtopk", "jumprelu"],
            "expansion_factors": [8],
            "k": [32],
            "l1_coefficients": [5.0],
            "l0_coefficients": [1.0],
        },
    }
    if name not in grids and name != "paper-all":
        raise ConfigError(
            f"unknown preset {name!r}",
            "use one of paper-layers, paper-expansion, paper-activation, paper-all",
        )
    scale = BUDGETS[budget]
    if name == "paper-all":
        grid: GridConfig | list[GridConfig] = [GridConfig(**g) for g in grids.values()]
    else:
        grid = GridConfig(**grids[name])
    return SweepConfig(name=f"{name}-{budget}", grid=grid, **scale)


def load_sweep_config(path: str | Path) -> SweepConfig:
    """Read and validate a sweep YAML file (one clear line for any problem)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"sweep config {p} does not exist", "check the path or use --preset")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(
            f"cannot parse {p} as YAML ({parse_error_details(exc)})", "fix its syntax"
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(f"{p} does not hold a mapping of sweep fields", "see docs/sweeps.md for the format")
    data.setdefault("name", p.stem)
    try:
        return validate_sweep_config(data)
    except ConfigError as exc:
        raise ConfigError(f"{p}: {exc.problem}", exc.fix) from None


def validate_sweep_config(data: dict[str, Any]) -> SweepConfig:
    """Validate a mapping into a SweepConfig, including the train/eval overrides."""
    try:
        config = SweepConfig(**data)
    except ValidationError as exc:
        raise ConfigError(
            f"invalid sweep config: {validation_details(exc)}",
            "correct the keys named above (docs/sweeps.md lists them)",
        ) from None
    from pseval.evals.config import PSEvalConfig
    from pseval.training.config import TrainConfig

    for key in _TOP_LEVEL_EVAL_KEYS.keys() & config.eval_overrides.keys():
        top = _TOP_LEVEL_EVAL_KEYS[key]
        raise ConfigError(
            f"eval_overrides sets {key}, which a sweep takes from its top-level key {top}",
            f"write `{top}: {config.eval_overrides[key]}` at the top level of the sweep config instead",
        )
    if "seeds" in config.train_overrides:
        raise ConfigError(
            "train_overrides sets seeds, which is how many SAEs a sweep trains, not a setting of one",
            f"write `seeds: {config.train_overrides['seeds']}` at the top level of the sweep config",
        )
    try:
        PSEvalConfig(**config.eval_overrides)
    except ValidationError as exc:
        raise ConfigError(
            f"invalid eval_overrides: {validation_details(exc)}",
            "correct eval_overrides: its keys are PSEvalConfig field names (see `pseval eval --help`)",
        ) from None
    except ConfigError as exc:  # the config's own refusals name the CLI option: name the YAML key
        resamples = config.eval_overrides.get("bootstrap_resamples")
        if "--bootstrap" in exc.problem and resamples is not None:
            _check_bootstrap_override(int(resamples))
        raise ConfigError(f"eval_overrides: {exc.problem}", exc.fix) from None
    for run in config.runs():
        try:
            TrainConfig(**_train_kwargs(config, run, out=None))
        except ConfigError as exc:
            raise ConfigError(
                f"the sweep's SAE {run.name} has an {exc.problem}",
                "correct train_overrides or the grid: their keys are TrainConfig field names "
                "(see `pseval train --help`)",
            ) from None
    return config


_TOP_LEVEL_EVAL_KEYS = {
    "model_name": "model",
    "device": "device",
    "standard_metrics_tokens": "standard_metrics_tokens",
    "standard_metrics_ce_tokens": "standard_metrics_ce_tokens",
}
"""PSEvalConfig fields a sweep takes from its own top-level keys (the budgets scale the token counts)."""


def _check_bootstrap_override(n_resamples: int) -> None:
    """The guard of ``pseval eval --bootstrap``, worded for the YAML key (a sweep's evals use it as is)."""
    from pseval.metrics.uncertainty import MIN_BOOTSTRAP_RESAMPLES, check_bootstrap_resamples

    key = "eval_overrides.bootstrap_resamples"
    try:
        check_bootstrap_resamples(n_resamples, option=key)
    except ConfigError:
        raise ConfigError(
            f"{key}: {n_resamples} is too few resamples for a 95 % interval",
            f"set {key} to {MIN_BOOTSTRAP_RESAMPLES} or more (2000 is the default), or to 0 for no intervals",
        ) from None


def _train_kwargs(config: SweepConfig, run: SweepRun, out: Path | None) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "model": config.model,
        "hook_name": run.hook_name,
        "corpus": config.corpus,
        "architecture": run.architecture,
        "expansion_factor": run.expansion_factor,
        "training_tokens": config.training_tokens,
        "batch_size": config.batch_size,
        "lr": config.lr,
        "seed": config.seed,
        "device": config.device,
        **run.hyperparameters,
        **config.train_overrides,
    }
    if run.seed is not None:
        kwargs["seed"] = run.seed
    if out is not None:
        kwargs["out"] = out
    return kwargs
