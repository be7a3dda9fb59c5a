"""Shared test fixtures. The reference data (real LFW etc.) is found by :func:`reference_data`;
tests of optional parts (the dlib backend, the reference models, ONNX Runtime, MTCNN, simplejpeg)
get them through the :func:`optional_part` fixture, which skips with the reason when the part's
packages are missing, and fails instead when they are installed and ``$ALOB_CI_STRICT`` is 1
(CI's ``.ci/run`` sets it): there a part that is installed must work."""

from __future__ import annotations

import importlib.metadata
import os
from pathlib import Path
from typing import Any, Callable, Sequence

import pytest

from alob_common.errors import UserError

PROJECT_ROOT = Path(__file__).resolve().parents[1]
STRICT_ENV = "ALOB_CI_STRICT"  # "1": the tests run in CI's environment, where every optional part is installed


def ci_strict() -> bool:
    """Whether the tests run under CI's strict rules (``$ALOB_CI_STRICT`` is 1)."""
    return os.environ.get(STRICT_ENV) == "1"


def _installed(distribution: str) -> bool:
    try:
        importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def require_optional(part: str, distributions: Sequence[str], load: Callable[[], Any]) -> Any:
    """``load()``, which gives an optional part (and raises ImportError or a UserError such as
    ``DlibUnavailable`` when the part cannot be used). When it raises: the test fails if
    :func:`ci_strict` and every one of ``distributions`` (the part's pip packages) is installed,
    since the part is then there but broken; otherwise the test is skipped with the reason."""
    try:
        return load()
    except (ImportError, UserError) as err:
        reason = f"{part}: {err}"
        if ci_strict() and all(_installed(d) for d in distributions):
            pytest.fail(f"{reason} ({', '.join(distributions)} installed, ${STRICT_ENV}=1: it must work)", pytrace=False)
        missing = [d for d in distributions if not _installed(d)]
        pytest.skip(f"optional {reason}" + (f" (not installed: {', '.join(missing)})" if missing else ""))


@pytest.fixture(scope="session")
def optional_part() -> Callable[[str, Sequence[str], Callable[[], Any]], Any]:
    """:func:`require_optional`, for a test of an optional part."""
    return require_optional


def reference_data() -> Path:
    """The reference-data folder: ``$ALOB_DATA`` if set, else ``../shared/data`` beside the project."""
    env = os.environ.get("ALOB_DATA")
    return Path(env) if env else (PROJECT_ROOT.parent / "shared" / "data")


def _require(relative: str) -> Path:
    path = reference_data() / relative
    if not path.exists():
        pytest.skip(f"reference data not found: {path} (set ALOB_DATA to the folder holding lfw/)")
    return path


@pytest.fixture(scope="session")
def lfw_dir() -> Path:
    """The real deep-funneled LFW image folder (skips the test when absent)."""
    return _require("lfw/lfw-deepfunneled")


@pytest.fixture(scope="session")
def lfw_pairs() -> Path:
    """LFW View-2 ``pairs.txt`` (skips the test when absent)."""
    return _require("lfw/pairs.txt")


@pytest.fixture(scope="session")
def masktheface_dir() -> Path:
    """MaskTheFace's template folder (skips the test when absent)."""
    return _require("masktheface/masks")


def ctrl_c_reaches_child() -> None:
    """``preexec_fn`` for a command a test interrupts with SIGINT: the default disposition, so
    that the command sees Ctrl-C even when the test run itself ignores SIGINT (a shell's
    background job, ``nohup``), which a child would otherwise inherit."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)
