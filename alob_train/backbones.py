"""Backbones: a convolutional trunk plus the embedding head, image (3×H×W) -> 512-d embedding.

- ``resnet18``: ResNet-18 as He et al. define it (torchvision's: 7×7/2 stem, max-pool, [2,2,2,2]
  basic blocks); final map 4×3 at 112×96. The paper's backbone.
- ``iresnet18`` / ``iresnet50``: the face-recognition variant (3×3 stride-1 stem with PReLU,
  "improved residual" blocks BN-conv-BN-PReLU-conv-BN, stride 2 in the first block of each of the
  four stages); final map 7×6 at 112×96, about 4× the compute of ``resnet18``.
- ``lightcnn9``: LightCNN-9 (Wu et al. 2018) built from max-feature-map units; final map 7×6.
- ``facenet``: Inception-ResNet-v1 as ``facenet_pytorch`` builds it (FaceNet; the architecture of
  the pretrained ``facenet-vggface2`` initialisation, :mod:`alob_train.pretrained`), with its own
  head: global average pool -> dropout -> Linear(1792, dim) -> BN1d. Its trunk starts by rescaling
  the [-1, 1] pixels to FaceNet's (x − 127.5) / 128, so it computes what the pretrained model does.

Every other trunk ends in the same head, sized from the input size:
BN2d -> dropout -> flatten -> Linear(C·h·w, dim) -> BN1d.

A trunk is an ``nn.Sequential`` whose children are its stages; ``--freeze-until`` names one of
them (:func:`stage_names`).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable

import torch
import torchvision
from torch import nn


class EmbeddingHead(nn.Module):
    """BN2d -> dropout -> flatten -> Linear -> BN1d: a feature map to an embedding."""

    def __init__(self, channels: int, height: int, width: int, dim: int = 512, dropout: float = 0.0) -> None:
        super().__init__()
        self.bn2d = nn.BatchNorm2d(channels)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(channels * height * width, dim)
        self.bn1d = nn.BatchNorm1d(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn1d(self.fc(torch.flatten(self.dropout(self.bn2d(x)), 1)))


class FaceNetHead(nn.Module):
    """Inception-ResNet-v1's head: global average pool -> dropout -> Linear(C, dim) -> BN1d."""

    def __init__(self, channels: int, dim: int = 512, dropout: float = 0.0) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.last_linear = nn.Linear(channels, dim, bias=False)
        self.last_bn = nn.BatchNorm1d(dim, eps=1e-3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.last_bn(self.last_linear(self.dropout(torch.flatten(self.pool(x), 1))))


class Backbone(nn.Module):
    """A trunk and its head (:class:`EmbeddingHead` unless another is given); ``out_dim`` is the
    embedding size."""

    def __init__(self, trunk: nn.Module, feature_shape: tuple[int, int, int], dim: int, dropout: float,
                 head: nn.Module | None = None) -> None:
        super().__init__()
        self.trunk = trunk
        self.feature_shape = feature_shape
        self.head = head if head is not None else EmbeddingHead(*feature_shape, dim=dim, dropout=dropout)
        self.out_dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk(x))


def _he_resnet18() -> nn.Module:
    net = torchvision.models.resnet18(weights=None)
    return nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, net.layer1, net.layer2, net.layer3, net.layer4)


class IRBlock(nn.Module):
    """Improved residual block: BN-conv3×3-BN-PReLU-conv3×3(stride)-BN plus a projected shortcut."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.BatchNorm2d(cin),
            nn.Conv2d(cin, cout, 3, 1, 1, bias=False),
            nn.BatchNorm2d(cout),
            nn.PReLU(cout),
            nn.Conv2d(cout, cout, 3, stride, 1, bias=False),
            nn.BatchNorm2d(cout),
        )
        self.shortcut = (
            nn.Identity()
            if stride == 1 and cin == cout
            else nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.shortcut(x)


def _iresnet(layers: tuple[int, int, int, int]) -> nn.Module:
    widths = (64, 128, 256, 512)
    modules: list[nn.Module] = [nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.PReLU(64)]
    cin = 64
    for width, blocks in zip(widths, layers):
        for i in range(blocks):
            modules.append(IRBlock(cin, width, 2 if i == 0 else 1))
            cin = width
    return nn.Sequential(*modules)


class MFM(nn.Module):
    """Max-feature-map: a conv with 2·out channels, halves compared element-wise, max kept."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, padding: int = 0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, 2 * cout, kernel, stride, padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.conv(x).chunk(2, dim=1)
        return torch.maximum(a, b)


