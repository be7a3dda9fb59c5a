"""Occluders covering nose and mouth: mouth masks (surgical, cloth, KN95) and scarves."""

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

