"""A short real run: ALOB-ResNet18 on ~50 LFW identities learns (skips without the data)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import webdataset as wds
from PIL import Image

from alob_train.config import TrainConfig
from alob_train.engine import train

IDENTITIES, PER_IDENTITY, SIZE = 50, 8, (48, 40)


def lfw_subset_shards(lfw: Path, out: Path) -> Path:
    """Shards of the 50 LFW identities with the most images (8 each), a face-centred crop of
    the deep-funneled 250×250 images resized to 48×40 (small, to stay quick on 2 cores)."""
    folders = sorted((d for d in lfw.iterdir() if d.is_dir()), key=lambda d: (-len(list(d.iterdir())), d.name))
    chosen = sorted(folders[:IDENTITIES], key=lambda d: d.name)
    (out / "shards").mkdir(parents=True)
    rows = []
    with wds.TarWriter(str(out / "shards" / "train-000000.tar")) as sink:
        for label, folder in enumerate(chosen):
            files = sorted(folder.glob("*.jpg"))[:PER_IDENTITY]
            for path in files:
                with Image.open(path) as im:
                    face = im.convert("RGB").crop((65, 55, 185, 195)).resize(SIZE[::-1], Image.BILINEAR)
                sink.write({"__key__": f"{folder.name}/{path.stem}", "png": np.asarray(face),
                            "json": {"label": label, "identity": folder.name, "occluded": False, "kind": "clean"}})
            rows.append((label, folder.name, len(files)))
    pd.DataFrame(rows, columns=["label", "identity", "count"]).to_csv(out / "classes.csv", index=False)
    return out


# Head → (largest L_f at the end as a fraction of the first, smallest final training accuracy).
# The shared head is stepped by SGD 0.01 with momentum, a separate Identifier head by Adam 0.001
# (as the baseline's): on this tiny run the separate head learns more slowly (measured: L_f
# 17.3 → 15.5, accuracy 17.8 % at step 150, chance 2 %), so its bounds are lower.
EXPECTED = {"shared": (0.85, 0.25), "separate": (0.95, 0.10)}


@pytest.mark.slow
@pytest.mark.parametrize("classifier", sorted(EXPECTED))
def test_short_real_run_learns_lfw_identities(lfw_dir, tmp_path, classifier):
    data = lfw_subset_shards(lfw_dir, tmp_path / "lfw50")
    config = TrainConfig(data=str(data), out=str(tmp_path / "run"), backbone="resnet18", variant="alob",
                         batch_size=16, epochs=6, lr_trimmer=0.01, lr_identifier=0.001, milestones=(), workers=0,
                         log_every=25, tensorboard=False, progress=False, threads=2, classifier=classifier)
    summary = train(config)
    metrics = pd.read_csv(tmp_path / "run" / "metrics.csv")
    first, last = metrics.iloc[0], metrics.iloc[-2:]
    assert summary["steps"] == 6 * (IDENTITIES * PER_IDENTITY // 16)
    # L_f (CosFace, s = 30, m = 0.4) starts near 18; the total loss is not minimised, since the
    # Trimmer maximises L_m through the GRL
    loss_bound, acc_bound = EXPECTED[classifier]
    assert last["loss_f"].mean() < loss_bound * first["loss_f"]
    assert last["acc"].mean() > acc_bound  # training accuracy; chance is 1/50
