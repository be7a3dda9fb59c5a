"""Unit tests of the alignment maths, the fallback rule and the face-picking rule (no data needed)."""

from __future__ import annotations

import numpy as np
import pytest

from alignment import (
    TEMPLATE_112x96,
    TEMPLATE_112x112,
    center_crop,
    fit_similarity,
    template_for,
    transform_points,
    warp_face,
)
from alignment.detect import landmarks68_to_5, pick_face
from alob_common.geometry import parse_size


def _similarity(scale: float, angle_deg: float, tx: float, ty: float) -> np.ndarray:
    a = np.deg2rad(angle_deg)
    rot = scale * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return np.hstack([rot, [[tx], [ty]]])


@pytest.mark.parametrize("scale,angle,tx,ty", [(1.0, 0.0, 0.0, 0.0), (0.37, 12.5, -20.0, 7.0), (2.4, -33.0, 101.5, -44.2)])
def test_similarity_fit_recovers_known_transform(scale, angle, tx, ty):
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 250, size=(5, 2))
    true = _similarity(scale, angle, tx, ty)
    fitted = fit_similarity(src, transform_points(src, true))
    assert np.abs(transform_points(src, fitted) - transform_points(src, true)).max() <= 0.01
    np.testing.assert_allclose(fitted, true, atol=1e-9)


def test_similarity_fit_is_least_squares_under_noise():
    rng = np.random.default_rng(1)
    src = rng.uniform(0, 250, size=(5, 2))
    dst = transform_points(src, _similarity(0.5, 8.0, 3.0, -2.0)) + rng.normal(0, 1.5, size=(5, 2))
    best = fit_similarity(src, dst)
    residual = ((transform_points(src, best) - dst) ** 2).sum()
    for _ in range(200):  # no nearby similarity does better
        a, s = rng.normal(0, 0.01), 1 + rng.normal(0, 0.01)
        nudge = _similarity(s, np.rad2deg(a), *rng.normal(0, 0.3, 2))
        other = np.vstack([nudge, [0, 0, 1]]) @ np.vstack([best, [0, 0, 1]])
        assert ((transform_points(src, other[:2]) - dst) ** 2).sum() >= residual - 1e-9


def test_similarity_fit_never_reflects():
    src = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    mirrored = src * np.array([-1.0, 1.0])
    m = fit_similarity(src, mirrored)
    assert np.linalg.det(m[:, :2]) > 0


def test_template_points_land_on_template_after_warp():
    """Draw dots at known landmarks of a synthetic image; after warping they sit on the template."""
    h, w = 250, 250
    true = _similarity(2.1, -9.0, 40.0, 10.0)
    for size in ("112x96", "112x112"):
        template = template_for(size)
        landmarks = transform_points(template, true)  # where the template points are in the source
        image = np.zeros((h, w, 3), np.uint8)
        yy, xx = np.mgrid[0:h, 0:w]
        for x, y in landmarks:
            image[(xx - x) ** 2 + (yy - y) ** 2 <= 9] = 255
        crop, matrix = warp_face(image, landmarks, size)
        assert crop.shape == (*parse_size(size), 3)
        np.testing.assert_allclose(transform_points(landmarks, matrix), template, atol=1e-6)
        for tx, ty in template:  # the blob's centroid in the crop is the template point
            x0, y0 = int(tx) - 4, int(ty) - 4
            patch = crop[y0 : y0 + 10, x0 : x0 + 10, 0].astype(float)
            py, px = np.mgrid[y0 : y0 + 10, x0 : x0 + 10]
            cx, cy = (patch * px).sum() / patch.sum(), (patch * py).sum() / patch.sum()
            assert abs(cx - tx) < 0.35 and abs(cy - ty) < 0.35


def test_templates_relate_by_8px_shift():
    np.testing.assert_allclose(TEMPLATE_112x112 - TEMPLATE_112x96, [[8, 0]] * 5)
    with pytest.raises(ValueError):
        parse_size("96x96")


def test_center_crop_rule():
    """insightface: inset by 1/16, grow by 44 px, clip, resize; 112x96 = columns 8..104 of 112x112."""
    h, w = 400, 300
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    image = np.dstack([xx, yy, np.zeros_like(xx)])  # each pixel holds its own coordinates
    # inset box x 18..282, y 25..375; grown by 22 px each side and clipped: x 0..300, y 3..397
    sq = center_crop(image, "112x112")
    assert sq.shape == (112, 112, 3)
    cols = (np.arange(112) + 0.5) * 300 / 112 - 0.5
    rows = 3 + (np.arange(112) + 0.5) * 394 / 112 - 0.5
    np.testing.assert_allclose(sq[50, 1:-1, 0], cols[1:-1], atol=0.01)
    np.testing.assert_allclose(sq[1:-1, 50, 1], rows[1:-1], atol=0.01)
    narrow = center_crop(image, "112x96")
    assert narrow.shape == (112, 96, 3)
    np.testing.assert_array_equal(narrow, sq[:, 8:104])


def test_pick_face_center_vs_largest():
    shape = (250, 250, 3)
    boxes = np.array([[100, 100, 150, 150], [0, 0, 80, 80], [180, 60, 250, 200]], float)
    assert pick_face(boxes, shape, "center") == 0
    assert pick_face(boxes, shape, "largest") == 2


def test_68_to_5_landmarks():
    pts = np.zeros((68, 2))
    pts[36:42] = [10, 20]
    pts[42:48] = [30, 20]
    pts[30] = [20, 30]
    pts[48], pts[54] = [12, 40], [28, 40]
    np.testing.assert_allclose(landmarks68_to_5(pts), [[10, 20], [30, 20], [20, 30], [12, 40], [28, 40]])
