"""The 5-point alignment templates, the crop sizes and the similarity fit between point sets:
the single source of these constants in the project.

Points are (x, y) in 0-based pixels, in the order left eye, right eye, nose tip, left mouth
corner, right mouth corner (left/right as seen in the image). The 112×96 (H×W) template is the
SphereFace/CosFace one; the 112×112 template (insightface ``arcface_src``) is the same shifted by
8 px in x, so columns 8..104 of a 112×112 crop are the 112×96 crop.
"""

from __future__ import annotations

import numpy as np

TEMPLATE_112x96 = np.array(
    [
        [30.2946, 51.6963],
        [65.5318, 51.5014],
        [48.0252, 71.7366],
        [33.5493, 92.3655],
        [62.7299, 92.2041],
    ],
    dtype=np.float64,
)
TEMPLATE_112x96.flags.writeable = False

TEMPLATE_112x112 = TEMPLATE_112x96 + np.array([8.0, 0.0])
TEMPLATE_112x112.flags.writeable = False

CROP_SIZES: dict[str, tuple[int, int]] = {"112x96": (112, 96), "112x112": (112, 112)}
_TEMPLATES = {(112, 96): TEMPLATE_112x96, (112, 112): TEMPLATE_112x112}
# Columns of a 112×112 crop that form the 112×96 crop (the templates differ by 8 px in x).
COLUMNS_112x96_IN_112x112 = slice(8, 104)


def normalize_size(text: str) -> str:
    """A size as ``HxW``: ``112×96``, ``112X96`` and `` 112x96 `` all become ``112x96``."""
    return text.strip().lower().replace("×", "x")


def parse_size(text: str | tuple[int, int]) -> tuple[int, int]:
    """Turn ``"112x96"`` or ``"112×96"`` (H×W) into ``(112, 96)``; only the two supported sizes are accepted."""
    size = tuple(text) if not isinstance(text, str) else CROP_SIZES.get(normalize_size(text))
    if size not in _TEMPLATES:
        raise ValueError(f"unsupported crop size {text!r}: use one of {', '.join(CROP_SIZES)}")
    return size  # type: ignore[return-value]


def crop_template(height: int, width: int) -> np.ndarray:
    """The 5 template points of an aligned crop of any size: the 112×96 and 112×112 templates
    exactly, other sizes scaled from 112×96 (a copy the caller may change)."""
    if (height, width) in _TEMPLATES:
        return _TEMPLATES[(height, width)].copy()
    return TEMPLATE_112x96 * np.array([width / 96.0, height / 112.0])


def template_for(size: str | tuple[int, int]) -> np.ndarray:
    """Return the (5, 2) template of a crop size given as ``"112x96"`` or ``(112, 96)``."""
    return _TEMPLATES[parse_size(size)]


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
