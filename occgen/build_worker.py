"""The per-unit work of a build, run in worker processes (or in the calling one).

:func:`init_worker` loads what every sample needs once per process (the occluder library, the
mask templates); :func:`run_unit` decodes, occludes or masks and encodes the samples of one unit,
writes them (files or one WebDataset tar) and ends by writing the unit's piece of the manifest.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from alob_common.atomic import link_or_copy_atomic, write_bytes_atomic
from alob_common.errors import UserError
from alob_common.images import decode_rgb, encode
from occgen.build_config import BuildConfig
from occgen.build_plan import MANIFEST_COLUMNS, SPLIT, Sample, unit_paths
from occgen.build_sources import read_input
from occgen.face_landmarks import crop_landmarks
from occgen.library import library_or_default
from occgen.masks import mask_face
from occgen.masktheface import load_templates_cached
from occgen.pack_writer import write_pack_piece
from occgen.ratio_curve import adopt_tables
from occgen.rng import rng_for
from occgen.synth import occlude
from occgen.writers import FolderWriter, ShardWriter

SHARD_META = ("label", "identity", "source", "occluded", "kind", "category", "asset", "scale", "ratio", "x", "y",
              "w", "h", "seed", "landmarks", "yaw")  # the manifest columns in each shard sample's json

_STATE: dict = {}  # per process: the config, the occluder library, mask templates, landmark tables


def init_worker(config: BuildConfig, tables: dict | None = None) -> None:
    """Load what every sample of ``config`` needs, once per process (``tables``: ratio mode's
    coverage tables, as the calling process exported them)."""
    cv2.setNumThreads(1)
    _STATE["config"] = config
    _STATE["landmarks"] = {}
    if config.masks.templates and config.kind != "occluder":
        _STATE["templates"] = load_templates_cached(config.masks.templates)
    if config.kind == "mask":
        _STATE["library"] = None
        return
    _STATE["library"] = library_or_default(config.occluders).subset(config.occlusion.categories)
    if tables is not None:
        adopt_tables(_STATE["library"], tables)


def run_unit(task: tuple[str, str, int, list[Sample]]) -> tuple[int, int]:
    """Build one unit; returns (unit, number of samples written)."""
    src, out, unit, samples = task
    src, out = Path(src), Path(out)
    config: BuildConfig = _STATE["config"]
    rows: list[dict] = []
    written: list[tuple[Sample, dict, dict]] = []
    for sample in samples:
        rows_for, outputs = make_sample(src, sample, config)
        rows += rows_for
        if outputs:
            written.append((sample, outputs, rows_for[-1]))
    if config.format == "shards":
        _write_shard(out, unit, written, rows, config)
    elif config.format == "rec":
        write_pack_piece(unit_paths(out, unit, "rec")[1], [(s.label, o["image"]) for s, o, _ in written], rows)
    else:
        _write_files(src, out, written, config.source)
    piece, _ = unit_paths(out, unit, config.format)
    write_bytes_atomic(piece, manifest_csv(rows))
    return unit, len(written)


def _cell(value: object) -> object:
    """A value as pandas writes it in a CSV: numpy scalars as the Python numbers they hold."""
    if isinstance(value, (float, np.floating)):
        return float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def manifest_csv(rows: list[dict]) -> bytes:
    """The rows (each holding every column, as :func:`make_sample` makes them) as a manifest
    piece: the MANIFEST_COLUMNS in order, written with the csv module (what pandas'
    ``to_csv(index=False)`` writes for them, at a fraction of its cost per unit)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(MANIFEST_COLUMNS)
    writer.writerows([_cell(row[c]) for c in MANIFEST_COLUMNS] for row in rows)
    return buffer.getvalue().encode()


def _write_shard(out: Path, unit: int, written: list[tuple[Sample, dict, dict]], rows: list[dict],
                 config: BuildConfig) -> None:
    """The unit's samples as one WebDataset tar; its ok rows name the shard."""
    shard = f"shards/{SPLIT}-{unit:06d}.tar"
    with ShardWriter(out / shard) as writer:
        for _, outputs, row in written:
            meta = {k: row[k] for k in SHARD_META if row[k] != ""}
            writer.write({"__key__": outputs["name"], config.image_format: outputs["image"],
                          "mask.png": outputs["mask"], "json": json.dumps(meta, sort_keys=True).encode()})
    for row in rows:
        if row["status"] == "ok":
            row["shard"] = shard


