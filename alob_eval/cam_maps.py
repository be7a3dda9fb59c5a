"""Class-activation maps of a network's embedding and how well they point at true occlusions.

CAMs come from the ``grad-cam`` library (Grad-CAM and Grad-CAM++). The scalar being explained
is the squared norm of the network's output embedding, so no identity label is needed (test
identities are unseen in training). The overlap with the ground-truth occlusion masks that
occgen saves is summarised by two numbers:

* pointing game: the fraction of images whose CAM maximum lies inside the occluded region
  (when several pixels share the maximum, the fraction of them inside the mask, which is what a
  random tie-break scores on average; a flat map therefore scores the mask's area);
* ROC-AUC of CAM values as a per-pixel detector of occluded pixels, both averaged over images
  and pooled over all pixels of all images. AUCs are computed from CAM values quantised to
  :data:`AUC_LEVELS` levels in [0, 1] (ties count one half, as in the rank-sum statistic), which
  lets the pooled AUC over millions of pixels be accumulated in constant memory; for CAMs in
  [0, 1] it differs from scikit-learn's exact ``roc_auc_score`` by less than 1e-3.

Which layer is explained: :func:`cam_target_layer` (the trunk's second-to-last convolution).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn

METHODS = ("gradcam", "gradcam++")
AUC_LEVELS = 4096

#: The CAM layer of each backbone of :mod:`alob_train.backbones`, in words.
CAM_LAYERS = {
    "resnet18": "trunk.7[1].conv1: the first 3x3 convolution of layer4's last BasicBlock (512 ch, 4x3 at 112x96)",
    "iresnet18": "trunk[-1].body[1]: the first 3x3 convolution of the last IRBlock (512 ch, 7x6 at 112x96)",
    "iresnet50": "trunk[-1].body[1]: the first 3x3 convolution of the last IRBlock (512 ch, 7x6 at 112x96)",
    "lightcnn9": "trunk[-3]: the 1x1 max-feature-map unit before the last 3x3 one (128 ch, 14x12 at 112x96)",
    "facenet": "trunk.repeat_2[-1]: the output of the last Block17 (896 ch, 5x5 at 112x112)",
}


def cam_target_layer(backbone: nn.Module, name: str) -> nn.Module:
    """The layer whose activations the CAMs of backbone ``name`` (a
    :class:`~alob_train.backbones.Backbone`) are built on: the trunk's second-to-last
    convolution in forward order, as the ALOB paper visualises the Trimmer.

    * ``resnet18``: ``layer4[1].conv1`` (the last convolution is ``layer4[1].conv2``);
    * ``iresnet18`` / ``iresnet50``: ``body[1]`` of the last IRBlock (its shortcut is the
      identity, so ``body[4]`` is the last convolution);
    * ``lightcnn9``: the 1x1 MFM unit before the final 3x3 one; the MFM module itself is taken
      rather than its inner convolution, so the map is of the 128 max-feature outputs and not
      of the 256 competing halves;
    * ``facenet``: the output of the last Block17 (``repeat_2[-1]``), the last map finer than
      2×2 at 112×112 (after it, ``mixed_7a`` halves the map again).
    """
    trunk = backbone.trunk
    if name == "resnet18":
        return trunk[7][-1].conv1
    if name in ("iresnet18", "iresnet50"):
        return trunk[-1].body[1]
    if name == "lightcnn9":
        return trunk[-3]
    if name == "facenet":
        return trunk.repeat_2[-1]
    raise ValueError(f"no CAM layer known for backbone {name!r}: choose one of {', '.join(CAM_LAYERS)}")


class EmbeddingNorm:
    """grad-cam target: the squared L2 norm of each output embedding."""

    def __call__(self, output: torch.Tensor) -> torch.Tensor:
        return (output.float() ** 2).sum(dim=-1)


@contextmanager
def _gradients_from(network: nn.Module, layer: nn.Module) -> Iterator[None]:
    """Backpropagate only from the output down to ``layer``: parameters are frozen and the
    layer's output is made a leaf that requires grad (the layers below need no backward pass,
    which roughly halves the cost of a CAM). Registered before grad-cam's own hooks."""
    flags = [(p, p.requires_grad) for p in network.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)

    def hook(module, inputs, output):
        if isinstance(output, torch.Tensor) and not output.requires_grad:
            output.requires_grad_(True)

    handle = layer.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()
        for p, flag in flags:
            p.requires_grad_(flag)


def cam_maps(network: torch.nn.Module, target_layer: torch.nn.Module, images: torch.Tensor,
             method: str = "gradcam") -> np.ndarray:
    """(N, H, W) CAMs in [0, 1] of ``network``'s embedding at ``target_layer`` for a batch of
    normalised images (N, 3, H, W)."""
    from pytorch_grad_cam import GradCAM, GradCAMPlusPlus

    if method not in METHODS:
        raise ValueError(f"unknown CAM method {method!r}: use one of {', '.join(METHODS)}")
    cls = GradCAM if method == "gradcam" else GradCAMPlusPlus
    images = images.to(next(network.parameters()).device)  # the model's device (alob-eval cam --device)
    was_training = network.training
    network.eval()
    try:
        with _gradients_from(network, target_layer), cls(model=network, target_layers=[target_layer]) as cam:
            maps = cam(input_tensor=images, targets=[EmbeddingNorm()] * len(images))
    finally:
        network.train(was_training)
    return np.asarray(maps, dtype=np.float32)


