"""occgen face masks: the fitting, the procedural types, MaskTheFace templates, the builders.

Unit tests run on synthetic crops; the real-data tests (skipped without the reference data)
align >= 200 LFW faces with align-faces and check every mask type on every face.
"""

from __future__ import annotations

import importlib
import json
import os
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from alob_common.geometry import crop_template
from occgen.build import BuildConfig, Job, build
from occgen.cli import main
from occgen.face_landmarks import crop_landmarks, fit_face, model_shape, six_points
from occgen.masks import MASK_TYPES, MaskConfig, mask_face, parse_mask_types
from occgen.masktheface import load_templates
from occgen.rng import rng_for
from occgen.synth import OcclusionConfig

H, W = 112, 96
MODEL = MaskConfig(landmarks="model")


def _face(seed: int = 0) -> np.ndarray:
    """A smooth synthetic 'face': skin-coloured ellipse on a textured background."""
    rng = np.random.default_rng(seed)
    image = rng.integers(40, 200, (H, W, 3), dtype=np.uint8)
    cv2.ellipse(image, (48, 70), (40, 50), 0, 0, 360, (200, 160, 140), -1)
    return cv2.GaussianBlur(image, (3, 3), 0)


def _inside(mask: np.ndarray, point) -> bool:
    x, y = (int(round(v)) for v in point)
    return bool(mask[min(y, H - 1), min(x, W - 1)])


def _check_placement(mask: np.ndarray, points5: np.ndarray) -> list[str]:
    problems = []
    for name, k in (("left eye", 0), ("right eye", 1)):
        if _inside(mask, points5[k]):
            problems.append(f"{name} covered")
    for name, k in (("nose tip", 2), ("left mouth corner", 3), ("right mouth corner", 4)):
        if not _inside(mask, points5[k]):
            problems.append(f"{name} not covered")
    return problems


def test_parse_mask_types():
    assert parse_mask_types("surgical, n95,KN95") == ("surgical", "N95", "KN95")
    assert parse_mask_types(None) == MASK_TYPES
    with pytest.raises(ValueError, match="unknown mask type"):
        parse_mask_types("surgical,bandana")
    with pytest.raises(ValueError):
        MaskConfig(types=("hood",))


@pytest.mark.parametrize("kind", MASK_TYPES)
def test_every_type_on_the_template(kind):
    template = crop_template(H, W)
    image = _face()
    for seed in range(8):
        out, mask, info = mask_face(image, rng_for(seed, "face"), MaskConfig(types=(kind,), landmarks="model"))
        assert out.shape == image.shape and out.dtype == np.uint8
        assert mask.dtype == bool and mask.shape == (H, W)
        assert info["type"] == kind and info["landmarks"] == "template5"
        assert info["ratio"] == pytest.approx(mask.mean())
        assert 0.12 < info["ratio"] < 0.5
        assert _check_placement(mask, template) == []
        assert not np.array_equal(out[mask], image[mask])  # drawn where the mask says
        if kind != "gas":  # (a gas mask's head straps run up past the eyes)
            assert np.array_equal(out[:40], image[:40])  # nothing above the eyes' band changes
        x, y, w, h = info["x"], info["y"], info["w"], info["h"]
        ys, xs = np.nonzero(mask)
        assert (x, y, w, h) == (xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1)


def test_soft_edges():
    image = np.full((H, W, 3), 128, np.uint8)
    out, mask, _ = mask_face(image, rng_for(0, "edge"), MaskConfig(types=("gas",), landmarks="model"))
    diff = np.abs(out.astype(int) - image.astype(int)).max(-1)
    partial = (diff > 0) & ~mask
    assert partial.sum() > 20  # anti-aliased fringe outside the exact (alpha > 0.5) mask


def test_yaw_narrows_the_far_side():
    template = crop_template(H, W)
    turned = template.copy()
    turned[2, 0] += 7  # nose tip towards the image's right: head turned right
    frontal = model_shape(template, H, W, "manifest5")
    right = model_shape(turned, H, W, "manifest5")
    assert abs(frontal.yaw) < 2 and right.yaw > 13
    nose = turned[2, 0]
    assert (right.jaw[16, 0] - nose) < 0.85 * (nose - right.jaw[0, 0])
    assert (frontal.jaw[16, 0] - template[2, 0]) == pytest.approx(template[2, 0] - frontal.jaw[0, 0], rel=0.1)