def _lightcnn9() -> nn.Module:
    def group(cin: int, cout: int) -> list[nn.Module]:
        return [MFM(cin, cin, 1), MFM(cin, cout, 3, 1, 1)]

    def pool() -> nn.Module:
        return nn.MaxPool2d(2, 2, ceil_mode=True)

    return nn.Sequential(
        MFM(3, 48, 5, 1, 2), pool(),
        *group(48, 96), pool(),
        *group(96, 192), pool(),
        *group(192, 128), *group(128, 128), pool(),
    )


class InputScale(nn.Module):
    """Multiplies the input by a constant (no parameters): [-1, 1] pixels to another standardisation."""

    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.factor


FACENET_STAGES = ("conv2d_1a", "conv2d_2a", "conv2d_2b", "maxpool_3a", "conv2d_3b", "conv2d_4a", "conv2d_4b",
                  "repeat_1", "mixed_6a", "repeat_2", "mixed_7a", "repeat_3", "block8")


def _facenet() -> nn.Module:
    try:
        from facenet_pytorch import InceptionResnetV1
    except ImportError as err:
        raise ImportError(f"the facenet backbone needs facenet-pytorch ({err}): "
                          "pip install --no-deps facenet-pytorch==2.6.0") from None
    net = InceptionResnetV1(pretrained=None)
    stages = [("input_scale", InputScale(127.5 / 128.0))] + [(name, getattr(net, name)) for name in FACENET_STAGES]
    return nn.Sequential(OrderedDict(stages))


BACKBONES: dict[str, Callable[[], nn.Module]] = {
    "resnet18": _he_resnet18,
    "iresnet18": lambda: _iresnet((2, 2, 2, 2)),
    "iresnet50": lambda: _iresnet((3, 4, 14, 3)),
    "lightcnn9": _lightcnn9,
    "facenet": _facenet,
}
# Backbones with a head of their own (channels of the trunk's output, dim, dropout) -> head.
HEADS: dict[str, Callable[[int, int, float], nn.Module]] = {
    "facenet": lambda channels, dim, dropout: FaceNetHead(channels, dim, dropout),
}


# The input size (H, W) a backbone is run at when a run does not choose one; the others take the
# data's image size. FaceNet: 112×112 (a 112×96 crop padded), measured against 160×160 in
# docs/RESULTS.md ("Fine-tuning FaceNet").
DEFAULT_INPUT_SIZES: dict[str, tuple[int, int]] = {"facenet": (112, 112)}


def stage_names(name: str) -> list[str]:
    """The names of a backbone's trunk stages, in order (what ``--freeze-until`` accepts)."""
    with torch.device("meta"):
        return [child for child, _ in BACKBONES[name]().named_children()]


def feature_shape(name: str, input_size: tuple[int, int]) -> tuple[int, int, int]:
    """(C, h, w) of a trunk's output for a 3×H×W input, found on the meta device (no compute)."""
    with torch.device("meta"):
        out = BACKBONES[name]()(torch.empty(1, 3, *input_size))
    return tuple(out.shape[1:])  # type: ignore[return-value]


def build_backbone(name: str, input_size: tuple[int, int] = (112, 96), dim: int = 512, dropout: float = 0.0) -> Backbone:
    """Build backbone ``name`` (one of :data:`BACKBONES`) for ``input_size`` = (H, W)."""
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}: choose one of {', '.join(BACKBONES)}")
    shape = feature_shape(name, input_size)
    head = HEADS[name](shape[0], dim, dropout) if name in HEADS else None
    return Backbone(BACKBONES[name](), shape, dim, dropout, head)
