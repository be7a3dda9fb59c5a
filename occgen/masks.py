"""Face masks on aligned crops: ``mask_face(image, rng, ...) -> (image, mask, info)``.

The landmarks come from :mod:`occgen.face_landmarks` (dlib 68 points, align-faces' 5 points or
the crop's template driving a face-shape model; a face is never dropped), the mask is drawn by
:mod:`occgen.mask_drawing` (surgical, N95, KN95, cloth, gas) or, with a MaskTheFace template
folder, fitted by :mod:`occgen.masktheface`. The saved mask is exactly the pixels where the
composited alpha exceeds 0.5.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from occgen.face_landmarks import LANDMARK_METHODS, fit_face
from occgen.mask_drawing import MASK_TYPES, draw_mask
from occgen.masktheface import TemplateSet, load_templates_cached

__all__ = ["MASK_TYPES", "MaskConfig", "mask_face", "parse_mask_types"]


@dataclass(frozen=True)
class MaskConfig:
    """Which masks and how to find landmarks.

    ``types``: the mask types drawn from (uniformly per image). ``landmarks``: ``auto`` (dlib 68
    when installed, else the face-shape model), ``dlib`` (the same, but an error when dlib is
    missing) or ``model`` (never dlib). ``templates``: a MaskTheFace template folder whose
    templates replace the procedural drawing (fitted by homography from their six points).
    """

    types: tuple[str, ...] = MASK_TYPES
    landmarks: str = "auto"
    templates: str | None = None

    def __post_init__(self) -> None:
        unknown = [t for t in self.types if t not in MASK_TYPES]
        if unknown or not self.types:
            raise ValueError(f"unknown mask type(s) {', '.join(unknown) or '(none)'}: use {', '.join(MASK_TYPES)}")
        if self.landmarks not in LANDMARK_METHODS:
            raise ValueError(f"landmarks must be one of {', '.join(LANDMARK_METHODS)}")


def parse_mask_types(text: str | None) -> tuple[str, ...]:
    """``"surgical,N95"`` -> ("surgical", "N95"); case-insensitive; ValueError on unknown names."""
    if not text:
        return MASK_TYPES
    lookup = {t.lower(): t for t in MASK_TYPES}
    names = [v.strip() for v in text.split(",") if v.strip()]
    unknown = [n for n in names if n.lower() not in lookup]
    if unknown or not names:
        raise ValueError(f"unknown mask type(s) {', '.join(unknown) or '(none)'}: use {', '.join(MASK_TYPES)}")
    return tuple(dict.fromkeys(lookup[n.lower()] for n in names))


def mask_face(image: np.ndarray, rng: np.random.Generator, config: MaskConfig = MaskConfig(),
              points5: np.ndarray | None = None, templates: TemplateSet | None = None) -> tuple[np.ndarray, np.ndarray, dict]:
    """Put one face mask on an aligned RGB uint8 crop.

    Returns ``(image, mask, info)``: the masked image, the exact boolean per-pixel mask (composited
    alpha > 0.5) and the facts for the manifest: ``type``, ``variant``, ``landmarks`` (dlib68,
    manifest5 or template5), ``reason`` (why landmarks fell back), ``yaw`` (degrees), ``ratio``
    (coverage) and the mask's bounding box ``x``, ``y``, ``w``, ``h``. ``templates``: a loaded
    :class:`occgen.masktheface.TemplateSet` (else ``config.templates`` is loaded once and cached).
    The same (image, rng state, config, points5) always gives the same bytes.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError("image must be an RGB uint8 array (H, W, 3)")
    kind = str(config.types[int(rng.integers(len(config.types)))])
    face = fit_face(image, points5, config.landmarks)
    if templates is None and config.templates:
        templates = load_templates_cached(config.templates)
    if templates is not None and templates.has(kind):
        out, alpha, variant = templates.apply(image, face, kind, rng)
    else:
        out, alpha, variant = draw_mask(image, face, kind, rng)
    mask = alpha > 0.5
    ys, xs = np.nonzero(mask)
    box = (int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)) if len(xs) else (0, 0, 0, 0)
    info = {"type": kind, "variant": variant, "landmarks": face.source, "reason": face.reason,
            "yaw": round(face.yaw, 2), "ratio": float(mask.mean()), "x": box[0], "y": box[1], "w": box[2], "h": box[3]}
    return out, mask, info

