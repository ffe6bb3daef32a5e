"""Every module of the project imports on its own, and no import cycle hides behind another.

A cycle between modules works or fails depending on which module a program imports first;
function-local imports used to keep two of them alive. Two checks make one fail loudly:
the graph of module-level imports between our modules has no cycle, and each module imports
in a fresh interpreter state (our modules dropped from ``sys.modules`` before each one).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("engine", "data_pipelines", "models", "launch", "benchmarks")


def project_modules() -> dict[str, Path]:
    """Dotted name -> file of every module of the project's packages."""
    out = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            out[name] = path
    return out


def _module_level_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """Imports that run when the module is imported (not in functions or TYPE_CHECKING)."""
    found, todo = [], list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        elif isinstance(node, ast.If):
            if "TYPE_CHECKING" not in ast.unparse(node.test):
                todo.extend(node.body + node.orelse)
        elif isinstance(node, ast.Try):
            todo.extend(node.body + node.orelse + node.finalbody)
            todo.extend(stmt for handler in node.handlers for stmt in handler.body)
        elif isinstance(node, (ast.With, ast.ClassDef)):
            todo.extend(node.body)
    return found


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the project modules its module-level imports name explicitly.

    ``from pkg import sub`` counts as an edge to ``pkg.sub`` when that is a module, else to
    ``pkg``; the implicit import of a parent package is not an edge (Python initialises it
    first, before the module, so it cannot close a cycle through the module's own body).
    """
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges = set()
        for node in _module_level_imports(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                edges.update(a.name for a in node.names if a.name in modules)
                continue
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            for alias in node.names:
                if f"{base}.{alias.name}" in modules:
                    edges.add(f"{base}.{alias.name}")
                elif base in modules:
                    edges.add(base)
        edges.discard(name)
        graph[name] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph[node]):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
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


def test_the_module_level_import_graph_has_no_cycle():
    graph = import_graph(project_modules())
    assert graph["models"] >= {"models.efficientnet_lite", "models.registry"}  # edges are seen
    assert cycles(graph) == []


def test_a_cycle_is_found():
    """The detector itself: a two-module cycle and a self-contained module."""
    assert cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]


# Modules whose imports need a dependency the 3.12 environment lacks (torch, keras).
FOREIGN = {"benchmarks.isl_torch"}

ISOLATED = r"""
import importlib, sys, traceback
ours = {PACKAGES!r}
failed = []
for name in {names!r}:
    for loaded in [m for m in sys.modules if m.split(".")[0] in ours]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except Exception:
        failed.append(name + ": " + traceback.format_exc(limit=-3))
print("\n".join(failed))
sys.exit(1 if failed else 0)
"""


@pytest.mark.slow
def test_each_module_imports_in_isolation():
    """Each module first, on its own: a cycle that only one import order breaks shows here."""
    names = [n for n in project_modules() if n not in FOREIGN]
    script = ISOLATED.format(PACKAGES=PACKAGES, names=names)
    done = subprocess.run(
        [sys.executable, "-c", script],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
