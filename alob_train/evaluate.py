"""Run the verification protocol for one model over several benchmarks.

A *benchmark* is a name and a pair list (:func:`alob_train.pairs.read_pairs`); a *model* is any
function from a list of RGB uint8 images to an (N, D) array. Every image named by any benchmark
is embedded once, then each benchmark is scored with :func:`evaluate_pairs`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np
import pandas as pd

from alob_train.verification import cosine_scores, evaluate_pairs

Embedder = Callable[[Sequence[np.ndarray]], np.ndarray]


@dataclass
class Benchmark:
    """A named pair list and the folder its relative image paths belong to."""

    name: str
    pairs: pd.DataFrame
    root: Path


def read_rgb(path: str) -> np.ndarray:
    """Decode an image file to RGB uint8, or raise ``OSError`` naming it."""
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise OSError(f"cannot read image {path}")
    return np.ascontiguousarray(image[:, :, ::-1])


def embed_paths(embed: Embedder, paths: Sequence[str], batch_size: int = 64, flip: bool = False,
                progress: bool = True) -> dict[str, np.ndarray]:
    """Embed each image once; with ``flip`` the embedding is the sum over the image and its
    mirror (flip-test fusion)."""
    from tqdm import tqdm

    out: dict[str, np.ndarray] = {}
    with tqdm(total=len(paths), unit="img", desc="embedding", disable=not progress) as bar:
        for start in range(0, len(paths), batch_size):
            chunk = list(paths[start : start + batch_size])
            images = [read_rgb(p) for p in chunk]
            vectors = np.asarray(embed(images), dtype=np.float64)
            if flip:
                vectors = vectors + np.asarray(embed([np.ascontiguousarray(i[:, ::-1]) for i in images]), dtype=np.float64)
            out.update(zip(chunk, vectors))
            bar.update(len(chunk))
    return out


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
