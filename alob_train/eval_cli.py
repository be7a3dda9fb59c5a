"""``alob-eval``: pair verification of a model on several benchmarks, with a report."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click
import numpy as np

from alob_train.verification import TAR_CONVENTIONS


def _parse_bench(spec: str):
    from alob_train.evaluate import Benchmark
    from alob_train.pairs import PairsError, read_pairs

    name, sep, where = spec.partition("=")
    if not sep or not name or not where:
        raise click.BadParameter(f"{spec!r}: expected NAME=DIR (with pairs.csv) or NAME=ALIGNED_DIR@pairs.txt")
    folder, _, pairs_txt = where.partition("@")
    try:
        table = read_pairs(pairs_txt or folder, folder if pairs_txt else None)
    except (PairsError, OSError) as err:
        raise click.BadParameter(f"{name}: {err}") from None
    return Benchmark(name, table, Path(folder))


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--bench", "benches", multiple=True, required=True, metavar="NAME=DIR[@pairs.txt]",
              help="A benchmark: a folder dataset with pairs.csv (from occgen), or an aligned folder and a "
                   "standard pairs.txt (LFW: .jpg; MFR2: .png, detected). Repeat for several scenarios.")
@click.option("--reference", type=click.Choice(["facenet", "dlib"]), default=None,
              help="Measure a published reference model (optional [reference] extra) instead of a checkpoint.")
@click.option("--embeddings", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Measure precomputed embeddings: an .npz with 'paths' and 'embeddings' (one vector per image; "
                   "paths absolute or relative to the benchmark folder).")
@click.option("--far", "fars", type=float, multiple=True, default=(1e-3, 1e-4), show_default=True,
              help="False accept rates at which TAR is reported.")
@click.option("--tar-convention", type=click.Choice(TAR_CONVENTIONS), default="roc", show_default=True,
              help="roc: one ROC over all pairs (sklearn); order: FROM's order statistic; fold: insightface's "
                   "per-fold interpolation.")
@click.option("--flip", is_flag=True, help="Flip-test fusion: embedding = f(image) + f(mirrored image).")
@click.option("--batch-size", type=click.IntRange(1, None), default=64, show_default=True)
@click.option("--out", type=click.Path(file_okay=False), default="report", show_default=True,
              help="Folder for results.json, results.md and roc.png.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def main(benches, reference, embeddings, fars, tar_convention, flip, batch_size, out, quiet) -> None:
    """Verify face pairs with cosine similarity: 10-fold accuracy ± std and TAR@FAR per benchmark.

    Example (a reference model on LFW and LFW-OCC-3.0):

      alob-eval --reference facenet --bench lfw=lfw-aligned@pairs.txt --bench lfw-occ-3.0=lfw-occ-3.0/
    """
    from alob_train.embeddings import embeddings_for, load_embeddings
    from alob_train.evaluate import embed_paths, evaluate_benchmarks
    from alob_train.pairs import missing_images
    from alob_train.reference_models import ModelUnavailable, reference_embedder
    from alob_train.report import write_report

    if (reference is None) == (embeddings is None):
        raise click.UsageError("give exactly one model: --reference NAME or --embeddings FILE")
    benchmarks = [_parse_bench(spec) for spec in benches]
    start = time.perf_counter()
    if embeddings:
        table = load_embeddings(embeddings)
        vectors = {}
        try:
            for bench in benchmarks:
                paths = list(dict.fromkeys([*bench.pairs.path1, *bench.pairs.path2]))
                vectors.update(zip(paths, embeddings_for(table, paths, bench.root)))
        except KeyError as err:
            raise click.ClickException(str(err.args[0])) from None
        model = f"embeddings {embeddings}"
    else:
        for bench in benchmarks:
            missing = missing_images(bench.pairs)
            if missing:
                raise click.ClickException(f"{bench.name}: {len(missing)} images named by its pairs are missing, e.g. {missing[0]}")
        try:
            embed = reference_embedder(reference)
        except ModelUnavailable as err:
            raise click.ClickException(str(err)) from None
        paths = list(dict.fromkeys(p for b in benchmarks for p in [*b.pairs.path1, *b.pairs.path2]))
        vectors = embed_paths(embed, paths, batch_size, flip, progress=not quiet)
        model = f"reference {reference}"
    results, curves = evaluate_benchmarks(benchmarks, vectors, tuple(fars), tar_convention)
    meta = {"model": model, "flip": flip, "command": sys.argv, "seconds": round(time.perf_counter() - start, 1),
            "benchmarks": {b.name: str(b.root) for b in benchmarks}}
    write_report(out, results, curves, meta, tuple(fars))
    click.echo((Path(out) / "results.md").read_text())
    click.echo(f"report: {Path(out) / 'results.md'} ({meta['seconds']} s)")


if __name__ == "__main__":
    main()
