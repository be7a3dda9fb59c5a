"""Procedural generator of the project's own occluder library (``assets/occluders/``).

Every occluder is drawn with OpenCV and numpy from a seeded generator, so the committed PNGs can
be rebuilt byte for byte with ``occgen assets --regenerate``; no third-party image is used.
Shapes are drawn 4× supersampled into a premultiplied RGBA canvas and reduced with area
averaging, which gives clean anti-aliased alpha edges.

Native pixel sizes follow FROM's convention that ``--factor F`` multiplies the occluder's own
size: each category has a design size relative to a 112×96 face, scaled by ``NATIVE_SCALE``,
chosen so that FROM's rectangle mode on this library gives FROM's published coverage
(factor 2.0 → about 43 %, factor 3.0 → about 52 % of the crop).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import pandas as pd

SS = 4  # supersampling factor of the drawing canvas
FACE_W, FACE_H = 96, 112
NATIVE_SCALE = 1.03
VARIANTS = 7
BACKGROUND = (238, 238, 238)  # RGB stored under transparent pixels; what FROM's rect mode pastes
SEED = 20231123

# category: (width, height as fractions of a 112x96 face, placement hint, anchor x, anchor y)
CATEGORIES: dict[str, tuple[float, float, str, float, float]] = {
    "book_cover": (0.45, 0.56, "anywhere", 0.5, 0.5),
    "cup": (0.38, 0.42, "anywhere", 0.5, 0.5),
    "eye_mask": (0.76, 0.28, "eyes", 0.5, 0.45),
    "eyeglasses": (0.80, 0.25, "eyes", 0.5, 0.5),
    "hand": (0.50, 0.62, "anywhere", 0.5, 0.5),
    "mouth_mask": (0.72, 0.42, "mouth", 0.5, 0.45),
    "phone": (0.28, 0.50, "anywhere", 0.5, 0.5),
    "scarf": (0.90, 0.48, "mouth", 0.5, 0.3),
    "sunglasses": (0.80, 0.28, "eyes", 0.5, 0.5),
}


class Canvas:
    """A supersampled premultiplied-RGBA drawing surface addressed in output pixels."""

    def __init__(self, w: int, h: int):
        self.w, self.h = w, h
        self.W, self.H = w * SS, h * SS
        self.prgb = np.zeros((self.H, self.W, 3), np.float32)
        self.alpha = np.zeros((self.H, self.W), np.float32)
        ys, xs = np.mgrid[0 : self.H, 0 : self.W].astype(np.float32)
        self.u, self.v = (xs + 0.5) / self.W, (ys + 0.5) / self.H  # normalised coordinates

    def pt(self, u: float, v: float) -> tuple[int, int]:
        return int(round(u * self.W)), int(round(v * self.H))

    def len(self, d: float) -> int:
        return max(1, int(round(d * self.W)))

    def blank(self) -> np.ndarray:
        return np.zeros((self.H, self.W), np.uint8)

    def ellipse(self, u, v, ru, rv, angle=0.0, thickness=-1) -> np.ndarray:
        m = self.blank()
        t = thickness if thickness < 0 else self.len(thickness)
        cv2.ellipse(m, self.pt(u, v), (self.len(ru), max(1, int(round(rv * self.H)))), angle, 0, 360, 255, t, cv2.LINE_AA)
        return m

    def poly(self, points, thickness=-1, closed=True) -> np.ndarray:
        m = self.blank()
        pts = np.array([self.pt(u, v) for u, v in points], np.int32)
        if thickness < 0:
            cv2.fillPoly(m, [pts], 255, cv2.LINE_AA)
        else:
            cv2.polylines(m, [pts], closed, 255, self.len(thickness), cv2.LINE_AA)
        return m

    def line(self, u0, v0, u1, v1, width) -> np.ndarray:
        m = self.blank()
        cv2.line(m, self.pt(u0, v0), self.pt(u1, v1), 255, self.len(width), cv2.LINE_AA)
        return m

    def rrect(self, u0, v0, u1, v1, r) -> np.ndarray:
        """Filled rounded rectangle; ``r`` is the corner radius as a fraction of the width."""
        m = self.blank()
        x0, y0 = self.pt(u0, v0)
        x1, y1 = self.pt(u1, v1)
        rad = min(self.len(r), (x1 - x0) // 2, (y1 - y0) // 2)
        cv2.rectangle(m, (x0 + rad, y0), (x1 - rad, y1), 255, -1)
        cv2.rectangle(m, (x0, y0 + rad), (x1, y1 - rad), 255, -1)
        for cx, cy in ((x0 + rad, y0 + rad), (x1 - rad, y0 + rad), (x0 + rad, y1 - rad), (x1 - rad, y1 - rad)):
            cv2.circle(m, (cx, cy), rad, 255, -1, cv2.LINE_AA)
        return m

    def paint(self, mask: np.ndarray, colour, opacity: float = 1.0) -> None:
        """Composite ``colour`` (RGB triple or (H, W, 3) array, 0-255) over the canvas inside ``mask``."""
        m = (mask.astype(np.float32) / 255.0 if mask.dtype == np.uint8 else mask) * opacity
        col = np.broadcast_to(np.asarray(colour, np.float32), self.prgb.shape)
        self.prgb = col * m[..., None] + self.prgb * (1 - m[..., None])
        self.alpha = m + self.alpha * (1 - m)

    def render(self) -> np.ndarray:
        """Reduce to output size; returns RGBA uint8 with BACKGROUND under transparent pixels."""
        prgb = cv2.resize(self.prgb, (self.w, self.h), interpolation=cv2.INTER_AREA)
        alpha = cv2.resize(self.alpha, (self.w, self.h), interpolation=cv2.INTER_AREA)
        a = np.clip(alpha, 0, 1)
        rgb = np.where(a[..., None] > 1e-3, prgb / np.maximum(a[..., None], 1e-3), BACKGROUND)
        out = np.dstack([np.clip(rgb, 0, 255), a * 255.0])
        out = np.rint(out).astype(np.uint8)
        out[out[..., 3] == 0, :3] = BACKGROUND
        return out


def shade(c: Canvas, base, top: float = 1.15, bottom: float = 0.8, axis: str = "v") -> np.ndarray:
    """A colour field: ``base`` brightened towards one end and darkened towards the other."""
    t = c.v if axis == "v" else c.u
    k = top + (bottom - top) * t
    return np.clip(np.asarray(base, np.float32) * k[..., None], 0, 255)


def cylinder(c: Canvas, base, u0: float, u1: float, light: float = 0.32) -> np.ndarray:
    """Horizontal shading of a vertical cylinder between ``u0`` and ``u1`` with a highlight."""
    t = np.clip((c.u - u0) / max(u1 - u0, 1e-6), 0, 1)
    k = 0.62 + 0.5 * np.clip(np.sin(np.pi * t), 0, 1) ** 0.7 + 0.45 * np.exp(-(((t - light) / 0.07) ** 2))
    return np.clip(np.asarray(base, np.float32) * k[..., None], 0, 255)


def smooth_noise(c: Canvas, rng: np.random.Generator, cells: int, amount: float) -> np.ndarray:
    small = rng.normal(0, 1, (cells, max(2, cells * c.W // c.H))).astype(np.float32)
    return 1 + amount * cv2.resize(small, (c.W, c.H), interpolation=cv2.INTER_CUBIC)


def edge_darken(c: Canvas, mask: np.ndarray, width: float, amount: float) -> np.ndarray:
    """Factor < 1 near the border of ``mask``: a cheap rounded, three-dimensional look."""
    dist = cv2.distanceTransform((mask > 127).astype(np.uint8), cv2.DIST_L2, 5)
    t = np.clip(dist / (width * c.W), 0, 1)
    return (1 - amount) + amount * np.sqrt(t)


def jitter(rng: np.random.Generator, colour, amount: float = 12) -> np.ndarray:
    return np.clip(np.asarray(colour, np.float32) + rng.normal(0, amount, 3), 0, 255)


# --- the nine categories -------------------------------------------------------------------------


def book_cover(c: Canvas, rng: np.random.Generator, i: int) -> None:
    covers = [(160, 32, 40), (25, 60, 120), (30, 100, 60), (230, 180, 40), (90, 40, 110), (20, 20, 25), (200, 90, 30)]
    base = jitter(rng, covers[i % len(covers)], 8)
    body = c.rrect(0.0, 0.0, 0.94, 1.0, 0.03)
    pages = c.rrect(0.06, 0.015, 1.0, 0.985, 0.02)
    c.paint(pages, (245, 238, 215))
    for k in range(4):
        c.paint(c.line(0.955 + 0.011 * k, 0.03, 0.955 + 0.011 * k, 0.97, 0.004), (190, 180, 160))
    c.paint(body, shade(c, base, 1.2, 0.78) * smooth_noise(c, rng, 6, 0.04)[..., None])
    c.paint(c.rrect(0.0, 0.0, 0.1, 1.0, 0.02), shade(c, base * 0.6, 1.1, 0.8))
    for v in (0.08, 0.92):
        c.paint(c.line(0.0, v, 0.1, v, 0.015), (225, 195, 90))
    light = np.array([245, 235, 205]) if base.mean() < 150 else np.array([30, 30, 35])
    layout = i % 3
    if layout == 0:
        c.paint(c.rrect(0.2, 0.12, 0.86, 0.38, 0.02), light)
        for k, (v, w) in enumerate(((0.19, 0.5), (0.27, 0.38))):
            c.paint(c.line(0.28, v, 0.28 + w, v, 0.045 - 0.012 * k), base * 0.7)
        c.paint(c.ellipse(0.53, 0.62, 0.14, 0.1), light, 0.85)
    elif layout == 1:
        for k, (v, w) in enumerate(((0.15, 0.55), (0.23, 0.45), (0.31, 0.3))):
            c.paint(c.line(0.22, v, 0.22 + w, v, 0.05 - 0.01 * k), light)
        c.paint(c.poly([(0.53, 0.45), (0.75, 0.62), (0.53, 0.79), (0.31, 0.62)]), light, 0.8)
    else:
        c.paint(c.rrect(0.14, 0.5, 0.94, 0.72, 0.0), light)
        c.paint(c.line(0.24, 0.61, 0.8, 0.61, 0.05), base)
        c.paint(c.line(0.3, 0.2, 0.75, 0.2, 0.05), light)
    c.paint(c.line(0.3, 0.88, 0.72, 0.88, 0.03), light, 0.9)
    c.paint(c.poly([(0.1, 0.0), (0.35, 0.0), (0.1, 0.4)]), (255, 255, 255), 0.12)


def cup(c: Canvas, rng: np.random.Generator, i: int) -> None:
    colours = [(235, 235, 230), (200, 40, 45), (40, 90, 170), (240, 190, 50), (60, 140, 90), (190, 150, 110), (245, 245, 240)]
    base = jitter(rng, colours[i], 8)
    if i >= 5:  # paper take-away cup with lid and sleeve
        body = c.poly([(0.16, 0.14), (0.84, 0.14), (0.74, 1.0), (0.26, 1.0)])
        c.paint(body, cylinder(c, base, 0.16, 0.84))
        sleeve = c.poly([(0.19, 0.4), (0.81, 0.4), (0.77, 0.72), (0.23, 0.72)])
        c.paint(sleeve, cylinder(c, (165, 115, 70), 0.19, 0.81) * smooth_noise(c, rng, 12, 0.05)[..., None])
        c.paint(c.rrect(0.1, 0.06, 0.9, 0.16, 0.04), cylinder(c, (40, 35, 35) if i == 5 else (250, 250, 250), 0.1, 0.9))
        c.paint(c.rrect(0.22, 0.0, 0.78, 0.08, 0.04), cylinder(c, (40, 35, 35) if i == 5 else (240, 240, 240), 0.22, 0.78))
        return
    handle = c.ellipse(0.75, 0.5, 0.2, 0.22, thickness=0.075)
    c.paint(handle, shade(c, base * 0.85, 1.1, 0.8))
    body = c.rrect(0.04, 0.1, 0.72, 1.0, 0.08)
    colour = cylinder(c, base, 0.04, 0.72)
    if i == 1:
        band = ((c.v > 0.45) & (c.v < 0.6)).astype(np.float32)
        colour = colour * (1 - band[..., None]) + cylinder(c, (245, 245, 245), 0.04, 0.72) * band[..., None]
    c.paint(body, colour)
    if i in (2, 4):
        for u, v in ((0.22, 0.4), (0.42, 0.55), (0.25, 0.75), (0.52, 0.32), (0.5, 0.82)):
            c.paint(c.ellipse(u, v, 0.045, 0.035), (250, 250, 250), 0.9)
    if i == 3:
        c.paint(c.ellipse(0.38, 0.58, 0.12, 0.1), (180, 60, 40), 0.9)
    c.paint(c.ellipse(0.38, 0.1, 0.34, 0.07), shade(c, base * 1.1, 1.1, 0.95))
    c.paint(c.ellipse(0.38, 0.105, 0.29, 0.05), (70, 40, 25))


def eye_mask(c: Canvas, rng: np.random.Generator, i: int) -> None:
    colours = [(25, 25, 30), (30, 40, 90), (230, 150, 170), (160, 140, 200), (120, 120, 125), (120, 25, 45), (120, 180, 220)]
    base = jitter(rng, colours[i], 6)
    strap = c.line(0.0, 0.42, 1.0, 0.42, 0.035)
    c.paint(strap, shade(c, base * 0.7, 1.0, 0.9))
    shape = np.maximum(c.ellipse(0.31, 0.5, 0.25, 0.46), c.ellipse(0.69, 0.5, 0.25, 0.46))
    shape = np.maximum(shape, c.rrect(0.3, 0.08, 0.7, 0.6, 0.05))
    shape = np.minimum(shape, 255 - c.ellipse(0.5, 1.02, 0.09, 0.42))
    colour = shade(c, base, 1.25, 0.75) * edge_darken(c, shape, 0.05, 0.45)[..., None]
    if i == 6:  # cloud print
        for u, v in ((0.25, 0.4), (0.7, 0.55), (0.45, 0.3)):
            colour = np.where((c.ellipse(u, v, 0.07, 0.12) > 127)[..., None], (250, 250, 250), colour)
    c.paint(shape, colour)
    trim = cv2.morphologyEx(shape, cv2.MORPH_GRADIENT, np.ones((5, 5), np.uint8))
    c.paint(trim, np.clip(base * 1.6 + 30, 0, 255), 0.8)
    for u in (0.31, 0.69):
        c.paint(c.ellipse(u - 0.05, 0.3, 0.1, 0.1), (255, 255, 255), 0.18)


def _lenses(c: Canvas, style: int) -> list[np.ndarray]:
    """Two lens masks for spectacles: 0 round, 1 rectangle, 2 cat-eye/wayfarer, 3 aviator."""
    masks = []
    for side, u in ((-1, 0.275), (1, 0.725)):
        if style == 0:
            m = c.ellipse(u, 0.52, 0.2, 0.42)
        elif style == 1:
            m = c.rrect(u - 0.21, 0.14, u + 0.21, 0.88, 0.06)
        elif style == 2:
            o, n = u + side * 0.22, u - side * 0.2
            m = c.poly([(n, 0.12), (o, 0.06), (o - side * 0.03, 0.6), (u + side * 0.1, 0.92), (n + side * 0.04, 0.85)])
            m = cv2.GaussianBlur(m, (0, 0), SS * 2.5)
            m = np.where(m > 127, 255, 0).astype(np.uint8)
        else:
            m = np.maximum(c.ellipse(u + side * 0.02, 0.55, 0.2, 0.4), c.rrect(u - 0.2, 0.12, u + 0.2, 0.4, 0.05))
            m = np.maximum(m, c.ellipse(u + side * 0.06, 0.62, 0.17, 0.35))
        masks.append(m)
    return masks


def _frame(c: Canvas, lenses, colour, width: float, rng: np.random.Generator, tortoise: bool) -> None:
    k = max(3, int(round(width * c.W)))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
    rims = [cv2.dilate(m, kernel) for m in lenses]
    frame = np.maximum(rims[0], rims[1])
    frame = np.maximum(frame, c.line(0.44, 0.32, 0.56, 0.32, width * 0.7))
    frame = np.maximum(frame, c.line(0.0, 0.26, 0.08, 0.26, width * 0.8))
    frame = np.maximum(frame, c.line(0.92, 0.26, 1.0, 0.26, width * 0.8))
    lens_area = np.maximum(lenses[0], lenses[1])
    frame = np.where(lens_area > 127, 0, frame).astype(np.uint8)
    col = shade(c, colour, 1.3, 0.75)
    if tortoise:
        spots = smooth_noise(c, rng, 14, 0.6)
        col = np.clip(col * np.clip(spots, 0.45, 1.5)[..., None], 0, 255)
    c.paint(frame, col)


def eyeglasses(c: Canvas, rng: np.random.Generator, i: int) -> None:
    frames = [(20, 20, 22), (110, 60, 30), (200, 165, 80), (30, 40, 90), (170, 30, 40), (90, 90, 95), (20, 20, 22)]
    style = [0, 1, 2, 1, 0, 3, 2][i]
    width = 0.022 if i in (2, 5) else 0.045
    lenses = _lenses(c, style)
    for m in lenses:
        c.paint(m, (200, 220, 235), 0.2)
        c.paint(np.minimum(m, c.line(0.0, 0.9, 1.0, -0.3, 0.05)), (255, 255, 255), 0.35)
    _frame(c, lenses, jitter(rng, frames[i], 5), width, rng, tortoise=(i == 1))
    if i == 6:  # browline: heavy upper rims
        top = np.maximum(c.rrect(0.05, 0.08, 0.47, 0.3, 0.05), c.rrect(0.53, 0.08, 0.95, 0.3, 0.05))
        c.paint(np.minimum(top, np.maximum(*[cv2.dilate(m, np.ones((9, 9), np.uint8)) for m in lenses])), (20, 20, 22))


def sunglasses(c: Canvas, rng: np.random.Generator, i: int) -> None:
    tints = [((40, 40, 45), (5, 5, 8)), ((120, 80, 40), (30, 20, 10)), ((60, 90, 60), (10, 25, 12)),
             ((60, 130, 220), (200, 90, 160)), ((70, 70, 75), (10, 10, 12)), ((210, 150, 60), (90, 40, 20)),
             ((30, 30, 35), (0, 0, 0))]
    frames = [(15, 15, 15), (200, 165, 80), (15, 15, 15), (180, 180, 190), (110, 60, 30), (200, 165, 80), (25, 25, 28)]
    top, bottom = (np.array(t, np.float32) for t in tints[i])
    tint = top[None, None] * (1 - c.v[..., None]) + bottom[None, None] * c.v[..., None]
    if i == 6:  # one-piece sport visor
        visor = c.poly([(0.02, 0.12), (0.98, 0.12), (0.96, 0.6), (0.78, 0.9), (0.58, 0.85), (0.5, 0.62),
                        (0.42, 0.85), (0.22, 0.9), (0.04, 0.6)])
        visor = np.where(cv2.GaussianBlur(visor, (0, 0), SS * 2) > 127, 255, 0).astype(np.uint8)
        c.paint(visor, tint)
        c.paint(c.rrect(0.0, 0.06, 1.0, 0.2, 0.04), shade(c, frames[i], 1.3, 0.8))
        c.paint(np.minimum(visor, c.line(0.1, 0.8, 0.45, 0.1, 0.06)), (255, 255, 255), 0.3)
        return
    lenses = _lenses(c, [3, 2, 0, 3, 2, 1][i])
    for m in lenses:
        c.paint(m, tint)
        c.paint(np.minimum(m, c.line(0.0, 0.85, 1.0, -0.25, 0.06)), (255, 255, 255), 0.28)
    _frame(c, lenses, jitter(rng, frames[i], 5), 0.02 if i in (0, 3, 5) else 0.045, rng, tortoise=(i == 4))


def hand(c: Canvas, rng: np.random.Generator, i: int) -> None:
    tones = [(250, 215, 190), (236, 190, 160), (215, 165, 130), (190, 135, 95), (160, 105, 70), (120, 80, 55), (90, 60, 42)]
    tone = jitter(rng, tones[i], 5)
    spread = 0.7 + 0.6 * rng.random()
    fingers = [  # base (u, v), tip (u, v), width
        ((0.33, 0.5), (0.3 - 0.09 * spread, 0.1), 0.145),
        ((0.47, 0.47), (0.47 - 0.02 * spread, 0.02), 0.15),
        ((0.61, 0.49), (0.64 + 0.05 * spread, 0.07), 0.14),
        ((0.74, 0.56), (0.84 + 0.07 * spread, 0.26), 0.12),
    ]
    thumb = ((0.3, 0.74), (0.06, 0.48 - 0.05 * spread), 0.15)
    shape = np.maximum(c.ellipse(0.52, 0.66, 0.26, 0.22), c.rrect(0.3, 0.72, 0.74, 1.0, 0.02))
    for (bu, bv), (tu, tv), w in fingers + [thumb]:
        shape = np.maximum(shape, c.line(bu, bv, tu, tv, w))
    colour = shade(c, tone, 1.08, 0.9) * edge_darken(c, shape, 0.05, 0.4)[..., None]
    colour = colour * smooth_noise(c, rng, 8, 0.025)[..., None]
    c.paint(shape, colour)
    crease = np.array(tone) * 0.7
    for (bu, bv), (tu, tv), w in fingers + [thumb]:
        for t in (0.33, 0.62):
            u, v = bu + (tu - bu) * t, bv + (tv - bv) * t
            du, dv = tv - bv, -(tu - bu)
            n = (du * du + dv * dv) ** 0.5
            du, dv = du / n * w * 0.3, dv / n * w * 0.3 * c.W / c.H
            c.paint(c.line(u - du, v - dv, u + du, v + dv, 0.008), crease, 0.6)
        u, v = bu + (tu - bu) * 0.93, bv + (tv - bv) * 0.93
        angle = np.degrees(np.arctan2((tv - bv) * c.H, (tu - bu) * c.W)) + 90
        c.paint(c.ellipse(u, v, w * 0.28, w * 0.2 * c.W / c.H, angle), np.clip(np.array(tone) * 1.12 + 15, 0, 255), 0.9)
    for u in (0.4, 0.52, 0.64):
        c.paint(c.line(u, 0.58, u + 0.02, 0.75, 0.012), crease, 0.25)


def mouth_mask(c: Canvas, rng: np.random.Generator, i: int) -> None:
    colours = [(150, 200, 230), (245, 245, 245), (160, 215, 185), (30, 30, 35), (240, 180, 195), (245, 245, 240), (60, 80, 130)]
    base = jitter(rng, colours[i], 5)
    for side in (0, 1):  # ear loops
        u_out = 0.0 if side == 0 else 1.0
        u_in = 0.14 if side == 0 else 0.86
        loop = c.poly([(u_in, 0.12), (u_out + (0.03 if side == 0 else -0.03), 0.2), (u_out, 0.5),
                       (u_out + (0.03 if side == 0 else -0.03), 0.8), (u_in, 0.88)], thickness=0.018, closed=False)
        c.paint(loop, base * 0.9 if i == 3 else (235, 235, 235))
    if i == 5:  # KN95: two panels meeting in a vertical seam
        body = c.poly([(0.12, 0.45), (0.3, 0.1), (0.5, 0.02), (0.7, 0.1), (0.88, 0.45), (0.7, 0.85), (0.5, 0.98),
                       (0.3, 0.85)])
        body = np.where(cv2.GaussianBlur(body, (0, 0), SS * 3) > 127, 255, 0).astype(np.uint8)
        c.paint(body, shade(c, base, 1.05, 0.85, axis="u") * edge_darken(c, body, 0.06, 0.25)[..., None])
        c.paint(c.line(0.5, 0.02, 0.5, 0.98, 0.01), base * 0.75)
        return
    top = [(0.12 + 0.76 * t, 0.12 - 0.1 * np.sin(np.pi * t)) for t in np.linspace(0, 1, 17)]
    bottom = [(0.88 - 0.76 * t, 0.86 + 0.12 * np.sin(np.pi * t)) for t in np.linspace(0, 1, 17)]
    body = c.poly(top + bottom)
    colour = shade(c, base, 1.08, 0.88) * edge_darken(c, body, 0.05, 0.25)[..., None]
    if i in (3, 6):  # cloth: fabric grain and a centre seam, no pleats
        colour = colour * smooth_noise(c, rng, 30, 0.04)[..., None]
        c.paint(body, colour)
        c.paint(c.line(0.5, 0.04, 0.5, 0.96, 0.008), base * 0.6)
        return
    c.paint(body, colour)
    for v in (0.34, 0.5, 0.66):
        pleat = [(0.14 + 0.72 * t, v + 0.04 * np.sin(np.pi * t)) for t in np.linspace(0, 1, 13)]
        c.paint(c.poly(pleat, thickness=0.012, closed=False), base * 0.7)
        c.paint(c.poly([(u, w + 0.025) for u, w in pleat], thickness=0.01, closed=False), (255, 255, 255), 0.5)
    for u0 in (0.12, 0.82):
        c.paint(np.minimum(body, c.rrect(u0, 0.0, u0 + 0.06, 1.0, 0.0)), base * 0.9)
    c.paint(c.poly(top[5:12], thickness=0.012, closed=False), (200, 200, 205), 0.8)


def phone(c: Canvas, rng: np.random.Generator, i: int) -> None:
    bodies = [(20, 20, 24), (60, 62, 68), (225, 225, 230), (30, 50, 90), (215, 190, 160), (20, 20, 24), (170, 40, 50)]
    base = jitter(rng, bodies[i], 4)
    body = c.rrect(0.0, 0.0, 1.0, 1.0, 0.16)
    c.paint(body, shade(c, base, 1.2, 0.85, axis="u") * edge_darken(c, body, 0.06, 0.3)[..., None])
    if i < 4:  # front: screen with wallpaper or app grid, punch-hole camera
        screen = c.rrect(0.06, 0.035, 0.94, 0.965, 0.12)
        hues = [((30, 60, 160), (150, 40, 140)), ((10, 120, 150), (20, 30, 80)), ((240, 120, 60), (120, 30, 110)),
                ((20, 20, 30), (40, 60, 120))][i]
        top, bottom = (np.array(h, np.float32) for h in hues)
        c.paint(screen, top[None, None] * (1 - c.v[..., None]) + bottom[None, None] * c.v[..., None])
        if i in (0, 2):
            palette = [(240, 80, 70), (80, 200, 100), (70, 150, 240), (250, 200, 60), (250, 250, 250)]
            for r in range(5):
                for k in range(4):
                    u, v = 0.16 + 0.225 * k, 0.2 + 0.13 * r
                    c.paint(c.rrect(u - 0.07, v - 0.035, u + 0.07, v + 0.035, 0.03), palette[(r * 4 + k + i) % 5], 0.95)
        else:
            c.paint(c.line(0.3, 0.18, 0.7, 0.18, 0.1), (250, 250, 250), 0.9)
        c.paint(c.ellipse(0.5, 0.06, 0.04, 0.018), (5, 5, 5))
        c.paint(np.minimum(screen, c.poly([(0.06, 0.5), (0.94, 0.2), (0.94, 0.35), (0.06, 0.65)])), (255, 255, 255), 0.12)
    else:  # back: camera module and logo
        c.paint(c.rrect(0.08, 0.04, 0.52, 0.25, 0.12), base * 0.75)
        for u, v in ((0.2, 0.09), (0.2, 0.19), (0.4, 0.14)):
            c.paint(c.ellipse(u, v, 0.08, 0.04), (15, 15, 18))
            c.paint(c.ellipse(u - 0.015, v - 0.01, 0.025, 0.01), (120, 130, 160), 0.8)
        c.paint(c.ellipse(0.5, 0.55, 0.09, 0.05), base * 1.2 if base.mean() < 128 else base * 0.8)
    c.paint(c.rrect(0.97, 0.25, 1.0, 0.38, 0.0), base * 0.6)


def scarf(c: Canvas, rng: np.random.Generator, i: int) -> None:
    colours = [(180, 30, 35), (30, 40, 90), (215, 160, 40), (120, 120, 125), (30, 100, 60), (120, 25, 50), (200, 90, 40)]
    base = jitter(rng, colours[i], 6)
    second = np.array([[240, 240, 235], [200, 40, 40], [30, 30, 30], [40, 60, 120], [180, 30, 30], [230, 200, 120],
                       [40, 40, 60]][i], np.float32)
    top = [(t, 0.08 + 0.08 * np.sin(np.pi * t) + 0.02 * np.sin(6 * t)) for t in np.linspace(0, 1, 21)]
    bottom = [(1 - t, 0.62 - 0.05 * np.sin(np.pi * t)) for t in np.linspace(0, 1, 21)]
    band = c.poly(top + bottom)
    tail = c.poly([(0.58, 0.45), (0.8, 0.45), (0.84, 0.92), (0.6, 0.92)])
    pattern = i % 3
    colour = np.broadcast_to(base, c.prgb.shape).copy()
    if pattern == 1:  # stripes
        stripe = (np.sin(c.v * np.pi * 9) > 0.4)[..., None]
        colour = np.where(stripe, second, colour)
    elif pattern == 2:  # plaid
        a = (np.sin(c.u * np.pi * 10) > 0.5)[..., None]
        b = (np.sin(c.v * np.pi * 8) > 0.5)[..., None]
        colour = np.where(a | b, colour * 0.6 + second * 0.4, colour)
        colour = np.where(a & b, second * 0.8, colour)
    rib = 0.88 + 0.12 * np.abs(np.sin(c.u * np.pi * 45))
    folds = 1 - 0.22 * np.exp(-(((c.v - 0.3 - 0.06 * np.sin(c.u * 7 + i)) / 0.04) ** 2))
    folds = folds - 0.18 * np.exp(-(((c.v - 0.48 + 0.05 * np.sin(c.u * 5)) / 0.035) ** 2))
    colour = colour * (rib * folds)[..., None] * edge_darken(c, band, 0.04, 0.3)[..., None]
    for u in np.linspace(0.6, 0.82, 12):
        c.paint(c.line(u + 0.01, 0.9, u + 0.02, 1.0, 0.008), base * 0.8)
    c.paint(tail, colour * 0.85)
    c.paint(band, colour)


DRAWERS: dict[str, Callable[[Canvas, np.random.Generator, int], None]] = {
    "book_cover": book_cover, "cup": cup, "eye_mask": eye_mask, "eyeglasses": eyeglasses, "hand": hand,
    "mouth_mask": mouth_mask, "phone": phone, "scarf": scarf, "sunglasses": sunglasses,
}


@dataclass(frozen=True)
class Asset:
    """One rendered occluder and its index entry."""

    category: str
    file: str
    rgba: np.ndarray
    hint: str
    anchor: tuple[float, float]


def render_library(variants: int = VARIANTS, seed: int = SEED) -> list[Asset]:
    """Draw every category's variants; deterministic for a given seed."""
    assets = []
    for ci, (category, (fw, fh, hint, ax, ay)) in enumerate(CATEGORIES.items()):
        for i in range(variants):
            rng = np.random.default_rng([seed, ci, i])
            size = 1 + 0.16 * (rng.random() - 0.5)  # size variety around the design size
            w = max(8, int(round(fw * FACE_W * NATIVE_SCALE * size)))
            h = max(8, int(round(fh * FACE_H * NATIVE_SCALE * size)))
            canvas = Canvas(w, h)
            DRAWERS[category](canvas, rng, i % VARIANTS)
            rgba = canvas.render()
            if category == "hand" and i % 2 == 1:
                rgba = rgba[:, ::-1].copy()  # left and right hands
            assets.append(Asset(category, f"{category}/{category}_{i + 1:02d}.png", rgba, hint, (ax, ay)))
    return assets


def write_library(out: str | Path, variants: int = VARIANTS, seed: int = SEED) -> pd.DataFrame:
    """Render the library into ``out`` (category folders + ``index.csv``); returns the index."""
    from alob_common.atomic import write_bytes_atomic

    out = Path(out)
    rows = []
    for asset in render_library(variants, seed):
        ok, buf = cv2.imencode(".png", cv2.cvtColor(asset.rgba, cv2.COLOR_RGBA2BGRA), [cv2.IMWRITE_PNG_COMPRESSION, 9])
        if not ok:
            raise OSError(f"could not encode {asset.file}")
        write_bytes_atomic(out / asset.file, buf.tobytes())
        h, w = asset.rgba.shape[:2]
        rows.append({"category": asset.category, "file": asset.file, "width": w, "height": h,
                     "hint": asset.hint, "anchor_x": asset.anchor[0], "anchor_y": asset.anchor[1]})
    index = pd.DataFrame(rows)
    write_bytes_atomic(out / "index.csv", index.to_csv(index=False).encode())
    return index
