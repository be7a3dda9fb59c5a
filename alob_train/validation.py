"""``--val``: pair-verification accuracy of the model being trained, after every epoch.

Embeds every image of a folder dataset's ``pairs.csv`` with ``model.embed`` and scores cosine
similarity over 10 folds (threshold chosen on 9, applied to the 10th). The fold metric here is
a minimal stand-in: the evaluation package owns the protocol (``alob_train.verification`` on
main, from issue 6), and :func:`fold_accuracy` is the one function to replace by it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from alob_train.data import DataError, read_rgb
from alob_train.constants import normalize


def fold_accuracy(scores: np.ndarray, same: np.ndarray, folds: np.ndarray) -> tuple[float, float]:
    """Mean and std over folds of the accuracy at the threshold that is best on the other folds."""
    accs = []
    for k in np.unique(folds):
        train, test = folds != k, folds == k
        candidates = np.unique(scores[train])
        best = max(candidates, key=lambda t: np.mean((scores[train] >= t) == same[train]))
        accs.append(np.mean((scores[test] >= best) == same[test]))
    return float(np.mean(accs)), float(np.std(accs))


@torch.no_grad()
def validate_folder(model, root: str | Path, input_size: tuple[int, int], device: torch.device,
                  batch_size: int = 64, channels_last: bool = False) -> dict[str, float]:
    """Embed every image of a folder dataset's ``pairs.csv`` and score its pairs."""
    root = Path(root)
    pairs_csv = root / "pairs.csv"
    if not pairs_csv.is_file():
        raise DataError(f"validation folder has no pairs.csv: {root}")
    pairs = pd.read_csv(pairs_csv)
    if "fold" not in pairs:
        pairs["fold"] = np.arange(len(pairs)) * 10 // max(len(pairs), 1)
    paths = sorted(set(pairs["path1"]) | set(pairs["path2"]))
    index = {p: i for i, p in enumerate(paths)}
    was_training = model.training
    model.eval()
    embeddings = []
    for start in range(0, len(paths), batch_size):
        images = []
        for rel in paths[start:start + batch_size]:
            img = torch.from_numpy(read_rgb(root / rel)).permute(2, 0, 1)
            if tuple(img.shape[-2:]) != tuple(input_size):
                img = F.interpolate(img[None].float(), size=input_size, mode="bilinear", antialias=True)[0]
            images.append(img)
        x = normalize(torch.stack(images)).to(device)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        embeddings.append(F.normalize(model.embed(x).float(), dim=1).cpu())
    model.train(was_training)
    emb = torch.cat(embeddings).numpy()
    i1 = pairs["path1"].map(index).to_numpy()
    i2 = pairs["path2"].map(index).to_numpy()
    scores = np.sum(emb[i1] * emb[i2], axis=1)
    mean, std = fold_accuracy(scores, pairs["same"].astype(bool).to_numpy(), pairs["fold"].to_numpy())
    return {"val_acc": mean, "val_std": std, "val_pairs": float(len(pairs))}
