"""The metric categories of a result file (``eval_result_metrics``): one pydantic model per category.

SAEBench's ``BaseMetrics`` pattern: each category is a flat model whose fields are described; a field declared
with :func:`~pseval.metrics.registry.metric_field` is a metric (display name, direction, format, aggregation)
that the tables, the HTML report and the figures pick up from the registry. :class:`EvalResultMetrics` holds the
categories; every one is optional (a run without baselines has no ``baseline_*``), and a category or a key this
version does not know is kept as it was read, so results written by older and newer versions still load.

A category serialises to the keys it was built or read with, and nothing more: an absent key stays absent (it
is not written as ``null``), so the result file is exactly what the builders in :mod:`pseval.evals` produced.
Reused models (:class:`~pseval.metrics.ps_eval.PSEvalMetrics`, :class:`~pseval.metrics.standard.StandardMetrics`,
:class:`VsRandomControl`) are read leniently (:func:`lenient`: every field optional), since older files lack
fields that were added later.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from pydantic import BaseModel, ConfigDict, Field, SerializationInfo, create_model, model_serializer
from pydantic.fields import FieldInfo

from pseval._format import finite_number
from pseval.evals.versus import VsDense, VsRandomControl
from pseval.metrics.ps_eval import ConfusionRatios, PSEvalMetrics
from pseval.metrics.registry import MetricSpec, metric_field, metric_fields, register_metrics
from pseval.metrics.site import SiteCheck
from pseval.metrics.standard import StandardMetrics


class MetricCategory(BaseModel):
    """A flat category of metrics; keys it does not declare are kept (``extra="allow"``)."""

    model_config = ConfigDict(extra="allow")


def lenient(model: type[BaseModel], name: str | None = None) -> type[BaseModel]:
    """A copy of ``model`` whose fields are all optional (default None), with the same titles and descriptions.

    The copy allows extra keys, so a result written before or after a field was added still validates.
    """
    fields: dict[str, Any] = {}
    for key, info in model.model_fields.items():
        optional = FieldInfo.merge_field_infos(info, default=None)
        fields[key] = (info.annotation | None, optional)  # type: ignore[operator]
    return create_model(  # type: ignore[call-overload,no-any-return]
        name or model.__name__,
        __base__=MetricCategory,
        __doc__=model.__doc__,
        **fields,
    )


# The type checker sees the strict models (their fields as the builders fill them); at run time a field of a
# file written before it existed is None.
if TYPE_CHECKING:
    PSEvalCategory = PSEvalMetrics
    StandardCategory = StandardMetrics
    VsRandomSAECategory = VsRandomControl
    SiteCheckCategory = SiteCheck
    VsDenseCategory = VsDense
else:
    PSEvalCategory = lenient(PSEvalMetrics, "PSEvalCategory")
    StandardCategory = lenient(StandardMetrics, "StandardCategory")
    VsRandomSAECategory = lenient(VsRandomControl, "VsRandomSAECategory")
    SiteCheckCategory = lenient(SiteCheck, "SiteCheckCategory")
    VsDenseCategory = lenient(VsDense, "VsDenseCategory")


def _bounds(metric: str, what: str) -> dict[str, Any]:
    return {
        f"{metric}_{side}": (
            float | None,
            Field(default=None, description=f"{side.capitalize()} bound of the interval of {what}."),
        )
        for side in ("low", "high")
    }


def _interval_fields(metrics: tuple[str, ...], where: str) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for metric in metrics:
        fields.update(_bounds(metric, f"{where}'s {metric}"))
    return fields


PS_EVAL_CI_METRICS: tuple[str, ...] = tuple(
    key for key, spec in register_metrics(ConfusionRatios).items() if spec.interval
)

if TYPE_CHECKING:
    PSEvalIntervals = MetricCategory
else:
    PSEvalIntervals = create_model(
        "PSEvalIntervals",
        __base__=MetricCategory,
        __doc__="The ``ps_eval_ci`` category: word-clustered bootstrap intervals of every PS-Eval ratio.",
        **_interval_fields(PS_EVAL_CI_METRICS, "ps_eval"),
        confidence_level=(
            float | None,
            Field(default=None, description="Confidence level of the intervals."),
        ),
        n_resamples=(int | None, Field(default=None, description="Bootstrap resamples (0: no intervals).")),
        interval_method=(str | None, Field(default=None, description="How the resamples draw the pairs.")),
    )


class ThresholdFreeMetrics(MetricCategory):
    """The ``threshold_free`` category: how well overlap scores of the two codes rank same-meaning pairs first."""

    topk_overlap_k: int | None = Field(default=None, description="k of the top-k latent sets compared.")
    jaccard_roc_auc: float | None = metric_field(
        "Jaccard AUC",
        "ROC AUC of the top-k latent Jaccard overlap as a same-meaning score.",
        direction="higher",
        interval=True,
    )
    jaccard_roc_auc_low: float | None = Field(default=None, description="Lower bound of its interval.")
    jaccard_roc_auc_high: float | None = Field(default=None, description="Upper bound of its interval.")
    jaccard_average_precision: float | None = metric_field(
        "Jaccard AP", "Average precision of the top-k Jaccard overlap.", direction="higher"
    )
    code_cosine_roc_auc: float | None = metric_field(
        "Code cosine AUC",
        "ROC AUC of the cosine of the two contexts' SAE codes as a same-meaning score.",
        direction="higher",
        interval=True,
    )
    code_cosine_roc_auc_low: float | None = Field(default=None, description="Lower bound of its interval.")
    code_cosine_roc_auc_high: float | None = Field(default=None, description="Upper bound of its interval.")
    code_cosine_average_precision: float | None = metric_field(
        "Code cosine AP", "Average precision of the code cosine.", direction="higher"
    )
    interval_method: str | None = Field(default=None, description="How the interval resamples the pairs.")


class CodeMetrics(MetricCategory):
    """The ``codes`` category: what the SAE's codes of the prompts look like."""

    mean_l0_on_prompts: float | None = metric_field(
        "L0 on prompts",
        "Mean number of active latents at the prompts' target tokens.",
        direction="neither",
        format="real",
        aggregation="mean over prompts",
    )
    n_latents_active_on_prompts: int | None = metric_field(
        "Latents active on prompts",
        "Latents active on at least one prompt.",
        direction="neither",
        format="count",
        aggregation="count over prompts",
    )
    n_distinct_top_latents: int | None = metric_field(
        "Distinct top latents",
        "Distinct top-1 latents over the two contexts of every pair.",
        direction="neither",
        format="count",
        aggregation="count over pairs",
    )
    n_prompts_no_active: int | None = Field(default=None, description="Unique prompts with no active latent.")
    share_prompts_no_active: float | None = Field(
        default=None, description="n_prompts_no_active / unique prompts (null without prompts)."
    )