def test_deterministic():
    image = _face(3)
    a = mask_face(image, rng_for(7, "k"), MODEL)
    b = mask_face(image, rng_for(7, "k"), MODEL)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2]
    outs = {mask_face(image, rng_for(s, "k"), MODEL)[0].tobytes() for s in range(6)}
    assert len(outs) > 1


def test_never_drop_falls_back_to_template():
    image = _face()
    face = fit_face(image, np.full((5, 2), np.nan), method="model")
    assert face.source == "template5" and "off the template" in face.reason
    face = fit_face(image, None, method="model")
    assert face.source == "template5" and face.reason
    noise = np.random.default_rng(1).integers(0, 256, (H, W, 3), dtype=np.uint8)
    _, mask, info = mask_face(noise, rng_for(0, "noise"), MaskConfig())  # dlib, if present, may reject it
    assert mask.any() and info["landmarks"] in ("dlib68", "template5")


def test_landmarks_dlib_without_dlib_is_a_user_error(monkeypatch):
    from alob_common.errors import UserError
    from occgen import face_landmarks

    monkeypatch.setattr(face_landmarks, "dlib_predictor", lambda: None)
    with pytest.raises(UserError, match="dlib"):
        fit_face(_face(), None, method="dlib")
    assert fit_face(_face(), None, method="auto").source == "template5"


def test_crop_landmarks_maps_into_the_crop():
    from alob_common.geometry import transform_points

    template = crop_template(H, W)
    matrix = np.array([[2.0, 0.3, 40.0], [-0.3, 2.0, 25.0]])
    src = transform_points(template + np.random.default_rng(0).normal(0, 0.5, (5, 2)), matrix)
    row = {f"l{a}{i + 1}": f"{src[i, j]:.3f}" for i in range(5) for j, a in enumerate("xy")}
    mapped = crop_landmarks(row, H, W)
    assert np.abs(mapped - template).max() < 2.0
    assert np.abs(crop_landmarks(row, 112, 112) - crop_template(112, 112)).max() < 2.0  # a wider crop too
    assert crop_landmarks({"lx1": ""}, H, W) is None
    assert crop_landmarks({**row, "ly3": "nan"}, H, W) is None


def _aligned_folder(root: Path, n_ids: int = 3, per_id: int = 3, with_landmarks: bool = True) -> Path:
    rows = []
    template = crop_template(H, W)
    for i in range(n_ids):
        for j in range(per_id):
            rel = f"P{i}/P{i}_{j + 1:04d}.jpg"
            (root / f"P{i}").mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(root / rel), _face(i * 10 + j))
            lm = template + (j * 0.5) if with_landmarks and not (i == 0 and j == 0) else None
            row = {"path": rel, "source": rel, "identity": f"P{i}", "status": "ok", "reason": ""}
            for k in range(5):
                row[f"lx{k + 1}"] = "" if lm is None else f"{lm[k, 0]:.3f}"
                row[f"ly{k + 1}"] = "" if lm is None else f"{lm[k, 1]:.3f}"
            rows.append(row)
    pd.DataFrame(rows).to_csv(root / "manifest.csv", index=False)
    return root


def _pairs(path: Path) -> Path:
    path.write_text("1 2\nP1\t1\t2\nP2\t1\t3\nP0\t1\tP1\t2\nP1\t3\tP2\t2\n")
    return path


