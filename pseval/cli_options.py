"""Generate typer commands from pydantic config classes, so a config's documented fields *are* the CLI.

Every field becomes ``--field-name`` with the field's description as help; booleans become
``--flag/--no-flag``. Options left out on the command line are not passed, so the config's own defaults
(and its validation, with one clear error line) apply.
"""

from __future__ import annotations

import inspect
import types
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union, get_args, get_origin

import typer
import typer.core
from pydantic import BaseModel

_PLACEHOLDERS = {"int": "N", "int range": "N", "float": "X", "float range": "X", "path": "PATH"}


def _help_metavar(param: Any, ctx: Any) -> str:
    """A short placeholder for an option's value in ``--help`` (``N``, ``PATH``, ``a|b``), none for flags."""
    if getattr(param, "is_flag", False) or getattr(param, "count", False):
        return ""
    display = getattr(param, "display_type", None)
    label = display(ctx).strip("<>") if callable(display) else ""
    if label.startswith("list[") and label.endswith("]"):
        label = label[len("list[") : -1]
    if "|" in label:
        # the accepted values, unless they would push the help past 80 columns (the help text lists them)
        return label if len(label) <= 40 else "NAME"
    return _PLACEHOLDERS.get(label, "TEXT")


class HelpCommand(typer.core.TyperCommand):
    """A command whose ``--help`` names each value by a placeholder instead of a Python type label."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        for param in self.get_params(ctx):
            if getattr(param, "param_type_name", "") == "argument":
                # An argument is shown by its name (RESULTS_DIR), which already says what it is.
                param.display_type_rich = lambda ctx: ""  # type: ignore[attr-defined]
                if param.metavar is None and param.name:
                    param.metavar = param.name.upper()
            elif param.metavar is None:
                param.metavar = _help_metavar(param, ctx)
        super().format_help(ctx, formatter)


class PsevalTyper(typer.Typer):
    """``typer.Typer`` whose commands use :class:`HelpCommand` unless told otherwise.

    Help is plain text (no boxes): it wraps cleanly in an 80-column terminal and never truncates an option.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("rich_markup_mode", None)
        super().__init__(*args, **kwargs)

    def command(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        kwargs.setdefault("cls", HelpCommand)
        return super().command(*args, **kwargs)


def _unwrap_optional(annotation: Any) -> Any:
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _cli_type(annotation: Any) -> Any:
    inner = _unwrap_optional(annotation)
    if get_origin(inner) is Literal:
        return inner  # --help lists the accepted values and typer checks them
    if inner in (bool, int, float, Path):
        return inner
    return str


def _help(field: Any) -> str:
    text = field.description or ""
    if field.default is not None and not callable(field.default):
        text += f" [default: {field.default}]"
    return text


def options_signature(
    model_cls: type[BaseModel],
    aliases: dict[str, list[str]] | None = None,
    exclude: set[str] | None = None,
    extra: list[inspect.Parameter] | None = None,
) -> inspect.Signature:
    """An ``inspect.Signature`` of typer options, one per field of ``model_cls`` (all default to None)."""
    aliases = aliases or {}
    exclude = exclude or set()
    params: list[inspect.Parameter] = list(extra or [])
    for name, field in model_cls.model_fields.items():
        if name in exclude:
            continue
        flag = "--" + name.replace("_", "-")
        cli_type = _cli_type(field.annotation)
        decls = [f"{flag}/--no-{name.replace('_', '-')}"] if cli_type is bool else [flag]
        decls += aliases.get(name, [])
        option = typer.Option(*decls, help=_help(field), show_default=False)
        annotation = Annotated[Optional[cli_type], option]  # type: ignore[valid-type]  # noqa: UP045
        params.append(
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=annotation)
        )
    return inspect.Signature(params)


def add_config_command(
    app: typer.Typer,
    name: str,
    model_cls: type[BaseModel],
    callback: Callable[..., None],
    help_text: str,
    aliases: dict[str, list[str]] | None = None,
    extra: list[inspect.Parameter] | None = None,
) -> None:
    """Register ``callback(**options)`` as command ``name`` whose options are ``model_cls``'s fields."""

    def command(**params: Any) -> None:
        callback(**params)

    command.__signature__ = options_signature(model_cls, aliases=aliases, extra=extra)  # type: ignore[attr-defined]
    command.__doc__ = help_text
    app.command(name, help=help_text)(command)


def passed_values(params: dict[str, Any]) -> dict[str, Any]:
    """The options actually given on the command line (``None`` = left to the config's default)."""
    return {k: v for k, v in params.items() if v is not None}
