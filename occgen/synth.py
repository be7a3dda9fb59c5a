"""``occlude(image, rng, ...) -> (image, mask, info)``: put one occluder on one face crop.

Size modes
    * ``factor`` (FROM-exact): the occluder is resized to ``int(factor × native size)``, capped at
      (W - 1, H - 1); its centre (cx, cy) is drawn uniformly over the image and the rectangle spans
      ``[c - n // 2, c + (n + 1) // 2)`` on each axis, so it may hang off the edge.
    * ``scale_set``: as ``factor``, with the factor drawn per image from a set such as
      {1, 1.5, …, 5} (FROM's training recipe "1:0.5:5").
    * ``ratio``: a target coverage t is drawn per image (mean ``ratio``, standard deviation
      ``ratio_spread``, a Beta distribution) and the occluder's scale is solved so that its mask
      covers t of the crop, whatever its native pixel size; the dataset's mean coverage is ``ratio``.

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

import cv2
import numpy as np

from alob_common.geometry import crop_template
from occgen.library import Occluder, OccluderLibrary, default_library

FROM_TRAINING_SCALE_SET = "1:0.5:5"  # FROM's training recipe: a factor drawn per image from 1, 1.5, ..., 5


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

    @property
    def mode(self) -> str:
        return "factor" if self.factor is not None else "scale_set" if self.scale_set is not None else "ratio"

    @property
    def uses_from_mask(self) -> bool:
        return self.from_mask and self.mode != "ratio" and self.blend == "rect"


def parse_scale_set(text: str) -> tuple[float, ...]:
    """``"1:0.5:5"`` (start:step:stop, inclusive) or ``"1,2,3"`` → a tuple of factors."""
    text = text.strip()
    try:
        if ":" in text:
            start, step, stop = (float(v) for v in text.split(":"))
            if step <= 0 or stop < start:
                raise ValueError
            count = int(np.floor((stop - start) / step + 1e-9)) + 1
            return tuple(round(start + k * step, 10) for k in range(count))
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"bad scale set {text!r}: use start:step:stop such as 1:0.5:5, or 1,2,3") from None


def parse_clean_ratio(text: str) -> float:
    """``"1:2"`` (clean:occluded, non-negative numbers) → the fraction of samples kept clean."""
    try:
        clean, occluded = (float(v) for v in text.split(":"))
        if clean < 0 or occluded < 0 or clean + occluded <= 0:
            raise ValueError
    except ValueError:
        raise ValueError(f"bad clean ratio {text!r}: clean:occluded as two non-negative numbers, e.g. 1:2") from None
    return clean / (clean + occluded)


def face_points(height: int, width: int) -> dict[str, tuple[float, float]]:
    """Where the eyes and the nose-mouth region of an aligned crop are, from the 5-point template
    (112×96; 112×112 is the same shifted by 8 px; other sizes are scaled from 112×96)."""
    pts = crop_template(height, width)
    eyes = pts[:2].mean(axis=0)
    mouth = (pts[2] + pts[3:].mean(axis=0)) / 2
    return {"eyes": (float(eyes[0]), float(eyes[1])), "mouth": (float(mouth[0]), float(mouth[1]))}


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


def _resize(array: np.ndarray, w: int, h: int) -> np.ndarray:
    shrink = w * h < array.shape[0] * array.shape[1]
    return cv2.resize(array, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def paste(image: np.ndarray, occ: Occluder, x0: int, y0: int, w: int, h: int, blend: str) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``occ`` resized to w×h with its top-left at (x0, y0); returns (image, true mask)."""
    H, W = image.shape[:2]
    out = image.copy()
    mask = np.zeros((H, W), np.uint8)
    ix0, iy0, ix1, iy1 = max(x0, 0), max(y0, 0), min(W, x0 + w), min(H, y0 + h)
    if ix1 <= ix0 or iy1 <= iy0:
        return out, mask
    sy, sx = slice(iy0 - y0, iy1 - y0), slice(ix0 - x0, ix1 - x0)
    if blend == "rect":
        out[iy0:iy1, ix0:ix1] = _resize(occ.flat, w, h)[sy, sx]
        mask[iy0:iy1, ix0:ix1] = 255
        return out, mask
    prem, alpha = occ.premultiplied
    a = np.clip(_resize(alpha, w, h)[sy, sx], 0.0, 1.0)
    p = _resize(prem, w, h)[sy, sx]
    region = out[iy0:iy1, ix0:ix1].astype(np.float32)
    blended = p + region * (1.0 - a[..., None])
    out[iy0:iy1, ix0:ix1] = np.clip(blended + 0.5, 0, 255).astype(np.uint8)
    mask[iy0:iy1, ix0:ix1] = np.where(a > 0.5, 255, 0).astype(np.uint8)
    return out, mask


