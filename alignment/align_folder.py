"""The ``align-faces`` run: walk a tree, detect, warp, write crops and the manifest.

Work is split in chunks of ``batch_size`` files; each worker process (or this process, with
``workers=0``) decodes a chunk, runs the detector on it in batched calls, warps and writes the
crops, and returns one manifest row per file (:mod:`alignment.pipeline`, which also holds the
decode threads and the batches across image sizes). The parent only tracks progress and keeps ``manifest.csv`` current, so
an interrupted run can be resumed from it.

A run can be split over ``num_shards`` jobs (array jobs, several machines): job ``I`` takes the
inputs at positions ``I, I + N, I + 2N, …`` of the sorted list, writes their crops and its piece of
the manifest, ``OUT/.parts/manifest-I-of-N.csv`` (``.partial.csv`` while it runs, for resuming),
and the job that finds every piece done merges them into ``manifest.csv`` and ``dataset.json``.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict
from pathlib import Path
from typing import Iterable, Iterator

import pandas as pd

from alignment.pipeline import (
    MANIFEST_COLUMNS,
    AlignConfig,
    chunk_files,
    crop_name,
    init_worker,
    process_chunk,
    run_chunks,
)
from alob_common.atomic import remove_stale_temporaries, write_csv_atomic, write_json_atomic
from alob_common.errors import UserError
from alob_common.images import ImageScan, no_images_message, scan_images
from alob_common.settings import check_same_settings

DONE_STATUSES = ("ok", "fallback")
SETTINGS_THAT_SHAPE_OUTPUT = ("size", "detector", "fallback", "pick", "thresholds", "min_face_size",
                              "batch_across_sizes")


class AlignError(UserError):
    """A problem with the run's inputs or outputs, reported to the user in one line."""


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _run_chunks(chunks: list[list], config: AlignConfig, workers: int) -> Iterator[list[dict]]:
    """Yield each chunk's rows as it completes, in this process (``workers=0``) or in a pool."""
    if workers <= 0:
        init_worker(config, 0)
        yield from run_chunks(chunks)
        return
    threads = max(1, (os.cpu_count() or 1) // workers)
    with ProcessPoolExecutor(workers, mp.get_context("spawn"), init_worker, (config, threads)) as pool:
        futures = [pool.submit(process_chunk, chunk) for chunk in chunks]
        try:
            for future in as_completed(futures):
                yield future.result()
        except BrokenProcessPool:
            raise AlignError(
                "a worker process died (out of memory, or a decoder crash on some input); "
                "the manifest holds what was done, rerun to resume or use --workers 0 to find the file"
            ) from None
        finally:  # on Ctrl-C or error: drop queued chunks; running ones end within a batch
            pool.shutdown(wait=True, cancel_futures=True)


def write_manifest(out: Path, rows: Iterable[dict], path: Path | None = None) -> Path:
    """Write ``OUT/manifest.csv`` (or a job's piece at ``path``) atomically, sorted by source path."""
    frame = pd.DataFrame(list(rows), columns=MANIFEST_COLUMNS).sort_values("source", kind="stable")
    path = path or out / "manifest.csv"
    write_csv_atomic(path, frame)
    return path


def read_manifest(out: Path, path: Path | None = None) -> pd.DataFrame:
    """Read an aligned folder's manifest (or a job's piece at ``path``): text columns stay text
    (an identity called "NA" is not a missing value), empty numeric cells become NaN."""
    numeric = {c: [""] for c in MANIFEST_COLUMNS if c == "score" or c[:2] in ("lx", "ly")}
    return pd.read_csv(path or Path(out) / "manifest.csv", dtype=str, keep_default_na=False,
                       na_values=numeric).astype({c: float for c in numeric})


def piece_path(out: Path, shard_index: int, num_shards: int, partial: bool = False) -> Path:
    """Job ``shard_index``'s piece of the manifest; ``partial`` while the job runs."""
    return out / ".parts" / f"manifest-{shard_index:05d}-of-{num_shards:05d}{'.partial' if partial else ''}.csv"


def _resumable_rows(out: Path, rels: list[str], pieces: list[Path]) -> dict[str, dict]:
    """The rows of ``rels`` already done, from ``manifest.csv`` and this job's pieces, whose crop exists."""
    current, done = set(rels), {}
    for path in [out / "manifest.csv", *pieces]:
        if not path.exists():
            continue
        try:
            previous = read_manifest(out, path).to_dict("records")
        except (ValueError, KeyError, pd.errors.ParserError) as err:
            raise AlignError(f"cannot read {path} to resume ({err}); use --overwrite") from None
        for row in previous:
            if row["source"] in current and row["status"] in DONE_STATUSES and (out / row["path"]).is_file():
                done[row["source"]] = row
    return done


def _check_settings(out: Path, config: AlignConfig) -> None:
    meta = out / "dataset.json"
    if not meta.exists():
        return
    try:
        old = json.loads(meta.read_text())["settings"]
    except (ValueError, KeyError):
        return
    keys = [k for k in SETTINGS_THAT_SHAPE_OUTPUT if k in old]
    check_same_settings(old, _settings(config), str(out), "use --overwrite or another OUT", keys)


def _settings(config: AlignConfig) -> dict:
    settings = asdict(config)
    settings["size"] = f"{config.size[0]}x{config.size[1]}"
    settings["thresholds"] = list(config.thresholds)
    return settings


def _prepare_out(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise AlignError(f"cannot write to output folder {out}: {err.strerror or err}") from None


def align_folder(
    src: str | os.PathLike,
    out: str | os.PathLike,
    config: AlignConfig = AlignConfig(),
    workers: int = 0,
    overwrite: bool = False,
    progress: bool = True,
    command: list[str] | None = None,
    shard_index: int = 0,
    num_shards: int = 1,
) -> dict:
    """Align every image under ``src`` (job ``shard_index`` of ``num_shards``: every N-th of the
    sorted inputs) into ``out``; returns the summary written to dataset.json (when the job
    completes the run) or this job's summary."""
    src, out = Path(src), Path(out)
    scan = _check_run(src, out, shard_index, num_shards)
    if num_shards == 1:  # this run owns OUT: crops a killed run left half-written go
        remove_stale_temporaries(out)
    if not overwrite:
        _check_settings(out, config)
    files = scan.images[shard_index::num_shards]
    rels = [f.relative_to(src).as_posix() for f in files]
    pieces = [piece_path(out, shard_index, num_shards, partial) for partial in (False, True)] if num_shards > 1 else []
    done = {} if overwrite else _resumable_rows(out, rels, pieces)
    jobs = [(str(f), rel, str(out / crop_name(rel))) for f, rel in zip(files, rels) if rel not in done]
    if num_shards == 1 or not (out / "dataset.json").exists():
        _write_json(out, config, command, done, scan, len(done), 0.0, complete=False)
    saving = pieces[1] if pieces else None
    rows, seconds = _align_jobs(out, jobs, dict(done), config, workers, progress, saving)
    if num_shards == 1:
        return _write_json(out, config, command, rows, scan, len(done), seconds, complete=True)
    write_manifest(out, rows.values(), pieces[0])
    pieces[1].unlink(missing_ok=True)
    job = {"shard_index": shard_index, "inputs": len(rels), "resumed": len(done), "seconds": round(seconds, 2)}
    write_json_atomic(pieces[0].with_suffix(".json"), job)
    return _merge_pieces(out, config, command, scan, num_shards) or {"complete": False, "job": job, **_counts(rows)}


def _check_run(src: Path, out: Path, shard_index: int, num_shards: int) -> ImageScan:
    """The images under SRC; AlignError when SRC, OUT or the job's part cannot work."""
    if not src.is_dir():
        raise AlignError(f"source folder not found: {src}")
    if not 0 <= shard_index < num_shards:
        raise AlignError(f"--shard-index must lie in 0..{num_shards - 1}")
    scan = scan_images(src)
    if not scan.images:
        raise AlignError(no_images_message(src, scan))
    if out.resolve() == src.resolve() or src.resolve() in out.resolve().parents:
        raise AlignError("OUT must not be SRC or lie inside it")
    _prepare_out(out)
    return scan


def _align_jobs(out: Path, jobs: list, rows: dict[str, dict], config: AlignConfig, workers: int, progress: bool,
                piece: Path | None) -> tuple[dict[str, dict], float]:
    """Run the jobs with a progress bar, saving the rows (to manifest.csv, or this job's
    ``piece``) every 10 s and at the end; returns every row and the seconds taken."""
    from tqdm import tqdm

    start = last_save = time.perf_counter()
    counts = {"ok": 0, "fallback": 0, "failed": 0}
    bar = tqdm(total=len(jobs), unit="img", disable=not progress, dynamic_ncols=True, file=sys.stderr)
    try:
        for chunk_rows in _run_chunks(list(_chunks(jobs, chunk_files(config))), config, workers):
            for row in chunk_rows:
                rows[row["source"]] = row
                counts[row["status"]] += 1
            bar.update(len(chunk_rows))
            bar.set_postfix(counts, refresh=False)
            if time.perf_counter() - last_save > 10:
                write_manifest(out, rows.values(), piece)
                last_save = time.perf_counter()
    finally:
        bar.close()
        write_manifest(out, rows.values(), piece)
    return rows, time.perf_counter() - start


def _merge_pieces(out: Path, config: AlignConfig, command, scan: ImageScan, num_shards: int) -> dict | None:
    """When every job's piece is done: ``manifest.csv`` (all rows, sorted) and the complete
    ``dataset.json`` (seconds summed over the jobs); None while some job is still to finish."""
    pieces = [piece_path(out, i, num_shards) for i in range(num_shards)]
    if not all(p.exists() and p.with_suffix(".json").exists() for p in pieces):
        return None
    rows = {r["source"]: r for p in pieces for r in read_manifest(out, p).to_dict("records")}
    jobs = [json.loads(p.with_suffix(".json").read_text()) for p in pieces]
    write_manifest(out, rows.values())
    summary = _write_json(out, config, command, rows, scan, sum(j["resumed"] for j in jobs),
                          sum(j["seconds"] for j in jobs), complete=True, jobs=jobs)
    return summary


def _counts(rows: dict[str, dict]) -> dict:
    statuses = pd.Series([r["status"] for r in rows.values()], dtype=object).value_counts().to_dict()
    return {"counts": {s: int(statuses.get(s, 0)) for s in ("ok", "fallback", "failed")}}


def _write_json(out, config, command, rows, scan: ImageScan, resumed, seconds, complete, jobs=None) -> dict:
    total = len(scan.images)
    statuses = pd.Series([r["status"] for r in rows.values()], dtype=object).value_counts().to_dict()
    processed = total - resumed
    summary = {
        "tool": "align-faces",
        "version": _version(),
        "complete": complete,
        "command": command or [],
        "settings": _settings(config),
        "seed": None,
        "counts": {
            "inputs": total,
            "ok": int(statuses.get("ok", 0)),
            "fallback": int(statuses.get("fallback", 0)),
            "failed": int(statuses.get("failed", 0)),
            "resumed": resumed,
            "processed": processed,
            "other_files": scan.others,
        },
        "other_file_examples": scan.other_examples,
        "seconds": round(seconds, 2),
        "images_per_second": round(processed / seconds, 2) if seconds > 0 else None,
    }
    if jobs is not None:  # a run split over --num-shards jobs: each job's inputs, resumed rows, seconds
        summary["jobs"] = jobs
    write_json_atomic(out / "dataset.json", summary)
    return summary


def _version() -> str:
    from alignment import __version__

    return __version__
