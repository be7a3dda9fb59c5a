"""Benchmark: ``alob-eval``'s path (checkpoint load, embedding of every image, verification
metrics) over LFW's 6,000 pairs on CPU, for a ResNet18 ``baseline`` and a ResNet18 ``alob``
checkpoint (randomly initialised: the weights do not change the cost), with each ``--backends``
entry (torch, onnx) side by side: repeats interleaved (every backend once per repeat), medians.

The timed code is what ``alob-eval --checkpoint RUN --backend B --bench lfw=DIR@pairs.txt`` runs
after parsing its arguments (:func:`alob_eval.model_choice.vectors_for`, then
:func:`alob_eval.benchmarks.evaluate_benchmarks`). The onnx backend's one-time export is made
(and timed) before the repeats, into a temporary cache, so the repeats time a run that finds the
graph cached. Agreement with the torch backend: the smallest per-image cosine over all embedded
images, and whether the accuracy and TAR figures are identical. ``--images N`` embeds only the
first N unique images and scores the pairs on random vectors for the rest (the metrics cost the
same). Wall seconds and the process's CPU seconds are both reported: on a shared machine the wall
time depends on the other jobs, the CPU time much less.
Usage:

    python bench/eval.py --aligned DIR [--pairs pairs.txt] [--backends torch,onnx] [--images N] [--repeats 3]
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
from alob_eval.model_choice import checkpoint_embedder, vectors_for
from alob_eval.onnx_backend import min_cosine
from alob_train.checkpoint import save_untrained


def once(run: Path, bench: Benchmark, paths: list[str], batch_size: int, backend: str) -> dict:
    """One pass of alob-eval's path: embedding, metrics and CPU seconds, the embeddings of
    ``paths``, the figures and the backend used."""
    cpu = time.process_time()
    start = time.perf_counter()
    model_args = {"checkpoint": str(run), "which": "last", "backend": backend}
    vectors, _, used = vectors_for([(bench.root, paths)], model_args, False, batch_size, quiet=True)
    middle = time.perf_counter()
    embedded = dict(vectors)
    everything = list(dict.fromkeys([*bench.pairs.path1, *bench.pairs.path2]))
    rng = np.random.default_rng(0)
    dim = len(next(iter(vectors.values())))
    for p in everything:
        if p not in vectors:
            vectors[p] = rng.normal(size=dim)
    results, _ = evaluate_benchmarks([bench], vectors, (1e-3, 1e-4), "roc")
    return {"embed": middle - start, "metrics": time.perf_counter() - middle, "cpu": time.process_time() - cpu,
            "vectors": embedded, "figures": figures(results[bench.name]), "backend": used}


def figures(result: dict) -> dict:
    """The reported numbers of a benchmark's result: accuracy, its std, fold accuracies, TARs."""
    return {"accuracy": result["accuracy"], "accuracy_std": result["accuracy_std"],
            "fold_accuracies": result["fold_accuracies"],
            "tar": {far: t["tar"] for far, t in result["tar_at_far"].items()}}


