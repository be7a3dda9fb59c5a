"""Pair-verification metrics: 10-fold accuracy and TAR@FAR, on cosine similarities.

Conventions (stated in every report through :data:`CONVENTIONS`):

* accuracy: the folds are contiguous blocks of the pair list (LFW View 2: 10 × 600). For each
  fold, the threshold that maximises accuracy on the other nine is applied to it; a pair is
  accepted when its score is at least the threshold. Mean ± population std (ddof = 0) over folds.
  A list with a single fold leaves no held-out pairs to choose a threshold on, so it is re-cut
  (:func:`verification_folds`; the rule used is stored with the result as ``fold_rule``).
* TAR@FAR, three conventions:
  - ``roc`` (default): one ROC over all pairs (``sklearn.metrics.roc_curve``); TAR is the highest
    true-accept rate whose false-accept rate does not exceed FAR.
  - ``order``: FROM's rule, an order statistic over all pairs: the threshold is the
    ⌊FAR·N⌋-th highest impostor score (0-based) and genuine pairs scoring above it are accepted.
  - ``fold``: insightface's rule: per fold, the threshold giving FAR on the other nine folds is
    interpolated over a grid of thresholds and applied to the fold; mean ± std over folds.
With 3,000 impostor pairs (LFW) FAR = 1e-3 rests on 3 false accepts; reports say so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
from sklearn.metrics import roc_curve

from alob_common.errors import UserError
from alob_common.pairs import contiguous_folds

# A model, as the protocol sees it: RGB uint8 images (H, W, 3) -> an (N, D) array of embeddings.
Embedder = Callable[[Sequence[np.ndarray]], np.ndarray]

CONVENTIONS = {
    "accuracy": "the pair list's folds (LFW View 2: 10 contiguous folds); per fold, the threshold maximising "
    "accuracy on the other folds is applied; accept when score >= threshold; mean ± std (ddof=0) over folds",
    "roc": "TAR@FAR from one ROC over all pairs (sklearn roc_curve): highest TAR with FAR <= target",
    "order": "TAR@FAR as in FROM: threshold = floor(FAR*N_impostor)-th highest impostor score over all pairs",
    "fold": "TAR@FAR as in insightface: per fold, threshold interpolated to the target FAR on the other folds",
}
TAR_CONVENTIONS = ("roc", "order", "fold")
MAX_FOLDS = 10
FOLDS_AS_GIVEN = "the pair list's own folds"


class VerificationError(UserError):
    """Pairs that cannot be scored by the protocol (one class only, too few pairs)."""


def verification_folds(same: np.ndarray, folds: np.ndarray | None = None) -> tuple[np.ndarray, str]:
    """The folds accuracy is cross-validated over, and the rule that made them.

    Two or more folds given: used as they are. No folds: :data:`MAX_FOLDS` contiguous blocks of
    the list. One fold (a ``pairs.txt`` header ``1 n``): no pair would be held out, so the list
    is re-cut into k folds, fold i holding the i-th of k contiguous blocks of the genuine pairs
    and of the impostor pairs (k = 10, or the size of the smaller class when that is below 10).
    """
    same = np.asarray(same, bool)
    if folds is None:
        folds = contiguous_folds(len(same), MAX_FOLDS)
        return folds, f"{len(np.unique(folds))} contiguous folds of the pair list (it names no folds)"
    folds = np.asarray(folds)
    if len(np.unique(folds)) >= 2:
        return folds, FOLDS_AS_GIVEN
    k = max(2, min(MAX_FOLDS, int(same.sum()), int((~same).sum())))
    recut = np.zeros(len(same), dtype=int)
    for kind in (same, ~same):
        recut[kind] = contiguous_folds(int(kind.sum()), k)
    if len(np.unique(recut)) < 2:
        raise VerificationError(f"{len(same)} pairs are too few to choose a threshold on held-out pairs")
    return recut, (f"the pair list has one fold: re-cut into {k} folds, fold i holding the i-th of {k} contiguous "
                   "blocks of its genuine and of its impostor pairs")


def best_threshold(scores: np.ndarray, same: np.ndarray) -> tuple[float, float]:
    """Threshold maximising accuracy of ``score >= t`` on these pairs, and that accuracy.

    Candidates are the ROC's thresholds (every distinct score); the chosen one is moved to the
    midpoint towards the next lower score, which accepts exactly the same training pairs but
    does not sit on a training score.
    """
    same = np.asarray(same, dtype=bool)
    if len(same) == 0:
        raise ValueError("no pairs to choose a threshold on")
    if same.all():  # one class only: the best a threshold can do is accept all, or reject all
        return float(np.min(scores)), 1.0
    if not same.any():
        return float(np.max(scores)) + 1e-6, 1.0
    positives, negatives = same.sum(), (~same).sum()
    fpr, tpr, thresholds = roc_curve(same, scores, drop_intermediate=False)
    accuracy = (tpr * positives + (1 - fpr) * negatives) / len(same)
    best = int(np.argmax(accuracy))
    threshold = thresholds[best]
    if not np.isfinite(threshold):
        threshold = float(np.max(scores)) + 1e-6
    elif best + 1 < len(thresholds):
        threshold = (threshold + thresholds[best + 1]) / 2
    return float(threshold), float(accuracy[best])


@dataclass
class FoldResult:
    """Per-fold and summary figures of one verification benchmark."""

    accuracies: list[float]
    thresholds: list[float]
    mean: float = field(init=False)
    std: float = field(init=False)

    def __post_init__(self) -> None:
        self.mean = float(np.mean(self.accuracies))
        self.std = float(np.std(self.accuracies))


def fold_accuracy(scores: np.ndarray, same: np.ndarray, folds: np.ndarray) -> FoldResult:
    """k-fold verification accuracy (threshold chosen on the other folds)."""
    scores, same, folds = np.asarray(scores, float), np.asarray(same, bool), np.asarray(folds)
    accuracies, thresholds = [], []
    for k in np.unique(folds):
        test = folds == k
        threshold, _ = best_threshold(scores[~test], same[~test])
        accuracies.append(float(((scores[test] >= threshold) == same[test]).mean()))
        thresholds.append(threshold)
    return FoldResult(accuracies, thresholds)


def tar_at_far(
    scores: np.ndarray,
    same: np.ndarray,
    far: float,
    convention: str = "roc",
    folds: np.ndarray | None = None,
) -> tuple[float, float]:
    """TAR at the given FAR under ``convention``; returns (TAR, std over folds or 0.0)."""
    scores, same = np.asarray(scores, float), np.asarray(same, bool)
    if convention == "roc":
        fpr, tpr, _ = roc_curve(same, scores)
        return float(tpr[fpr <= far].max()), 0.0
    if convention == "order":
        impostors = np.sort(scores[~same])[::-1]
        k = int(np.floor(far * len(impostors)))
        if k >= len(impostors):
            return 1.0, 0.0
        return float((scores[same] > impostors[k]).mean()), 0.0
    if convention == "fold":
        if folds is None:
            folds = contiguous_folds(len(scores))
        tars = []
        for k in np.unique(folds):  # a fold without genuine pairs, or holding every impostor, has no TAR
            test = folds == k
            if (test & same).any() and (~test & ~same).any():
                threshold = _threshold_at_far(scores[~test & ~same], far)
                tars.append(float((scores[test & same] >= threshold).mean()))
        if not tars:
            raise VerificationError("no fold has genuine pairs and impostors outside it: TAR@FAR by fold is undefined")
        return float(np.mean(tars)), float(np.std(tars))
    raise ValueError(f"unknown TAR convention {convention!r}: use one of {', '.join(TAR_CONVENTIONS)}")


def _threshold_at_far(impostor_scores: np.ndarray, far: float, step: float = 1e-3) -> float:
    """insightface-style: FAR on a threshold grid, linearly interpolated to the target FAR;
    when even the lowest grid threshold cannot reach it, the most permissive threshold."""
    grid = np.arange(-1.0, 1.0 + step, step)
    sorted_scores = np.sort(impostor_scores)
    fars = 1.0 - np.searchsorted(sorted_scores, grid, side="left") / len(sorted_scores)
    if fars.max() < far:
        return float(grid[0])
    order = np.argsort(fars, kind="stable")  # FAR falls as the threshold rises
    return float(np.interp(far, fars[order], grid[order]))


def cosine_scores(emb1: np.ndarray, emb2: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of two (N, D) embedding arrays (zero vectors score 0)."""
    a = np.asarray(emb1, np.float64)
    b = np.asarray(emb2, np.float64)
    na = np.linalg.norm(a, axis=1)
    nb = np.linalg.norm(b, axis=1)
    denom = np.where((na > 0) & (nb > 0), na * nb, 1.0)
    return (a * b).sum(axis=1) / denom


