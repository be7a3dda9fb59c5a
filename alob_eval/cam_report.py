"""``alob-eval cam``: where a model's Trimmer looks on an occgen set, in a picture and in numbers.

Every occluded image of an occgen folder dataset (``manifest.csv`` rows with ``occluded`` true,
``status`` ok, a saved mask) gets a Grad-CAM and a Grad-CAM++ of the network's embedding, scored
against its true occlusion mask (:class:`alob_eval.cam_maps.MaskOverlap`). Two trivial maps are
scored the same way as a reference for chance: a centred Gaussian and uniform noise (seeded).
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from alob_common.atomic import write_bytes_atomic, write_text_atomic
from alob_common.errors import UserError
from alob_common.images import read_rgb
from alob_train.preprocess import fit_to_input, normalize
from alob_eval.cam_maps import METHODS, MaskOverlap, cam_maps, centre_prior, random_maps

BASELINES = ("centre-prior", "random")
MAPS = METHODS + BASELINES


class CamDataError(UserError, ValueError):
    """The folder is not an occgen folder dataset with occlusion masks."""


@dataclass
class OccludedSet:
    """The scorable occluded rows of an occgen folder dataset and what was left out, by reason."""

    root: Path
    rows: pd.DataFrame
    counts: dict[str, int] = field(default_factory=dict)
    clean_by_source: dict[str, str] = field(default_factory=dict)


def read_occluded_set(root: str | Path) -> OccludedSet:
    """Read ``root/manifest.csv``; keep occluded rows whose status is ok and whose image and
    mask files exist, and count the rest (``failed``, ``no_mask``, ``missing_image``)."""
    root = Path(root)
    manifest = root / "manifest.csv"
    if not manifest.is_file():
        raise CamDataError(f"{root}: no manifest.csv (expected an occgen folder dataset)")
    table = pd.read_csv(manifest, dtype={"path": str, "mask_path": str, "source": str, "category": str},
                        keep_default_na=False)
    for column in ("path", "mask_path", "occluded"):
        if column not in table.columns:
            raise CamDataError(f"{manifest}: column {column!r} missing (expected occgen's manifest)")
    occluded = table.occluded.astype(str).str.lower().isin(["true", "1"])
    status = table["status"].astype(str) if "status" in table.columns else pd.Series("ok", index=table.index)
    rows = table[occluded]
    failed = rows[status[occluded] != "ok"]
    rows = rows[status[occluded] == "ok"]
    has_mask = (rows.mask_path != "") & rows.mask_path.map(lambda p: bool(p) and (root / p).is_file())
    no_mask = rows[~has_mask]
    rows = rows[has_mask]
    has_image = rows.path.map(lambda p: (root / p).is_file())
    counts = {"manifest_rows": len(table), "occluded_rows": int(occluded.sum()), "failed": len(failed),
              "no_mask": len(no_mask), "missing_image": int((~has_image).sum())}
    rows = rows[has_image].reset_index(drop=True)
    counts["usable"] = len(rows)
    clean = table[~occluded & (status == "ok") & (table.path != "")]
    clean_by_source = dict(zip(clean["source"], clean["path"])) if "source" in table.columns else {}
    return OccludedSet(root, rows, counts, clean_by_source)


def _read_image(path: Path, size: tuple[int, int]) -> np.ndarray:
    """The image as training and evaluation read it (``read_rgb``, then ``fit_to_input``)."""
    try:
        image = read_rgb(path)
    except OSError as err:
        raise CamDataError(f"cannot decode image {path}: {err}") from None
    return fit_to_input(torch.from_numpy(image).permute(2, 0, 1), size).permute(1, 2, 0).numpy()


def _read_mask(path: Path, size: tuple[int, int]) -> np.ndarray:
    """The mask cut or resized (nearest) exactly as its image."""
    import cv2

    mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if mask is None:
        raise CamDataError(f"cannot decode mask {path}")
    return fit_to_input(torch.from_numpy(mask), size, nearest=True).numpy() > 127


def to_input(images: Sequence[np.ndarray]) -> torch.Tensor:
    """uint8 RGB images (H, W, 3) -> a normalised float batch (N, 3, H, W) in [-1, 1]."""
    return normalize(torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous())


def _load_batch(root: Path, rows: pd.DataFrame, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    images = np.stack([_read_image(root / p, size) for p in rows.path])
    masks = np.stack([_read_mask(root / p, size) for p in rows.mask_path])
    return images, masks


def score_set(network: torch.nn.Module, layer: torch.nn.Module, data: OccludedSet, input_size: tuple[int, int],
              batch_size: int = 32, seed: int = 0, progress: bool = True) -> dict:
    """Score every row of ``data`` for the two CAM methods and the two trivial maps.

    Returns ``{"overall": {map: summary}, "per_category": {category: {map: summary}}}``. Images
    are decoded in a background thread while the network runs.
    """
    from tqdm import tqdm

    rng = np.random.default_rng(seed)
    categories = data.rows["category"].replace("", "unknown").tolist() if "category" in data.rows else ["unknown"] * len(data.rows)
    overall = {name: MaskOverlap() for name in MAPS}
    per_category = {c: {name: MaskOverlap() for name in MAPS} for c in sorted(set(categories))}
    starts = list(range(0, len(data.rows), batch_size))
    with ThreadPoolExecutor(max_workers=1) as pool, \
            tqdm(total=len(data.rows), unit="img", desc="CAM", disable=not progress) as bar:
        pending = pool.submit(_load_batch, data.root, data.rows.iloc[0:batch_size], input_size) if starts else None
        for k, start in enumerate(starts):
            images, masks = pending.result()
            if k + 1 < len(starts):
                nxt = starts[k + 1]
                pending = pool.submit(_load_batch, data.root, data.rows.iloc[nxt : nxt + batch_size], input_size)
            x = to_input(images)
            n, h, w = masks.shape
            maps = {method: cam_maps(network, layer, x, method) for method in METHODS}
            maps["centre-prior"] = centre_prior(n, h, w)
            maps["random"] = random_maps(rng, n, h, w)
            batch_categories = np.array(categories[start : start + n])
            for name, cams in maps.items():
                overall[name].update(cams, masks)
                for category in np.unique(batch_categories):
                    pick = batch_categories == category
                    per_category[category][name].update(cams[pick], masks[pick])
            bar.update(n)
    return {"overall": {name: acc.summary() for name, acc in overall.items()},
            "per_category": {c: {name: acc.summary() for name, acc in accs.items()} for c, accs in per_category.items()}}


def pick_grid_rows(data: OccludedSet, count: int, seed: int = 0) -> pd.DataFrame:
    """Up to ``count`` rows with a clean copy, one per occluder category in turn, drawn with ``seed``."""
    rows = data.rows[data.rows["source"].isin(data.clean_by_source)] if "source" in data.rows else data.rows.iloc[:0]
    if rows.empty:
        rows = data.rows
    rng = np.random.default_rng(seed)
    order = rows.iloc[rng.permutation(len(rows))]
    by_category = order.groupby(order.get("category", pd.Series("", index=order.index)), sort=True)
    picked, queues = [], [list(group.index) for _, group in by_category]
    while len(picked) < min(count, len(rows)):
        for queue in queues:
            if queue and len(picked) < count:
                picked.append(queue.pop(0))
    return rows.loc[picked]


def grid_figure(network: torch.nn.Module, layer: torch.nn.Module, data: OccludedSet, rows: pd.DataFrame,
                input_size: tuple[int, int], title: str) -> bytes:
    """The PNG bytes of the picture: one row per image; columns clean image, its Grad-CAM and
    Grad-CAM++, occluded image, true mask, the occluded image's Grad-CAM and Grad-CAM++."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    occluded, masks = _load_batch(data.root, rows, input_size)
    clean_paths = [data.clean_by_source.get(s) for s in rows.get("source", [None] * len(rows))]
    clean = np.stack([_read_image(data.root / p, input_size) if p else np.zeros_like(o)
                      for p, o in zip(clean_paths, occluded)])
    occ_maps = {m: cam_maps(network, layer, to_input(occluded), m) for m in METHODS}
    clean_maps = {m: cam_maps(network, layer, to_input(clean), m) for m in METHODS}
    columns = ["clean", "clean\nGrad-CAM", "clean\nGrad-CAM++", "occluded", "true mask",
               "occluded\nGrad-CAM", "occluded\nGrad-CAM++"]
    fig, axes = plt.subplots(len(rows), len(columns), figsize=(1.15 * len(columns), 1.45 * len(rows) + 0.5),
                             dpi=90, squeeze=False)
    for i in range(len(rows)):
        panels = [(clean[i], None, False), (clean[i], clean_maps["gradcam"][i], False),
                  (clean[i], clean_maps["gradcam++"][i], False), (occluded[i], None, False),
                  (occluded[i], None, True), (occluded[i], occ_maps["gradcam"][i], True),
                  (occluded[i], occ_maps["gradcam++"][i], True)]
        for j, (image, cam, outline) in enumerate(panels):
            ax = axes[i][j]
            ax.imshow(image if clean_paths[i] or j >= 3 else np.full_like(image, 255))
            if cam is not None:
                ax.imshow(cam, cmap="jet", alpha=0.5, vmin=0, vmax=1)
            if j == 4:
                ax.imshow(np.ma.masked_where(~masks[i], masks[i]), cmap="autumn", alpha=0.45)
            if outline and masks[i].any() and not masks[i].all():
                ax.contour(masks[i], levels=[0.5], colors="white", linewidths=0.8)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(columns[j], fontsize=7)
        category = rows.iloc[i].get("category", "") or ""
        axes[i][0].set_ylabel(category, fontsize=7)
    fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    from PIL import Image

    buffer.seek(0)
    with Image.open(buffer) as rendered:  # a 256-colour palette keeps the picture small (~1/3)
        small = rendered.convert("RGB").quantize(256)
    packed = io.BytesIO()
    small.save(packed, format="png", optimize=True)
    return packed.getvalue()


