"""Small I/O helpers: stable per-item random generators, atomic writes, image encode/decode."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import cv2
import numpy as np


def stable_hash(key: str) -> int:
    """A 64-bit hash of ``key`` that is the same in every process and Python version."""
    return int.from_bytes(hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest(), "little")


def rng_for(seed: int, key: str) -> np.random.Generator:
    """The generator of one item: depends only on (seed, key), never on order or worker."""
    return np.random.default_rng([int(seed), stable_hash(key)])


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path`` and rename it over ``path``.

    The temporary name carries the process id, so concurrent writers never share one; the
    folder is created only when missing (builders write thousands of files per second).
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        handle = open(tmp, "wb")
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(tmp, "wb")
    try:
        with handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def link_or_copy_atomic(source: str | os.PathLike, path: str | os.PathLike, data: bytes) -> None:
    """Put a copy of ``source`` (whose bytes are ``data``) at ``path``: a hard link when both lie
    on one file system (no second copy on disk, ten times faster to create), else the bytes."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        try:
            os.link(source, tmp)
        except FileNotFoundError:
            path.parent.mkdir(parents=True, exist_ok=True)
            os.link(source, tmp)
        os.replace(tmp, path)
    except OSError:
        Path(tmp).unlink(missing_ok=True)
        write_bytes_atomic(path, data)


def encode(image: np.ndarray, ext: str, jpeg_quality: int = 95) -> bytes:
    """Encode an RGB (or single-channel) uint8 array as ``ext`` (".jpg" or ".png")."""
    ext = ext.lower()
    params = [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality] if ext in (".jpg", ".jpeg") else [cv2.IMWRITE_PNG_COMPRESSION, 1]
    array = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image
    ok, buf = cv2.imencode(ext, array, params)
    if not ok:
        raise OSError(f"could not encode {ext} image")
    return buf.tobytes()


def decode_rgb(data: bytes) -> np.ndarray | None:
    """Decode image bytes to RGB uint8, or None when they are not a readable image."""
    if not data:
        return None
    array = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    return None if array is None else cv2.cvtColor(array, cv2.COLOR_BGR2RGB)
