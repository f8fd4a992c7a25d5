"""The metric registry: every metric's key, display name, description, direction, format and aggregation, once.

A metric is declared where its value is: a field of a result category (a pydantic model), written with
:func:`metric_field` instead of ``Field``; the field's name is the metric's key, its ``title`` the display name,
its ``description`` the description, and the rest travels in the field's JSON-schema extras (``x-direction``,
``x-format``, ``x-aggregation``, ``x-interval``, ``x-report``), so the generated JSON schema of the result file
carries it too. :func:`metric_fields` reads them back as :class:`MetricSpec` records, and :func:`metric_spec`
finds one by key among every registered category (:func:`register_metrics` registers a model's metrics; the
result categories of :mod:`pseval.evals.categories` are registered when that module is imported).

The tables, the HTML report and the figures take their labels, the "better" direction and the optional columns
from here, in the spirit of lm-evaluation-harness's ``register_metric(higher_is_better=...)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field
from pydantic.json_schema import JsonDict

Direction = Literal["higher", "lower", "neither"]
"""Which way is better: ``higher`` (specificity), ``lower`` (FVU), ``neither`` (a count, a threshold)."""

MetricFormat = Literal["ratio", "signed_ratio", "count", "real", "nats", "p_value"]
"""How a value reads: a share in [0, 1], a difference in [-1, 1], a count, any real, nats, a p-value."""

DIRECTIONS: tuple[str, ...] = ("higher", "lower", "neither")

EXTRA_PREFIX = "x-"
"""Prefix of the metric's keys in the field's JSON-schema extras (JSON Schema's custom-keyword convention)."""


@dataclass(frozen=True)
class MetricSpec:
    """One metric as the report shows it."""

    key: str
    """The field name, the same in every category that holds the metric (``specificity``)."""
    name: str
    """Display name (``Specificity``)."""
    description: str
    """One sentence: what the number is (the field's description)."""
    direction: Direction
    """Which way is better."""
    format: MetricFormat
    """How the value reads and is printed."""
    aggregation: str
    """How per-item values become this number (``pooled over pairs``, ``mean over tokens`` ...)."""
    interval: bool = False
    """Reported with a ``<key>_low`` / ``<key>_high`` interval (in the same category or its ``_ci`` sibling)."""
    report: bool = False
    """Shown as a column of the result tables and the HTML summary whenever a result has it."""

    @property
    def higher_is_better(self) -> bool | None:
        """True / False for a direction, None when neither way is better."""
        return None if self.direction == "neither" else self.direction == "higher"

    def format_value(self, value: float | None, digits: int = 3) -> str:
        """The value as the tables print it (``–`` when absent)."""
        if value is None:
            return "–"
        if self.format == "count":
            return f"{value:,.0f}" if float(value).is_integer() else f"{value:.1f}"
        if self.format == "p_value":
            return f"{value:.2g}"
        return f"{value:.{digits}f}"


def metric_field(
    name: str,
    description: str,
    *,
    direction: Direction,
    format: MetricFormat = "ratio",
    aggregation: str = "pooled over pairs",
    interval: bool = False,
    report: bool = False,
    default: Any = None,
) -> Any:
    """A pydantic ``Field`` declaring a metric: the field's name is its key, ``name`` its display name.

    ``default=...`` makes the field required. See :class:`MetricSpec` for the other arguments.
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, not {direction!r}")
    extra: JsonDict = {
        f"{EXTRA_PREFIX}direction": direction,
        f"{EXTRA_PREFIX}format": format,
        f"{EXTRA_PREFIX}aggregation": aggregation,
        f"{EXTRA_PREFIX}interval": interval,
        f"{EXTRA_PREFIX}report": report,
    }
    return Field(default=default, title=name, description=description, json_schema_extra=extra)


def metric_fields(model: type[BaseModel]) -> dict[str, MetricSpec]:
    """The metrics a model declares with :func:`metric_field`, by key, in field order."""
    out: dict[str, MetricSpec] = {}
    for key, info in model.model_fields.items():
        extra = info.json_schema_extra
        if not isinstance(extra, dict) or f"{EXTRA_PREFIX}direction" not in extra:
            continue
        out[key] = MetricSpec(
            key=key,
            name=info.title or key,
            description=info.description or "",
            direction=extra[f"{EXTRA_PREFIX}direction"],  # type: ignore[arg-type]
            format=extra[f"{EXTRA_PREFIX}format"],  # type: ignore[arg-type]
            aggregation=str(extra[f"{EXTRA_PREFIX}aggregation"]),
            interval=bool(extra[f"{EXTRA_PREFIX}interval"]),
            report=bool(extra[f"{EXTRA_PREFIX}report"]),
        )
    return out


_REGISTRY: dict[str, MetricSpec] = {}


def register_metric(spec: MetricSpec) -> MetricSpec:
    """Register one metric; a key registered twice must mean the same metric (same name and direction)."""
    known = _REGISTRY.get(spec.key)
    if known is not None and (known.name, known.direction) != (spec.name, spec.direction):
        raise ValueError(
            f"metric {spec.key!r} is registered as {known.name!r} ({known.direction}) "
            f"and again as {spec.name!r} ({spec.direction}): give the new one another key"
        )
    if known is None:
        _REGISTRY[spec.key] = spec
    return _REGISTRY[spec.key]


def register_metrics(model: type[BaseModel]) -> dict[str, MetricSpec]:
    """Register every metric ``model`` declares; returns them by key."""
    return {key: register_metric(spec) for key, spec in metric_fields(model).items()}


def metric_spec(key: str) -> MetricSpec | None:
    """The registered metric of that key, or None."""
    return _REGISTRY.get(key)


def metric_label(key: str) -> str:
    """A metric's display name (the key itself when it is not registered)."""
    spec = _REGISTRY.get(key)
    return spec.name if spec is not None else key


def registered_metrics() -> dict[str, MetricSpec]:
    """Every registered metric, by key, in registration order."""
    return dict(_REGISTRY)
