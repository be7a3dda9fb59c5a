"""Tiny synthetic datasets for the alob_train tests, in the layouts occgen writes
(README.md, "occgen" and "alob-train").

Each class is a distinct colour pattern with noise, so a model can learn it in a few steps.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import webdataset as wds
from PIL import Image


def class_image(label: int, index: int, size: tuple[int, int], seed: int = 0) -> np.ndarray:
    """A uint8 HWC RGB image for class ``label``: a class colour and stripe period, plus noise."""
    rng = np.random.default_rng((seed, label, index))
    h, w = size
    base = np.array([(label * 67) % 256, (label * 131 + 40) % 256, (label * 29 + 90) % 256], dtype=np.float32)
    yy = np.arange(h)[:, None, None]
    stripes = 60 * np.sin(yy * (0.2 + 0.15 * (label % 5)))
    image = base + stripes + rng.normal(0, 20, (h, w, 3))
    return np.clip(image, 0, 255).astype(np.uint8)


def _png(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def write_shards(out: Path, classes: int = 4, per_class: int = 8, size: tuple[int, int] = (40, 32),
                 shards: int = 2, fmt: str = "png", broken: tuple[int, ...] = ()) -> Path:
    """occgen shard form: OUT/shards/train-%06d.tar (<key>.png|jpg, <key>.mask.png, <key>.json), classes.csv;
    in the shards numbered in ``broken`` every image is bytes that do not decode (bad samples)."""
    (out / "shards").mkdir(parents=True, exist_ok=True)
    samples = [(c, i) for i in range(per_class) for c in range(classes)]
    writers = [wds.TarWriter(str(out / "shards" / f"train-{k:06d}.tar")) for k in range(shards)]
    for n, (label, index) in enumerate(samples):
        image = class_image(label, index, size)
        mask = np.zeros(size, np.uint8)
        writers[n % shards].write({
            "__key__": f"id{label:03d}/img{index:04d}",
            fmt: b"not an image" if n % shards in broken else _png(image) if fmt == "png" else _jpeg(image),
            "mask.png": _png(mask),
            "json": {"label": label, "identity": f"id{label:03d}", "occluded": False, "kind": "clean",
                     "category": "", "ratio": 0.0},
        })
    for w in writers:
        w.close()
    pd.DataFrame({"label": range(classes), "identity": [f"id{c:03d}" for c in range(classes)],
                  "count": [per_class] * classes}).to_csv(out / "classes.csv", index=False)
    return out


def _jpeg(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def write_folders(out: Path, classes: int = 4, per_class: int = 8, size: tuple[int, int] = (40, 32)) -> Path:
    """Plain identity folders OUT/<identity>/<n>.png."""
    for label in range(classes):
        folder = out / f"id{label:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        for index in range(per_class):
            Image.fromarray(class_image(label, index, size)).save(folder / f"{index:04d}.png")
    return out


def write_pairs(out: Path, classes: int = 4, per_class: int = 6, size: tuple[int, int] = (40, 32)) -> Path:
    """occgen folder form with pairs.csv (path1, path2, same, fold) for --val."""
    write_folders(out / "images", classes, per_class, size)
    rows = []
    for label in range(classes):
        for i in range(0, per_class - 1, 2):
            rows.append((f"images/id{label:03d}/{i:04d}.png", f"images/id{label:03d}/{i + 1:04d}.png", 1))
            other = (label + 1) % classes
            rows.append((f"images/id{label:03d}/{i:04d}.png", f"images/id{other:03d}/{i:04d}.png", 0))
    table = pd.DataFrame(rows, columns=["path1", "path2", "same"])
    table["fold"] = np.arange(len(table)) * 10 // len(table)
    table.to_csv(out / "pairs.csv", index=False)
    return out
