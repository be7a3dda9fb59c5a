"""Installs are pinned to what was tested: constraints.txt holds the exact version of every
distribution of CI's environment (checked against importlib.metadata under ``$ALOB_CI_STRICT``),
scripts/freeze-constraints.py writes it from the running environment, and scripts/setup.sh
installs with it (``--latest`` without it)."""

from __future__ import annotations

import importlib.metadata
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import PROJECT_ROOT, STRICT_ENV, ci_strict

PROJECT = "alob-toolkit"


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _environment() -> dict[str, str]:
    """``{name: version}`` of every distribution Python would import here (the first on sys.path)."""
    found: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        found.setdefault(_normalise(dist.metadata["Name"]), dist.version)
    found.pop(PROJECT, None)
    return found


def _pins(text: str) -> dict[str, str]:
    """The ``name==version`` lines of a constraints file; any other non-comment line is an error."""
    pins = {}
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name, sep, version = line.partition("==")
        assert sep and name.strip() and version.strip(), f"not an exact pin: {line!r}"
        assert _normalise(name) not in pins, f"listed twice: {name}"
        pins[_normalise(name)] = version.strip()
    return pins


def _differences(pins: dict[str, str], env: dict[str, str]) -> list[str]:
    return ([f"{n}=={v} installed, not in the file" for n, v in env.items() if n not in pins]
            + [f"{n}=={v} in the file, not installed" for n, v in pins.items() if n not in env]
            + [f"{n}: file {pins[n]}, installed {v}" for n, v in env.items() if n in pins and pins[n] != v])


def test_constraints_file_is_exactly_ci_environment():
    """Under CI (a fresh .venv made by setup.sh) the committed file lists every installed
    distribution at its installed version, and nothing else."""
    pins = _pins((PROJECT_ROOT / "constraints.txt").read_text())
    for name, version in {"torch": "2.14.1", "torchvision": "0.29.1", "facenet-pytorch": "2.6.0"}.items():
        assert pins.get(name) == version, f"{name} must be pinned to the tested {version}"
    if not ci_strict():
        pytest.skip(f"compared with the environment only in CI's environment (${STRICT_ENV}=1; a user's "
                    "environment may hold other packages)")
    problems = _differences(pins, _environment())
    assert not problems, "constraints.txt is not this environment (rerun scripts/freeze-constraints.py " \
                         "after the suite passes): " + "; ".join(problems)


def test_freeze_script_writes_every_installed_distribution(tmp_path):
    out = tmp_path / "c.txt"
    proc = subprocess.run([sys.executable, str(PROJECT_ROOT / "scripts" / "freeze-constraints.py"), "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    pins = _pins(out.read_text())
    env = _environment()
    assert not _differences(pins, env), _differences(pins, env)
    assert PROJECT not in pins and len(pins) == len(env) > 10
    assert proc.stdout.strip() == f"wrote {len(pins)} pinned distributions to {out}"


FAKE_PIP = """#!/usr/bin/env bash
echo "$@" >> "$(dirname "$0")/../pip.log"
"""


@pytest.fixture
def checkout(tmp_path) -> Path:
    """A copy of setup.sh with its inputs, and a .venv whose pip only records its arguments."""
    root = tmp_path / "repo"
    (root / "scripts").mkdir(parents=True)
    for name in ("setup.cfg", "constraints.txt", "scripts/setup.sh"):
        shutil.copy(PROJECT_ROOT / name, root / name)
    bin_dir = root / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    for tool in ("pip", "python"):
        (bin_dir / tool).write_text(FAKE_PIP)
        (bin_dir / tool).chmod(0o755)
    return root


def _setup(root: Path, *args: str) -> tuple[int, list[str]]:
    log = root / ".venv" / "pip.log"
    log.unlink(missing_ok=True)
    proc = subprocess.run(["bash", str(root / "scripts" / "setup.sh"), *args], capture_output=True, text=True,
                          timeout=60)
    return proc.returncode, (log.read_text().splitlines() if log.exists() else [])


def test_setup_installs_with_the_constraints_and_latest_without(checkout):
    code, calls = _setup(checkout)
    assert code == 0 and len(calls) == 2, calls
    assert all(c.split()[:3] == ["install", "-q", "-c"] and c.split()[3] == "constraints.txt" for c in calls), calls
    assert calls[0].endswith("-e .[test,fast,dlib,reference,onnx]") and calls[1].endswith("--no-deps facenet-pytorch")
    assert _setup(checkout) == (0, [])  # nothing changed: nothing installed
    with open(checkout / "constraints.txt", "a") as handle:
        handle.write("six==1.17.0\n")  # refreshed constraints: installed again
    assert len(_setup(checkout)[1]) == 2
    code, calls = _setup(checkout, "--latest")
    assert code == 0 and len(calls) == 2 and not any("constraints" in c for c in calls)
    assert all("--upgrade --upgrade-strategy eager" in c for c in calls)
    assert len(_setup(checkout)[1]) == 2  # back to the pinned versions after --latest
    assert _setup(checkout, "--newest")[0] == 2


def test_ci_sets_up_with_setup_sh_and_runs_strict():
    ci = (PROJECT_ROOT / ".ci" / "run").read_text()
    assert "bash scripts/setup.sh\n" in ci and f"export {STRICT_ENV}=1" in ci
