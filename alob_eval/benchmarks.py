"""Benchmarks (named pair lists) and the verification protocol run over them for one model.

A *benchmark* is a name and a pair table (:func:`alob_common.pairs.pair_table`); every image
named by any benchmark is embedded once, then each benchmark is scored with
:func:`alob_common.verification.evaluate_pairs`. Pairs naming images that are not on disk are
dropped and counted (:func:`without_missing_images`) rather than stopping the evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from alob_common.errors import UserError
from alob_common.pairs import missing_images
from alob_common.verification import VerificationError, cosine_scores, evaluate_pairs


class BenchmarkError(UserError):
    """A benchmark that cannot be scored (no pairs left, unusable embeddings); the message says which."""


@dataclass
class Benchmark:
    """A named pair list and the folder its relative image paths belong to."""

    name: str
    pairs: pd.DataFrame
    root: Path
    skipped_pairs: int = 0  # pairs dropped because an image of theirs is missing
    missing_images: int = 0


def without_missing_images(bench: Benchmark) -> tuple[Benchmark, list[str]]:
    """The benchmark without the pairs that name an image missing on disk, and those images."""
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
