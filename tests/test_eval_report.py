"""Report files and the embeddings file format."""

from __future__ import annotations

import json

import numpy as np
import pytest

from alob_common.verification import evaluate_pairs
from alob_eval.embeddings import embeddings_for, load_embeddings, save_embeddings
from alob_eval.report import write_eval_report


def test_report_files(tmp_path):
    rng = np.random.default_rng(0)
    same = np.tile(np.r_[np.ones(300, bool), np.zeros(300, bool)], 10)
    curves, results = {}, {}
    for name, gap in (("lfw", 0.6), ("lfw-occ-3.0", 0.3)):
        scores = np.where(same, rng.normal(gap, 0.15, 6000), rng.normal(0.0, 0.15, 6000))
        curves[name] = (scores, same)
        results[name] = evaluate_pairs(scores, same)
    write_eval_report(tmp_path, results, curves, {"model": "synthetic"}, (1e-3, 1e-4))
    table = (tmp_path / "results.md").read_text()
    assert "| lfw | 6000 |" in table and "| lfw-occ-3.0 | 6000 |" in table
    assert "allows 3 false accepts" in table and "sklearn roc_curve" in table
    stored = json.loads((tmp_path / "results.json").read_text())
    assert stored["results"]["lfw"]["accuracy"] == pytest.approx(results["lfw"]["accuracy"])
    assert stored["results"]["lfw"]["accuracy"] > stored["results"]["lfw-occ-3.0"]["accuracy"]
    assert (tmp_path / "roc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_embeddings_roundtrip_and_lookup(tmp_path):
    vectors = np.arange(12, dtype=np.float32).reshape(3, 4)
    save_embeddings(tmp_path / "e.npz", ["a/1.jpg", "/abs/b.jpg", "c/2.jpg"], vectors)
    table = load_embeddings(tmp_path / "e.npz")
    got = embeddings_for(table, [str(tmp_path / "bench" / "a" / "1.jpg"), "/abs/b.jpg"], tmp_path / "bench")
    np.testing.assert_array_equal(got, vectors[:2])
    with pytest.raises(KeyError, match="1 images have no embedding"):
        embeddings_for(table, [str(tmp_path / "x.jpg")], tmp_path / "bench")
