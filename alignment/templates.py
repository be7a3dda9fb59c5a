"""The 5-point alignment templates: the single source of these constants in the project.

Points are (x, y) in 0-based pixels, in the order left eye, right eye, nose tip, left mouth
corner, right mouth corner (left/right as seen in the image). The 112×96 (H×W) template is the
SphereFace/CosFace one; the 112×112 template (insightface ``arcface_src``) is the same shifted by
8 px in x, so columns 8..104 of a 112×112 crop are the 112×96 crop.
"""

from __future__ import annotations

import numpy as np

TEMPLATE_112x96 = np.array(
    [
        [30.2946, 51.6963],
        [65.5318, 51.5014],
        [48.0252, 71.7366],
        [33.5493, 92.3655],
        [62.7299, 92.2041],
    ],
    dtype=np.float64,
)
TEMPLATE_112x96.flags.writeable = False

TEMPLATE_112x112 = TEMPLATE_112x96 + np.array([8.0, 0.0])
TEMPLATE_112x112.flags.writeable = False

SIZES: dict[str, tuple[int, int]] = {"112x96": (112, 96), "112x112": (112, 112)}
_TEMPLATES = {(112, 96): TEMPLATE_112x96, (112, 112): TEMPLATE_112x112}


def parse_size(text: str | tuple[int, int]) -> tuple[int, int]:
    """Turn ``"112x96"`` (H×W) into ``(112, 96)``; only the two supported sizes are accepted."""
    size = tuple(text) if not isinstance(text, str) else SIZES.get(text.lower().strip())
    if size not in _TEMPLATES:
        raise ValueError(f"unsupported crop size {text!r}: use one of {', '.join(SIZES)}")
    return size  # type: ignore[return-value]


def template_for(size: str | tuple[int, int]) -> np.ndarray:
    """Return the (5, 2) template of a crop size given as ``"112x96"`` or ``(112, 96)``."""
    return _TEMPLATES[parse_size(size)]
