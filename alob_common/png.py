"""A fast encoder of single-channel 8-bit PNGs (dataset masks) whose bytes are exactly those of
OpenCV's ``imencode(".png", mask, [IMWRITE_PNG_COMPRESSION, 1])``.

OpenCV's PNG writer spends most of its time outside compression on a 112×96 mask; the same file
is made here with numpy (the per-row filter chosen as libpng chooses it: the filter whose
output has the smallest sum of absolute signed bytes, the first on ties) and zlib at level 1
with the window fitted to the data. The first call checks this against OpenCV on a few masks
and, if any byte differs (another OpenCV or zlib build), every later call returns None so the
caller uses OpenCV: the output never changes, only the speed.
"""

from __future__ import annotations

import struct
import zlib

import cv2
import numpy as np

MIN_BYTES = 4097  # smaller images use a window size zlib cannot express the same way: OpenCV does them
IDAT_BYTES = 8192  # compressed data per IDAT chunk (libpng's buffer)
_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_STATE: dict[str, bool] = {}


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(data, zlib.crc32(kind)))


def _filtered(image: np.ndarray) -> bytes:
    """The filtered scanlines (filter byte + row) libpng's adaptive filtering writes."""
    a = image.astype(np.int16)
    up, left, corner = np.zeros_like(a), np.zeros_like(a), np.zeros_like(a)
    up[1:], left[:, 1:], corner[1:, 1:] = a[:-1], a[:, :-1], a[:-1, :-1]
    pa, pb, pc = np.abs(up - corner), np.abs(left - corner), np.abs(left + up - 2 * corner)
    paeth = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, corner))
    predictions = np.stack([np.zeros_like(a), left, up, (left + up) >> 1, paeth]).astype(np.uint8)
    rows = image[None] - predictions  # modulo 256, as PNG filters are
    best = np.argmin(np.minimum(rows, 0 - rows).sum(axis=2, dtype=np.int32), axis=0)  # |signed byte| sums
    lines = np.empty((a.shape[0], a.shape[1] + 1), np.uint8)
    lines[:, 0] = best
    lines[:, 1:] = rows[best, np.arange(a.shape[0])]
    return lines.tobytes()


def _encode(image: np.ndarray) -> bytes:
    height, width = image.shape
    raw = _filtered(image)
    bits = max(9, (len(raw) - 1).bit_length())  # the smallest window holding the data
    deflate = zlib.compressobj(1, zlib.DEFLATED, min(bits, 15), 8, zlib.Z_DEFAULT_STRATEGY)
    data = deflate.compress(raw) + deflate.flush()
    idat = b"".join(_chunk(b"IDAT", data[i : i + IDAT_BYTES]) for i in range(0, len(data), IDAT_BYTES))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return _SIGNATURE + _chunk(b"IHDR", header) + idat + _chunk(b"IEND", b"")


def _opencv(image: np.ndarray) -> bytes:
    return cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 1])[1].tobytes()


def _agrees() -> bool:
    """Whether this encoder gives OpenCV's bytes on this machine (checked once per process)."""
    if "ok" not in _STATE:
        rng = np.random.default_rng(0)
        samples = [np.zeros((112, 96), np.uint8), rng.integers(0, 256, (60, 80), dtype=np.uint8),
                   (rng.random((112, 112)) > 0.5).astype(np.uint8) * 255]
        samples[0][20:90, 10:70] = 255
        _STATE["ok"] = all(_encode(s) == _opencv(s) for s in samples)
    return _STATE["ok"]


def encode_gray_png(image: np.ndarray) -> bytes | None:
    """OpenCV's level-1 PNG of a 2-D uint8 ``image``, made faster; None when this image (too
    small, another layout) or this machine's OpenCV is not covered, so the caller encodes it."""
    if image.ndim != 2 or image.dtype != np.uint8 or image.shape[1] < 2 or image.size + image.shape[0] < MIN_BYTES:
        return None
    return _encode(np.ascontiguousarray(image)) if _agrees() else None
