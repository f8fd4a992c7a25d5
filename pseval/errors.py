"""User-facing errors.

Every problem a user can cause (a wrong path, a corrupt file, an SAE that does not fit the hook, an
unknown hook name, an empty dataset, ...) is raised as a :class:`PsevalError`. The CLI prints it as one
line (problem, then fix) and exits with code 2, without a traceback; the Python API lets it propagate.
"""

from __future__ import annotations


class PsevalError(Exception):
    """A problem caused by the input, with a one-line explanation and the way to fix it."""

    exit_code = 2

    def __init__(self, problem: str, fix: str | None = None) -> None:
        self.problem = problem.rstrip(". ")
        self.fix = fix.rstrip(". ") if fix else None
        super().__init__(str(self))

    def __str__(self) -> str:
        if self.fix:
            return f"{self.problem}. Fix: {self.fix}."
        return f"{self.problem}."


class ConfigError(PsevalError):
    """A configuration value is missing, unknown or out of range."""


class DataError(PsevalError):
    """A dataset is missing, malformed, or left empty by filtering."""


class ModelError(PsevalError):
    """A model cannot be found or loaded, or a hook name does not exist in it."""


class SAEError(PsevalError):
    """An SAE file is missing, corrupt, of an unknown format, or does not fit the hook."""


_BRANCH_MISMATCH = {"list_type", "dict_type", "model_type", "model_attributes_type", "is_instance_of"}
"""Error types pydantic reports for each member of a union the value is not of (noise next to the real one)."""


def _is_union_tag(part: object) -> bool:
    """A location part naming a union member (``GridConfig``, ``list[GridConfig]``), not a field or index."""
    return isinstance(part, str) and (part[:1].isupper() or "[" in part)


def validation_details(exc: Exception, field_names: dict[str, str] | None = None, max_errors: int = 6) -> str:
    """A pydantic ValidationError as ``field: what is wrong (got value)`` per error, joined by ``; ``.

    ``field_names`` renames top-level fields for the reader, e.g. ``{"batch_size": "--batch-size"}``.
    Union members are left out of the locations, and so are the errors of the members whose type the
    value does not even have. The value is shown unless it is a mapping or a list (that is the whole
    record, not the bad value). Past ``max_errors`` the rest are counted. Other exceptions give their first
    line.
    """
    errors = getattr(exc, "errors", None)
    if not callable(errors):
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    found = list(errors())
    if any(any(_is_union_tag(part) for part in e.get("loc", ())) for e in found):
        relevant = [e for e in found if e.get("type") not in _BRANCH_MISMATCH]
        found = relevant or found
    parts: list[str] = []
    for error in found:
        loc = [str(part) for part in error.get("loc", ()) if not _is_union_tag(part)]
        if loc and field_names and loc[0] in field_names:
            loc[0] = field_names[loc[0]]
        where = ".".join(loc) or "value"
        message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        value = error.get("input")
        shown = (
            "" if isinstance(value, dict | list) or error.get("type") == "missing" else f" (got {value!r})"
        )
        if f"{where}: {message}{shown}" not in parts:
            parts.append(f"{where}: {message}{shown}")
    if len(parts) > max_errors:
        parts = [*parts[:max_errors], f"and {len(parts) - max_errors} more"]
    return "; ".join(parts)


def parse_error_details(exc: Exception) -> str:
    """A JSON or YAML syntax error in one line, with its line and column where the parser gives them."""
    mark = getattr(exc, "problem_mark", None)  # yaml.MarkedYAMLError
    if mark is not None:
        problem = getattr(exc, "problem", None) or type(exc).__name__
        return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
    if hasattr(exc, "lineno") and hasattr(exc, "msg"):  # json.JSONDecodeError
        return f"{exc.msg} at line {exc.lineno}, column {getattr(exc, 'colno', '?')}"
    first = str(exc).splitlines()[0] if str(exc) else ""
    return first or type(exc).__name__
