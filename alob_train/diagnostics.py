"""Numbers that show whether ALOB's mechanism works, computed on a training batch.

* ``trimmer_cos_wy``: mean cos(fᵐ, W_y) between the Trimmer's feature and its head's weight of
  the sample's class. The reversed gradient pushes the Trimmer away from identity, so this should
  fall towards 0 (or below); large positive values mean fᵐ carries identity and the projection
  will strip identity from f.
* ``removed_fraction``: mean |f·û| / |f| with û = fᵐ / |fᵐ|, the share of the Identifier's
  feature that the projection removes (for ``alob-f``, |fᵐ| / |f|: the subtraction's size).
* ``fm_norm`` and ``fm_var``: mean norm of fᵐ and its per-dimension variance over the batch,
  averaged over dimensions; a variance near 0 means the Trimmer has collapsed to a constant.
* ``acc_identifier`` / ``acc_trimmer``: training accuracy (argmax of the cosines, no margin) of
  the head scoring the embedding and of the head scoring fᵐ.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def accuracy(cos: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of rows whose largest cosine is the label's."""
    return float((cos.argmax(dim=1) == labels).float().mean())


@torch.no_grad()
def feature_diagnostics(f: torch.Tensor, fm: torch.Tensor, subtract: bool = False) -> dict[str, float]:
    """``removed_fraction``, ``fm_norm`` and ``fm_var`` of the module docstring for a set of images
    (float32, no gradient); they need no labels, so they also describe a test set's images.

    ``f`` and ``fm`` are the two backbones' features (N, D), ``subtract`` True for ``alob-f``."""
    f, fm = f.float(), fm.float()
    f_norm = f.norm(dim=1).clamp_min(1e-12)
    fm_norm = fm.norm(dim=1)
    if subtract:
        removed = fm_norm / f_norm
    else:
        u = fm / fm_norm.clamp_min(1e-6).unsqueeze(1)
        removed = (f * u).sum(dim=1).abs() / f_norm
    return {
        "removed_fraction": float(removed.mean()),
        "fm_norm": float(fm_norm.mean()),
        "fm_var": float(fm.var(dim=0, unbiased=False).mean()) if len(fm) > 1 else 0.0,
    }


@torch.no_grad()
def nearest_class_cosine(x: torch.Tensor, weight: torch.Tensor) -> float:
    """Mean over rows of the largest cos(x, W_c) over a head's classes: how much a feature of an
    image whose identity the head never saw still points at some identity's weight."""
    cos = F.normalize(x.float(), dim=1, eps=1e-12) @ F.normalize(weight.float(), dim=1, eps=1e-12).T
    return float(cos.max(dim=1).values.mean())


@torch.no_grad()
def mechanism_diagnostics(f: torch.Tensor, fm: torch.Tensor, trimmer_weight: torch.Tensor,
                          labels: torch.Tensor, subtract: bool = False) -> dict[str, float]:
    """The Trimmer-side figures of the module docstring for one training batch (float32, no gradient).

    ``f`` and ``fm`` are the two backbones' features (N, D), ``trimmer_weight`` the class weights
    of the head that scores fᵐ (C, D), ``subtract`` True for ``alob-f`` (e = f − fᵐ)."""
    w_y = trimmer_weight.float()[labels]
    return {
        "trimmer_cos_wy": float(F.cosine_similarity(fm.float(), w_y, dim=1, eps=1e-12).mean()),
        **feature_diagnostics(f, fm, subtract),
    }
