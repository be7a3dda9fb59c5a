"""What an image is, for every stage: the file types, finding them in a tree, and decoding.

``load_image`` is the careful reader for raw photos: every odd input is either converted (with a
note saying how) or rejected with a short reason, never a crash: EXIF orientation is honoured,
CMYK / palette / alpha / grayscale / 16-bit images become 8-bit RGB, multi-frame files (GIF,
TIFF, animated WebP) give their first frame, huge images are decoded downscaled.
``decode_rgb`` and ``read_rgb`` are the fast readers of already aligned crops.
"""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from alob_common.atomic import write_bytes_atomic

try:  # libjpeg-turbo bindings: the same pixels as OpenCV's JPEG decoder (checked on all of LFW), faster
    import simplejpeg
except ImportError:  # optional (the "fast" extra): OpenCV decodes instead
    simplejpeg = None

# Still-image formats that Pillow or OpenCV decode (compared in lower case).
IMAGE_EXTENSIONS = frozenset({
    ".jpg", ".jpeg", ".jpe", ".png", ".bmp", ".dib", ".webp", ".gif", ".tif", ".tiff",
    ".pgm", ".ppm", ".pbm", ".pnm", ".jp2", ".j2k",
})
# The subset OpenCV writes as 8-bit RGB (a crop of a PGM, GIF or JPEG 2000 source is written as PNG).
RGB_WRITABLE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
MIN_SIDE = 12  # MTCNN's P-Net window; nothing smaller can hold a detectable face
HARD_PIXEL_LIMIT = 400_000_000  # refuse outright above this (decompression bombs)

Image.MAX_IMAGE_PIXELS = None  # we apply our own, explicit limits below


def is_image_name(name: str) -> bool:
    """True for a visible file whose extension is an image type (any case)."""
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


@dataclass
class ImageScan:
    """The images found under a folder, and how many other files were passed over."""

    images: list[Path]
    others: int = 0
    other_examples: list[str] = field(default_factory=list)

    def describe_others(self) -> str:
        """``"3 other files (a.txt, b.mov, …)"`` or an empty string."""
        if not self.others:
            return ""
        more = ", …" if self.others > len(self.other_examples) else ""
        return f"{self.others} non-image file(s) ({', '.join(self.other_examples)}{more})"

    def summary(self) -> dict:
        """The counts for a ``dataset.json``."""
        return {"images": len(self.images), "other_files": self.others, "other_examples": self.other_examples}


def scan_images(root: str | os.PathLike, examples: int = 5) -> ImageScan:
    """Every image file under ``root`` (recursive, sorted), with symlinked folders followed (each
    real folder once, so link cycles end) and hidden entries skipped; other files are counted
    with a few example names (relative to ``root``), so nothing is dropped silently."""
    root = Path(root)
    scan, seen = ImageScan([]), set()
    for folder, dirs, files in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if is_image_name(name):
                scan.images.append(Path(folder, name))
            elif not name.startswith("."):
                scan.others += 1
                if len(scan.other_examples) < examples:
                    scan.other_examples.append(Path(folder, name).relative_to(root).as_posix())
    scan.images.sort()
    return scan


def no_images_message(root: str | os.PathLike, scan: ImageScan) -> str:
    """The one-line error for a folder without images, saying what it did hold."""
    found = scan.describe_others() or "nothing but folders or hidden files"
    return f"no images found under {root} (found {found}); image types: {', '.join(sorted(IMAGE_EXTENSIONS))}"


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
                    notes.append(f"multi-frame ({frames} frames): first frame used")
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


def encode(image: np.ndarray, ext: str, jpeg_quality: int = 95, png_level: int | None = 1) -> bytes:
    """Encode an RGB (or single-channel) uint8 array as ``ext`` (".jpg", ".png", ".webp" …).

    PNG uses compression ``png_level`` (1, fast, for dataset builders; None = OpenCV's default,
    the aligner's choice); WebP is lossless."""
    ext = ext.lower()
    params: list[int] = []
    if ext in (".jpg", ".jpeg"):
        params = [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality]
    elif ext == ".webp":
        params = [cv2.IMWRITE_WEBP_QUALITY, 100]
    elif ext == ".png" and png_level is not None:
        params = [cv2.IMWRITE_PNG_COMPRESSION, png_level]
    array = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image
    ok, buf = cv2.imencode(ext, array, params)
    if not ok:
        raise OSError(f"could not encode {ext} image")
    return buf.tobytes()


def write_image_atomic(path: str | os.PathLike, rgb: np.ndarray, jpeg_quality: int = 95) -> None:
    """Encode ``rgb`` by the file extension and move it into place only when complete."""
    write_bytes_atomic(path, encode(rgb, Path(path).suffix, jpeg_quality, png_level=None))


def _has_exif(data: bytes) -> bool:
    """Whether a JPEG has an Exif segment before its image data (OpenCV turns the picture by its
    orientation tag, simplejpeg does not, so those go to OpenCV)."""
    i = 2
    while i + 10 <= len(data) and data[i] == 0xFF and data[i + 1] not in (0xDA, 0xD9):
        if data[i + 1] == 0xE1 and data[i + 4 : i + 8] == b"Exif":
            return True
        i += 2 + int.from_bytes(data[i + 2 : i + 4], "big")
    return False


def decode_rgb(data: bytes) -> np.ndarray | None:
    """Decode image bytes to RGB uint8 (OpenCV, or simplejpeg for a JPEG without Exif when it is
    installed: the same pixels, faster; Pillow for what OpenCV cannot read, first frame of a
    multi-frame file), or None when they are not a readable image."""
    if not data:
        return None
    if simplejpeg is not None and data[:3] == b"\xff\xd8\xff" and not _has_exif(data):
        try:
            return simplejpeg.decode_jpeg(data, "RGB")
        except Exception:  # a JPEG it cannot read (CMYK, 12-bit, damaged): OpenCV and Pillow try
            pass
    array = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if array is not None:
        return cv2.cvtColor(array, cv2.COLOR_BGR2RGB)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as img:
                return np.array(img.convert("RGB"))
    except Exception:  # any decoder failure means "not a readable image"
        return None


def decode_jpeg_rgb(data: bytes) -> np.ndarray | None:
    """A colour or grayscale JPEG's RGB pixels by libjpeg-turbo (simplejpeg, else OpenCV), which
    are Pillow's (:func:`read_rgb`, the evaluation's reader) bit for bit
    (tested); None for anything else (CMYK, not a JPEG, damaged), which Pillow then decodes or
    explains."""
    if data[:2] != b"\xff\xd8":
        return None
    try:
        if simplejpeg is not None:
            if simplejpeg.decode_jpeg_header(data)[2] not in ("YCbCr", "Gray"):
                return None
            return simplejpeg.decode_jpeg(data, colorspace="RGB")
        with Image.open(io.BytesIO(data)) as im:  # reads the header only
            if im.mode not in ("RGB", "L"):
                return None
        bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
        return None if bgr is None else cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    except (ValueError, OSError, cv2.error):
        return None


def read_rgb(path: str | os.PathLike | io.BytesIO) -> np.ndarray:
    """Decode an image file (or encoded bytes in a ``BytesIO``) to a uint8 HWC RGB array (Pillow;
    the first frame of a multi-frame file); the reader of training and evaluation, so both see
    the same pixels."""
    with Image.open(path) as im:
        return np.array(im.convert("RGB"))
