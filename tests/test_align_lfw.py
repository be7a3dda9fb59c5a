"""align-faces on real LFW images (skipped without the reference data)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from alignment import template_for
from alignment.align_folder import AlignConfig, align_folder, read_manifest
from alignment.detect import make_detector
from alob_common.images import scan_images


def _sample(lfw_dir: Path, n: int, tmp_path: Path) -> Path:
    """A spread of ``n`` LFW images (every k-th file) as a tree of symlinks."""
    files = scan_images(lfw_dir).images
    picked = files[:: len(files) // n][:n]
    src = tmp_path / "lfw-sample"
    for f in picked:
        link = src / f.relative_to(lfw_dir)
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(f, link)
    return src


def _landmarks(manifest) -> np.ndarray:
    cols = [f"{a}{i}" for i in range(1, 6) for a in ("lx", "ly")]
    return manifest[cols].to_numpy(float).reshape(-1, 5, 2)


@pytest.mark.slow
@pytest.mark.parametrize("size", ["112x96", "112x112"])
def test_lfw_alignment_quality(lfw_dir: Path, tmp_path: Path, size: str):
    src = _sample(lfw_dir, 120, tmp_path)
    out = tmp_path / "aligned"
    align_folder(src, out, AlignConfig(size=(112, 96) if size == "112x96" else (112, 112)), workers=2, progress=False)
    manifest = read_manifest(out)
    assert len(manifest) == 120
    ok = manifest[manifest.status == "ok"]
    assert len(ok) / len(manifest) >= 0.98
    assert set(manifest.status) <= {"ok", "fallback"}
    for rel in manifest.path:
        assert np.asarray(Image.open(out / rel)).shape[:2] == (112, 96 if size == "112x96" else 112)
    # the written crops: each is the source warped by OpenCV's own similarity fit of its manifest
    # landmarks onto the template; MTCNN run again on them finds the faces there (to its jitter
    # on tight crops, a median of 4-6 px)
    import cv2

    template = template_for(size)
    crop_hw = (112, 96 if size == "112x96" else 112)
    crops = []
    for row, landmarks in zip(ok.itertuples(), _landmarks(ok)):
        matrix, _ = cv2.estimateAffinePartial2D(landmarks, template, method=cv2.RANSAC, ransacReprojThreshold=1e3)
        expected = cv2.warpAffine(np.asarray(Image.open(src / row.source).convert("RGB")), matrix, crop_hw[::-1])
        crops.append(np.asarray(Image.open(out / row.path).convert("RGB")))
        assert np.abs(crops[-1].astype(int) - expected.astype(int)).mean() < 3.0, row.source
    found = [face for face in make_detector("mtcnn")(crops) if face is not None]
    errors = [np.linalg.norm(face.landmarks - template, axis=1).mean() for face in found]
    assert len(found) >= 0.95 * len(crops)
    assert np.median(errors) <= 7.0, f"median landmark-to-template error on the crops {np.median(errors):.2f} px"


def test_batched_fast_detector_matches_stock_mtcnn(lfw_dir: Path):
    """Our batched, channels_last MTCNN gives the landmarks of facenet-pytorch's own detect()."""
    from facenet_pytorch import MTCNN

    files = scan_images(lfw_dir).images[::1500][:8]
    images = [np.asarray(Image.open(f).convert("RGB")) for f in files]
    ours = make_detector("mtcnn")(images)
    stock = MTCNN(keep_all=True)
    for image, face in zip(images, ours):
        boxes, _, points = stock.detect(image, landmarks=True)
        assert face is not None
        best = np.abs(np.asarray(points, float) - face.landmarks[None]).max(axis=(1, 2)).min()
        assert best < 0.05


def test_dlib_backend_agrees_with_mtcnn(lfw_dir: Path, optional_part):
    """dlib (HOG + 68 points reduced to 5) finds the same landmarks as MTCNN within a few px."""
    from alob_common.dlib_models import SHAPE_68, require_dlib_model

    optional_part("the [dlib] extra", ("dlib-bin", "face_recognition_models"), lambda: require_dlib_model(SHAPE_68))
    files = scan_images(lfw_dir).images[::1000][:12]
    images = [np.asarray(Image.open(f).convert("RGB")) for f in files]
    by_dlib = make_detector("dlib")(images)
    by_mtcnn = make_detector("mtcnn")(images)
    distances = [
        np.linalg.norm(d.landmarks - m.landmarks, axis=1)
        for d, m in zip(by_dlib, by_mtcnn)
        if d is not None and m is not None
    ]
    assert len(distances) >= 10
    assert np.median(np.concatenate(distances)) < 4.0


def test_batch_crash_is_guarded_per_image(lfw_dir: Path, monkeypatch):
    """When facenet-pytorch raises on a batch (as it does on some batches holding a face-less
    image), the batch is redone image by image and the faces are still found."""
    from facenet_pytorch import MTCNN

    original = MTCNN.detect

    def crash_on_batches(self, img, landmarks=False):
        if np.asarray(img).ndim == 4:
            raise ValueError("setting an array element with a sequence (inhomogeneous shape)")
        return original(self, img, landmarks=landmarks)

    monkeypatch.setattr(MTCNN, "detect", crash_on_batches)
    face = np.asarray(Image.open(scan_images(lfw_dir).images[0]).convert("RGB"))
    results = make_detector("mtcnn")([face, np.zeros_like(face), face])
    assert results[0] is not None and results[1] is None and results[2] is not None
    np.testing.assert_allclose(results[0].landmarks, results[2].landmarks)


FACES = ("AJ_Cook/AJ_Cook_0001.jpg", "George_W_Bush/George_W_Bush_0053.jpg", "Lili_Marinho/Lili_Marinho_0001.jpg")


