"""The occluder library: bundled assets, user folders in FROM's layout, unusable files."""

from __future__ import annotations

import cv2
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from occgen import OcclusionConfig, load_library, occlude
from occgen.assets_gen import CATEGORIES, render_library
from occgen.cli import main
from occgen.library import OccgenError, default_library_path


def test_bundled_library_is_complete():
    library = load_library()
    index = pd.read_csv(default_library_path() / "index.csv")
    assert set(library.categories) == set(CATEGORIES) and len(CATEGORIES) == 9
    assert index.groupby("category").size().min() >= 6 and len(library.occluders) == len(index) >= 54
    assert set(index["hint"]) == {"eyes", "mouth", "anywhere"}
    for occ in library.occluders:
        assert occ.rgb.shape[:2] == occ.alpha.shape and occ.size == tuple(index.set_index("file").loc[occ.name, ["width", "height"]])
        assert (occ.alpha < 128).any() and (occ.alpha > 127).mean() > 0.02  # a shape, not a speck
    size = sum(p.stat().st_size for p in default_library_path().rglob("*.png"))
    assert size < 3_000_000


def test_bundled_index_agrees_with_the_files_on_disk():
    """index.csv checked against what is there, not against its generator: one row per PNG of
    each category folder (7 in each of 9, the 63 of docs/BENCHMARKS.md), each row's size the
    PNG's own, the hints ARCHITECTURE.md gives the categories (eyewear: eyes; mouth masks and
    scarves: mouth; the rest anywhere), anchors inside the image, and every category installed
    by setup.cfg."""
    root = default_library_path()
    index = pd.read_csv(root / "index.csv")
    folders = sorted(p for p in root.iterdir() if p.is_dir())
    on_disk = sorted(f"{folder.name}/{png.name}" for folder in folders for png in folder.glob("*.png"))
    assert sorted(index["file"]) == on_disk and len(on_disk) == 63
    assert index.groupby("category").size().to_dict() == {folder.name: 7 for folder in folders}
    for row in index.itertuples():
        height, width = cv2.imread(str(root / row.file), cv2.IMREAD_UNCHANGED).shape[:2]
        assert (row.width, row.height) == (width, height), row.file
        expected = ("eyes" if row.category in ("eyeglasses", "sunglasses", "eye_mask")
                    else "mouth" if row.category in ("mouth_mask", "scarf") else "anywhere")
        assert row.hint == expected and 0 <= row.anchor_x <= 1 and 0 <= row.anchor_y <= 1, row.file
    setup = (root.parents[1] / "setup.cfg").read_text()
    for folder in folders:
        assert f"share/alob-toolkit/occluders/{folder.name} = assets/occluders/{folder.name}/*.png" in setup


def test_generator_reproduces_committed_assets():
    """Byte-identical with the OpenCV the assets were drawn with; another OpenCV release may
    anti-alias an edge pixel differently, so a handful of pixels may differ by a few levels."""
    root = default_library_path()
    for asset in render_library():
        committed = cv2.cvtColor(cv2.imread(str(root / asset.file), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGRA2RGBA)
        assert committed.shape == asset.rgba.shape, asset.file
        off = np.abs(committed.astype(int) - asset.rgba.astype(int)).max(axis=2) > 3
        assert off.mean() < 0.005, asset.file


def _png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), array)


def test_from_layout_with_occluder_txt(tmp_path):
    rgba = np.zeros((20, 30, 4), np.uint8)
    rgba[5:15, 5:25] = (0, 0, 255, 255)
    _png(tmp_path / "cup" / "a.png", rgba)
    _png(tmp_path / "hand" / "b.png", np.full((10, 12, 3), 90, np.uint8))  # RGB: the full rectangle
    _png(tmp_path / "hand" / "unlisted.png", rgba)
    (tmp_path / "occluder.txt").write_text("cup/a.png\nhand/b.png\nscarf/missing.png\n")
    library = load_library(tmp_path)
    assert [o.name for o in library.occluders] == ["cup/a.png", "hand/b.png"]
    assert library.by_category["hand"][0].alpha.min() == 255
    assert library.by_category["cup"][0].alpha.sum() == 10 * 20 * 255
    assert any("scarf/missing.png" in p and "unreadable" in p for p in library.problems)
    assert any("category scarf" in p for p in library.problems)
    out, mask, info = occlude(np.zeros((112, 96, 3), np.uint8), np.random.default_rng(0), library, OcclusionConfig(ratio=0.3))
    assert info["category"] in ("cup", "hand") and mask.any()


