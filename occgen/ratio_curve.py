"""Ratio mode's default solver (``ratio_solver="curve"``): each occluder's coverage is tabulated
once per crop size, so an image needs one table look-up and one paste.

For an occluder at crop size W×H the table holds every size it may take (its larger side
2, 3, … pixels up to ``max_extent`` × the crop, the other side in proportion) and, for each
size and each centre on a ``STRIDE``-pixel grid, the exact number of pixels its rendered mask
covers (summed from the very mask :func:`occgen.placement.paste` draws at that size). An image
draws its target and CENTRE_TRIES candidate centres on the grid, reads their coverage curves,
and takes the size whose coverage is nearest the target (the first candidate that can reach it;
else the largest coverage any candidate reaches). The coverage of the pasted mask is the table's
number: no prediction to correct, so one paste per image, and per image the coverage is within
half a pixel-size step of the target.

Tables are built on first use (a fraction of a second for the bundled library at 112×96) and
kept per occluder for the life of the process.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import cv2
import numpy as np

from occgen.library import Occluder
from occgen.placement import CENTRE_TRIES, alpha_mask, face_points, paste

STRIDE = 2  # centres lie on this grid (pixels): the table stays small, placement stays fine-grained


@dataclass(frozen=True)
class CoverageTable:
    """The sizes an occluder takes at one crop size, and the pixels it covers at each centre."""

    sizes: np.ndarray  # (n, 2) int: width, height of size k
    scales: np.ndarray  # (n,) float: size k over the native size
    counts: np.ndarray  # (n, ceil(H / STRIDE), ceil(W / STRIDE)): pixels covered, centre (STRIDE·j, STRIDE·i)


_TABLES: "weakref.WeakKeyDictionary[Occluder, dict]" = weakref.WeakKeyDictionary()


def _sizes(occ: Occluder, W: int, H: int, max_extent: float) -> tuple[np.ndarray, np.ndarray]:
    """Every size of ``occ`` by its larger side, 2 px up to the largest the search solver allows."""
    ow, oh = occ.size
    side = max(ow, oh)
    top = max_extent * min(W / ow, H / oh)
    scales = np.arange(2, max(int(np.floor(top * side)), 2) + 1) / side
    sizes = np.array([(max(1, round(s * ow)), max(1, round(s * oh))) for s in scales], int)
    return sizes, scales


def coverage_table(occ: Occluder, W: int, H: int, rect: bool, max_extent: float) -> CoverageTable:
    """The table of ``occ`` at crop size W×H (``rect``: the whole rectangle, else the alpha mask)."""
    key = (W, H, rect, max_extent)
    tables = _TABLES.setdefault(occ, {})
    if key in tables:
        return tables[key]
    sizes, scales = _sizes(occ, W, H, max_extent)
    cx, cy = np.arange(0, W, STRIDE), np.arange(0, H, STRIDE)
    counts = np.empty((len(sizes), len(cy), len(cx)), np.uint16 if W * H < 2**16 else np.uint32)
    for k, (w, h) in enumerate(sizes):
        u0, u1 = np.clip(w // 2 - cx, 0, w), np.clip(W - cx + w // 2, 0, w)  # visible columns of the mask
        v0, v1 = np.clip(h // 2 - cy, 0, h), np.clip(H - cy + h // 2, 0, h)
        if rect:
            counts[k] = (v1 - v0)[:, None] * (u1 - u0)[None, :]
            continue
        s = cv2.integral(alpha_mask(occ, int(w), int(h)).astype(np.uint8))
        counts[k] = s[v1[:, None], u1] - s[v0[:, None], u1] - s[v1[:, None], u0] + s[v0[:, None], u0]
    tables[key] = CoverageTable(sizes, scales, counts)
    return tables[key]


def _candidates(rng: np.random.Generator, occ: Occluder, table: CoverageTable, W: int, H: int, cfg
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CENTRE_TRIES candidate centres as grid rows and columns, (CENTRE_TRIES, n) each (semantic
    placement: the centre moves with the size, by the occluder's anchor; random placement:
    (CENTRE_TRIES, 1), one centre for every size), and their coverage curves in pixels,
    (CENTRE_TRIES, n)."""
    rows, cols = table.counts.shape[1:]
    n = len(table.sizes)
    if cfg.placement == "semantic" and occ.hint in ("eyes", "mouth"):
        fx, fy = face_points(H, W)[occ.hint]
        d = rng.normal(0.0, cfg.jitter, (CENTRE_TRIES, 2)) * (W, H)
        cx = fx + d[:, :1] + (0.5 - occ.anchor[0]) * table.sizes[None, :, 0]
        cy = fy + d[:, 1:] + (0.5 - occ.anchor[1]) * table.sizes[None, :, 1]
        i = np.clip(np.rint(cy / STRIDE), 0, rows - 1).astype(int)
        j = np.clip(np.rint(cx / STRIDE), 0, cols - 1).astype(int)
    else:  # one centre per candidate, whatever the size
        i, j = rng.integers(0, rows, (CENTRE_TRIES, 1)), rng.integers(0, cols, (CENTRE_TRIES, 1))
    return i, j, table.counts[np.arange(n), i, j]


def _choose(curves: np.ndarray, need: float) -> tuple[int, int]:
    """(candidate, size): the first candidate that reaches ``need`` pixels at the size nearest
    it, else the largest coverage of any candidate."""
    reaching = np.nonzero(curves.max(axis=1) >= need)[0]
    if not reaching.size:
        c, k = np.unravel_index(int(np.argmax(curves)), curves.shape)
        return int(c), int(k)
    c = int(reaching[0])
    k = int(np.argmax(curves[c] >= need))
    if k > 0 and need - curves[c, k - 1] < curves[c, k] - need:
        k -= 1
    return c, k


def curve_occlude(image: np.ndarray, rng: np.random.Generator, occ: Occluder, cfg, target: float):
    """Occlude ``image`` with ``occ`` at the size whose coverage is nearest ``target``; returns
    (image, mask, covered fraction, (x0, y0, w, h, scale))."""
    H, W = image.shape[:2]
    table = coverage_table(occ, W, H, cfg.blend == "rect", cfg.max_extent)
    i, j, curves = _candidates(rng, occ, table, W, H, cfg)
    c, k = _choose(curves, target * W * H)
    w, h = (int(v) for v in table.sizes[k])
    i, j = np.broadcast_to(i, curves.shape), np.broadcast_to(j, curves.shape)
    x0, y0 = int(j[c, k]) * STRIDE - w // 2, int(i[c, k]) * STRIDE - h // 2
    out, mask = paste(image, occ, x0, y0, w, h, cfg.blend)
    return out, mask, float(np.count_nonzero(mask)) / (W * H), (x0, y0, w, h, float(table.scales[k]))


def curve_best(rng: np.random.Generator, occ: Occluder, W: int, H: int, cfg) -> float:
    """For the calibration: the largest coverage one draw of candidate centres can reach (exact:
    what the paste at that size covers)."""
    table = coverage_table(occ, W, H, cfg.blend == "rect", cfg.max_extent)
    return float(_candidates(rng, occ, table, W, H, cfg)[2].max()) / (W * H)
