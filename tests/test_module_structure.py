"""The shape of the source tree: no import cycles between modules, no module over 500 lines.

Both are read from the source files (``ast`` and line counts), not by importing anything.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("medmo_agent", "mcp_server", "jupyter_ext")

MAX_LINES = 500


def _modules(root: Path = ROOT, packages: tuple[str, ...] = PACKAGES) -> dict[str, Path]:
    """Every module of the packages, by dotted name (a package by its own name)."""
    found = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _imported(modules: dict[str, Path], name: str, path: Path) -> set[str]:
    """The project modules that ``name`` imports, by any import statement in it.

    The rule: every ``import`` and ``from ... import`` counts, wherever it stands: at the
    top, inside a function, or under ``if TYPE_CHECKING:``. Deferring an import keeps
    Python from failing on a cycle, but the two modules still depend on each other, which is
    what makes them hard to read, test and change one at a time. ``from pkg import x``
    depends on ``pkg.x`` when that is a module, else on ``pkg``. Merely being a
    sub-module of a package is not a dependency on the package.
    """
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]

    def nearest(dotted: str) -> str | None:
        while dotted and dotted not in modules:
            dotted = dotted.rpartition(".")[0]
        return dotted or None

    deps: set[str | None] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            deps |= {nearest(a.name) for a in node.names if nearest(a.name)}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join([*base, *([node.module] if node.module else [])])
            else:
                source = node.module or ""
            if nearest(source) is None:
                continue  # another distribution's module
            for alias in node.names:
                full = f"{source}.{alias.name}"
                deps.add(full if full in modules else nearest(source))
    return {d for d in deps if d is not None and d != name}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _graph(root: Path = ROOT, packages: tuple[str, ...] = PACKAGES) -> dict[str, set[str]]:
    modules = _modules(root, packages)
    return {name: _imported(modules, name, path) for name, path in modules.items()}


def test_no_modules_import_each_other():
    cycles = _cycles(_graph())
    assert not cycles, "modules that import each other (directly or around a circle): " + (
        "; ".join(" <-> ".join(c) for c in cycles)
    )


def test_the_cycle_check_sees_deferred_and_type_checking_imports(tmp_path):
    pkg = tmp_path / "medmo_agent" / "demo"
    pkg.mkdir(parents=True)
    (tmp_path / "medmo_agent" / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from .b import g\n")
    (pkg / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from medmo_agent.demo import a\n"
    )
    (pkg / "c.py").write_text("from . import b\n")
    graph = _graph(tmp_path, ("medmo_agent",))
    assert graph["medmo_agent.demo.c"] == {"medmo_agent.demo.b"}
    assert _cycles(graph) == [["medmo_agent.demo.a", "medmo_agent.demo.b"]]


def _line_counts() -> dict[str, int]:
    return {
        str(path.relative_to(ROOT)): len(path.read_text(encoding="utf-8").splitlines())
        for path in _modules().values()
    }


def test_no_module_is_longer_than_500_lines():
    too_long = {path: n for path, n in _line_counts().items() if n > MAX_LINES}
    assert not too_long, f"split these by responsibility (at most {MAX_LINES} lines): {too_long}"
