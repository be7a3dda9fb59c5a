"""align-faces on real LFW images (skipped without the reference data)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from alignment import fit_similarity, template_for, transform_points
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
    template = template_for(size)
    errors = []
    for landmarks in _landmarks(ok):
        mapped = transform_points(landmarks, fit_similarity(landmarks, template))
        errors.append(np.linalg.norm(mapped - template, axis=1).mean())
    assert np.mean(errors) <= 3.5, f"mean landmark-to-template error {np.mean(errors):.2f} px"
    for rel in manifest.path:
        assert np.asarray(Image.open(out / rel)).shape[:2] == (112, 96 if size == "112x96" else 112)


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
