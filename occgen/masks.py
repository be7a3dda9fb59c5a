"""Face masks on aligned crops: ``mask_face(image, rng, ...) -> (image, mask, info)``.

Landmarks (``FaceShape``), in order of preference:
    * ``dlib68``: dlib's 68-point shape predictor (``face_recognition_models`` ships the model)
      run on the crop inside the fixed face box of the aligned template, kept only when its eyes,
      nose and mouth agree with the crop's 5 points (within 0.3 × the eye distance);
    * ``manifest5``: the 5 points align-faces found (its ``manifest.csv``), mapped into the crop,
      driving the face-shape model below;
    * ``template5``: the crop's template points driving the same model; used when nothing else
      is available, and recorded with the reason, so a face is never dropped.

Face-shape model: the mean dlib-68 jaw line (points 0-16) and nose bridge (27-30) of 300
aligned LFW crops (every 40th image of the align-faces output, fixed face box), stored in
template coordinates; a similarity fitted from the template's 5 points to the face's 5 points
carries it onto the face. Yaw is estimated from the nose tip's sideways offset from the
eye-mouth midline (``asin(offset / (0.5 × eye distance))``) or, with dlib, from the nose's
distances to both sides of the jaw; the model narrows the far side of the face by
``sin|yaw|`` (MaskTheFace switches to left/right templates beyond ~13°).

Mask types are drawn procedurally on the fitted outline (top edge over the nose bridge and under
the eyes, sides and bottom following cheeks, jaw and chin): surgical (white, blue, green;
pleats, ear loops), N95 (dome, straps), KN95 (folded halves, centre seam, ear loops), cloth
(solid, check, stripes, floral-like; ear loops) and gas (half-face respirator with two
cartridges and head straps). Edges are anti-aliased (sub-pixel polygon filling), shading follows
an ellipsoid fitted to the mask and the face's own left/right lighting, and the colours are
scaled to the brightness of the face they cover. The saved mask is exactly the pixels where the
composited alpha exceeds 0.5.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from alob_common.dlib_models import SHAPE_68, dlib_model_path
from alob_common.geometry import (
    crop_template,
    fit_similarity,
    transform_points,
)

MASK_TYPES: tuple[str, ...] = ("surgical", "N95", "KN95", "cloth", "gas")
LANDMARK_METHODS = ("auto", "dlib", "model")

# Mean dlib-68 jaw (0-16) and nose bridge (27-30) over 300 aligned 112x96 LFW crops (see above).
JAW_MODEL_112x96 = np.array([
    [6.8, 54.8], [7.3, 65.2], [8.4, 75.5], [10.1, 85.7], [13.5, 95.3], [19.3, 103.4], [27.2, 109.4],
    [36.7, 113.2], [47.5, 113.9], [58.1, 112.9], [67.1, 108.9], [74.7, 102.6], [80.1, 94.4],
    [83.4, 84.8], [85.0, 74.7], [86.0, 64.6], [86.4, 54.3]])
BRIDGE_MODEL_112x96 = np.array([[47.1, 51.1], [47.2, 57.7], [47.3, 64.2], [47.5, 71.0]])
DLIB_BOX_112x96 = (6, 31, 81, 106)  # median dlib HOG face box on the same crops (left, top, right, bottom)
YAW_TEMPLATE_SWITCH = 13.0  # degrees; MaskTheFace's left/right template threshold

SURGICAL_COLOURS = {"white": (232, 234, 236), "blue": (126, 172, 214), "green": (128, 192, 170)}
CLOTH_COLOURS = {"navy": (40, 52, 96), "black": (36, 36, 38), "red": (170, 40, 48), "grey": (128, 130, 134),
                 "pink": (222, 150, 172), "olive": (104, 112, 60), "beige": (204, 184, 150), "teal": (40, 128, 130)}
CLOTH_PATTERNS = ("solid", "check", "stripes", "floral")


@dataclass(frozen=True)
class MaskConfig:
    """Which masks and how to find landmarks.

    ``types``: the mask types drawn from (uniformly per image). ``landmarks``: ``auto`` (dlib 68
    when installed, else the face-shape model), ``dlib`` (the same, but an error when dlib is
    missing) or ``model`` (never dlib). ``templates``: a MaskTheFace template folder whose
    templates replace the procedural drawing (fitted by homography from their six points).
    """

    types: tuple[str, ...] = MASK_TYPES
    landmarks: str = "auto"
    templates: str | None = None

    def __post_init__(self) -> None:
        unknown = [t for t in self.types if t not in MASK_TYPES]
        if unknown or not self.types:
            raise ValueError(f"unknown mask type(s) {', '.join(unknown) or '(none)'}: use {', '.join(MASK_TYPES)}")
        if self.landmarks not in LANDMARK_METHODS:
            raise ValueError(f"landmarks must be one of {', '.join(LANDMARK_METHODS)}")


@dataclass
class FaceShape:
    """Landmarks of one crop in pixels: 5 points (eyes, nose tip, mouth corners), the jaw
    (17 points, image-left to image-right), the nose bridge (4 points, top to nose tip)."""

    points5: np.ndarray
    jaw: np.ndarray
    bridge: np.ndarray
    yaw: float  # degrees; positive: nose turned towards the image's right
    source: str  # dlib68, manifest5 or template5
    reason: str = ""
    image_shape: tuple[int, int] = (112, 96)


def parse_mask_types(text: str | None) -> tuple[str, ...]:
    """``"surgical,N95"`` -> ("surgical", "N95"); case-insensitive; ValueError on unknown names."""
    if not text:
        return MASK_TYPES
    lookup = {t.lower(): t for t in MASK_TYPES}
    names = [v.strip() for v in text.split(",") if v.strip()]
    unknown = [n for n in names if n.lower() not in lookup]
    if unknown or not names:
        raise ValueError(f"unknown mask type(s) {', '.join(unknown) or '(none)'}: use {', '.join(MASK_TYPES)}")
    return tuple(dict.fromkeys(lookup[n.lower()] for n in names))


# --- landmarks ----------------------------------------------------------------------------------


def template_points(height: int, width: int) -> np.ndarray:
    """The 5 template points of an aligned crop (112x96; 112x112 is the same shifted by 8 px;
    other sizes scaled from 112x96)."""
    return crop_template(height, width)


@functools.lru_cache(maxsize=1)
def dlib_predictor():
    """dlib's 68-point shape predictor, or None when dlib or the model file is missing."""
    path = dlib_model_path(SHAPE_68)
    if path is None:
        return None
    import dlib

    return dlib.shape_predictor(str(path))


