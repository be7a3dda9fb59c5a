"""Dataset builders behind ``occgen build``.

``lfw``: every aligned image occluded once, written beside a clean copy in the folder form
(``clean/``, ``images/``, ``masks/``), plus ``pairs.csv`` (image 1 clean, image 2 occluded,
folds kept). ``folder``: any identity-folder tree becomes a training set, each source image
giving ``copies`` samples that stay clean with probability ``clean`` (FROM's 1:2), written as
WebDataset shards (default) or in the folder form, with ``classes.csv``.

The work is a sorted list of samples cut into fixed units of ``unit_size``; unit ``u`` belongs
to job ``u % num_shards``, runs in any worker, and ends by writing its piece of the manifest
(``OUT/.parts/``). Every sample's randomness comes from (seed, key), so the outputs are the
same byte for byte whatever ``workers`` or ``num_shards``; a rerun skips finished units. When
all pieces exist, ``manifest.csv``, ``classes.csv``, ``pairs.csv`` and ``dataset.json`` are
assembled (by whichever job finishes last, or by a rerun).
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd

from alob_common.atomic import link_or_copy_atomic, write_bytes_atomic
from alob_common.images import decode_rgb, encode, no_images_message, scan_images
from alob_common.pairs import parse_pairs_txt
from alob_common.settings import check_same_settings
from occgen.library import OccgenError, load_library
from occgen.face_landmarks import crop_landmarks
from occgen.masks import MaskConfig, mask_face
from occgen.rng import rng_for
from occgen.synth import OcclusionConfig, calibrated_mean, occlude
from occgen.writers import FolderWriter, ShardWriter

MANIFEST_COLUMNS = [
    "path", "mask_path", "identity", "label", "source", "occluded", "kind", "category", "asset", "scale",
    "ratio", "x", "y", "w", "h", "seed", "key", "shard", "status", "reason", "landmarks", "yaw",
]
KINDS = ("occluder", "mask", "mixed")
SPLIT = "train"


@dataclass(frozen=True)
class BuildConfig:
    """Everything that decides the output (``settings`` in dataset.json) plus how work is split."""

    source: str  # "lfw" or "folder"
    occlusion: OcclusionConfig
    seed: int = 0
    copies: int = 1
    clean: float = 1 / 3  # probability that a training sample stays clean
    format: str = "folder"  # "folder" or "shards"
    image_format: str = "jpg"
    jpeg_quality: int = 95
    unit_size: int = 1000
    occluders: str | None = None
    pairs: str | None = None
    kind: str = "occluder"  # occluder, mask or mixed (of the occluded samples, mask_fraction get masks)
    masks: MaskConfig = field(default_factory=MaskConfig)
    mask_fraction: float = 0.5

    def settings(self) -> dict:
        settings = asdict(self)
        settings["occlusion"] = {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self.occlusion).items()}
        if self.kind == "occluder":  # occluder builds keep the settings they always had
            for key in ("kind", "masks", "mask_fraction"):
                settings.pop(key)
        else:
            settings["masks"] = {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self.masks).items()}
            if self.kind == "mask":
                settings.pop("occlusion")
                settings.pop("mask_fraction")
        return settings


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
    base = "lfw" if config.source == "lfw" else Path(src).resolve().name
    if config.kind == "mask":
        return f"{base}-masked"
    if config.kind == "mixed":
        tag += f"-m{config.mask_fraction:g}"
    name = f"{base}-occ-{tag}" + ("" if occ.blend == usual else f"-{occ.blend}")
    return name + ("-semantic" if occ.placement == "semantic" else "")


@dataclass
class Sample:
    key: str  # stable identity of the sample: its randomness comes from (seed, key)
    index: int
    rel: str  # source path relative to SRC
    identity: str
    label: int
    copy: int = 0


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


def list_sources(src: Path) -> tuple[list[str], list[dict]]:
    """Relative paths of the usable images under ``src`` and manifest rows for unusable inputs.

    An aligned folder's ``manifest.csv`` is honoured: inputs that alignment could not write are
    carried over as ``failed`` rows, so the manifest still says what happened to every input.
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
    return sorted(p.relative_to(src).as_posix() for p in scan_images(src).images), []


