"""The colour-jitter steps of :class:`alob_train.augment.BatchJitter` on numpy uint8 batches
(N, 3, H, W), for the CPU: the same float32 operations as torchvision's, in its order, so the
pixels are the same; numpy's comparisons, selections and conversions cost a fraction of torch's
on arrays of this size. The blends' ``add_(…, alpha=)`` stays a torch call (on views of the
same memory): torch computes it as a fused multiply-add, which numpy cannot round alike."""

from __future__ import annotations

import numpy as np
import torch

BRIGHTNESS, CONTRAST, SATURATION, HUE = range(4)
TO_UINT8 = 255 + 1.0 - 1e-3  # torchvision's float -> uint8 scale
# which of (v, p, q, t) is R, G and B in each of the six hue sectors (torchvision's table)
HSV_TO_RGB = ((0, 2, 1, 1, 3, 0), (3, 0, 0, 2, 1, 1), (1, 1, 3, 0, 0, 2))
_SCALE = np.float32(TO_UINT8)
_TINY = np.float32(1e-30)
_ONE = np.float32(1)


def _column(values: list[float]) -> np.ndarray:
    return np.asarray(values, np.float32).reshape(-1, 1, 1, 1)


def _to_uint8(x: np.ndarray, bound: float) -> np.ndarray:
    """Clamp to [0, bound] and truncate to uint8, as ``clamp_(0, bound).to(uint8)``."""
    return np.clip(x, 0, bound, out=x).astype(np.uint8)


def _blend(images: np.ndarray, other: np.ndarray, ratios: list[float]) -> np.ndarray:
    """torchvision's ``_blend``: ``image·r`` then ``add_(other, alpha=1 − r)``, clamp, uint8."""
    out = images.astype(np.float32)
    out *= _column(ratios)
    for i, ratio in enumerate(ratios):
        torch.from_numpy(out[i]).add_(torch.from_numpy(other[i]), alpha=(1.0 - ratio))
    return _to_uint8(out, 255)


def _gray(images: np.ndarray) -> np.ndarray:
    """torchvision's float grayscale (``r·0.2989``, then ``add_`` of g and b with their weights),
    floored, (N, 1, H, W)."""
    r, g, b = (torch.from_numpy(images[:, c].astype(np.float32)) for c in range(3))
    return r.mul_(0.2989).add_(g, alpha=0.587).add_(b, alpha=0.114).floor_().unsqueeze(1).numpy()


def brightness(images: np.ndarray, factors: list[float]) -> np.ndarray:
    """``adjust_brightness`` per sample."""
    out = images.astype(np.float32)
    out *= _column(factors)
    return _to_uint8(out, 255)


def contrast(images: np.ndarray, factors: list[float]) -> np.ndarray:
    """``adjust_contrast`` per sample: blend with the mean of the floored grayscale (torch's
    mean, per sample, so it sums in the same order)."""
    gray = _gray(images)
    means = [torch.mean(torch.from_numpy(gray[i]), dim=(-3, -2, -1), keepdim=True).numpy() for i in range(len(gray))]
    return _blend(images, means, factors)


def saturation(images: np.ndarray, factors: list[float]) -> np.ndarray:
    """``adjust_saturation`` per sample: blend with the floored grayscale."""
    return _blend(images, _gray(images), factors)


def _hsv(images: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """torchvision's ``_rgb_to_hsv`` (h, s, v). Its ``where(max == min, 1, d)`` denominators are
    ``maximum(d, tiny)`` here (d is 0 or at least 1/255, and a 0 numerator gives 0 either way),
    its ``fmod(x, 1)`` is ``x - floor(x)`` (x > 0: the same float)."""
    x = images.astype(np.float32)
    x *= np.float32(1.0 / 255)
    r, g, b = x[:, 0], x[:, 1], x[:, 2]
    maxc, minc = np.maximum(np.maximum(r, g), b), np.minimum(np.minimum(r, g), b)
    channels_range = maxc - minc
    s = channels_range / np.maximum(maxc, _TINY)
    divisor = np.maximum(channels_range, _TINY)
    rc, gc, bc = (maxc - r) / divisor, (maxc - g) / divisor, (maxc - b) / divisor
    not_r, is_g = maxc != r, maxc == g
    h = (bc - gc) * ~not_r
    h += ((rc + np.float32(2)) - bc) * (is_g & not_r)
    h += ((gc + np.float32(4)) - rc) * (not_r & ~is_g)
    h *= np.float32(1.0 / 6.0)
    h += _ONE
    h -= np.floor(h)
    return h, s, maxc


def hue(images: np.ndarray, factors: list[float]) -> np.ndarray:
    """``adjust_hue`` per sample: RGB -> HSV, hue shifted (``remainder(x, 1)`` as ``x -
    floor(x)``, x > -1), HSV -> RGB with torchvision's sector table applied as sums of masked
    uint8 planes (exactly one term is non-zero)."""
    h, s, v = _hsv(images)
    h += np.asarray(factors, np.float32).reshape(-1, 1, 1)
    h -= np.floor(h)
    h *= np.float32(6)
    sector = np.floor(h)
    h -= sector  # f
    sector = sector.astype(np.int8)
    sector[sector == 6] = 0
    h *= s  # s·f
    one_minus_s = _ONE - s
    planes = [(v * _SCALE).astype(np.uint8)]
    for c in (one_minus_s * v, (_ONE - h) * v, (h + one_minus_s) * v):
        np.clip(c, 0, 1, out=c)
        c *= _SCALE
        planes.append(c.astype(np.uint8))
    out = np.empty(images.shape, np.uint8)
    for channel, table in enumerate(HSV_TO_RGB):
        out[:, channel] = planes[1]
        for plane in (0, 2, 3):
            mask = np.zeros(sector.shape, bool)
            for k in (k for k in range(6) if table[k] == plane):
                mask |= sector == k
            out[:, channel] += (planes[plane] - planes[1]) * mask
    return out


NUMPY_STEPS = {BRIGHTNESS: brightness, CONTRAST: contrast, SATURATION: saturation, HUE: hue}
