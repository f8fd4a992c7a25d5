"""The training configuration: one validated, documented record per SAE training run.

Every field carries a description because the ``pseval train`` command line is generated from these
fields; the defaults train a TopK SAE of width 4,608 on SmolLM2-135M's residual stream from the bundled
corpus. Invalid values raise :class:`pseval.errors.ConfigError` (one line: problem and fix), never a
pydantic traceback.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pseval.errors import ConfigError

Architecture = Literal["standard", "topk", "batchtopk", "matryoshka_batchtopk", "jumprelu", "gated"]
ARCHITECTURES: tuple[str, ...] = (
    "standard",
    "topk",
    "batchtopk",
    "matryoshka_batchtopk",
    "jumprelu",
    "gated",
)
#: Architectures whose sparsity is set by ``k`` (the others by a penalty coefficient).
K_ARCHITECTURES: tuple[str, ...] = ("topk", "batchtopk", "matryoshka_batchtopk")
#: What ``freeze`` may keep at its random initialisation (the trained-control baselines).
FREEZE_OPTIONS: tuple[str, ...] = ("none", "decoder", "encoder")

#: Fields that only matter to some architectures; the rest are left out of the saved metadata.
ARCHITECTURE_FIELDS: dict[str, tuple[str, ...]] = {
    "standard": ("l1_coefficient", "l1_warmup_steps", "decoder_init_norm"),
    "topk": ("k", "aux_k", "aux_k_coefficient"),
    "batchtopk": ("k", "aux_k", "aux_k_coefficient", "batchtopk_threshold_lr"),
    "matryoshka_batchtopk": (
        "k",
        "aux_k",
        "aux_k_coefficient",
        "batchtopk_threshold_lr",
        "matryoshka_widths",
    ),
    "jumprelu": (
        "l0_coefficient",
        "l1_warmup_steps",
        "jumprelu_bandwidth",
        "jumprelu_init_threshold",
        "jumprelu_threshold_lr_scale",
        "decoder_init_norm",
    ),
    "gated": ("l1_coefficient", "l1_warmup_steps", "decoder_init_norm"),
}

_HOOK_RE = re.compile(r"^blocks\.\d+\.[A-Za-z_.]+$")


class TrainConfig(BaseModel):
    """Everything that determines a trained SAE: model, hook, architecture, optimiser, data and output.

    Same config and seed give the same SAE (bit for bit on CPU), which is why the whole config is saved in
    the SAE's metadata and compared before an output folder is reused.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    # --- what to train on -------------------------------------------------------------------------
    model: str = Field(
        default="smollm2-135m",
        description="Model whose activations the SAE learns (a name known to pseval.models or a local path).",
    )
    hook_name: str = Field(
        default="blocks.15.hook_resid_post",
        description="TransformerLens-style hook point, e.g. 'blocks.15.hook_resid_post' or 'blocks.3.hook_attn_out'.",
    )
    corpus: str = Field(
        default="bundled",
        description="Training text: 'bundled' (the corpus shipped with pseval) or a path to a .txt/.txt.gz/.jsonl file.",
    )
    context_size: int = Field(
        default=128, ge=2, description="Tokens per training sequence fed to the model (BOS included)."
    )
    training_tokens: int = Field(
        default=2_000_000, gt=0, description="Activation vectors (tokens) the SAE is trained on in total."
    )
    eval_tokens: int = Field(
        default=65_536,
        ge=0,
        description="Held-out tokens (never trained on) used for the final MSE, explained variance and L0; 0 skips.",
    )
    buffer_tokens: int = Field(
        default=262_144,
        gt=0,
        description="Activations kept in the shuffling buffer, so consecutive batches mix many sequences.",
    )
    model_batch_size: int = Field(
        default=16, gt=0, description="Contexts per forward pass of the model when collecting activations."
    )
    cache_activations: bool = Field(
        default=True,
        description="Cache the model's activations on disk so another SAE on the same hook skips the model.",
    )
    cache_dtype: Literal["float32", "float16", "bfloat16"] = Field(
        default="float16", description="Dtype activations are buffered and cached in (batches are float32)."
    )
    cache_dir: Path | None = Field(
        default=None, description="Folder for activation caches; unset = <pseval cache>/train_acts."
    )

    # --- architecture -------------------------------------------------------------------------------
    architecture: Architecture = Field(
        default="topk",
        description="SAE architecture: standard (ReLU + L1), topk, batchtopk, matryoshka_batchtopk "
        "(BatchTopK whose nested prefixes each reconstruct, Bussmann et al. 2025), jumprelu or gated.",
    )
    d_sae: int | None = Field(
        default=None, gt=0, description="Number of latents. Give this or expansion_factor, not both."
    )
    expansion_factor: int | None = Field(
        default=None,
        gt=0,
        description="Latents per input dimension (d_sae = expansion_factor * d_in); 8 when neither is given.",
    )
    k: int = Field(
        default=32,
        gt=0,
        description="topk: active latents per token; batchtopk/matryoshka_batchtopk: average active latents "
        "per token. At most d_sae.",
    )
    l1_coefficient: float = Field(
        default=5.0,
        ge=0,
        description="standard/gated: weight of the L1 penalty (each latent weighted by its decoder-row norm).",
    )
    l0_coefficient: float = Field(
        default=1.0, ge=0, description="jumprelu: weight of the L0 penalty (active latents per token)."
    )
    l1_warmup_steps: int = Field(
        default=0,
        ge=0,
        description="Steps over which the L1 (standard/gated) or L0 (jumprelu) coefficient ramps up linearly from 0.",
    )
    jumprelu_bandwidth: float = Field(
        default=0.05,
        gt=0,
        description="jumprelu: width of the rectangle kernel of the straight-through threshold gradients.",
    )
    jumprelu_init_threshold: float = Field(
        default=0.1, gt=0, description="jumprelu: initial threshold of every latent (in normalised units)."
    )
    jumprelu_threshold_lr_scale: float = Field(
        default=10.0,
        gt=0,
        description="jumprelu: learning-rate multiplier for the log-thresholds, so they move within short runs.",
    )
    aux_k: int | None = Field(
        default=None,
        gt=0,
        description="topk/batchtopk: dead latents used by the AuxK loss; unset = d_in // 2 (Gao et al.).",
    )
    aux_k_coefficient: float = Field(
        default=1 / 32,
        ge=0,
        description="topk/batchtopk: weight of the AuxK loss that revives dead latents (1/32 as in Gao et al.).",
    )
    batchtopk_threshold_lr: float = Field(
        default=0.01,
        gt=0,
        le=1,
        description="batchtopk: rate of the running average of the smallest selected activation (the inference threshold).",
    )
    matryoshka_widths: list[int] | None = Field(
        default=None,
        description="matryoshka_batchtopk: widths of the nested dictionary prefixes, increasing, e.g. "
        "'128,512,2048' (as SAELens' matryoshka_widths: prefix sizes, not group sizes); the full width d_sae "
        "is added as the last prefix when missing. The loss sums the reconstruction error of every prefix. "
        "Unset = d_sae/16, d_sae/4, d_sae.",
    )
    freeze: Literal["none", "decoder", "encoder"] = Field(
        default="none",
        description="Keep part of the SAE at its random initialisation (Korznikov et al.'s controls): "
        "'decoder' trains only the encoder (W_enc, b_enc, thresholds) and b_dec under a frozen random W_dec; "
        "'encoder' trains only W_dec, b_dec and the thresholds (JumpReLU, BatchTopK) under a frozen random "
        "encoder (W_enc, b_enc; gated: also b_gate, b_mag, r_mag).",
    )
    decoder_init_norm: float = Field(
        default=0.1,
        gt=0,
        description="standard: initial norm of every decoder row; jumprelu, gated: the encoder starts as this "
        "times the transpose of their unit-norm decoder, so the first reconstruction is small (topk and "
        "batchtopk start from the plain transpose).",
    )
    b_dec_init: Literal["geometric_median", "mean", "zeros"] = Field(
        default="geometric_median",
        description="Initial decoder bias: geometric median (Weiszfeld) or mean of the first batch, or zeros.",
    )
    normalize_activations: bool = Field(
        default=True,
        description="Scale inputs so their mean norm is sqrt(d_in) while training (the scale is folded into the saved weights).",
    )

    # --- optimisation -------------------------------------------------------------------------------
    lr: float = Field(default=3e-4, gt=0, description="Adam learning rate.")
    lr_schedule: Literal["constant", "cosine"] = Field(
        default="constant",
        description="constant (with optional linear decay over the last lr_decay_steps) or cosine (after warm-up).",
    )
    lr_warmup_steps: int = Field(default=0, ge=0, description="Steps of linear learning-rate warm-up from 0.")
    lr_decay_steps: int = Field(
        default=0,
        ge=0,
        description="constant schedule: final steps over which the learning rate decays linearly to lr * lr_end_factor.",
    )
    lr_end_factor: float = Field(
        default=0.1, ge=0, le=1, description="Learning rate at the end of the decay, as a fraction of lr."
    )
    adam_beta1: float = Field(default=0.9, ge=0, lt=1, description="Adam beta1.")
    adam_beta2: float = Field(default=0.999, ge=0, lt=1, description="Adam beta2.")
    max_grad_norm: float | None = Field(
        default=1.0, gt=0, description="Clip the global gradient norm to this value; unset disables clipping."
    )
    batch_size: int = Field(default=4096, gt=0, description="Activation vectors (tokens) per optimiser step.")
    dead_feature_window: int = Field(
        default=1_000_000,
        gt=0,
        description="A latent that has not fired for this many tokens counts as dead (and feeds the AuxK loss).",
    )

    # --- run ----------------------------------------------------------------------------------------
    seed: int = Field(default=42, description="Seed for initialisation and data order; same seed, same SAE.")
    seeds: int = Field(
        default=1,
        ge=1,
        description="Train N replicates with seeds seed, seed+1, ..., seed+N-1 to measure training noise "
        "(`pseval reliability`); the first goes to the usual folder, the others to it with -seed<S> appended.",
    )
    device: str = Field(
        default="auto",
        description="Torch device: 'auto' (cuda when available, else cpu), 'cpu', 'cuda', 'cuda:1'.",
    )
    dtype: Literal["float32", "bfloat16"] = Field(
        default="float32",
        description="Compute dtype of the SAE matmuls; bfloat16 uses autocast (weights and Adam state stay float32).",
    )
    log_every: int = Field(default=50, gt=0, description="Steps between progress/metric updates.")
    checkpoint_every: int = Field(
        default=0,
        ge=0,
        description="Save a checkpoint every this many tokens to <out>/checkpoints/<tokens>/; 0 disables.",
    )
    out: Path | None = Field(
        default=None,
        description="Output folder for the trained SAE (SAELens format); unset = saes/<model>/<hook>/<architecture>-<width>.",
    )
    overwrite: bool = Field(
        default=False,
        description="Replace an output folder that holds an SAE trained with a different config.",
    )

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise ConfigError(_describe_validation_error(exc), "see `pseval train --help`") from None

    @classmethod
    def model_validate(cls, obj: Any, *args: Any, **kwargs: Any) -> TrainConfig:  # type: ignore[override]
        """As pydantic's, but invalid values raise :class:`ConfigError`."""
        try:
            return super().model_validate(obj, *args, **kwargs)
        except ValidationError as exc:
            raise ConfigError(_describe_validation_error(exc), "see `pseval train --help`") from None

    @field_validator("matryoshka_widths", mode="before")
    @classmethod
    def _parse_widths(cls, value: Any) -> Any:
        # The command line passes one string: "128,512,2048".
        if isinstance(value, str):
            parts = [p for p in re.split(r"[,\s]+", value.strip()) if p]
            try:
                return [int(p) for p in parts]
            except ValueError:
                raise ValueError("must be comma-separated integers, e.g. 128,512,2048") from None
        return value

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        if self.d_sae is not None and self.expansion_factor is not None:
            raise ConfigError(
                f"both d_sae ({self.d_sae}) and expansion_factor ({self.expansion_factor}) are set",
                "give only one of them",
            )
        if not _HOOK_RE.match(self.hook_name):
            raise ConfigError(
                f"hook name {self.hook_name!r} is not TransformerLens-style",
                "use e.g. 'blocks.15.hook_resid_post'",
            )
        if self.d_sae is not None:
            self._check_width(self.d_sae)
        if self.aux_k is not None and self.d_sae is not None and self.aux_k > self.d_sae:
            raise ConfigError(f"aux_k ({self.aux_k}) exceeds d_sae ({self.d_sae})", "lower aux_k")
        return self

    def _check_width(self, d_sae: int) -> None:
        if self.architecture in K_ARCHITECTURES and self.k > d_sae:
            raise ConfigError(
                f"k ({self.k}) is larger than the SAE width ({d_sae})",
                "lower k or raise d_sae/expansion_factor",
            )
        if self.architecture == "matryoshka_batchtopk":
            self.resolve_matryoshka_widths(d_sae)

    def resolve_matryoshka_widths(self, d_sae: int) -> list[int]:
        """The nested prefix widths for an SAE of ``d_sae`` latents, ending at ``d_sae``.

        Raises ConfigError unless they are positive, strictly increasing and at most ``d_sae``.
        """
        if self.matryoshka_widths is None:
            widths = sorted({w for w in (d_sae // 16, d_sae // 4) if 0 < w < d_sae})
        else:
            widths = list(self.matryoshka_widths)
        if widths and widths[-1] == d_sae:
            widths = widths[:-1]
        shown = ",".join(str(w) for w in [*widths, d_sae])
        if any(w <= 0 for w in widths) or any(b <= a for a, b in itertools.pairwise(widths)):
            raise ConfigError(
                f"matryoshka widths {shown} are not positive and strictly increasing",
                "pass e.g. --matryoshka-widths 128,512,2048",
            )
        if widths and widths[-1] > d_sae:
            raise ConfigError(
                f"matryoshka widths {shown} exceed the SAE width d_sae={d_sae}",
                "give prefix widths below d_sae in --matryoshka-widths",
            )
        return [*widths, d_sae]

    # --- derived values -----------------------------------------------------------------------------
    def resolve_d_sae(self, d_in: int) -> int:
        """The SAE width for inputs of size ``d_in`` (raises ConfigError if k does not fit)."""
        if d_in <= 0:
            raise ConfigError(f"input width d_in={d_in} is not positive", "check the hook's activations")
        d_sae = self.d_sae if self.d_sae is not None else (self.expansion_factor or 8) * d_in
        self._check_width(d_sae)
        return d_sae

    def resolve_device(self) -> str:
        """``device`` with 'auto' replaced by 'cuda' when a GPU is visible, else 'cpu'."""
        import torch

        if self.device == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise ConfigError(
                f"device {self.device!r} requested but CUDA is not available", "use --device cpu"
            )
        return self.device

    def n_steps(self) -> int:
        """Optimiser steps needed for ``training_tokens`` at ``batch_size`` tokens per step."""
        return -(-self.training_tokens // self.batch_size)

    def output_dir(self, d_sae: int | None = None) -> Path:
        """The output folder: ``out`` or a default derived from model, hook, architecture and width."""
        if self.out is not None:
            return Path(self.out)
        width = d_sae or self.d_sae or f"x{self.expansion_factor or 8}"
        model = re.sub(r"[^A-Za-z0-9_.-]+", "_", self.model.strip("/").split("/")[-1])
        return Path("saes") / model / self.hook_name / f"{self.architecture}-{width}"

    def architecture_hyperparameters(self) -> dict[str, Any]:
        """The hyperparameters that matter to this architecture (for metadata and reports)."""
        return {name: getattr(self, name) for name in ARCHITECTURE_FIELDS[self.architecture]}

    def fingerprint_dict(self) -> dict[str, Any]:
        """The fields that determine the trained weights (not where they go or how they are logged).

        Fields that only the Matryoshka architecture reads, and ``freeze`` at ``"none"``, are left out, so an
        SAE trained before those options existed is still recognised as the same training run.
        """
        fields = self.model_dump(
            mode="json",
            exclude={
                "out",
                "overwrite",
                "log_every",
                "checkpoint_every",
                "device",
                "cache_dir",
                "cache_activations",
                "model_batch_size",
                "seeds",  # how many replicates to train, not what any one of them is
            },
        )
        if self.architecture != "matryoshka_batchtopk":
            fields.pop("matryoshka_widths", None)
        if fields.get("freeze") == "none":
            fields.pop("freeze")
        return fields

    @classmethod
    def from_file(cls, path: str | Path) -> TrainConfig:
        """Load a config from a JSON or YAML file (keys are field names)."""
        from pseval._io import read_mapping_file

        data = read_mapping_file(path, "config")
        try:
            return cls(**data)
        except ConfigError as exc:
            raise ConfigError(
                f"{path}: {exc.problem}",
                f"correct those keys in {path} (TrainConfig field names, see `pseval train --help`)",
            ) from None


def _describe_validation_error(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "config"
        value = err.get("input")
        shown = f" (got {value!r})" if not isinstance(value, dict) else ""
        parts.append(f"{loc}: {err['msg']}{shown}")
    return "invalid training config: " + "; ".join(parts)
