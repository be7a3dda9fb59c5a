"""Landmarks of an aligned face crop and the anchor points a face mask is fitted to.

``fit_face`` finds a :class:`FaceShape` (5 points, jaw line, nose bridge, yaw), in order of
preference:
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

``mask_frame`` turns a face shape into the points every mask is drawn on (nose bridge, under the
eyes, cheeks, jaw, chin, ears), kept clear of the eyes and outside the mouth; ``six_points``
gives MaskTheFace's six template anchors from the same frame.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import numpy as np

from alob_common.dlib_models import SHAPE_68, dlib_model_path
from alob_common.geometry import crop_template, fit_similarity, transform_points
from occgen.library import OccgenError

LANDMARK_METHODS = ("auto", "dlib", "model")

# Mean dlib-68 jaw (0-16) and nose bridge (27-30) over 300 aligned 112x96 LFW crops (see above).
JAW_MODEL_112x96 = np.array([
    [6.8, 54.8], [7.3, 65.2], [8.4, 75.5], [10.1, 85.7], [13.5, 95.3], [19.3, 103.4], [27.2, 109.4],
    [36.7, 113.2], [47.5, 113.9], [58.1, 112.9], [67.1, 108.9], [74.7, 102.6], [80.1, 94.4],
    [83.4, 84.8], [85.0, 74.7], [86.0, 64.6], [86.4, 54.3]])
BRIDGE_MODEL_112x96 = np.array([[47.1, 51.1], [47.2, 57.7], [47.3, 64.2], [47.5, 71.0]])
DLIB_BOX_112x96 = (6, 31, 81, 106)  # median dlib HOG face box on the same crops (left, top, right, bottom)
YAW_TEMPLATE_SWITCH = 13.0  # degrees; MaskTheFace's left/right template threshold


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


@functools.lru_cache(maxsize=1)
def dlib_predictor():
    """dlib's 68-point shape predictor, or None when dlib or the model file is missing."""
    path = dlib_model_path(SHAPE_68)
    if path is None:
        return None
    import dlib

    return dlib.shape_predictor(str(path))


