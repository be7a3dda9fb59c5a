"""occgen's own structure: no occgen import hidden inside a function (tests/test_architecture.py
checks cycles and sizes for every package)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "occgen"
MODULES = {f"occgen.{p.stem}": p for p in sorted(PACKAGE.glob("*.py")) if p.stem != "__init__"}


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


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_occgen_import_inside_functions(name):
    tree = ast.parse(MODULES[name].read_text())
    hidden = {f"{f.name} imports {m}" for f in _functions(tree) for m in _occgen_imports(f)}
    assert not hidden, f"{name}: {sorted(hidden)}"
