"""The output of a PS-Eval run: one JSON file per SAE in SAEBench's result envelope.

``eval_result_metrics`` holds flat categories (``ps_eval.specificity``, ``ps_eval_ci.specificity_low``,
``threshold_free.jaccard_roc_auc``, ``standard.fvu``, ``baseline_dense.specificity`` ...), so SAEBench
tooling and Neuronpedia can ingest the file; each category is a model of :mod:`pseval.evals.categories`
(its metrics registered in :mod:`pseval.metrics.registry`). ``eval_result_details`` has one row per pair. The
generated JSON schema of the file ships as ``pseval/resources/schema/ps_eval_result.schema.json``
(:mod:`pseval.evals.result_schema`).

``result_checksum`` is a sha256 of everything that holds or decides the file's numbers, so a file edited by
hand is recognised (and refused) wherever pseval reads it back: resuming a run, reports, figures, comparisons.
Files written before the checksum existed carry none and are accepted as they are.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from pseval.evals.categories import EvalResultMetrics
from pseval.evals.config import PSEvalConfig
from pseval.metrics.sense_retrieval import AnchorDetail

EVAL_TYPE_ID = "ps_eval"

SAE_BENCH_COMMIT_UNKNOWN = "Unknown"
"""``sae_bench_commit_hash`` of a file SAEBench did not write (SAEBench itself writes this when it cannot read
its own commit); SAEBench types the field as a required string, so null would fail its validation."""

CHECKSUM_FIELDS: tuple[str, ...] = (
    "eval_type_id",
    "eval_config",
    "eval_result_metrics",
    "eval_result_details",
    "eval_result_unstructured",
    "result_identity",
    "sae_content_hash",
    "model_name",
    "hook_name",
)
"""The fields ``result_checksum`` covers: the numbers and everything that decides them."""

CHECKSUM_PREFIX = "sha256:"


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
    eval_result_metrics: EvalResultMetrics = Field(
        description="Flat metric categories: ps_eval, ps_eval_ci, threshold_free, codes, sae, baselines, "
        "controls, standard, sense_retrieval, wordform (pseval.evals.categories)."
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
    sae_bench_commit_hash: str | None = Field(
        default=SAE_BENCH_COMMIT_UNKNOWN,
        description="SAEBench's commit: always 'Unknown', pseval is not SAEBench (null in older files).",
    )
    sae_lens_id: str | None = Field(
        default=None,
        description="The SAE's SAELens id within sae_lens_release_id (null for an SAE that is not one of "
        "SAELens's pretrained SAEs; sae_path says where it was loaded from).",
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
    result_checksum: str | None = Field(
        default=None,
        description="'sha256:' + the sha256 of the canonical JSON of the fields in CHECKSUM_FIELDS, as written "
        "(null in files written before checksums: accepted as they are).",
    )

    def metric(self, category: str, name: str) -> Any:
        """Shortcut: ``result.metric('ps_eval', 'specificity')``."""
        return (self.eval_result_metrics.get(category) or {}).get(name)


def result_checksum(raw: Mapping[str, Any]) -> str:
    """The checksum of a result's JSON object (as written to or read from its file)."""
    covered = {key: raw.get(key) for key in CHECKSUM_FIELDS}
    text = json.dumps(covered, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return CHECKSUM_PREFIX + hashlib.sha256(text.encode("utf-8")).hexdigest()


def checksum_mismatch(raw: Mapping[str, Any]) -> bool:
    """True when the object carries a checksum its numbers do not match (no checksum: a legacy file, False)."""
    stored = raw.get("result_checksum")
    return stored is not None and stored != result_checksum(raw)


def edited_problem(path: Any) -> str:
    """The one-line problem of a result file whose numbers do not match its checksum."""
    return (
        f"the result file {path} was changed after pseval wrote it "
        "(its numbers do not match the checksum stored in it), so its numbers cannot be trusted"
    )


def stored_wordform(result: PSEvalResult) -> dict[str, Any] | None:
    """The nested ``wordform`` category of a result, or ``None`` when it has none.

    Stored in ``eval_result_unstructured`` (its flat numbers in the ``wordform*`` metric categories); files
    written before the metric categories were made flat for SAEBench hold it in ``eval_result_metrics``.
    """
    unstructured = result.eval_result_unstructured or {}
    for where in (unstructured, result.eval_result_metrics):
        category = where.get("wordform")
        if isinstance(category, dict) and isinstance(category.get("sae"), dict):
            return category
    return None