def _eye_axes(points5: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """The face's axes from its 5 points: eye midpoint, unit vector along the eyes, unit vector
    down the face, eye distance."""
    eyes = points5[1] - points5[0]
    d = float(np.linalg.norm(eyes)) or 1.0
    ex = eyes / d
    ey = np.array([-ex[1], ex[0]])
    return (points5[0] + points5[1]) / 2, ex, ey, d


def yaw_from_points(points5: np.ndarray) -> float:
    """Yaw in degrees from the nose tip's offset from the eye-mouth midline (positive: right)."""
    centre, ex, _, d = _eye_axes(points5)
    mid = (centre + (points5[3] + points5[4]) / 2) / 2
    offset = float((points5[2] - mid) @ ex)
    return math.degrees(math.asin(float(np.clip(offset / (0.5 * d), -1, 1))))


def model_shape(points5: np.ndarray, height: int, width: int, source: str, reason: str = "") -> FaceShape:
    """The face-shape model carried onto ``points5``, the far side narrowed by the yaw."""
    template = crop_template(height, width)
    scale = np.array([width / 96.0, height / 112.0]) if (height, width) != (112, 112) else None
    shift = np.array([8.0, 0.0]) if (height, width) == (112, 112) else np.zeros(2)
    jaw_t = JAW_MODEL_112x96 * scale if scale is not None else JAW_MODEL_112x96 + shift
    bridge_t = BRIDGE_MODEL_112x96 * scale if scale is not None else BRIDGE_MODEL_112x96 + shift
    matrix = fit_similarity(template, points5)
    jaw, bridge = transform_points(jaw_t, matrix), transform_points(bridge_t, matrix)
    yaw = yaw_from_points(points5)
    _, ex, _, _ = _eye_axes(points5)
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
    _, _, _, d = _eye_axes(reference5)
    error = float(np.linalg.norm(points5 - reference5, axis=1).mean())
    if error > 0.3 * d:
        return None, f"dlib landmarks implausible ({error:.1f} px from the 5 points)"
    jaw = pts[:17]
    if np.linalg.norm(jaw[16] - jaw[0]) < 1.2 * d:
        return None, "dlib jaw implausible (narrower than 1.2 eye distances)"
    _, ex, _, _ = _eye_axes(points5)
    left = float((pts[30] - jaw[2]) @ ex)
    right = float((jaw[14] - pts[30]) @ ex)
    yaw = math.degrees(math.asin(float(np.clip((left - right) / max(left + right, 1e-6), -1, 1))))
    return FaceShape(points5, jaw, pts[27:31].copy(), yaw, "dlib68", "", (h, w)), ""


def fit_face(image: np.ndarray, points5: np.ndarray | None = None, method: str = "auto") -> FaceShape:
    """Landmarks of an aligned crop; never fails (falls back to the template, with the reason),
    except for ``method="dlib"`` without dlib (OccgenError).

    ``points5``: the face's 5 points in crop pixels when known (align-faces' manifest), else None.
    """
    h, w = image.shape[:2]
    template = crop_template(h, w)
    reason = ""
    if points5 is not None:
        points5 = np.asarray(points5, np.float64)
        _, _, _, d = _eye_axes(points5)
        if not np.isfinite(points5).all() or np.linalg.norm(points5 - template, axis=1).max() > 0.6 * d:
            reason, points5 = "manifest landmarks off the template", None
    reference = points5 if points5 is not None else template
    if method in ("auto", "dlib"):
        shape, why = dlib_shape(image, reference)
        if shape is not None:
            return shape
        if dlib_predictor() is None:
            if method == "dlib":
                raise OccgenError(f"--landmarks dlib: {why}")
        else:
            reason = "; ".join(r for r in (reason, why) if r)
    if points5 is not None:
        return model_shape(points5, h, w, "manifest5", reason)
    return model_shape(template, h, w, "template5", reason or "no landmarks for this face")


def lerp(a, b, t: float) -> np.ndarray:
    """The point a fraction ``t`` of the way from ``a`` to ``b``."""
    return np.asarray(a) + (np.asarray(b) - np.asarray(a)) * t


@dataclass
class MaskFrame:
    """One face's axes (eye midpoint ``centre``, unit vectors ``ex`` along the eyes and ``ey``
    down the face, eye distance ``d``) and the named points a mask is drawn on, in pixels."""

    face: FaceShape
    centre: np.ndarray
    ex: np.ndarray
    ey: np.ndarray
    d: float
    anchors: dict = field(default_factory=dict)


def mask_frame(face: FaceShape) -> MaskFrame:
    """The points every mask is drawn on: nose bridge, under the eyes, cheeks, the jaw pushed a
    little outwards, chin, ears; kept clear of the eyes and outside the mouth (``_keep_clear``)."""
    p = face.points5
    centre, ex, ey, d = _eye_axes(p)
    jaw = face.jaw
    nose = p[2]
    bridge = lerp(face.bridge[0], nose, 0.42)
    eye_l, eye_r = p[0], p[1]
    mouth = (p[3] + p[4]) / 2
    under_l = lerp(eye_l, p[3], 0.36)
    under_r = lerp(eye_r, p[4], 0.36)
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
    anchors = {"bridge": bridge, "under_l": under_l, "under_r": under_r, "cheek_l": lerp(jaw[1], jaw[2], 0.3),
               "cheek_r": lerp(jaw[15], jaw[14], 0.3), "jaw": jaw_out, "mouth": mouth, "nose": nose,
               "chin": jaw_out[8] + down, "ear_l": ear_l, "ear_r": ear_r,
               "jaw_centre": jaw_c, "clear": clear}
    return MaskFrame(face, centre, ex, ey, d, anchors)


def _keep_clear(face: FaceShape, centre, ex, ey, d: float, jaw: np.ndarray, top: dict) -> None:
    """Guarantees, in place: the jaw line stays 0.18 eye distances outside both mouth corners and
    the chin 0.3 below them, the top edge 0.18 above the nose tip and 0.22 below the eye centres,
    for the face's own 5 points and for the crop's template points alike (the two differ on faces
    the aligner could not bring exactly onto the template)."""
    h, w = face.image_shape
    both = np.stack([face.points5, crop_template(h, w)])

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


def six_points(face: FaceShape) -> np.ndarray:
    """MaskTheFace's six anchors on a face, a..f: left cheek, nose bridge, right cheek (top row),
    lower left jaw, chin, lower right jaw (bottom row)."""
    a = mask_frame(face).anchors
    jaw = a["jaw"]
    return np.array([lerp(jaw[1], jaw[2], 0.5), lerp(face.bridge[1], face.bridge[2], 0.5),
                     lerp(jaw[15], jaw[14], 0.5), jaw[4], a["chin"], jaw[12]], np.float64)


def crop_landmarks(table_row: dict, height: int, width: int) -> np.ndarray | None:
    """The 5 landmarks of an align-faces manifest row (source-image pixels) mapped into the crop,
    or None when the row has none."""
    try:
        src = np.array([[float(table_row[f"lx{i}"]), float(table_row[f"ly{i}"])] for i in range(1, 6)])
    except (KeyError, ValueError, TypeError):
        return None
    if not np.isfinite(src).all():
        return None
    template = crop_template(height, width)
    return transform_points(src, fit_similarity(src, template))

