"""Benchmarks (named pair lists) and the verification protocol run over them for one model.

A *benchmark* is a name and a pair table (:func:`alob_common.pairs.pair_table`); every image
named by any benchmark is embedded once, then each benchmark is scored with
:func:`alob_common.verification.evaluate_pairs`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from alob_common.verification import cosine_scores, evaluate_pairs


@dataclass
class Benchmark:
    """A named pair list and the folder its relative image paths belong to."""

    name: str
    pairs: pd.DataFrame
    root: Path


def score_benchmark(bench: Benchmark, vectors: dict[str, np.ndarray]) -> np.ndarray:
    """Cosine similarity of every pair of a benchmark."""
    first = np.stack([vectors[p] for p in bench.pairs.path1])
    second = np.stack([vectors[p] for p in bench.pairs.path2])
    return cosine_scores(first, second)


def evaluate_benchmarks(benchmarks: Sequence[Benchmark], vectors: dict[str, np.ndarray],
                        fars: tuple[float, ...], convention: str) -> tuple[dict, dict]:
    """Figures per benchmark and the (scores, same) arrays behind the ROC plot."""
    results, curves = {}, {}
    for bench in benchmarks:
        scores = score_benchmark(bench, vectors)
        same = bench.pairs.same.to_numpy(bool)
        results[bench.name] = evaluate_pairs(scores, same, bench.pairs.fold.to_numpy(), fars, convention)
        curves[bench.name] = (scores, same)
    return results, curves
