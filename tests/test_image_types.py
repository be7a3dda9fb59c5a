"""One definition of what an image is (alob_common.images), and align-faces on the formats
users' face databases come in: greyscale PGM, animated GIF, TIFF, JPEG 2000, upper-case names,
with non-image files counted instead of silently dropped."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from alignment.align_folder import read_manifest
from alignment.cli import main
from alob_common.images import (
    IMAGE_EXTENSIONS,
    decode_rgb,
    is_image_name,
    load_image,
    scan_images,
)


def _noise(h: int = 120, w: int = 100, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)


def test_the_documented_image_types_are_the_one_list_in_any_case():
    """README's list of image types is IMAGE_EXTENSIONS, and each type is an image in lower and
    upper case (one test: the list was checked twice, once by hand-picked names)."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    documented = re.search(r"in any letter case: `([^`]+)`", readme).group(1).split()
    assert set(documented) == set(IMAGE_EXTENSIONS) and len(documented) == 16
    for ext in documented:
        assert is_image_name(f"photo{ext}") and is_image_name(f"PHOTO{ext.upper()}"), ext


@pytest.mark.parametrize("name", ["notes.txt", "clip.mp4", ".hidden.jpg", "manifest.csv", "noext"])
def test_other_files_are_not(name):
    assert not is_image_name(name)


def test_decode_first_frame_of_a_gif_and_greyscale_pgm(tmp_path):
    frames = [Image.fromarray(_noise(seed=s)) for s in (1, 2)]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:])
    rgb = decode_rgb(buf.getvalue())
    assert rgb is not None and rgb.shape == (120, 100, 3)
    np.testing.assert_array_equal(rgb, np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB")))
    Image.fromarray(_noise()[:, :, 0]).save(tmp_path / "grey.pgm")
    loaded = load_image(tmp_path / "grey.pgm")
    assert loaded.rgb.shape == (120, 100, 3)
    assert (loaded.rgb[:, :, 0] == loaded.rgb[:, :, 2]).all()
    assert decode_rgb(b"not an image") is None


def test_scan_counts_other_files_with_examples(tmp_path):
    (tmp_path / "p").mkdir()
    Image.fromarray(_noise()).save(tmp_path / "p" / "x.PGM", format="PPM")
    for k in range(7):
        (tmp_path / "p" / f"doc{k}.txt").write_text("x")
    scan = scan_images(tmp_path)
    assert [p.name for p in scan.images] == ["x.PGM"]
    assert scan.others == 7 and len(scan.other_examples) == 5
    assert "7 non-image file(s)" in scan.describe_others()


def test_align_faces_reads_pgm_gif_tiff_jp2_and_counts_the_rest(tmp_path):
    src, out = tmp_path / "src", tmp_path / "out"
    (src / "person_a").mkdir(parents=True)
    (src / "person_b").mkdir(parents=True)
    Image.fromarray(_noise()[:, :, 0]).save(src / "person_a" / "face.pgm")
    frames = [Image.fromarray(_noise(seed=s)) for s in (3, 4)]
    frames[0].save(src / "person_a" / "anim.gif", save_all=True, append_images=frames[1:])
    Image.fromarray(_noise(seed=5)).save(src / "person_b" / "scan.TIFF")
    Image.fromarray(_noise(seed=6)).save(src / "person_b" / "still.jp2")
    (src / "person_b" / "notes.txt").write_text("not an image")
    result = CliRunner().invoke(main, ["--data", str(src), "--out", str(out), "--workers", "0", "--quiet"])
    assert result.exit_code == 0, result.output
    manifest = read_manifest(out).set_index("source")
    assert sorted(manifest.index) == ["person_a/anim.gif", "person_a/face.pgm", "person_b/scan.TIFF",
                                      "person_b/still.jp2"]
    assert (manifest.status != "failed").all(), manifest.reason.to_dict()
    assert "multi-frame (2 frames)" in manifest.loc["person_a/anim.gif", "reason"]
    for rel in manifest.path:
        assert (out / rel).is_file()
    info = json.loads((out / "dataset.json").read_text())
    assert info["counts"]["other_files"] == 1 and info["other_file_examples"] == ["person_b/notes.txt"]
    assert "not images, skipped: 1" in result.output


def test_a_folder_without_images_says_what_it_found(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "clip.mp4").write_bytes(b"\x00" * 10)
    result = CliRunner().invoke(main, ["--data", str(tmp_path / "src"), "--out", str(tmp_path / "out"), "--workers", "0"])
    assert result.exit_code == 1
    assert "no images found" in result.output and "clip.mp4" in result.output
    assert "Traceback" not in result.output
