"""Robust image reading and atomic writing for the aligner.

Every odd input is either converted (with a note saying how) or rejected with a short reason,
never a crash: EXIF orientation is honoured, CMYK / palette / alpha / grayscale / 16-bit images
become 8-bit RGB, animations give their first frame, huge images are decoded downscaled.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})
MIN_SIDE = 12  # MTCNN's P-Net window; nothing smaller can hold a detectable face
HARD_PIXEL_LIMIT = 400_000_000  # refuse outright above this (decompression bombs)

Image.MAX_IMAGE_PIXELS = None  # we apply our own, explicit limits below


class BadImage(Exception):
    """An input that cannot be turned into an RGB image; the message is the manifest reason."""


@dataclass
class Loaded:
    """A decoded image (RGB uint8, EXIF-upright) and what was done to get it."""

    rgb: np.ndarray
    scale: float = 1.0  # source pixels per decoded pixel (> 1 when downscaled)
    notes: list[str] = field(default_factory=list)


def _to_rgb8(img: Image.Image, notes: list[str]) -> np.ndarray:
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") or arr.max() > 255 else 255.0
        arr = np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        notes.append(f"converted {mode} to 8-bit")
        return np.repeat(arr[:, :, None], 3, axis=2)
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        notes.append(f"alpha ({mode}) flattened on white")
        return np.asarray(Image.alpha_composite(white, rgba).convert("RGB"))
    if mode != "RGB":
        notes.append(f"converted {mode} to RGB")
    return np.asarray(img.convert("RGB"))


def load_image(path: str | os.PathLike, max_pixels: int = 40_000_000) -> Loaded:
    """Decode ``path`` into an upright RGB uint8 array, or raise :class:`BadImage`."""
    path = Path(path)
    if path.is_symlink() and not path.exists():
        raise BadImage("broken symlink")
    try:
        size = path.stat().st_size
    except OSError as err:
        raise BadImage(f"unreadable: {err.strerror or err}") from None
    if size == 0:
        raise BadImage("empty file (0 bytes)")
    notes: list[str] = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as img:
                frames = getattr(img, "n_frames", 1)
                if frames > 1:
                    notes.append(f"animated ({frames} frames): first frame used")
                w, h = img.size
                if w * h > HARD_PIXEL_LIMIT:
                    raise BadImage(f"too large: {w}x{h} exceeds {HARD_PIXEL_LIMIT:,} pixels")
                if w * h > max_pixels:
                    factor = (w * h / max_pixels) ** 0.5
                    img.draft("RGB", (int(w / factor), int(h / factor)))  # JPEG: decode smaller
                img.load()
                orientation = img.getexif().get(0x0112, 1)
                img = ImageOps.exif_transpose(img)
                if orientation != 1:
                    notes.append(f"EXIF orientation {orientation} applied")
                ratio = (img.size[0] * img.size[1] / max_pixels) ** 0.5
                if ratio > 1:
                    new_size = (max(1, int(img.size[0] / ratio)), max(1, int(img.size[1] / ratio)))
                    img = img.resize(new_size, Image.Resampling.BILINEAR)
                scale = max(w, h) / max(img.size)
                if scale > 1:
                    notes.append(f"huge ({w}x{h} > {max_pixels:,} px): decoded at 1/{scale:.2f}")
                rgb = _to_rgb8(img, notes)
    except BadImage:
        raise
    except UnidentifiedImageError:
        raise BadImage("not an image (unrecognised format)") from None
    except (OSError, SyntaxError, ValueError) as err:
        raise BadImage(f"corrupt or truncated: {err}") from None
    except Exception as err:  # any other decoder failure is still one bad file, not a crash
        raise BadImage(f"decode error: {type(err).__name__}: {err}") from None
    if min(rgb.shape[:2]) < MIN_SIDE:
        raise BadImage(f"too small: {rgb.shape[1]}x{rgb.shape[0]} (minimum side {MIN_SIDE} px)")
    return Loaded(np.ascontiguousarray(rgb), scale, notes)


def write_image_atomic(path: str | os.PathLike, rgb: np.ndarray, jpeg_quality: int = 95) -> None:
    """Encode ``rgb`` by the file extension and move it into place only when complete."""
    path = Path(path)
    ext = path.suffix.lower()
    params = [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality] if ext in (".jpg", ".jpeg") else []
    if ext == ".webp":
        params = [cv2.IMWRITE_WEBP_QUALITY, 100]
    ok, buf = cv2.imencode(ext, np.ascontiguousarray(rgb[:, :, ::-1]), params)
    if not ok:
        raise OSError(f"could not encode {ext} image")
    write_bytes_atomic(path, buf.tobytes())


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path`` and rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
