"""align-faces end to end on a bad-input set made here, plus resume and usage errors."""

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
from click.testing import CliRunner
from PIL import Image

from conftest import ctrl_c_reaches_child
from alignment.align_folder import MANIFEST_COLUMNS, read_manifest
from alignment.cli import main
from alob_common.images import load_image


def _picture(w: int = 160, h: int = 200) -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8))


@pytest.fixture()
def bad_tree(tmp_path: Path) -> Path:
    """One file per kind of awkward input, in identity folders, as users' trees contain them."""
    src = tmp_path / "src"
    (src / "person_a").mkdir(parents=True)
    (src / "person_b" / "nested").mkdir(parents=True)
    pic = _picture()
    pic.save(src / "person_a" / "plain.jpg")
    pic.save(src / "person_a" / "UPPER.JPG")
    (src / "person_a" / "empty.jpg").write_bytes(b"")
    full = (src / "person_a" / "plain.jpg").read_bytes()
    (src / "person_a" / "truncated.jpg").write_bytes(full[: len(full) // 3])
    (src / "person_a" / "notes.png").write_text("this is not an image\n")
    (src / "person_a" / "readme.txt").write_text("not an input at all\n")
    pic.convert("CMYK").save(src / "person_b" / "cmyk.jpg")
    Image.fromarray((np.arange(200 * 160).reshape(200, 160) * 2).astype(np.uint16)).save(src / "person_b" / "deep16.png")
    rgba = pic.convert("RGBA")
    rgba.putalpha(128)
    rgba.save(src / "person_b" / "alpha.png")
    pic.convert("L").save(src / "person_b" / "gray.bmp")
    exif = Image.Exif()
    exif[0x0112] = 6
    _picture(200, 120).save(src / "person_b" / "rotated.jpg", exif=exif)
    _picture(8, 8).save(src / "person_b" / "tiny.png")
    _picture(700, 700).save(src / "person_b" / "nested" / "huge.webp")
    frames = [_picture(), _picture().transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    frames[0].save(src / "person_b" / "animated.png", save_all=True, append_images=frames[1:])
    os.symlink(src / "does-not-exist.jpg", src / "person_b" / "dangling.jpg")
    return src


EXPECTED = {  # source -> (status, fragment of the reason)
    "person_a/plain.jpg": ("fallback", "no face detected"),
    "person_a/UPPER.JPG": ("fallback", "no face detected"),
    "person_a/empty.jpg": ("failed", "empty file"),
    "person_a/truncated.jpg": ("failed", "truncated"),
    "person_a/notes.png": ("failed", "not an image"),
    "person_b/cmyk.jpg": ("fallback", "converted CMYK to RGB"),
    "person_b/deep16.png": ("fallback", "to 8-bit"),
    "person_b/alpha.png": ("fallback", "alpha (RGBA) flattened"),
    "person_b/gray.bmp": ("fallback", "converted L to RGB"),
    "person_b/rotated.jpg": ("fallback", "EXIF orientation 6 applied"),
    "person_b/tiny.png": ("failed", "too small"),
    "person_b/nested/huge.webp": ("fallback", "huge"),
    "person_b/animated.png": ("fallback", "multi-frame (2 frames)"),
    "person_b/dangling.jpg": ("failed", "broken symlink"),
}


def _run(src: str, out: str, *args: str):
    return CliRunner().invoke(main, ["--data", src, "--out", out, *args, "--workers", "0", "--quiet"],
                              catch_exceptions=False)


def test_bad_inputs_each_get_a_row_with_reason(bad_tree: Path, tmp_path: Path):
    out = tmp_path / "out"
    result = _run(str(bad_tree), str(out), "--max-pixels", "250000")
    assert result.exit_code == 0, result.output
    manifest = read_manifest(out)
    assert list(manifest.columns) == MANIFEST_COLUMNS
    assert sorted(manifest["source"]) == sorted(EXPECTED)
    for row in manifest.itertuples():
        status, fragment = EXPECTED[row.source]
        assert row.status == status, (row.source, row.reason)
        assert fragment in row.reason, (row.source, row.reason)
        written = out / row.path if row.path else None
        if status == "failed":
            assert row.path == ""
        else:
            assert row.path == row.source and written.is_file()
            assert np.asarray(Image.open(written)).shape == (112, 96, 3)
    assert set(manifest["identity"]) == {"person_a", "person_b", "person_b/nested"}
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["complete"] and meta["counts"]["inputs"] == len(EXPECTED)
    assert meta["counts"]["failed"] == sum(s == "failed" for s, _ in EXPECTED.values())
    assert "fallback" in result.output and "failed" in result.output
    assert not list(out.rglob("*.tmp"))


def test_exif_orientation_and_16bit_are_decoded_right(bad_tree: Path):
    rotated = load_image(bad_tree / "person_b" / "rotated.jpg")
    assert rotated.rgb.shape == (200, 120, 3)  # stored 200 wide x 120 high, rotated upright
    deep = load_image(bad_tree / "person_b" / "deep16.png").rgb
    assert deep.dtype == np.uint8 and deep.max() > 200 and deep.min() == 0  # scaled, not clipped
    huge = load_image(bad_tree / "person_b" / "nested" / "huge.webp", max_pixels=250_000)
    assert huge.rgb.shape[0] * huge.rgb.shape[1] <= 250_000 and huge.scale == pytest.approx(1.4, abs=0.01)


def test_skip_fallback_and_square_size(bad_tree: Path, tmp_path: Path):
    out = tmp_path / "sq"
    assert _run(str(bad_tree), str(out), "--fallback", "skip", "--size", "112x112").exit_code == 0
    manifest = read_manifest(out)
    assert set(manifest["status"]) == {"failed"}
    assert (manifest["reason"].str.contains("no face detected")).sum() == sum(
        s == "fallback" for s, _ in EXPECTED.values()
    )
    assert not list(out.rglob("*.jpg"))


def test_rerun_resumes_and_redoes_missing(bad_tree: Path, tmp_path: Path):
    out = tmp_path / "out"
    _run(str(bad_tree), str(out))
    first = read_manifest(out)
    (out / "person_a" / "plain.jpg").unlink()
    result = _run(str(bad_tree), str(out))
    assert result.exit_code == 0
    meta = json.loads((out / "dataset.json").read_text())
    done_before = (first["status"] != "failed").sum()
    assert meta["counts"]["resumed"] == done_before - 1
    assert (out / "person_a" / "plain.jpg").is_file()
    pd.testing.assert_frame_equal(read_manifest(out), first)
    refused = CliRunner().invoke(main, ["--data", str(bad_tree), "--out", str(out), "--size", "112x112", "--workers", "0"])
    assert refused.exit_code == 1 and "other settings" in refused.output
    assert "size: '112x96' -> '112x112'" in refused.output
    # the run's own values given explicitly are the same settings, not a change
    same = CliRunner().invoke(main, ["--data", str(bad_tree), "--out", str(out), "--size", "112x96", "--fallback", "center",
                                     "--workers", "0", "--quiet"])
    assert same.exit_code == 0, same.output


def test_usage_errors_are_one_line(tmp_path: Path, bad_tree: Path):
    missing = CliRunner().invoke(main, ["--data", str(tmp_path / "nope"), "--out", str(tmp_path / "o")])
    assert missing.exit_code != 0 and "not found" in missing.output and "Traceback" not in missing.output
    (tmp_path / "empty").mkdir()
    empty = CliRunner().invoke(main, ["--data", str(tmp_path / "empty"), "--out", str(tmp_path / "o")])
    assert empty.exit_code == 1 and "no images" in empty.output
    blocker = tmp_path / "file"
    blocker.write_text("x")
    unwritable = CliRunner().invoke(main, ["--data", str(bad_tree), "--out", str(blocker / "out")])
    assert unwritable.exit_code == 1 and "cannot write" in unwritable.output
    assert len(unwritable.output.strip().splitlines()) == 1


def test_overwrite_redoes_every_image_and_allows_other_settings(bad_tree: Path, tmp_path: Path):
    out = tmp_path / "out"
    _run(str(bad_tree), str(out))
    crop = out / "person_a" / "plain.jpg"
    original = crop.read_bytes()
    crop.write_bytes(b"stale bytes of an earlier run")
    _run(str(bad_tree), str(out))  # a rerun resumes: the crop is kept as it is
    assert crop.read_bytes() == b"stale bytes of an earlier run"
    assert _run(str(bad_tree), str(out), "--overwrite").exit_code == 0
    assert crop.read_bytes() == original
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["counts"]["resumed"] == 0 and meta["counts"]["processed"] == len(EXPECTED)
    result = _run(str(bad_tree), str(out), "--overwrite", "--size", "112x112")  # other settings: no refusal
    assert result.exit_code == 0, result.output
    assert np.asarray(Image.open(crop)).shape == (112, 112, 3)
    assert json.loads((out / "dataset.json").read_text())["settings"]["size"] == "112x112"


@pytest.mark.parametrize("inside", ["out", "."])
def test_out_inside_src_is_refused_in_one_line(bad_tree: Path, inside: str):
    before = sorted(p.relative_to(bad_tree).as_posix() for p in bad_tree.rglob("*"))
    result = CliRunner().invoke(main, ["--data", str(bad_tree), "--out", str(bad_tree / inside), "--workers", "0"])
    assert result.exit_code == 1 and result.output == "Error: OUT must not be SRC or lie inside it\n"
    assert sorted(p.relative_to(bad_tree).as_posix() for p in bad_tree.rglob("*")) == before


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_saves_the_manifest_and_exits_130(tmp_path: Path, sig):
    """Ctrl-C (SIGINT) or a scheduler's SIGTERM mid-run: exit 130 with one line saying how to
    resume, manifest.csv holding the images done so far (each with its crop); the rerun lists
    every input once and resumes those rows."""
    src = tmp_path / "src"
    rng = np.random.default_rng(1)
    for p in range(3):
        (src / f"p{p}").mkdir(parents=True)
        for i in range(20):
            Image.fromarray(rng.integers(0, 255, (200, 160, 3), dtype=np.uint8)).save(src / f"p{p}" / f"{i:02d}.jpg")
    out = tmp_path / "out"
    cmd = [str(Path(sys.executable).parent / "align-faces"), "--data", str(src), "--out", str(out), "--workers", "0",
           "--batch-size", "4", "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=ctrl_c_reaches_child)
    deadline = time.monotonic() + 120
    while proc.poll() is None and len(list(out.rglob("*.jpg"))) < 8 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert stderr.strip().splitlines() == [f"interrupted: {out}/manifest.csv holds what was done; rerun the same "
                                           "command to resume"]
    saved = read_manifest(out)
    assert 0 < len(saved) < 60 and all((out / p).is_file() for p in saved.path)
    assert json.loads((out / "dataset.json").read_text())["complete"] is False
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["complete"] and meta["counts"]["resumed"] == len(saved)
    assert sorted(read_manifest(out).source) == sorted(p.relative_to(src).as_posix() for p in src.rglob("*.jpg"))
