"""Benchmark of occgen, side by side in one run (medians of several repeats).

(a) ``occlude()`` alone on 112×96 arrays, images per second on one core, per mode;
(b) an LFW-OCC build (decode, occlude, encode, write image + mask, plus the clean copy and the
    manifest) with ``occgen.build``, in one process and with 2 worker processes;
(c) the same build done the FROM way: a minimal re-implementation of FROM's PIL procedure
    (``occluded_image_ratio``: PIL decode, resize, paste the RGB rectangle, numpy mask, PIL
    encode of image and mask), written here for the comparison, with the same inputs and outputs.

Usage:  python bench/occgen.py --src /work/data/lfw-aligned --out /tmp/occgen-bench [--subset 2000]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import time
from pathlib import Path

if not __package__:  # run as a script, this file's folder would shadow the occgen package
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import numpy as np
from PIL import Image

from occgen import OcclusionConfig, default_library, occlude, parse_scale_set
from occgen.build import BuildConfig, Job, build, list_sources


def bench_occlude(repeats: int, n: int = 3000) -> dict[str, float]:
    library = default_library()
    images = np.random.default_rng(0).integers(0, 256, (16, 112, 96, 3), dtype=np.uint8)
    modes = {
        "factor 3.0, rect (FROM-exact)": OcclusionConfig(factor=3.0, blend="rect"),
        "factor 2.0, alpha": OcclusionConfig(factor=2.0),
        "scale-set 1:0.5:5, alpha": OcclusionConfig(scale_set=parse_scale_set("1:0.5:5")),
        "ratio 0.52, alpha": OcclusionConfig(ratio=0.52),
        "ratio 0.52, alpha, semantic": OcclusionConfig(ratio=0.52, placement="semantic"),
    }
    results = {}
    for name, cfg in modes.items():
        occlude(images[0], np.random.default_rng(0), library, cfg)  # calibration and caches outside the timing
        rates = []
        for r in range(repeats):
            rngs = [np.random.default_rng([r, i]) for i in range(n)]
            start = time.perf_counter()
            for i, rng in enumerate(rngs):
                occlude(images[i % 16], rng, library, cfg)
            rates.append(n / (time.perf_counter() - start))
        results[name] = statistics.median(rates)
    pil_images = [Image.fromarray(a) for a in images]
    pil_occluders = [Image.fromarray(o.flat) for o in library.occluders]
    rates = []
    for r in range(repeats):
        random.seed(r)
        start = time.perf_counter()
        for i in range(n):
            from_occlude(pil_images[i % 16].copy(), random.choice(pil_occluders), 3.0)
        rates.append(n / (time.perf_counter() - start))
    results["FROM's procedure (PIL), factor 3.0"] = statistics.median(rates)
    return results


def from_occlude(img: Image.Image, occ: Image.Image, factor: float):
    """FROM's ``occluded_image_ratio`` step alone (PIL resize and paste, numpy mask and ratio)."""
    W, H = img.size
    new_w, new_h = min(W - 1, int(factor * occ.size[0])), min(H - 1, int(factor * occ.size[1]))
    occ = occ.resize((new_w, new_h))
    cx, cy = random.choice(range(0, W)), random.choice(range(0, H))
    sx, sy = cx - new_w // 2, cy - new_h // 2
    ex, ey = cx + (new_w + 1) // 2, cy + (new_h + 1) // 2
    img.paste(occ, (sx, sy, ex, ey))
    sx, sy, ex, ey = max(sx, 0), max(sy, 0), min(W - 1, ex), min(H - 1, ey)
    mask = np.zeros((H, W))
    mask[sy:ey, sx:ex] = 1.0
    return img, mask, (ey - sy) * (ex - sx) / float(H * W)


def in_memory(src: Path, rels: list[str], repeats: int) -> dict[str, float]:
    """Decode → occlude → encode image and mask, bytes in and out, no file system: the compute
    each approach needs per image, FROM's PIL procedure against occgen's."""
    import io as _io

    from alob_common.images import decode_rgb, encode

    blobs = [(src / rel).read_bytes() for rel in rels]
    library = default_library()
    cfg = OcclusionConfig(factor=3.0, blend="rect")
    pil_occluders = [Image.fromarray(o.flat) for o in library.occluders]

    def ours() -> None:
        for i, blob in enumerate(blobs):
            image, mask, _ = occlude(decode_rgb(blob), np.random.default_rng([0, i]), library, cfg)
            encode(image, ".jpg"), encode(mask, ".png")

    def theirs() -> None:
        random.seed(0)
        for blob in blobs:
            img, mask, _ = from_occlude(Image.open(_io.BytesIO(blob)).convert("RGB"), random.choice(pil_occluders), 3.0)
            img.save(_io.BytesIO(), "JPEG", quality=95)
            Image.fromarray((mask * 255).astype(np.uint8)).save(_io.BytesIO(), "PNG")

    times = {"FROM way (PIL)": [], "occgen": []}
    for _ in range(repeats):
        times["FROM way (PIL)"].append(timed(theirs))
        times["occgen"].append(timed(ours))
    return {k: len(blobs) / statistics.median(v) for k, v in times.items()}


