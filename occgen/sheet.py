"""Contact sheets: occluders on a checkerboard and dataset samples with their mask outlines."""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np


def checkerboard(h: int, w: int, step: int = 8) -> np.ndarray:
    """A light grey checkerboard (RGB uint8), the usual backdrop that makes transparency visible."""
    ys, xs = np.mgrid[0:h, 0:w]
    light = ((ys // step + xs // step) % 2).astype(bool)
    out = np.full((h, w, 3), 200, np.uint8)
    out[light] = 230
    return out


def over(background: np.ndarray, rgba: np.ndarray) -> np.ndarray:
    """Alpha-composite an RGBA image of the same size over an RGB background."""
    a = rgba[..., 3:4].astype(np.float32) / 255.0
    return np.rint(rgba[..., :3] * a + background * (1 - a)).astype(np.uint8)


def fit_rgba(rgba: np.ndarray, box: int) -> np.ndarray:
    """Scale an RGBA image to fit a ``box``×``box`` cell (premultiplied, so edges stay clean)."""
    h, w = rgba.shape[:2]
    s = box / max(h, w)
    size = (max(1, round(w * s)), max(1, round(h * s)))
    a = rgba[..., 3:4].astype(np.float32) / 255.0
    prem = cv2.resize(rgba[..., :3] * a, size, interpolation=cv2.INTER_CUBIC)
    alpha = np.clip(cv2.resize(a[..., 0], size, interpolation=cv2.INTER_CUBIC), 0, 1)
    rgb = prem / np.maximum(alpha[..., None], 1e-3)
    return np.dstack([np.clip(rgb, 0, 255), alpha * 255]).round().astype(np.uint8)


def label(image: np.ndarray, text: str, scale: float = 0.35) -> np.ndarray:
    """Write ``text`` in the top-left corner (white on a dark band)."""
    out = image.copy()
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    cv2.rectangle(out, (0, 0), (min(out.shape[1], tw + 4), th + 5), (30, 30, 30), -1)
    cv2.putText(out, text, (2, th + 2), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def grid(cells: Sequence[np.ndarray], cols: int, pad: int = 4, fill: int = 255) -> np.ndarray:
    """Tile equally sized RGB cells row by row with ``pad`` pixels between them."""
    h, w = cells[0].shape[:2]
    rows = (len(cells) + cols - 1) // cols
    out = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, 3), fill, np.uint8)
    for i, cell in enumerate(cells):
        r, c = divmod(i, cols)
        out[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + c * (w + pad) : pad + c * (w + pad) + w] = cell
    return out


def outline(image: np.ndarray, mask: np.ndarray, colour=(255, 40, 40)) -> np.ndarray:
    """Draw the boundary of a binary mask over an RGB image."""
    out = image.copy()
    contours, _ = cv2.findContours((mask > 127).astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(out, contours, -1, colour, 1)
    return out


def library_sheet(occluders, box: int = 112, per_row: int | None = None) -> np.ndarray:
    """One row per category: every occluder fitted in a ``box`` cell on a checkerboard."""
    by_cat: dict[str, list] = {}
    for occ in occluders:
        by_cat.setdefault(occ.category, []).append(occ)
    cols = per_row or max(len(v) for v in by_cat.values())
    rows = []
    for category, items in by_cat.items():
        cells = []
        for occ in items[:cols]:
            rgba = fit_rgba(np.dstack([occ.rgb, occ.alpha]), box - 8)
            cell = checkerboard(box, box)
            y, x = (box - rgba.shape[0]) // 2, (box - rgba.shape[1]) // 2
            cell[y : y + rgba.shape[0], x : x + rgba.shape[1]] = over(cell[y : y + rgba.shape[0], x : x + rgba.shape[1]], rgba)
            cells.append(cell)
        cells += [np.full((box, box, 3), 255, np.uint8)] * (cols - len(cells))
        title = np.full((box, box + 16, 3), 255, np.uint8)
        cv2.putText(title, category, (4, box // 2 + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (20, 20, 20), 1, cv2.LINE_AA)
        rows.append(np.hstack([title, grid(cells, cols)[4:-4, :]]))
    return grid(rows, 1, pad=4)
