"""The training input pipeline alone (no model): samples/s per core, before and after, and where
the microseconds of a sample go.

Shards: ``--data`` (an occgen shard dataset), or built here by ``occgen build --source folder
--format shards --clean-ratio 1:0`` from the first ``--images`` crops of ``--src`` (the aligned
LFW) into a temporary folder. Every measurement runs the trainer's own ``build_loader`` with the
transform ``build_transform`` makes, ``--workers 0`` (every stage in the measuring process), in
a fresh subprocess pinned to one core (``os.sched_setaffinity``) with one torch and one OpenCV
thread. "Per core" = samples that one such process delivers per second: ``wall`` per second of
elapsed time, ``cpu`` per second of its own CPU time (the robust figure on a shared machine);
N DataLoader workers on N free cores deliver about N times as many.

"after" delivers uint8 batches: normalisation to [-1, 1] is then done by the training step on
its device (on a GPU, a negligible cost there); its CPU cost is in the profile table.

Modes: ``clean`` (no ``--occlude``), ``occluded`` (every sample occluded, FROM factors
1:0.5:5), ``masked`` (every sample a face mask, ``--mask-fraction 1``), ``mixed`` (the trainer's
``--occlude`` default, clean:occluded 1:2). ``before`` is the code of ``--reference`` (a git
revision, default ``main``) extracted to a temporary folder; its loader has no masks, so there
``occgen.occlude`` is replaced by ``occgen.mask_face`` for the masked mode. Runs alternate
(repeat by repeat, mode by mode, before/after), and medians are reported.

    python bench/input_pipeline.py --src lfw-aligned    # builds 3,000 aligned LFW crops into shards
    python bench/input_pipeline.py --data SHARDS_DIR --samples 2048 --repeats 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# run as a script, bench/ comes first on the path, and bench/occgen.py would shadow the package
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
MODES = ("clean", "occluded", "masked", "mixed")


def build_shards(src: Path, images: int, out: Path) -> Path:
    """Shards of the first ``images`` crops of ``src`` (identity folders, sorted), all clean."""
    link = out / "src"
    count = 0
    for folder in sorted(p for p in src.iterdir() if p.is_dir()):
        for image in sorted(folder.glob("*.jpg")):
            if count == images:
                break
            (link / folder.name).mkdir(parents=True, exist_ok=True)
            (link / folder.name / image.name).symlink_to(image)
            count += 1
    subprocess.run([sys.executable, "-m", "occgen.cli", "build", "--source", "folder", "--data", str(link),
                    "--out", str(out / "shards"), "--format", "shards", "--clean-ratio", "1:0",
                    "--shard-size", "500", "--workers", "1", "--quiet"], check=True, cwd=ROOT,
                   env={**os.environ, "PYTHONPATH": str(ROOT)})
    return out / "shards"


def child(args: argparse.Namespace) -> None:
    """One measurement in this process (pinned): ``--samples`` samples through build_loader."""
    os.sched_setaffinity(0, {args.core})
    import cv2
    import torch

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    from alob_train import data
    from alob_train.config import TrainConfig

    occlude = args.child != "clean"
    ratio = "1:2" if args.child == "mixed" else "0:1"
    new = "mask_fraction" in TrainConfig.__dataclass_fields__
    extra = {"mask_fraction": 1.0} if new and args.child == "masked" else {}
    if args.child == "masked" and not new:
        from occgen import MaskConfig, mask_face
        data.occlude = lambda image, rng, config=None: mask_face(image, rng, MaskConfig(landmarks="model"))
    config = TrainConfig(data=args.data, out="", input_size=(112, 96), batch_size=args.batch_size, workers=0,
                         occlude=occlude, clean_ratio=ratio, **extra)
    info = data.open_data(args.data)
    loader = data.build_loader(info, config, data.build_transform(config), epoch=0, skip_batches=0)
    next(loader)  # warm-up: occluder library, first shard
    wanted = args.samples if args.child != "masked" else max(args.samples // 4, args.batch_size)  # masks are slow
    done, wall, cpu = 0, time.perf_counter(), time.process_time()
    for images, _ in loader:  # before: normalised float batches; after: uint8 (the training step normalises)
        done += len(images)
        if done >= wanted:
            break
    print(json.dumps({"samples": done, "wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu}))


def measure(tree: Path, mode: str, args: argparse.Namespace, env: dict) -> dict:
    cmd = [sys.executable, str(ROOT / "bench" / "input_pipeline.py"), "--child", mode, "--data", str(args.data),
           "--samples", str(args.samples), "--batch-size", str(args.batch_size), "--core", str(args.core)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env={**env, "PYTHONPATH": str(tree)})
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return {"wall": result["samples"] / result["wall"], "cpu": result["samples"] / result["cpu"]}


def reference_tree(revision: str, into: Path) -> Path:
    """The packages as they are at ``revision`` (git archive), in ``into``."""
    into.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", revision, "alob_common", "alignment", "occgen", "alob_train"],
                             cwd=ROOT, check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def throughput_table(args: argparse.Namespace, ref: Path) -> str:
    env = {**os.environ, "OCCGEN_OCCLUDERS": str(ROOT / "assets" / "occluders"), "OMP_NUM_THREADS": "1"}
    runs = {(tree, mode): [] for tree in ("before", "after") for mode in MODES}
    for _ in range(args.repeats):
        for mode in MODES:
            for tree, path in (("before", ref), ("after", ROOT)):
                runs[tree, mode].append(measure(path, mode, args, env))
    rows = ["| samples/s per core | " + " | ".join(MODES) + " |", "|---|" + "---|" * len(MODES)]
    for tree in ("before", "after"):
        for kind in ("cpu", "wall"):
            cells = [statistics.median(r[kind] for r in runs[tree, mode]) for mode in MODES]
            rows.append(f"| {tree} ({kind}) | " + " | ".join(f"{c:,.0f}" for c in cells) + " |")
    cells = [statistics.median(r["cpu"] for r in runs["after", m]) / statistics.median(r["cpu"] for r in runs["before", m])
             for m in MODES]
    rows.append("| after / before (cpu) | " + " | ".join(f"{c:.1f}×" for c in cells) + " |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, help="an occgen shard dataset [default: built from --src]")
    parser.add_argument("--src", type=Path, help="aligned crops (identity folders, e.g. align-faces output); needed without --data")
    parser.add_argument("--images", type=int, default=3000, help="crops to build shards from")
    parser.add_argument("--samples", type=int, default=1024, help="samples per measurement (a quarter for masked)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--reference", default="main", help="git revision measured as 'before'")
    parser.add_argument("--core", type=int, default=0, help="the CPU core the measurements are pinned to")
    parser.add_argument("--no-profile", dest="profile", action="store_false")
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    if args.data is None and args.src is None:
        parser.error("give --data SHARDS_DIR or --src ALIGNED_DIR")
    with tempfile.TemporaryDirectory(prefix="alob-pipe-") as tmp:
        if args.data is None:
            args.data = build_shards(args.src, args.images, Path(tmp))
        ref = reference_tree(args.reference, Path(tmp) / "ref")
        print(f"load average before: {os.getloadavg()[0]:.2f}", file=sys.stderr)
        print(throughput_table(args, ref))
        if args.profile:
            print()
            print(subprocess.run([sys.executable, str(ROOT / "bench" / "input_profile.py"), str(args.data),
                                  "--samples", str(args.samples), "--batch-size", str(args.batch_size),
                                  "--core", str(args.core)], check=True, capture_output=True, text=True,
                                 env={**os.environ, "PYTHONPATH": str(ROOT)}).stdout)
        print(f"load average after: {os.getloadavg()[0]:.2f}", file=sys.stderr)


if __name__ == "__main__":
    main()
