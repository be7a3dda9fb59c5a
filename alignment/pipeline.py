"""The per-image work of ``align-faces``: decode, detect, warp, encode and write, chunk by chunk.

One process (the command itself with ``--workers 0``, or each worker process) holds one detector.
Without decode threads a chunk is decoded, detected and written in turn, in this thread. With
``decode_threads`` a thread pool decodes the next chunks while the detector runs on the current
one (Pillow's and OpenCV's codecs release the GIL), and warps, encodes and writes the crops of a
chunk while the detector moves on; the rows, the crops and their bytes are the same either way.

Images of equal size go to the detector in one batched call. With ``batch_across_sizes`` (MTCNN
only) the images of a chunk of ``SORT_WINDOW`` batches are sorted by area and sent ``batch_size``
at a time on a common canvas (:func:`alignment.detect.detect_across_sizes`), so a tree of
mixed-size photos still makes full batches. The landmarks then move from those of the per-size
path by about as much as MTCNN's own jitter (a mean 1.5 px on LFW faces, as when an image is
shifted by 2 px), so this is an option, on by default only on a GPU.
"""

from __future__ import annotations

import signal
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from alignment.warp import center_crop, warp_face
from alob_common.images import (
    RGB_WRITABLE_EXTENSIONS,
    BadImage,
    load_image,
    write_image_atomic,
)

MANIFEST_COLUMNS = (
    ["path", "source", "identity", "status", "reason", "detector", "score"]
    + [f"{axis}{i}" for i in range(1, 6) for axis in ("lx", "ly")]
    + ["size"]
)
PREFETCH_CHUNKS = 2  # chunks decoded ahead of the detector when decoding in threads
SORT_WINDOW = 4  # batches across sizes: a chunk holds this many batches, sorted by size before batching


@dataclass(frozen=True)
class AlignConfig:
    """Everything that decides what a crop looks like, plus how the work is done."""

    size: tuple[int, int] = (112, 96)
    detector: str = "mtcnn"
    device: str = "cpu"
    thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7)
    min_face_size: int = 20
    pick: str = "center"
    fallback: str = "center"
    max_pixels: int = 40_000_000
    jpeg_quality: int = 95
    batch_size: int = 16
    batch_across_sizes: bool = False
    decode_threads: int = 0


def crop_name(source: str) -> str:
    """Where the crop of ``source`` goes, relative to OUT: the same relative path, with ``.png``
    appended when the source's type cannot hold an RGB crop (PGM, GIF, JPEG 2000 …), so that
    ``a.gif`` and ``a.png`` in one folder never share a crop."""
    return source if Path(source).suffix.lower() in RGB_WRITABLE_EXTENSIONS else f"{source}.png"


def empty_row(rel: str, config: AlignConfig) -> dict:
    """The manifest row of ``rel`` before any work: no crop, no landmarks."""
    parent = Path(rel).parent.as_posix()
    row = {c: np.nan for c in MANIFEST_COLUMNS}
    row.update(path="", source=rel, identity="" if parent == "." else parent, reason="", detector=config.detector)
    row["size"] = f"{config.size[0]}x{config.size[1]}"
    return row


def chunk_files(config: AlignConfig) -> int:
    """Files per chunk (the unit a worker takes): a batch, or ``SORT_WINDOW`` batches when
    batching across sizes, so that the images sorted by size make batches of similar sizes."""
    across = config.batch_across_sizes and config.detector == "mtcnn"
    return config.batch_size * (SORT_WINDOW if across else 1)


_WORKER: dict = {}


def init_worker(config: AlignConfig, threads: int) -> None:
    """Per-process set-up: torch thread count, one detector (kept for later runs with the same
    detector settings), the decode threads."""
    import torch

    from alignment.detect import make_detector

    if threads > 0:  # a pool worker: Ctrl-C is the parent's to handle (it saves the manifest)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        torch.set_num_threads(threads)
    _WORKER["config"] = config
    key = (config.detector, config.device, config.thresholds, config.min_face_size, config.pick)
    if _WORKER.get("key") != key:  # a later run in this process with the same settings reuses it
        _WORKER["detect"], _WORKER["key"] = make_detector(*key), key
    old = _WORKER.pop("pool", None)
    if old is not None:
        old.shutdown(wait=True)
    if config.decode_threads > 0:
        _WORKER["pool"] = ThreadPoolExecutor(config.decode_threads, thread_name_prefix="align-io")


def process_chunk(jobs: list[tuple[str, str, str]]) -> list[dict]:
    """Align a chunk of (source file, relative path, output file) jobs; one row per job."""
    return next(run_chunks([jobs]))


