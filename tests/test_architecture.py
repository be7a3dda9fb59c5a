"""The package layering: each package imports only packages to its left in
common ← alignment ← occgen ← alob_train ← alob_eval ← experiment, so there are no cycles between
packages; inside a package no two modules import each other; and the helpers every stage shares
exist once."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ["alob_common", "alignment", "occgen", "alob_train", "alob_eval", "alob_experiment"]


def _modules() -> dict[str, Path]:
    found = {}
    for package in LAYERS:
        for path in sorted((ROOT / package).glob("*.py")):
            name = package if path.stem == "__init__" else f"{package}.{path.stem}"
            found[name] = path
    return found


def _imports(path: Path) -> set[str]:
    """Every project module imported anywhere in the file (top level or inside functions)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    modules = _modules()
    return {n for n in names if n in modules and n.split(".")[0] in LAYERS}


def test_packages_import_only_earlier_layers():
    wrong = []
    for name, path in _modules().items():
        mine = LAYERS.index(name.split(".")[0])
        for target in _imports(path):
            if LAYERS.index(target.split(".")[0]) > mine:
                wrong.append(f"{name} imports {target}")
    assert not wrong, "imports against the layer order: " + "; ".join(wrong)


# The layering keeps packages apart, so a cycle can only run inside one package: each is checked alone.
@pytest.mark.parametrize("package", LAYERS)
def test_no_import_cycles_between_modules(package):
    graph = {name: {t for t in _imports(path) if t != name and not (name.endswith(".__init__") or "." not in name)}
             for name, path in _modules().items() if "." in name and name.split(".")[0] == package}
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if "." not in nxt:
                continue
            if state.get(nxt) == 1:
                return trail + [node, nxt]
            if nxt not in state and (cycle := visit(nxt, trail + [node])):
                return cycle
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start, [])):
            pytest.fail("import cycle: " + " -> ".join(cycle))


MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80


@pytest.mark.parametrize("name", sorted(_modules()))
def test_modules_and_functions_stay_small(name):
    """Modules of at most ~400 lines and functions of at most ~80, so each can be read whole."""
    text = _modules()[name].read_text()
    assert len(text.splitlines()) <= MAX_MODULE_LINES, f"{name} has {len(text.splitlines())} lines"
    long = [f"{f.name} ({f.end_lineno - f.lineno + 1} lines)" for f in ast.walk(ast.parse(text))
            if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef)) and f.end_lineno - f.lineno + 1 > MAX_FUNCTION_LINES]
    assert not long, f"{name}: {long}"


@pytest.mark.parametrize("pattern, home", [
    (r"^IMAGE_EXTENSIONS\s*=|IMAGE_SUFFIXES\s*=", "alob_common/images.py"),
    (r"^def (write_bytes_atomic|write_atomic|link_or_copy_atomic)\b", "alob_common/atomic.py"),
    (r"^def (contiguous_folds|parse_pairs_txt)\b", "alob_common/pairs.py"),
    (r"^def (dlib_model_path|dlib_model_file)\b", "alob_common/dlib_models.py"),
    (r"^def (file_sha256|tree_sha256)\b", "alob_common/digests.py"),
    (r"^(TEMPLATE_112x96|CROP_SIZES|SIZES|INPUT_SIZES)\s*=", "alob_common/geometry.py"),
    (r"^Embedder\s*=", "alob_common/verification.py"),
    (r"^def (parse_scale_set|parse_clean_ratio)\b", "occgen/synth.py"),
])
def test_shared_helpers_are_defined_once(pattern, home):
    places = [path.relative_to(ROOT).as_posix() for path in _modules().values()
              if re.search(pattern, path.read_text(), re.M)]
    assert places == [home]


@pytest.mark.parametrize("package", ["alob_eval", "alob_experiment"])
def test_docstrings_and_help_name_current_modules(package):
    """Docstrings and --help cite no design notes and name modules that exist (old names such as
    alob_train.cam or alob_train.pairs have moved)."""
    stale = []
    for path in sorted((ROOT / package).glob("*.py")):
        text = path.read_text()
        stale += [f"{path.name} cites {doc}" for doc in ("DESIGN.md", "METHOD.md") if doc in text]
        for top, name in re.findall(r"\b(" + "|".join(LAYERS) + r")\.(\w+)", text):
            if not (ROOT / top / f"{name}.py").is_file():
                stale.append(f"{path.name} names {top}.{name}")
    assert not stale, "; ".join(stale)
