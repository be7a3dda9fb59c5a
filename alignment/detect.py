"""Face detectors returning five landmarks per face: MTCNN (facenet-pytorch, batched) and dlib.

A detector is built once per process with :func:`make_detector` and called on a list of RGB
uint8 images of equal size; it returns one :class:`Face` (or ``None``) per image, chosen among
the detections by :func:`pick_face`. :func:`detect_across_sizes` runs MTCNN once on images of
different sizes by placing them on a common canvas.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from alob_common.dlib_models import SHAPE_68, require_dlib_model
from alob_common.errors import UserError


class DetectorUnavailable(UserError):
    """The requested detector's package or model file is not installed; message says how."""


@dataclass
class Face:
    """One detected face: box (x0, y0, x1, y1), confidence and (5, 2) landmarks, in pixels."""

    box: np.ndarray
    score: float
    landmarks: np.ndarray


def pick_face(boxes: np.ndarray, image_shape: tuple[int, ...], rule: str = "center") -> int:
    """Index of the face to keep among several.

    ``center`` (the LFW convention of facenet's aligner): maximise box area minus twice the
    squared distance of the box centre from the image centre. ``largest``: maximise the area.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    if rule == "largest":
        return int(np.argmax(area))
    if rule != "center":
        raise ValueError(f"unknown pick rule {rule!r}")
    h, w = image_shape[:2]
    dx = (boxes[:, 0] + boxes[:, 2]) / 2 - w / 2
    dy = (boxes[:, 1] + boxes[:, 3]) / 2 - h / 2
    return int(np.argmax(area - 2.0 * (dx**2 + dy**2)))


Detector = Callable[..., list["Face | None | Exception"]]


def make_detector(
    name: str = "mtcnn",
    device: str = "cpu",
    thresholds: Sequence[float] = (0.6, 0.7, 0.7),
    min_face_size: int = 20,
    pick: str = "center",
) -> Detector:
    """Build a detector: a function from a list of equal-size RGB images to one result each
    (a :class:`Face`, ``None`` for no face, or the exception the detector raised on it)."""
    if name == "mtcnn":
        return _mtcnn_detector(device, thresholds, min_face_size, pick)
    if name == "dlib":
        return _dlib_detector(pick)
    raise ValueError(f"unknown detector {name!r}: use mtcnn or dlib")


def _mtcnn_detector(device: str, thresholds: Sequence[float], min_face_size: int, pick: str) -> Detector:
    try:
        from facenet_pytorch import MTCNN
    except ImportError as err:
        raise DetectorUnavailable(
            "MTCNN needs facenet-pytorch: pip install --no-deps facenet-pytorch==2.6.0 "
            f"(and requests); import failed with: {err}"
        ) from None
    import torch

    if device.startswith("cuda") and not torch.cuda.is_available():
        raise DetectorUnavailable("--device cuda was asked for but torch sees no CUDA device")
    mtcnn = MTCNN(
        keep_all=True,
        min_face_size=min_face_size,
        thresholds=list(thresholds),
        device=torch.device(device),
    )
    # Same weights, same results (landmarks agree to 1e-4 px), but channels_last makes the P-Net's
    # max-pooling ~3x and the whole detector ~2x faster on CPU.
    for net in (mtcnn.pnet, mtcnn.rnet, mtcnn.onet):
        net.to(memory_format=torch.channels_last)

    def one(image: np.ndarray, shape: tuple, scale: float) -> "Face | None | Exception":
        try:
            boxes, probs, points = mtcnn.detect(image, landmarks=True)
        except Exception as err:  # facenet-pytorch fails on some images; record, don't crash
            return err
        return _choose(boxes, probs, points, shape, pick, scale)

    def detect(images: Sequence[np.ndarray], shapes: Sequence[tuple] | None = None,
               scales: Sequence[float] | None = None) -> list["Face | None | Exception"]:
        """``shapes``/``scales``: each image's original shape and canvas pixels per original
        pixel, when the images are canvases made by :func:`detect_across_sizes`."""
        shapes = shapes or [image.shape for image in images]
        scales = scales or [1.0] * len(images)
        if len(images) == 1:
            return [one(images[0], shapes[0], scales[0])]
        try:
            with torch.inference_mode():
                stacked = images if isinstance(images, np.ndarray) else np.stack(images)
                boxes, probs, points = mtcnn.detect(stacked, landmarks=True)
        except Exception:
            # facenet-pytorch crashes on some batches that contain a face-less image (empty
            # tensors in its NMS/stage code): redo this batch one image at a time.
            return [one(image, shape, s) for image, shape, s in zip(images, shapes, scales)]
        return [_choose(*found, shape, pick, s) for *found, shape, s in zip(boxes, probs, points, shapes, scales)]

    return detect


def _choose(boxes, probs, points, shape, pick: str, scale: float = 1.0) -> "Face | None":
    if boxes is None or points is None or len(boxes) == 0:
        return None
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    probs = np.asarray(probs, dtype=np.float64).reshape(-1)
    points = np.asarray(points, dtype=np.float64).reshape(-1, 5, 2)
    if scale != 1.0:  # a resized canvas: back to the original image's pixels
        boxes, points = boxes / scale, points / scale
    i = pick_face(boxes, shape, pick)
    return Face(boxes[i], float(probs[i]), points[i])


def detect_across_sizes(detect: Detector, images: Sequence[np.ndarray], canvas: int | None = None
                        ) -> list["Face | None | Exception"]:
    """Run an MTCNN ``detect`` once on RGB images of different sizes.

    Each image is put at the top-left corner of a common black canvas, the batch's largest
    height by its largest width, so its pixels and coordinates stay as they are (``canvas=None``);
    with ``canvas=N`` each is first resized so that its longer side is N px (the boxes and
    landmarks are scaled back, and ``min_face_size`` then counts canvas pixels). The face chosen
    for each image is picked, by the detector's rule, within the image's own frame.
    """
    import cv2

    shapes = [image.shape for image in images]
    scales = [1.0 if canvas is None else canvas / max(shape[:2]) for shape in shapes]
    placed = []
    for image, s in zip(images, scales):
        if s != 1.0:
            size = (max(1, round(image.shape[1] * s)), max(1, round(image.shape[0] * s)))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
        placed.append(image)
    height, width = max(p.shape[0] for p in placed), max(p.shape[1] for p in placed)
    batch = np.zeros((len(placed), height, width, 3), np.uint8)
    for slot, image in zip(batch, placed):
        slot[: image.shape[0], : image.shape[1]] = image
    return detect(batch, shapes, scales)


def landmarks68_to_5(shape68: np.ndarray) -> np.ndarray:
    """Reduce dlib's 68 points to MTCNN's five: eye centres, nose tip, mouth corners."""
    p = np.asarray(shape68, dtype=np.float64).reshape(68, 2)
    return np.stack([p[36:42].mean(0), p[42:48].mean(0), p[30], p[48], p[54]])


def _dlib_detector(pick: str) -> Detector:
    import dlib

    predictor = dlib.shape_predictor(str(require_dlib_model(SHAPE_68, "--detector dlib")))
    finder = dlib.get_frontal_face_detector()

    def one(image: np.ndarray) -> "Face | None | Exception":
        try:
            rects, scores, _ = finder.run(image, 1, 0.0)
            if len(rects) == 0:
                return None
            boxes = np.array([[r.left(), r.top(), r.right(), r.bottom()] for r in rects], float)
            i = pick_face(boxes, image.shape, pick)
            shape = predictor(image, rects[i])
            pts = np.array([[shape.part(k).x, shape.part(k).y] for k in range(68)], float)
            return Face(boxes[i], float(scores[i]), landmarks68_to_5(pts))
        except Exception as err:
            return err

    return lambda images: [one(image) for image in images]


_CACHE: dict[tuple, Detector] = {}


def detect_landmarks(
    image: np.ndarray,
    detector: str = "mtcnn",
    device: str = "cpu",
    thresholds: Sequence[float] = (0.6, 0.7, 0.7),
    min_face_size: int = 20,
    pick: str = "center",
) -> Face | None:
    """Find the face of one RGB uint8 image (H, W, 3): a :class:`Face` or ``None``.

    The detector is built on first use and kept for later calls with the same settings; for
    many images prefer :func:`make_detector` and batches of equal-size images.
    """
    key = (detector, device, tuple(thresholds), min_face_size, pick)
    if key not in _CACHE:
        _CACHE[key] = make_detector(*key)
    result = _CACHE[key]([np.ascontiguousarray(image)])[0]
    if isinstance(result, Exception):
        raise result
    return result
