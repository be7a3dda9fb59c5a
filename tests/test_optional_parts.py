"""The one skip rule of optional parts (tests/conftest.py, ``optional_part``): a part that cannot
be loaded skips with the reason, except under CI's ``$ALOB_CI_STRICT=1`` when its packages are
installed: then it fails."""

from __future__ import annotations

import pytest
from conftest import STRICT_ENV, require_optional

from alob_common.errors import UserError


def _broken():
    raise UserError("its model file is missing")


def _not_importable():
    raise ImportError("No module named 'not_a_module_xyz'")


def _outcome(*args) -> BaseException:
    """What require_optional raised (a skip or a failure), caught so that neither ends this test."""
    try:
        require_optional(*args)
    except BaseException as outcome:  # pytest's Skipped and Failed derive from BaseException
        return outcome
    raise AssertionError("neither skipped nor failed")


def test_a_part_that_loads_is_returned(monkeypatch):
    monkeypatch.setenv(STRICT_ENV, "1")
    assert require_optional("numpy", ("numpy",), lambda: 42) == 42


def test_plain_run_skips_with_the_reason(monkeypatch):
    monkeypatch.delenv(STRICT_ENV, raising=False)
    outcome = _outcome("a part", ("numpy",), _broken)
    assert isinstance(outcome, pytest.skip.Exception) and outcome.msg == "optional a part: its model file is missing"


def test_strict_run_fails_when_the_packages_are_installed(monkeypatch):
    monkeypatch.setenv(STRICT_ENV, "1")
    outcome = _outcome("a part", ("numpy",), _broken)
    assert isinstance(outcome, pytest.fail.Exception) and outcome.msg.startswith(
        "a part: its model file is missing (numpy installed, $ALOB_CI_STRICT=1: it must work)")


def test_strict_run_skips_what_is_not_installed(monkeypatch):
    monkeypatch.setenv(STRICT_ENV, "1")
    outcome = _outcome("a part", ("numpy", "not-a-distribution-xyz"), _not_importable)
    assert isinstance(outcome, pytest.skip.Exception) and outcome.msg.endswith("(not installed: not-a-distribution-xyz)")
