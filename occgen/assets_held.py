"""Occluders held in front of the face: book covers, cups, hands and phones (seven of each)."""

from __future__ import annotations

import numpy as np

from occgen.assets_canvas import (
    Canvas,
    cylinder,
    edge_darken,
    jitter,
    shade,
    smooth_noise,
)


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

