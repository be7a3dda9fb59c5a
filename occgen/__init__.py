"""Occlusion synthesis: the occluder library, ``occlude()`` and the ``occgen`` dataset builders.

Public API (used by the trainer for on-the-fly occlusion)::

    from occgen import occlude, OcclusionConfig, load_library, rng_for
    image, mask, info = occlude(rgb_uint8, rng_for(seed, key), config=OcclusionConfig(ratio=0.52))
    image, mask, info = mask_face(rgb_uint8, rng_for(seed, key), MaskConfig(types=("surgical", "N95")))
    config = default_occlusion("lfw")  # the size mode occgen build uses for --source lfw (DEFAULT_SIZE_MODE)
"""

from occgen.build_config import DEFAULT_SIZE_MODE, default_occlusion
from occgen.library import (
    OccgenError,
    Occluder,
    OccluderLibrary,
    default_library,
    load_library,
)
from occgen.masks import MASK_TYPES, MaskConfig, mask_face
from occgen.rng import rng_for, stable_hash
from occgen.synth import OcclusionConfig, occlude, parse_scale_set

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_SIZE_MODE",
    "MASK_TYPES",
    "MaskConfig",
    "OccgenError",
    "Occluder",
    "OccluderLibrary",
    "OcclusionConfig",
    "default_library",
    "default_occlusion",
    "load_library",
    "mask_face",
    "occlude",
    "parse_scale_set",
    "rng_for",
    "stable_hash",
]