def test_lfw_masked_build(tmp_path):
    src = _aligned_folder(tmp_path / "aligned")
    config = BuildConfig("lfw", OcclusionConfig(ratio=0.52), kind="mask", masks=MODEL,
                         pairs=str(_pairs(tmp_path / "pairs.txt")))
    summary = build(Job(src, tmp_path / "out", config), progress=False)
    manifest = pd.read_csv(tmp_path / "out" / "manifest.csv", dtype=str, keep_default_na=False)
    masked = manifest[manifest.kind == "mask"]
    assert len(masked) == 9 and (manifest.kind == "clean").sum() == 9  # never drop a face
    assert set(masked.landmarks) == {"manifest5", "template5"}
    fallback = masked[masked.landmarks == "template5"]
    assert fallback.source.tolist() == ["P0/P0_0001.jpg"] and "no landmarks" in fallback.reason.iloc[0]
    for row in masked.to_dict("records"):
        mask = cv2.imread(str(tmp_path / "out" / row["mask_path"]), cv2.IMREAD_GRAYSCALE)
        assert float(row["ratio"]) == pytest.approx((mask > 0).mean(), abs=1e-9)
        assert row["category"] in MASK_TYPES and row["yaw"] != ""
    pairs = pd.read_csv(tmp_path / "out" / "pairs.csv")
    assert list(pairs.columns) == ["path1", "path2", "same", "fold"] and len(pairs) == 4
    assert pairs.path1.str.startswith("clean/").all() and pairs.path2.str.startswith("images/").all()
    meta = json.loads((tmp_path / "out" / "dataset.json").read_text())
    assert meta["name"] == "lfw-masked" and meta["counts"]["masked"] == 9
    assert sum(m["count"] for m in meta["masks"].values()) == 9
    assert meta["landmarks"] == {"manifest5": 8, "template5": 1}
    assert summary["complete"]
    # determinism: another run (2 workers, small units) gives the same bytes
    config2 = BuildConfig("lfw", OcclusionConfig(ratio=0.52), kind="mask", masks=MODEL, unit_size=2,
                          pairs=str(tmp_path / "pairs.txt"))
    build(Job(src, tmp_path / "out2", config2, workers=2), progress=False)
    for row in masked.to_dict("records"):
        for col in ("path", "mask_path"):
            assert (tmp_path / "out" / row[col]).read_bytes() == (tmp_path / "out2" / row[col]).read_bytes()


def test_mixed_folder_build(tmp_path):
    src = _aligned_folder(tmp_path / "aligned", n_ids=4, per_id=5)
    config = BuildConfig("folder", OcclusionConfig(ratio=0.3), kind="mixed", masks=MODEL, mask_fraction=0.5,
                         format="folder", copies=2)
    summary = build(Job(src, tmp_path / "out", config), progress=False)
    manifest = pd.read_csv(tmp_path / "out" / "manifest.csv", dtype=str, keep_default_na=False)
    assert len(manifest) == 40
    kinds = manifest.kind.value_counts()
    assert kinds.get("mask", 0) > 3 and kinds.get("occluder", 0) > 3 and kinds.get("clean", 0) > 3
    assert summary["counts"]["masked"] == kinds["mask"] and summary["counts"]["occluder"] == kinds["occluder"]
    assert (manifest[manifest.kind == "mask"].landmarks != "").all()
    assert (manifest[manifest.kind == "occluder"].landmarks == "").all()


def test_cli_errors_and_preview(tmp_path):
    src = _aligned_folder(tmp_path / "aligned", n_ids=2, per_id=2)
    runner = CliRunner()
    (tmp_path / "empty").mkdir()
    result = runner.invoke(main, ["build", "--source", "lfw", "--kind", "mask", "--data", str(src), "--out",
                                  str(tmp_path / "o"), "--mask-templates", str(tmp_path / "empty")])
    assert result.exit_code != 0 and "no masks.cfg" in result.output
    assert len(result.output.strip().splitlines()) == 1
    result = runner.invoke(main, ["build", "--source", "lfw", "--kind", "mask", "--data", str(src), "--out",
                                  str(tmp_path / "o"), "--mask-types", "surgical,scarf"])
    assert result.exit_code == 2 and "unknown mask type" in result.output
    result = runner.invoke(main, ["build", "--source", "lfw", "--data", str(src), "--out", str(tmp_path / "o"),
                                  "--mask-types", "gas"])
    assert result.exit_code == 2 and "--kind mask" in result.output
    result = runner.invoke(main, ["build", "--source", "lfw", "--kind", "mask", "--landmarks", "model", "--quiet",
                                  "--data", str(src), "--out", str(tmp_path / "o"), "--workers", "0"])
    assert result.exit_code == 0, result.output
    assert "landmarks: manifest5 3, template5 1" in result.output
    result = runner.invoke(main, ["preview", "--data", str(tmp_path / "o"), "--by-type", "--cols", "3"])
    assert result.exit_code == 0, result.output
    sheet = cv2.imread(str(tmp_path / "o" / "preview.png"))
    assert sheet is not None


