"""Flip and colour jitter for a whole batch, each sample with its own parameters.

The training augmentation is defined by torchvision's ``v2.RandomHorizontalFlip()`` followed by
``v2.ColorJitter(brightness, contrast, saturation, hue)`` on a uint8 image, run with the global
torch generator seeded by the sample's own seed (``SampleTransform.__call__``, the reference
path). Applied one sample at a time that costs a few milliseconds per 112×96 face, most of it in
the hue step (an int64 gather over stacked float planes, and torch's comparisons, slow on small
tensors).

:class:`BatchJitter` gives the same pixels for a batch at once: :meth:`BatchJitter.params` draws
a sample's flip, operation order and factors from a ``torch.Generator`` seeded as the reference
seeds the global generator (the same draws in the same order), and :meth:`BatchJitter.apply`
runs each step on every sample that has it at that position, with the reference's float32
operations in the reference's order (per-sample factors broadcast as float32 tensors; the
blends' ``add_(…, alpha=)`` kept per sample, since its fused multiply-add rounds differently from
a separate multiply). On the CPU the steps are numpy's (:mod:`alob_train.augment_np`), on another
device torch's, their hue step selecting uint8 planes rather than float ones. Equality with the reference, bit for bit, is tested in ``tests/test_train_pipeline.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torchvision.transforms import v2

from alob_train.augment_np import BRIGHTNESS, CONTRAST, HSV_TO_RGB, HUE, NUMPY_STEPS, SATURATION, TO_UINT8

CPU_CHUNK = 16  # samples jittered together on the CPU


@dataclass(frozen=True)
class JitterParams:
    """One sample's augmentation: flip or not, the order of the four colour steps, their factors
    (None where that step is off)."""

    flip: bool
    order: tuple[int, ...]
    factors: tuple[float | None, float | None, float | None, float | None]


class BatchJitter:
    """Random horizontal flip (p = 0.5) and colour jitter with the ranges of
    ``v2.ColorJitter(*jitter)``, per sample, on a uint8 batch (N, 3, H, W)."""

    def __init__(self, jitter: tuple[float, float, float, float]) -> None:
        reference = v2.ColorJitter(*jitter)
        self.ranges = (reference.brightness, reference.contrast, reference.saturation, reference.hue)

    def params(self, seed: int) -> JitterParams:
        """The draws the reference makes after ``torch.manual_seed(seed)``: flip (``rand(1) <
        0.5``), ``randperm(4)``, then a uniform factor per enabled step."""
        gen = torch.Generator().manual_seed(seed)
        flip = bool(torch.rand(1, generator=gen) < 0.5)
        order = tuple(int(i) for i in torch.randperm(4, generator=gen))
        factors = tuple(None if r is None else float(torch.empty(1).uniform_(r[0], r[1], generator=gen).item())
                        for r in self.ranges)
        return JitterParams(flip, order, factors)  # type: ignore[arg-type]

    def apply(self, images: torch.Tensor, params: list[JitterParams]) -> torch.Tensor:
        """The batch with every sample flipped and jittered by its own parameters (a new tensor).
        On the CPU the steps run on numpy arrays (:mod:`alob_train.augment_np`), a few samples
        at a time (small arrays stay in cache); elsewhere as torch operations on the device."""
        if images.device.type != "cpu":
            return self._apply(images.clone(), params, _STEPS)
        out = images.numpy().copy()
        for start in range(0, len(out), CPU_CHUNK):
            part = slice(start, start + CPU_CHUNK)
            out[part] = self._apply(out[part], params[part], NUMPY_STEPS)
        return torch.from_numpy(out)

    @staticmethod
    def _apply(out, params: list[JitterParams], steps: dict):
        """Flip, then each of the four positions of the samples' orders: the samples whose step
        there is s get step s together (in place where possible; ``out`` is returned)."""
        flips = [i for i, p in enumerate(params) if p.flip]
        if flips:
            out[flips] = out[flips][..., ::-1] if isinstance(out, np.ndarray) else out[flips].flip(-1)
        for position in range(4):
            for step in range(4):
                rows = [i for i, p in enumerate(params) if p.order[position] == step and p.factors[step] is not None]
                if rows:
                    out[rows] = steps[step](out[rows], [params[i].factors[step] for i in rows])
        return out


def _column(values: list[float], like: torch.Tensor) -> torch.Tensor:
    """Per-sample factors as float32, shaped to broadcast over (N, C, H, W)."""
    return torch.tensor(values, dtype=torch.float32, device=like.device).view(-1, 1, 1, 1)


def _blend(images: torch.Tensor, other: torch.Tensor, ratios: list[float]) -> torch.Tensor:
    """torchvision's ``_blend`` per sample: ``image·r + other·(1 − r)``, clamped, back to uint8."""
    out = images.mul(_column(ratios, images))
    for i, ratio in enumerate(ratios):
        out[i].add_(other[i], alpha=(1.0 - ratio))
    return out.clamp_(0, 255).to(torch.uint8)


