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


def validation_details(exc: Exception, field_names: dict[str, str] | None = None) -> str:
    """A pydantic ValidationError as ``field: what is wrong (got value)`` per error, joined by ``; ``.

    ``field_names`` renames top-level fields for the reader, e.g. ``{"max_pairs": "--max-pairs"}``. Other
    exceptions give their first line. The value is shown unless it is a mapping or a list (those are the
    whole record, not the bad value).
    """
    errors = getattr(exc, "errors", None)
    if not callable(errors):
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    parts = []
    for error in errors():
        loc = [str(part) for part in error.get("loc", ())]
        if loc and field_names and loc[0] in field_names:
            loc[0] = field_names[loc[0]]
        where = ".".join(loc) or "value"
        value = error.get("input")
        shown = (
            "" if isinstance(value, dict | list) or error.get("type") == "missing" else f" (got {value!r})"
        )
        parts.append(f"{where}: {error.get('msg', 'invalid')}{shown}")
    return "; ".join(parts)