def _synthetic_templates(root: Path) -> Path:
    (root / "templates").mkdir(parents=True)
    rgba = np.zeros((200, 300, 4), np.uint8)
    rgba[20:180, 20:280] = (40, 90, 200, 255)
    cv2.imwrite(str(root / "templates" / "surgical.png"), rgba)
    cv2.imwrite(str(root / "templates" / "surgical_left.png"), rgba)
    (root / "masks.cfg").write_text(
        "[surgical]\ntemplate: masks/templates/surgical.png\nmask_a: 20, 20\nmask_b: 150, 20\nmask_c: 280, 20\n"
        "mask_d: 20, 180\nmask_e: 150, 180\nmask_f: 280, 180\n\n"
        "[surgical_left]\ntemplate: masks/templates/surgical_left.png\nmask_a: 20, 20\nmask_b: 150, 20\n"
        "mask_c: 280, 20\nmask_d: 20, 180\nmask_e: 150, 180\nmask_f: 280, 180\n\n[empty]\n\n"
        "[broken]\ntemplate: masks/templates/missing.png\n")
    return root


def test_masktheface_loader_synthetic(tmp_path):
    root = _synthetic_templates(tmp_path / "masks")
    tset = load_templates(root)
    assert sorted(tset.templates) == ["surgical", "surgical_left"]
    assert len(tset.problems) == 2 and tset.has("surgical") and not tset.has("gas")
    image = _face()
    out, mask, info = mask_face(image, rng_for(0, "t"), MaskConfig(types=("surgical",), landmarks="model"),
                                templates=tset)
    assert info["variant"] == "mtf:surgical" and mask.any()
    # a template fitted to its own six points moved by a similarity lands exactly there
    from occgen.masktheface import fit_template

    t = tset.templates["surgical"]
    flat = np.full((H, W, 3), 150, np.uint8)
    target = t.points * 0.5 + np.array([5.0, 20.0])  # t.points: in the shrunk working picture
    out, alpha = fit_template(flat, t, target)
    mask = alpha > 0.5
    assert mask[50, 50] and not mask[10, 5] and not mask[100, 50]
    width, height = target[2, 0] - target[0, 0], target[3, 1] - target[0, 1]
    assert mask.mean() == pytest.approx(width * height / (H * W), abs=0.02)
    assert (out[mask][:, 0] > out[mask][:, 2]).all()  # the template's colour (BGRA 40,90,200: red in RGB)
    # types without a template are drawn procedurally
    _, _, info = mask_face(image, rng_for(0, "t"), MaskConfig(types=("gas",), landmarks="model"), templates=tset)
    assert info["variant"].startswith("gas-")
    with pytest.raises(Exception, match="no masks.cfg"):
        load_templates(tmp_path)


def test_masktheface_shared_templates(masktheface_dir):
    tset = load_templates(masktheface_dir)
    for kind in MASK_TYPES:
        assert tset.has(kind), kind
    assert {t.side for t in tset.templates.values()} == {"", "left", "right"}
    assert any("empty" in p for p in tset.problems)
    template = crop_template(H, W)
    image = _face()
    faces = {}
    for side, shift in (("", 0.0), ("left", -7.0), ("right", 7.0)):
        points = template.copy()
        points[2, 0] += shift
        faces[side] = model_shape(points, H, W, "manifest5")
    assert faces["left"].yaw < -13 < 13 < faces["right"].yaw
    for name, t in sorted(tset.templates.items()):
        target = six_points(faces[t.side])
        matrix, _ = cv2.findHomography(t.points, target, 0)
        projected = cv2.perspectiveTransform(t.points.reshape(-1, 1, 2), matrix).reshape(-1, 2)
        assert np.linalg.norm(projected - target, axis=1).mean() < (4.0 if t.side == "" else 8.0), name
    for kind in MASK_TYPES:
        for seed in range(3):
            _, mask, info = mask_face(image, rng_for(seed, kind), MaskConfig(types=(kind,), landmarks="model"),
                                      templates=tset)
            assert info["variant"].startswith("mtf:") and 0.08 < info["ratio"] < 0.5
            assert not _inside(mask, template[0]) and not _inside(mask, template[1])
            assert _inside(mask, (template[3] + template[4]) / 2)


