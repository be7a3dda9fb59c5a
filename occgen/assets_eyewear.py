"""Occluders worn over the eyes: eye masks, eyeglasses and sunglasses (seven styles each)."""

from __future__ import annotations

import cv2
import numpy as np

from occgen.assets_canvas import (
    SS,
    Canvas,
    edge_darken,
    jitter,
    shade,
    smooth_noise,
)


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