def make_samples(rels: list[str], config: BuildConfig) -> tuple[list[Sample], list[str]]:
    """The sorted sample list and the identity list (label = position in it)."""
    identities = sorted({_identity(r) for r in rels})
    labels = {name: i for i, name in enumerate(identities)}
    samples = []
    copies = config.copies if config.source == "folder" else 1
    for rel in rels:
        stem = rel.rsplit(".", 1)[0]
        for k in range(copies):
            key = stem if copies == 1 else f"{stem}#{k}"
            samples.append(Sample(key, len(samples), rel, _identity(rel), labels[_identity(rel)], k))
    return samples, identities


def _identity(rel: str) -> str:
    parent = Path(rel).parent.as_posix()
    return "" if parent == "." else parent


# --- the per-unit work (runs in worker processes) ------------------------------------------------

_STATE: dict = {}


def _init_worker(config: BuildConfig) -> None:
    import cv2

    cv2.setNumThreads(1)
    _STATE["config"] = config
    _STATE["landmarks"] = {}
    if config.masks.templates and config.kind != "occluder":
        from occgen.masktheface import load_templates_cached

        _STATE["templates"] = load_templates_cached(config.masks.templates)
    if config.kind == "mask":
        _STATE["library"] = None
        return
    library = load_library(config.occluders) if config.occluders else None
    if library is None:
        from occgen.library import default_library

        library = default_library()
    _STATE["library"] = library.subset(config.occlusion.categories)


def _unit_paths(out: Path, unit: int) -> tuple[Path, Path]:
    return out / ".parts" / f"{SPLIT}-{unit:06d}.csv", out / "shards" / f"{SPLIT}-{unit:06d}.tar"


def _run_unit(task: tuple[str, str, int, list[Sample]]) -> tuple[int, int]:
    """Build one unit; returns (unit, number of samples written)."""
    src, out, unit, samples = task
    src, out = Path(src), Path(out)
    config: BuildConfig = _STATE["config"]
    rows: list[dict] = []
    written: list[tuple[Sample, dict, dict]] = []
    for sample in samples:
        rows_for, outputs = _make_sample(src, sample, config)
        rows += rows_for
        if outputs:
            written.append((sample, outputs, rows_for[-1]))
    if config.format == "shards":
        shard = f"shards/{SPLIT}-{unit:06d}.tar"
        with ShardWriter(out / shard) as writer:
            for _, outputs, row in written:
                meta = {k: row[k] for k in ("label", "identity", "source", "occluded", "kind", "category", "asset",
                                            "scale", "ratio", "x", "y", "w", "h", "seed", "landmarks", "yaw")
                        if row[k] != ""}
                ext = config.image_format
                writer.write({"__key__": outputs["name"], ext: outputs["image"], "mask.png": outputs["mask"],
                              "json": json.dumps(meta, sort_keys=True).encode()})
        for row in rows:
            if row["status"] == "ok":
                row["shard"] = shard
    else:
        folder = FolderWriter(out)
        for sample, outputs, row in written:
            if "clean_copy" in outputs:
                link_or_copy_atomic(os.path.realpath(src / sample.rel), out / outputs["clean_path"], outputs["clean_copy"])
            folder.write(row["path"], outputs["image"])
            if row["mask_path"]:
                folder.write(row["mask_path"], outputs["mask"])
    piece, _ = _unit_paths(out, unit)
    frame = pd.DataFrame(rows, columns=MANIFEST_COLUMNS)
    write_bytes_atomic(piece, frame.to_csv(index=False).encode())
    return unit, len(written)


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


