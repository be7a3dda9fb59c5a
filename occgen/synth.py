"""``occlude(image, rng, ...) -> (image, mask, info)``: put one occluder on one face crop.

Size modes
    * ``factor`` (FROM-exact): the occluder is resized to ``int(factor × native size)``, capped at
      (W - 1, H - 1); its centre (cx, cy) is drawn uniformly over the image and the rectangle spans
      ``[c - n // 2, c + (n + 1) // 2)`` on each axis, so it may hang off the edge.
    * ``scale_set``: as ``factor``, with the factor drawn per image from a set such as
      {1, 1.5, …, 5} (FROM's training recipe, written ``1..5/0.5``).
    * ``ratio``: a target coverage t is drawn per image (mean ``ratio``, standard deviation
      ``ratio_spread``, a Beta distribution) and the occluder's scale is solved so that its mask
      covers t of the crop, whatever its native pixel size; the dataset's mean coverage is ``ratio``.
      Two solvers (``ratio_solver``): ``curve`` (default) reads the size from the occluder's
      coverage table, built once per crop size (:mod:`occgen.ratio_curve`), and pastes once;
      ``search`` is the original per-image search (:mod:`occgen.ratio_search`), kept because it
      reproduces builds made before the tables byte for byte.

Blending
    * ``rect`` pastes the whole rectangle, as FROM does: the occluder as an opaque picture
      (flattened on a light grey backdrop by its alpha; an RGB occluder as it is).
    * ``alpha`` composites with the occluder's alpha (premultiplied, so no fringes); the mask is
      where the resized alpha exceeds 0.5.

FROM's mask quirk: FROM clips the mask rectangle to ``W - 1`` and ``H - 1`` (not ``W``, ``H``),
so an occluder reaching the right or bottom edge changes the last column or row of pixels but
that column or row is not in FROM's mask, and FROM's ratio is the clipped rectangle's area over
H·W. With ``from_mask=True`` (the default for factor modes with rect blending) the mask and ratio
reproduce this exactly; otherwise the mask is exactly the pixels the occluder covers.

Placement: ``random`` (FROM: centre uniform over the image) or ``semantic`` (eyewear centred on
the eyes, mouth masks and scarves on nose and mouth, other occluders random), using the 5-point
template of aligned crops.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from alob_common.vocabulary import parse_list
from occgen.library import Occluder, OccluderLibrary, default_library
from occgen.placement import centre, face_points, paste
from occgen.ratio_curve import curve_best, curve_occlude
from occgen.ratio_search import search_best, search_occlude

__all__ = ["FROM_TRAINING_SCALE_SET", "RATIO_SOLVERS", "OcclusionConfig", "calibrated_mean", "face_points",
           "from_rectangle", "is_old_scale_set", "modern_scale_set", "occlude", "parse_clean_ratio",
           "parse_scale_set", "paste"]

FROM_TRAINING_SCALE_SET = "1..5/0.5"  # FROM's training recipe: a factor drawn per image from 1, 1.5, ..., 5
RATIO_SOLVERS = ("curve", "search")  # ratio mode: precomputed coverage tables (default), the original search


@dataclass(frozen=True)
class OcclusionConfig:
    """How to occlude: exactly one size mode (``factor``, ``scale_set`` or ``ratio``), blending,
    placement and the category subset."""

    factor: float | None = None
    scale_set: tuple[float, ...] | None = None
    ratio: float | None = None
    ratio_spread: float = 0.08
    blend: str = "alpha"
    placement: str = "random"
    from_mask: bool = True
    max_extent: float = 2.0
    jitter: float = 0.04
    categories: tuple[str, ...] | None = None
    pick: str = "category"  # "category": balanced over categories; "file": uniform over files (FROM)
    target_mean: float | None = None  # ratio mode: the calibrated mean of the targets (computed if None)
    ratio_solver: str = "curve"  # ratio mode: "curve" (occgen.ratio_curve) or "search" (occgen.ratio_search)

    def __post_init__(self) -> None:
        modes = [m for m in (self.factor, self.scale_set, self.ratio) if m is not None]
        if len(modes) != 1:
            raise ValueError("give exactly one of factor, scale_set, ratio")
        if self.factor is not None and self.factor <= 0:
            raise ValueError("factor must be > 0")
        if self.scale_set is not None and (not self.scale_set or min(self.scale_set) <= 0):
            raise ValueError("scale_set must hold positive factors")
        if self.ratio is not None and not 0 < self.ratio < 1:
            raise ValueError("ratio must lie in (0, 1)")
        if not 0 <= self.ratio_spread < 0.3:
            raise ValueError("ratio_spread must lie in [0, 0.3)")
        if self.blend not in ("rect", "alpha"):
            raise ValueError("blend must be rect or alpha")
        if self.placement not in ("random", "semantic"):
            raise ValueError("placement must be random or semantic")
        if self.pick not in ("category", "file"):
            raise ValueError("pick must be category or file")
        if self.ratio_solver not in RATIO_SOLVERS:
            raise ValueError(f"ratio_solver must be one of {', '.join(RATIO_SOLVERS)}")

    @property
    def mode(self) -> str:
        return "factor" if self.factor is not None else "scale_set" if self.scale_set is not None else "ratio"

    @property
    def uses_from_mask(self) -> bool:
        return self.from_mask and self.mode != "ratio" and self.blend == "rect"


def parse_scale_set(text: str) -> tuple[float, ...]:
    """A scale set in the one list syntax (``"1..5/0.5"``: 1 to 5 in steps of 0.5, both ends
    included; ``"2,3"``; ``"1..2/0.5,4"``) → a tuple of factors. The deprecated MATLAB-order
    ``"1:0.5:5"`` (start:step:stop) is still read."""
    text = text.strip()
    try:
        if is_old_scale_set(text):
            start, step, stop = (float(v) for v in text.split(":"))
            if step <= 0 or stop < start:
                raise ValueError
            count = int(np.floor((stop - start) / step + 1e-9)) + 1
            return tuple(round(start + k * step, 10) for k in range(count))
        return tuple(float(v) for v in parse_list(text, float))
    except ValueError:
        raise ValueError(f"bad scale set {text!r}: use FIRST..LAST/STEP such as 1..5/0.5 (1 to 5 in steps of "
                         "0.5, both ends included), or a list such as 2,3") from None


def is_old_scale_set(text: str) -> bool:
    """Whether a scale set is written the deprecated way, ``START:STEP:STOP``."""
    return ":" in text


def modern_scale_set(text: str) -> str:
    """``"1:0.5:5"`` (START:STEP:STOP) → ``"1..5/0.5"``, the same set in the current syntax."""
    start, step, stop = (v.strip() for v in text.split(":"))
    return f"{start}..{stop}/{step}"


def parse_clean_ratio(text: str) -> float:
    """``"1:2"`` (clean:occluded, non-negative numbers) → the fraction of samples kept clean."""
    try:
        clean, occluded = (float(v) for v in text.split(":"))
        if clean < 0 or occluded < 0 or clean + occluded <= 0:
            raise ValueError
    except ValueError:
        raise ValueError(f"bad clean ratio {text!r}: clean:occluded as two non-negative numbers, e.g. 1:2") from None
    return clean / (clean + occluded)


def from_rectangle(width: int, height: int, occ_w: int, occ_h: int, factor: float, cx: int, cy: int):
    """FROM's geometry: the pasted size, its top-left corner, and FROM's clipped mask box.

    Returns ``(new_w, new_h, x0, y0, (mx0, my0, mx1, my1))``; the mask box is what FROM sets to
    one (clipped at W - 1 / H - 1), and FROM's ratio is its area over W·H.
    """
    new_w, new_h = min(width - 1, int(factor * occ_w)), min(height - 1, int(factor * occ_h))
    new_w, new_h = max(new_w, 1), max(new_h, 1)
    x0, y0 = cx - new_w // 2, cy - new_h // 2
    x1, y1 = cx + (new_w + 1) // 2, cy + (new_h + 1) // 2
    box = (max(x0, 0), max(y0, 0), min(width - 1, x1), min(height - 1, y1))
    return new_w, new_h, x0, y0, box


def _draw_target(rng: np.random.Generator, mean: float, sd: float) -> float:
    if sd <= 0:
        return mean
    total = mean * (1 - mean) / sd**2 - 1
    return float(rng.beta(mean * total, (1 - mean) * total))


_CALIBRATION: dict = {}


def calibrated_mean(library: OccluderLibrary, cfg: OcclusionConfig, W: int, H: int) -> float:
    """The mean of the per-image targets that makes the *achieved* mean coverage equal
    ``cfg.ratio``: thin shapes (eyeglass frames) cannot reach high targets within
    ``max_extent``, so the others aim a little higher. Computed once per (library, config,
    size) from the largest reachable coverage of 32 draws per occluder with a fixed internal
    seed (rendered with the search solver, exact from the tables with the curve solver), so it
    never depends on the data, the order or the worker."""
    key = (library.fingerprint, cfg, W, H)
    if key in _CALIBRATION:
        return _CALIBRATION[key]
    from scipy.special import betaincinv  # the Beta quantiles (scipy.stats.beta.ppf's values, a tenth of its import)

    rng = np.random.default_rng(12345)
    per = 32  # draws per occluder: stratified, so the estimate's noise is that of the centres only
    blank = np.zeros((H, W, 3), np.uint8)
    groups = library.by_category
    occs = [o for group in groups.values() for o in group]
    share = [1.0 / len(occs) if cfg.pick == "file" else 1.0 / (len(groups) * len(groups[o.category])) for o in occs]
    weights = np.repeat(share, per) / per
    predicted, rendered = np.empty(len(weights)), np.empty(len(weights))  # best reachable: foreseen, drawn
    for i, occ in enumerate(np.repeat(np.array(occs, dtype=object), per)):
        if cfg.ratio_solver == "search":
            predicted[i], rendered[i] = search_best(rng, occ, W, H, cfg, blank)
        else:
            predicted[i] = rendered[i] = curve_best(rng, occ, W, H, cfg)
    quantiles = (np.arange(per) + 0.5) / per  # the same stratified targets for every occluder

    def achieved(mean: float) -> float:
        if cfg.ratio_spread <= 0:
            targets = np.full(per, mean)
        else:
            total = mean * (1 - mean) / cfg.ratio_spread**2 - 1
            targets = betaincinv(mean * total, (1 - mean) * total, quantiles)
        targets = np.tile(targets, len(occs))
        return float((np.where(targets <= predicted, targets, rendered) * weights).sum())

    lo, hi = cfg.ratio, min(0.95, cfg.ratio + 0.3)
    for _ in range(30):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if achieved(mid) < cfg.ratio else (lo, mid)
    _CALIBRATION[key] = (lo + hi) / 2
    return _CALIBRATION[key]


def _ratio_mode(image, rng, library, cfg) -> tuple[np.ndarray, np.ndarray, dict]:
    H, W = image.shape[:2]
    mean = cfg.target_mean if cfg.target_mean is not None else calibrated_mean(library, cfg, W, H)
    target = _draw_target(rng, mean, cfg.ratio_spread)
    occ = library.pick(rng, cfg.pick)
    solve = search_occlude if cfg.ratio_solver == "search" else curve_occlude
    out, mask, covered, (x0, y0, w, h, scale) = solve(image, rng, occ, cfg, target)
    info = _info(occ, scale, covered, x0, y0, w, h, cfg)
    info["target"] = round(target, 5)
    return out, mask, info


def _info(occ: Occluder, scale: float, ratio: float, x0: int, y0: int, w: int, h: int, cfg: OcclusionConfig) -> dict:
    return {
        "kind": "occluder", "category": occ.category, "asset": occ.name, "scale": round(float(scale), 5),
        "ratio": round(float(ratio), 6), "x": int(x0), "y": int(y0), "w": int(w), "h": int(h),
        "blend": cfg.blend, "placement": cfg.placement, "mode": cfg.mode,
    }


def occlude(
    image: np.ndarray,
    rng: np.random.Generator,
    library: OccluderLibrary | None = None,
    config: OcclusionConfig | None = None,
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Occlude one RGB uint8 crop (H, W, 3) with one occluder.

    Returns the new image, the mask (uint8, 255 where occluded) and an info dict (category,
    asset, scale, ratio measured from the mask, rectangle x, y, w, h, …). All randomness comes
    from ``rng``, so the same generator state gives the same result. The default config is
    FROM's training recipe (``scale_set`` 1..5/0.5, alpha blending, random placement).
    """
    cfg = config or OcclusionConfig(scale_set=parse_scale_set(FROM_TRAINING_SCALE_SET))
    library = (library or default_library()).subset(cfg.categories)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 image, got {image.shape} {image.dtype}")
    if cfg.mode == "ratio":
        return _ratio_mode(image, rng, library, cfg)
    H, W = image.shape[:2]
    factor = cfg.factor if cfg.factor is not None else float(cfg.scale_set[int(rng.integers(len(cfg.scale_set)))])
    occ = library.pick(rng, cfg.pick)
    ow, oh = occ.size
    new_w, new_h = min(W - 1, int(factor * ow)), min(H - 1, int(factor * oh))
    cx, cy = centre(rng, occ, W, H, cfg.placement, cfg.jitter, new_w, new_h)
    new_w, new_h, x0, y0, box = from_rectangle(W, H, ow, oh, factor, cx, cy)
    out, mask = paste(image, occ, x0, y0, new_w, new_h, cfg.blend)
    if cfg.uses_from_mask:
        mask = np.zeros((H, W), np.uint8)
        mx0, my0, mx1, my1 = box
        mask[my0:my1, mx0:mx1] = 255
    ratio = float(np.count_nonzero(mask)) / (W * H)
    return out, mask, _info(occ, factor, ratio, x0, y0, new_w, new_h, cfg)
