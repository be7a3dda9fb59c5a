"""Benchmark: ``alob-eval``'s path (checkpoint load, embedding of every image, verification
metrics) over LFW's 6,000 pairs on CPU, for a ResNet18 ``baseline`` and a ResNet18 ``alob``
checkpoint (randomly initialised: the weights do not change the cost). Medians of ``--repeats``.

The timed code is what ``alob-eval --checkpoint RUN --bench lfw=DIR@pairs.txt`` runs after
parsing its arguments (:func:`alob_eval.cli._vectors_for`, then
:func:`alob_train.embed.evaluate_benchmarks`). ``--images N`` embeds only the first N unique
images and scores the pairs on random vectors for the rest (the metrics cost the same).
Wall seconds and the process's CPU seconds are both reported: on a shared machine the wall time
depends on the other jobs, the CPU time much less.
Usage:

    python bench/eval.py --aligned DIR [--pairs pairs.txt] [--images N] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

from alob_common.pairs import pair_table
from alob_eval.benchmarks import Benchmark, evaluate_benchmarks
from alob_eval.cli import _vectors_for
from alob_train.checkpoint import save_untrained


def once(run: Path, bench: Benchmark, paths: list[str], batch_size: int) -> tuple[float, float, float]:
    """(embedding seconds, metrics seconds, CPU seconds of the process) of one pass of
    alob-eval's path."""
    cpu = time.process_time()
    start = time.perf_counter()
    vectors, _ = _vectors_for([(bench.root, paths)], {"checkpoint": str(run), "which": "last"}, False,
                              batch_size, quiet=True)
    middle = time.perf_counter()
    everything = list(dict.fromkeys([*bench.pairs.path1, *bench.pairs.path2]))
    rng = np.random.default_rng(0)
    dim = len(next(iter(vectors.values())))
    for p in everything:
        if p not in vectors:
            vectors[p] = rng.normal(size=dim)
    evaluate_benchmarks([bench], vectors, (1e-3, 1e-4), "roc")
    return middle - start, time.perf_counter() - middle, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default_pairs = Path(os.environ.get("ALOB_DATA", PROJECT.parent / "shared" / "data")) / "lfw" / "pairs.txt"
    parser.add_argument("--aligned", "--lfw-dir", dest="lfw_dir", required=True, help="LFW aligned by align-faces")
    parser.add_argument("--pairs", default=str(default_pairs))
    parser.add_argument("--images", type=int, default=None, help="embed only the first N unique images")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--variants", default="baseline,alob")
    parser.add_argument("--json", type=Path, help="also write the medians to this file")
    args = parser.parse_args()

    table = pair_table(args.pairs, args.lfw_dir)
    bench = Benchmark("lfw", table, Path(args.lfw_dir))
    paths = list(dict.fromkeys([*table.path1, *table.path2]))[: args.images]
    print(f"{len(paths)} images, {len(table)} pairs, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{os.cpu_count()} CPUs, batch {args.batch_size}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for variant in args.variants.split(","):
            run = save_untrained(Path(tmp) / variant, "resnet18", variant, (112, 96))
            times = [once(run, bench, paths, args.batch_size) for _ in range(args.repeats)]
            embed = statistics.median(t[0] for t in times)
            metrics = statistics.median(t[1] for t in times)
            total = statistics.median(t[0] + t[1] for t in times)
            cpu = statistics.median(t[2] for t in times)
            rows.append((variant, embed, metrics, total, cpu, len(paths) / embed))
            print(f"{variant}: " + ", ".join(f"{a + b:.1f} s wall, {c:.1f} s CPU" for a, b, c in times), flush=True)
    print(f"\nload average at the end: {', '.join(f'{v:.1f}' for v in os.getloadavg())}")
    print("\n| model | images | embedding (s) | metrics (s) | total (s) | CPU (s) | images/s | total < 60 s |")
    print("|---|---|---|---|---|---|---|---|")
    for variant, embed, metrics, total, cpu, rate in rows:
        print(f"| ResNet18 {variant} | {len(paths)} | {embed:.1f} | {metrics:.1f} | {total:.1f} | {cpu:.1f} | {rate:.0f} | "
              f"{'yes' if total < 60 else 'no'} |")
    if args.json:
        args.json.write_text(json.dumps({"pairs": len(table), "images": len(paths), "results": {
            variant: {"pairs": len(table), "images": len(paths), "seconds": total, "embedding_s": embed,
                      "metrics_s": metrics, "cpu_s": cpu} for variant, embed, metrics, total, cpu, _ in rows}}, indent=2))


if __name__ == "__main__":
    main()