def _make_sample(src: Path, sample: Sample, config: BuildConfig) -> tuple[list[dict], dict]:
    """Decode, occlude (or not) and encode one sample; returns its manifest rows and bytes."""
    base = {c: "" for c in MANIFEST_COLUMNS}
    base.update(source=sample.rel, identity=sample.identity, label=sample.label, key=sample.key,
                seed=config.seed, status="ok")
    try:
        data = (src / sample.rel).read_bytes()
    except OSError as err:
        return [dict(base, status="failed", reason=f"unreadable: {err.strerror or err}")], {}
    image = decode_rgb(data)
    if image is None:
        return [dict(base, status="failed", reason="not a readable image")], {}
    rng = rng_for(config.seed, sample.key)
    stem = sample.rel.rsplit(".", 1)[0]
    ext = "." + config.image_format
    name = f"s{sample.index:08d}"
    if config.source == "folder" and rng.random() < config.clean:
        mask = np.zeros(image.shape[:2], np.uint8)
        row = dict(base, occluded=False, kind="clean", ratio=0.0)
        out_image = image
    elif config.kind == "mask" or (config.kind == "mixed" and rng.random() < config.mask_fraction):
        out_image, mask, info = _mask_sample(src, sample, image, rng, config)
        row = dict(base, occluded=True, kind="mask", category=info["type"], asset=info["variant"],
                   reason=info["reason"], landmarks=info["landmarks"], yaw=info["yaw"],
                   **{k: info[k] for k in ("ratio", "x", "y", "w", "h")})
    else:
        out_image, mask, info = occlude(image, rng, _STATE["library"], config.occlusion)
        row = dict(base, occluded=True, kind="occluder", **{k: info[k] for k in
                   ("category", "asset", "scale", "ratio", "x", "y", "w", "h")})
    suffix = f"_{sample.copy}" if config.source == "folder" and config.copies > 1 else ""
    outputs = {"name": name, "image": encode(out_image, ext, config.jpeg_quality), "mask": encode(mask, ".png")}
    rows = []
    if config.format == "folder":
        row["path"] = f"images/{stem}{suffix}{ext}"
        row["mask_path"] = f"masks/{stem}{suffix}.png" if row["occluded"] else ""
    if config.source == "lfw":
        clean = dict(base, occluded=False, kind="clean", ratio=0.0, path=f"clean/{sample.rel}")
        rows.append(clean)
        outputs["clean_copy"], outputs["clean_path"] = data, clean["path"]
    rows.append(row)
    return rows, outputs


# --- the run ------------------------------------------------------------------------------------


def _check_settings(out: Path, config: BuildConfig, overwrite: bool) -> None:
    meta = out / "dataset.json"
    if not meta.exists() or overwrite:
        return
    try:
        old = json.loads(meta.read_text()).get("settings")
    except ValueError:
        return
    if old is not None:
        check_same_settings(old, json.loads(json.dumps(config.settings())), str(out), "use --overwrite or another OUT")


def prepare_config(config: BuildConfig, first_image: np.ndarray | None) -> BuildConfig:
    """Fix everything derived once per build: the calibrated target mean of ratio mode."""
    occ = config.occlusion
    if config.kind != "mask" and occ.mode == "ratio" and occ.target_mean is None and first_image is not None:
        library = (load_library(config.occluders) if config.occluders else _default()).subset(occ.categories)
        h, w = first_image.shape[:2]
        occ = replace(occ, target_mean=round(calibrated_mean(library, occ, w, h), 6))
    return replace(config, occlusion=occ)


def _default():
    from occgen.library import default_library

    return default_library()


