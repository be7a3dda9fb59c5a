"""Where an occluder goes and how it is drawn: the face points of an aligned crop, the centre
draws of random and semantic placement, and :func:`paste` (rect or alpha blending), shared by
every size mode of :mod:`occgen.synth` and both ratio solvers."""

from __future__ import annotations

from collections import OrderedDict

import cv2
import numpy as np

from alob_common.geometry import crop_template
from occgen.library import Occluder

CENTRE_TRIES = 6  # ratio mode: candidate centres drawn at once, the first that can reach the target wins
RESIZED_CACHE_BYTES = 64 << 20  # per process: the resized occluders kept for reuse (a factor mode needs 63)
_RESIZED: OrderedDict = OrderedDict()
_CACHED_BYTES = [0]


def face_points(height: int, width: int) -> dict[str, tuple[float, float]]:
    """Where the eyes and the nose-mouth region of an aligned crop are, from the 5-point template
    (112×96; 112×112 is the same shifted by 8 px; other sizes are scaled from 112×96)."""
    pts = crop_template(height, width)
    eyes = pts[:2].mean(axis=0)
    mouth = (pts[2] + pts[3:].mean(axis=0)) / 2
    return {"eyes": (float(eyes[0]), float(eyes[1])), "mouth": (float(mouth[0]), float(mouth[1]))}


def resize_occluder(array: np.ndarray, w: int, h: int) -> np.ndarray:
    """``array`` resized to w×h: area averaging when shrinking, bilinear when enlarging."""
    shrink = w * h < array.shape[0] * array.shape[1]
    return cv2.resize(array, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def alpha_mask(occ: Occluder, w: int, h: int) -> np.ndarray:
    """The boolean mask alpha blending draws for ``occ`` at w×h (resized alpha > 0.5)."""
    return resize_occluder(occ.premultiplied[1], w, h) > 0.5


def _resized(occ: Occluder, w: int, h: int, blend: str) -> tuple[np.ndarray, ...]:
    """``occ`` resized to w×h as paste draws it (read only): (flat picture,) for rect blending;
    for alpha blending (premultiplied RGB, 1 - alpha, mask: 255 where alpha > 0.5), alpha clipped
    to [0, 1]. The same occluder at the same size is resized once per process while it stays
    among the recently used (a byte budget)."""
    key = (occ, w, h, blend)
    found = _RESIZED.get(key)
    if found is not None:
        _RESIZED.move_to_end(key)
        return found
    if blend == "rect":
        arrays: tuple[np.ndarray, ...] = (resize_occluder(occ.flat, w, h),)
    else:
        prem, alpha = occ.premultiplied
        a = resize_occluder(alpha, w, h)
        np.minimum(np.maximum(a, 0.0, out=a), 1.0, out=a)  # np.clip's result, without its Python wrapper
        arrays = (resize_occluder(prem, w, h), 1.0 - a, np.where(a > 0.5, 255, 0).astype(np.uint8))
    for array in arrays:
        array.flags.writeable = False
    _RESIZED[key] = arrays
    _CACHED_BYTES[0] += sum(a.nbytes for a in arrays)
    while _CACHED_BYTES[0] > RESIZED_CACHE_BYTES and len(_RESIZED) > 1:
        _CACHED_BYTES[0] -= sum(a.nbytes for a in _RESIZED.popitem(last=False)[1])
    return arrays


def paste(image: np.ndarray, occ: Occluder, x0: int, y0: int, w: int, h: int, blend: str) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``occ`` resized to w×h with its top-left at (x0, y0); returns (image, true mask)."""
    H, W = image.shape[:2]
    out = image.copy()
    mask = np.zeros((H, W), np.uint8)
    ix0, iy0, ix1, iy1 = max(x0, 0), max(y0, 0), min(W, x0 + w), min(H, y0 + h)
    if ix1 <= ix0 or iy1 <= iy0:
        return out, mask
    sy, sx = slice(iy0 - y0, iy1 - y0), slice(ix0 - x0, ix1 - x0)
    if blend == "rect":
        out[iy0:iy1, ix0:ix1] = _resized(occ, w, h, blend)[0][sy, sx]
        mask[iy0:iy1, ix0:ix1] = 255
        return out, mask
    prem, inverse, drawn = _resized(occ, w, h, blend)
    blended = out[iy0:iy1, ix0:ix1].astype(np.float32)
    blended *= inverse[sy, sx, None]
    blended += prem[sy, sx]
    blended += 0.5  # >= 0.5 (premultiplied colours and 1 - alpha are >= 0), < 256: rounds as it casts
    out[iy0:iy1, ix0:ix1] = np.minimum(blended, 255.0, out=blended)
    mask[iy0:iy1, ix0:ix1] = drawn[sy, sx]
    return out, mask


def centre(rng: np.random.Generator, occ: Occluder, W: int, H: int, placement: str, jitter: float, w: float,
           h: float) -> tuple[int, int]:
    """Integer centre of the occluder's rectangle for its size w×h."""
    if placement == "semantic" and occ.hint in ("eyes", "mouth"):
        fx, fy = face_points(H, W)[occ.hint]
        dx, dy = rng.normal(0.0, jitter, 2) * (W, H)
        cx = fx + dx + (0.5 - occ.anchor[0]) * w
        cy = fy + dy + (0.5 - occ.anchor[1]) * h
        return int(np.clip(round(cx), 0, W - 1)), int(np.clip(round(cy), 0, H - 1))
    return int(rng.integers(0, W)), int(rng.integers(0, H))


def centres(rng: np.random.Generator, occ: Occluder, W: int, H: int, placement: str, jitter: float, w: float,
            h: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` candidate centres at once (arrays), drawn as :func:`centre` draws one."""
    if placement == "semantic" and occ.hint in ("eyes", "mouth"):
        fx, fy = face_points(H, W)[occ.hint]
        d = rng.normal(0.0, jitter, (n, 2)) * (W, H)
        cx = np.clip(np.rint(fx + d[:, 0] + (0.5 - occ.anchor[0]) * w), 0, W - 1)
        cy = np.clip(np.rint(fy + d[:, 1] + (0.5 - occ.anchor[1]) * h), 0, H - 1)
        return cx.astype(int), cy.astype(int)
    return rng.integers(0, W, n), rng.integers(0, H, n)