def _faces(lfw_dir: Path, root: Path, names=FACES) -> Path:
    """A few real LFW photos (symlinks) in their identity folders."""
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).symlink_to(lfw_dir / name)
    return root


def _cli(src: str, out: str, *args: str):
    from click.testing import CliRunner

    from alignment.cli import main

    result = CliRunner().invoke(main, ["--data", src, "--out", out, *args, "--workers", "0", "--quiet"])
    assert result.exit_code == 0, result.output
    return result


def _rgb(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def test_cli_crops_are_the_warp_of_their_landmarks(lfw_dir: Path, tmp_path: Path):
    """Each written crop is the source warped by OpenCV's own similarity fit of the manifest's
    landmarks onto the template, and MTCNN run again on the crop finds the landmarks there."""
    import cv2

    src = _faces(lfw_dir, tmp_path / "src")
    _cli(str(src), str(tmp_path / "out"))
    manifest = read_manifest(tmp_path / "out")
    assert list(manifest.status) == ["ok"] * 3
    template = template_for("112x96")
    for row, landmarks in zip(manifest.itertuples(), _landmarks(manifest)):
        matrix, _ = cv2.estimateAffinePartial2D(landmarks, template, method=cv2.RANSAC, ransacReprojThreshold=1e3)
        expected = cv2.warpAffine(_rgb(src / row.source), matrix, (96, 112), flags=cv2.INTER_LINEAR)
        crop = _rgb(tmp_path / "out" / row.path)
        assert np.abs(crop.astype(int) - expected.astype(int)).mean() < 3.0, row.source  # JPEG q95
    crops = [_rgb(tmp_path / "out" / p) for p in manifest.path]
    errors = [np.linalg.norm(face.landmarks - template, axis=1).mean() for face in make_detector("mtcnn")(crops)]
    assert max(errors) < 7.0 and np.mean(errors) < 5.0, errors  # MTCNN's own jitter on a tight crop


def test_cli_thresholds_min_face_size_and_pick_reach_the_detector(lfw_dir: Path, tmp_path: Path):
    """--thresholds: an O-net threshold above AJ_Cook_0001's face score (0.99994 with the
    defaults) and below Lili_Marinho_0001's (1.0) loses the first face and keeps the second, and
    every face kept scores above it; --min-face-size 120 misses a face 40 px wide that 20 finds;
    --pick-face largest takes the large face in a corner, the default the small face in the middle."""
    src = _faces(lfw_dir, tmp_path / "src")
    _cli(str(src), str(tmp_path / "strict"), "--thresholds", "0.6,0.7,0.99995")
    strict = read_manifest(tmp_path / "strict").set_index("source")
    assert (strict.status[FACES[0]], strict.status[FACES[2]]) == ("fallback", "ok")
    assert (strict.score[strict.status == "ok"] >= 0.99995).all()
    face = Image.open(lfw_dir / FACES[2]).convert("RGB")
    canvas = Image.new("RGB", (400, 400), (128, 128, 128))
    canvas.paste(face.resize((100, 100)), (150, 150))  # a face about 40 px wide
    (tmp_path / "small" / "one").mkdir(parents=True)
    canvas.save(tmp_path / "small" / "one" / "small.png")
    for size, status in (("20", "ok"), ("120", "fallback")):
        _cli(str(tmp_path / "small"), str(tmp_path / f"min{size}"), "--min-face-size", size)
        assert list(read_manifest(tmp_path / f"min{size}").status) == [status], size

    canvas = Image.new("RGB", (700, 500), (128, 128, 128))
    canvas.paste(face, (0, 0))  # large face in the top-left corner
    canvas.paste(face.resize((125, 125)), (350 - 62, 250 - 62))  # half-size face in the middle
    (tmp_path / "two" / "pair").mkdir(parents=True)
    canvas.save(tmp_path / "two" / "pair" / "two.png")
    centres = {}
    for pick in ("center", "largest"):
        _cli(str(tmp_path / "two"), str(tmp_path / pick), "--pick-face", pick)
        manifest = read_manifest(tmp_path / pick)
        assert list(manifest.status) == ["ok"]
        centres[pick] = _landmarks(manifest)[0].mean(axis=0)
    assert np.all(np.abs(centres["center"] - (350, 250)) < 40), centres
    assert np.all(centres["largest"] < 250), centres


def test_downscaled_image_keeps_landmarks_in_source_pixels(lfw_dir: Path, tmp_path: Path):
    """A photo 4× the size of an LFW one, decoded at 1/4 under --max-pixels: its manifest
    landmarks are in its own pixels, 4× the original's, and its crop is the original's."""
    (tmp_path / "small" / "a").mkdir(parents=True)
    (tmp_path / "large" / "a").mkdir(parents=True)
    face = Image.open(lfw_dir / FACES[0]).convert("RGB")
    face.save(tmp_path / "small" / "a" / "face.png")
    face.resize((1000, 1000), Image.Resampling.BICUBIC).save(tmp_path / "large" / "a" / "face.png")
    _cli(str(tmp_path / "small"), str(tmp_path / "small-out"))
    result = _cli(str(tmp_path / "large"), str(tmp_path / "large-out"), "--max-pixels", "62500")
    small, large = read_manifest(tmp_path / "small-out"), read_manifest(tmp_path / "large-out")
    assert list(large.status) == ["ok"] and "decoded at 1/4.00" in large.reason[0], result.output
    np.testing.assert_allclose(_landmarks(large)[0], _landmarks(small)[0] * 4 + 1.5, atol=6.0)
    crops = [_rgb(tmp_path / out / "a" / "face.png").astype(int) for out in ("small-out", "large-out")]
    assert np.abs(crops[0] - crops[1]).mean() < 8.0
