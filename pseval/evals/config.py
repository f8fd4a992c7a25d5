"""Configuration of a PS-Eval run. The same fields drive the CLI (``pseval eval --help``)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    field_validator,
    model_serializer,
)

from pseval.data.prompts import DEFAULT_TEMPLATE
from pseval.errors import ConfigError, validation_details

LOGIT_LENS_TOKENS = 8
"""Default number of logit-lens tokens per chosen latent."""


class PSEvalConfig(BaseModel):
    """How PS-Eval builds its pairs, reads activations and scores SAEs."""

    model_config = ConfigDict(extra="forbid")

    WRITTEN_WHEN_SET: ClassVar[frozenset[str]] = frozenset(
        {"standard_metrics_tokens", "standard_metrics_ce_tokens"}
    )
    """Fields added after results were stored: a result's ``eval_config`` holds them only when they differ
    from their default, so the files (and checksums) of runs that leave them at their default stay as before."""

    model_name: str = Field(
        default="smollm2-135m",
        description="Model alias, Hugging Face id or local folder.",
    )
    dataset: str = Field(
        default="wic",
        description="'wic', 'wordnet', 'wordnet-senses' (within-lemma sense retrieval), 'wordnet-2x2' (word "
        "form x meaning, docs/wordnet-dataset.md) or a .jsonl file of pairs or of sense items.",
    )
    split: Literal["train", "dev", "test", "all"] = Field(default="test", description="Dataset split.")
    balance: bool = Field(default=True, description="Balance the two labels by seeded random downsampling.")
    seed: int = Field(
        default=0, ge=0, description="Seed of the balancing, the max-pairs subset and the bootstrap (>= 0)."
    )
    max_pairs: int | None = Field(
        default=None,
        ge=1,
        description="Score a seeded random subset of N pairs in all (drawn with the seed after balancing: "
        "the same N and seed give the same pairs; with multi-token last or mean shared between single- and "
        "multi-token pairs in proportion to their counts). Default: every pair.",
    )
    template: str = Field(default=DEFAULT_TEMPLATE, description="Prompt template with {context} and {word}.")
    position: Literal["template", "context"] = Field(
        default="template",
        description="Read the template's own {word} token ('template', the paper's choice) "
        "or the word's occurrence in the context ('context', its last sub-token).",
    )
    prepend_bos: bool | None = Field(
        default=None,
        description="Force a BOS token on or off for every SAE. Default (unset): what each SAE's config "
        "records (pseval-trained SAEs: BOS), else the tokenizer's default.",
    )
    multi_token: Literal["drop", "last", "mean"] = Field(
        default="drop",
        description="Words of several tokens: drop (the paper), last (read the last sub-token) or mean "
        "(mean of the sub-tokens, encoded after pooling). With last or mean the single-token pairs are "
        "those of drop, and results are also reported per token count (by_token_count).",
    )
    batch_size: int = Field(default=32, description="Prompts per forward pass.")
    device: str = Field(
        default="cpu",
        description="Device of the model and the SAEs: cpu, cuda, cuda:N or auto (cuda when present).",
    )
    dtype: Literal["float32", "bfloat16", "float16"] = Field(
        default="float32", description="dtype of the model and of the SAEs."
    )
    fold_decoder_norms: bool = Field(
        default=False,
        description="Scale each latent by its decoder norm before taking the top latent "
        "(changes which latent is largest when decoder rows are not unit norm).",
    )
    bootstrap_resamples: int = Field(
        default=2000,
        ge=0,
        description="Bootstrap resamples for the confidence intervals: 200 or more, or 0 for no intervals.",
    )
    confidence_level: float = Field(
        default=0.95, gt=0, lt=1, description="Confidence level of the bootstrap intervals."
    )
    topk_overlap_k: int = Field(
        default=16, description="k of the top-k latent Jaccard overlap score (at most each SAE's width)."
    )
    baselines: bool = Field(
        default=True,
        description="Also score the dense activations (cosine, threshold chosen on the held-out split, or by "
        "seeded 5-fold cross-validation on the evaluated split when there is none), "
        "the MLP neuron basis (MLP hooks) and a random SAE of the same width.",
    )
    controls: bool = Field(
        default=False,
        description="Also score two trained controls of each pseval-trained SAE (Korznikov et al. 2026): the "
        "same training config with a frozen random decoder (encoder trained) and with a frozen random encoder "
        "(decoder trained); trained once, cached under the pseval cache, reused.",
    )
    interpret_tokens: int = Field(
        default=16_384,
        ge=0,
        description="Corpus tokens (from the training activation cache) for the chosen latents' firing "
        "frequency and top-activating contexts; 0 skips them. Costs one encode of these tokens per SAE: at "
        "width 36,864 and 256 prompts, 35–43 % of a default eval (docs/performance.md).",
    )
    logit_lens_tokens: int = Field(
        default=LOGIT_LENS_TOKENS,
        ge=0,
        description="Logit-lens tokens listed per chosen latent (its decoder direction through the final "
        "norm and unembedding); 0 skips it (it costs chosen latents x d_model x vocabulary, a quarter of "
        "the encode of a 1M-latent SAE on Gemma 3's 262k-token vocabulary).",
    )
    standard_metrics_tokens: int = Field(
        default=0,
        ge=0,
        description="Also measure MSE, L0 and CE loss recovered on this many held-out corpus tokens "
        "(0 skips them).",
    )
    standard_metrics_ce_tokens: int | None = Field(
        default=None,
        ge=0,
        description="Of the standard-metrics tokens, those for CE loss recovered and KL (default: "
        "min(tokens, 4096)).",
    )
    cache_activations: bool = Field(
        default=True,
        description="Cache the prompts' activations on disk (in the pseval cache) and reuse them.",
    )
    site_check: bool = Field(
        default=True,
        description="Before scoring, measure each SAE's FVU, L0 and input norm on site_check_tokens held-out "
        "corpus tokens at the site it is read at (hook, BOS policy, context length; a transcoder's output at "
        "its output hook) and stop when FVU > 1, L0 is more than 3x off its recorded L0 or the input norm "
        "more than 1.2x off its trained-on norm (a wrong hook, BOS policy or normalisation; see "
        "pseval.evals.site_check), and before the model loads when --prepend-bos/--no-prepend-bos contradicts "
        "the BOS policy its config records; False skips the check.",
    )
    site_check_tokens: int = Field(
        default=2048, ge=1, description="Held-out corpus text tokens of the site check."
    )
    site_check_corpus: str | None = Field(
        default=None,
        description="Corpus of the site check (its held-out documents): 'bundled', a local .txt/.jsonl file "
        "or a Hugging Face dataset; None: the SAE's own training corpus when its config records one pseval "
        "reads offline (bundled or a local file), else the bundled corpus.",
    )
    allow_model_mismatch: bool = Field(
        default=False,
        description="Score SAEs whose config records another model than the evaluated one (refused by "
        "default, before the model loads; pseval.models.names says which names denote one model).",
    )

    @field_validator("batch_size", "topk_overlap_k")
    @classmethod
    def _positive(cls, value: int) -> int:
        if value < 1:
            raise ValueError("must be >= 1")
        return value

    @field_validator("device")
    @classmethod
    def _known_device(cls, value: str) -> str:
        # Refused here, before any SAE is opened, rather than when the model loads.
        if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", value):
            raise ValueError("must be cpu, cuda, cuda:N, mps or auto")
        return value

    @field_validator("bootstrap_resamples")
    @classmethod
    def _enough_resamples(cls, value: int) -> int:
        # The same refusal whether the value comes from --bootstrap, a config file or the Python API.
        from pseval.metrics.uncertainty import check_bootstrap_resamples

        return check_bootstrap_resamples(value)

    @field_validator("template")
    @classmethod
    def _template_has_slots(cls, value: str) -> str:
        for slot in ("{context}", "{word}"):
            if value.count(slot) != 1:
                raise ConfigError(
                    f"the template {value!r} must contain {slot} exactly once",
                    'use e.g. --template "{context} The {word} means"',
                )
        return value

    @model_serializer(mode="wrap")
    def _omit_unset_later_fields(self, handler: SerializerFunctionWrapHandler):  # type: ignore[no-untyped-def]
        # No return annotation: pydantic then keeps the fields in the JSON schema of a result.
        data = handler(self)
        for name in self.WRITTEN_WHEN_SET:
            if name in data and getattr(self, name) == type(self).model_fields[name].default:
                del data[name]
        return data

    @classmethod
    def from_file(cls, path: str | Path) -> PSEvalConfig:
        """The config a YAML or JSON file of field names and values gives (the rest at their defaults).

        A result's ``eval_config`` is such a mapping. Unknown keys and bad values are one ConfigError that
        names the file and the keys.
        """
        from pseval._io import read_mapping_file

        data = read_mapping_file(path, "eval config")
        fix = f"correct those keys in {path}: they are PSEvalConfig field names (see `pseval eval --help`)"
        try:
            return cls(**data)
        except ValidationError as exc:
            raise ConfigError(f"{path}: {validation_details(exc)}", fix) from None
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc.problem}", exc.fix) from None

    def identity(self) -> dict[str, object]:
        """The fields that change the numbers of a result (not where or how fast it is computed)."""
        # allow_model_mismatch and the site check decide whether a run may start, never its numbers; the
        # standard-metrics tokens are keys of their own in a result's identity (evals.runner.result_identity).
        identity = self.model_dump(
            mode="json",
            exclude={
                "device",
                "batch_size",
                "cache_activations",
                "allow_model_mismatch",
                "standard_metrics_tokens",
                "standard_metrics_ce_tokens",
                "site_check",
                "site_check_tokens",
                "site_check_corpus",
            },
        )
        if self.logit_lens_tokens == LOGIT_LENS_TOKENS:
            del identity["logit_lens_tokens"]  # at its default, results stored before the option still match
        if self.max_pairs is not None and self.multi_token != "drop":
            # max_pairs once capped only the single-token pairs here: such stored results hold other pairs.
            identity["max_pairs_scope"] = "single and multi-token pairs together"
        return identity

    def cache_key(self) -> dict[str, object]:
        """The fields that change which prompts are built (part of the activation cache key)."""
        return {
            "dataset": self.dataset,
            "split": self.split,
            "balance": self.balance,
            "seed": self.seed,
            "max_pairs": self.max_pairs,
            "template": self.template,
            "position": self.position,
            "prepend_bos": self.prepend_bos,
            "multi_token": self.multi_token,
        }
