"""Crash consistency under SIGKILL: each long-running command is killed at several points
(chosen by how far its output has got), then the same command is run again; the result must be
what an uninterrupted run gives. Small generated data; the commands run as real processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from train_fixtures import write_shards

BIN = Path(sys.executable).parent


def _command(name: str, *args: str) -> list[str]:
    return [str(BIN / name), *args]


def _run(cmd: list[str]) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    return result


def _kill_when(cmd: list[str], ready, timeout: float = 120.0) -> None:
    """Start ``cmd`` and SIGKILL its whole process group as soon as ``ready()`` is true."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + timeout
    try:
        while proc.poll() is None and not ready() and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _faces(root: Path, people: int, per_person: int, size: int = 72) -> Path:
    rng = np.random.default_rng(0)
    for p in range(people):
        (root / f"person_{p:02d}").mkdir(parents=True, exist_ok=True)
        for i in range(per_person):
            image = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
            Image.fromarray(image).save(root / f"person_{p:02d}" / f"img_{i:03d}.jpg", quality=90)
    return root


def _count(folder: Path, pattern: str) -> int:
    return sum(1 for _ in folder.rglob(pattern)) if folder.exists() else 0


@pytest.mark.slow
@pytest.mark.parametrize("extra", [[], ["--decode-threads", "2", "--batch-across-sizes"]])
def test_align_faces_after_sigkill_lists_every_input_once(tmp_path, extra):
    src = _faces(tmp_path / "src", people=4, per_person=12)
    out = tmp_path / "out"
    cmd = _command("align-faces", "--data", str(src), "--out", str(out), "--workers", "0", "--batch-size", "4", "--quiet", *extra)
    for crops in (1, 12, 30):
        _kill_when(cmd, lambda: _count(out, "img_*.jpg") >= crops)
    _run(cmd)
    manifest = pd.read_csv(out / "manifest.csv", keep_default_na=False)
    inputs = sorted(p.relative_to(src).as_posix() for p in src.rglob("*.jpg"))
    assert sorted(manifest.source) == inputs  # every input exactly once
    assert manifest.source.is_unique
    assert set(manifest.status) <= {"ok", "fallback"}
    for rel in manifest.path:
        assert (out / rel).is_file()
    assert json.loads((out / "dataset.json").read_text())["complete"] is True
    assert not list(out.rglob("*.tmp")), "temporary files left behind"


def _settled(build: Path) -> tuple[dict[str, bytes], dict]:
    files = _files(build)
    meta = json.loads(files.pop("dataset.json"))
    for key in ("run", "command", "seconds"):
        meta.pop(key, None)
    return files, meta


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["shards", "folder"])
def test_occgen_build_after_sigkill_is_byte_identical(tmp_path, fmt):
    """240 inputs in units of 30 (8 shards, or 8 unit pieces of the folder form): each kill lands
    while units are still to build, and the rerun resumes from the finished ones."""
    src = _faces(tmp_path / "src", people=6, per_person=40, size=64)
    args = ["build", "--source", "folder", "--data", str(src), "--format", fmt, "--seed", "3", "--workers", "0",
            "--shard-size", "30", "--quiet"]
    _run(_command("occgen", *args, "--out", str(tmp_path / "straight")))
    out = tmp_path / "killed"
    cmd = _command("occgen", *args, "--out", str(out))
    pattern, points = ("*.tar", (1, 4)) if fmt == "shards" else ("*.png", (1, 120))  # a tar is a finished unit
    for written in points:
        _kill_when(cmd, lambda: _count(out, pattern) >= written)
        assert json.loads((out / "dataset.json").read_text())["complete"] is False  # killed mid-build
        assert not (out / "manifest.csv").exists() and _count(out / ".parts", "*.csv") < 8
    _run(cmd)
    run = json.loads((out / "dataset.json").read_text())["run"]
    assert run["units"] == 8 and 0 < run["units_resumed"] < 8
    straight, killed = _settled(tmp_path / "straight"), _settled(out)
    assert sorted(killed[0]) == sorted(straight[0])
    for name in straight[0]:
        assert killed[0][name] == straight[0][name], name
    assert killed[1] == straight[1]


@pytest.mark.slow
def test_alob_train_after_sigkill_continues_to_the_same_weights(tmp_path):
    data = write_shards(tmp_path / "data", classes=3, per_class=8, shards=2)
    args = ["--data", str(data), "--backbone", "lightcnn9", "--batch-size", "4", "--max-steps", "10", "--epochs", "3",
            "--workers", "0", "--threads", "1", "--save-every", "1", "--log-every", "1", "--quiet", "--no-tensorboard"]
    _run(_command("alob-train", *args, "--out", str(tmp_path / "straight")))
    run = tmp_path / "killed"
    last = run / "checkpoints" / "last.pt"

    def step_reached(step: int):
        def ready() -> bool:
            try:
                return last.is_file() and torch.load(last, weights_only=True)["step"] >= step
            except Exception:  # a checkpoint being replaced; look again
                return False
        return ready

    _kill_when(_command("alob-train", *args, "--out", str(run)), step_reached(3))
    assert torch.load(last, weights_only=True)["step"] < 10
    _kill_when(_command("alob-train", "--out", str(run), "--resume", "--quiet"), step_reached(6))
    _run(_command("alob-train", "--out", str(run), "--resume", "--quiet"))
    a = torch.load(tmp_path / "straight" / "checkpoints" / "last.pt", weights_only=True)
    b = torch.load(last, weights_only=True)
    assert a["step"] == b["step"] == 10
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
