"""The work of a build: the usable inputs under SRC, the sorted sample list and its units.

Each sample's randomness comes from (seed, its key), and the list is cut into fixed units of
``unit_size`` samples; unit ``u`` belongs to job ``u % num_shards`` and ends by writing its
piece of the manifest (``OUT/.parts/``), so a rerun skips finished units.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from alob_common.images import ImageScan, scan_images
from occgen.build_config import BuildConfig

MANIFEST_COLUMNS = [
    "path", "mask_path", "identity", "label", "source", "occluded", "kind", "category", "asset", "scale",
    "ratio", "x", "y", "w", "h", "seed", "key", "shard", "status", "reason", "landmarks", "yaw",
]
SPLIT = "train"
ALIGNED_FOLDER_FILES = ("manifest.csv", "dataset.json")  # align-faces' own files beside the images


@dataclass
class Sample:
    """One output sample: one source image, and which of its copies."""

    key: str  # stable identity of the sample: its randomness comes from (seed, key)
    index: int
    rel: str  # source path relative to SRC
    identity: str
    label: int
    copy: int = 0


def scan_inputs(src: Path, examples: int = 5) -> ImageScan:
    """The images under ``src`` and the other files passed over, not counting an aligned
    folder's own ``manifest.csv`` and ``dataset.json``."""
    scan = scan_images(src, examples + len(ALIGNED_FOLDER_FILES))
    expected = [name for name in ALIGNED_FOLDER_FILES if (src / name).is_file()]
    scan.others -= len(expected)
    scan.other_examples = [name for name in scan.other_examples if name not in expected][:examples]
    return scan


def list_sources(src: Path, scan: ImageScan | None = None) -> tuple[list[str], list[dict]]:
    """Relative paths of the usable images under ``src`` and manifest rows for unusable inputs.

    An aligned folder's ``manifest.csv`` is honoured: inputs that alignment could not write are
    carried over as ``failed`` rows, so the manifest still says what happened to every input.
    Otherwise every image under ``src`` is used (``scan``, when the caller already has it).
    """
    manifest = src / "manifest.csv"
    if manifest.exists():
        table = pd.read_csv(manifest, dtype=str, keep_default_na=False)
        if {"path", "status", "source"} <= set(table.columns):
            usable = table[(table["path"] != "") & table["status"].isin(["ok", "fallback"])]
            failed = [
                {"source": r["source"], "identity": r.get("identity", ""), "status": "failed",
                 "reason": f"alignment: {r.get('reason', '') or r['status']}"}
                for r in table[~table.index.isin(usable.index)].to_dict("records")
            ]
            return sorted(usable["path"].tolist()), failed
    images = (scan or scan_images(src)).images
    return sorted(p.relative_to(src).as_posix() for p in images), []


def make_samples(rels: list[str], config: BuildConfig) -> tuple[list[Sample], list[str]]:
    """The sorted sample list and the identity list (label = position in it)."""
    identities = sorted({_identity(r) for r in rels})
    labels = {name: i for i, name in enumerate(identities)}
    samples = []
    copies = config.copies if config.training else 1
    for rel in rels:
        stem = rel.rsplit(".", 1)[0]
        for k in range(copies):
            key = stem if copies == 1 else f"{stem}#{k}"
            samples.append(Sample(key, len(samples), rel, _identity(rel), labels[_identity(rel)], k))
    return samples, identities


def _identity(rel: str) -> str:
    parent = Path(rel).parent.as_posix()
    return "" if parent == "." else parent


def cut_units(samples: list[Sample], unit_size: int) -> list[list[Sample]]:
    """The sample list cut into units of ``unit_size`` (the last one shorter)."""
    return [samples[i : i + unit_size] for i in range(0, len(samples), unit_size)]


def unit_paths(out: Path, unit: int, fmt: str) -> tuple[Path, Path | None]:
    """A unit's manifest piece and its data file: the tar in shard form, the piece of the pack
    (a small ``.rec``, assembled into ``train.rec`` at the end) in rec form, None in folder form."""
    name = f"{SPLIT}-{unit:06d}"
    data = {"shards": out / "shards" / f"{name}.tar", "rec": out / ".parts" / f"{name}.rec"}.get(fmt)
    return out / ".parts" / f"{name}.csv", data


def unit_done(out: Path, unit: int, config: BuildConfig) -> bool:
    """Whether a unit finished: its manifest piece exists (and its tar or pack piece)."""
    piece, data = unit_paths(out, unit, config.format)
    return piece.exists() and (data is None or data.exists())
