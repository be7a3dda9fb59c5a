"""Dataset builders behind ``occgen build``.

``lfw``: every aligned image occluded once, written beside a clean copy in the folder form
(``clean/``, ``images/``, ``masks/``), plus ``pairs.csv`` (image 1 clean, image 2 occluded,
folds kept); ``bin`` does the same for an insightface verification ``.bin``. ``folder``: any
identity-folder tree becomes a training set, each source image giving ``copies`` samples that
stay clean with probability ``clean`` (FROM's 1:2), written as WebDataset shards (default), in
the folder form or as an insightface pack (:mod:`occgen.pack_writer`), with ``classes.csv``;
``rec`` does the same for an insightface pack. The inputs of every source are listed and read
by :mod:`occgen.build_sources`.

The work is a sorted list of samples cut into fixed units of ``unit_size``
(:mod:`occgen.build_plan`); unit ``u`` belongs to job ``u % num_shards``, runs in any worker
(:mod:`occgen.build_worker`), and ends by writing its piece of the manifest (``OUT/.parts/``).
Every sample's randomness comes from (seed, key), so the outputs are the same byte for byte
whatever ``workers`` or ``num_shards``; a rerun skips finished units. When all pieces exist,
``manifest.csv``, ``classes.csv``, ``pairs.csv`` and ``dataset.json`` are assembled (by
whichever job finishes last, or by a rerun). ``dataset.json`` also says what else SRC held
(``inputs``: images found, other files passed over, a few of their names).
"""

from __future__ import annotations

import json
import multiprocessing as mp
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from alob_common.atomic import remove_stale_temporaries, write_bytes_atomic
from alob_common.errors import UserError
from alob_common.images import decode_rgb
from alob_common.pairs import Pairs, parse_pairs_txt
from alob_common.settings import check_same_settings
from occgen import __version__
from occgen.build_config import (
    TRAINING_SOURCES,
    BuildConfig,
    Job,
    dataset_name,
    prepare_config,
)
from occgen.build_inputs import INPUT_KEYS, check_same_inputs, identify_inputs, relative_to_out
from occgen.build_plan import (
    MANIFEST_COLUMNS,
    SPLIT,
    Sample,
    cut_units,
    list_sources,
    make_samples,
    unit_done,
    unit_paths,
)
from occgen.build_sources import bin_pairs, list_inputs, read_input
from occgen.build_worker import init_worker, run_unit
from occgen.library import OccgenError, library_or_default
from occgen.pack_writer import assemble_pack
from occgen.ratio_curve import export_tables

__all__ = ["BuildConfig", "Job", "assemble", "build", "dataset_name", "list_sources"]


def build(job: Job, progress: bool = True, overwrite: bool = False) -> dict:
    """Run ``job``; returns the summary written to dataset.json."""
    src, out = Path(job.src), Path(job.out)
    rels, failed_rows, inputs = _check_job(job, src, out)
    pairs = None
    if job.config.source == "lfw" and job.config.pairs:
        pairs = parse_pairs_txt(job.config.pairs)  # early, so a bad pairs file fails before any work
        if not pairs.pairs:
            first = pairs.malformed[0] if pairs.malformed else None
            raise OccgenError(f"{job.config.pairs}: no readable pair line"
                              + (f" (line {first['line']}: {first['reason']})" if first else ""))
    elif job.config.source == "bin":
        pairs = bin_pairs(src, rels)
    try:
        out.mkdir(parents=True, exist_ok=True)
        if job.num_shards == 1:  # this job owns OUT: what a killed run left half-written goes
            remove_stale_temporaries(out)
    except OSError as err:
        raise OccgenError(f"cannot write to output folder {out}: {err.strerror or err}") from None
    first = next((image for r in rels[:20] if (image := _first_image(job.config.source, src, r)) is not None), None)
    config = prepare_config(job.config, first)
    _check_settings(out, config, overwrite)
    samples, identities = make_samples(rels, config)
    units = cut_units(samples, config.unit_size)
    mine = [u for u in range(len(units)) if u % job.num_shards == job.shard_index]
    if overwrite:
        for u in mine:
            unit_paths(out, u, config.format)[0].unlink(missing_ok=True)
    todo = [u for u in mine if not unit_done(out, u, config)]
    if not (out / "dataset.json").exists() or overwrite:
        _write_json(out, job, config, {"complete": False}, inputs)
    tables = _shared_tables(config, first) if job.workers > 0 and len(todo) > 1 else None
    run = _run_units(src, out, config, job, {u: units[u] for u in todo}, progress, tables)
    run.update(units=len(mine), units_resumed=len(mine) - len(todo), workers=job.workers,
               shard_index=job.shard_index, num_shards=job.num_shards)
    left = sum(not unit_done(out, u, config) for u in range(len(units)))
    if not left:
        return assemble(out, job, config, identities, failed_rows, pairs, run, inputs)
    return {"complete": False, "run": run, "inputs": inputs,
            "note": f"{left} of {len(units)} units still to build by other jobs (--shard-index); the last one "
                    "assembles the manifest"}  # dataset.json keeps "complete": false until then


