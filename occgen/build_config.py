"""What an ``occgen build`` makes: :class:`BuildConfig` (everything that decides the output, kept
as ``settings`` in dataset.json), the defaults that depend on the source (size mode, output
form), the dataset's conventional name, and :class:`Job` (one run over some of the work)."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from occgen.library import library_or_default
from occgen.masks import MaskConfig
from occgen.synth import (
    FROM_TRAINING_SCALE_SET,
    OcclusionConfig,
    calibrated_mean,
    parse_clean_ratio,
    parse_scale_set,
)

SOURCES = ("lfw", "folder", "rec", "bin")
TRAINING_SOURCES = ("folder", "rec")  # training sets; the others are verification sets with pairs.csv
FORMATS = ("folder", "shards", "rec")
KINDS = ("occluder", "mask", "mixed")
# The occluder size mode when none is given: LFW-OCC-3.0's mean coverage for evaluation sets,
# FROM's training recipe for training sets (scale sets written as on the command line).
DEFAULT_SIZE_MODE: dict[str, dict[str, float | str]] = {
    "lfw": {"ratio": 0.52}, "folder": {"scale_set": FROM_TRAINING_SCALE_SET},
    "rec": {"scale_set": FROM_TRAINING_SCALE_SET}, "bin": {"ratio": 0.52},
}
DEFAULT_FORMAT = {"lfw": "folder", "folder": "shards", "rec": "shards", "bin": "folder"}  # when none is given
DEFAULT_CLEAN_RATIO = "1:2"  # clean:occluded training samples (FROM's)


def default_size_mode(source: str) -> dict[str, float | tuple[float, ...]]:
    """The :class:`OcclusionConfig` size-mode field of ``source`` when none is given, e.g.
    ``{"ratio": 0.52}`` for ``lfw``."""
    return {key: parse_scale_set(value) if key == "scale_set" else value
            for key, value in DEFAULT_SIZE_MODE[source].items()}


def default_occlusion(source: str, **options) -> OcclusionConfig:
    """An :class:`OcclusionConfig` with ``source``'s default size mode and ``options`` (blend,
    placement …); give a size mode in ``options`` to replace the default."""
    modes = {"factor", "scale_set", "ratio"}
    size = {} if modes & {k for k, v in options.items() if v is not None} else default_size_mode(source)
    return OcclusionConfig(**{**options, **size})


@dataclass(frozen=True)
class BuildConfig:
    """Everything that decides the output (``settings`` in dataset.json) plus how work is split."""

    source: str  # one of SOURCES
    occlusion: OcclusionConfig
    seed: int = 0
    copies: int = 1
    clean: float = parse_clean_ratio(DEFAULT_CLEAN_RATIO)  # probability that a training sample stays clean
    format: str = "folder"  # one of FORMATS
    image_format: str = "jpg"
    jpeg_quality: int = 95
    unit_size: int = 1000
    occluders: str | None = None
    pairs: str | None = None
    kind: str = "occluder"  # occluder, mask or mixed (of the occluded samples, mask_fraction get masks)
    masks: MaskConfig = field(default_factory=MaskConfig)
    mask_fraction: float = 0.5

    @property
    def training(self) -> bool:
        """A training set (samples with copies, some kept clean, classes.csv) rather than a
        verification set (every image occluded beside its clean copy, pairs.csv)."""
        return self.source in TRAINING_SOURCES

    def settings(self) -> dict:
        """The settings as plain JSON values; occluder builds keep the keys they always had."""
        settings = asdict(self)
        settings["occlusion"] = _plain(asdict(self.occlusion))
        if self.occlusion.mode != "ratio":  # the solver only matters in ratio mode; other builds keep their keys
            settings["occlusion"].pop("ratio_solver")
        if self.kind == "occluder":
            for key in ("kind", "masks", "mask_fraction"):
                settings.pop(key)
        else:
            settings["masks"] = _plain(asdict(self.masks))
            if self.kind == "mask":
                settings.pop("occlusion")
                settings.pop("mask_fraction")
        return settings


def _plain(values: dict) -> dict:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in values.items()}


@dataclass
class Job:
    """One build run over some of the units."""

    src: Path
    out: Path
    config: BuildConfig
    shard_index: int = 0
    num_shards: int = 1
    workers: int = 0
    command: list[str] = field(default_factory=list)


def dataset_name(config: BuildConfig, src: str | Path) -> str:
    """A conventional name: ``lfw-occ-3.0`` (FROM's factor, rect), ``lfw-occ-r0.52`` (target
    coverage), ``lfw-occ-s1-5`` (scale set), with ``-alpha``/``-rect`` and ``-semantic`` when
    they differ from the mode's usual blending and placement; ``<src>-occ-…`` for folders."""
    occ = config.occlusion
    if occ.mode == "factor":
        tag, usual = f"{occ.factor:.1f}", "rect"
    elif occ.mode == "scale_set":
        tag, usual = f"s{min(occ.scale_set):g}-{max(occ.scale_set):g}", "alpha"
    else:
        tag, usual = f"r{occ.ratio:g}", "alpha"
    base = "lfw" if config.source == "lfw" else _source_name(config.source, Path(src))
    if config.kind == "mask":
        return f"{base}-masked"
    if config.kind == "mixed":
        tag += f"-m{config.mask_fraction:g}"
    name = f"{base}-occ-{tag}" + ("" if occ.blend == usual else f"-{occ.blend}")
    return name + ("-semantic" if occ.placement == "semantic" else "")


def _source_name(source: str, src: Path) -> str:
    """``faces_webface_112x112`` for a pack folder or its ``.rec``, ``lfw`` for ``lfw.bin``, the
    folder's name for a folder."""
    if source == "bin":
        return src.stem
    if source == "rec" and src.suffix == ".rec":
        return src.resolve().parent.name
    return src.resolve().name


def prepare_config(config: BuildConfig, first_image: np.ndarray | None) -> BuildConfig:
    """Fix everything derived once per build: the calibrated target mean of ratio mode."""
    occ = config.occlusion
    if config.kind != "mask" and occ.mode == "ratio" and occ.target_mean is None and first_image is not None:
        library = library_or_default(config.occluders).subset(occ.categories)
        h, w = first_image.shape[:2]
        occ = replace(occ, target_mean=round(calibrated_mean(library, occ, w, h), 6))
    return replace(config, occlusion=occ)


def default_workers() -> int:
    """Worker processes when none are given: one per CPU core (never changes the output)."""
    return os.cpu_count() or 1
