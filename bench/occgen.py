"""Benchmark of occgen against the FROM way, side by side in one run (medians of interleaved
repeats), printed as markdown tables.

(a) ``occlude()`` alone on 112×96 arrays, images per second on one core, per mode; ratio mode
    with both solvers (``search``, the per-image search; ``curve``, the coverage tables);
(b) where the time of one image goes, per stage (decode, occlude, encode image, encode mask, file
    creation, manifest), µs per image in one process, for occgen's build steps and the FROM way;
(c) whole LFW-OCC builds with ``occgen.build`` (decode, occlude, encode, write image + mask, the
    clean copy, the manifest pieces, manifest.csv, dataset.json): one process each (per core),
    against the FROM way in one process, and with 2 worker processes;
(d) with ``--full``: the whole aligned LFW built with 2 workers (factor and ratio mode).

The FROM way is a minimal re-implementation of FROM's PIL procedure (``occluded_image_ratio``:
PIL decode, resize, paste the RGB rectangle, numpy mask, PIL encode of image and mask, written
to files), given the same inputs and writing the same images and masks.

Usage:  python bench/occgen.py --src lfw-aligned --out /tmp/occgen-bench [--subset 2000]
            [--repeats 3] [--full --pairs pairs.txt]
"""

from __future__ import annotations

import argparse
import io
import os
import random
import shutil
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

if not __package__:  # run as a script, this file's folder would shadow the occgen package
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import numpy as np
from PIL import Image

from alob_common.atomic import link_or_copy_atomic, write_bytes_atomic
from alob_common.images import decode_rgb, encode
from occgen import OcclusionConfig, default_library, occlude, parse_scale_set, rng_for
from occgen.build import BuildConfig, Job, build, list_sources
from occgen.build_plan import MANIFEST_COLUMNS
from occgen.build_sources import read_input
from occgen.build_worker import manifest_csv

STAGES = ("decode", "occlude", "encode image", "encode mask", "file creation", "manifest")
FACTOR = OcclusionConfig(factor=3.0, blend="rect")
RATIO = OcclusionConfig(ratio=0.52)
RATIO_SEARCH = OcclusionConfig(ratio=0.52, ratio_solver="search")


def bench_occlude(repeats: int, n: int = 3000) -> dict[str, float]:
    """(a): images per CPU-second of ``occlude()`` per mode, and of FROM's occlusion step."""
    library = default_library()
    images = np.random.default_rng(0).integers(0, 256, (16, 112, 96, 3), dtype=np.uint8)
    modes = {
        "`--factor 3.0 --blend rect` (FROM-exact)": FACTOR,
        "`--factor 2.0` alpha": OcclusionConfig(factor=2.0),
        "`--scale-set 1:0.5:5` alpha": OcclusionConfig(scale_set=parse_scale_set("1:0.5:5")),
        "`--ratio 0.52` alpha, search (old)": RATIO_SEARCH,
        "`--ratio 0.52` alpha, curve (new)": RATIO,
        "`--ratio 0.52` alpha semantic, search (old)": OcclusionConfig(ratio=0.52, placement="semantic",
                                                                       ratio_solver="search"),
        "`--ratio 0.52` alpha semantic, curve (new)": OcclusionConfig(ratio=0.52, placement="semantic"),
    }
    for cfg in modes.values():
        occlude(images[0], np.random.default_rng(0), library, cfg)  # calibration and tables outside the timing
    pil_images = [Image.fromarray(a) for a in images]
    pil_occluders = [Image.fromarray(o.flat) for o in library.occluders]
    rates: dict[str, list[float]] = defaultdict(list)
    for r in range(repeats):
        for name, cfg in modes.items():  # interleaved, so load changes hit all alike
            rngs = [np.random.default_rng([r, i]) for i in range(n)]
            start = time.process_time()
            for i, rng in enumerate(rngs):
                occlude(images[i % 16], rng, library, cfg)
            rates[name].append(n / (time.process_time() - start))
        random.seed(r)
        start = time.process_time()
        for i in range(n):
            from_occlude(pil_images[i % 16].copy(), random.choice(pil_occluders), 3.0)
        rates["FROM's `occluded_image_ratio` step (PIL), factor 3.0"].append(n / (time.process_time() - start))
    return {name: statistics.median(v) for name, v in rates.items()}


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


class Clock:
    """Adds the CPU time (user + system, this process) since the last tick to a stage: on a
    shared machine the CPU time of a stage is what it costs a core, whatever else runs."""

    def __init__(self) -> None:
        self.totals: dict[str, float] = defaultdict(float)
        self.last = time.process_time()

    def tick(self, stage: str) -> None:
        now = time.process_time()
        self.totals[stage] += now - self.last
        self.last = now


