"""Benchmarks (named pair lists) and the verification protocol run over them for one model.

A *benchmark* is a name and a pair table (:func:`alob_common.pairs.pair_table`), or an
insightface verification ``.bin`` (:func:`bin_benchmark`: its pairs under synthetic names such
as ``/data/lfw.bin#000123``, and its encoded images); every image named by any benchmark is embedded
once (:func:`embed_images`), then each benchmark is scored with
:func:`alob_common.verification.evaluate_pairs`. Pairs naming images that are not on disk are
dropped and counted (:func:`without_missing_images`) rather than stopping the evaluation.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from alob_common.errors import UserError
from alob_common.pairs import missing_images
from alob_common.verification import (
    Embedder,
    VerificationError,
    cosine_scores,
    evaluate_pairs,
)
from alob_common.verification_bin import bin_image_name, bin_pair_table, read_bin


class BenchmarkError(UserError):
    """A benchmark that cannot be scored (no pairs left, unusable embeddings); the message says which."""


class BenchmarkSpecError(UserError):
    """A ``--bench`` value that names no usable pair list (a usage error)."""


@dataclass
class Benchmark:
    """A named pair list and the folder its relative image paths belong to."""

    name: str
    pairs: pd.DataFrame
    root: Path
    skipped_pairs: int = 0  # pairs dropped because an image of theirs is missing
    missing_images: int = 0
    images: dict[str, bytes] = field(default_factory=dict)  # a .bin's encoded images by synthetic path


def bin_benchmark(name: str, path: str | Path) -> Benchmark:
    """A verification ``.bin`` as a benchmark: pairs of consecutive images, 10 contiguous folds.
    Its images are named by the absolute path of the file (``/data/lfw.bin#000123``), so two
    ``.bin`` of the same name in different folders stay apart; the benchmark folder is the one
    holding the file, so an embeddings file may name them ``lfw.bin#000123``."""
    path = Path(path).absolute()
    encoded, same = read_bin(path)
    images = {bin_image_name(str(path), i): image for i, image in enumerate(encoded)}
    return Benchmark(name, bin_pair_table(str(path), same), path.parent, images=images)


def parse_bench_spec(spec: str) -> Benchmark:
    """The benchmark a ``--bench`` value names: ``NAME=DIR`` (a folder with pairs.csv),
    ``NAME=ALIGNED_DIR@pairs.txt`` or ``NAME=FILE.bin``. A malformed value, or one naming no pair
    list, raises :class:`BenchmarkSpecError` (a usage error); a pair list or ``.bin`` that is
    there but cannot be read another :class:`UserError`."""
    from alob_common.pairs import PairsError, pair_table

    name, sep, where = spec.partition("=")
    if not sep or not name or not where:
        raise BenchmarkSpecError(f"{spec!r}: expected NAME=DIR (with pairs.csv), NAME=ALIGNED_DIR@pairs.txt "
                                 "or NAME=FILE.bin")
    if where.endswith(".bin") and "@" not in where:
        try:
            return bin_benchmark(name, where)
        except UserError as err:
            raise UserError(f"{name}: {err}") from None
    folder, _, pairs_txt = where.partition("@")
    listed = Path(pairs_txt or folder)
    listed = listed / "pairs.csv" if listed.is_dir() else listed
    try:
        table = pair_table(pairs_txt or folder, folder if pairs_txt else None)
    except (PairsError, OSError) as err:  # a pair list that is there but unreadable is bad input, not usage
        raise (UserError if listed.is_file() else BenchmarkSpecError)(f"{name}: {err}") from None
    return Benchmark(name, table, Path(folder))


def without_missing_images(bench: Benchmark) -> tuple[Benchmark, list[str]]:
    """The benchmark without the pairs that name an image missing on disk, and those images."""
    if bench.images:
        return bench, []
    missing = missing_images(bench.pairs)
    if not missing:
        return bench, []
    gone = bench.pairs.path1.isin(missing) | bench.pairs.path2.isin(missing)
    kept = bench.pairs[~gone].reset_index(drop=True)
    return replace(bench, pairs=kept, skipped_pairs=int(gone.sum()), missing_images=len(missing)), missing


def check_finite(vectors: dict[str, np.ndarray]) -> None:
    """Refuse embeddings holding NaN or inf, naming the images (a model or file fault, not a score)."""
    bad = sorted(path for path, vector in vectors.items() if not np.isfinite(vector).all())
    if bad:
        shown = ", ".join(bad[:3]) + (", ..." if len(bad) > 3 else "")
        raise BenchmarkError(f"{len(bad)} images have non-finite (NaN or inf) embeddings: {shown}")


def score_benchmark(bench: Benchmark, vectors: dict[str, np.ndarray]) -> np.ndarray:
    """Cosine similarity of every pair of a benchmark."""
    first = np.stack([vectors[p] for p in bench.pairs.path1])
    second = np.stack([vectors[p] for p in bench.pairs.path2])
    return cosine_scores(first, second)


def evaluate_benchmarks(benchmarks: Sequence[Benchmark], vectors: dict[str, np.ndarray],
                        fars: tuple[float, ...], convention: str) -> tuple[dict, dict]:
    """Figures per benchmark and the (scores, same) arrays behind the ROC plot."""
    check_finite(vectors)
    results, curves = {}, {}
    for bench in benchmarks:
        if bench.pairs.empty:
            raise BenchmarkError(f"{bench.name}: no pair left to score ({bench.skipped_pairs} pairs name "
                                 f"{bench.missing_images} missing images)")
        scores = score_benchmark(bench, vectors)
        same = bench.pairs.same.to_numpy(bool)
        try:
            results[bench.name] = evaluate_pairs(scores, same, bench.pairs.fold.to_numpy(), fars, convention)
        except VerificationError as err:
            raise BenchmarkError(f"{bench.name}: {err}") from None
        results[bench.name].update(skipped_pairs=bench.skipped_pairs, missing_images=bench.missing_images)
        curves[bench.name] = (scores, same)
    return results, curves


def embed_images(embed: Embedder, paths: Sequence[str], images: dict[str, bytes], batch_size: int = 64,
                 flip: bool = False, progress: bool = True) -> dict[str, np.ndarray]:
    """Embed each named image once, by :func:`alob_train.embed.embed_paths`: files on disk as
    they are, the encoded images held in ``images`` (a ``.bin``'s) through files written to a
    temporary folder, so both are decoded by the same reader and give the same numbers."""
    from alob_train.embed import embed_paths

    with tempfile.TemporaryDirectory(prefix="alob-eval-") as folder:
        files = {}
        for index, path in enumerate(dict.fromkeys(paths)):
            files[path] = path
            if path in images:
                files[path] = str(Path(folder) / f"{index:08d}")
                Path(files[path]).write_bytes(images[path])
        vectors = embed_paths(embed, list(files.values()), batch_size, flip, progress=progress)
    return {path: vectors[file] for path, file in files.items()}