def _check_job(job: Job, src: Path, out: Path) -> tuple[list[str], list[dict], dict]:
    """The usable inputs, the failed rows carried over from alignment and the summary of what
    SRC holds; OccgenError when SRC, OUT or the job's part cannot work."""
    if not 0 <= job.shard_index < job.num_shards:
        raise OccgenError(f"--shard-index must lie in 0..{job.num_shards - 1}")
    if job.config.format == "rec" and not job.config.training:
        raise OccgenError(f"--format rec writes a training pack: use it with --source {' or '.join(TRAINING_SOURCES)}")
    if job.config.pairs and job.config.source != "lfw":
        raise OccgenError("--pairs is for --source lfw (a .bin holds its own pairs)")
    if out.resolve() == src.resolve() or src.resolve() in out.resolve().parents:
        raise OccgenError("OUT must not be SRC or lie inside it")
    return list_inputs(job.config.source, src)


def _first_image(source: str, src: Path, name: str) -> np.ndarray | None:
    """The decoded input ``name``, None when unreadable (the ratio mode's calibration size)."""
    try:
        return decode_rgb(read_input(source, src, name))
    except (OSError, UserError):
        return None


def _check_settings(out: Path, config: BuildConfig, overwrite: bool) -> None:
    """A rerun into an existing OUT must use the settings it was made with, and inputs
    (``--pairs``, ``--occluders``) with the same content, wherever they lie now."""
    meta = out / "dataset.json"
    if not meta.exists() or overwrite:
        return
    try:
        old = json.loads(meta.read_text()).get("settings")
    except ValueError:
        return
    if old is not None:
        new = identify_inputs(json.loads(json.dumps(config.settings())), out)
        check_same_settings({k: v for k, v in old.items() if k not in INPUT_KEYS},
                            {k: v for k, v in new.items() if k not in INPUT_KEYS}, str(out), "use --overwrite or another OUT")
        check_same_inputs(old, new, out)


def _shared_tables(config: BuildConfig, first: np.ndarray | None) -> dict | None:
    """Ratio mode with the curve solver: the coverage tables at the first image's size, made once
    here (the calibration made them already) for the worker processes."""
    occ = config.occlusion
    if config.kind == "mask" or occ.mode != "ratio" or occ.ratio_solver != "curve" or first is None:
        return None
    library = library_or_default(config.occluders).subset(occ.categories)
    return export_tables(library, first.shape[1], first.shape[0], occ.blend == "rect", occ.max_extent)


def _run_units(src: Path, out: Path, config: BuildConfig, job: Job, todo: dict[int, list[Sample]],
               progress: bool, tables: dict | None = None) -> dict:
    """Build the ``todo`` units with a progress bar; returns the run's counts and speed."""
    tasks = [(str(src), str(out), u, samples) for u, samples in todo.items()]
    start = time.perf_counter()
    done_samples = 0
    bar = tqdm(total=sum(len(s) for s in todo.values()), unit="img", disable=not progress, dynamic_ncols=True,
               file=sys.stderr)
    try:
        for unit, _ in _run(tasks, config, job.workers, tables):
            done_samples += len(todo[unit])
            bar.update(len(todo[unit]))
    finally:
        bar.close()
    seconds = time.perf_counter() - start
    return {"processed": done_samples, "seconds": round(seconds, 2),
            "samples_per_second": round(done_samples / seconds, 1) if seconds > 0 and done_samples else None}


def _run(tasks: list, config: BuildConfig, workers: int, tables: dict | None = None) -> Iterator[tuple[int, int]]:
    """Run the tasks in this process (``workers`` 0 or a single task) or in a spawned pool."""
    if workers <= 0 or len(tasks) <= 1:
        init_worker(config)
        yield from map(run_unit, tasks)
        return
    ctx = mp.get_context("spawn")
    pool = ctx.Pool(min(workers, len(tasks)), initializer=init_worker, initargs=(config, tables))
    try:
        yield from pool.imap_unordered(run_unit, tasks)
        pool.close()
    finally:
        pool.terminate()
        pool.join()


