"""Benchmark: MTCNN batches across image sizes against the per-size path, on real LFW faces.

A mixed-size tree is made from LFW: each picked photo is cropped to a random non-square window
that keeps the face (180–250 px a side) and rescaled by a random factor in 0.6–1.8, so nearly
every file has its own size and today's path (equal-size batches) detects them one at a time.
Each way of batching is run on the same files in one process (one torch thread on cpu), and its five
landmarks are compared with the per-image ones, in the pixels of the file. Usage:

    python bench/align_sizes.py [--lfw-dir DIR] [--images 600] [--repeats 3] [--batch-size 16] [--device cpu]
    python bench/align_sizes.py --stage-costs --images 100     # CPU ms per image of each stage

Prints a markdown table: faces found, mean / 95th-percentile landmark distance to the per-image
path, the distance to the template after the similarity fit, and detector images/s (median of
interleaved repeats).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

from alignment.detect import detect_across_sizes, make_detector  # noqa: E402
from alob_common.geometry import fit_similarity, template_for, transform_points  # noqa: E402
from alob_common.images import load_image, scan_images  # noqa: E402


def default_lfw() -> Path:
    """The deep-funneled LFW folder under ``$ALOB_DATA`` (or ``../shared/data``)."""
    return Path(os.environ.get("ALOB_DATA", PROJECT.parent / "shared" / "data")) / "lfw" / "lfw-deepfunneled"


def picked(lfw: Path, n: int) -> list[Path]:
    """``n`` LFW files spread over the set (every k-th of the sorted list)."""
    files = scan_images(lfw).images
    return files[:: max(1, len(files) // n)][:n]


def mixed_copy(rgb: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A random non-square crop around LFW's centred face, rescaled by 0.6–1.8, and the map
    (x0, y0, sx, sy) from the original's pixels to the copy's: ``(p - (x0, y0)) * (sx, sy)``."""
    h, w = rgb.shape[:2]
    sides = [h, w]
    axis = rng.integers(0, 3)  # 0: crop rows, 1: crop columns, 2: both
    windows = []
    for a in (0, 1):
        side = int(rng.integers(180, sides[a] + 1)) if axis in (a, 2) else sides[a]
        start = int(rng.integers(max(0, 180 - side), min(70, sides[a] - side) + 1))
        windows.append((start, side))
    (y0, ch), (x0, cw) = windows
    crop = rgb[y0 : y0 + ch, x0 : x0 + cw]
    s = float(rng.uniform(0.6, 1.8))
    size = (max(12, round(cw * s)), max(12, round(ch * s)))
    copy = cv2.resize(crop, size, interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    return copy, np.array([x0, y0, size[0] / cw, size[1] / ch])


def make_mixed(lfw: Path, n: int, where: Path, seed: int = 0) -> dict[str, np.ndarray]:
    """Write the mixed-size tree (JPEG, quality 95, identity folders kept) under ``where``;
    returns each file's map from its LFW original (see :func:`mixed_copy`), by relative path."""
    rng = np.random.default_rng(seed)
    maps = {}
    for f in picked(lfw, n):
        copy, maps[f.relative_to(lfw).as_posix()] = mixed_copy(load_image(f).rgb, rng)
        dst = where / f.relative_to(lfw)
        dst.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(dst), cv2.cvtColor(copy, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
    return maps


def shifted(detect, images: list[np.ndarray], by: int = 2) -> list:
    """Per-image faces of each image moved ``by`` px right and down on a black border, moved
    back: how far MTCNN's landmarks move for a change that carries no information."""
    faces = []
    for im in images:
        face = detect([cv2.copyMakeBorder(im, by, 0, by, 0, cv2.BORDER_CONSTANT, value=0)])[0]
        if face is not None and not isinstance(face, Exception):
            face.landmarks = face.landmarks - by
        faces.append(face)
    return faces


def run_mode(detect, images: list[np.ndarray], mode: str, batch: int) -> list:
    """Faces for every image, the way ``mode`` batches them (results in input order)."""
    if mode == "per image (today)":
        return [detect([im])[0] for im in images]
    if mode == "per image, shifted 2 px":
        return shifted(detect, images)
    window = batch * 4 if mode.startswith("pad, sorted") else batch
    canvas = int(mode.split()[1]) if mode.startswith("letterbox") else None
    results: list = [None] * len(images)
    for start in range(0, len(images), window):
        idx = list(range(start, min(start + window, len(images))))
        if mode.startswith("pad, sorted"):
            idx.sort(key=lambda i: (images[i].shape[0] * images[i].shape[1], images[i].shape))
        for k in range(0, len(idx), batch):
            part = idx[k : k + batch]
            for i, face in zip(part, detect_across_sizes(detect, [images[i] for i in part], canvas)):
                results[i] = face
    return results


def _points(faces: list) -> list:
    return [f.landmarks if f is not None and not isinstance(f, Exception) else None for f in faces]


def distances(reference: list, points: list) -> np.ndarray:
    """Mean distance of the five points to the reference ones, per image where both exist."""
    both = [(r, p) for r, p in zip(reference, points) if r is not None and p is not None]
    return np.array([np.linalg.norm(r - p, axis=1).mean() for r, p in both]) if both else np.zeros(1)


def compare(reference: list, originals: list, faces: list, size: str = "112x96") -> dict:
    """Found fraction, landmark distance to the per-image path and to the LFW original's (mapped),
    distance to the template after the fit."""
    points = _points(faces)
    found = [p for p in points if p is not None]
    template = template_for(size)
    fit = [np.linalg.norm(transform_points(p, fit_similarity(p, template)) - template, axis=1).mean() for p in found]
    old, orig = distances(_points(reference), points), distances(originals, points)
    return {"found": len(found) / len(faces), "mean": float(old.mean()), "p95": float(np.percentile(old, 95)),
            "orig": float(orig.mean()), "template": float(np.mean(fit))}


def stage_costs(files: list[Path], detect, batch: int, out: Path) -> dict[str, float]:
    """CPU milliseconds per image (``time.process_time``, so other jobs on the machine count
    little) of each stage: decode, detect one at a time, detect in batches across sizes, and
    warp + encode + write the crop."""
    from alignment.warp import warp_face
    from alob_common.images import write_image_atomic

    def cpu_ms(work) -> float:
        start = time.process_time()
        result = work()
        cost[0] = (time.process_time() - start) * 1000 / len(files)
        return result

    cost = [0.0]
    images = cpu_ms(lambda: [load_image(f).rgb for f in files])
    costs = {"decode (load_image)": cost[0]}
    faces = cpu_ms(lambda: [detect([im])[0] for im in images])
    costs["detect, one image per call"] = cost[0]
    cpu_ms(lambda: run_mode(detect, images, "pad, sorted x4", batch))
    costs["detect, batches across sizes"] = cost[0]
    found = [(im, f) for im, f in zip(images, faces) if f is not None and not isinstance(f, Exception)]
    cpu_ms(lambda: [write_image_atomic(out / f"{k}.jpg", warp_face(im, f.landmarks)[0]) for k, (im, f) in enumerate(found)])
    costs["warp + encode + write"] = cost[0] * len(files) / max(1, len(found))
    return costs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lfw-dir", type=Path, default=default_lfw())
    parser.add_argument("--images", type=int, default=600)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--modes", default="per image (today);per image, shifted 2 px;pad, chunk;pad, sorted x4;"
                                           "letterbox 250;letterbox 320")
    parser.add_argument("--stage-costs", action="store_true", help="only the CPU ms per image of each stage")
    args = parser.parse_args()
    if not args.lfw_dir.is_dir():
        sys.exit(f"LFW not found at {args.lfw_dir}: pass --lfw-dir or set ALOB_DATA")
    import tempfile

    import torch

    if args.device == "cpu":
        torch.set_num_threads(1)
    detect = make_detector("mtcnn", args.device)
    if args.stage_costs:
        with tempfile.TemporaryDirectory() as tmp:
            make_mixed(args.lfw_dir, args.images, Path(tmp) / "mixed")
            costs = stage_costs(scan_images(Path(tmp) / "mixed").images, detect, args.batch_size, Path(tmp))
        print(f"{args.images} mixed-size LFW files, CPU ms per image (1 torch thread), load average "
              f"{os.getloadavg()[0]:.1f}\n| stage | CPU ms per image |\n|---|---|")
        print("\n".join(f"| {name} | {ms:.2f} |" for name, ms in costs.items()))
        return
    with tempfile.TemporaryDirectory() as tmp:
        maps = make_mixed(args.lfw_dir, args.images, Path(tmp))
        files = scan_images(tmp).images
        images = [load_image(f).rgb for f in files]
    originals = []  # the per-image landmarks of each LFW original, mapped into its mixed copy
    for f in files:
        rel = f.relative_to(tmp).as_posix()
        face = detect([load_image(args.lfw_dir / rel).rgb])[0]
        m = maps[rel]
        originals.append(None if face is None or isinstance(face, Exception) else (face.landmarks - m[:2]) * m[2:])
    modes = args.modes.split(";")
    faces, speed = {}, {m: [] for m in modes}
    for _ in range(args.repeats):
        for mode in modes:
            start = time.perf_counter()
            faces[mode] = run_mode(detect, images, mode, args.batch_size)
            speed[mode].append(len(images) / (time.perf_counter() - start))
    sizes = np.array([im.shape[:2] for im in images])
    print(f"{len(images)} mixed-size LFW files ({sizes[:, 1].min()}-{sizes[:, 1].max()} x "
          f"{sizes[:, 0].min()}-{sizes[:, 0].max()} px, {len({tuple(s) for s in sizes})} sizes), "
          f"batch {args.batch_size}, {args.device}, medians of {args.repeats} interleaved repeats, "
          f"load average {os.getloadavg()[0]:.1f}")
    print("| batching | faces found | landmarks vs per-image path: mean px | 95th pct px "
          "| vs the LFW original's, mapped: mean px | fit to template, mean px | detector images/s |")
    print("|---|---|---|---|---|---|---|")
    reference = faces[modes[0]]
    for mode in modes:
        c = compare(reference, originals, faces[mode])
        print(f"| {mode} | {c['found']:.3f} | {c['mean']:.3f} | {c['p95']:.3f} | {c['orig']:.3f} "
              f"| {c['template']:.2f} | {statistics.median(speed[mode]):.1f} |")


if __name__ == "__main__":
    main()