LABELS = {"gradcam": "Grad-CAM", "gradcam++": "Grad-CAM++", "centre-prior": "centre Gaussian (baseline)",
          "random": "uniform noise (baseline)"}


def _pct(value: float) -> str:
    return "–" if math.isnan(value) else f"{100 * value:.1f}"


def _num(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:.3f}"


def cam_markdown(report: dict) -> str:
    """cam.md: the overall table, the per-category table and how to read them."""
    meta, counts, overall = report["meta"], report["counts"], report["results"]["overall"]
    lines = [f"# Trimmer attention vs true occlusion masks: {meta['model']}", "",
             (f"Set `{meta['data']}`: {counts['scored']} occluded images scored "
             f"({counts['occluded_rows']} occluded rows in the manifest; left out: {counts['failed']} failed, "
             f"{counts['no_mask']} without mask, {counts['missing_image']} missing image, "
             f"{counts['not_sampled']} outside --limit, {counts['unscorable']} with an empty or full mask). "
             f"CAM layer: {meta['layer']}."), "",
             "| map | images | pointing game (%) | AUC, mean per image | AUC, pooled pixels | flat maps |",
             "|---|---|---|---|---|---|"]
    for name in MAPS:
        r = overall[name]
        lines.append(f"| {LABELS[name]} | {r['images']} | {_pct(r['pointing_game'])} | {_num(r['auc_mean'])} | "
                     f"{_num(r['auc_pooled'])} | {r['flat']} |")
    fraction = next(iter(overall.values()))["mask_fraction"]
    lines += ["", (f"The masks cover {_pct(fraction)} % of the pixels: a map that ignores the occluder hits it in the "
              "pointing game about that often and has AUC 0.5."), "",
              "Per occluder category (pointing game % / mean AUC):", "",
              "| category | images | " + " | ".join(LABELS[n] for n in MAPS) + " |",
              "|---|---|" + "---|" * len(MAPS)]
    for category, maps in report["results"]["per_category"].items():
        cells = [f"{_pct(maps[n]['pointing_game'])} / {_num(maps[n]['auc_mean'])}" for n in MAPS]
        lines.append(f"| {category} | {maps['gradcam']['images']} | " + " | ".join(cells) + " |")
    lines += ["", ("Reading: the pointing game is the fraction of images whose CAM peak lies on the occluder (ties "
              "share the hit); AUC is the probability that a random occluded pixel gets a higher CAM value than a "
              "random clean one (per image, then averaged; and over all pixels of all images pooled). "
              "CAM target: the squared norm of the network's embedding. "
              f"{meta['seconds']} s."), ""]
    return "\n".join(lines)


def _no_nan(value):
    """NaN (a figure with nothing to score) as JSON null."""
    if isinstance(value, dict):
        return {k: _no_nan(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_no_nan(v) for v in value]
    return None if isinstance(value, float) and math.isnan(value) else value


def write_cam_report(out: str | Path, report: dict, grid_png: bytes) -> None:
    """Write ``cam.json``, ``cam.md`` and ``cam_grid.png`` into ``out``, each atomically."""
    out = Path(out)
    write_bytes_atomic(out / "cam_grid.png", grid_png)
    write_text_atomic(out / "cam.json", json.dumps(_no_nan(report), indent=2, allow_nan=False))
    write_text_atomic(out / "cam.md", cam_markdown(report))
