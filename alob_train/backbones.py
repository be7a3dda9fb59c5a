"""Backbones: a convolutional trunk plus the embedding head, image (3×H×W) -> 512-d embedding.

- ``resnet18``: ResNet-18 as He et al. define it (torchvision's: 7×7/2 stem, max-pool, [2,2,2,2]
  basic blocks); final map 4×3 at 112×96. The paper's backbone.
- ``iresnet18`` / ``iresnet50``: the face-recognition variant (3×3 stride-1 stem with PReLU,
  "improved residual" blocks BN-conv-BN-PReLU-conv-BN, stride 2 in the first block of each of the
  four stages); final map 7×6 at 112×96, about 4× the compute of ``resnet18``.
- ``lightcnn9``: LightCNN-9 (Wu et al. 2018) built from max-feature-map units; final map 7×6.

Every trunk ends in the same head, sized from the input size:
BN2d -> dropout -> flatten -> Linear(C·h·w, dim) -> BN1d.
"""

from __future__ import annotations

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


class Backbone(nn.Module):
    """A trunk and its :class:`EmbeddingHead`; ``out_dim`` is the embedding size."""

    def __init__(self, trunk: nn.Module, feature_shape: tuple[int, int, int], dim: int, dropout: float) -> None:
        super().__init__()
        self.trunk = trunk
        self.feature_shape = feature_shape
        self.head = EmbeddingHead(*feature_shape, dim=dim, dropout=dropout)
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


BACKBONES: dict[str, Callable[[], nn.Module]] = {
    "resnet18": _he_resnet18,
    "iresnet18": lambda: _iresnet((2, 2, 2, 2)),
    "iresnet50": lambda: _iresnet((3, 4, 14, 3)),
    "lightcnn9": _lightcnn9,
}


def feature_shape(name: str, input_size: tuple[int, int]) -> tuple[int, int, int]:
    """(C, h, w) of a trunk's output for a 3×H×W input, found on the meta device (no compute)."""
    with torch.device("meta"):
        out = BACKBONES[name]()(torch.empty(1, 3, *input_size))
    return tuple(out.shape[1:])  # type: ignore[return-value]


def build_backbone(name: str, input_size: tuple[int, int] = (112, 96), dim: int = 512, dropout: float = 0.0) -> Backbone:
    """Build backbone ``name`` (one of :data:`BACKBONES`) for ``input_size`` = (H, W)."""
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}: choose one of {', '.join(BACKBONES)}")
    return Backbone(BACKBONES[name](), feature_shape(name, input_size), dim, dropout)
