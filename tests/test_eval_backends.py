"""alob-eval --backend: ONNX Runtime gives the torch backend's embeddings (cosine >= 0.9999 per
image) and identical verification figures for an ALOB ResNet18 checkpoint; the exported graph
is cached by the checkpoint's hash; a missing onnxruntime is a one-line error naming the pip
command (auto falls back to torch)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from alob_eval import onnx_backend
from alob_eval.cli import main

ONNX_PACKAGES = ("onnx", "onnxruntime", "onnxscript")  # the [onnx] extra


def _face_set(root: Path, people: int = 6) -> Path:
    """Generated 112x96 'people': two noisy copies of one random picture each, and a pairs.csv with
    a matched and a mismatched pair per person in two folds."""
    import cv2

    rng, rows = np.random.default_rng(7), []
    for i in range(people):
        base = rng.integers(0, 256, (112, 96, 3)).astype(np.int16)
        (root / f"P{i}").mkdir(parents=True)
        for k in (1, 2):
            noisy = np.clip(base + rng.integers(-20, 21, base.shape), 0, 255).astype(np.uint8)
            cv2.imwrite(str(root / f"P{i}" / f"{k}.png"), noisy)
        rows += [f"P{i}/1.png,P{i}/2.png,1,{i % 2}", f"P{i}/1.png,P{(i + 1) % people}/2.png,0,{i % 2}"]
    (root / "pairs.csv").write_text("path1,path2,same,fold\n" + "\n".join(rows) + "\n")
    return root


def _evaluate(run: Path, data: Path, out: Path, backend: str) -> tuple[dict, dict[str, np.ndarray], str]:
    """results.json's figures, the saved embeddings by path and the output of one alob-eval run."""
    result = CliRunner().invoke(main, ["--checkpoint", str(run), "--bench", f"b={data}", "--backend", backend,
                                       "--save-embeddings", str(out / "e.npz"), "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    with np.load(out / "e.npz") as saved:
        vectors = dict(zip(saved["paths"].tolist(), saved["embeddings"]))
    return json.loads((out / "results.json").read_text()), vectors, result.output


def _same_figures(a: dict, b: dict, key: str = "") -> bool:
    """Equal results: every figure identical, except the learnt thresholds (cosines themselves),
    which may differ by float rounding."""
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same_figures(a[k], b[k], k) for k in a)
    if "threshold" in key:
        return bool(np.allclose(a, b, rtol=0, atol=1e-5))
    return a == b


@pytest.mark.slow
def test_onnx_backend_reproduces_torch_embeddings_and_figures(tmp_path, monkeypatch, optional_part):
    optional_part("ONNX Runtime (the [onnx] extra)", ONNX_PACKAGES, onnx_backend.require_onnx)
    from alob_train.checkpoint import save_untrained

    monkeypatch.setenv("ALOB_CACHE", str(tmp_path / "cache"))
    data = _face_set(tmp_path / "faces")
    run = save_untrained(tmp_path / "run", "resnet18", "alob", (112, 96))
    reference, torch_vectors, _ = _evaluate(run, data, tmp_path / "torch", "torch")
    assert reference["meta"]["backend"].startswith("torch ")
    onnx, onnx_vectors, output = _evaluate(run, data, tmp_path / "onnx", "onnx")
    assert onnx["meta"]["backend"].startswith("onnxruntime ")
    assert "Embeddings computed by: onnxruntime" in (tmp_path / "onnx" / "results.md").read_text()
    assert "embeddings by onnxruntime" in output
    assert sorted(onnx_vectors) == sorted(torch_vectors) and len(torch_vectors) == 12
    paths = sorted(torch_vectors)
    cosines = [onnx_backend.min_cosine(onnx_vectors[p][None], torch_vectors[p][None]) for p in paths]
    assert min(cosines) >= 0.9999, cosines
    assert _same_figures(onnx["results"], reference["results"]), (onnx["results"], reference["results"])
    assert 0.5 < reference["results"]["b"]["accuracy"]  # the figures compared are not degenerate

    graphs = list((tmp_path / "cache" / "onnx").glob("*.onnx"))
    assert len(graphs) == 1 and graphs[0].name.startswith(onnx_backend.file_sha256(run / "checkpoints" / "last.pt")[:32])
    exported = graphs[0].stat().st_mtime_ns
    monkeypatch.setattr(onnx_backend, "AUTO_MIN_IMAGES", 1)  # auto picks onnx here, from the cache
    again, _, _ = _evaluate(run, data, tmp_path / "auto", "auto")
    assert again["meta"]["backend"].startswith("onnxruntime ") and graphs[0].stat().st_mtime_ns == exported
    assert _same_figures(again["results"], reference["results"])
    graphs[0].write_bytes(b"not a graph")  # a damaged cache file is exported again, not used
    repaired, _, _ = _evaluate(run, data, tmp_path / "repaired", "onnx")
    assert _same_figures(repaired["results"], reference["results"]) and graphs[0].stat().st_size > 1_000_000
    assert not list((tmp_path / "cache" / "onnx").glob(".*.tmp"))  # atomic writes leave no temporary file


def test_missing_onnxruntime_is_one_line_error_and_auto_falls_back(tmp_path, monkeypatch):
    from alob_train.checkpoint import save_untrained

    monkeypatch.setenv("ALOB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` now fails
    data = _face_set(tmp_path / "faces", people=2)
    run = save_untrained(tmp_path / "run", "resnet18", "baseline", (112, 96))
    result = CliRunner().invoke(main, ["--checkpoint", str(run), "--bench", f"b={data}", "--backend", "onnx",
                                       "--out", str(tmp_path / "r"), "--quiet"])
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    lines = result.output.rstrip("\n").splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: --backend onnx needs ONNX Runtime (onnxruntime is not "
                                                   "installed): pip install 'alob-toolkit[onnx]'"), result.output
    monkeypatch.setattr(onnx_backend, "AUTO_MIN_IMAGES", 1)
    fallback, _, _ = _evaluate(run, data, tmp_path / "auto", "auto")
    assert fallback["meta"]["backend"].startswith("torch ")
    assert not (tmp_path / "cache").exists()


def test_onnx_backend_needs_a_checkpoint(tmp_path):
    from alob_eval.embeddings import save_embeddings

    (tmp_path / "set").mkdir()
    (tmp_path / "set" / "pairs.csv").write_text("path1,path2,same,fold\na.jpg,b.jpg,1,0\na.jpg,c.jpg,0,0\n")
    save_embeddings(tmp_path / "e.npz", ["a.jpg", "b.jpg", "c.jpg"], np.eye(3))
    result = CliRunner().invoke(main, ["--embeddings", str(tmp_path / "e.npz"), "--bench", f"x={tmp_path / 'set'}",
                                       "--backend", "onnx", "--out", str(tmp_path / "r")])
    assert result.exit_code == 2 and "--backend onnx runs a --checkpoint model" in result.output
