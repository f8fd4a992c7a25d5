"""The package's import graph, read from the source (function-local imports included): no module import
cycle, each stage imports only the stages below it (docs/architecture.md), and no private name crosses a
package boundary."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pseval

PACKAGE_ROOT = Path(pseval.__file__).parent

BASE: frozenset[str] = frozenset({"errors", "_io", "_progress", "_format", "_version"})
"""Helpers any stage may import (they import nothing of pseval's but each other)."""

ALLOWED: dict[str, frozenset[str]] = {
    # the pipeline, lowest first: data -> models -> activations -> sae -> metrics -> evals -> report
    "errors": frozenset(),
    "_version": frozenset(),
    "_format": frozenset(),
    "_io": frozenset({"errors"}),
    "_progress": frozenset({"errors", "_io"}),
    "data": BASE,
    "models": BASE,
    "activations": BASE | {"data", "models"},
    "sae": BASE | {"data", "models", "activations"},
    "metrics": BASE | {"data", "models", "activations", "sae"},
    # training builds SAEs from activations (and names replicates with metrics); evals scores its controls
    "training": BASE | {"data", "models", "activations", "sae", "metrics"},
    "evals": BASE | {"data", "models", "activations", "sae", "metrics", "training"},
    "report": BASE | {"data", "models", "activations", "sae", "metrics", "evals"},
    # the drivers on top of the pipeline
    "sweep": BASE | {"data", "models", "activations", "sae", "metrics", "training", "evals", "report"},
    "distributed": BASE
    | {"data", "models", "activations", "sae", "metrics", "training", "evals", "report", "sweep"},
    "demo": BASE | {"data", "models", "activations", "sae", "metrics", "training", "evals", "report"},
    "cli_options": BASE,
    "cli": BASE
    | {
        "data",
        "models",
        "activations",
        "sae",
        "metrics",
        "training",
        "evals",
        "report",
        "sweep",
        "distributed",
    }
    | {"demo", "cli_options"},
    "__main__": frozenset({"cli"}),
    # ``import pseval`` stays light: the API's heavy names are imported on first use (PEP 562 __getattr__)
    "__init__": BASE | {"data", "models", "sae", "metrics", "training", "evals", "report", "sweep"},
}
"""Stage (first part below ``pseval``; ``__init__`` for the package itself) -> the stages it may import."""


def module_name(path: Path) -> str:
    parts = ["pseval", *path.relative_to(PACKAGE_ROOT).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def all_modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE_ROOT.rglob("*.py"))}


def _type_checking_only(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")
    )


def _runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node except those under ``if TYPE_CHECKING:`` (annotations only: they never run)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(child for child in ast.iter_child_nodes(node) if not _type_checking_only(child))


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> dict[str, set[str]]:
    """pseval module imported -> the names taken from it (empty for ``import x``), top-level or in functions."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: dict[str, set[str]] = {}
    for node in _runtime_nodes(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in modules:
                    found.setdefault(alias.name, set())
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            if not source.startswith("pseval"):
                continue
            for alias in node.names:
                if f"{source}.{alias.name}" in modules:  # from package import submodule
                    found.setdefault(f"{source}.{alias.name}", set())
                else:
                    found.setdefault(source, set()).add(alias.name)
    return {module: names for module, names in found.items() if module in modules and module != name}


def import_graph() -> dict[str, dict[str, set[str]]]:
    modules = all_modules()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def stage(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def cycles(graph: dict[str, dict[str, set[str]]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_graph_sees_function_local_and_relative_imports(tmp_path: Path) -> None:
    modules = {"pseval.a": tmp_path / "a.py", "pseval.b": tmp_path / "b.py", "pseval.c": tmp_path / "c.py"}
    source = (
        "from typing import TYPE_CHECKING\nimport pseval.c\nif TYPE_CHECKING:\n    from pseval.c import Hidden\n"
        "def f():\n    from .b import thing, _private\n"
    )
    (tmp_path / "a.py").write_text(source)
    assert imports_of("pseval.a", tmp_path / "a.py", modules) == {
        "pseval.b": {"thing", "_private"},
        "pseval.c": set(),
    }
    assert cycles({"x": {"y": set()}, "y": {"z": set()}, "z": {"x": set()}, "w": {"x": set()}}) == [
        ["x", "y", "z"]
    ]
    assert cycles({"x": {"y": set()}, "y": set()}) == []


def test_no_module_import_cycle() -> None:
    found = cycles(import_graph())
    assert not found, "module import cycles:\n" + "\n".join(" <-> ".join(c) for c in found)


def test_every_stage_imports_only_the_stages_below_it() -> None:
    graph = import_graph()
    assert {stage(module) for module in graph} <= set(ALLOWED), "a new stage: give it a row in ALLOWED"
    wrong = sorted(
        f"{module} imports {target}"
        for module, targets in graph.items()
        for target in targets
        if stage(target) != stage(module) and stage(target) not in ALLOWED[stage(module)]
    )
    assert not wrong, "imports against the stage order of docs/architecture.md:\n" + "\n".join(wrong)


def test_no_private_name_is_imported_from_another_package() -> None:
    modules = all_modules()

    def package(module: str) -> str:
        return module if modules[module].name == "__init__.py" else module.rpartition(".")[0]

    graph = import_graph()
    wrong = sorted(
        f"{module} imports {target}.{name}"
        for module, targets in graph.items()
        for target, names in targets.items()
        for name in names
        if name.startswith("_") and not name.startswith("__") and package(target) != package(module)
    )
    assert not wrong, "private names used outside their package:\n" + "\n".join(wrong)
