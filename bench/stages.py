"""Every stage's throughput next to its reference, measured one after another in one run: the
benchmarks of ``bench/`` (each a median of repeats with its reference side by side), gathered
into one table for ``docs/BENCHMARKS.md``.

    python bench/stages.py --aligned /work/data/lfw-aligned [--lfw-dir DIR] [--quick]

``--quick`` uses smaller inputs and fewer repeats (a few minutes); the default sizes take about
15 minutes on 2 cores (the evaluation row is one pass over all 7,701 LFW pair images per model,
a time against the issue's target rather than a ratio). Each benchmark's own output goes to the terminal; the table comes last.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def run(script: str, args: list[str], out: Path) -> dict:
    """Run ``bench/<script>`` with ``--json out`` and return what it wrote."""
    subprocess.run([sys.executable, str(HERE / script), *args, "--json", str(out)], check=True)
    return json.loads(out.read_text())


def main() -> None:
    default_lfw = Path(os.environ.get("ALOB_DATA", HERE.parents[1] / "shared" / "data")) / "lfw"
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lfw-dir", type=Path, default=default_lfw, help="folder with lfw-deepfunneled/ and pairs.txt")
    parser.add_argument("--aligned", type=Path, required=True, help="LFW aligned by align-faces (112x96)")
    parser.add_argument("--quick", action="store_true", help="smaller inputs, 2 repeats")
    args = parser.parse_args()
    reps = "2" if args.quick else "3"
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        a = run("align.py", ["--lfw-dir", str(args.lfw_dir / "lfw-deepfunneled"), "--images",
                             "200" if args.quick else "600", "--repeats", reps], tmp / "align.json")
        rows.append(("align (detect + warp + write)", f"{a['images']} LFW images", "images/s", a["ours"],
                     "naive facenet-pytorch MTCNN loop", a["reference"], a["ratio"]))
        o = run("occgen.py", ["--src", str(args.aligned), "--out", str(tmp / "occgen"), "--subset",
                              "500" if args.quick else "2000", "--repeats", reps], tmp / "occgen.json")
        ours = o["images_per_s"]["occgen factor 3.0 rect, 2 workers"]
        ref = o["images_per_s"]["FROM way (PIL), 1 process"]
        rows.append(("occgen LFW-OCC build (factor 3.0)", f"{o['images']} aligned images, 2 workers", "images/s",
                     ours, "FROM-style PIL generator", ref, ours / ref))
        templates = args.lfw_dir.parent / "masktheface" / "masks"
        m = run("masks.py", ["--src", str(args.aligned), "--subset", "200" if args.quick else "500",
                             "--repeats", reps] + (["--templates", str(templates)] if templates.is_dir() else []),
                tmp / "masks.json")
        rows.append(("occgen masks (dlib 68 on the crop)", f"{m['images']} aligned images, 1 process", "images/s",
                     m["ours"], "MaskTheFace-like (dlib detection + 68 points + homography)", m.get("reference"),
                     m.get("ratio")))
        t = run("train.py", ["--backbones", "resnet18", "--variants", "baseline,alob", "--batch-size", "64",
                             "--classes", "2086", "--steps", "2" if args.quick else "3", "--repeats", reps],
                tmp / "train.json")
        rate = {r["variant"]: r["samples_per_s"] for r in t["results"]}
        rows.append(("alob-train step (ResNet18, batch 64)", "in-memory batches, 2,086 classes", "samples/s",
                     rate["alob"], "one-network baseline", rate["baseline"], rate["alob"] / rate["baseline"]))
        e = run("eval.py", ["--aligned", str(args.aligned), "--pairs", str(args.lfw_dir / "pairs.txt"),
                            "--repeats", "1"] + (["--images", "1500"] if args.quick else []),
                tmp / "eval.json")
        for variant in ("baseline", "alob"):
            r = e["results"][variant]
            rows.append((f"alob-eval, LFW pairs (ResNet18 {variant})", f"{r['images']} images, {r['pairs']} pairs",
                         "images/s", r["images"] / r["seconds"], "target: 7,701 images in 60 s", 7701 / 60,
                         r["images"] / r["seconds"] / (7701 / 60)))
    print(f"\nmachine: {os.cpu_count()} cores, {platform.processor() or platform.machine()}; "
          f"{'quick' if args.quick else 'default'} sizes, medians of {reps} repeats\n")
    print("| stage | input | unit | ours | reference | reference value | ours ÷ reference |")
    print("|---|---|---|---|---|---|---|")
    for stage, what, unit, ours, ref_name, ref, ratio in rows:
        ref_text = "—" if ref is None else f"{ref:.1f}"
        ratio_text = "—" if ratio is None else f"{ratio:.2f}×"
        print(f"| {stage} | {what} | {unit} | {ours:.1f} | {ref_name} | {ref_text} | {ratio_text} |")


if __name__ == "__main__":
    main()