def from_way(src: Path, rels: list[str], out: Path, factor: float, seed: int, clock: Clock | None = None) -> Clock:
    """FROM's procedure, PIL throughout: one random occluder per image at a fixed factor (the
    occluders are the bundled ones flattened to RGB, as FROM's are RGB pictures)."""
    random.seed(seed)
    occluders = [Image.fromarray(o.flat) for o in default_library().occluders]
    clock = clock or Clock()
    for rel in rels:
        clock.tick("other")
        image = Image.open(src / rel).convert("RGB")
        clock.tick("decode")
        img, mask, _ = from_occlude(image, random.choice(occluders), factor)
        clock.tick("occlude")
        jpeg = io.BytesIO()
        img.save(jpeg, "JPEG", quality=95)
        clock.tick("encode image")
        png = io.BytesIO()
        Image.fromarray((mask * 255).astype(np.uint8)).save(png, "PNG")
        clock.tick("encode mask")
        for path, data in ((out / "images" / rel, jpeg), ((out / "masks" / rel).with_suffix(".png"), png)):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data.getvalue())
        clock.tick("file creation")
    return clock


def occgen_stages(src: Path, rels: list[str], out: Path, cfg: OcclusionConfig, unit: int = 250) -> Clock:
    """The steps of an occgen LFW build for each image, one process, timed per stage: read and
    decode, occlude, encode the JPEG and the PNG mask, create the three files (clean link, image,
    mask), and the manifest piece of every ``unit`` images."""
    library = default_library()
    occlude(np.zeros((112, 96, 3), np.uint8), np.random.default_rng(0), library, cfg)  # tables, calibration
    clock, rows, blank = Clock(), [], dict.fromkeys(MANIFEST_COLUMNS, "")
    for i, rel in enumerate(rels):
        clock.tick("other")
        data = read_input("lfw", src, rel)
        image = decode_rgb(data)
        clock.tick("decode")
        stem = rel.rsplit(".", 1)[0]
        out_image, mask, info = occlude(image, rng_for(0, stem), library, cfg)
        clock.tick("occlude")
        jpeg = encode(out_image, ".jpg", 95)
        clock.tick("encode image")
        png = encode(mask, ".png")
        clock.tick("encode mask")
        link_or_copy_atomic(os.path.join(src, rel), os.path.join(out, "clean", rel), data)
        write_bytes_atomic(os.path.join(out, "images", stem + ".jpg"), jpeg)
        write_bytes_atomic(os.path.join(out, "masks", stem + ".png"), png)
        clock.tick("file creation")
        rows += [blank | {"path": f"clean/{rel}", "source": rel, "kind": "clean"},
                 blank | {"path": f"images/{stem}.jpg", "mask_path": f"masks/{stem}.png", "source": rel, **info}]
        if (i + 1) % unit == 0 or i + 1 == len(rels):
            write_bytes_atomic(os.path.join(out, ".parts", f"train-{i // unit:06d}.csv"), manifest_csv(rows))
            rows = []
            clock.tick("manifest")
    return clock


def subset_tree(src: Path, rels: list[str], root: Path) -> Path:
    """A folder of symlinks holding just ``rels`` (an identity tree occgen can read)."""
    if root.exists():
        shutil.rmtree(root)
    for rel in rels:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).symlink_to(src / rel)
    return root


def cpu_timed(fn) -> tuple[float, float]:
    """Wall seconds and CPU seconds (this process and the worker processes it waited for)."""
    before, start = os.times(), time.perf_counter()
    fn()
    wall, after = time.perf_counter() - start, os.times()
    return wall, sum(a - b for a, b in zip(after[:4], before[:4]))


def stage_table(sub: Path, rels: list[str], out: Path, repeats: int, build_times: dict[str, float]) -> None:
    """(b): medians over repeats of the CPU µs per image of each stage, three pipelines side by side."""
    runs = iter(range(10**6))
    pipelines = {"FROM way (PIL)": lambda o: from_way(sub, rels, o, 3.0, 0, Clock()),
                 "occgen factor 3.0 rect": lambda o: occgen_stages(sub, rels, o, FACTOR),
                 "occgen ratio 0.52 (curve)": lambda o: occgen_stages(sub, rels, o, RATIO)}
    totals: dict[str, list[dict[str, float]]] = defaultdict(list)
    for _ in range(repeats):
        for name, fn in pipelines.items():  # interleaved
            totals[name].append(dict(fn(out / f"stage{next(runs)}").totals))
    n = len(rels)
    print(f"\n(b) CPU µs per image by stage, {n} images, one process (medians of {repeats})\n")
    print("| stage | " + " | ".join(pipelines) + " |")
    print("|---|" + "---:|" * len(pipelines))
    for stage in (*STAGES, "other"):
        cells = [statistics.median(t.get(stage, 0.0) for t in totals[p]) / n * 1e6 for p in pipelines]
        print(f"| {stage} | " + " | ".join(f"{c:.0f}" for c in cells) + " |")
    sums = [statistics.median(sum(t.values()) for t in totals[p]) / n * 1e6 for p in pipelines]
    print("| **sum of stages** | " + " | ".join(f"**{c:.0f}**" for c in sums) + " |")
    whole = [build_times.get(k) for k in ("FROM way (PIL), 1 process", "occgen factor 3.0 rect, 1 process",
                                           "occgen ratio 0.52 curve, 1 process")]
    print("| whole build (c), CPU µs per image | " + " | ".join(f"{t / n * 1e6:.0f}" if t else "—" for t in whole)
          + " |")