def evaluate_pairs(
    scores: np.ndarray,
    same: np.ndarray,
    folds: np.ndarray | None = None,
    fars: tuple[float, ...] = (1e-3, 1e-4),
    convention: str = "roc",
) -> dict:
    """All figures of one benchmark as a plain dict (what results.json stores). Needs genuine
    and impostor pairs and finite scores; one fold is re-cut (:func:`verification_folds`)."""
    scores, same = np.asarray(scores, float), np.asarray(same, bool)
    if not same.any() or same.all():
        raise VerificationError(f"verification needs genuine and impostor pairs: {int(same.sum())} genuine, "
                                f"{int((~same).sum())} impostor")
    if not np.isfinite(scores).all():
        raise VerificationError(f"{int((~np.isfinite(scores)).sum())} pair scores are not finite (NaN or inf)")
    folds, fold_rule = verification_folds(same, folds)
    acc = fold_accuracy(scores, same, folds)
    tar = {}
    for far in fars:
        value, spread = tar_at_far(scores, same, far, convention, folds)
        tar[f"{far:g}"] = {"tar": value, "std": spread, "false_accepts_allowed": int(np.floor(far * (~same).sum()))}
    return {
        "pairs": int(len(scores)),
        "genuine": int(same.sum()),
        "impostor": int((~same).sum()),
        "folds": int(len(np.unique(folds))),
        "fold_rule": fold_rule,
        "accuracy": acc.mean,
        "accuracy_std": acc.std,
        "fold_accuracies": acc.accuracies,
        "fold_thresholds": acc.thresholds,
        "tar_at_far": tar,
        "tar_convention": convention,
    }