def run_chunks(chunks: list[list[tuple[str, str, str]]]) -> Iterator[list[dict]]:
    """Yield each chunk's rows, in order, once its crops are written."""
    pool: ThreadPoolExecutor | None = _WORKER.get("pool")
    if pool is None:
        for jobs in chunks:
            loaded = [_decode(job) for job in jobs]
            for part in _batches(loaded):
                for (row, image, dst), face in zip(part, _detect(part)):
                    _finish(row, image, dst, face)
            yield [row for row, _, _ in loaded]
        return
    yield from _run_threaded(chunks, pool)


def _run_threaded(chunks: list[list], pool: ThreadPoolExecutor) -> Iterator[list[dict]]:
    """:func:`run_chunks` with decoding ``PREFETCH_CHUNKS`` ahead and the writes behind."""
    ahead: deque[list[Future]] = deque()
    writing: tuple[list, list[Future]] | None = None
    try:
        for index in range(len(chunks)):
            while len(ahead) <= PREFETCH_CHUNKS and index + len(ahead) < len(chunks):
                ahead.append([pool.submit(_decode, job) for job in chunks[index + len(ahead)]])
            loaded = [future.result() for future in ahead.popleft()]
            writes = [pool.submit(_finish, row, image, dst, face)
                      for part in _batches(loaded) for (row, image, dst), face in zip(part, _detect(part))]
            if writing is not None:
                yield _written(*writing)
            writing = ([row for row, _, _ in loaded], writes)
        if writing is not None:
            yield _written(*writing)
    finally:  # an interrupted run: drop what was decoded ahead, let running writes end
        for futures in ahead:
            for future in futures:
                future.cancel()
        if writing is not None:
            for future in writing[1]:
                future.cancel()


def _written(rows: list[dict], writes: list[Future]) -> list[dict]:
    for future in writes:
        future.result()
    return rows


def _decode(job: tuple[str, str, str]) -> tuple[dict, object, str]:
    """The row of a job and its decoded image (None when it cannot be decoded: row says why)."""
    src, rel, dst = job
    row = empty_row(rel, _WORKER["config"])
    try:
        return row, load_image(src, _WORKER["config"].max_pixels), dst
    except BadImage as err:
        row.update(status="failed", reason=str(err))
        return row, None, dst


def _batches(loaded: list[tuple]) -> list[list[tuple]]:
    """The detector calls for a chunk: equal-size images together, ``batch_size`` at most; with
    ``batch_across_sizes`` (MTCNN), the images sorted by area, ``batch_size`` at a time."""
    config: AlignConfig = _WORKER["config"]
    items = [item for item in loaded if item[1] is not None]
    if config.batch_across_sizes and config.detector == "mtcnn":
        groups = [sorted(items, key=lambda item: (item[1].rgb.shape[0] * item[1].rgb.shape[1], item[1].rgb.shape))]
    else:
        by_shape: dict[tuple, list] = {}
        for item in items:
            by_shape.setdefault(item[1].rgb.shape, []).append(item)
        groups = list(by_shape.values())
    return [group[start : start + config.batch_size] for group in groups
            for start in range(0, len(group), config.batch_size)]


def _detect(part: list[tuple]) -> list:
    from alignment.detect import detect_across_sizes

    images = [image.rgb for _, image, _ in part]
    if len({image.shape for image in images}) > 1:
        return detect_across_sizes(_WORKER["detect"], images)
    return _WORKER["detect"](images)


def _finish(row: dict, image, dst: str, face) -> None:
    """Warp (or centre-crop) one image, write its crop atomically and fill in its row."""
    config: AlignConfig = _WORKER["config"]
    notes = list(image.notes)
    if face is not None and not isinstance(face, Exception):
        crop, _ = warp_face(image.rgb, face.landmarks, config.size)
        status = "ok"
        row["score"] = round(face.score, 5)
        for i, (x, y) in enumerate(face.landmarks * image.scale, start=1):
            row[f"lx{i}"], row[f"ly{i}"] = round(float(x), 3), round(float(y), 3)
    else:
        why = "no face detected" if face is None else f"detector error: {type(face).__name__}: {face}"
        if config.fallback == "skip":
            row.update(status="failed", reason="; ".join([why] + notes))
            return
        crop, status = center_crop(image.rgb, config.size), "fallback"
        notes.insert(0, f"{why}: centre crop")
    try:
        write_image_atomic(dst, crop, config.jpeg_quality)
    except OSError as err:
        row.update(status="failed", reason=f"write failed: {err}")
        return
    row.update(status=status, reason="; ".join(notes), path=crop_name(row["source"]))
