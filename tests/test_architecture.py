"""The shape of the code: layers point one way, no import cycles, modules a reader can hold.

``flows → aggregation → schemas``: schemas import nothing of the project's other packages,
aggregation imports no flow and no Prefect (so every step serves a task, a test and a command
alike), the analysts' client imports nothing of the pipeline. No module imports itself back
through others, at run time or for type checking. Read from the source with ``ast``; nothing is
imported.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("schemas", "aggregation", "flows", "mobility_client", "sample_data")
MAX_LINES = 500
"""The most lines a module of aggregation/ may have (issue 15): split along its own seams."""


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def _resolve(name: str) -> str | None:
    """The project module that ``import name`` loads (``a.b.c`` → ``a.b`` if c is a name)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


_BLOCKS = (
    ast.ClassDef,
    ast.FunctionDef,
    ast.AsyncFunctionDef,
    ast.If,
    ast.With,
    ast.For,
    ast.While,
)
"""Statements whose bodies hold imports (a function's only when they are counted, ``lazy``)."""


def _imports(path: Path, *, typing: bool, lazy: bool = False) -> dict[str, int]:
    """Modules imported when ``path`` is loaded (``typing``: also under ``TYPE_CHECKING``), each
    with the line of its first import. Imports inside functions are lazy and counted only with
    ``lazy`` (they run when the function is called); any other import of another package is
    kept under its full dotted name."""
    found: dict[str, int] = {}

    def add(name: str, line: int) -> None:
        found.setdefault(_resolve(name) or name, line)

    def visit(nodes: list[ast.stmt], guarded: bool) -> None:
        for node in nodes:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                visit(node.body, True)
                visit(node.orelse, guarded)
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and not lazy:
                continue
            elif isinstance(node, _BLOCKS):
                visit(node.body, guarded)
                visit(getattr(node, "orelse", []), guarded)
            elif isinstance(node, ast.Try):
                for block in (node.body, node.orelse, node.finalbody):
                    visit(block, guarded)
                for handler in node.handlers:
                    visit(handler.body, guarded)
            elif guarded and not typing:
                continue
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    add(alias.name, node.lineno)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                for alias in node.names:
                    full = f"{node.module}.{alias.name}"
                    add(full if full in MODULES else node.module, node.lineno)

    visit(ast.parse(path.read_text(encoding="utf-8")).body, False)
    return found


def _cycles(*, typing: bool, lazy: bool = False) -> list[list[str]]:
    """Strongly connected groups of project modules (Tarjan), each a cycle of imports."""
    graph = {
        m: [d for d in _imports(p, typing=typing, lazy=lazy) if d in MODULES and d != m]
        for m, p in MODULES.items()
    }
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for module in graph:
        if module not in index:
            connect(module)
    return groups


FORBIDDEN = {
    "schemas": ("aggregation", "flows", "mobility_client", "sample_data", "prefect"),
    "aggregation": ("flows", "mobility_client", "prefect", "prefect_dask", "fastapi"),
    "mobility_client": ("schemas", "aggregation", "flows", "sample_data"),
}


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_layers_point_one_way(package: str) -> None:
    wrong = [
        f"{MODULES[m].relative_to(ROOT)}:{line} imports {name}"
        for m in MODULES
        if m.split(".")[0] == package
        for name, line in _imports(MODULES[m], typing=True).items()
        if name.split(".")[0] in FORBIDDEN[package]
    ]
    assert wrong == []


@pytest.mark.parametrize("typing", [False, True], ids=["at-run-time", "for-type-checking"])
def test_no_import_cycles(typing: bool) -> None:
    assert _cycles(typing=typing) == []


def test_no_import_cycles_through_lazy_imports() -> None:
    """Not even through an import inside a function (flows import Prefect, Dask and each other
    lazily to start fast): ``flows.daily`` once imported ``flows.distributed``, which imported
    ``flows.daily`` back when it ran."""
    assert _cycles(typing=True, lazy=True) == []


def test_no_module_of_aggregation_is_over_500_lines() -> None:
    long = {
        str(p.relative_to(ROOT)): n
        for m, p in MODULES.items()
        if m.startswith("aggregation.")
        and (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert long == {}


def test_the_checks_see_what_they_check() -> None:
    # The import reader finds run-time, type-only and lazy imports where they are.
    plan = _imports(MODULES["aggregation.release.plan"], typing=False)
    assert "aggregation.mechanisms" in plan
    assert "aggregation.release.context" not in _imports(
        MODULES["aggregation.release.run"], typing=False
    )
    assert "aggregation.release.context" in _imports(
        MODULES["aggregation.release.run"], typing=True
    )
    assert len(MODULES) > 100
    cli_run = MODULES["flows.cli.run"]  # imports flows.daily only inside its commands
    assert "flows.daily" not in _imports(cli_run, typing=True)
    assert "flows.daily" in _imports(cli_run, typing=True, lazy=True)
