"""The one preprocessing of model inputs, for training and evaluation alike.

:func:`fit_to_input` brings an image to the model's input size — a 112×112 crop fed to a 112×96
model is cut to columns 8..104 (the two templates differ by that shift), a 112×96 crop fed to a
square model is padded back to 112×112 with black columns (the same shift the other way, so the
face keeps its proportions and place), then any other size is resized — and :func:`normalize` maps pixels from [0, 255] to [-1, 1] as ``(x / 255 - 0.5) / 0.5``,
as the paper does for training and testing. The trainer, ``alob-eval`` and ``alob-eval cam``
all call these two functions, so a model sees the same pixels when it is trained and tested.
"""

from __future__ import annotations

import torch
from torchvision.transforms import v2

from alob_common.geometry import COLUMNS_112x96_IN_112x112, normalize_size

MEAN = (0.5, 0.5, 0.5)
STD = (0.5, 0.5, 0.5)


def normalize(images: torch.Tensor) -> torch.Tensor:
    """uint8 (or 0..255 float) images (..., 3, H, W) -> float32 in [-1, 1]."""
    return images.float().div(127.5).sub(1.0)


def fit_to_input(images: torch.Tensor, size: tuple[int, int], nearest: bool = False) -> torch.Tensor:
    """uint8 images or masks (..., H, W) at the input ``size`` (H, W): unchanged when they have
    it; a 112×112 → 112×96 column cut; a 112×96 crop padded to 112×112 (zeros) for a square
    input; then resized when still another size (bilinear with antialiasing, or ``nearest`` for
    masks)."""
    h, w = images.shape[-2:]
    size = (int(size[0]), int(size[1]))
    if (h, w) == size:
        return images
    if (h, w) == (112, 112) and size == (112, 96):
        return images[..., :, COLUMNS_112x96_IN_112x112]
    if (h, w) == (112, 96) and size[0] == size[1]:
        pad = (COLUMNS_112x96_IN_112x112.start, 112 - COLUMNS_112x96_IN_112x112.stop)
        images = torch.nn.functional.pad(images, pad)
        if size == (112, 112):
            return images
    mode = v2.InterpolationMode.NEAREST if nearest else v2.InterpolationMode.BILINEAR
    return v2.functional.resize(images, list(size), interpolation=mode, antialias=not nearest)


def parse_input_size(text: str | tuple[int, int]) -> tuple[int, int]:
    """``"112x96"`` (or ``"112×96"``) -> ``(112, 96)``; any ``HxW`` with both sides at least 32 is accepted."""
    if not isinstance(text, str):
        h, w = text
    else:
        try:
            h, w = (int(v) for v in normalize_size(text).split("x"))
        except ValueError:
            raise ValueError(f"input size must look like 112x96, got {text!r}") from None
    if h < 32 or w < 32:
        raise ValueError(f"input size {h}x{w} is too small (at least 32x32)")
    return int(h), int(w)
