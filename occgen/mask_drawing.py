"""Procedural face masks drawn on a fitted face: ``draw_mask(image, face, kind, rng)``.

Each mask type is painted on the face's :class:`~occgen.face_landmarks.MaskFrame` (top edge over
the nose bridge and under the eyes, sides and bottom following cheeks, jaw and chin): surgical
(white, blue, green; pleats, ear loops), N95 (dome, straps), KN95 (folded halves, centre seam,
ear loops), cloth (solid, check, stripes, floral-like; ear loops) and gas (half-face respirator
with two cartridges and head straps). Edges are anti-aliased (sub-pixel polygon filling),
shading follows an ellipsoid fitted to the mask and the face's own left/right lighting, and the
colours are scaled to the brightness of the face they cover.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np

from occgen.face_landmarks import FaceShape, MaskFrame, lerp, mask_frame

MASK_TYPES: tuple[str, ...] = ("surgical", "N95", "KN95", "cloth", "gas")
SURGICAL_COLOURS = {"white": (232, 234, 236), "blue": (126, 172, 214), "green": (128, 192, 170)}
CLOTH_COLOURS = {"navy": (40, 52, 96), "black": (36, 36, 38), "red": (170, 40, 48), "grey": (128, 130, 134),
                 "pink": (222, 150, 172), "olive": (104, 112, 60), "beige": (204, 184, 150), "teal": (40, 128, 130)}
CLOTH_PATTERNS = ("solid", "check", "stripes", "floral")

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


def _clear_eyes(outline: np.ndarray, frame: MaskFrame) -> np.ndarray:
    """Push outline points within 0.3 eye distances (sideways) of an eye centre (the face's or the
    template's) down to the eyes' clearance line, so no mask covers an eye."""
    eyes_u, eye_v = frame.anchors["clear"]
    rel = outline - frame.centre
    u, v = rel @ frame.ex, rel @ frame.ey
    near = (np.abs(u[:, None] - eyes_u[None, :]) < 0.3 * frame.d).any(1)
    v = np.where(near, np.maximum(v, eye_v), v)
    return frame.centre + np.outer(u, frame.ex) + np.outer(v, frame.ey)


def _outline(kind: str, frame: MaskFrame) -> np.ndarray:
    return _clear_eyes(_outline_raw(kind, frame), frame)


def _outline_raw(kind: str, frame: MaskFrame) -> np.ndarray:
    a = frame.anchors
    jaw = a["jaw"]
    if kind in ("surgical", "cloth"):
        lift = 0.0 if kind == "surgical" else 0.04 * frame.d
        top = [a["cheek_l"], a["under_l"] - frame.ey * lift, a["bridge"], a["under_r"] - frame.ey * lift, a["cheek_r"]]
        side_r = [jaw[k] for k in (13, 12, 11, 10)]
        bottom = [lerp(jaw[9], a["chin"], 0.5), a["chin"], lerp(jaw[7], a["chin"], 0.5)]
        side_l = [jaw[k] for k in (6, 5, 4, 3)]
        return _smooth(np.array(top + side_r + bottom + side_l))
    if kind == "N95":
        def inner(k: int, t: float) -> np.ndarray:
            return lerp(jaw[k], a["jaw_centre"], t)

        top = [inner(2, 0.12), a["under_l"] + frame.ey * 0.05 * frame.d, a["bridge"] - frame.ey * 0.03 * frame.d,
               a["under_r"] + frame.ey * 0.05 * frame.d, inner(14, 0.12)]
        lower = [inner(12, 0.06), inner(10, 0.02), a["chin"], inner(6, 0.02), inner(4, 0.06)]
        return _smooth(np.array(top + lower))
    if kind == "KN95":
        top = [a["cheek_l"], a["under_l"], a["bridge"], a["under_r"], a["cheek_r"]]
        lower = [jaw[13], jaw[11], a["chin"] + frame.ey * 0.05 * frame.d, jaw[5], jaw[3]]
        return np.array(top + lower)  # straight folds, a point at the chin
    # gas: half-face respirator, wider and lower-set
    top = [jaw[1], a["under_l"] + frame.ey * 0.02 * frame.d, a["bridge"] - frame.ey * 0.02 * frame.d,
           a["under_r"] + frame.ey * 0.02 * frame.d, jaw[15]]
    lower = [jaw[13], jaw[11], a["chin"], jaw[5], jaw[3]]
    return _smooth(np.array(top + lower))


def _shading(frame: MaskFrame, shape: tuple[int, int], outline: np.ndarray, light: float) -> np.ndarray:
    """Ellipsoid shading of the mask surface: darker towards its rim, lit from the face's side."""
    h, w = shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    c = outline.mean(0)
    rel = np.stack([xs - c[0], ys - c[1]], -1)
    u = rel @ frame.ex.astype(np.float32)
    v = rel @ frame.ey.astype(np.float32)
    ru = max(float(np.ptp((outline - c) @ frame.ex)) / 2, 1.0)
    rv = max(float(np.ptp((outline - c) @ frame.ey)) / 2, 1.0)
    nu, nv = u / ru, v / rv
    nz = np.sqrt(np.clip(1 - 0.75 * nu**2 - 0.35 * nv**2, 0.05, 1))
    lambert = nz + light * nu * 0.35 - 0.12 * nv
    return np.clip(0.62 + 0.38 * lambert, 0.35, 1.1).astype(np.float32)


def _face_light(image: np.ndarray, frame: MaskFrame) -> tuple[float, float]:
    """Mean luminance of the lower face and its left/right balance (-1..1)."""
    lum = image.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    h, w = lum.shape
    x0, x1 = int(np.clip(frame.anchors["jaw"][:, 0].min(), 0, w - 2)), int(np.clip(frame.anchors["jaw"][:, 0].max(), 1, w - 1))
    y0 = int(np.clip(frame.anchors["bridge"][1] - 0.3 * frame.d, 0, h - 2))
    y1 = int(np.clip(frame.anchors["chin"][1], y0 + 2, h))
    region = lum[y0:y1, x0:x1 + 1]
    if region.size < 4:
        return 128.0, 0.0
    mid = int(np.clip(frame.anchors["nose"][0] - x0, 1, region.shape[1] - 1))
    left, right = float(region[:, :mid].mean()), float(region[:, mid:].mean())
    return float(region.mean()), float(np.clip((right - left) / max(left + right, 1) * 4, -1, 1))


def _pattern(kind: str, frame: MaskFrame, shape: tuple[int, int], rng: np.random.Generator,
             base: np.ndarray, second: np.ndarray) -> np.ndarray:
    """A cloth pattern in the face's frame (it tilts with the head): weight of the second colour."""
    h, w = shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    rel = np.stack([xs - frame.centre[0], ys - frame.centre[1]], -1)
    u = rel @ frame.ex.astype(np.float32)
    v = rel @ frame.ey.astype(np.float32)
    period = float(rng.uniform(0.16, 0.3)) * frame.d
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
        a = frame.anchors
        box_min = np.minimum(a["jaw"].min(0), a["bridge"]) - 2
        box_max = np.maximum(a["jaw"].max(0), a["chin"]) + 2
        for _ in range(n):
            cx, cy = rng.uniform(box_min, box_max)
            r = float(rng.uniform(0.05, 0.09)) * frame.d
            for k in range(5):
                ang = 2 * np.pi * k / 5 + float(rng.uniform(0, 1))
                px, py = cx + np.cos(ang) * r, cy + np.sin(ang) * r
                cv2.circle(weight, (int(px * _ONE), int(py * _ONE)), int(r * 0.7 * _ONE), 1.0, -1, cv2.LINE_AA, _SHIFT)
            cv2.circle(weight, (int(cx * _ONE), int(cy * _ONE)), int(r * 0.45 * _ONE), 0.5, -1, cv2.LINE_AA, _SHIFT)
        return weight
    return np.zeros(shape, np.float32)


def _colour_layer(shape, colour) -> np.ndarray:
    return np.broadcast_to(np.asarray(colour, np.float32), (*shape, 3)).copy()


Layer = tuple[np.ndarray, np.ndarray]  # (alpha 0..1, RGB colour), composited in order


@dataclass(frozen=True)
class MaskCanvas:
    """What every painter draws with: the crop's size, the face's mask frame, the mask outline,
    its shading, a fabric noise field and the face's left/right lighting balance."""

    shape: tuple[int, int]
    frame: MaskFrame
    outline: np.ndarray
    shading: np.ndarray
    noise: np.ndarray
    light: float


@dataclass
class Painted:
    """A painter's result: the variant name, the mask body's colour (before shading), the ear
    loops and straps drawn under the body, and the parts drawn over it."""

    variant: str
    colour: np.ndarray
    straps: list[Layer]
    parts: list[Layer] = field(default_factory=list)


def _straps(shape: tuple[int, int], segments, colour, opacity: float = 1.0, thickness: int = 1) -> list[Layer]:
    """One straight strap or ear loop per (start, end) segment."""
    return [(_line(shape, np.array([p0, p1]), thickness) * opacity, np.asarray(colour, np.float32))
            for p0, p1 in segments]


def _ear_loops(a: dict, lower_left: int, lower_right: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Ear loops from each cheek and from the jaw points ``lower_left``/``lower_right`` to the ears."""
    return [(a["cheek_l"], a["ear_l"]), (a["jaw"][lower_left], a["ear_l"]), (a["cheek_r"], a["ear_r"]),
            (a["jaw"][lower_right], a["ear_r"])]


def paint_surgical(c: MaskCanvas, rng: np.random.Generator) -> Painted:
    """A pleated surgical mask in white, blue or green, with ear loops."""
    a = c.frame.anchors
    name = str(rng.choice(list(SURGICAL_COLOURS)))
    base = np.asarray(SURGICAL_COLOURS[name], np.float32)
    colour = _colour_layer(c.shape, base)
    top = 0.5 * (a["under_l"] + a["under_r"])
    for t in (0.3, 0.52, 0.74):  # three pleats across the mask
        y_l = lerp(a["cheek_l"], a["jaw"][4], t)
        y_r = lerp(a["cheek_r"], a["jaw"][12], t)
        mid = lerp(top, a["chin"], t)
        pleat = _line(c.shape, _smooth(np.array([y_l, mid, y_r]), closed=False), 1)
        colour *= (1 - 0.22 * pleat)[..., None]
    colour *= (1 + 0.025 * c.noise)[..., None]
    return Painted(f"surgical-{name}", colour, _straps(c.shape, _ear_loops(a, 4, 12), base * 0.96, 0.9))


def paint_n95(c: MaskCanvas, rng: np.random.Generator) -> Painted:
    """An N95 dome with a darker rim and two head straps per side."""
    a, frame = c.frame.anchors, c.frame
    variant = "N95-" + str(rng.choice(["white", "cream"]))
    base = np.asarray((236, 236, 232) if variant.endswith("white") else (228, 220, 198), np.float32)
    colour = _colour_layer(c.shape, base) * (1 + 0.06 * c.noise)[..., None]
    rim = _line(c.shape, np.vstack([c.outline, c.outline[:1]]), 1)
    colour *= (1 - 0.18 * rim)[..., None]
    strap = np.asarray((60, 110, 190) if rng.random() < 0.5 else (230, 200, 60), np.float32)
    segments = []
    for side, ear in (("l", a["ear_l"]), ("r", a["ear_r"])):
        k_hi, k_lo = (2, 4) if side == "l" else (14, 12)
        p_hi = lerp(a["jaw"][k_hi], a["jaw_centre"], 0.12)
        p_lo = lerp(a["jaw"][k_lo], a["jaw_centre"], 0.06)
        segments += [(p_hi, ear - frame.ey * 0.25 * frame.d), (p_lo, ear + frame.ey * 0.35 * frame.d)]
    return Painted(variant, colour, _straps(c.shape, segments, strap))


def paint_kn95(c: MaskCanvas, rng: np.random.Generator) -> Painted:
    """A KN95: two folded halves lit differently, a centre seam, ear loops."""
    a, frame = c.frame.anchors, c.frame
    variant = "KN95-" + str(rng.choice(["white", "black", "grey"]))
    base = np.asarray({"KN95-white": (238, 238, 238), "KN95-black": (40, 40, 42),
                       "KN95-grey": (150, 152, 156)}[variant], np.float32)
    colour = _colour_layer(c.shape, base) * (1 + 0.03 * c.noise)[..., None]
    seam = _line(c.shape, np.array([a["bridge"], a["chin"] + frame.ey * 0.05 * frame.d]), 1)
    ys, xs = np.mgrid[0:c.shape[0], 0:c.shape[1]].astype(np.float32)
    side = ((np.stack([xs, ys], -1) - a["nose"].astype(np.float32)) @ frame.ex.astype(np.float32)) > 0
    fold = np.where(side, 1.0 + 0.08 * np.sign(c.light + 1e-3), 1.0 - 0.08 * np.sign(c.light + 1e-3))
    colour *= (fold * (1 - 0.3 * seam))[..., None]
    return Painted(variant, colour, _straps(c.shape, _ear_loops(a, 3, 13), base * 0.9, 0.9))


def paint_cloth(c: MaskCanvas, rng: np.random.Generator) -> Painted:
    """A cloth mask in one or two colours (solid, check, stripes, floral), a seam, ear loops."""
    a = c.frame.anchors
    pattern = str(rng.choice(CLOTH_PATTERNS))
    names = list(CLOTH_COLOURS)
    first = str(rng.choice(names))
    second = str(rng.choice([n for n in names if n != first]))
    variant = f"cloth-{pattern}-{first}" + ("" if pattern == "solid" else f"-{second}")
    c1, c2 = np.asarray(CLOTH_COLOURS[first], np.float32), np.asarray(CLOTH_COLOURS[second], np.float32)
    weight = _pattern(pattern, c.frame, c.shape, rng, c1, c2)[..., None]
    colour = c1 * (1 - weight) + c2 * weight
    colour *= (1 + 0.05 * c.noise)[..., None]
    seam = _line(c.shape, _smooth(np.array([a["bridge"], a["mouth"], a["chin"]]), closed=False), 1)
    colour *= (1 - 0.15 * seam)[..., None]
    return Painted(variant, colour, _straps(c.shape, _ear_loops(a, 4, 12), c1 * 0.9, 0.85))


def _ellipse(centre: np.ndarray, radius: float, squash: float, corners: int) -> np.ndarray:
    """``corners`` points on an ellipse of half-widths ``radius`` and ``radius × squash``."""
    angles = np.linspace(0, 2 * np.pi, corners, endpoint=False)
    return centre + radius * np.stack([np.cos(angles), np.sin(angles) * squash], 1)


def paint_gas(c: MaskCanvas, rng: np.random.Generator) -> Painted:
    """A half-face respirator: head straps under the body, two cartridges and a valve over it."""
    a, frame = c.frame.anchors, c.frame
    variant = "gas-" + str(rng.choice(["black", "olive"]))
    base = np.asarray((46, 46, 50) if variant.endswith("black") else (78, 84, 58), np.float32)
    colour = _colour_layer(c.shape, base) * (1 + 0.04 * c.noise)[..., None]
    straps: list[Layer] = []
    for side, ear in ((-1, a["ear_l"]), (1, a["ear_r"])):
        up = ear - frame.ey * 0.3 * frame.d  # the head strap runs up behind the ear
        anchor = a["jaw"][2] if side < 0 else a["jaw"][14]
        low = (a["jaw"][4 if side < 0 else 12], ear + frame.ey * 0.45 * frame.d)
        straps += _straps(c.shape, [(anchor, up), low], (30, 30, 32), thickness=2)
    body_shading = c.shading[..., None]
    parts: list[Layer] = []
    for side in (-1, 1):
        centre = lerp(a["mouth"], a["jaw"][4 if side < 0 else 12], 0.62)
        r = 0.26 * frame.d
        disc = _fill(c.shape, _ellipse(centre, r, 1.1, 24))
        ring = np.clip(disc - _fill(c.shape, _ellipse(centre, 0.6 * r, 1.1, 24)), 0, 1)
        cartridge = _colour_layer(c.shape, (96, 98, 104)) * body_shading
        cartridge *= (1 - 0.35 * ring)[..., None]
        parts.append((disc, cartridge))
    valve = _fill(c.shape, _ellipse(lerp(a["mouth"], a["chin"], 0.35), 0.14 * frame.d, 1.0, 16))
    parts.append((valve, _colour_layer(c.shape, (70, 72, 76)) * body_shading))
    return Painted(variant, colour, straps, parts)


PAINTERS: dict[str, Callable[[MaskCanvas, np.random.Generator], Painted]] = {
    "surgical": paint_surgical, "N95": paint_n95, "KN95": paint_kn95, "cloth": paint_cloth, "gas": paint_gas,
}


def draw_mask(image: np.ndarray, face: FaceShape, kind: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, str]:
    """Draw one procedural mask of ``kind`` on ``face``; returns (image, alpha 0..1, variant)."""
    shape = image.shape[:2]
    frame = mask_frame(face)
    outline = _outline(kind, frame)
    brightness, light = _face_light(image, frame)
    gain = float(np.clip((brightness / 150.0) ** 0.7, 0.4, 1.15))
    shading = _shading(frame, shape, outline, light)
    noise = cv2.GaussianBlur(rng.normal(0, 1, shape).astype(np.float32), (0, 0), 0.7)
    painted = PAINTERS[kind](MaskCanvas(shape, frame, outline, shading, noise, light), rng)
    body = (_fill(shape, outline), painted.colour * shading[..., None])
    return (*_composite(image, [*painted.straps, body, *painted.parts], gain), painted.variant)


def _composite(image: np.ndarray, layers: list[Layer], gain: float) -> tuple[np.ndarray, np.ndarray]:
    """Paint ``layers`` over ``image`` in order, colours scaled by ``gain``; returns the image and
    the combined alpha."""
    out = image.astype(np.float32)
    alpha = np.zeros(image.shape[:2], np.float32)
    for layer_alpha, layer_colour in layers:
        la = layer_alpha[..., None]
        out = out * (1 - la) + np.clip(layer_colour * gain, 0, 255) * la
        alpha = alpha + layer_alpha * (1 - alpha)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8), alpha
