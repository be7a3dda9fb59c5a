"""``alob-eval embed``: the embeddings of every image under a folder, by a trained model (or a
reference model), written in the format ``alob-eval --embeddings`` reads.

The images are aligned crops, read as the evaluation reads them (so a folder's embeddings equal
those ``alob-eval --save-embeddings`` writes for the same images), or raw photos (``align``):
each is read with the careful reader of ``align-faces``, its face found by MTCNN and warped onto
the template of the model's input size, as ``align-faces`` does (no face: insightface's centre
crop, counted). An image that cannot be read is skipped and listed, never the end of the run.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from alob_common.atomic import write_json_atomic
from alob_common.errors import UserError
from alob_common.geometry import CROP_SIZES
from alob_common.images import load_image, no_images_message, read_rgb, scan_images
from alob_common.verification import Embedder
from alob_common.vocabulary import package_version
from alob_eval.embeddings import save_embeddings

Aligner = Callable[[np.ndarray], tuple[np.ndarray, bool]]


@dataclass
class FolderEmbeddings:
    """What :func:`embed_folder` found: paths relative to the folder (``/``), one vector each,
    the unreadable images with the reason, and (``align``) the photos where no face was found."""

    paths: list[str] = field(default_factory=list)
    vectors: list[np.ndarray] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)
    no_face: list[str] = field(default_factory=list)
    other_files: int = 0


def aligner(input_size: tuple[int, int] | None, device: str = "cpu") -> Aligner:
    """``--align``: a raw RGB photo → its face warped onto the 5-point template (the model's input
    size when it is a crop size, else 112×112) and whether a face was found (else the centre crop)."""
    from alignment import center_crop, detect_landmarks, warp_face

    size = input_size if input_size in CROP_SIZES.values() else CROP_SIZES["112x112"]
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"

    def align(rgb: np.ndarray) -> tuple[np.ndarray, bool]:
        face = detect_landmarks(rgb, device=device)
        if face is None:
            return center_crop(rgb, size), False
        return warp_face(rgb, face.landmarks, size)[0], True

    return align


def _read(path: Path, align: Aligner | None, found: FolderEmbeddings, name: str) -> np.ndarray | None:
    """One image as the model's input (aligned when asked), or None with the reason recorded."""
    try:
        if align is None:
            return read_rgb(path)
        crop, face = align(load_image(path).rgb)
    except Exception as err:  # any undecodable file is recorded, whatever the decoder raised
        found.failed.append({"path": name, "reason": f"{type(err).__name__}: {err}"})
        return None
    if not face:
        found.no_face.append(name)
    return crop


def embed_folder(root: str | Path, embed: Embedder, batch_size: int = 64, flip: bool = False,
                 align: Aligner | None = None, progress: bool = True) -> FolderEmbeddings:
    """Embed every image under ``root`` (recursive, sorted) in batches; with ``flip`` each vector
    is the sum over the image and its mirror, as ``alob-eval --flip``. Vectors are float64, as
    the evaluation scores them."""
    root = Path(root)
    scan = scan_images(root)
    if not scan.images:
        raise UserError(no_images_message(root, scan))
    found = FolderEmbeddings(other_files=scan.others)
    with tqdm(total=len(scan.images), unit="img", desc="embedding", disable=not progress) as bar:
        for start in range(0, len(scan.images), batch_size):
            images, names = [], []
            for path in scan.images[start : start + batch_size]:
                name = path.relative_to(root).as_posix()
                image = _read(path, align, found, name)
                if image is not None:
                    images.append(image)
                    names.append(name)
            if images:
                vectors = np.asarray(embed(images), dtype=np.float64)
                if flip:
                    mirrored = [np.ascontiguousarray(i[:, ::-1]) for i in images]
                    vectors = vectors + np.asarray(embed(mirrored), dtype=np.float64)
                found.paths += names
                found.vectors += list(vectors)
            bar.update(len(scan.images[start : start + batch_size]))
    return found


def write_folder_embeddings(out: str | Path, found: FolderEmbeddings, meta: dict) -> Path:
    """``OUT/embeddings.npz`` (float32, paths relative to the folder embedded) and
    ``OUT/embed.json`` (model, counts, the unreadable images); returns the ``.npz``."""
    out = Path(out)
    if not found.paths:
        raise UserError(f"no image could be read ({len(found.failed)} failed, e.g. {found.failed[0]['path']}: "
                        f"{found.failed[0]['reason']})")
    target = out / "embeddings.npz"
    try:
        save_embeddings(target, found.paths, np.stack(found.vectors), np.float32)
        write_json_atomic(out / "embed.json", {
            "tool": "alob-eval embed", "version": package_version(), "command": sys.argv, **meta,
            "counts": {"images": len(found.paths) + len(found.failed), "embedded": len(found.paths),
                       "failed": len(found.failed), "no_face": len(found.no_face), "other_files": found.other_files},
            "failed": found.failed, "no_face": found.no_face,
        })
    except OSError as err:
        raise UserError(f"cannot write to {out}: {err.strerror or err}") from None
    return target


def embed_and_write(data: str | Path, out: str | Path, embed: Embedder, model: dict, batch_size: int = 64,
                    flip: bool = False, align_on: str | None = None, progress: bool = True) -> str:
    """``alob-eval embed``: embed the folder ``data`` (raw photos aligned first when ``align_on``
    names a device), write ``out`` and return the summary lines. ``model``: the model's
    description, backend used and input size."""
    start = time.perf_counter()
    align = aligner(model["input_size"], align_on) if align_on else None
    found = embed_folder(data, embed, batch_size, flip, align, progress)
    meta = {"model": model["model"], "backend": model["backend"], "data": str(Path(data).resolve()),
            "align": align is not None, "flip": flip, "seconds": round(time.perf_counter() - start, 1)}
    target = write_folder_embeddings(out, found, meta)
    return (f"embedded {len(found.paths)} images in {meta['seconds']} s with {meta['model']} ({meta['backend']})"
            + (f"; {len(found.failed)} unreadable, skipped" if found.failed else "")
            + (f"; no face in {len(found.no_face)}, centre crop used" if found.no_face else "")
            + f"\nembeddings: {target}\nreport: {Path(out) / 'embed.json'}")
