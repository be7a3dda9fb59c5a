"""Class-activation maps of a network's embedding and how well they point at true occlusions.

CAMs come from the ``grad-cam`` library (Grad-CAM and Grad-CAM++). The scalar being explained
is the squared norm of the network's output embedding, so no identity label is needed (test
identities are unseen in training). The overlap with the ground-truth occlusion masks that
occgen saves is summarised by two numbers:

* pointing game: the fraction of images whose CAM maximum lies inside the occluded region;
* ROC-AUC of CAM values as a per-pixel detector of occluded pixels (``roc_auc_score``), both
  averaged over images and pooled over all pixels.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

METHODS = ("gradcam", "gradcam++")


class EmbeddingNorm:
    """grad-cam target: the squared L2 norm of each output embedding."""

    def __call__(self, output: torch.Tensor) -> torch.Tensor:
        return (output.float() ** 2).sum(dim=-1)


def cam_maps(network: torch.nn.Module, target_layer: torch.nn.Module, images: torch.Tensor,
             method: str = "gradcam") -> np.ndarray:
    """(N, H, W) CAMs in [0, 1] of ``network``'s embedding at ``target_layer`` for a batch of
    normalised images (N, 3, H, W)."""
    from pytorch_grad_cam import GradCAM, GradCAMPlusPlus

    if method not in METHODS:
        raise ValueError(f"unknown CAM method {method!r}: use one of {', '.join(METHODS)}")
    cls = GradCAM if method == "gradcam" else GradCAMPlusPlus
    was_training = network.training
    network.eval()
    try:
        with cls(model=network, target_layers=[target_layer]) as cam:
            maps = cam(input_tensor=images, targets=[EmbeddingNorm()] * len(images))
    finally:
        network.train(was_training)
    return np.asarray(maps, dtype=np.float32)


def mask_overlap(cams: np.ndarray, masks: np.ndarray) -> dict[str, float]:
    """Pointing-game hit rate and ROC-AUC of CAM values against boolean occlusion masks (N, H, W).

    Images whose mask is empty or full cannot be scored and are counted in ``skipped``.
    """
    cams = np.asarray(cams, dtype=np.float64)
    masks = np.asarray(masks, dtype=bool)
    if cams.shape != masks.shape:
        raise ValueError(f"CAMs {cams.shape} and masks {masks.shape} differ in shape")
    hits, aucs, keep = [], [], []
    for cam, mask in zip(cams, masks):
        if mask.all() or not mask.any():
            keep.append(False)
            continue
        keep.append(True)
        hits.append(bool(mask.flat[int(np.argmax(cam))]))
        aucs.append(roc_auc_score(mask.ravel(), cam.ravel()))
    keep = np.array(keep)
    pooled = roc_auc_score(masks[keep].ravel(), cams[keep].ravel()) if keep.any() else float("nan")
    return {
        "images": int(keep.sum()),
        "skipped": int((~keep).sum()),
        "pointing_game": float(np.mean(hits)) if hits else float("nan"),
        "auc_mean": float(np.mean(aucs)) if aucs else float("nan"),
        "auc_pooled": float(pooled),
        "mask_fraction": float(masks[keep].mean()) if keep.any() else float("nan"),
    }
