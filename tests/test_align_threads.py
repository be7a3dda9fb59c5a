"""align-faces with decode threads and batches across image sizes: the threads change nothing in
the output; the batches across sizes put every image's landmarks back in its own pixels, near
the per-image ones. The tests on faces use real LFW images (skipped without them)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from alignment import fit_similarity, template_for, transform_points
from alignment.align_folder import AlignConfig, align_folder, read_manifest
from alignment.cli import main
from alignment.detect import detect_across_sizes, make_detector
from alob_common.images import load_image, scan_images

LANDMARKS = [f"{a}{i}" for i in range(1, 6) for a in ("lx", "ly")]


def _outputs(out: Path) -> dict[str, str]:
    """Every crop's hash and the manifest's bytes."""
    files = {p.relative_to(out).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
             for p in sorted(out.rglob("*")) if p.is_file() and p.suffix in (".jpg", ".png")}
    files["manifest.csv"] = hashlib.sha256((out / "manifest.csv").read_bytes()).hexdigest()
    return files


@pytest.fixture(scope="module")
def mixed_faces(lfw_dir: Path, tmp_path_factory) -> Path:
    """18 LFW photos at mixed sizes (rescaled 0.6–1.8, some cropped non-square), 2 at their own
    size, a broken file and a noise picture (no face: the centre fallback)."""
    rng = np.random.default_rng(5)
    root = tmp_path_factory.mktemp("mixed")
    files = scan_images(lfw_dir).images[::650][:20]
    for k, f in enumerate(files):
        rgb = load_image(f).rgb
        if k >= 2:
            rgb = rgb[: int(rng.integers(200, 251)), int(rng.integers(0, 40)):]
            s = float(rng.uniform(0.6, 1.8))
            rgb = cv2.resize(rgb, (round(rgb.shape[1] * s), round(rgb.shape[0] * s)), interpolation=cv2.INTER_AREA)
        dst = root / f.relative_to(lfw_dir)
        dst.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rgb).save(dst, quality=95)
    (root / "zz").mkdir()
    (root / "zz" / "broken.jpg").write_bytes(b"not a jpeg")
    Image.fromarray(rng.integers(0, 255, (90, 130, 3), dtype=np.uint8)).save(root / "zz" / "noise.png")
    return root


@pytest.mark.parametrize("across", [False, True])
def test_threads_change_no_byte(mixed_faces: Path, tmp_path: Path, across: bool):
    """Decoding ahead and writing behind in threads: the same crops, byte for byte, and the same
    manifest as the serial path (small batches, so several chunks are in flight)."""
    outputs = []
    for threads in (0, 3):
        out = tmp_path / f"out-{threads}"
        config = AlignConfig(batch_size=2, decode_threads=threads, batch_across_sizes=across)
        align_folder(mixed_faces, out, config, workers=0, progress=False)
        outputs.append(_outputs(out))
    assert outputs[0] == outputs[1]
    assert len(outputs[0]) == 22  # 21 crops (the broken file has none) and the manifest


@pytest.mark.slow
def test_threads_in_worker_processes_change_no_byte(mixed_faces: Path, tmp_path: Path):
    """The same in worker processes (compared with workers that do not use threads: a worker's
    single-threaded detector and this process's multi-threaded one can differ in the last bit)."""
    serial, threaded = tmp_path / "serial", tmp_path / "threaded"
    align_folder(mixed_faces, serial, AlignConfig(batch_size=4), workers=2, progress=False)
    align_folder(mixed_faces, threaded, AlignConfig(batch_size=4, decode_threads=2), workers=2, progress=False)
    assert _outputs(serial) == _outputs(threaded)


def test_batches_across_sizes_keep_the_landmarks(mixed_faces: Path, tmp_path: Path):
    """On mixed sizes, one detector call per batch gives every face found per image, landmarks a
    mean of about 1.5 px from the per-image ones (MTCNN's own jitter when an image moves by 2 px,
    bench/align_sizes.py) and the same fit to the template."""
    runs = {}
    for across in (False, True):
        out = tmp_path / f"across-{across}"
        align_folder(mixed_faces, out, AlignConfig(batch_across_sizes=across), workers=0, progress=False)
        runs[across] = read_manifest(out).set_index("source")
    old, new = runs[False], runs[True]
    assert list(old.status) == list(new.status)
    assert (new.status == "ok").sum() == 20
    ok = new.index[new.status == "ok"]
    a = old.loc[ok, LANDMARKS].to_numpy(float).reshape(-1, 5, 2)
    b = new.loc[ok, LANDMARKS].to_numpy(float).reshape(-1, 5, 2)
    distance = np.linalg.norm(a - b, axis=2).mean(axis=1)
    assert distance.mean() < 3.0 and distance.max() < 8.0, distance
    template = template_for("112x96")
    fit = [np.linalg.norm(transform_points(p, fit_similarity(p, template)) - template, axis=1).mean() for p in b]
    assert np.mean(fit) < 3.5
    settings = json.loads((tmp_path / "across-True" / "dataset.json").read_text())["settings"]
    assert settings["batch_across_sizes"] is True


def test_an_image_and_its_upscaled_copy_agree(lfw_dir: Path):
    """Batched on one canvas, a face and its 1.5x copy give landmarks that agree after scaling
    (within MTCNN's own jitter, which is a mean 1.5 px for a 2 px shift of the image), and a
    resized canvas (longer side 250 px) maps the copy's landmarks back to its own pixels."""
    detect = make_detector("mtcnn")
    gaps: dict[str, list[float]] = {}
    for f in scan_images(lfw_dir).images[::1500][:8]:
        face = load_image(f).rgb
        up = cv2.resize(face, (375, 375), interpolation=cv2.INTER_LINEAR)
        small, large = detect_across_sizes(detect, [face, up])
        alone, up_alone = detect([face])[0], detect([up])[0]
        (resized,) = detect_across_sizes(detect, [up], canvas=250)
        assert 0 < resized.box[0] < resized.box[2] < 375
        for name, (a, b) in {"copy vs image": (large.landmarks / 1.5, small.landmarks),
                             "copy vs image, each alone": (up_alone.landmarks / 1.5, alone.landmarks),
                             "image vs alone": (small.landmarks, alone.landmarks),
                             "resized canvas vs alone": (resized.landmarks / 1.5, alone.landmarks)}.items():
            gaps.setdefault(name, []).append(float(np.linalg.norm(a - b, axis=1).mean()))
    for name, values in gaps.items():
        assert np.mean(values) < 2.5 and max(values) < 5.0, (name, values)
    # the two scales disagree about as much when each is detected alone: the canvas adds no error
    assert np.mean(gaps["copy vs image"]) < np.mean(gaps["copy vs image, each alone"]) + 0.75, gaps


def test_cpu_defaults_are_todays(tmp_path: Path):
    """Without the new options a cpu run neither batches across sizes nor decodes in threads."""
    src = tmp_path / "src"
    src.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (80, 70, 3), dtype=np.uint8)).save(src / "a.jpg")
    result = CliRunner().invoke(main, ["--data", str(src), "--out", str(tmp_path / "out"), "--workers", "0", "--quiet"])
    assert result.exit_code == 0, result.output
    settings = json.loads((tmp_path / "out" / "dataset.json").read_text())["settings"]
    assert settings["batch_across_sizes"] is False and settings["decode_threads"] == 0


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present")
def test_cuda_without_a_device_is_one_line(tmp_path: Path):
    (tmp_path / "src").mkdir()
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(tmp_path / "src" / "a.jpg")
    result = CliRunner().invoke(main, ["--data", str(tmp_path / "src"), "--out", str(tmp_path / "out"), "--device", "cuda"])
    assert result.exit_code == 1
    assert "no CUDA device" in result.output and len(result.output.strip().splitlines()) == 1
    result = CliRunner().invoke(main, ["--data", str(tmp_path / "src"), "--out", str(tmp_path / "out"), "--device", "gpu"])
    assert result.exit_code == 2 and "cpu, cuda or cuda:N" in result.output
