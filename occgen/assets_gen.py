"""Procedural generator of the project's own occluder library (``assets/occluders/``).

Every occluder is drawn with OpenCV and numpy from a seeded generator, so the committed PNGs can
be rebuilt byte for byte with ``occgen assets --regenerate``; no third-party image is used.
The canvas is :mod:`occgen.assets_canvas`; the families are drawn by :mod:`occgen.assets_eyewear`,
:mod:`occgen.assets_coverings` and :mod:`occgen.assets_held`.

Native pixel sizes follow FROM's convention that ``--factor F`` multiplies the occluder's own
size: each category has a design size relative to a 112×96 face, scaled by ``NATIVE_SCALE``,
chosen so that FROM's rectangle mode on this library gives FROM's published coverage
(factor 2.0 → about 43 %, factor 3.0 → about 52 % of the crop).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from alob_common.atomic import write_bytes_atomic
from occgen.assets_canvas import Canvas
from occgen.assets_coverings import mouth_mask, scarf
from occgen.assets_eyewear import eye_mask, eyeglasses, sunglasses
from occgen.assets_held import book_cover, cup, hand, phone

FACE_W, FACE_H = 96, 112
NATIVE_SCALE = 1.03
VARIANTS = 7
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
