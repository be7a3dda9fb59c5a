"""The documents name only things that exist: every repository path in README.md and docs/*.md
(in backticks, in code blocks or as a link target), every local link and its #anchor, and every
dotted name of a project module. Paths of user data in example commands (``lfw-aligned/``,
``runs/alob-r18``) are not checked: a path is a repository path only when its first component is
one of the repository's top-level folders or it is a top-level file."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
TOP_FOLDERS = {"alignment", "occgen", "alob_common", "alob_train", "alob_eval", "alob_experiment", "assets", "bench",
               "docs", "scripts", "tests", ".ci"}
TOP_FILES = {"README.md", "setup.cfg", "pyproject.toml", ".gitignore", "constraints.txt"}
PACKAGES = ("alob_common", "alignment", "occgen", "alob_train", "alob_eval", "alob_experiment")
# Documents that are not in the repository and must not be referred to.
ABSENT_DOCUMENTS = ("DESIGN.md", "METHOD.md", "ENVIRONMENT.md")

FENCE = re.compile(r"^(```|~~~)[^\n]*\n(.*?)^\1[ \t]*$", re.M | re.S)
INLINE_CODE = re.compile(r"(`+)(.+?)\1", re.S)
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
TOKEN_EDGES = "\"'()[]{}<>,;:!?*"
DOTTED = re.compile(r"^(%s)((?:\.[A-Za-z_][A-Za-z0-9_]*)+)$" % "|".join(PACKAGES))


def _split_code(text: str) -> tuple[list[str], str]:
    """Code spans and fenced blocks, and the text with both removed (for links and headings)."""
    code = [m.group(2) for m in FENCE.finditer(text)]
    prose = FENCE.sub("", text)
    code += [m.group(2) for m in INLINE_CODE.finditer(prose)]
    return code, INLINE_CODE.sub(lambda m: m.group(2), prose)


def _tokens(code: str) -> list[str]:
    tokens = []
    for raw in code.split():
        token = raw.strip(TOKEN_EDGES)
        token = token.split("=", 1)[1] if re.match(r"^-?-?[A-Za-z_][\w-]*=", token) else token
        token = token.rstrip(".").split("#", 1)[0]
        if token:
            tokens.append(token)
    return tokens


def _is_repository_path(token: str) -> bool:
    if token in TOP_FILES:
        return True
    first = token.split("/", 1)[0]
    return "/" in token and first in TOP_FOLDERS and not token.startswith("/")


def repository_paths(document: Path) -> set[str]:
    """Repository paths a document names in code (backticks and fenced blocks)."""
    code, _ = _split_code(document.read_text())
    return {t for block in code for t in _tokens(block) if _is_repository_path(t)}


def dotted_names(document: Path) -> set[str]:
    """``package.module[.attribute]`` names in code spans and blocks."""
    code, _ = _split_code(document.read_text())
    names = set()
    for block in code:
        for token in _tokens(block):
            token = re.sub(r"\(.*$", "", token)
            if DOTTED.match(token):
                names.add(token)
    return names


def links(document: Path) -> list[str]:
    """Link targets in the prose (not in code)."""
    _, prose = _split_code(document.read_text())
    return [m.group(1) for m in LINK.finditer(prose)]


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", lambda m: m.group(1) or "", heading).strip().lower()
    kept = "".join(c for c in text if c in " -_" or unicodedata.category(c)[0] in "LN")
    return kept.replace(" ", "-")


def anchors(document: Path) -> set[str]:
    _, prose = _split_code(document.read_text())
    seen: dict[str, int] = {}
    found = set()
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*#*\s*$", prose, re.M):
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def _name(document: Path) -> str:
    return document.relative_to(ROOT).as_posix()


def test_the_documents_exist():
    names = {_name(d) for d in DOCUMENTS}
    assert {"README.md", "docs/ARCHITECTURE.md", "docs/FORMATS.md", "docs/USAGE.md"} <= names
    assert all((ROOT / folder).is_dir() for folder in TOP_FOLDERS)


@pytest.mark.parametrize("document", DOCUMENTS, ids=_name)
def test_repository_paths_exist(document):
    missing = sorted(p for p in repository_paths(document) if not (ROOT / p).exists())
    assert not missing, f"{_name(document)} names paths that are not in the repository: {missing}"


@pytest.mark.parametrize("document", DOCUMENTS, ids=_name)
def test_links_and_anchors_resolve(document):
    broken = []
    for target in links(document):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        file = (document.parent / path).resolve() if path else document
        if not file.exists():
            broken.append(target)
        elif anchor and file.suffix == ".md" and anchor not in anchors(file):
            broken.append(target)
    assert not broken, f"{_name(document)} has broken links: {broken}"


@pytest.mark.parametrize("document", DOCUMENTS, ids=_name)
def test_dotted_module_names_exist(document):
    wrong = []
    for name in dotted_names(document):
        package, *rest = name.split(".")
        module = ROOT / package / f"{rest[0]}.py"
        if module.is_file():
            if len(rest) > 1 and not re.search(rf"^(def|class)\s+{rest[1]}\b|^{rest[1]}\b[^=\n]*=",
                                               module.read_text(), re.M):
                wrong.append(name)
        elif not re.search(rf"\b{rest[0]}\b", (ROOT / package / "__init__.py").read_text()):
            wrong.append(name)
    assert not wrong, f"{_name(document)} names modules or attributes that do not exist: {sorted(wrong)}"


@pytest.mark.parametrize("document", DOCUMENTS, ids=_name)
def test_no_reference_to_absent_documents(document):
    text = document.read_text()
    named = [d for d in ABSENT_DOCUMENTS if d in text and not (ROOT / d).exists() and not (ROOT / "docs" / d).exists()]
    assert not named, f"{_name(document)} refers to documents that are not in the repository: {named}"


def test_the_checker_sees_paths_links_and_names(tmp_path):
    sample = tmp_path / "sample.md"
    sample.write_text(
        "# A title: `x`\n\nSee `alob_common/geometry.py`, `lfw-aligned/` and [it](docs/FORMATS.md#top).\n\n"
        "```bash\npython bench/nothing.py --out runs/alob-r18 --data=tests/\n```\n"
        "Call `alob_eval.cam_maps.cam_target_layer` or `occgen.occlude(image)`.\n")
    assert repository_paths(sample) == {"alob_common/geometry.py", "bench/nothing.py", "tests/"}
    assert links(sample) == ["docs/FORMATS.md#top"]
    assert dotted_names(sample) == {"alob_eval.cam_maps.cam_target_layer", "occgen.occlude"}
    assert anchors(sample) == {"a-title-x"}
