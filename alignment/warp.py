"""Similarity alignment: least-squares fit of rotation + uniform scale + translation, the
warp onto a template, and the centre-crop fallback used when no face is found."""

from __future__ import annotations

import cv2
import numpy as np

from alob_common.geometry import (
    fit_similarity,
    parse_size,
    template_for,
)


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
