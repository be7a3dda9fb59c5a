"""occgen's own structure: its modules import each other one way (no cycle, and no occgen import
hidden inside a function to dodge one), and modules and functions stay small enough to read."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "occgen"
MODULES = {f"occgen.{p.stem}": p for p in sorted(PACKAGE.glob("*.py")) if p.stem != "__init__"}
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80


def _occgen_imports(node: ast.AST) -> set[str]:
    """The occgen modules imported anywhere under ``node``."""
    names = set()
    for child in ast.walk(node):
        if isinstance(child, ast.ImportFrom) and child.module and child.module.startswith("occgen"):
            names.add(child.module)
            names.update(f"{child.module}.{a.name}" for a in child.names)
        elif isinstance(child, ast.Import):
            names.update(a.name for a in child.names)
    return names & set(MODULES)


def _functions(tree: ast.AST) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    return [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]


def test_occgen_modules_import_one_way():
    graph = {name: _occgen_imports(ast.parse(path.read_text())) - {name} for name, path in MODULES.items()}
    state: dict[str, int] = {}

    def cycle_from(node: str, trail: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*trail, node, nxt]
            if nxt not in state and (found := cycle_from(nxt, [*trail, node])):
                return found
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := cycle_from(start, [])):
            pytest.fail("import cycle: " + " -> ".join(cycle))


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_occgen_import_inside_functions(name):
    tree = ast.parse(MODULES[name].read_text())
    hidden = {f"{f.name} imports {m}" for f in _functions(tree) for m in _occgen_imports(f)}
    assert not hidden, f"{name}: {sorted(hidden)}"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_modules_and_functions_stay_small(name):
    text = MODULES[name].read_text()
    assert len(text.splitlines()) <= MAX_MODULE_LINES, f"{name} has {len(text.splitlines())} lines"
    long = [f"{f.name} ({f.end_lineno - f.lineno + 1} lines)" for f in _functions(ast.parse(text))
            if f.end_lineno - f.lineno + 1 > MAX_FUNCTION_LINES]
    assert not long, f"{name}: {long}"