def _frame(points5: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Eye midpoint, unit vector along the eyes, unit vector down the face, eye distance."""
    eyes = points5[1] - points5[0]
    d = float(np.linalg.norm(eyes)) or 1.0
    ex = eyes / d
    ey = np.array([-ex[1], ex[0]])
    return (points5[0] + points5[1]) / 2, ex, ey, d


def yaw_from_points(points5: np.ndarray) -> float:
    """Yaw in degrees from the nose tip's offset from the eye-mouth midline (positive: right)."""
    centre, ex, _, d = _frame(points5)
    mid = (centre + (points5[3] + points5[4]) / 2) / 2
    offset = float((points5[2] - mid) @ ex)
    return math.degrees(math.asin(float(np.clip(offset / (0.5 * d), -1, 1))))


def model_shape(points5: np.ndarray, height: int, width: int, source: str, reason: str = "") -> FaceShape:
    """The face-shape model carried onto ``points5``, the far side narrowed by the yaw."""
    template = template_points(height, width)
    scale = np.array([width / 96.0, height / 112.0]) if (height, width) != (112, 112) else None
    shift = np.array([8.0, 0.0]) if (height, width) == (112, 112) else np.zeros(2)
    jaw_t = JAW_MODEL_112x96 * scale if scale is not None else JAW_MODEL_112x96 + shift
    bridge_t = BRIDGE_MODEL_112x96 * scale if scale is not None else BRIDGE_MODEL_112x96 + shift
    matrix = fit_similarity(template, points5)
    jaw, bridge = transform_points(jaw_t, matrix), transform_points(bridge_t, matrix)
    yaw = yaw_from_points(points5)
    _, ex, _, _ = _frame(points5)
    nose = points5[2]
    u = (jaw - nose) @ ex
    s = math.sin(math.radians(abs(yaw)))
    far = u * np.sign(yaw) > 0
    factor = np.where(far, 1 - 0.8 * s, 1 + 0.15 * s)
    jaw = jaw + np.outer(u * (factor - 1), ex)
    return FaceShape(points5, jaw, bridge, yaw, source, reason, (height, width))


def dlib_shape(image: np.ndarray, reference5: np.ndarray) -> tuple[FaceShape | None, str]:
    """dlib 68 on the crop's fixed face box; None and the reason when missing or implausible."""
    predictor = dlib_predictor()
    if predictor is None:
        return None, "dlib or its 68-point model not installed"
    import dlib

    h, w = image.shape[:2]
    sx, sy = w / 96.0, h / 112.0
    if (h, w) == (112, 112):
        sx, box = 1.0, (DLIB_BOX_112x96[0] + 8, DLIB_BOX_112x96[1], DLIB_BOX_112x96[2] + 8, DLIB_BOX_112x96[3])
    else:
        box = (round(DLIB_BOX_112x96[0] * sx), round(DLIB_BOX_112x96[1] * sy),
               round(DLIB_BOX_112x96[2] * sx), round(DLIB_BOX_112x96[3] * sy))
    shape = predictor(np.ascontiguousarray(image), dlib.rectangle(*[int(v) for v in box]))
    pts = np.array([(p.x, p.y) for p in shape.parts()], np.float64)
    points5 = np.array([pts[36:42].mean(0), pts[42:48].mean(0), pts[30], pts[48], pts[54]])
    _, _, _, d = _frame(reference5)
    error = float(np.linalg.norm(points5 - reference5, axis=1).mean())
    if error > 0.3 * d:
        return None, f"dlib landmarks implausible ({error:.1f} px from the 5 points)"
    jaw = pts[:17]
    if np.linalg.norm(jaw[16] - jaw[0]) < 1.2 * d:
        return None, "dlib jaw implausible (narrower than 1.2 eye distances)"
    _, ex, _, _ = _frame(points5)
    left = float((pts[30] - jaw[2]) @ ex)
    right = float((jaw[14] - pts[30]) @ ex)
    yaw = math.degrees(math.asin(float(np.clip((left - right) / max(left + right, 1e-6), -1, 1))))
    return FaceShape(points5, jaw, pts[27:31].copy(), yaw, "dlib68", "", (h, w)), ""


def fit_face(image: np.ndarray, points5: np.ndarray | None = None, method: str = "auto") -> FaceShape:
    """Landmarks of an aligned crop; never fails (falls back to the template, with the reason).

    ``points5``: the face's 5 points in crop pixels when known (align-faces' manifest), else None.
    """
    h, w = image.shape[:2]
    template = template_points(h, w)
    reason = ""
    if points5 is not None:
        points5 = np.asarray(points5, np.float64)
        _, _, _, d = _frame(points5)
        if not np.isfinite(points5).all() or np.linalg.norm(points5 - template, axis=1).max() > 0.6 * d:
            reason, points5 = "manifest landmarks off the template", None
    reference = points5 if points5 is not None else template
    if method in ("auto", "dlib"):
        shape, why = dlib_shape(image, reference)
        if shape is not None:
            return shape
        if dlib_predictor() is None:
            if method == "dlib":
                raise RuntimeError(why)
        else:
            reason = "; ".join(r for r in (reason, why) if r)
    if points5 is not None:
        return model_shape(points5, h, w, "manifest5", reason)
    return model_shape(template, h, w, "template5", reason or "no landmarks for this face")


# --- drawing helpers ----------------------------------------------------------------------------

_SHIFT = 4
_ONE = 1 << _SHIFT


def _fixed(points: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(points) * _ONE).astype(np.int32).reshape(-1, 1, 2)


def _fill(shape: tuple[int, int], points: np.ndarray) -> np.ndarray:
    """Anti-aliased coverage (0..1) of a polygon with sub-pixel vertices."""
    canvas = np.zeros(shape, np.uint8)
    cv2.fillPoly(canvas, [_fixed(points)], 255, cv2.LINE_AA, _SHIFT)
    return canvas.astype(np.float32) / 255.0


def _line(shape: tuple[int, int], points: np.ndarray, thickness: int) -> np.ndarray:
    canvas = np.zeros(shape, np.uint8)
    cv2.polylines(canvas, [_fixed(points)], False, 255, thickness, cv2.LINE_AA, _SHIFT)
    return canvas.astype(np.float32) / 255.0


def _smooth(points: np.ndarray, closed: bool = True, steps: int = 6) -> np.ndarray:
    """A Catmull-Rom curve through ``points``."""
    p = np.asarray(points, np.float64)
    n = len(p)
    out = []
    segments = n if closed else n - 1
    t = np.linspace(0, 1, steps, endpoint=False)[:, None]
    for i in range(segments):
        p0 = p[(i - 1) % n] if closed or i > 0 else p[0]
        p1, p2 = p[i], p[(i + 1) % n]
        p3 = p[(i + 2) % n] if closed or i + 2 < n else p[-1]
        out.append(0.5 * (2 * p1 + (-p0 + p2) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t**2
                          + (-p0 + 3 * p1 - 3 * p2 + p3) * t**3))
    if not closed:
        out.append(p[-1:])
    return np.concatenate(out)


def _lerp(a, b, t):
    return np.asarray(a) + (np.asarray(b) - np.asarray(a)) * t


@dataclass
class _Geometry:
    """The mask anchors of one face, in pixels."""

    shape: FaceShape
    centre: np.ndarray
    ex: np.ndarray
    ey: np.ndarray
    d: float
    anchors: dict = field(default_factory=dict)


def _geometry(face: FaceShape) -> _Geometry:
    p = face.points5
    centre, ex, ey, d = _frame(p)
    jaw = face.jaw
    nose = p[2]
    bridge = _lerp(face.bridge[0], nose, 0.42)
    eye_l, eye_r = p[0], p[1]
    mouth = (p[3] + p[4]) / 2
    under_l = _lerp(eye_l, p[3], 0.36)
    under_r = _lerp(eye_r, p[4], 0.36)
    down = ey * 0.1 * d
    jaw_out = jaw.copy()
    jaw_c = jaw.mean(0)
    for k in range(17):  # push the jaw line out a little: the mask sits on the skin, over the chin
        v = jaw[k] - np.array([nose[0], nose[1] - 0.2 * d])
        jaw_out[k] = jaw[k] + v / (np.linalg.norm(v) + 1e-6) * 0.06 * d
    top = {"bridge": bridge, "under_l": under_l, "under_r": under_r}
    _keep_clear(face, centre, ex, ey, d, jaw_out, top)
    bridge, under_l, under_r = top["bridge"], top["under_l"], top["under_r"]
    clear = (top["eyes_u"], top["eyes_v"])
    ear_l, ear_r = jaw[0] - ex * 0.04 * d, jaw[16] + ex * 0.04 * d
    ear_l = ear_l - ex * max(0.0, float((ear_l - centre) @ ex) - (clear[0].min() - 0.45 * d))
    ear_r = ear_r + ex * max(0.0, (clear[0].max() + 0.45 * d) - float((ear_r - centre) @ ex))
    anchors = {"bridge": bridge, "under_l": under_l, "under_r": under_r, "cheek_l": _lerp(jaw[1], jaw[2], 0.3),
               "cheek_r": _lerp(jaw[15], jaw[14], 0.3), "jaw": jaw_out, "mouth": mouth, "nose": nose,
               "chin": jaw_out[8] + down, "ear_l": ear_l, "ear_r": ear_r,
               "jaw_centre": jaw_c, "clear": clear}
    return _Geometry(face, centre, ex, ey, d, anchors)


def _keep_clear(face: FaceShape, centre, ex, ey, d: float, jaw: np.ndarray, top: dict) -> None:
    """Guarantees, in place: the jaw line stays 0.18 eye distances outside both mouth corners and
    the chin 0.3 below them, the top edge 0.18 above the nose tip and 0.22 below the eye centres,
    for the face's own 5 points and for the crop's template points alike (the two differ on faces
    the aligner could not bring exactly onto the template)."""
    h, w = face.image_shape
    both = np.stack([face.points5, template_points(h, w)])

    def uv(p):
        q = np.asarray(p) - centre
        return np.array([q @ ex, q @ ey])

    def xy(u, v):
        return centre + u * ex + v * ey

    pts = np.array([[uv(p) for p in five] for five in both])  # (2, 5, 2)
    left_u = pts[:, 3, 0].min() - 0.18 * d
    right_u = pts[:, 4, 0].max() + 0.18 * d
    chin_v = pts[:, 3:5, 1].max() + 0.3 * d
    for k in range(2, 7):
        u, v = uv(jaw[k])
        jaw[k] = xy(min(u, left_u), v)
    for k in range(10, 15):
        u, v = uv(jaw[k])
        jaw[k] = xy(max(u, right_u), v)
    for k in range(6, 11):
        u, v = uv(jaw[k])
        jaw[k] = xy(u, max(v, chin_v))
    eye_v = pts[:, 0:2, 1].max() + 0.22 * d
    top["eyes_u"] = pts[:, 0:2, 0].ravel()
    top["eyes_v"] = eye_v
    nose_v = pts[:, 2, 1].min() - 0.18 * d
    u, v = uv(top["bridge"])
    top["bridge"] = xy(u, max(eye_v, min(v, nose_v)) if eye_v <= nose_v else (eye_v + nose_v) / 2)
    for name in ("under_l", "under_r"):
        u, v = uv(top[name])
        top[name] = xy(u, max(v, eye_v))


def _clear_eyes(outline: np.ndarray, g: _Geometry) -> np.ndarray:
    """Push outline points within 0.3 eye distances (sideways) of an eye centre (the face's or the
    template's) down to the eyes' clearance line, so no mask covers an eye."""
    eyes_u, eye_v = g.anchors["clear"]
    rel = outline - g.centre
    u, v = rel @ g.ex, rel @ g.ey
    near = (np.abs(u[:, None] - eyes_u[None, :]) < 0.3 * g.d).any(1)
    v = np.where(near, np.maximum(v, eye_v), v)
    return g.centre + np.outer(u, g.ex) + np.outer(v, g.ey)


def _outline(kind: str, g: _Geometry) -> np.ndarray:
    return _clear_eyes(_outline_raw(kind, g), g)


def _outline_raw(kind: str, g: _Geometry) -> np.ndarray:
    a = g.anchors
    jaw = a["jaw"]
    if kind in ("surgical", "cloth"):
        lift = 0.0 if kind == "surgical" else 0.04 * g.d
        top = [a["cheek_l"], a["under_l"] - g.ey * lift, a["bridge"], a["under_r"] - g.ey * lift, a["cheek_r"]]
        side_r = [jaw[k] for k in (13, 12, 11, 10)]
        bottom = [_lerp(jaw[9], a["chin"], 0.5), a["chin"], _lerp(jaw[7], a["chin"], 0.5)]
        side_l = [jaw[k] for k in (6, 5, 4, 3)]
        return _smooth(np.array(top + side_r + bottom + side_l))
    if kind == "N95":
        def inner(k: int, t: float) -> np.ndarray:
            return _lerp(jaw[k], a["jaw_centre"], t)

        top = [inner(2, 0.12), a["under_l"] + g.ey * 0.05 * g.d, a["bridge"] - g.ey * 0.03 * g.d,
               a["under_r"] + g.ey * 0.05 * g.d, inner(14, 0.12)]
        lower = [inner(12, 0.06), inner(10, 0.02), a["chin"], inner(6, 0.02), inner(4, 0.06)]
        return _smooth(np.array(top + lower))
    if kind == "KN95":
        top = [a["cheek_l"], a["under_l"], a["bridge"], a["under_r"], a["cheek_r"]]
        lower = [jaw[13], jaw[11], a["chin"] + g.ey * 0.05 * g.d, jaw[5], jaw[3]]
        return np.array(top + lower)  # straight folds, a point at the chin
    # gas: half-face respirator, wider and lower-set
    top = [jaw[1], a["under_l"] + g.ey * 0.02 * g.d, a["bridge"] - g.ey * 0.02 * g.d,
           a["under_r"] + g.ey * 0.02 * g.d, jaw[15]]
    lower = [jaw[13], jaw[11], a["chin"], jaw[5], jaw[3]]
    return _smooth(np.array(top + lower))


def _shading(g: _Geometry, shape: tuple[int, int], outline: np.ndarray, light: float) -> np.ndarray:
    """Ellipsoid shading of the mask surface: darker towards its rim, lit from the face's side."""
    h, w = shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    c = outline.mean(0)
    rel = np.stack([xs - c[0], ys - c[1]], -1)
    u = rel @ g.ex.astype(np.float32)
    v = rel @ g.ey.astype(np.float32)
    ru = max(float(np.ptp((outline - c) @ g.ex)) / 2, 1.0)
    rv = max(float(np.ptp((outline - c) @ g.ey)) / 2, 1.0)
    nu, nv = u / ru, v / rv
    nz = np.sqrt(np.clip(1 - 0.75 * nu**2 - 0.35 * nv**2, 0.05, 1))
    lambert = nz + light * nu * 0.35 - 0.12 * nv
    return np.clip(0.62 + 0.38 * lambert, 0.35, 1.1).astype(np.float32)


def _face_light(image: np.ndarray, g: _Geometry) -> tuple[float, float]:
    """Mean luminance of the lower face and its left/right balance (-1..1)."""
    lum = image.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    h, w = lum.shape
    x0, x1 = int(np.clip(g.anchors["jaw"][:, 0].min(), 0, w - 2)), int(np.clip(g.anchors["jaw"][:, 0].max(), 1, w - 1))
    y0 = int(np.clip(g.anchors["bridge"][1] - 0.3 * g.d, 0, h - 2))
    y1 = int(np.clip(g.anchors["chin"][1], y0 + 2, h))
    region = lum[y0:y1, x0:x1 + 1]
    if region.size < 4:
        return 128.0, 0.0
    mid = int(np.clip(g.anchors["nose"][0] - x0, 1, region.shape[1] - 1))
    left, right = float(region[:, :mid].mean()), float(region[:, mid:].mean())
    return float(region.mean()), float(np.clip((right - left) / max(left + right, 1) * 4, -1, 1))


def _pattern(kind: str, g: _Geometry, shape: tuple[int, int], rng: np.random.Generator,
             base: np.ndarray, second: np.ndarray) -> np.ndarray:
    """A cloth pattern in the face's frame (it tilts with the head): weight of the second colour."""
    h, w = shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    rel = np.stack([xs - g.centre[0], ys - g.centre[1]], -1)
    u = rel @ g.ex.astype(np.float32)
    v = rel @ g.ey.astype(np.float32)
    period = float(rng.uniform(0.16, 0.3)) * g.d
    phase = rng.uniform(0, period, 2).astype(np.float32)
    if kind == "check":
        a = (np.floor((u + phase[0]) / period) + np.floor((v + phase[1]) / period)) % 2
        return a.astype(np.float32) * 0.85
    if kind == "stripes":
        s = np.sin(2 * np.pi * (v + phase[1]) / period)
        return np.clip(s * 3, 0, 1).astype(np.float32)
    if kind == "floral":
        weight = np.zeros(shape, np.float32)
        n = int(rng.integers(14, 24))
        a = g.anchors
        box_min = np.minimum(a["jaw"].min(0), a["bridge"]) - 2
        box_max = np.maximum(a["jaw"].max(0), a["chin"]) + 2
        for _ in range(n):
            cx, cy = rng.uniform(box_min, box_max)
            r = float(rng.uniform(0.05, 0.09)) * g.d
            for k in range(5):
                ang = 2 * np.pi * k / 5 + float(rng.uniform(0, 1))
                px, py = cx + np.cos(ang) * r, cy + np.sin(ang) * r
                cv2.circle(weight, (int(px * _ONE), int(py * _ONE)), int(r * 0.7 * _ONE), 1.0, -1, cv2.LINE_AA, _SHIFT)
            cv2.circle(weight, (int(cx * _ONE), int(cy * _ONE)), int(r * 0.45 * _ONE), 0.5, -1, cv2.LINE_AA, _SHIFT)
        return weight
    return np.zeros(shape, np.float32)


def _colour_layer(shape, colour) -> np.ndarray:
    return np.broadcast_to(np.asarray(colour, np.float32), (*shape, 3)).copy()


def draw_mask(image: np.ndarray, face: FaceShape, kind: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, str]:
    """Draw one procedural mask of ``kind`` on ``face``; returns (image, alpha 0..1, variant)."""
    h, w = image.shape[:2]
    shape = (h, w)
    g = _geometry(face)
    a = g.anchors
    outline = _outline(kind, g)
    brightness, light = _face_light(image, g)
    gain = float(np.clip((brightness / 150.0) ** 0.7, 0.4, 1.15))
    shading = _shading(g, shape, outline, light)
    body = _fill(shape, outline)
    layers: list[tuple[np.ndarray, np.ndarray]] = []
    noise = rng.normal(0, 1, shape).astype(np.float32)
    noise = cv2.GaussianBlur(noise, (0, 0), 0.7)
    if kind == "surgical":
        name = str(rng.choice(list(SURGICAL_COLOURS)))
        variant = f"surgical-{name}"
        base = np.asarray(SURGICAL_COLOURS[name], np.float32)
        loop_colour = base * 0.96
        colour = _colour_layer(shape, base)
        top = 0.5 * (a["under_l"] + a["under_r"])
        for t in (0.3, 0.52, 0.74):  # three pleats across the mask
            y_l = _lerp(a["cheek_l"], a["jaw"][4], t)
            y_r = _lerp(a["cheek_r"], a["jaw"][12], t)
            mid = _lerp(top, a["chin"], t)
            pleat = _line(shape, _smooth(np.array([y_l, mid, y_r]), closed=False), 1)
            colour *= (1 - 0.22 * pleat)[..., None]
        colour *= (1 + 0.025 * noise)[..., None]
        loops = [(a["cheek_l"], a["ear_l"]), (a["jaw"][4], a["ear_l"]), (a["cheek_r"], a["ear_r"]),
                 (a["jaw"][12], a["ear_r"])]
        for p0, p1 in loops:
            layers.append((_line(shape, np.array([p0, p1]), 1) * 0.9, np.asarray(loop_colour, np.float32)))
    elif kind == "N95":
        variant = "N95-" + str(rng.choice(["white", "cream"]))
        base = np.asarray((236, 236, 232) if variant.endswith("white") else (228, 220, 198), np.float32)
        colour = _colour_layer(shape, base) * (1 + 0.06 * noise)[..., None]
        rim = _line(shape, np.vstack([outline, outline[:1]]), 1)
        colour *= (1 - 0.18 * rim)[..., None]
        strap = np.asarray((60, 110, 190) if rng.random() < 0.5 else (230, 200, 60), np.float32)
        for side, ear in (("l", a["ear_l"]), ("r", a["ear_r"])):
            k_hi, k_lo = (2, 4) if side == "l" else (14, 12)
            p_hi = _lerp(a["jaw"][k_hi], a["jaw_centre"], 0.12)
            p_lo = _lerp(a["jaw"][k_lo], a["jaw_centre"], 0.06)
            for p, target in ((p_hi, ear - g.ey * 0.25 * g.d), (p_lo, ear + g.ey * 0.35 * g.d)):
                layers.append((_line(shape, np.array([p, target]), 1), np.asarray(strap, np.float32)))
    elif kind == "KN95":
        variant = "KN95-" + str(rng.choice(["white", "black", "grey"]))
        base = np.asarray({"KN95-white": (238, 238, 238), "KN95-black": (40, 40, 42),
                           "KN95-grey": (150, 152, 156)}[variant], np.float32)
        colour = _colour_layer(shape, base) * (1 + 0.03 * noise)[..., None]
        seam = _line(shape, np.array([a["bridge"], a["chin"] + g.ey * 0.05 * g.d]), 1)
        h_, w_ = shape
        ys, xs = np.mgrid[0:h_, 0:w_].astype(np.float32)
        side = ((np.stack([xs, ys], -1) - a["nose"].astype(np.float32)) @ g.ex.astype(np.float32)) > 0
        fold = np.where(side, 1.0 + 0.08 * np.sign(light + 1e-3), 1.0 - 0.08 * np.sign(light + 1e-3))
        colour *= (fold * (1 - 0.3 * seam))[..., None]
        loop_colour = base * 0.9
        for p0, p1 in ((a["cheek_l"], a["ear_l"]), (a["jaw"][3], a["ear_l"]), (a["cheek_r"], a["ear_r"]),
                       (a["jaw"][13], a["ear_r"])):
            layers.append((_line(shape, np.array([p0, p1]), 1) * 0.9, np.asarray(loop_colour, np.float32)))
    elif kind == "cloth":
        pattern = str(rng.choice(CLOTH_PATTERNS))
        names = list(CLOTH_COLOURS)
        first = str(rng.choice(names))
        second = str(rng.choice([n for n in names if n != first]))
        variant = f"cloth-{pattern}-{first}" + ("" if pattern == "solid" else f"-{second}")
        c1, c2 = np.asarray(CLOTH_COLOURS[first], np.float32), np.asarray(CLOTH_COLOURS[second], np.float32)
        weight = _pattern(pattern, g, shape, rng, c1, c2)[..., None]
        colour = c1 * (1 - weight) + c2 * weight
        colour *= (1 + 0.05 * noise)[..., None]
        seam = _line(shape, _smooth(np.array([a["bridge"], a["mouth"], a["chin"]]), closed=False), 1)
        colour *= (1 - 0.15 * seam)[..., None]
        for p0, p1 in ((a["cheek_l"], a["ear_l"]), (a["jaw"][4], a["ear_l"]), (a["cheek_r"], a["ear_r"]),
                       (a["jaw"][12], a["ear_r"])):
            layers.append((_line(shape, np.array([p0, p1]), 1) * 0.85, np.asarray(c1 * 0.9, np.float32)))
    else:  # gas
        variant = "gas-" + str(rng.choice(["black", "olive"]))
        base = np.asarray((46, 46, 50) if variant.endswith("black") else (78, 84, 58), np.float32)
        colour = _colour_layer(shape, base) * (1 + 0.04 * noise)[..., None]
        for side, ear in ((-1, a["ear_l"]), (1, a["ear_r"])):
            up = ear - g.ey * 0.3 * g.d  # the head strap runs up behind the ear
            anchor = a["jaw"][2] if side < 0 else a["jaw"][14]
            layers.append((_line(shape, np.array([anchor, up]), 2), np.asarray((30, 30, 32), np.float32)))
            layers.append((_line(shape, np.array([a["jaw"][4 if side < 0 else 12], ear + g.ey * 0.45 * g.d]), 2),
                           np.asarray((30, 30, 32), np.float32)))
    body_shading = shading[..., None]
    layers.append((body, colour * body_shading))
    if kind == "gas":  # two cartridges and a valve, drawn over the body
        for side in (-1, 1):
            c = _lerp(a["mouth"], a["jaw"][4 if side < 0 else 12], 0.62)
            r = 0.26 * g.d
            disc = _fill(shape, c + r * np.stack([np.cos(np.linspace(0, 2 * np.pi, 24, endpoint=False)),
                                                    np.sin(np.linspace(0, 2 * np.pi, 24, endpoint=False)) * 1.1], 1))
            ring = np.clip(disc - _fill(shape, c + 0.6 * r * np.stack(
                [np.cos(np.linspace(0, 2 * np.pi, 24, endpoint=False)),
                 np.sin(np.linspace(0, 2 * np.pi, 24, endpoint=False)) * 1.1], 1)), 0, 1)
            cart = _colour_layer(shape, (96, 98, 104)) * body_shading
            cart *= (1 - 0.35 * ring)[..., None]
            layers.append((disc, cart))
        valve_c = _lerp(a["mouth"], a["chin"], 0.35)
        valve = _fill(shape, valve_c + 0.14 * g.d * np.stack(
            [np.cos(np.linspace(0, 2 * np.pi, 16, endpoint=False)), np.sin(np.linspace(0, 2 * np.pi, 16, endpoint=False))], 1))
        layers.append((valve, _colour_layer(shape, (70, 72, 76)) * body_shading))
    out = image.astype(np.float32)
    alpha = np.zeros(shape, np.float32)
    for layer_alpha, layer_colour in layers:
        la = layer_alpha[..., None]
        out = out * (1 - la) + np.clip(layer_colour * gain, 0, 255) * la
        alpha = alpha + layer_alpha * (1 - alpha)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8), alpha, variant


