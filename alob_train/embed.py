"""Embeddings of image files by a trained model, and ``alob-train --val``.

An *embedder* is any function from a list of RGB uint8 images to an (N, D) array
(:data:`alob_common.verification.Embedder`); :func:`model_embedder` makes one from a trained
model, :func:`embed_paths` runs one over files (each image once), :func:`validate_folder`
scores the pairs of a folder dataset or of an insightface ``.bin`` with the evaluation protocol.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from alob_common.images import read_rgb
from alob_common.pairs import PairsError, pairs_csv_table
from alob_common.verification import Embedder, cosine_scores, fold_accuracy, verification_folds
from alob_common.verification_bin import VerificationBinError, load_bin_pairs
from alob_train.data import DataError
from alob_train.preprocess import fit_to_input, normalize


def fuse_conv_bn(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of ``model`` for inference with every BatchNorm2d that directly follows a Conv2d
    folded into that convolution (adjacent in an ``nn.Sequential``, or torchvision's
    ``convK``/``bnK`` pairs of a BasicBlock). Eval-mode outputs are unchanged up to float
    rounding; each folded BatchNorm pass is saved."""
    import copy

    from torch.nn.utils.fusion import fuse_conv_bn_eval

    fused = copy.deepcopy(model).eval()
    for module in fused.modules():
        if isinstance(module, torch.nn.Sequential):
            for k in range(len(module) - 1):
                conv, bn = module[k], module[k + 1]
                if isinstance(conv, torch.nn.Conv2d) and type(bn) is torch.nn.BatchNorm2d:
                    module[k], module[k + 1] = fuse_conv_bn_eval(conv, bn), torch.nn.Identity()
        for k in (1, 2, 3):
            conv, bn = getattr(module, f"conv{k}", None), getattr(module, f"bn{k}", None)
            if isinstance(conv, torch.nn.Conv2d) and type(bn) is torch.nn.BatchNorm2d:
                setattr(module, f"conv{k}", fuse_conv_bn_eval(conv, bn))
                setattr(module, f"bn{k}", torch.nn.Identity())
    return fused


def model_inputs(images: Sequence[np.ndarray], input_size: tuple[int, int]) -> torch.Tensor:
    """RGB uint8 images (H, W, 3) -> the float32 batch (N, 3, H, W) a model is fed: brought to its
    input size and normalised exactly as in training (:mod:`alob_train.preprocess`). Every
    inference backend starts from this tensor, so all of them see the same pixels."""
    batch = [fit_to_input(torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1), input_size)
             for image in images]
    return normalize(torch.stack(batch))


def model_embedder(model: torch.nn.Module, input_size: tuple[int, int], device: torch.device | str = "cpu",
                   channels_last: bool = False) -> Embedder:
    """An :data:`Embedder` over a trained ALOB model (any variant's ``embed``): images are brought
    to the model's input size and normalised exactly as in training (:mod:`alob_train.preprocess`),
    then embedded in eval mode."""
    @torch.inference_mode()
    def embed(images: Sequence[np.ndarray]) -> np.ndarray:
        x = model_inputs(images, input_size).to(device)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        was_training = model.training
        model.eval()
        try:
            return model.embed(x).float().cpu().numpy()
        finally:
            model.train(was_training)

    return embed


def validate_folder(model: torch.nn.Module, root: str | Path, input_size: tuple[int, int],
                    device: torch.device | str = "cpu", batch_size: int = 64,
                    channels_last: bool = False) -> dict[str, float]:
    """``alob-train --val``: verification accuracy of the model on a folder dataset's pairs.csv
    or on an insightface verification ``.bin`` (``root`` a file), with the same protocol as
    ``alob-eval``."""
    pairs, images = validation_pairs(root)
    paths = list(dict.fromkeys([*pairs.path1, *pairs.path2]))
    vectors = embed_paths(model_embedder(model, input_size, device, channels_last), paths, batch_size, progress=False,
                          images=images)
    scores = cosine_scores(np.stack([vectors[p] for p in pairs.path1]), np.stack([vectors[p] for p in pairs.path2]))
    same = pairs.same.to_numpy(bool)
    folds, _rule = verification_folds(same, pairs.fold.to_numpy())  # the alob-eval rule, one fold included
    result = fold_accuracy(scores, same, folds)
    return {"val_acc": result.mean, "val_std": result.std, "val_pairs": float(len(pairs))}


def validation_pairs(root: str | Path):
    """The pair table of ``--val`` and the encoded images it names that are not files (a ``.bin``'s)."""
    try:
        if Path(root).is_file():
            return load_bin_pairs(root)
        return pairs_csv_table(root), {}
    except (PairsError, VerificationBinError, OSError) as err:
        raise DataError(f"validation set {root}: {err}") from None


def embed_paths(embed: Embedder, paths: Sequence[str], batch_size: int = 64, flip: bool = False,
                progress: bool = True, images: dict[str, bytes] | None = None) -> dict[str, np.ndarray]:
    """Embed each image once; with ``flip`` the embedding is the sum over the image and its
    mirror (flip-test fusion). ``images``: encoded images held in memory by name (a ``.bin``'s),
    decoded by the same reader as files. The next batch is decoded in a background thread
    while the model embeds the current one."""
    held = images or {}
    from concurrent.futures import ThreadPoolExecutor

    from tqdm import tqdm

    def decode(start: int) -> list[np.ndarray]:
        return [read_rgb(io.BytesIO(held[p]) if p in held else p) for p in paths[start : start + batch_size]]

    out: dict[str, np.ndarray] = {}
    starts = range(0, len(paths), batch_size)
    with ThreadPoolExecutor(max_workers=1) as pool, \
            tqdm(total=len(paths), unit="img", desc="embedding", disable=not progress) as bar:
        pending = pool.submit(decode, 0) if len(paths) else None
        for start in starts:
            images = pending.result()
            if start + batch_size < len(paths):
                pending = pool.submit(decode, start + batch_size)
            chunk = list(paths[start : start + batch_size])
            vectors = np.asarray(embed(images), dtype=np.float64)
            if flip:
                vectors = vectors + np.asarray(embed([np.ascontiguousarray(i[:, ::-1]) for i in images]), dtype=np.float64)
            out.update(zip(chunk, vectors))
            bar.update(len(chunk))
    return out