class SAEFacts(MetricCategory):
    """The ``sae`` category: the shape of the SAE scored."""

    d_in: int | None = Field(default=None, description="Width of the hook vectors it reads.")
    d_sae: int | None = Field(default=None, description="Number of latents.")
    architecture: str | None = Field(default=None, description="Architecture tag ('standard', 'topk', ...).")
    expansion_ratio: float | None = Field(default=None, description="d_sae / d_in.")


class ConfusionCounts(MetricCategory):
    """The confusion counts of a classifier of the pairs (optional: absent from controls)."""

    tp: int | None = Field(default=None, description="Same meaning, called same.")
    fp: int | None = Field(default=None, description="Different meaning, called same.")
    tn: int | None = Field(default=None, description="Different meaning, called different.")
    fn: int | None = Field(default=None, description="Same meaning, called different.")
    n_pairs: int | None = Field(default=None, description="Pairs evaluated.")
    n_same_meaning: int | None = Field(default=None, description="Pairs with label 1 (same meaning).")
    n_different_meaning: int | None = Field(
        default=None, description="Pairs with label 0 (different meaning)."
    )


class NoActivePairs(MetricCategory):
    """Pairs a code of latents calls 'different' because a context has no active latent."""

    n_pairs_no_active: int | None = Field(
        default=None, description="Pairs where a context has no active latent (predicted 'different')."
    )
    share_pairs_no_active: float | None = Field(default=None, description="n_pairs_no_active / n_pairs.")