def mask_face(image: np.ndarray, rng: np.random.Generator, config: MaskConfig = MaskConfig(),
              points5: np.ndarray | None = None, templates=None) -> tuple[np.ndarray, np.ndarray, dict]:
    """Put one face mask on an aligned RGB uint8 crop.

    Returns ``(image, mask, info)``: the masked image, the exact boolean per-pixel mask (composited
    alpha > 0.5) and the facts for the manifest: ``type``, ``variant``, ``landmarks`` (dlib68,
    manifest5 or template5), ``reason`` (why landmarks fell back), ``yaw`` (degrees), ``ratio``
    (coverage) and the mask's bounding box ``x``, ``y``, ``w``, ``h``. ``templates``: a loaded
    :class:`occgen.masktheface.TemplateSet` (else ``config.templates`` is loaded once and cached).
    The same (image, rng state, config, points5) always gives the same bytes.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError("image must be an RGB uint8 array (H, W, 3)")
    kind = str(config.types[int(rng.integers(len(config.types)))])
    face = fit_face(image, points5, "model" if config.landmarks == "model" else config.landmarks)
    if templates is None and config.templates:
        from occgen.masktheface import load_templates_cached

        templates = load_templates_cached(config.templates)
    if templates is not None and templates.has(kind):
        out, alpha, variant = templates.apply(image, face, kind, rng)
    else:
        out, alpha, variant = draw_mask(image, face, kind, rng)
    mask = alpha > 0.5
    ys, xs = np.nonzero(mask)
    box = (int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)) if len(xs) else (0, 0, 0, 0)
    info = {"type": kind, "variant": variant, "landmarks": face.source, "reason": face.reason,
            "yaw": round(face.yaw, 2), "ratio": float(mask.mean()), "x": box[0], "y": box[1], "w": box[2], "h": box[3]}
    return out, mask, info


def six_points(face: FaceShape) -> np.ndarray:
    """MaskTheFace's six anchors on a face, a..f: left cheek, nose bridge, right cheek (top row),
    lower left jaw, chin, lower right jaw (bottom row)."""
    g = _geometry(face)
    a = g.anchors
    jaw = a["jaw"]
    return np.array([_lerp(jaw[1], jaw[2], 0.5), _lerp(face.bridge[1], face.bridge[2], 0.5),
                     _lerp(jaw[15], jaw[14], 0.5), jaw[4], a["chin"], jaw[12]], np.float64)


def crop_landmarks(table_row: dict, height: int, width: int) -> np.ndarray | None:
    """The 5 landmarks of an align-faces manifest row (source-image pixels) mapped into the crop,
    or None when the row has none."""
    try:
        src = np.array([[float(table_row[f"lx{i}"]), float(table_row[f"ly{i}"])] for i in range(1, 6)])
    except (KeyError, ValueError, TypeError):
        return None
    if not np.isfinite(src).all():
        return None
    template = template_points(height, width)
    return transform_points(src, fit_similarity(src, template))

