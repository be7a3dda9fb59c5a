"""The three building blocks of ALOB: gradient reversal, feature projection purification, CosFace."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class _GradReverse(torch.autograd.Function):
    """Identity in the forward pass, gradient times ``-coeff`` in the backward pass."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, coeff: float) -> torch.Tensor:
        ctx.coeff = coeff
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad.neg() * ctx.coeff, None


def grad_reverse(x: torch.Tensor, coeff: float = 1.0) -> torch.Tensor:
    """Gradient reversal (Ganin & Lempitsky 2015): ``x`` forward, ``-coeff * grad`` backward."""
    return _GradReverse.apply(x, float(coeff))


class GradientReversal(nn.Module):
    """Module form of :func:`grad_reverse`; the engine sets ``coeff`` as training goes (ramp)."""

    def __init__(self, coeff: float = 1.0) -> None:
        super().__init__()
        self.coeff = float(coeff)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return grad_reverse(x, self.coeff)

    def extra_repr(self) -> str:
        return f"coeff={self.coeff}"


def dann_ramp(progress: float) -> float:
    """DANN's schedule 2 / (1 + exp(-10 p)) - 1 for training progress p in [0, 1]: 0 -> 1."""
    p = min(max(float(progress), 0.0), 1.0)
    return 2.0 / (1.0 + math.exp(-10.0 * p)) - 1.0


def project_out(f: torch.Tensor, fm: torch.Tensor, detach: bool = False, eps: float = 1e-6) -> torch.Tensor:
    """Feature projection purification: ``f - (f·u) u`` with ``u = fm / |fm|``, row by row.

    Equal to ``f - (f·fm / |fm|²) fm``; the norm is clamped at ``eps`` so that ``fm = 0`` gives
    ``f`` back with finite gradients. Computed in float32 (also under autocast) so that the
    result is orthogonal to ``fm`` to float32 precision. ``detach`` stops the gradient into ``fm``.
    """
    dtype = f.dtype
    f32, fm32 = f.float(), fm.float()
    if detach:
        fm32 = fm32.detach()
    with torch.autocast(device_type=f.device.type, enabled=False):
        u = fm32 / fm32.norm(dim=1, keepdim=True).clamp_min(eps)
        out = f32 - (f32 * u).sum(dim=1, keepdim=True) * u
    return out.to(dtype)


class CosFace(nn.Module):
    """Large-margin cosine classifier (Wang et al. 2018): logits ``s (cos θ_j - m [j = y])``.

    ``forward(x, labels)`` returns the margin logits for the loss (``labels=None``: plain
    ``s cos θ``). :meth:`cosine` gives the cosines alone (used for training accuracy).
    """

    def __init__(self, in_features: int, num_classes: int, s: float = 30.0, m: float = 0.4) -> None:
        super().__init__()
        self.s, self.m = float(s), float(m)
        self.weight = nn.Parameter(torch.empty(num_classes, in_features))
        nn.init.normal_(self.weight, std=0.01)

    def cosine(self, x: torch.Tensor) -> torch.Tensor:
        """Cosine of every row of ``x`` with every class weight, in float32."""
        with torch.autocast(device_type=x.device.type, enabled=False):
            return F.linear(F.normalize(x.float(), dim=1), F.normalize(self.weight.float(), dim=1))

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        cos = self.cosine(x)
        if labels is None:
            return self.s * cos
        margin = torch.zeros_like(cos).scatter_(1, labels.view(-1, 1), self.m)
        return self.s * (cos - margin)

    def extra_repr(self) -> str:
        n, d = self.weight.shape
        return f"in_features={d}, num_classes={n}, s={self.s}, m={self.m}"
