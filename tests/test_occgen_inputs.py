"""occgen build keeps its --pairs file and --occluders folder in dataset.json as a path relative
to OUT plus a content digest: a build resumed after its inputs moved (same content) is accepted,
one whose inputs now hold other content is refused in one line."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from occgen.build import BuildConfig, Job, build
from occgen.cli import main
from occgen.library import OccgenError, default_library_path
from occgen.synth import OcclusionConfig

PAIRS = "1 3\nAnn_A 1 2\nBen_B 1 2\nCid_C 1 2\nAnn_A 1 Ben_B 2\nBen_B 1 Cid_C 1\nCid_C 2 Ann_A 2\n"


@pytest.fixture(scope="module")
def faces(tmp_path_factory) -> Path:
    """3 identities × 3 noisy 112×96 crops."""
    root = tmp_path_factory.mktemp("aligned")
    rng = np.random.default_rng(5)
    for name in ("Ann_A", "Ben_B", "Cid_C"):
        (root / name).mkdir()
        for i in range(1, 4):
            cv2.imwrite(str(root / name / f"{name}_{i:04d}.jpg"), rng.integers(0, 255, (112, 96, 3), dtype=np.uint8))
    return root


def _tree(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != "dataset.json"}


def _build(faces: Path, out: Path, pairs: Path) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["build", "--source", "lfw", "--data", str(faces), "--out", str(out), "--pairs",
                                       str(pairs), "--factor", "2.0", "--shard-size", "3", "--workers", "0", "--quiet"])
    return result.exit_code, result.output


def test_resume_after_pairs_moved_is_accepted_other_content_refused(faces, tmp_path):
    first = tmp_path / "a" / "pairs.txt"
    first.parent.mkdir()
    first.write_text(PAIRS)
    out = tmp_path / "out"
    assert _build(faces, out, first)[0] == 0
    meta = json.loads((out / "dataset.json").read_text())
    digest = hashlib.sha256(PAIRS.encode()).hexdigest()
    assert meta["settings"]["pairs"] == {"path": "../a/pairs.txt", "sha256": digest}
    assert meta["pairs"]["file"] == "../a/pairs.txt"
    before = _tree(out)
    # the pairs file moves to another folder, and the build was cut short: the rerun resumes it
    moved = tmp_path / "b" / "elsewhere.txt"
    moved.parent.mkdir()
    shutil.move(first, moved)
    (out / ".parts" / "train-000001.csv").unlink()
    code, output = _build(faces, out, moved)
    assert code == 0, output
    assert _tree(out) == before
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["settings"]["pairs"] == {"path": "../b/elsewhere.txt", "sha256": digest}
    assert meta["run"]["units_resumed"] == meta["run"]["units"] - 1
    # other content under the same name is refused, in one line, and OUT is left as it was
    moved.write_text(PAIRS.replace("Cid_C 2 Ann_A 2", "Cid_C 3 Ann_A 3"))
    code, output = _build(faces, out, moved)
    assert code == 1 and len(output.strip().splitlines()) == 1, output
    assert output.startswith(f"Error: {out} was made from other --pairs content (then ../b/elsewhere.txt, sha256 "
                             f"{digest[:12]}…; now ../b/elsewhere.txt, sha256 "), output
    assert "use --overwrite or another OUT" in output and _tree(out) == before


def test_occluder_folder_is_identified_by_its_content(faces, tmp_path):
    library = tmp_path / "occ"
    shutil.copytree(default_library_path(), library)
    config = BuildConfig("folder", OcclusionConfig(factor=2.0), format="folder", occluders=str(library), unit_size=4)
    out = tmp_path / "out"
    build(Job(faces, out, config), progress=False)
    stored = json.loads((out / "dataset.json").read_text())["settings"]["occluders"]
    assert stored["path"] == "../occ" and len(stored["sha256"]) == 64
    moved = tmp_path / "moved" / "library"
    shutil.move(library, moved)
    again = build(Job(faces, out, BuildConfig(**{**config.__dict__, "occluders": str(moved)})), progress=False)
    assert again["complete"] and again["settings"]["occluders"] == {"path": "../moved/library", "sha256": stored["sha256"]}
    cup = next((moved / "cup").glob("*.png"))
    image = cv2.imread(str(cup), cv2.IMREAD_UNCHANGED)
    cv2.imwrite(str(cup), image[:, ::-1])  # one occluder mirrored: another library
    with pytest.raises(OccgenError, match=r"was made from other --occluders content \(then \.\./moved/library, sha256 "):
        build(Job(faces, out, BuildConfig(**{**config.__dict__, "occluders": str(moved)})), progress=False)


def test_dataset_json_of_an_older_build_with_an_absolute_path(faces, tmp_path):
    """dataset.json written before digests kept the absolute path: the same file is accepted,
    a path that is gone is refused."""
    pairs = tmp_path / "pairs.txt"
    pairs.write_text(PAIRS)
    out = tmp_path / "out"
    assert _build(faces, out, pairs)[0] == 0
    meta = json.loads((out / "dataset.json").read_text())
    meta["settings"]["pairs"] = str(pairs.resolve())
    (out / "dataset.json").write_text(json.dumps(meta))
    assert _build(faces, out, pairs)[0] == 0
    meta["settings"]["pairs"] = str(tmp_path / "gone" / "pairs.txt")
    (out / "dataset.json").write_text(json.dumps(meta))
    code, output = _build(faces, out, pairs)
    assert code == 1 and "was made from other --pairs content" in output and str(tmp_path / "gone") in output
