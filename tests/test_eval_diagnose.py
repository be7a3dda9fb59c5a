"""``alob-eval diagnose``: the mechanism figures on a pair set, checked against a direct computation."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from alob_eval.cli import main


def _pair_folder(root: Path) -> Path:
    """Four people x three synthetic faces and a pairs.csv of genuine and impostor pairs in two folds."""
    rng = np.random.default_rng(3)
    rows = []
    for p in range(4):
        colour = tuple(int(v) for v in rng.integers(60, 220, 3))
        for k in range(3):
            face = np.full((112, 96, 3), rng.integers(20, 90, 3), np.uint8)
            cv2.ellipse(face, (48, 58), (30, 42), 0, 0, 360, colour, -1)
            cv2.circle(face, (int(rng.integers(28, 40)), 50), 4, (20, 20, 20), -1)
            (root / f"p{p}").mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(root / f"p{p}" / f"{k}.jpg"), face)
    for p in range(4):
        rows += [f"p{p}/0.jpg,p{p}/1.jpg,1,{p % 2}", f"p{p}/1.jpg,p{p}/2.jpg,1,{p % 2}",
                 f"p{p}/0.jpg,p{(p + 1) % 4}/2.jpg,0,{p % 2}", f"p{p}/2.jpg,p{(p + 2) % 4}/1.jpg,0,{p % 2}"]
    (root / "pairs.csv").write_text("path1,path2,same,fold\n" + "\n".join(rows) + "\n")
    return root


def _figures_directly(run: Path, folder: Path, paths: list[str]) -> dict[str, float]:
    """removed_fraction (|f·û| / |f|), fm_norm, fm_var and the nearest-class cosines of fᵐ and e,
    averaged over the images, from the unfused model's (e, f, fᵐ) and hand-made inputs."""
    from alob_common.images import read_rgb
    from alob_train.checkpoint import load_model
    from alob_train.preprocess import fit_to_input, normalize

    model, cfg = load_model(run, "last")
    batch = torch.stack([fit_to_input(torch.from_numpy(read_rgb(folder / p)).permute(2, 0, 1),
                                      tuple(cfg["input_size"])) for p in paths])
    e, f, fm = (v.double().numpy() for v in model.features(normalize(batch)))
    u = fm / np.linalg.norm(fm, axis=1, keepdims=True)

    def nearest(x: np.ndarray, weight: torch.Tensor) -> float:
        w = weight.detach().double().numpy()
        cos = (x / np.linalg.norm(x, axis=1, keepdims=True)) @ (w / np.linalg.norm(w, axis=1, keepdims=True)).T
        return float(cos.max(axis=1).mean())

    return {"removed_fraction": float(np.mean(np.abs((f * u).sum(axis=1)) / np.linalg.norm(f, axis=1))),
            "fm_norm": float(np.linalg.norm(fm, axis=1).mean()), "fm_var": float(fm.var(axis=0).mean()),
            "fm_nearest_class_cos": nearest(fm, model.trimmer_head.weight),
            "e_nearest_class_cos": nearest(e, model.classifier.weight)}


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["alob", "concat"])
def test_diagnose_matches_eval_and_direct_computation(tmp_path, variant):
    """Each side's figures against a direct computation and e's accuracy against alob-eval's;
    for concat, e is twice as wide as f and fᵐ, so a wrong cut of [e, f, fᵐ] changes them."""
    from alob_train.checkpoint import save_untrained

    folder = _pair_folder(tmp_path / "set")
    run = save_untrained(tmp_path / "run", "resnet18", variant, classes=6)
    runner = CliRunner()
    result = runner.invoke(main, ["diagnose", "--checkpoint", str(run), "--bench", f"toy={folder}",
                                  "--out", str(tmp_path / "diag"), "--quiet"])
    assert result.exit_code == 0, result.output
    stored = json.loads((tmp_path / "diag" / "diagnostics.json").read_text())["benchmarks"]["toy"]
    assert (tmp_path / "diag" / "diagnostics.md").read_text().count("| toy |") == 3

    evaluated = runner.invoke(main, ["--checkpoint", str(run), "--bench", f"toy={folder}",
                                     "--out", str(tmp_path / "eval"), "--quiet"])
    assert evaluated.exit_code == 0, evaluated.output
    reported = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert stored["accuracy"]["e"]["mean"] == reported["results"]["toy"]["accuracy"]  # e is what alob-eval scores

    rows = [line.split(",") for line in (folder / "pairs.csv").read_text().splitlines()[1:]]
    for side, column in (("first", 0), ("second", 1)):
        paths = list(dict.fromkeys(row[column] for row in rows))
        assert stored[side]["images"] == len(paths)
        for name, value in _figures_directly(run, folder, paths).items():
            assert stored[side][name] == pytest.approx(value, rel=1e-3, abs=1e-5), (side, name)


def test_diagnose_refusals(tmp_path):
    from alob_train.checkpoint import save_untrained

    folder = _pair_folder(tmp_path / "set")
    runner = CliRunner()
    baseline = save_untrained(tmp_path / "base", "resnet18", "baseline", classes=6)
    refused = runner.invoke(main, ["diagnose", "--checkpoint", str(baseline), "--bench", f"toy={folder}"])
    assert refused.exit_code == 1 and "has no Trimmer" in refused.output and "Traceback" not in refused.output
    assert len(refused.output.strip().splitlines()) == 1
    malformed = runner.invoke(main, ["diagnose", "--checkpoint", str(baseline), "--bench", "no-equals-sign"])
    assert malformed.exit_code == 2 and "expected NAME=DIR" in malformed.output