def test_flat_occluder_txt_and_pick_by_file(tmp_path):
    for name in ("cup_1.png", "cup_2.png", "cup_3.png", "phone1.png"):
        _png(tmp_path / name, np.full((10, 10, 3), 50, np.uint8))
    (tmp_path / "occluder.txt").write_text("cup_1.png\ncup_2.png\ncup_3.png\nphone1.png\n")
    library = load_library(tmp_path)
    assert {c: len(v) for c, v in library.by_category.items()} == {"cup": 3, "phone": 1}
    rng = np.random.default_rng(0)
    by_file = [library.pick(rng, "file").category for _ in range(4000)]
    by_category = [library.pick(rng).category for _ in range(4000)]
    assert abs(by_file.count("phone") / 4000 - 0.25) < 0.03  # FROM: uniform over files
    assert abs(by_category.count("phone") / 4000 - 0.5) < 0.03  # balanced over categories


def test_plain_folder_and_bad_occluders(tmp_path):
    _png(tmp_path / "glasses" / "g.png", np.dstack([np.full((8, 20, 3), 40, np.uint8), np.full((8, 20), 255, np.uint8)]))
    _png(tmp_path / "glasses" / "clear.png", np.zeros((8, 20, 4), np.uint8))  # fully transparent
    (tmp_path / "glasses" / "broken.png").write_bytes(b"\x89PNG not really")
    (tmp_path / "empty_category").mkdir()
    library = load_library(tmp_path)
    assert [o.name for o in library.occluders] == ["glasses/g.png"]
    assert library.occluders[0].hint == "eyes"  # a known category name gives its placement hint
    problems = " | ".join(library.problems)
    assert "clear.png: no usable alpha" in problems and "broken.png: unreadable" in problems
    assert "empty_category: empty" in problems


def test_empty_library_is_an_error(tmp_path):
    (tmp_path / "cup").mkdir()
    with pytest.raises(OccgenError, match="no usable occluder images"):
        load_library(tmp_path)


def test_assets_command_lists_and_regenerates(tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["assets"])
    assert result.exit_code == 0 and "63 occluders in 9 categories" in result.output
    result = runner.invoke(main, ["assets", "--regenerate", "--out", str(tmp_path / "lib"), "--sheet", str(tmp_path / "s.png")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "lib" / "index.csv").read_bytes() == (default_library_path() / "index.csv").read_bytes()
    assert cv2.imread(str(tmp_path / "s.png")) is not None


def test_missing_library_is_a_clear_error(tmp_path, monkeypatch):
    import site
    import sys

    import occgen.library as library

    monkeypatch.delenv("OCCGEN_OCCLUDERS", raising=False)
    monkeypatch.setattr(library, "__file__", str(tmp_path / "occgen" / "library.py"))
    monkeypatch.setattr(sys, "prefix", str(tmp_path))
    monkeypatch.setattr(site, "USER_BASE", str(tmp_path))
    with pytest.raises(OccgenError, match="occluder library not found.*--occluders DIR"):
        default_library_path()
    (tmp_path / "share" / "alob-toolkit" / "occluders").mkdir(parents=True)
    (tmp_path / "share" / "alob-toolkit" / "occluders" / "index.csv").write_text("category,file\n")
    assert default_library_path() == tmp_path / "share" / "alob-toolkit" / "occluders"