class DenseBaseline(ConfusionCounts, ConfusionRatios):
    """The ``baseline_dense`` category: the cosine of the raw hook vectors, thresholded on held-out pairs."""

    threshold: float | None = Field(
        default=None, description="Cosine at or above which a pair is called same."
    )
    roc_auc: float | None = metric_field(
        "ROC-AUC", "ROC AUC of the dense cosine as a same-meaning score.", direction="higher", interval=True
    )
    average_precision: float | None = Field(default=None, description="Average precision of the cosine.")
    cosine_mean: float | None = Field(default=None, description="Mean cosine of the pairs.")
    cosine_std: float | None = Field(default=None, description="Standard deviation of the pairs' cosines.")
    threshold_selection: str | None = Field(
        default=None,
        description="How the threshold was chosen ('dev split', or 'cvN': N-fold cross-validation).",
    )
    threshold_selection_reason: str | None = Field(
        default=None, description="Why the threshold was cross-validated (no held-out split)."
    )
    roc_auc_low: float | None = Field(default=None, description="Lower bound of the ROC-AUC's interval.")
    roc_auc_high: float | None = Field(default=None, description="Upper bound of the ROC-AUC's interval.")
    interval_method: str | None = Field(default=None, description="How the interval resamples the pairs.")


class RandomSAEBaseline(NoActivePairs, ConfusionRatios):
    """The ``baseline_random_sae`` category: an SAE of the same width and architecture with random unit-norm
    directions, its inputs centred as the SAE's."""

    youden_j_low: float | None = Field(default=None, description="Lower bound of its J's interval.")
    youden_j_high: float | None = Field(default=None, description="Upper bound of its J's interval.")
    balanced_accuracy_low: float | None = Field(
        default=None, description="Lower bound of its balanced accuracy's interval."
    )
    balanced_accuracy_high: float | None = Field(
        default=None, description="Upper bound of its balanced accuracy's interval."
    )
    centring: str | None = Field(default=None, description="What its inputs are centred on (Centring).")
    interval_method: str | None = Field(default=None, description="How the intervals resample the pairs.")


class NeuronBaseline(NoActivePairs, ConfusionCounts, ConfusionRatios):
    """The ``baseline_neurons`` category: PS-Eval with the MLP neurons as the latents."""

    n_neurons: int | None = Field(default=None, description="MLP width.")
    n_distinct_top_neurons: int | None = Field(
        default=None, description="Distinct top-1 neurons of the pairs."
    )


class ControlBaseline(NoActivePairs, ConfusionRatios):
    """A trained control (``baseline_frozen_decoder``, ``baseline_frozen_encoder``): the SAE's training config
    with the decoder or the encoder frozen at its random start."""

    mean_l0_on_prompts: float | None = Field(default=None, description="Its mean L0 on the prompts.")
    d_sae: int | None = Field(default=None, description="Its number of latents.")
    training_tokens: int | None = Field(default=None, description="Tokens it was trained on.")
    l0_matched_by_k: bool | None = Field(default=None, description="Its L0 is fixed by k (TopK family).")
    train_config_hash: str | None = Field(default=None, description="Hash of its training config.")


class SenseRetrievalCategory(MetricCategory):
    """The ``sense_retrieval`` category: within-lemma sense retrieval, flat.

    Besides the counts below, for every similarity ``S`` (``sae_cosine``, ``sae_jaccard``, ``random_sae_*``,
    ``dense_cosine``, ``dense_centred_cosine``) and every paired difference ``A_minus_B``: ``S_auroc``,
    ``S_nn_accuracy``, each with ``_low`` and ``_high`` (lemma-clustered interval).
    """

    n_items: int | None = Field(default=None, description="Items of the lemmas that have an anchor.")
    n_lemmas: int | None = Field(default=None, description="Lemmas with at least one anchor.")
    n_anchors: int | None = Field(default=None, description="Items with a known positive and negative.")
    mean_chance: float | None = Field(default=None, description="Macro 1-NN chance level.")
    confidence_level: float | None = Field(default=None, description="Confidence level of the intervals.")
    n_resamples: int | None = Field(default=None, description="Lemma-clustered bootstrap resamples.")