def build(job: Job, progress: bool = True, overwrite: bool = False) -> dict:
    """Run ``job``; returns the summary written to dataset.json."""
    from tqdm import tqdm

    src, out, config = Path(job.src), Path(job.out), job.config
    if not src.is_dir():
        raise OccgenError(f"source folder not found: {src}")
    rels, failed_rows = list_sources(src)
    if not rels:
        raise OccgenError(no_images_message(src, scan_images(src)))
    if out.resolve() == src.resolve() or src.resolve() in out.resolve().parents:
        raise OccgenError("OUT must not be SRC or lie inside it")
    if not 0 <= job.shard_index < job.num_shards:
        raise OccgenError(f"--shard-index must lie in 0..{job.num_shards - 1}")
    pairs = None
    if config.source == "lfw" and config.pairs:
        pairs = parse_pairs_txt(config.pairs)  # early, so a bad pairs file fails before any work
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OccgenError(f"cannot write to output folder {out}: {err.strerror or err}") from None
    first = next((decode_rgb((src / r).read_bytes()) for r in rels[:20] if (src / r).is_file()), None)
    config = prepare_config(config, first)
    _check_settings(out, config, overwrite)
    samples, identities = make_samples(rels, config)
    units = [samples[i : i + config.unit_size] for i in range(0, len(samples), config.unit_size)]
    mine = [u for u in range(len(units)) if u % job.num_shards == job.shard_index]
    if overwrite:
        for u in mine:
            _unit_paths(out, u)[0].unlink(missing_ok=True)
    todo = [u for u in mine if not _unit_done(out, u, config)]
    if not (out / "dataset.json").exists() or overwrite:
        _write_json(out, job, config, {"complete": False})
    tasks = [(str(src), str(out), u, units[u]) for u in todo]
    start = time.perf_counter()
    done_samples = 0
    bar = tqdm(total=sum(len(units[u]) for u in todo), unit="img", disable=not progress, dynamic_ncols=True,
               file=sys.stderr)
    try:
        for unit, _ in _run(tasks, config, job.workers):
            done_samples += len(units[unit])
            bar.update(len(units[unit]))
    finally:
        bar.close()
    seconds = time.perf_counter() - start
    run = {"processed": done_samples, "seconds": round(seconds, 2),
           "samples_per_second": round(done_samples / seconds, 1) if seconds > 0 and done_samples else None,
           "units": len(mine), "units_resumed": len(mine) - len(todo), "workers": job.workers,
           "shard_index": job.shard_index, "num_shards": job.num_shards}
    if all(_unit_done(out, u, config) for u in range(len(units))):
        return assemble(out, job, config, identities, failed_rows, pairs, run)
    summary = {"complete": False, "run": run,
               "note": f"{sum(not _unit_done(out, u, config) for u in range(len(units)))} of {len(units)} units "
                       "still to build by other jobs (--shard-index); the last one assembles the manifest"}
    return summary  # dataset.json keeps "complete": false until the last job assembles it


def _unit_done(out: Path, unit: int, config: BuildConfig) -> bool:
    piece, shard = _unit_paths(out, unit)
    return piece.exists() and (config.format != "shards" or shard.exists())


def _run(tasks: list, config: BuildConfig, workers: int) -> Iterator[tuple[int, int]]:
    if workers <= 0 or len(tasks) <= 1:
        _init_worker(config)
        yield from map(_run_unit, tasks)
        return
    ctx = mp.get_context("spawn")
    pool = ctx.Pool(min(workers, len(tasks)), initializer=_init_worker, initargs=(config,))
    try:
        yield from pool.imap_unordered(_run_unit, tasks)
        pool.close()
    finally:
        pool.terminate()
        pool.join()


