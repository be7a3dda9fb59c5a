"""Benchmark: align-faces with decode threads and batches across sizes, before/after, side by side.

Two folders of 600 LFW images: the originals (all 250×250: equal-size batches) and the mixed-size
copies of ``bench/align_sizes.py`` (random non-square crops rescaled by 0.6–1.8: nearly every
file its own size). Every configuration runs on both with each worker count, in interleaved
repeats, each into a fresh OUT; the rate is the command's own (``dataset.json``, model loading
excluded). "before" is the code of another checkout (``--baseline-root``, e.g. the main branch)
run with its defaults. Usage:

    python bench/align_threads.py [--baseline-root DIR] [--images 600] [--repeats 3] [--workers 1,2]
        [--device cpu] [--configs "threads=--decode-threads 2;across=--batch-across-sizes"] [--in-process]

``bench/align_gpu.sh`` runs it on a GPU.

Prints a markdown table of median images/s and the load average before and after.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from align_sizes import PROJECT, default_lfw, make_mixed, picked  # noqa: E402

DEFAULT_CONFIGS = ("threads=--decode-threads 2;across sizes=--batch-across-sizes;"
                   "threads + across=--decode-threads 2 --batch-across-sizes")


def equal_folder(lfw: Path, n: int, where: Path) -> Path:
    """The picked LFW originals as a tree of symlinks."""
    for f in picked(lfw, n):
        link = where / f.relative_to(lfw)
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(f, link)
    return where


def run_once(root: Path | None, src: Path, out: Path, workers: int, device: str, extra: list[str]) -> float:
    """One align-faces run of ``root``'s code (None: this checkout, in this process, so that torch
    and the GPU are set up once) into a fresh ``out``; its own images/s."""
    args = [str(src), str(out), "--workers", str(workers), "--quiet", "--overwrite", "--device", device, *extra]
    if root is None:
        from alignment.cli import main

        with contextlib.redirect_stdout(io.StringIO()):  # the command's summary line
            main(args, standalone_mode=False)
    else:
        subprocess.run([sys.executable, "-c", "from alignment.cli import main; main()", *args], check=True,
                       stdout=subprocess.DEVNULL, cwd=root, env={**os.environ, "PYTHONPATH": str(root)})
    rate = json.loads((out / "dataset.json").read_text())["images_per_second"]
    subprocess.run(["rm", "-rf", str(out)], check=True)
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lfw-dir", type=Path, default=default_lfw())
    parser.add_argument("--baseline-root", type=Path, help="checkout whose align-faces is 'before'")
    parser.add_argument("--images", type=int, default=600)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--configs", default=DEFAULT_CONFIGS, help="name=flags;name=flags …")
    parser.add_argument("--in-process", action="store_true",
                        help="run this checkout's align-faces in this process (after a warm-up run)")
    args = parser.parse_args()
    if not args.lfw_dir.is_dir():
        sys.exit(f"LFW not found at {args.lfw_dir}: pass --lfw-dir or set ALOB_DATA")
    if args.in_process and args.baseline_root:
        sys.exit("--baseline-root runs as a separate process: leave out --in-process")
    mine = None if args.in_process else PROJECT
    configs = [(name, mine, shlex.split(flags)) for name, flags in
               (c.split("=", 1) for c in args.configs.split(";"))]
    if args.baseline_root:
        configs.insert(0, ("before", args.baseline_root.resolve(), []))
    workers = [int(w) for w in args.workers.split(",")]
    load_start = os.getloadavg()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        folders = {"equal (250×250)": equal_folder(args.lfw_dir, args.images, Path(tmp) / "equal")}
        make_mixed(args.lfw_dir, args.images, Path(tmp) / "mixed")
        folders["mixed sizes"] = Path(tmp) / "mixed"
        rates: dict[tuple, list[float]] = {}
        if args.in_process:  # warm-up: imports, CUDA context, kernels
            run_once(None, folders["mixed sizes"], Path(tmp) / "out", 0, args.device, configs[0][2])
        for rep in range(args.repeats):
            for folder, src in folders.items():
                for w in workers:
                    for name, root, extra in configs:
                        rate = run_once(root, src, Path(tmp) / "out", w, args.device, extra)
                        rates.setdefault((folder, w, name), []).append(rate)
                        print(f"run {rep + 1}: {folder}, workers {w}, {name}: {rate:.1f} images/s, "
                              f"load average {os.getloadavg()[0]:.1f}", file=sys.stderr, flush=True)
            print(f"repeat {rep + 1} done, load average {os.getloadavg()[0]:.1f}", file=sys.stderr, flush=True)
    print(f"{args.images} LFW images per folder, {os.cpu_count()} cores, device {args.device}, medians of "
          f"{args.repeats} interleaved repeats, {time.perf_counter() - start:.0f} s; load average "
          f"{load_start[0]:.1f} before, {os.getloadavg()[0]:.1f} after (1-min), {os.getloadavg()[2]:.1f} (15-min)")
    names = [name for name, _, _ in configs]
    print("| folder | workers | " + " | ".join(names) + " |\n|---|---|" + "---|" * len(names))
    for folder in folders:
        for w in workers:
            cells = [f"{statistics.median(rates[(folder, w, n)]):.1f}" for n in names]
            print(f"| {folder} | {w} | " + " | ".join(cells) + " |")
    print("\nall runs (images/s): " + json.dumps({f"{k[0]}, w{k[1]}, {k[2]}": v for k, v in rates.items()}))


if __name__ == "__main__":
    main()
