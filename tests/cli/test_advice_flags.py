"""Every command-line flag the package names in a message, a fix or a help text exists on that command.

Advice that names a flag the command does not have sends the user from one error to the next, so the
strings of the package are scanned: a flag after ``pseval COMMAND`` must be one of that command's options,
a flag with no command must be an option of some pseval command, and flags of other programs (``pip
install``, ``ray start``) are left alone.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import typer.main

import pseval
from pseval.cli import app

PACKAGE = Path(pseval.__file__).parent
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9]*(?:-[a-z0-9]+)*(?![\w-])")
# Who a flag belongs to: the nearest command named before it in the same clause.
OWNER = re.compile(r"pseval\s+(?P<command>[a-z][a-z-]*)|ray\s+start|pip\s+install|apt-get\s+install")
CLAUSE_END = re.compile(r"`|;|, or |\. ")
OTHER_PROGRAMS_OPTIONS = {"--no-deps": "pip's, the default options of a model package's pip install"}


def commands() -> dict[str, Any]:
    """The pseval commands by name (click commands, whichever click typer carries)."""
    found: dict[str, Any] = typer.main.get_command(app).commands  # type: ignore[attr-defined]
    assert {"eval", "report", "plot", "metrics", "train"} <= set(found)
    return found


def command_options() -> dict[str, set[str]]:
    """Each pseval command's long options (``--help`` included)."""
    options: dict[str, set[str]] = {}
    for name, command in commands().items():
        flags = {"--help"}
        for param in command.params:
            flags.update(o for o in (*param.opts, *param.secondary_opts) if o.startswith("--"))
        options[name] = flags
    return options


def _docstring_nodes(tree: ast.AST) -> set[int]:
    nodes = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                nodes.add(id(body[0].value))
    return nodes


def _text(node: ast.JoinedStr) -> str:
    """An f-string's text with ``{}`` for each value, so a flag keeps the command named before it."""
    return "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)


def package_strings() -> list[tuple[str, int, str]]:
    """Every string literal and f-string of the package outside docstrings: (file, line, text)."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skip = _docstring_nodes(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.JoinedStr):
                skip.update(id(v) for v in node.values)
                found.append((str(path.relative_to(PACKAGE)), node.lineno, _text(node)))
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
                found.append((str(path.relative_to(PACKAGE)), node.lineno, node.value))
    return found


def wrong_flags(text: str, options: dict[str, set[str]]) -> list[str]:
    """The flags of ``text`` that its command (or, with none named, every pseval command) lacks."""
    every = set().union(*options.values())
    wrong = []
    for match in FLAG.finditer(text):
        before = text[: match.start()]
        clause_start = max((m.end() for m in CLAUSE_END.finditer(before)), default=0)
        owners = list(OWNER.finditer(before, clause_start))
        if not owners:
            known = every
        elif owners[-1].group("command") is None:
            continue  # another program's flag
        else:
            known = options.get(owners[-1].group("command"), set())
        if match.group() not in known and match.group() not in OTHER_PROGRAMS_OPTIONS:
            wrong.append(match.group())
    return wrong


def test_the_scanner_catches_a_wrong_flag() -> None:
    options = command_options()
    assert wrong_flags("run `pseval eval --output FOLDER` first", options) == ["--output"]
    assert wrong_flags("run `pseval eval --out FOLDER` first", options) == []
    assert wrong_flags("pass --no-such-flag", options) == ["--no-such-flag"]
    assert wrong_flags("reinstall: pip install --force-reinstall torch", options) == []


def test_every_flag_named_in_the_package_exists() -> None:
    options = command_options()
    problems = [
        f"{file}:{line}: {flag} in {text!r}"
        for file, line, text in package_strings()
        for flag in wrong_flags(text, options)
    ]
    assert problems == []


def test_every_flag_named_in_help_texts_exists() -> None:
    options = command_options()
    problems = []
    for name, command in commands().items():
        texts = [command.help or ""] + [getattr(p, "help", None) or "" for p in command.params]
        for text in texts:
            problems += [f"pseval {name}: {flag}" for flag in wrong_flags(f"pseval {name} {text}", options)]
    assert problems == []
