"""``occgen preview``: a contact sheet of a built dataset, each sample with its mask outline."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd

from alob_common.atomic import write_bytes_atomic
from alob_common.images import decode_rgb, encode
from occgen.library import OccgenError
from occgen.sheet import grid, label, outline


def _folder_samples(root: Path, manifest: pd.DataFrame) -> list[tuple[np.ndarray, np.ndarray, str]]:
    out = []
    for row in manifest.to_dict("records"):
        image = decode_rgb((root / row["path"]).read_bytes())
        mask = decode_rgb((root / row["mask_path"]).read_bytes()) if row["mask_path"] else None
        mask = mask[..., 0] if mask is not None else np.zeros(image.shape[:2], np.uint8)
        out.append((image, mask, _caption(row)))
    return out


def _caption(row: dict) -> str:
    if str(row.get("kind")) == "mask":
        return f"{str(row.get('asset', '')).replace('mtf:', '')[:12]} {float(row['ratio']) * 100:.0f}%"
    if str(row.get("kind")) != "occluder":
        return "clean"
    return f"{str(row.get('category', ''))[:10]} {float(row['ratio']) * 100:.0f}%"


def _shard_samples(root: Path, count: int, rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray, str]]:
    shards = sorted((root / "shards").glob("*.tar"))
    if not shards:
        raise OccgenError(f"no manifest.csv images or shards/*.tar under {root}")
    samples: dict[str, dict] = {}
    with tarfile.open(shards[int(rng.integers(len(shards)))]) as tar:
        for member in tar:
            key, ext = member.name.split(".", 1)
            samples.setdefault(key, {})[ext] = tar.extractfile(member).read()
    keys = sorted(samples)
    chosen = sorted(rng.choice(len(keys), size=min(count, len(keys)), replace=False))
    out = []
    for i in chosen:
        s = samples[keys[i]]
        image_ext = next(e for e in s if e in ("jpg", "png", "jpeg"))
        meta = json.loads(s["json"])
        out.append((decode_rgb(s[image_ext]), decode_rgb(s["mask.png"])[..., 0], _caption(meta)))
    return out


def preview(root: str | Path, out: str | Path | None = None, count: int = 48, cols: int = 12, seed: int = 0,
            scale: int = 2, kind: str = "occluder", by_type: bool = False, category: str | None = None) -> Path:
    """Write a PNG contact sheet of ``count`` random samples of a built dataset; returns its path.

    ``by_type`` (folder form): one row of ``cols`` samples per mask type or occluder category,
    instead of ``count`` samples drawn from all. ``category``: only that mask type (occluder category).
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    if (root / "manifest.csv").exists() and (root / "images").is_dir():
        table = pd.read_csv(root / "manifest.csv", dtype=str, keep_default_na=False)
        table = table[(table["status"] == "ok") & (table["path"] != "")]
        if kind != "all":
            table = table[table["kind"] == kind]
        if category:
            table = table[table["category"] == category]
        if table.empty:
            raise OccgenError(f"no {kind} samples{f' of {category}' if category else ''} in {root}/manifest.csv")
        if by_type:
            picked = []
            for _, group in table.groupby("category", sort=True):
                picked.append(group.iloc[sorted(rng.choice(len(group), size=cols, replace=len(group) < cols))])
            rows = pd.concat(picked)
        else:
            rows = table.iloc[sorted(rng.choice(len(table), size=min(count, len(table)), replace=False))]
        samples = _folder_samples(root, rows)
    else:
        samples = _shard_samples(root, count, rng)
    size = samples[0][0].shape[:2]
    cells = []
    for image, mask, caption in samples:
        if image.shape[:2] != size:
            continue
        big = np.repeat(np.repeat(image, scale, axis=0), scale, axis=1)
        big_mask = np.repeat(np.repeat(mask, scale, axis=0), scale, axis=1)
        cells.append(label(outline(big, big_mask), caption))
    sheet = grid(cells, min(cols, len(cells)))
    target = Path(out) if out else root / "preview.png"
    write_bytes_atomic(target, encode(sheet, ".png"))
    return target
