"""occgen on real LFW: a few identities aligned with align-faces, then an LFW-OCC build with the
real pairs.txt (pairs naming images outside the subset are skipped and reported)."""

from __future__ import annotations

import importlib
import json

import cv2
import numpy as np
import pandas as pd
import pytest

from occgen.build import BuildConfig, Job, build
from occgen.synth import OcclusionConfig


@pytest.fixture(scope="module")
def aligned_subset(lfw_dir, lfw_pairs, tmp_path_factory, optional_part):
    optional_part("MTCNN (facenet-pytorch)", ("facenet-pytorch",), lambda: importlib.import_module("facenet_pytorch"))
    from alignment.align_folder import AlignConfig, align_folder

    names = []
    for line in lfw_pairs.read_text().splitlines()[1:301]:
        name = line.split()[0]
        if name not in names and len(list((lfw_dir / name).glob("*.jpg"))) <= 6:
            names.append(name)
        if len(names) == 4:
            break
    src = tmp_path_factory.mktemp("lfw-subset")
    for name in names:
        (src / name).symlink_to(lfw_dir / name, target_is_directory=True)
    out = tmp_path_factory.mktemp("lfw-aligned")
    align_folder(src, out, AlignConfig(), workers=0, progress=False)
    return out


@pytest.mark.parametrize("factor, documented", [(3.0, 0.5204), (2.0, 0.4389)])
def test_lfw_occ_build_on_real_faces(aligned_subset, lfw_pairs, tmp_path, factor, documented):
    """LFW-OCC-3.0 and -2.0 on real aligned faces: every occluder FROM's size, each ratio the
    mask's, and the set's mean coverage the manifest's, within three standard errors of the figure
    docs/BENCHMARKS.md measured on all of LFW (std 15 points)."""
    config = BuildConfig("lfw", OcclusionConfig(factor=factor, blend="rect"), seed=0, pairs=str(lfw_pairs))
    summary = build(Job(aligned_subset, tmp_path / "occ", config), progress=False)
    aligned = pd.read_csv(aligned_subset / "manifest.csv", dtype=str, keep_default_na=False)
    n = int((aligned["path"] != "").sum())
    assert summary["counts"]["occluded"] == n and summary["counts"]["clean"] == n
    pairs = pd.read_csv(tmp_path / "occ" / "pairs.csv")
    info = summary["pairs"]
    assert info["read"] == 6000 and info["written"] == len(pairs) > 0
    assert info["written"] + len(info["skipped"]) == 6000  # every line accounted for
    assert set(pairs["fold"]) <= set(range(10)) and pairs["same"].isin([0, 1]).all()
    manifest = pd.read_csv(tmp_path / "occ" / "manifest.csv", dtype=str, keep_default_na=False)
    for row in manifest[manifest["kind"] == "occluder"].to_dict("records"):
        image = cv2.imread(str(tmp_path / "occ" / row["path"]))
        mask = cv2.imread(str(tmp_path / "occ" / row["mask_path"]), cv2.IMREAD_GRAYSCALE)
        assert image.shape == (112, 96, 3)
        assert float(row["ratio"]) == pytest.approx((mask > 0).mean(), abs=1e-6)
        x0, y0, w, h = (int(row[k]) for k in ("x", "y", "w", "h"))
        assert w == min(95, int(factor * int(_native(row["asset"])[0])))  # FROM's factor semantics
        assert h == min(111, int(factor * int(_native(row["asset"])[1])))
    meta = json.loads((tmp_path / "occ" / "dataset.json").read_text())
    ratios = manifest.loc[manifest["kind"] == "occluder", "ratio"].astype(float)
    assert meta["complete"] and meta["settings"]["occlusion"]["factor"] == factor
    assert meta["coverage"]["mean"] == pytest.approx(ratios.mean(), abs=1e-5)
    assert abs(ratios.mean() - documented) < 3 * 0.151 / np.sqrt(len(ratios)), (ratios.mean(), len(ratios))


def _native(asset: str) -> tuple[int, int]:
    from occgen.library import default_library_path

    index = pd.read_csv(default_library_path() / "index.csv").set_index("file")
    return int(index.loc[asset, "width"]), int(index.loc[asset, "height"])
