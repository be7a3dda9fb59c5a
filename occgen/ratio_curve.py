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

Tables are built on first use (about half a CPU-second for the bundled library at 112×96, 70 MB)
and kept per occluder for the life of the process; a build makes them once and hands them to its
worker processes (:func:`export_tables`, :func:`adopt_tables`).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import cv2
import numpy as np

from occgen.library import Occluder, OccluderLibrary
from occgen.placement import CENTRE_TRIES, alpha_mask, face_points, paste

STRIDE = 2  # centres lie on this grid (pixels): the table stays small, placement stays fine-grained


@dataclass(frozen=True)
class CoverageTable:
    """The sizes an occluder takes at one crop size, and the pixels it covers at each centre."""

    sizes: np.ndarray  # (n, 2) int: width, height of size k
    scales: np.ndarray  # (n,) float: size k over the native size
    counts: np.ndarray  # (ceil(H / STRIDE), ceil(W / STRIDE), n): pixels covered, centre (STRIDE·j, STRIDE·i)
    reach: np.ndarray  # (ceil(H / STRIDE), ceil(W / STRIDE)): the most pixels any size covers there


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
    w, h = sizes[:, :1], sizes[:, 1:]
    u0, u1 = np.clip(w // 2 - cx, 0, w), np.clip(W - cx + w // 2, 0, w)  # visible columns of each size's mask
    v0, v1 = np.clip(h // 2 - cy, 0, h), np.clip(H - cy + h // 2, 0, h)  # and rows, per centre
    by_size = np.empty((len(sizes), len(cy), len(cx)), np.uint16 if W * H < 2**16 else np.uint32)
    for k, (width, height) in enumerate(sizes):
        if rect:
            by_size[k] = (v1[k] - v0[k])[:, None] * (u1[k] - u0[k])[None, :]
            continue
        s = cv2.integral(alpha_mask(occ, int(width), int(height)).astype(np.uint8))
        band = s[v1[k]] - s[v0[k]]  # the mask's pixels in the visible rows, summed up to each column
        by_size[k] = band[:, u1[k]] - band[:, u0[k]]
    counts = np.ascontiguousarray(by_size.transpose(1, 2, 0))
    tables[key] = CoverageTable(sizes, scales, counts, counts.max(axis=2))
    return tables[key]


def _semantic(rng: np.random.Generator, occ: Occluder, table: CoverageTable, W: int, H: int, cfg
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CENTRE_TRIES candidates of semantic placement, whose centre moves with the size (by the
    occluder's anchor): grid rows and columns, and coverage curves in pixels, (CENTRE_TRIES, n)."""
    rows, cols, n = table.counts.shape
    fx, fy = face_points(H, W)[occ.hint]
    d = rng.normal(0.0, cfg.jitter, (CENTRE_TRIES, 2)) * (W, H)
    cx = fx + d[:, :1] + (0.5 - occ.anchor[0]) * table.sizes[None, :, 0]
    cy = fy + d[:, 1:] + (0.5 - occ.anchor[1]) * table.sizes[None, :, 1]
    i = np.clip(np.rint(cy / STRIDE), 0, rows - 1).astype(int)
    j = np.clip(np.rint(cx / STRIDE), 0, cols - 1).astype(int)
    return i, j, table.counts[i, j, np.arange(n)]


def _nearest(curve: np.ndarray, need: float) -> int:
    """The size whose coverage is nearest ``need`` where the curve first reaches it."""
    k = int(np.argmax(curve >= need))
    if k > 0 and need - curve[k - 1] < curve[k] - need:
        k -= 1
    return k


def _place(rng: np.random.Generator, occ: Occluder, table: CoverageTable, W: int, H: int, cfg, need: float
           ) -> tuple[int, int, int]:
    """Grid row, grid column and size: the first of CENTRE_TRIES candidate centres that can cover
    ``need`` pixels, at the size nearest it; else the largest coverage any candidate reaches."""
    if cfg.placement == "semantic" and occ.hint in ("eyes", "mouth"):
        i, j, curves = _semantic(rng, occ, table, W, H, cfg)
        reaching = np.nonzero(curves.max(axis=1) >= need)[0]
        if reaching.size:
            c = int(reaching[0])
            k = _nearest(curves[c], need)
        else:
            c, k = (int(v) for v in np.unravel_index(int(np.argmax(curves)), curves.shape))
        return int(i[c, k]), int(j[c, k]), k
    rows, cols, _ = table.counts.shape
    i, j = rng.integers(0, rows, CENTRE_TRIES), rng.integers(0, cols, CENTRE_TRIES)
    reach = table.reach[i, j]
    reaching = np.nonzero(reach >= need)[0]
    c = int(reaching[0]) if reaching.size else int(np.argmax(reach))
    curve = table.counts[i[c], j[c]]
    return int(i[c]), int(j[c]), _nearest(curve, need) if reaching.size else int(np.argmax(curve))


def curve_occlude(image: np.ndarray, rng: np.random.Generator, occ: Occluder, cfg, target: float):
    """Occlude ``image`` with ``occ`` at the size whose coverage is nearest ``target``; returns
    (image, mask, covered fraction, (x0, y0, w, h, scale)); the covered fraction is the table's
    count, which is the pasted mask's (tests/test_occgen_speed_paths.py checks it)."""
    H, W = image.shape[:2]
    table = coverage_table(occ, W, H, cfg.blend == "rect", cfg.max_extent)
    i, j, k = _place(rng, occ, table, W, H, cfg, target * W * H)
    w, h = (int(v) for v in table.sizes[k])
    x0, y0 = j * STRIDE - w // 2, i * STRIDE - h // 2
    out, mask = paste(image, occ, x0, y0, w, h, cfg.blend)
    return out, mask, int(table.counts[i, j, k]) / (W * H), (x0, y0, w, h, float(table.scales[k]))


def curve_best(rng: np.random.Generator, occ: Occluder, W: int, H: int, cfg) -> float:
    """For the calibration: the largest coverage one draw of candidate centres can reach (exact:
    what the paste at that size covers)."""
    table = coverage_table(occ, W, H, cfg.blend == "rect", cfg.max_extent)
    i, j, k = _place(rng, occ, table, W, H, cfg, np.inf)
    return int(table.counts[i, j, k]) / (W * H)


def export_tables(library: OccluderLibrary, W: int, H: int, rect: bool, max_extent: float) -> dict:
    """Every occluder's table at W×H (built here when missing), to hand to worker processes so
    they do not build them again (:func:`adopt_tables`)."""
    return {"fingerprint": library.fingerprint, "key": (W, H, rect, max_extent),
            "tables": [coverage_table(occ, W, H, rect, max_extent) for occ in library.occluders]}


def adopt_tables(library: OccluderLibrary, shared: dict) -> None:
    """Use the tables another process exported, when they were made for this very library."""
    if shared["fingerprint"] == library.fingerprint and len(shared["tables"]) == len(library.occluders):
        for occ, table in zip(library.occluders, shared["tables"]):
            _TABLES.setdefault(occ, {})[shared["key"]] = table