def _centre(rng: np.random.Generator, occ: Occluder, W: int, H: int, cfg: OcclusionConfig, w: float, h: float) -> tuple[int, int]:
    """Integer centre of the occluder's rectangle for its size w×h."""
    if cfg.placement == "semantic" and occ.hint in ("eyes", "mouth"):
        fx, fy = face_points(H, W)[occ.hint]
        dx, dy = rng.normal(0.0, cfg.jitter, 2) * (W, H)
        cx = fx + dx + (0.5 - occ.anchor[0]) * w
        cy = fy + dy + (0.5 - occ.anchor[1]) * h
        return int(np.clip(round(cx), 0, W - 1)), int(np.clip(round(cy), 0, H - 1))
    return int(rng.integers(0, W)), int(rng.integers(0, H))


def _draw_target(rng: np.random.Generator, mean: float, sd: float) -> float:
    if sd <= 0:
        return mean
    total = mean * (1 - mean) / sd**2 - 1
    return float(rng.beta(mean * total, (1 - mean) * total))


def _sat(integral: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """The summed-area table at fractional (u, v): bilinear, exact for a pixel-constant mask."""
    u0, v0 = np.floor(u).astype(int), np.floor(v).astype(int)
    u1, v1 = np.minimum(u0 + 1, integral.shape[1] - 1), np.minimum(v0 + 1, integral.shape[0] - 1)
    fu, fv = u - u0, v - v0
    top = integral[v0, u0] * (1 - fu) + integral[v0, u1] * fu
    bottom = integral[v1, u0] * (1 - fu) + integral[v1, u1] * fu
    return top * (1 - fv) + bottom * fv


def _coverage_curve(occ: Occluder, W: int, H: int, cx, cy, scales: np.ndarray, rect: bool = False) -> np.ndarray:
    """Predicted mask coverage (fraction of W·H) of ``occ`` centred at (cx, cy) for each scale,
    from the summed-area table of its native mask (O(1) per scale; arrays broadcast)."""
    ow, oh = occ.size
    integral = occ.rect_integral if rect else occ.mask_integral
    x0, y0 = cx - scales * ow / 2, cy - scales * oh / 2
    u0, u1 = np.clip(-x0 / scales, 0, ow), np.clip((W - x0) / scales, 0, ow)
    v0, v1 = np.clip(-y0 / scales, 0, oh), np.clip((H - y0) / scales, 0, oh)
    corners = _sat(integral, np.stack(np.broadcast_arrays(u1, u1, u0, u0)), np.stack(np.broadcast_arrays(v1, v0, v1, v0)))
    return (corners[0] - corners[1] - corners[2] + corners[3]) * scales**2 / (W * H)


_GRIDS: dict = {}


def _scale_grid(occ: Occluder, W: int, H: int, max_extent: float) -> np.ndarray:
    """48 geometric scales from a 2-pixel occluder up to ``max_extent`` × the crop (cached)."""
    ow, oh = occ.size
    key = (ow, oh, W, H, max_extent)
    if key not in _GRIDS:
        _GRIDS[key] = np.geomspace(2.0 / max(ow, oh), max_extent * min(W / ow, H / oh), 48)
    return _GRIDS[key]


def _solve_scale(scales: np.ndarray, curve: np.ndarray, target: float) -> float | None:
    """The smallest scale whose predicted coverage reaches ``target`` (None if none does)."""
    above = np.nonzero(curve >= target)[0]
    if above.size == 0:
        return None
    k = int(above[0])
    if k == 0:
        return float(scales[0])
    c0, c1 = curve[k - 1], curve[k]
    t = (target - c0) / (c1 - c0) if c1 > c0 else 1.0
    return float(scales[k - 1] * (scales[k] / scales[k - 1]) ** t)


CENTRE_TRIES = 6


def _centres(rng: np.random.Generator, occ: Occluder, W: int, H: int, cfg: OcclusionConfig, w: float, h: float, n: int):
    """``n`` candidate centres at once (arrays), drawn as :func:`_centre` draws one."""
    if cfg.placement == "semantic" and occ.hint in ("eyes", "mouth"):
        fx, fy = face_points(H, W)[occ.hint]
        d = rng.normal(0.0, cfg.jitter, (n, 2)) * (W, H)
        cx = np.clip(np.rint(fx + d[:, 0] + (0.5 - occ.anchor[0]) * w), 0, W - 1)
        cy = np.clip(np.rint(fy + d[:, 1] + (0.5 - occ.anchor[1]) * h), 0, H - 1)
        return cx.astype(int), cy.astype(int)
    return rng.integers(0, W, n), rng.integers(0, H, n)


def _place_for_target(rng, occ, W, H, cfg, target):
    """Draw CENTRE_TRIES candidate centres; return the first (cx, cy, scale, True) that reaches
    ``target``, else (cx, cy, scale, False) with the largest coverage any candidate can reach."""
    scales = _scale_grid(occ, W, H, cfg.max_extent)
    ow, oh = occ.size
    guess = np.sqrt(target * W * H / max(occ.mask_integral[-1, -1], 1.0))
    cxs, cys = _centres(rng, occ, W, H, cfg, ow * guess, oh * guess, CENTRE_TRIES)
    curves = _coverage_curve(occ, W, H, cxs[:, None], cys[:, None], scales, cfg.blend == "rect")
    reaching = np.nonzero(curves.max(axis=1) >= target)[0]
    if reaching.size:
        k = int(reaching[0])
        return int(cxs[k]), int(cys[k]), _solve_scale(scales, curves[k], target), True
    k, j = np.unravel_index(int(np.argmax(curves)), curves.shape)
    return int(cxs[k]), int(cys[k]), float(scales[j]), False


def _geometry(rng, occ, W, H, cfg, target) -> tuple[int, int, float, bool]:
    """Centre and scale of ``occ`` aiming at coverage ``target`` (the best reachable if none),
    and whether the target is predicted reachable."""
    cx, cy, scale, reachable = _place_for_target(rng, occ, W, H, cfg, target)
    if cfg.placement == "semantic" and occ.hint != "anywhere":  # the anchor offset depends on the size
        ow, oh = occ.size
        cx, cy = _centre(rng, occ, W, H, cfg, ow * scale, oh * scale)
        scales = _scale_grid(occ, W, H, cfg.max_extent)
        curve = _coverage_curve(occ, W, H, cx, cy, scales, cfg.blend == "rect")
        solved = _solve_scale(scales, curve, target)
        reachable = solved is not None
        scale = solved if reachable else float(scales[int(np.argmax(curve))])
    return cx, cy, scale, reachable


def _render_to_target(image, occ, cx, cy, scale, target, cfg, reachable=True):
    """Paste at the predicted scale, then, when the target is reachable, correct the scale from
    the rendered mask (resampling and rounding make the prediction a little off); never beyond
    the largest allowed scale."""
    H, W = image.shape[:2]
    ow, oh = occ.size
    top = float(_scale_grid(occ, W, H, cfg.max_extent)[-1])
    for _ in range(3):
        w, h = max(1, round(scale * ow)), max(1, round(scale * oh))
        x0, y0 = cx - w // 2, cy - h // 2
        out, mask = paste(image, occ, x0, y0, w, h, cfg.blend)
        covered = float(np.count_nonzero(mask)) / (W * H)
        if not reachable or abs(covered - target) < 0.01 or covered <= 0 or (covered < target and scale >= top):
            break
        scale = min(top, scale * float(np.clip(np.sqrt(target / covered), 0.8, 1.25)))
    return out, mask, covered, (x0, y0, w, h, scale)


_CALIBRATION: dict = {}


def calibrated_mean(library: OccluderLibrary, cfg: OcclusionConfig, W: int, H: int) -> float:
    """The mean of the per-image targets that makes the *achieved* mean coverage equal
    ``cfg.ratio``: thin shapes (eyeglass frames) cannot reach high targets within
    ``max_extent``, so the others aim a little higher. Computed once per (library, config,
    size) by rendering the largest reachable coverage of 32 draws per occluder with a fixed
    internal seed, so it never depends on the data, the order or the worker."""
    key = (library.fingerprint, cfg, W, H)
    if key in _CALIBRATION:
        return _CALIBRATION[key]
    from scipy.stats import beta as beta_dist

    rng = np.random.default_rng(12345)
    per = 32  # draws per occluder: stratified, so the estimate's noise is that of the centres only
    blank = np.zeros((H, W, 3), np.uint8)
    groups = library.by_category
    occs = [o for group in groups.values() for o in group]
    share = [1.0 / len(occs) if cfg.pick == "file" else 1.0 / (len(groups) * len(groups[o.category])) for o in occs]
    weights = np.repeat(share, per) / per
    predicted, rendered = np.empty(len(weights)), np.empty(len(weights))  # best reachable: foreseen, drawn
    for i, occ in enumerate(np.repeat(np.array(occs, dtype=object), per)):
        cx, cy, scale, _ = _geometry(rng, occ, W, H, cfg, 2.0)
        scales = _scale_grid(occ, W, H, cfg.max_extent)
        predicted[i] = _coverage_curve(occ, W, H, cx, cy, scales, cfg.blend == "rect").max()
        rendered[i] = _render_to_target(blank, occ, cx, cy, scale, 2.0, cfg, reachable=False)[2]
    quantiles = (np.arange(per) + 0.5) / per  # the same stratified targets for every occluder

    def achieved(mean: float) -> float:
        if cfg.ratio_spread <= 0:
            targets = np.full(per, mean)
        else:
            total = mean * (1 - mean) / cfg.ratio_spread**2 - 1
            targets = beta_dist.ppf(quantiles, mean * total, (1 - mean) * total)
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
    cx, cy, scale, reachable = _geometry(rng, occ, W, H, cfg, target)
    out, mask, covered, (x0, y0, w, h, scale) = _render_to_target(image, occ, cx, cy, scale, target, cfg, reachable)
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
    FROM's training recipe (``scale_set`` 1:0.5:5, alpha blending, random placement).
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
    cx, cy = _centre(rng, occ, W, H, cfg, new_w, new_h)
    new_w, new_h, x0, y0, box = from_rectangle(W, H, ow, oh, factor, cx, cy)
    out, mask = paste(image, occ, x0, y0, new_w, new_h, cfg.blend)
    if cfg.uses_from_mask:
        mask = np.zeros((H, W), np.uint8)
        mx0, my0, mx1, my1 = box
        mask[my0:my1, mx0:mx1] = 255
    ratio = float(np.count_nonzero(mask)) / (W * H)
    return out, mask, _info(occ, factor, ratio, x0, y0, new_w, new_h, cfg)