def build_table(sub: Path, rels: list[str], out: Path, repeats: int) -> dict[str, float]:
    """(c): builds per core (one process each) and with 2 workers; returns the median CPU seconds."""
    runs = iter(range(10**6))  # every timed build writes into a fresh folder: no deletion load while timing

    def ours(occlusion, workers):
        config = BuildConfig("lfw", occlusion, unit_size=250)
        return lambda: build(Job(sub, out / f"run{next(runs)}", config, workers=workers), progress=False)

    rows = {"FROM way (PIL), 1 process": lambda: from_way(sub, rels, out / f"run{next(runs)}", 3.0, 0),
            "occgen factor 3.0 rect, 1 process": ours(FACTOR, 0),
            "occgen ratio 0.52 curve, 1 process": ours(RATIO, 0),
            "occgen ratio 0.52 search, 1 process": ours(RATIO_SEARCH, 0),
            "occgen factor 3.0 rect, 2 workers": ours(FACTOR, 2),
            "occgen ratio 0.52 curve, 2 workers": ours(RATIO, 2)}
    for fn in rows.values():  # a first untimed round: library, tables and calibration in this process
        fn()
    times: dict[str, list[tuple[float, float]]] = {k: [] for k in rows}
    for _ in range(repeats):
        for name, fn in rows.items():  # interleaved, so load changes hit all alike
            times[name].append(cpu_timed(fn))
    wall = {name: statistics.median(t[0] for t in ts) for name, ts in times.items()}
    cpu = {name: statistics.median(t[1] for t in ts) for name, ts in times.items()}
    n, base = len(rels), "FROM way (PIL), 1 process"
    print(f"\n(c) builds of {n} aligned LFW images (medians of {repeats}, interleaved); CPU: user + system "
          "seconds of all processes\n")
    print("| build | images/s (wall) | × the FROM way (wall) | images per CPU-second | × the FROM way (CPU) |")
    print("|---|---:|---:|---:|---:|")
    for name in rows:
        print(f"| {name} | {n / wall[name]:.0f} | {wall[base] / wall[name]:.2f}× | {n / cpu[name]:.0f} | "
              f"{cpu[base] / cpu[name]:.2f}× |")
    return cpu


def full_builds(src: Path, pairs: Path | None, out: Path) -> None:
    """(d): the whole aligned LFW with 2 workers, factor and ratio mode (each into a fresh folder)."""
    total = len(list_sources(src)[0])
    print(f"\n(d) full LFW ({total} images), 2 workers\n")
    print("| build | seconds | images/s (wall) | images per CPU-second |")
    print("|---|---:|---:|---:|")
    for name, occlusion in (("factor 3.0 rect", FACTOR), ("ratio 0.52 curve", RATIO), ("ratio 0.52 search", RATIO_SEARCH)):
        config = BuildConfig("lfw", occlusion, pairs=str(pairs) if pairs else None)
        target = out / f"full-{name.replace(' ', '-')}"
        t, cpu = cpu_timed(lambda config=config, target=target: build(Job(src, target, config, workers=2),
                                                                      progress=False))
        print(f"| {name} | {t:.1f} | {total / t:.0f} | {total / cpu:.0f} |")
        shutil.rmtree(target, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--src", required=True, type=Path, help="aligned LFW (align-faces output)")
    parser.add_argument("--out", required=True, type=Path, help="scratch folder for the builds (deleted and rewritten)")
    parser.add_argument("--subset", type=int, default=2000, help="images per build timing")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--occlude-images", type=int, default=3000, help="images per occlude() timing")
    parser.add_argument("--full", action="store_true", help="also time full-LFW builds with 2 workers")
    parser.add_argument("--pairs", type=Path, help="LFW pairs.txt for the full builds")
    args = parser.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; medians of {args.repeats} "
          "interleaved repeats\n")
    print("(a) occlude() alone, 112×96 arrays, one process: images per CPU-second\n")
    print("| mode | images/s |")
    print("|---|---:|")
    for name, rate in bench_occlude(args.repeats, args.occlude_images).items():
        print(f"| {name} | {rate:.0f} |")
    rels = sorted(list_sources(args.src)[0][: args.subset])  # whole identity folders, as in LFW itself
    sub = subset_tree(args.src.resolve(), rels, args.out / "subset")
    medians = build_table(sub, rels, args.out, args.repeats)
    stage_table(sub, rels, args.out, args.repeats, medians)
    if args.full:
        full_builds(args.src, args.pairs, args.out)
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")
    shutil.rmtree(args.out, ignore_errors=True)


if __name__ == "__main__":
    main()
