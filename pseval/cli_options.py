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


def _help(field: Any, flag: str) -> str:
    """The field's description and its default, a boolean's as the flag that gives it (``--no-baselines``)."""
    text = field.description or ""
    if isinstance(field.default, bool):
        text += f" [default: {flag if field.default else '--no-' + flag[2:]}]"
    elif field.default is not None and not callable(field.default):
        text += f" [default: {field.default}]"
    return text


def field_flag(name: str, flags: dict[str, list[str]] | None = None) -> str:
    """The long option of config field ``name``: the field name with dashes unless ``flags`` renames it."""
    return (flags or {}).get(name, ["--" + name.replace("_", "-")])[0]


def options_signature(
    model_cls: type[BaseModel],
    aliases: dict[str, list[str]] | None = None,
    exclude: set[str] | frozenset[str] | None = None,
    extra: list[inspect.Parameter] | None = None,
    flags: dict[str, list[str]] | None = None,
) -> inspect.Signature:
    """An ``inspect.Signature`` of typer options, one per field of ``model_cls`` (all default to None).

    ``flags`` replaces a field's generated option names (``{"model_name": ["--model", "-m"]}``); ``aliases``
    adds names to them. ``extra`` parameters (options that are no field) come first.
    """
    aliases = aliases or {}
    exclude = exclude or set()
    params: list[inspect.Parameter] = list(extra or [])
    for name, field in model_cls.model_fields.items():
        if name in exclude:
            continue
        flag = field_flag(name, flags)
        cli_type = _cli_type(field.annotation)
        decls = [f"{flag}/--no-{flag[2:]}"] if cli_type is bool else [flag]
        decls += (flags or {}).get(name, [])[1:] + aliases.get(name, [])
        option = typer.Option(*decls, help=_help(field, flag), show_default=False)
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
    flags: dict[str, list[str]] | None = None,
    exclude: set[str] | frozenset[str] | None = None,
    extra_last: list[inspect.Parameter] | None = None,
) -> None:
    """Register ``callback(**options)`` as command ``name`` whose options are ``model_cls``'s fields.

    ``extra`` options (no fields) are listed before the fields in ``--help``, ``extra_last`` after them.
    """

    def command(**params: Any) -> None:
        callback(**params)

    signature = options_signature(model_cls, aliases=aliases, exclude=exclude, extra=extra, flags=flags)
    params = [*signature.parameters.values(), *(extra_last or [])]
    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__doc__ = help_text
    app.command(name, help=help_text)(command)


def typed_extras(declared: Callable[..., Any]) -> list[inspect.Parameter]:
    """The parameters of a function that only declares options (``name: Annotated[type, typer.Option(...)]``),
    as keyword-only parameters to pass as ``extra``: the options of a command that are no config field."""
    signature = inspect.signature(declared, eval_str=True)
    return [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in signature.parameters.values()]


def passed_values(params: dict[str, Any]) -> dict[str, Any]:
    """The options actually given on the command line (``None`` = left to the config's default)."""
    return {k: v for k, v in params.items() if v is not None}