def bench_variant(variant: str, tmp: Path, bench: Benchmark, paths: list[str], args) -> list[dict]:
    """Rows (one per backend) of medians and agreement with torch for one model."""
    run = save_untrained(tmp / variant, "resnet18", variant, (112, 96))
    backends = args.backends.split(",")
    if "onnx" in backends:
        start = time.perf_counter()
        checkpoint_embedder(str(run), "last", "onnx", len(paths))
        print(f"{variant}: onnx export (first run of a checkpoint only) {time.perf_counter() - start:.1f} s", flush=True)
    passes: dict[str, list[dict]] = {b: [] for b in backends}
    for _ in range(args.repeats):
        for backend in backends:
            passes[backend].append(once(run, bench, paths, args.batch_size, backend))
            last = passes[backend][-1]
            agreement = ""
            if backend != "torch" and passes.get("torch"):
                torch_pass = passes["torch"][-1]
                cosine = min_cosine(np.stack([last["vectors"][p] for p in paths]),
                                    np.stack([torch_pass["vectors"][p] for p in paths]))
                agreement = f", min cosine vs torch {cosine:.7f}, figures equal: {last['figures'] == torch_pass['figures']}"
            print(f"{variant} {backend}: {last['embed'] + last['metrics']:.1f} s wall, {last['cpu']:.1f} s CPU "
                  f"({last['backend']}){agreement}", flush=True)
    rows = []
    reference = passes["torch"][-1] if "torch" in passes else None
    for backend, runs in passes.items():
        embed = statistics.median(r["embed"] for r in runs)
        row = {"model": f"ResNet18 {variant}", "backend": backend, "used": runs[-1]["backend"], "images": len(paths),
               "embedding_s": embed, "metrics_s": statistics.median(r["metrics"] for r in runs),
               "seconds": statistics.median(r["embed"] + r["metrics"] for r in runs),
               "cpu_s": statistics.median(r["cpu"] for r in runs), "images_per_s": len(paths) / embed,
               "min_cosine": None, "figures_equal": None, "accuracy": runs[-1]["figures"]["accuracy"]}
        if reference is not None:
            row["min_cosine"] = min_cosine(np.stack([runs[-1]["vectors"][p] for p in paths]),
                                           np.stack([reference["vectors"][p] for p in paths]))
            row["figures_equal"] = all(r["figures"] == reference["figures"] for r in runs)
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default_pairs = Path(os.environ.get("ALOB_DATA", PROJECT.parent / "shared" / "data")) / "lfw" / "pairs.txt"
    parser.add_argument("--aligned", "--lfw-dir", dest="lfw_dir", required=True, help="LFW aligned by align-faces")
    parser.add_argument("--pairs", default=str(default_pairs))
    parser.add_argument("--images", type=int, default=None, help="embed only the first N unique images")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--variants", default="baseline,alob")
    parser.add_argument("--backends", "--backend", dest="backends", default="torch,onnx",
                        help="comma-separated alob-eval --backend values; torch is the reference")
    parser.add_argument("--json", type=Path, help="also write the medians to this file")
    args = parser.parse_args()

    table = pair_table(args.pairs, args.lfw_dir)
    bench = Benchmark("lfw", table, Path(args.lfw_dir))
    paths = list(dict.fromkeys([*table.path1, *table.path2]))[: args.images]
    print(f"{len(paths)} images, {len(table)} pairs, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{os.cpu_count()} CPUs, batch {args.batch_size}; load average at the start: "
          f"{', '.join(f'{v:.1f}' for v in os.getloadavg())}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["ALOB_CACHE"] = str(Path(tmp) / "cache")  # the export is timed, not taken from a cache
        rows = [row for variant in args.variants.split(",") for row in bench_variant(variant, Path(tmp), bench, paths, args)]
    print(f"\nload average at the end: {', '.join(f'{v:.1f}' for v in os.getloadavg())}")
    print(f"\n| model | backend | seconds for {len(table):,} pairs (median) | embedding (s) | CPU (s) | images/s | "
          "min cosine vs torch | accuracy equal | < 60 s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        cosine = "n/a" if r["min_cosine"] is None else f"{r['min_cosine']:.7f}"
        equal = "n/a" if r["figures_equal"] is None else ("yes" if r["figures_equal"] else "no")
        print(f"| {r['model']} | {r['used']} | {r['seconds']:.1f} | {r['embedding_s']:.1f} | {r['cpu_s']:.1f} | "
              f"{r['images_per_s']:.0f} | {cosine} | {equal} | {'yes' if r['seconds'] < 60 else 'no'} |")
    if args.json:
        args.json.write_text(json.dumps({"pairs": len(table), "images": len(paths), "results": rows}, indent=2))


if __name__ == "__main__":
    main()
