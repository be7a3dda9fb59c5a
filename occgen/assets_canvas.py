"""The drawing surface of the occluder generator: a supersampled premultiplied-RGBA canvas and
the shading helpers every occluder family paints with.

Shapes are drawn 4× supersampled (``SS``) into a premultiplied RGBA canvas addressed in
normalised coordinates and reduced with area averaging, which gives clean anti-aliased alpha
edges; transparent pixels store ``BACKGROUND`` (what FROM's rectangle mode pastes).
"""

from __future__ import annotations

import cv2
import numpy as np

SS = 4  # supersampling factor of the drawing canvas
BACKGROUND = (238, 238, 238)  # RGB stored under transparent pixels; what FROM's rect mode pastes


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