# --- real LFW --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def aligned_lfw(lfw_dir, tmp_path_factory, optional_part):
    """>= 200 real LFW faces (every k-th file) aligned with align-faces (112x96)."""
    optional_part("MTCNN (facenet-pytorch)", ("facenet-pytorch",), lambda: importlib.import_module("facenet_pytorch"))
    from alignment.align_folder import AlignConfig, align_folder
    from alob_common.images import scan_images

    files = scan_images(lfw_dir).images
    picked = files[:: len(files) // 220][:220]
    src = tmp_path_factory.mktemp("lfw-mask-src")
    for f in picked:
        link = src / f.relative_to(lfw_dir)
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(f, link)
    out = tmp_path_factory.mktemp("lfw-mask-aligned")
    align_folder(src, out, AlignConfig(), workers=0, progress=False)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("landmarks", ["auto", "model"])
def test_masks_on_real_faces(aligned_lfw, landmarks):
    manifest = pd.read_csv(aligned_lfw / "manifest.csv", dtype=str, keep_default_na=False)
    manifest = manifest[manifest.path != ""]
    assert len(manifest) >= 200
    template = crop_template(H, W)
    coverage: dict[str, list[float]] = {k: [] for k in MASK_TYPES}
    sources: dict[str, int] = {}
    failures = []
    for row in manifest.to_dict("records"):
        image = cv2.cvtColor(cv2.imread(str(aligned_lfw / row["path"])), cv2.COLOR_BGR2RGB)
        points5 = crop_landmarks(row, H, W)
        for kind in MASK_TYPES:
            _, mask, info = mask_face(image, rng_for(0, row["path"] + kind),
                                      MaskConfig(types=(kind,), landmarks=landmarks), points5)
            coverage[kind].append(info["ratio"])
            sources[info["landmarks"]] = sources.get(info["landmarks"], 0) + 1
            failures += [f"{row['path']} {kind}: {p}" for p in _check_placement(mask, template)]
    print(f"\nmask coverage on {len(manifest)} real aligned LFW faces (landmarks={landmarks}, {sources}):")
    for kind, values in coverage.items():
        v = np.array(values)
        print(f"  {kind:<9} mean {v.mean() * 100:5.1f} %  std {v.std() * 100:4.1f}  "
              f"min {v.min() * 100:5.1f}  max {v.max() * 100:5.1f}")
        assert 0.15 < v.mean() < 0.45
    assert failures == [], f"{len(failures)} placement failures, e.g. {failures[:5]}"


@pytest.mark.slow
def test_lfw_masked_build_real(aligned_lfw, lfw_pairs, tmp_path):
    config = BuildConfig("lfw", OcclusionConfig(ratio=0.52), kind="mask", pairs=str(lfw_pairs))
    summary = build(Job(aligned_lfw, tmp_path / "masked", config), progress=False)
    aligned = pd.read_csv(aligned_lfw / "manifest.csv", dtype=str, keep_default_na=False)
    n = int((aligned.path != "").sum())
    assert summary["counts"]["masked"] == n and summary["counts"]["clean"] == n  # none dropped
    assert sum(summary["landmarks"].values()) == n
    print(f"\nLFW-Masked subset: {summary['landmarks']}, "
          + ", ".join(f"{k} {m['mean'] * 100:.1f} %" for k, m in summary["masks"].items()))