def centre_prior(count: int, height: int, width: int, sigma: float = 0.25) -> np.ndarray:
    """A trivial "attention" baseline: (count, H, W) copies of a Gaussian centred on the image,
    ``sigma`` a fraction of each side, peak 1."""
    y = (np.arange(height) + 0.5) / height - 0.5
    x = (np.arange(width) + 0.5) / width - 0.5
    bump = np.exp(-(y[:, None] ** 2 + x[None, :] ** 2) / (2 * sigma**2)).astype(np.float32)
    return np.broadcast_to(bump, (count, height, width)).copy()


def random_maps(rng: np.random.Generator, count: int, height: int, width: int) -> np.ndarray:
    """A chance baseline: (count, H, W) maps of independent uniform values in [0, 1)."""
    return rng.random((count, height, width), dtype=np.float32)


def _auc_from_histograms(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """Rank-sum AUC of positives over negatives from per-level counts (..., levels)."""
    pos, neg = pos.astype(np.float64), neg.astype(np.float64)
    below = np.cumsum(neg, axis=-1) - neg
    wins = (pos * (below + 0.5 * neg)).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return wins / (pos.sum(axis=-1) * neg.sum(axis=-1))


class MaskOverlap:
    """Accumulates pointing game and AUC of CAMs against boolean masks, batch by batch.

    :meth:`update` returns each image's (hit, auc), NaN for images whose mask is empty or full
    (those cannot be scored and are counted in ``skipped``); :meth:`summary` gives the totals.
    """

    def __init__(self, levels: int = AUC_LEVELS) -> None:
        self.levels = levels
        self.pos = np.zeros(levels, np.int64)
        self.neg = np.zeros(levels, np.int64)
        self.hits: list[float] = []
        self.aucs: list[float] = []
        self.skipped = 0
        self.flat = 0
        self.masked_pixels = 0
        self.pixels = 0

    def update(self, cams: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Score a batch of CAMs (N, H, W), values in [0, 1], against masks of the same shape."""
        cams = np.asarray(cams, dtype=np.float64)
        masks = np.asarray(masks, dtype=bool)
        if cams.shape != masks.shape:
            raise ValueError(f"CAMs {cams.shape} and masks {masks.shape} differ in shape")
        if cams.size and (cams.min() < 0 or cams.max() > 1):
            raise ValueError("CAM values must lie in [0, 1]")
        n = len(cams)
        flat_cams, flat_masks = cams.reshape(n, -1), masks.reshape(n, -1)
        area = flat_masks.sum(axis=1)
        keep = (area > 0) & (area < flat_masks.shape[1])
        peak = flat_cams.max(axis=1, keepdims=True)
        at_peak = flat_cams == peak
        hits = (at_peak & flat_masks).sum(axis=1) / at_peak.sum(axis=1)
        levels = np.rint(flat_cams * (self.levels - 1)).astype(np.int64) + self.levels * np.arange(n)[:, None]
        pos = np.bincount(levels[flat_masks], minlength=n * self.levels).reshape(n, self.levels)
        neg = np.bincount(levels[~flat_masks], minlength=n * self.levels).reshape(n, self.levels)
        aucs = _auc_from_histograms(pos, neg)
        hits, aucs = np.where(keep, hits, np.nan), np.where(keep, aucs, np.nan)
        self.pos += pos[keep].sum(axis=0)
        self.neg += neg[keep].sum(axis=0)
        self.hits.extend(hits[keep].tolist())
        self.aucs.extend(aucs[keep].tolist())
        self.skipped += int((~keep).sum())
        self.flat += int((at_peak.all(axis=1) & keep).sum())
        self.masked_pixels += int(area[keep].sum())
        self.pixels += int(keep.sum()) * flat_masks.shape[1]
        return hits, aucs

    def summary(self) -> dict[str, float]:
        """images, skipped, flat (constant maps), pointing_game, auc_mean, auc_pooled, mask_fraction."""
        scored = bool(self.hits)
        return {
            "images": len(self.hits),
            "skipped": self.skipped,
            "flat": self.flat,
            "pointing_game": float(np.mean(self.hits)) if scored else float("nan"),
            "auc_mean": float(np.mean(self.aucs)) if scored else float("nan"),
            "auc_pooled": float(_auc_from_histograms(self.pos, self.neg)) if scored else float("nan"),
            "mask_fraction": self.masked_pixels / self.pixels if scored else float("nan"),
        }


def mask_overlap(cams: np.ndarray, masks: np.ndarray) -> dict[str, float]:
    """Pointing-game hit rate and ROC-AUC of CAM values in [0, 1] against boolean occlusion masks
    (N, H, W); see :class:`MaskOverlap`."""
    overlap = MaskOverlap()
    overlap.update(cams, masks)
    return overlap.summary()
