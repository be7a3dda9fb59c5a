"""Closed-set identification on the AR face database (rank-1 for sunglasses and scarf probes).

AR's usual file naming is ``m-001-01.bmp`` / ``w-001-01.bmp`` (sex, person, image 1–26; any image
extension, any case). Images 1–13 are session 1, 14–26 session 2, in the same order: 1 neutral,
2 smile, 3 anger, 4 scream, 5–7 lighting, 8 sunglasses, 9–10 sunglasses + lighting, 11 scarf,
12–13 scarf + lighting.

Protocols (defaults; both configurable):

* protocol 1: gallery = six un-occluded images per person (1, 2, 3 and 14, 15, 16: neutral,
  smile, anger of both sessions);
* protocol 2: gallery = one image per person (1: neutral, session 1);
* probes: sunglasses = 8, 9, 10, 21, 22, 23; scarf = 11, 12, 13, 24, 25, 26.

A probe is identified as the person of its most similar gallery image (cosine).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

AR_NAME = re.compile(r"^(?P<sex>[mw])-(?P<person>\d{3})-(?P<image>\d{1,2})\.(?:bmp|jpe?g|png|raw|tif|tiff)$", re.IGNORECASE)
PROTOCOLS: dict[str, tuple[int, ...]] = {"1": (1, 2, 3, 14, 15, 16), "2": (1,)}
PROBES: dict[str, tuple[int, ...]] = {"sunglasses": (8, 9, 10, 21, 22, 23), "scarf": (11, 12, 13, 24, 25, 26)}


def scan_ar(folder: str | Path) -> pd.DataFrame:
    """Every AR-named image under ``folder``: ``path, identity, image``; other files ignored."""
    rows = []
    for path in sorted(Path(folder).rglob("*")):
        match = AR_NAME.match(path.name)
        if match and path.is_file():
            rows.append((str(path), f"{match['sex'].lower()}-{match['person']}", int(match["image"])))
    return pd.DataFrame(rows, columns=["path", "identity", "image"])


def rank1(gallery: np.ndarray, gallery_ids: np.ndarray, probes: np.ndarray, probe_ids: np.ndarray) -> float:
    """Fraction of probes whose most cosine-similar gallery vector has the probe's identity."""
    g = gallery / np.maximum(np.linalg.norm(gallery, axis=1, keepdims=True), 1e-12)
    p = probes / np.maximum(np.linalg.norm(probes, axis=1, keepdims=True), 1e-12)
    best = np.argmax(p @ g.T, axis=1)
    return float((np.asarray(gallery_ids)[best] == np.asarray(probe_ids)).mean())


def ar_identification(table: pd.DataFrame, vectors: dict[str, np.ndarray],
                      protocols: dict[str, tuple[int, ...]] = PROTOCOLS,
                      probes: dict[str, tuple[int, ...]] = PROBES) -> dict[str, dict[str, dict]]:
    """Rank-1 accuracy for each protocol × probe set: ``{protocol: {probe: {rank1, probes, people}}}``."""
    out: dict[str, dict[str, dict]] = {}
    for name, gallery_images in protocols.items():
        gallery = table[table.image.isin(gallery_images)]
        out[name] = {}
        for probe_name, probe_images in probes.items():
            probe = table[table.image.isin(probe_images) & table.identity.isin(gallery.identity)]
            if gallery.empty or probe.empty:
                out[name][probe_name] = {"rank1": float("nan"), "probes": 0, "people": int(gallery.identity.nunique())}
                continue
            accuracy = rank1(
                np.stack([vectors[p] for p in gallery.path]), gallery.identity.to_numpy(),
                np.stack([vectors[p] for p in probe.path]), probe.identity.to_numpy(),
            )
            out[name][probe_name] = {"rank1": accuracy, "probes": int(len(probe)), "people": int(gallery.identity.nunique())}
    return out
