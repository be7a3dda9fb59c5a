"""align-faces split over jobs (--shard-index/--num-shards): each job aligns every N-th input, and
the last one to finish merges the pieces into the same manifest as one job would write."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from alignment.align_folder import read_manifest
from alignment.cli import main


@pytest.fixture(scope="module")
def src(tmp_path_factory) -> Path:
    """3 people x 3 noise pictures (no face: every crop is the centre fallback) and a bad file."""
    root = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for person in ("Ann", "Bo", "Cy"):
        (root / person).mkdir()
        for k in range(3):
            Image.fromarray(rng.integers(0, 255, (90, 80, 3), dtype=np.uint8)).save(root / person / f"{k}.jpg")
    (root / "Cy" / "broken.jpg").write_bytes(b"not a jpeg")
    return root


def align(src: Path, out: Path, *args: str) -> str:
    result = CliRunner().invoke(main, ["--data", str(src), "--out", str(out), "--workers", "0", "--quiet", *args])
    assert result.exit_code == 0, result.output
    return result.output


def crops(out: Path) -> dict[str, str]:
    return {p.relative_to(out).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(out.rglob("*.jpg"))}


@pytest.fixture(scope="module")
def single(src, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("single") / "out"
    align(src, out)
    return out


@pytest.mark.parametrize("order", [(0, 1), (1, 0)])
def test_two_jobs_give_the_crops_and_manifest_of_one(src, single, tmp_path, order):
    out = tmp_path / "out"
    first = align(src, out, "--num-shards", "2", "--shard-index", str(order[0]))
    assert "the last job to finish writes" in first and not (out / "manifest.csv").exists()
    assert json.loads((out / "dataset.json").read_text())["complete"] is False
    second = align(src, out, "--num-shards", "2", "--shard-index", str(order[1]))
    assert "aligned 10 of 10 images" in second and "fallback 9, failed 1" in second
    assert crops(out) == crops(single) and len(crops(out)) == 9
    merged, one = read_manifest(out), read_manifest(single)
    assert merged.equals(one) and merged["source"].is_monotonic_increasing
    assert (out / "manifest.csv").read_bytes() == (single / "manifest.csv").read_bytes()
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["complete"] and meta["counts"]["inputs"] == 10 and len(meta["jobs"]) == 2
    assert sorted(j["inputs"] for j in meta["jobs"]) == [5, 5]


def test_a_job_resumes_from_its_piece(src, tmp_path):
    out = tmp_path / "out"
    align(src, out, "--num-shards", "3", "--shard-index", "2")
    again = align(src, out, "--num-shards", "3", "--shard-index", "2")
    piece = json.loads((out / ".parts" / "manifest-00002-of-00003.json").read_text())
    assert "job 2 of 3" in again and piece["resumed"] == 3 and piece["inputs"] == 3


def test_bad_shard_index_is_one_line(src, tmp_path):
    result = CliRunner().invoke(main, ["--data", str(src), "--out", str(tmp_path / "o"), "--num-shards", "2", "--shard-index", "2",
                                       "--workers", "0"])
    assert result.exit_code == 1 and "--shard-index must lie in 0..1" in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
