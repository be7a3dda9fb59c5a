"""alob-eval on insightface verification .bin files, and --save-embeddings: the same pairs scored
through a .bin made from a folder and through the folder give the same figures, and saved
embeddings re-score to the same figures."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from alob_common.pairs import pair_table
from alob_common.verification_bin import write_bin, write_pairs_bin
from alob_eval.benchmarks import (
    Benchmark,
    bin_benchmark,
    embed_images,
    evaluate_benchmarks,
)
from alob_eval.cli import main

PAIRS = 40  # 10 contiguous folds of 4


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """An aligned-looking folder of 8 people x 5 crops with a pairs.csv of 40 pairs, half same."""
    root = tmp_path_factory.mktemp("aligned")
    rng = np.random.default_rng(0)
    for person in range(8):
        base = rng.integers(0, 255, (14, 12, 3)).astype(np.float32)
        (root / f"P{person}").mkdir()
        for k in range(5):
            noisy = np.clip(base + rng.normal(0, 40, base.shape), 0, 255).astype(np.uint8)
            cv2.imwrite(str(root / f"P{person}" / f"{k}.jpg"), cv2.resize(noisy, (96, 112)))
    rows = []
    for n in range(PAIRS):
        a, b = n % 8, (n % 8 if n % 2 == 0 else (n + 3) % 8)
        rows.append({"path1": f"P{a}/{n % 5}.jpg", "path2": f"P{b}/{(n + 1) % 5}.jpg", "same": int(a == b),
                     "fold": n // 4})
    pd.DataFrame(rows).to_csv(root / "pairs.csv", index=False)
    return root


def tiny_embedder(images: list[np.ndarray]) -> np.ndarray:
    """A deterministic embedder: the crop shrunk to 6x5 colours, minus its mean."""
    vectors = np.stack([cv2.resize(image, (5, 6), interpolation=cv2.INTER_AREA).astype(float).ravel()
                        for image in images])
    return vectors - vectors.mean(axis=1, keepdims=True)


def test_a_bin_made_from_a_folder_scores_as_the_folder(folder, tmp_path):
    table = pair_table(folder)
    assert write_pairs_bin(tmp_path / "set.bin", table)  # the folds are 10 contiguous ones
    benches = [Benchmark("folder", table, folder), bin_benchmark("bin", tmp_path / "set.bin")]
    paths = [p for b in benches for p in (*b.pairs.path1, *b.pairs.path2)]
    images = benches[1].images
    assert len(images) == 2 * PAIRS and next(iter(images)).endswith("set.bin#000000")
    vectors = embed_images(tiny_embedder, paths, images, batch_size=7, flip=True, progress=False)
    results, _ = evaluate_benchmarks(benches, vectors, (1e-2,), "roc")
    assert results["folder"]["accuracy"] > 0.6
    assert json.dumps(results["folder"], sort_keys=True) == json.dumps(results["bin"], sort_keys=True)


def _figures(report: Path) -> dict:
    return json.loads((report / "results.json").read_text())["results"]


def test_cli_bin_equals_folder_and_saved_embeddings_rescore_identically(folder, tmp_path):
    from alob_train.checkpoint import save_untrained

    write_pairs_bin(tmp_path / "set.bin", pair_table(folder))
    run = save_untrained(tmp_path / "run", "resnet18", "baseline")
    benches = ["--bench", f"folder={folder}", "--bench", f"bin={tmp_path / 'set.bin'}"]
    saved = tmp_path / "e.npz"
    # one image per batch: a network's float sums depend on what else is in the batch
    result = CliRunner().invoke(main, ["--checkpoint", str(run), *benches, "--out", str(tmp_path / "model"),
                                       "--save-embeddings", str(saved), "--batch-size", "1", "--quiet"])
    assert result.exit_code == 0, result.output
    assert f"embeddings: {saved} ({40 + 2 * PAIRS} images)" in result.output
    model = _figures(tmp_path / "model")
    assert model["folder"] == model["bin"]
    result = CliRunner().invoke(main, ["--embeddings", str(saved), *benches, "--out", str(tmp_path / "again"),
                                       "--quiet"])
    assert result.exit_code == 0, result.output
    assert _figures(tmp_path / "again") == model


def test_bin_names_relative_to_its_folder_in_an_embeddings_file(tmp_path):
    from alob_eval.embeddings import save_embeddings

    rng = np.random.default_rng(5)
    write_bin(tmp_path / "lfw.bin", [b"unused"] * 40, [k % 2 == 0 for k in range(20)])
    names = [f"lfw.bin#{i:06d}" for i in range(40)]
    save_embeddings(tmp_path / "e.npz", names, rng.normal(size=(40, 8)))
    result = CliRunner().invoke(main, ["--embeddings", str(tmp_path / "e.npz"), "--bench",
                                       f"lfw={tmp_path / 'lfw.bin'}", "--out", str(tmp_path / "r"), "--quiet"])
    assert result.exit_code == 0, result.output
    assert _figures(tmp_path / "r")["lfw"]["pairs"] == 20 and _figures(tmp_path / "r")["lfw"]["folds"] == 10


@pytest.mark.parametrize("make, message", [
    (lambda p: None, "cannot read verification set"),
    (lambda p: p.write_bytes(b"junk"), "not a readable verification pickle"),
])
def test_bad_bin_is_one_line(tmp_path, make, message):
    from alob_eval.embeddings import save_embeddings

    make(tmp_path / "x.bin")
    save_embeddings(tmp_path / "e.npz", ["a"], np.ones((1, 2)))
    result = CliRunner().invoke(main, ["--embeddings", str(tmp_path / "e.npz"), "--bench",
                                       f"x={tmp_path / 'x.bin'}", "--out", str(tmp_path / "r")])
    assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
