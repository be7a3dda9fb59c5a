"""Benchmark: align-faces vs the naive way (facenet-pytorch ``MTCNN.detect`` one image at a time,
then a warp and a write), on the same LFW subset, side by side, medians of several runs.

Both sides are timed as whole processes (imports and model loading included), as a user runs
them. Usage:

    python bench/align.py [--lfw-dir DIR] [--images 600] [--repeats 3] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]


def naive(src: Path, out: Path) -> None:
    """The usual script: one MTCNN call per image, warp the first face, write the crop."""
    import cv2
    import numpy as np
    from facenet_pytorch import MTCNN

    from alignment import center_crop, warp_face

    mtcnn = MTCNN(keep_all=True)
    for path in sorted(src.rglob("*.jpg")):
        rgb = cv2.imread(str(path))[:, :, ::-1]
        boxes, _, points = mtcnn.detect(rgb, landmarks=True)
        if boxes is None:
            crop = center_crop(rgb)
        else:
            crop, _ = warp_face(rgb, np.asarray(points[0], float))
        dst = out / path.relative_to(src)
        dst.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(dst), np.ascontiguousarray(crop[:, :, ::-1]))


def make_subset(lfw: Path, n: int, where: Path) -> Path:
    files = sorted(lfw.rglob("*.jpg"))
    picked = files[:: max(1, len(files) // n)][:n]
    src = where / "subset"
    for f in picked:
        link = src / f.relative_to(lfw)
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(f, link)
    return src


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    default_lfw = Path(os.environ.get("ALOB_DATA", PROJECT.parent / "shared" / "data")) / "lfw" / "lfw-deepfunneled"
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lfw-dir", type=Path, default=default_lfw)
    parser.add_argument("--images", type=int, default=600)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--naive-worker", nargs=2, type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path, help="also write the medians to this file")
    args = parser.parse_args()
    if args.naive_worker:
        naive(*args.naive_worker)
        return
    if not args.lfw_dir.is_dir():
        sys.exit(f"LFW not found at {args.lfw_dir}: pass --lfw-dir or set ALOB_DATA")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        src = make_subset(args.lfw_dir, args.images, tmp)
        n = sum(1 for _ in src.rglob("*.jpg"))
        beside = Path(sys.executable).parent / "align-faces"  # the environment running this script
        ours_cmd = [str(beside) if beside.is_file() else shutil.which("align-faces") or "align-faces", str(src), str(tmp / "ours"),
                    "--workers", str(args.workers), "--quiet", "--overwrite"]
        naive_cmd = [sys.executable, __file__, "--naive-worker", str(src), str(tmp / "naive")]
        ours, slow = [], []
        for rep in range(args.repeats):
            ours.append(n / timed(ours_cmd))
            slow.append(n / timed(naive_cmd))
            print(f"run {rep + 1}: align-faces {ours[-1]:.1f} img/s, naive {slow[-1]:.1f} img/s, "
                  f"ratio {ours[-1] / slow[-1]:.2f}, load average {os.getloadavg()[0]:.1f}", flush=True)
    o, s = statistics.median(ours), statistics.median(slow)
    ratio = statistics.median(a / b for a, b in zip(ours, slow))
    print(f"\n{n} LFW images, {os.cpu_count()} cores, workers={args.workers}, medians of {args.repeats} runs")
    print(f"| method | images/s |\n|---|---|\n| align-faces | {o:.1f} |\n| naive MTCNN loop + warp | {s:.1f} |")
    print(f"speed-up (median of per-run ratios): {ratio:.2f}x")
    if args.json:
        args.json.write_text(json.dumps({"images": n, "workers": args.workers, "repeats": args.repeats,
                                         "ours": o, "reference": s, "ratio": ratio, "ours_all": ours,
                                         "reference_all": slow}, indent=2))


if __name__ == "__main__":
    main()