class WordformCategory(MetricCategory):
    """A word form × meaning category (``wordform``, ``wordform_dense``, ``wordform_random_sae``), flat.

    Besides the settings below, ``<cell>_<measure>`` for each 2 × 2 cell and ``<effect>_<measure>`` for each
    effect (see :mod:`pseval.evals.wordform`).
    """

    topk_overlap_k: int | None = Field(default=None, description="k of the top-k overlap measure.")
    confidence_level: float | None = Field(default=None, description="Confidence level of the intervals.")
    n_resamples: int | None = Field(default=None, description="Bootstrap resamples.")


class LatentFrequency(MetricCategory):
    """The ``latent_frequency`` category: firing frequencies of all latents on corpus tokens (summary)."""

    n_latents: float | None = Field(default=None, description="Latents counted.")
    dead_fraction: float | None = Field(default=None, description="Share of latents never active.")
    dense_fraction: float | None = Field(default=None, description="Share active on more than 10% of tokens.")
    mean: float | None = Field(default=None, description="Mean firing frequency.")


class EvalResultMetrics(BaseModel):
    """``eval_result_metrics``: the flat metric categories of one result (SAEBench's layout).

    A category this version does not declare is kept as read (a plain object); :func:`register_category`
    gives it a model, which :meth:`category` then validates it with. ``metrics.get("ps_eval")`` (and
    ``metrics["ps_eval"]``, ``"ps_eval" in metrics``) gives a category as the plain object stored.
    """

    model_config = ConfigDict(extra="allow")

    ps_eval: PSEvalCategory | None = Field(default=None, title="PS-Eval", description=PSEvalMetrics.__doc__)
    ps_eval_ci: PSEvalIntervals | None = Field(default=None, title="PS-Eval intervals")
    threshold_free: ThresholdFreeMetrics | None = Field(default=None, title="Threshold-free scores")
    codes: CodeMetrics | None = Field(default=None, title="Codes")
    sae: SAEFacts | None = Field(default=None, title="SAE")
    baseline_dense: DenseBaseline | None = Field(default=None, title="Dense baseline")
    baseline_neurons: NeuronBaseline | None = Field(default=None, title="MLP-neuron baseline")
    baseline_random_sae: RandomSAEBaseline | None = Field(default=None, title="Random-SAE control")
    vs_random_sae: VsRandomSAECategory | None = Field(
        default=None, title="SAE vs random SAE", description=VsRandomControl.__doc__
    )
    baseline_frozen_decoder: ControlBaseline | None = Field(default=None, title="Frozen-decoder control")
    baseline_frozen_encoder: ControlBaseline | None = Field(default=None, title="Frozen-encoder control")
    standard: StandardCategory | None = Field(
        default=None, title="Standard metrics", description=StandardMetrics.__doc__
    )
    site_check: SiteCheckCategory | None = Field(
        default=None, title="Hook-site check", description=SiteCheck.__doc__
    )
    latent_frequency: LatentFrequency | None = Field(default=None, title="Latent firing frequencies")
    sense_retrieval: SenseRetrievalCategory | None = Field(default=None, title="Sense retrieval")
    wordform: WordformCategory | None = Field(default=None, title="Word form × meaning (SAE)")
    wordform_dense: WordformCategory | None = Field(default=None, title="Word form × meaning (dense)")
    wordform_random_sae: WordformCategory | None = Field(
        default=None, title="Word form × meaning (random SAE)"
    )
    vs_dense: VsDenseCategory | None = Field(
        default=None, title="SAE vs dense baseline", description=VsDense.__doc__
    )

    @model_serializer(mode="plain")
    def _as_stored(self, info: SerializationInfo) -> dict[str, Any]:
        """Only the categories present, each with only the keys it was built or read with."""
        out: dict[str, Any] = {}
        for name, value in self.items_typed():
            if isinstance(value, BaseModel):
                out[name] = value.model_dump(mode=info.mode, exclude_unset=True)
            else:
                out[name] = value
        return out

    def items_typed(self) -> Iterator[tuple[str, Any]]:
        """(name, category) of every category present: declared ones as models, others as stored."""
        for name in type(self).model_fields:
            if name in self.model_fields_set:
                yield name, getattr(self, name)
        yield from (self.__pydantic_extra__ or {}).items()

    def category(self, name: str) -> BaseModel | None:
        """A category as its model (a registered extra category validated on the fly), or None if absent."""
        value = dict(self.items_typed()).get(name)
        if value is None or isinstance(value, BaseModel):
            return value
        spec = CATEGORIES.get(name)
        model = spec.model if spec is not None else MetricCategory
        return model.model_validate(value)

    def get(self, name: str, default: Any = None) -> Any:
        """A category as the plain object stored (``default`` when absent)."""
        value = dict(self.items_typed()).get(name)
        if value is None:
            return default
        return value.model_dump(exclude_unset=True) if isinstance(value, BaseModel) else value

    def __getitem__(self, name: str) -> Any:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __setitem__(self, name: str, value: Any) -> None:
        """Set a category from a plain object (validated by its model) or a model."""
        info = type(self).model_fields.get(name)
        if info is None:
            if self.__pydantic_extra__ is None:
                self.__pydantic_extra__ = {}
            self.__pydantic_extra__[name] = value
            return
        model = _declared_model(info)
        setattr(self, name, value if isinstance(value, BaseModel) else model.model_validate(value))

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def keys(self) -> list[str]:
        """Names of the categories present."""
        return [name for name, _ in self.items_typed()]