def assemble(out: Path, job: Job, config: BuildConfig, identities: list[str], failed_rows: list[dict],
             pairs, run: dict) -> dict:
    """Join the unit pieces into manifest.csv (+ classes.csv, pairs.csv) and dataset.json."""
    pieces = sorted((out / ".parts").glob(f"{SPLIT}-*.csv"))
    frames = [pd.read_csv(p, dtype=str, keep_default_na=False) for p in pieces]
    extra = pd.DataFrame([{**{c: "" for c in MANIFEST_COLUMNS}, **r} for r in failed_rows], columns=MANIFEST_COLUMNS)
    manifest = pd.concat(frames + [extra], ignore_index=True)[MANIFEST_COLUMNS].sort_values(["source", "kind"], kind="stable")
    write_bytes_atomic(out / "manifest.csv", manifest.to_csv(index=False).encode())
    ok = manifest[manifest["status"] == "ok"]
    summary: dict = {"complete": True, "run": run}
    if config.source == "folder":
        counts = ok["label"].astype(int).value_counts()
        classes = pd.DataFrame({"label": range(len(identities)), "identity": identities})
        classes["count"] = [int(counts.get(i, 0)) for i in range(len(identities))]
        write_bytes_atomic(out / "classes.csv", classes.to_csv(index=False).encode())
    if config.source == "lfw" and pairs is not None:
        summary["pairs"] = _write_pairs(out, ok, pairs)
    occluded = ok[ok["kind"].isin(["occluder", "mask"])]
    ratio = occluded["ratio"].astype(float)
    summary["counts"] = {
        "inputs": int(manifest["source"].nunique()), "failed_inputs": int(manifest.loc[manifest["status"] == "failed", "source"].nunique()),
        "samples": int(len(ok)), "occluded": int(len(occluded)), "clean": int((ok["kind"] == "clean").sum()),
        "classes": len(identities),
    }
    masked = ok[ok["kind"] == "mask"]
    if config.kind != "occluder":
        summary["counts"]["masked"] = int(len(masked))
        summary["counts"]["occluder"] = int((ok["kind"] == "occluder").sum())
        summary["landmarks"] = {k: int(v) for k, v in masked["landmarks"].value_counts().sort_index().items()}
        summary["masks"] = {
            t: {"count": int(len(g)), "mean": round(float(g["ratio"].astype(float).mean()), 5),
                "std": round(float(g["ratio"].astype(float).std(ddof=0)), 5),
                "min": round(float(g["ratio"].astype(float).min()), 5),
                "max": round(float(g["ratio"].astype(float).max()), 5),
                "template_fallbacks": int((g["landmarks"] == "template5").sum())}
            for t, g in masked.groupby("category")}
    if len(ratio):
        summary["coverage"] = {
            "mean": round(float(ratio.mean()), 5), "std": round(float(ratio.std(ddof=0)), 5),
            "min": round(float(ratio.min()), 5), "p05": round(float(ratio.quantile(0.05)), 5),
            "median": round(float(ratio.median()), 5), "p95": round(float(ratio.quantile(0.95)), 5),
            "max": round(float(ratio.max()), 5),
            "by_category": {c: {"count": int(len(g)), "mean": round(float(g.astype(float).mean()), 5)}
                            for c, g in occluded.groupby("category")["ratio"]},
        }
    _write_json(out, job, config, summary)
    return json.loads((out / "dataset.json").read_text())


def _write_pairs(out: Path, ok: pd.DataFrame, pairs) -> dict:
    clean = {r["source"].rsplit(".", 1)[0]: r["path"] for r in ok[ok["kind"] == "clean"].to_dict("records")}
    occl = {r["source"].rsplit(".", 1)[0]: r["path"] for r in ok[ok["kind"].isin(["occluder", "mask"])].to_dict("records")}
    rows, skipped = [], []
    for pair in pairs.pairs:
        a, b = pair.stem1, pair.stem2
        missing = [s for s, table in ((a, clean), (b, occl)) if s not in table]
        if missing:
            skipped.append({"line": pair.line, "text": pair.text, "reason": f"no image for {', '.join(missing)}"})
            continue
        rows.append({"path1": clean[a], "path2": occl[b], "same": int(pair.same), "fold": pair.fold})
    write_bytes_atomic(out / "pairs.csv", pd.DataFrame(rows, columns=["path1", "path2", "same", "fold"]).to_csv(index=False).encode())
    return {"file": str(pairs.path), "read": len(pairs.pairs), "written": len(rows), "skipped": skipped,
            "folds": pairs.folds, "malformed": pairs.malformed}


def _write_json(out: Path, job: Job, config: BuildConfig, summary: dict) -> None:
    from occgen import __version__

    data = {"tool": "occgen build", "version": __version__, "name": dataset_name(config, job.src),
            "complete": summary.get("complete", False), "command": job.command, "source": str(job.src),
            "settings": config.settings(), "seed": config.seed}
    data.update({k: v for k, v in summary.items() if k != "complete"})
    write_bytes_atomic(out / "dataset.json", json.dumps(data, indent=2).encode())
