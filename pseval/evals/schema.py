"""The output of a PS-Eval run: one JSON file per SAE in SAEBench's result envelope.

``eval_result_metrics`` holds flat categories (``ps_eval.specificity``, ``ps_eval_ci.specificity_low``,
``threshold_free.jaccard_roc_auc``, ``standard.fvu``, ``baseline_dense.specificity`` ...), so SAEBench
tooling and Neuronpedia can ingest the file; ``eval_result_details`` has one row per pair.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from pseval.evals.config import PSEvalConfig
from pseval.metrics.sense_retrieval import AnchorDetail

EVAL_TYPE_ID = "ps_eval"


class PairDetail(BaseModel):
    """One pair's outcome for one SAE."""

    model_config = ConfigDict(extra="allow")

    id: str = Field(description="Pair id.")
    word: str = Field(description="Target word.")
    pos: str = Field(description="Part of speech.")
    label: int = Field(description="1 = same meaning, 0 = different meaning.")
    latent_1: int = Field(description="Top latent in context 1 (-1 = no active latent).")
    activation_1: float = Field(description="Its activation.")
    latent_2: int = Field(description="Top latent in context 2 (-1 = no active latent).")
    activation_2: float = Field(description="Its activation.")
    predicted_same: bool = Field(description="Same active top latent in both contexts.")
    correct: bool = Field(description="predicted_same == (label == 1).")
    jaccard: float = Field(description="Jaccard overlap of the two contexts' top-k active latents.")
    code_cosine: float = Field(description="Cosine of the two contexts' SAE codes.")
    encoder_cosine: float | None = Field(
        default=None,
        description="Cosine of the encoder directions of the two top latents (null if none active).",
    )
    decoder_cosine: float | None = Field(
        default=None,
        description="Cosine of the decoder directions of the two top latents (null if none active).",
    )
    context_1: str | None = Field(default=None, description="First context (for reports).")
    context_2: str | None = Field(default=None, description="Second context (for reports).")
    span_1: list[int] | None = Field(default=None, description="Character span of the target in context_1.")
    span_2: list[int] | None = Field(default=None, description="Character span of the target in context_2.")


class PSEvalResult(BaseModel):
    """One PS-Eval result file (SAEBench envelope)."""

    model_config = ConfigDict(extra="allow")

    eval_type_id: str = Field(default=EVAL_TYPE_ID, description="Always 'ps_eval'.")
    eval_config: PSEvalConfig = Field(description="The configuration that produced this result.")
    eval_id: str = Field(description="A uuid4 for this run.")
    datetime_epoch_millis: int = Field(description="When the run finished, in ms since the epoch.")
    eval_result_metrics: dict[str, dict[str, Any]] = Field(
        description="Flat metric categories: ps_eval, ps_eval_ci, threshold_free, sae, baselines, standard."
    )
    eval_result_details: list[PairDetail] = Field(description="One row per pair.")
    sense_retrieval_details: list[AnchorDetail] = Field(
        default_factory=list,
        description="Within-lemma sense retrieval: one row per anchor (its positives, negatives, chance, and "
        "AUROC and nearest neighbour under every similarity); the 'sense_retrieval' category is the macro "
        "mean of these rows. Kept apart from the per-pair rows of eval_result_details.",
    )
    eval_result_unstructured: dict[str, Any] | None = Field(
        default=None, description="Breakdowns (by part of speech, by word) and interpretation (logit lens)."
    )
    sae_bench_commit_hash: str | None = Field(default=None, description="Unused (SAEBench compatibility).")
    sae_lens_id: str | None = Field(
        default=None, description="SAE id (SAELens release/id, or the SAE's name)."
    )
    sae_lens_release_id: str | None = Field(
        default=None, description="SAELens release, when loaded from one."
    )
    sae_lens_version: str | None = Field(default=None, description="sae-lens version if installed.")
    sae_cfg_dict: dict[str, Any] = Field(description="The SAE's configuration.")
    pseval_version: str = Field(description="pseval version that wrote the file.")
    sae_name: str = Field(description="Short name of the SAE (file stem).")
    sae_path: str | None = Field(default=None, description="Where the SAE was loaded from.")
    hook_name: str = Field(description="Hook point the SAE was applied to.")
    model_name: str = Field(description="Model evaluated.")
    model_fingerprint: str = Field(default="", description="Hash of the model's config and weights.")
    dataset_stats: dict[str, Any] = Field(default_factory=dict, description="Filtering and balancing counts.")
    n_forward_passes: int = Field(
        default=0,
        description="Model forward passes this run needed (0 = every activation came from the cache).",
    )
    sae_content_hash: str | None = Field(
        default=None, description="Hash of the SAE's weights and config: which SAE this result is of."
    )
    input_regime: dict[str, Any] | None = Field(
        default=None,
        description="How the SAE's inputs were built: prepend_bos (and which token, why), activation_processing.",
    )
    result_identity: dict[str, Any] | None = Field(
        default=None,
        description="Everything that decides this result's numbers (SAE hash, model, hook, regime, eval "
        "settings); a rerun with the same identity is skipped, a different one refuses to replace it.",
    )

    def metric(self, category: str, name: str) -> Any:
        """Shortcut: ``result.metric('ps_eval', 'specificity')``."""
        return self.eval_result_metrics.get(category, {}).get(name)