def assemble(out: Path, job: Job, config: BuildConfig, identities: list[str], failed_rows: list[dict],
             pairs: Pairs | None, run: dict, inputs: dict | None = None) -> dict:
    """Join the unit pieces into manifest.csv (+ classes.csv, pairs.csv) and dataset.json."""
    pieces = sorted((out / ".parts").glob(f"{SPLIT}-*.csv"))
    frames = [pd.read_csv(p, dtype=str, keep_default_na=False) for p in pieces]
    extra = pd.DataFrame([{**{c: "" for c in MANIFEST_COLUMNS}, **r} for r in failed_rows], columns=MANIFEST_COLUMNS)
    manifest = pd.concat(frames + [extra], ignore_index=True)[MANIFEST_COLUMNS].sort_values(["source", "kind"], kind="stable")
    write_bytes_atomic(out / "manifest.csv", manifest.to_csv(index=False).encode())
    ok = manifest[manifest["status"] == "ok"]
    summary: dict = {"complete": True, "run": run}
    if config.training:
        _write_classes(out, ok, identities)
    if config.format == "rec":
        summary["pack"] = assemble_pack(out, [piece.with_suffix(".rec") for piece in pieces], identities)
    if not config.training and pairs is not None:
        summary["pairs"] = _write_pairs(out, ok, pairs)
    occluded = ok[ok["kind"].isin(["occluder", "mask"])]
    summary["counts"] = {
        "inputs": int(manifest["source"].nunique()),
        "failed_inputs": int(manifest.loc[manifest["status"] == "failed", "source"].nunique()),
        "samples": int(len(ok)), "occluded": int(len(occluded)), "clean": int((ok["kind"] == "clean").sum()),
        "classes": len(identities),
    }
    if config.kind != "occluder":
        masked = ok[ok["kind"] == "mask"]
        summary["counts"].update(masked=int(len(masked)), occluder=int((ok["kind"] == "occluder").sum()))
        summary.update(_mask_summary(masked))
    if len(occluded):
        summary["coverage"] = _coverage_summary(occluded)
    _write_json(out, job, config, summary, inputs)
    return json.loads((out / "dataset.json").read_text())


def _write_classes(out: Path, ok: pd.DataFrame, identities: list[str]) -> None:
    """``classes.csv``: label, identity and sample count of every class."""
    counts = ok["label"].astype(int).value_counts()
    classes = pd.DataFrame({"label": range(len(identities)), "identity": identities})
    classes["count"] = [int(counts.get(i, 0)) for i in range(len(identities))]
    write_bytes_atomic(out / "classes.csv", classes.to_csv(index=False).encode())


def _mask_summary(masked: pd.DataFrame) -> dict:
    """The landmark sources of the masked samples and the coverage of each mask type."""

    def stats(group: pd.DataFrame) -> dict:
        ratio = group["ratio"].astype(float)
        return {"count": int(len(group)), "mean": round(float(ratio.mean()), 5), "std": round(float(ratio.std(ddof=0)), 5),
                "min": round(float(ratio.min()), 5), "max": round(float(ratio.max()), 5),
                "template_fallbacks": int((group["landmarks"] == "template5").sum())}

    return {"landmarks": {k: int(v) for k, v in masked["landmarks"].value_counts().sort_index().items()},
            "masks": {t: stats(g) for t, g in masked.groupby("category")}}


def _coverage_summary(occluded: pd.DataFrame) -> dict:
    """Mean, spread and quantiles of the occluded samples' coverage, and the mean per category."""
    ratio = occluded["ratio"].astype(float)
    return {
        "mean": round(float(ratio.mean()), 5), "std": round(float(ratio.std(ddof=0)), 5),
        "min": round(float(ratio.min()), 5), "p05": round(float(ratio.quantile(0.05)), 5),
        "median": round(float(ratio.median()), 5), "p95": round(float(ratio.quantile(0.95)), 5),
        "max": round(float(ratio.max()), 5),
        "by_category": {c: {"count": int(len(g)), "mean": round(float(g.astype(float).mean()), 5)}
                        for c, g in occluded.groupby("category")["ratio"]},
    }


def _write_pairs(out: Path, ok: pd.DataFrame, pairs: Pairs) -> dict:
    """``pairs.csv``: each pair as (clean image 1, occluded image 2, same, fold); pairs without
    both images are skipped and listed."""
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
    return {"file": relative_to_out(pairs.path, out), "read": len(pairs.pairs), "written": len(rows), "skipped": skipped,
            "folds": pairs.folds, "malformed": pairs.malformed}


def _write_json(out: Path, job: Job, config: BuildConfig, summary: dict, inputs: dict | None) -> None:
    """``dataset.json``: what was built, from what, with which settings, and the summary."""
    data = {"tool": "occgen build", "version": __version__, "name": dataset_name(config, job.src),
            "complete": summary.get("complete", False), "command": job.command, "source": str(job.src),
            "settings": identify_inputs(config.settings(), out), "seed": config.seed}
    if inputs is not None:
        data["inputs"] = inputs
    data.update({k: v for k, v in summary.items() if k != "complete"})
    write_bytes_atomic(out / "dataset.json", json.dumps(data, indent=2).encode())
