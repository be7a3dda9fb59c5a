"""Face detection and 5-point similarity alignment (the ``align-faces`` command).

Public API used by the later stages::

    from alignment import detect_landmarks, warp_face, template_for, parse_size
"""

from alignment.warp import center_crop, warp_face
from alob_common.geometry import (
    TEMPLATE_112x96,
    TEMPLATE_112x112,
    fit_similarity,
    parse_size,
    template_for,
    transform_points,
)


def detect_landmarks(image, **kwargs):
    """Detect the face in one RGB uint8 image; see :func:`alignment.detect.detect_landmarks`.

    Imported lazily so that ``import alignment`` does not load torch.
    """
    from alignment.detect import detect_landmarks as _detect

    return _detect(image, **kwargs)


__version__ = "0.1.0"

__all__ = [
    "TEMPLATE_112x96",
    "TEMPLATE_112x112",
    "center_crop",
    "detect_landmarks",
    "fit_similarity",
    "parse_size",
    "template_for",
    "transform_points",
    "warp_face",
]
