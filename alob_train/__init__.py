"""The ALOB model and its training (``alob-train``); evaluation is in :mod:`alob_eval`.

Public API::

    from alob_train import ALOB, build_backbone, VARIANTS, BACKBONES
    from alob_train.config import TrainConfig, resolve_config   # settings, presets
    from alob_train.engine import train
    from alob_train.checkpoint import load_model     # a trained model from a run folder
"""

from alob_train.backbones import BACKBONES, build_backbone
from alob_train.model import ALOB, VARIANTS

__version__ = "0.1.0"

__all__ = ["ALOB", "BACKBONES", "VARIANTS", "build_backbone"]