def from_way(src: Path, rels: list[str], out: Path, factor: float, seed: int) -> None:
    """FROM's procedure, PIL throughout: one random occluder per image at a fixed factor (the
    occluders are the bundled ones flattened to RGB, as FROM's are RGB pictures)."""
    random.seed(seed)
    occluders = [Image.fromarray(o.flat) for o in default_library().occluders]
    for rel in rels:
        img, mask, _ = from_occlude(Image.open(src / rel).convert("RGB"), random.choice(occluders), factor)
        target = out / "images" / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        img.save(target, quality=95)
        mask_path = (out / "masks" / rel).with_suffix(".png")
        mask_path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray((mask * 255).astype(np.uint8)).save(mask_path)


def subset_tree(src: Path, rels: list[str], root: Path) -> Path:
    """A folder of symlinks holding just ``rels`` (an identity tree occgen can read)."""
    if root.exists():
        shutil.rmtree(root)
    for rel in rels:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).symlink_to(src / rel)
    return root


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--src", required=True, type=Path, help="aligned LFW (align-faces output)")
    parser.add_argument("--out", required=True, type=Path, help="scratch folder for the builds (deleted and rewritten)")
    parser.add_argument("--subset", type=int, default=2000, help="images per build timing")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--full", action="store_true", help="also time one full-LFW build with 2 workers")
    parser.add_argument("--json", type=Path, help="also write the build medians to this file")
    args = parser.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)

    print(f"machine: {os.cpu_count()} cores; medians of {args.repeats} repeats\n")
    print("(a) occlude() alone, 112x96 arrays, one core")
    for name, rate in bench_occlude(args.repeats).items():
        print(f"  {name:<32} {rate:8.0f} images/s")

    rels = list_sources(args.src)[0][: args.subset]  # whole identity folders, as in LFW itself
    sub = subset_tree(args.src.resolve(), sorted(rels), args.out / "subset")
    config = BuildConfig("lfw", OcclusionConfig(factor=3.0, blend="rect"), unit_size=250)
    ratio_config = BuildConfig("lfw", OcclusionConfig(ratio=0.52), unit_size=250)

    runs = iter(range(10**6))  # every timed build writes into a fresh folder: no deletion load while timing

    def ours(cfg, workers):
        return lambda: build(Job(sub, args.out / f"run{next(runs)}", cfg, workers=workers), progress=False)

    def theirs():
        from_way(sub, sorted(rels), args.out / f"run{next(runs)}", 3.0, 0)

    rows = {"FROM way (PIL), 1 process": theirs, "occgen factor 3.0 rect, 1 process": ours(config, 0),
            "occgen factor 3.0 rect, 2 workers": ours(config, 2), "occgen ratio 0.52 alpha, 2 workers": ours(ratio_config, 2)}
    times: dict[str, list[float]] = {k: [] for k in rows}
    for _ in range(args.repeats):
        for name, fn in rows.items():  # interleaved, so load changes hit all alike
            times[name].append(timed(fn))
    n = len(rels)
    memory = in_memory(args.src, rels, args.repeats)
    print(f"\n(b0) in memory, factor 3.0 rect, {n} images, one core: decode, occlude, encode image + mask")
    for name, rate in memory.items():
        print(f"  {name:<36} {rate:8.0f} images/s   {rate / memory['FROM way (PIL)']:5.2f}x the FROM way")
    print(f"\n(b, c) LFW-OCC build of {n} aligned LFW images (decode, occlude, encode, write image + mask)")
    base = statistics.median(times["FROM way (PIL), 1 process"])
    for name, ts in times.items():
        t = statistics.median(ts)
        print(f"  {name:<36} {n / t:8.0f} images/s   {base / t:5.2f}x the FROM way")
    if args.json:
        medians = {name: n / statistics.median(ts) for name, ts in times.items()}
        args.json.write_text(json.dumps({"images": n, "repeats": args.repeats, "images_per_s": medians,
                                         "ratio_vs_from": {k: v / medians["FROM way (PIL), 1 process"]
                                                           for k, v in medians.items()}}, indent=2))
    if args.full:
        for name, cfg in (("factor 3.0 rect", config), ("ratio 0.52 alpha", ratio_config)):
            target = args.out / f"run{next(runs)}"
            t = timed(lambda cfg=cfg, target=target: build(Job(args.src, target, cfg, workers=2), progress=False))
            total = len(list_sources(args.src)[0])
            print(f"full LFW ({total} images), {name}, 2 workers: {t:.1f} s, {total / t:.0f} images/s")
    shutil.rmtree(args.out, ignore_errors=True)


if __name__ == "__main__":
    main()