@dataclass(frozen=True)
class CategorySpec:
    """How the report reads one category."""

    name: str
    """Key in ``eval_result_metrics``."""
    model: type[BaseModel]
    """Its model (its metric fields come from :func:`~pseval.metrics.registry.metric_fields`)."""
    row_prefix: str | None
    """Prefix of its metrics in the report's flat rows (``""`` for the SAE's own, ``dense_`` ...); None: not
    in the rows."""


CATEGORIES: dict[str, CategorySpec] = {}
"""Every category the report knows, by name (the declared ones and :func:`register_category`'s)."""

_ROW_PREFIXES: dict[str, str] = {
    "ps_eval": "",
    "threshold_free": "",
    "codes": "",
    "standard": "",
    "baseline_dense": "dense_",
    "baseline_random_sae": "random_",
    "baseline_frozen_decoder": "frozen_decoder_",
    "baseline_frozen_encoder": "frozen_encoder_",
    "vs_dense": "dense_",
}


def register_category(name: str, model: type[BaseModel], row_prefix: str | None = "") -> CategorySpec:
    """Make ``name`` a known category: its metrics are registered, and the report shows those marked ``report``.

    A category not declared on :class:`EvalResultMetrics` is stored as written and validated by ``model`` when
    read through :meth:`EvalResultMetrics.category`.
    """
    register_metrics(model)
    spec = CategorySpec(name, model, row_prefix)
    CATEGORIES[name] = spec
    return spec


def _declared_model(info: FieldInfo) -> type[BaseModel]:
    """The model of an optional category field (``Model | None``)."""
    for arg in getattr(info.annotation, "__args__", ()):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    raise TypeError(f"{info.annotation} is not an optional category model")


for _name, _info in EvalResultMetrics.model_fields.items():
    register_category(_name, cast(type[BaseModel], _declared_model(_info)), _ROW_PREFIXES.get(_name))


@dataclass(frozen=True)
class ReportColumn:
    """A metric the report shows as a column of its own: where it is read and how it is shown."""

    row_key: str
    """Its key in the report's flat rows (the category's row prefix + the metric's key)."""
    category: str
    """The category it is read from."""
    spec: MetricSpec
    """Display name, description, direction, format."""

    @property
    def title(self) -> str:
        """The column's hover text: the description and which way is better."""
        better = {"higher": " Higher is better.", "lower": " Lower is better."}.get(self.spec.direction, "")
        return self.spec.description + better


def report_columns() -> list[ReportColumn]:
    """Every registered metric marked ``report``, in category and field order: the tables' and the HTML
    summary's columns beyond their fixed layout (a new metric shows up here without touching report code)."""
    columns: list[ReportColumn] = []
    for category in CATEGORIES.values():
        if category.row_prefix is None:
            continue
        for key, spec in metric_fields(category.model).items():
            if spec.report:
                columns.append(ReportColumn(category.row_prefix + key, category.name, spec))
    return columns


def report_values(metrics: EvalResultMetrics) -> dict[str, float | None]:
    """The :func:`report_columns` values of one result, by row key (only those its categories hold)."""
    out: dict[str, float | None] = {}
    for column in report_columns():
        values = metrics.get(column.category) or {}
        if column.spec.key in values:
            out[column.row_key] = finite_number(values[column.spec.key])
    return out
