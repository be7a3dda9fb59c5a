"""Shared test fixtures. The reference data (real LFW etc.) is found by :func:`reference_data`."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]


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
