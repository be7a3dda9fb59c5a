"""Ratio mode's original solver (``ratio_solver="search"``), kept to reproduce earlier builds
byte for byte: per image, CENTRE_TRIES candidate centres × 48 geometric scales are predicted
from the summed-area table of the occluder's native mask, the scale reaching the target is
interpolated, and the paste is redone (up to twice) when the rendered mask misses the target
by a point or more. :mod:`occgen.ratio_curve` replaces it by default."""

from __future__ import annotations

import numpy as np

from occgen.library import Occluder
from occgen.placement import CENTRE_TRIES, centre, centres, paste


def _sat(integral: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """The summed-area table at fractional (u, v): bilinear, exact for a pixel-constant mask."""
    u0, v0 = np.floor(u).astype(int), np.floor(v).astype(int)
    u1, v1 = np.minimum(u0 + 1, integral.shape[1] - 1), np.minimum(v0 + 1, integral.shape[0] - 1)
    fu, fv = u - u0, v - v0
    top = integral[v0, u0] * (1 - fu) + integral[v0, u1] * fu
    bottom = integral[v1, u0] * (1 - fu) + integral[v1, u1] * fu
    return top * (1 - fv) + bottom * fv


def _coverage_curve(occ: Occluder, W: int, H: int, cx, cy, scales: np.ndarray, rect: bool = False) -> np.ndarray:
    """Predicted mask coverage (fraction of W·H) of ``occ`` centred at (cx, cy) for each scale,
    from the summed-area table of its native mask (O(1) per scale; arrays broadcast)."""
    ow, oh = occ.size
    integral = occ.rect_integral if rect else occ.mask_integral
    x0, y0 = cx - scales * ow / 2, cy - scales * oh / 2
    u0, u1 = np.clip(-x0 / scales, 0, ow), np.clip((W - x0) / scales, 0, ow)
    v0, v1 = np.clip(-y0 / scales, 0, oh), np.clip((H - y0) / scales, 0, oh)
    corners = _sat(integral, np.stack(np.broadcast_arrays(u1, u1, u0, u0)), np.stack(np.broadcast_arrays(v1, v0, v1, v0)))
    return (corners[0] - corners[1] - corners[2] + corners[3]) * scales**2 / (W * H)


_GRIDS: dict = {}


def _scale_grid(occ: Occluder, W: int, H: int, max_extent: float) -> np.ndarray:
    """48 geometric scales from a 2-pixel occluder up to ``max_extent`` × the crop (cached)."""
    ow, oh = occ.size
    key = (ow, oh, W, H, max_extent)
    if key not in _GRIDS:
        _GRIDS[key] = np.geomspace(2.0 / max(ow, oh), max_extent * min(W / ow, H / oh), 48)
    return _GRIDS[key]


def _solve_scale(scales: np.ndarray, curve: np.ndarray, target: float) -> float | None:
    """The smallest scale whose predicted coverage reaches ``target`` (None if none does)."""
    above = np.nonzero(curve >= target)[0]
    if above.size == 0:
        return None
    k = int(above[0])
    if k == 0:
        return float(scales[0])
    c0, c1 = curve[k - 1], curve[k]
    t = (target - c0) / (c1 - c0) if c1 > c0 else 1.0
    return float(scales[k - 1] * (scales[k] / scales[k - 1]) ** t)


def _place_for_target(rng, occ, W, H, cfg, target):
    """Draw CENTRE_TRIES candidate centres; return the first (cx, cy, scale, True) that reaches
    ``target``, else (cx, cy, scale, False) with the largest coverage any candidate can reach."""
    scales = _scale_grid(occ, W, H, cfg.max_extent)
    ow, oh = occ.size
    guess = np.sqrt(target * W * H / max(occ.mask_integral[-1, -1], 1.0))
    cxs, cys = centres(rng, occ, W, H, cfg.placement, cfg.jitter, ow * guess, oh * guess, CENTRE_TRIES)
    curves = _coverage_curve(occ, W, H, cxs[:, None], cys[:, None], scales, cfg.blend == "rect")
    reaching = np.nonzero(curves.max(axis=1) >= target)[0]
    if reaching.size:
        k = int(reaching[0])
        return int(cxs[k]), int(cys[k]), _solve_scale(scales, curves[k], target), True
    k, j = np.unravel_index(int(np.argmax(curves)), curves.shape)
    return int(cxs[k]), int(cys[k]), float(scales[j]), False


def _geometry(rng, occ, W, H, cfg, target) -> tuple[int, int, float, bool]:
    """Centre and scale of ``occ`` aiming at coverage ``target`` (the best reachable if none),
    and whether the target is predicted reachable."""
    cx, cy, scale, reachable = _place_for_target(rng, occ, W, H, cfg, target)
    if cfg.placement == "semantic" and occ.hint != "anywhere":  # the anchor offset depends on the size
        ow, oh = occ.size
        cx, cy = centre(rng, occ, W, H, cfg.placement, cfg.jitter, ow * scale, oh * scale)
        scales = _scale_grid(occ, W, H, cfg.max_extent)
        curve = _coverage_curve(occ, W, H, cx, cy, scales, cfg.blend == "rect")
        solved = _solve_scale(scales, curve, target)
        reachable = solved is not None
        scale = solved if reachable else float(scales[int(np.argmax(curve))])
    return cx, cy, scale, reachable


def _render_to_target(image, occ, cx, cy, scale, target, cfg, reachable=True):
    """Paste at the predicted scale, then, when the target is reachable, correct the scale from
    the rendered mask (resampling and rounding make the prediction a little off); never beyond
    the largest allowed scale."""
    H, W = image.shape[:2]
    ow, oh = occ.size
    top = float(_scale_grid(occ, W, H, cfg.max_extent)[-1])
    for _ in range(3):
        w, h = max(1, round(scale * ow)), max(1, round(scale * oh))
        x0, y0 = cx - w // 2, cy - h // 2
        out, mask = paste(image, occ, x0, y0, w, h, cfg.blend)
        covered = float(np.count_nonzero(mask)) / (W * H)
        if not reachable or abs(covered - target) < 0.01 or covered <= 0 or (covered < target and scale >= top):
            break
        scale = min(top, scale * float(np.clip(np.sqrt(target / covered), 0.8, 1.25)))
    return out, mask, covered, (x0, y0, w, h, scale)


def search_occlude(image: np.ndarray, rng: np.random.Generator, occ: Occluder, cfg, target: float):
    """Occlude ``image`` with ``occ`` aiming at coverage ``target``; returns (image, mask,
    covered fraction, (x0, y0, w, h, scale))."""
    H, W = image.shape[:2]
    cx, cy, scale, reachable = _geometry(rng, occ, W, H, cfg, target)
    return _render_to_target(image, occ, cx, cy, scale, target, cfg, reachable)


def search_best(rng: np.random.Generator, occ: Occluder, W: int, H: int, cfg, blank: np.ndarray) -> tuple[float, float]:
    """For the calibration: the largest coverage one draw of ``occ`` is predicted to reach, and
    the coverage its render at that scale actually has."""
    cx, cy, scale, _ = _geometry(rng, occ, W, H, cfg, 2.0)
    scales = _scale_grid(occ, W, H, cfg.max_extent)
    predicted = float(_coverage_curve(occ, W, H, cx, cy, scales, cfg.blend == "rect").max())
    return predicted, _render_to_target(blank, occ, cx, cy, scale, 2.0, cfg, reachable=False)[2]
