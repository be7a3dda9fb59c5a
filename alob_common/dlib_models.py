"""Where dlib's model files are: the one lookup for every stage that uses dlib.

The files come with the ``face_recognition_models`` package (the ``[dlib]`` extra). Its own
helpers import ``pkg_resources``, which current setuptools no longer ships, so the files are
found from the package folder. ``$ALOB_DLIB68`` names another 68-point predictor file.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from alob_common.errors import UserError

SHAPE_68 = "shape_predictor_68_face_landmarks.dat"
SHAPE_5 = "shape_predictor_5_face_landmarks.dat"
FACE_RESNET = "dlib_face_recognition_resnet_model_v1.dat"
ENV_OVERRIDES = {SHAPE_68: "ALOB_DLIB68"}  # a file named here is used instead of the package's
INSTALL_HINT = "pip install 'alob-toolkit[dlib]' (dlib-bin and face_recognition_models)"


class DlibUnavailable(UserError):
    """dlib or one of its model files is not installed."""


def dlib_model_path(name: str) -> Path | None:
    """The path of dlib model file ``name``, or None when dlib or the file is missing."""
    if importlib.util.find_spec("dlib") is None:
        return None
    override = os.environ.get(ENV_OVERRIDES.get(name, ""), "")
    if override:
        return Path(override) if Path(override).is_file() else None
    spec = importlib.util.find_spec("face_recognition_models")
    for folder in [Path(f) / "models" for f in (spec.submodule_search_locations or [])] if spec else []:
        if (folder / name).is_file():
            return folder / name
    return None


def require_dlib_model(name: str, purpose: str = "this option") -> Path:
    """Like :func:`dlib_model_path`, but a missing file is a one-line :class:`DlibUnavailable`."""
    path = dlib_model_path(name)
    if path is None:
        raise DlibUnavailable(f"{purpose} needs dlib and its model file {name}: {INSTALL_HINT}")
    return path