def _write_files(src: Path, out: Path, written: list[tuple[Sample, dict, dict]], source: str) -> None:
    """The unit's samples in the folder form: image, mask and (verification sets) the clean
    copy, linked to a source file or written from the bytes read out of a ``.bin``."""
    folder = FolderWriter(out)
    for sample, outputs, row in written:
        if "clean_copy" in outputs and source == "bin":
            folder.write(outputs["clean_path"], outputs["clean_copy"])
        elif "clean_copy" in outputs:  # a link to the file the source name is or points to
            link_or_copy_atomic(os.path.join(src, sample.rel), os.path.join(out, outputs["clean_path"]),
                                outputs["clean_copy"])
        folder.write(row["path"], outputs["image"])
        if row["mask_path"]:
            folder.write(row["mask_path"], outputs["mask"])


def _source_landmarks(src: Path) -> dict[str, dict]:
    """align-faces' manifest rows of ``src`` by path (landmarks in source pixels), once per worker."""
    cache = _STATE.setdefault("landmarks", {})
    if str(src) not in cache:
        rows: dict[str, dict] = {}
        manifest = src / "manifest.csv"
        if manifest.exists():
            table = pd.read_csv(manifest, dtype=str, keep_default_na=False)
            if {"path", "lx1", "ly5"} <= set(table.columns):
                rows = {r["path"]: r for r in table.to_dict("records") if r["path"] and r["lx1"]}
        cache[str(src)] = rows
    return cache[str(src)]


def _mask_sample(src: Path, sample: Sample, image: np.ndarray, rng: np.random.Generator, config: BuildConfig
                 ) -> tuple[np.ndarray, np.ndarray, dict]:
    """One face mask, fitted to align-faces' landmarks of the image when its manifest has them."""
    row = _source_landmarks(src).get(sample.rel)
    points5 = crop_landmarks(row, *image.shape[:2]) if row else None
    out, mask, info = mask_face(image, rng, config.masks, points5, _STATE.get("templates"))
    if points5 is None and info["landmarks"] == "template5":
        reasons = [r for r in info["reason"].split("; ") if r and not r.startswith("no landmarks")]
        info["reason"] = "; ".join(["no landmarks in the aligned folder's manifest", *reasons])
    return out, mask.astype(np.uint8) * 255, info


def make_sample(src: Path, sample: Sample, config: BuildConfig) -> tuple[list[dict], dict]:
    """Decode, occlude (or not) and encode one sample; returns its manifest rows and bytes."""
    base = {c: "" for c in MANIFEST_COLUMNS}
    base.update(source=sample.rel, identity=sample.identity, label=sample.label, key=sample.key,
                seed=config.seed, status="ok")
    try:
        data = read_input(config.source, src, sample.rel)
    except (OSError, UserError) as err:
        return [dict(base, status="failed", reason=f"unreadable: {getattr(err, 'strerror', None) or err}")], {}
    image = decode_rgb(data)
    if image is None:
        return [dict(base, status="failed", reason="not a readable image")], {}
    out_image, mask, row = _transform(src, sample, image, base, config)
    stem = sample.rel.rsplit(".", 1)[0]
    ext = "." + config.image_format
    suffix = f"_{sample.copy}" if config.training and config.copies > 1 else ""
    outputs = {"name": f"s{sample.index:08d}", "image": encode(out_image, ext, config.jpeg_quality),
               "mask": encode(mask, ".png")}
    rows = []
    if config.format == "folder":
        row["path"] = f"images/{stem}{suffix}{ext}"
        row["mask_path"] = f"masks/{stem}{suffix}.png" if row["occluded"] else ""
    if not config.training:
        clean = dict(base, occluded=False, kind="clean", ratio=0.0, path=f"clean/{sample.rel}")
        rows.append(clean)
        outputs["clean_copy"], outputs["clean_path"] = data, clean["path"]
    rows.append(row)
    return rows, outputs


def _transform(src: Path, sample: Sample, image: np.ndarray, base: dict, config: BuildConfig
               ) -> tuple[np.ndarray, np.ndarray, dict]:
    """Keep the sample clean, mask it or occlude it, by its own random draws; returns the image,
    the mask (uint8, 255 where covered) and the manifest row."""
    rng = rng_for(config.seed, sample.key)
    if config.training and rng.random() < config.clean:
        return image, np.zeros(image.shape[:2], np.uint8), dict(base, occluded=False, kind="clean", ratio=0.0)
    if config.kind == "mask" or (config.kind == "mixed" and rng.random() < config.mask_fraction):
        out_image, mask, info = _mask_sample(src, sample, image, rng, config)
        return out_image, mask, dict(base, occluded=True, kind="mask", category=info["type"], asset=info["variant"],
                                     reason=info["reason"], landmarks=info["landmarks"], yaw=info["yaw"],
                                     **{k: info[k] for k in ("ratio", "x", "y", "w", "h")})
    out_image, mask, info = occlude(image, rng, _STATE["library"], config.occlusion)
    return out_image, mask, dict(base, occluded=True, kind="occluder", **{k: info[k] for k in
                                 ("category", "asset", "scale", "ratio", "x", "y", "w", "h")})
