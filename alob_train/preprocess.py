"""Constants shared by training and evaluation: pixel normalisation and input sizes.

Pixels are mapped from [0, 255] to [-1, 1] as ``(x / 255 - 0.5) / 0.5``, the same for training and
testing as in the paper; every model input in the project goes through :func:`normalize`.
"""

from __future__ import annotations

import torch

MEAN = (0.5, 0.5, 0.5)
STD = (0.5, 0.5, 0.5)


def normalize(images: torch.Tensor) -> torch.Tensor:
    """uint8 (or 0..255 float) images (..., 3, H, W) -> float32 in [-1, 1]."""
    return images.float().div(127.5).sub(1.0)


def parse_input_size(text: str | tuple[int, int]) -> tuple[int, int]:
    """``"112x96"`` -> ``(112, 96)``; any ``HxW`` with both sides at least 32 is accepted."""
    if not isinstance(text, str):
        h, w = text
    else:
        try:
            h, w = (int(v) for v in text.lower().split("x"))
        except ValueError:
            raise ValueError(f"input size must look like 112x96, got {text!r}") from None
    if h < 32 or w < 32:
        raise ValueError(f"input size {h}x{w} is too small (at least 32x32)")
    return int(h), int(w)
