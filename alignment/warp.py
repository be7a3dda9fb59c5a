"""Similarity alignment: least-squares fit of rotation + uniform scale + translation, the
warp onto a template, and the centre-crop fallback used when no face is found."""

from __future__ import annotations

import cv2
import numpy as np

from alignment.templates import parse_size, template_for


def fit_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity transform mapping ``src`` points onto ``dst`` points.

    Closed form of Umeyama (1991) without reflection: minimises sum |s·R·src + t − dst|².
    Returns the 2×3 matrix accepted by ``cv2.warpAffine``.
    """
    src = np.asarray(src, dtype=np.float64).reshape(-1, 2)
    dst = np.asarray(dst, dtype=np.float64).reshape(-1, 2)
    if src.shape != dst.shape or len(src) < 2:
        raise ValueError("need two equal-length sets of at least 2 points")
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s0, d0 = src - mu_s, dst - mu_d
    var_s = (s0**2).sum() / len(src)
    if var_s <= 1e-12:
        raise ValueError("source points are degenerate (all equal)")
    cov = d0.T @ s0 / len(src)
    u, sig, vt = np.linalg.svd(cov)
    fix = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        fix[1, 1] = -1.0
    rot = u @ fix @ vt
    scale = (sig * np.diag(fix)).sum() / var_s
    matrix = np.empty((2, 3))
    matrix[:, :2] = scale * rot
    matrix[:, 2] = mu_d - scale * rot @ mu_s
    return matrix


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a 2×3 affine matrix to (N, 2) points."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    return points @ matrix[:, :2].T + matrix[:, 2]


def warp_face(
    image: np.ndarray, landmarks: np.ndarray, size: str | tuple[int, int] = (112, 96)
) -> tuple[np.ndarray, np.ndarray]:
    """Warp ``image`` so that its 5 ``landmarks`` land on the template of ``size`` (H×W).

    Returns the crop and the 2×3 matrix that maps source pixels to crop pixels.
    """
    height, width = parse_size(size)
    matrix = fit_similarity(landmarks, template_for((height, width)))
    crop = cv2.warpAffine(
        image, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT
    )
    return crop, matrix


def center_crop(image: np.ndarray, size: str | tuple[int, int] = (112, 96), margin: int = 44) -> np.ndarray:
    """insightface's no-face rule: box inset by 1/16 of each side, grown by ``margin`` px,
    clipped to the image, resized to 112×112; a 112×96 crop is its columns 8..104, exactly as
    the two templates relate."""
    height, width = parse_size(size)
    h, w = image.shape[:2]
    x0, y0 = int(w * 0.0625), int(h * 0.0625)
    x1, y1 = w - x0, h - y0
    bx0, by0 = int(max(x0 - margin / 2, 0)), int(max(y0 - margin / 2, 0))
    bx1, by1 = int(min(x1 + margin / 2, w)), int(min(y1 + margin / 2, h))
    square = cv2.resize(image[by0:by1, bx0:bx1], (112, 112), interpolation=cv2.INTER_LINEAR)
    left = (112 - width) // 2
    return np.ascontiguousarray(square[:, left : left + width])