def _gray(images: torch.Tensor) -> torch.Tensor:
    """torchvision's float grayscale of uint8 RGB, floored, (N, 1, H, W)."""
    r, g, b = images.unbind(dim=-3)
    return r.mul(0.2989).add_(g, alpha=0.587).add_(b, alpha=0.114).unsqueeze(dim=-3).floor_()


def brightness(images: torch.Tensor, factors: list[float]) -> torch.Tensor:
    """``adjust_brightness`` per sample."""
    return images.mul(_column(factors, images)).clamp_(0, 255).to(torch.uint8)


def contrast(images: torch.Tensor, factors: list[float]) -> torch.Tensor:
    """``adjust_contrast`` per sample: blend with the mean of the floored grayscale."""
    gray = _gray(images)
    means = [torch.mean(gray[i], dim=(-3, -2, -1), keepdim=True) for i in range(len(factors))]
    return _blend(images, means, factors)


def saturation(images: torch.Tensor, factors: list[float]) -> torch.Tensor:
    """``adjust_saturation`` per sample: blend with the floored grayscale."""
    return _blend(images, _gray(images), factors)


def hue(images: torch.Tensor, factors: list[float]) -> torch.Tensor:
    """``adjust_hue`` per sample: torchvision's RGB -> HSV -> RGB in float32, step by step (its
    gather replaced by selections of the same values)."""
    image = images.to(torch.float32).mul_(1.0 / 255)
    r, g, b = image.unbind(dim=-3)
    maxc, minc = torch.maximum(torch.maximum(r, g), b), torch.minimum(torch.minimum(r, g), b)
    eqc = maxc == minc
    channels_range = maxc - minc
    ones = torch.ones_like(maxc)
    s = channels_range / torch.where(eqc, ones, maxc)
    divisor = torch.where(eqc, ones, channels_range)
    rc, gc, bc = (maxc - r) / divisor, (maxc - g) / divisor, (maxc - b) / divisor
    neq_r, eq_g = maxc != r, maxc == g
    hg = rc.add(2.0).sub_(bc).mul_(eq_g & neq_r)
    hr = bc.sub_(gc).mul_(~neq_r)
    hb = gc.add_(4.0).sub_(rc).mul_(neq_r.logical_and_(eq_g.logical_not_()))
    h = hr.add_(hg).add_(hb).mul_(1.0 / 6.0).add_(1.0).fmod_(1.0)
    h.add_(_column(factors, h).view(-1, 1, 1)).remainder_(1.0)
    h6 = h.mul(6)
    sector = torch.floor(h6)
    f = h6.sub_(sector)
    sector = sector.to(torch.int32).remainder_(6)
    sxf = s * f
    one_minus_s = 1.0 - s
    planes = [x.mul(TO_UINT8).to(torch.uint8) for x in (
        maxc, one_minus_s.mul(maxc).clamp_(0.0, 1.0), (1.0 - sxf).mul_(maxc).clamp_(0.0, 1.0),
        sxf.add_(one_minus_s).mul_(maxc).clamp_(0.0, 1.0))]
    channels = []
    for table in HSV_TO_RGB:
        pick = torch.tensor(table, dtype=torch.int64, device=images.device)[sector.long()]
        channels.append(torch.stack(planes).gather(0, pick.unsqueeze(0)).squeeze(0))
    return torch.stack(channels, dim=-3)

_STEPS = {BRIGHTNESS: brightness, CONTRAST: contrast, SATURATION: saturation, HUE: hue}
