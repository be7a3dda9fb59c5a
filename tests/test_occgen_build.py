"""occgen build: folder and shard outputs, determinism across workers and jobs, bad inputs."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from occgen.build import BuildConfig, Job, build
from occgen.cli import main
from occgen.synth import OcclusionConfig, occlude, parse_scale_set

IDENTITIES = ["Alice_A", "Bob_B", "Carol.C", "Dan_D"]


def face_like(rng: np.random.Generator) -> np.ndarray:
    """A 112x96 crop with a skin-toned oval, dark eyes and mouth at the template positions."""
    img = np.full((112, 96, 3), rng.integers(40, 200, 3), np.uint8)
    skin = tuple(int(v) for v in rng.integers(120, 230, 3))
    cv2.ellipse(img, (48, 62), (34, 46), 0, 0, 360, skin, -1)
    for x in (30, 65):
        cv2.circle(img, (x, 52), 4, (30, 30, 30), -1)
    cv2.line(img, (34, 92), (62, 92), (120, 40, 40), 3)
    return cv2.GaussianBlur(img, (3, 3), 0)


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    """4 identities x 6 aligned-looking JPEGs, plus one corrupt file."""
    root = tmp_path_factory.mktemp("aligned")
    rng = np.random.default_rng(0)
    for name in IDENTITIES:
        (root / name).mkdir()
        for i in range(1, 7):
            cv2.imwrite(str(root / name / f"{name}_{i:04d}.jpg"), face_like(rng)[:, :, ::-1])
    (root / "Dan_D" / "Dan_D_0007.jpg").write_bytes(b"this is not a jpeg")
    return root


@pytest.fixture(scope="module")
def pairs_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("pairs") / "pairs.txt"
    path.write_text(
        "2 2\n"
        "Alice_A 1 2\nBob_B 3 4\nAlice_A 1 Bob_B 2\nCarol.C 1 Dan_D 1\n"
        "Dan_D 2 7\nCarol.C 5 9\nAlice_A 6 Dan_D 6\nBob_B 1 Carol.C 2\n"
    )
    return path


def digest_tree(root: Path) -> dict[str, str]:
    """sha256 of every output file except dataset.json (it holds timings and the command)."""
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != "dataset.json"}


def run(src, out, config, **kw) -> dict:
    return build(Job(src, out, config, **kw), progress=False)


def test_lfw_source_folder_form(tree, pairs_file, tmp_path):
    config = BuildConfig("lfw", OcclusionConfig(ratio=0.45), seed=3, pairs=str(pairs_file), unit_size=7)
    summary = run(tree, tmp_path / "out", config)
    out = tmp_path / "out"
    manifest = pd.read_csv(out / "manifest.csv", dtype=str, keep_default_na=False)
    assert summary["complete"] and summary["counts"]["occluded"] == 24 and summary["counts"]["clean"] == 24
    bad = manifest[manifest["status"] == "failed"]
    assert bad["source"].tolist() == ["Dan_D/Dan_D_0007.jpg"] and "not a readable image" in bad["reason"].iloc[0]
    occluded = manifest[manifest["kind"] == "occluder"]
    for row in occluded.to_dict("records"):
        mask = cv2.imread(str(out / row["mask_path"]), cv2.IMREAD_GRAYSCALE)
        assert mask.shape == (112, 96) and set(np.unique(mask)) <= {0, 255}
        assert float(row["ratio"]) == pytest.approx((mask > 0).mean(), abs=1e-6)
    clean = manifest[manifest["kind"] == "clean"]
    src_bytes = (tree / "Alice_A" / "Alice_A_0001.jpg").read_bytes()
    assert (out / "clean/Alice_A/Alice_A_0001.jpg").read_bytes() == src_bytes  # clean copies untouched
    assert len(clean) == 24
    pairs = pd.read_csv(out / "pairs.csv")
    assert len(pairs) == 6 and pairs["fold"].tolist() == [0, 0, 0, 0, 1, 1]
    assert pairs["path1"].str.startswith("clean/").all() and pairs["path2"].str.startswith("images/").all()
    assert all((out / p).exists() for p in pd.concat([pairs["path1"], pairs["path2"]]))
    skipped = summary["pairs"]["skipped"]
    assert [s["line"] for s in skipped] == [6, 7] and "Dan_D/Dan_D_0007" in skipped[0]["reason"]
    assert summary["coverage"]["mean"] == pytest.approx(occluded["ratio"].astype(float).mean(), abs=1e-5)


def test_same_output_with_1_and_2_workers(tree, tmp_path):
    config = BuildConfig("lfw", OcclusionConfig(factor=2.0, blend="rect"), seed=1, unit_size=5)
    run(tree, tmp_path / "w0", config, workers=0)
    run(tree, tmp_path / "w2", config, workers=2)
    a, b = digest_tree(tmp_path / "w0"), digest_tree(tmp_path / "w2")
    assert a == b and len(a) > 70


def test_shards_identical_with_1_and_3_jobs_and_readable(tree, tmp_path):
    config = BuildConfig("folder", OcclusionConfig(scale_set=parse_scale_set("1..5/0.5")), seed=5, copies=3,
                         format="shards", unit_size=10)
    one = run(tree, tmp_path / "one", config)
    assert one["complete"]
    partial = [run(tree, tmp_path / "three", config, shard_index=i, num_shards=3) for i in range(3)]
    assert [p["complete"] for p in partial] == [False, False, True]  # the last job assembles
    assert digest_tree(tmp_path / "one") == digest_tree(tmp_path / "three")
    shards = sorted((tmp_path / "one" / "shards").glob("*.tar"))
    assert len(shards) == 8  # 25 files x 3 copies = 75 samples, 10 per unit

    import webdataset as wds

    samples = list(wds.WebDataset([str(s) for s in shards], shardshuffle=False).decode("rgb8"))
    assert len(samples) == 72  # 24 good images x 3; the corrupt file's 3 samples are only in the manifest
    classes = pd.read_csv(tmp_path / "one" / "classes.csv", keep_default_na=False)
    assert classes["identity"].tolist() == sorted(IDENTITIES)
    assert classes["count"].tolist() == [18, 18, 18, 18]
    kinds = []
    for sample in samples:
        meta = sample["json"]
        image, mask = sample["jpg"], sample["mask.png"]
        assert image.shape == (112, 96, 3) and mask.shape[:2] == (112, 96)
        assert classes.loc[meta["label"], "identity"] == meta["identity"]
        covered = (np.asarray(mask)[..., 0] > 127).mean()
        assert covered == pytest.approx(meta["ratio"], abs=1e-6)
        kinds.append(meta["kind"])
    clean = kinds.count("clean") / len(kinds)
    assert 0.15 < clean < 0.5  # clean:occluded 1:2 by default

    from occgen.preview import preview

    sheet = cv2.imread(str(preview(tmp_path / "one", tmp_path / "sheet.png", count=6, kind="all")))
    assert sheet is not None and sheet.shape[0] >= 224


def test_dataset_names():
    from occgen.build import dataset_name

    def name(source="lfw", **kw):
        return dataset_name(BuildConfig(source, OcclusionConfig(**kw)), "/data/casia-aligned")

    assert name(factor=2.0, blend="rect") == "lfw-occ-2.0" and name(factor=3.0) == "lfw-occ-3.0-alpha"
    assert name(ratio=0.4309) == "lfw-occ-r0.4309" and name(ratio=0.52, placement="semantic") == "lfw-occ-r0.52-semantic"
    assert name("folder", scale_set=parse_scale_set("1..5/0.5")) == "casia-aligned-occ-s1-5"


def test_resume_skips_finished_units(tree, tmp_path):
    config = BuildConfig("folder", OcclusionConfig(factor=2.0), format="shards", unit_size=8)
    run(tree, tmp_path / "o", config)
    before = digest_tree(tmp_path / "o")
    (tmp_path / "o" / "shards" / "train-000001.tar").unlink()
    again = run(tree, tmp_path / "o", config)
    assert again["run"]["units_resumed"] == 3 and again["run"]["processed"] == 8
    assert digest_tree(tmp_path / "o") == before


def test_cli_build_and_preview(tree, pairs_file, tmp_path):
    runner = CliRunner()
    out = tmp_path / "cli"
    result = runner.invoke(main, ["build", "--source", "lfw", "--data", str(tree), "--out", str(out), "--pairs",
                                  str(pairs_file), "--factor", "3.0", "--blend", "rect", "--workers", "0", "--quiet"])
    assert result.exit_code == 0, result.output
    assert "coverage: mean" in result.output and "pairs: 6 of 8" in result.output
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["complete"] and meta["settings"]["occlusion"]["factor"] == 3.0 and meta["name"] == "lfw-occ-3.0"
    result = runner.invoke(main, ["preview", "--data", str(out), "--out-file", str(tmp_path / "p.png"), "--count", "8"])
    assert result.exit_code == 0, result.output
    sheet = cv2.imread(str(tmp_path / "p.png"))
    assert sheet is not None and sheet.shape[0] > 200
    # the same OUT with other settings is refused in one line
    result = runner.invoke(main, ["build", "--source", "lfw", "--data", str(tree), "--out", str(out), "--factor", "2.0",
                                  "--workers", "0", "--quiet"])
    assert result.exit_code == 1 and "other settings" in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1 and result.output.startswith("Error: ")


@pytest.mark.parametrize("args, code, message", [
    (["--data", "/nonexistent/folder"], 1, "source folder not found"),
    (["--factor", "2", "--ratio", "0.5"], 2, "only one of"),
    (["--scale-set", "5..1/1"], 2, "bad scale set"),
    (["--occluders", "/nonexistent/occ"], 1, "occluder folder not found"),
])
def test_cli_bad_input_one_line(tree, tmp_path, args, code, message):
    base = ["build", "--source", "folder", "--data", str(tree), "--out", str(tmp_path / "x"), "--quiet", "--workers", "0"]
    result = CliRunner().invoke(main, base + args)
    assert result.exit_code == code and "Traceback" not in result.output, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and message in errors[0], result.output
    if code == 1:  # a usage error (2) comes under click's usage lines
        assert len(result.output.strip().splitlines()) == 1, result.output
    assert not (tmp_path / "x").exists()


def test_size_mode_and_format_defaults_are_python_data(tree, tmp_path):
    from occgen.build_config import DEFAULT_FORMAT, DEFAULT_SIZE_MODE, default_occlusion

    assert default_occlusion("lfw") == OcclusionConfig(ratio=0.52)
    assert default_occlusion("folder") == OcclusionConfig(scale_set=parse_scale_set("1..5/0.5"))
    assert default_occlusion("lfw", factor=3.0, blend="rect") == OcclusionConfig(factor=3.0, blend="rect")
    runner = CliRunner()
    help_text = " ".join(runner.invoke(main, ["build", "-h"]).output.split())
    assert ("[default: --ratio 0.52 for lfw, --scale-set 1..5/0.5 for folder, --scale-set 1..5/0.5 for rec, "
            "--ratio 0.52 for bin]") in help_text
    assert "DESIGN.md" not in help_text
    assert "[default: folder for lfw, shards for folder, shards for rec, folder for bin]" in help_text
    DEFAULT_SIZE_MODE["folder"]["scale_set"], saved = "2..4/1", DEFAULT_SIZE_MODE["folder"]["scale_set"]
    try:  # the CLI reads the defaults, it does not repeat them
        result = runner.invoke(main, ["build", "--source", "folder", "--data", str(tree), "--out", str(tmp_path / "o"),
                                      "--workers", "0", "--quiet"])
    finally:
        DEFAULT_SIZE_MODE["folder"]["scale_set"] = saved
    assert result.exit_code == 0, result.output
    settings = json.loads((tmp_path / "o" / "dataset.json").read_text())["settings"]
    assert settings["occlusion"]["scale_set"] == [2.0, 3.0, 4.0] and settings["format"] == DEFAULT_FORMAT["folder"]


def test_non_image_files_in_src_are_reported(tree, tmp_path):
    import shutil

    src = tmp_path / "src"
    shutil.copytree(tree, src)
    (src / "notes.txt").write_text("not an image")
    (src / "Bob_B" / "Bob_B_0001.json").write_text("{}")
    (src / "Bob_B" / ".DS_Store").write_text("hidden files are not counted")
    result = CliRunner().invoke(main, ["build", "--source", "folder", "--data", str(src), "--out", str(tmp_path / "o"),
                                       "--factor", "2", "--workers", "0", "--quiet"])
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if "non-image" in line]
    assert warnings == [(f"warning: {src} holds 2 non-image file(s) (notes.txt, Bob_B/Bob_B_0001.json); "
                         "only images are used")]
    meta = json.loads((tmp_path / "o" / "dataset.json").read_text())
    assert meta["inputs"] == {"images": 25, "other_files": 2, "other_examples": ["notes.txt", "Bob_B/Bob_B_0001.json"]}
    result = CliRunner().invoke(main, ["build", "--source", "folder", "--data", str(tree), "--out", str(tmp_path / "p"),
                                       "--factor", "2", "--workers", "0", "--quiet"])
    assert "non-image" not in result.output
    assert json.loads((tmp_path / "p" / "dataset.json").read_text())["inputs"]["other_files"] == 0


def test_aligned_folder_files_are_not_reported(tree, tmp_path):
    from occgen.build_plan import scan_inputs

    assert scan_inputs(tree).others == 0
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "manifest.csv").write_text("path\n")
    (tmp_path / "a" / "dataset.json").write_text("{}")
    (tmp_path / "a" / "x.txt").write_text("")
    scan = scan_inputs(tmp_path / "a")
    assert scan.others == 1 and scan.other_examples == ["x.txt"]


def test_user_errors_are_one_line_in_every_command(tree, tmp_path):
    bad_pairs = tmp_path / "pairs.txt"
    bad_pairs.write_text("not a pair list at all\n")
    (tmp_path / "empty").mkdir()
    runs = {
        "pairs": ["build", "--source", "lfw", "--data", str(tree), "--out", str(tmp_path / "o"), "--pairs",
                  str(bad_pairs), "--workers", "0", "--quiet"],
        "preview": ["preview", "--data", str(tmp_path / "empty")],
        "assets": ["assets", "--occluders", str(tmp_path / "nowhere")],
    }
    for name, args in runs.items():
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 1, (name, result.output)
        assert len(result.output.strip().splitlines()) == 1 and result.output.startswith("Error: "), name


def test_cli_overwrite_rebuilds_and_allows_other_settings(tree, tmp_path):
    out = tmp_path / "o"
    base = ["build", "--source", "folder", "--data", str(tree), "--out", str(out), "--format", "folder",
            "--factor", "3.0", "--workers", "0", "--quiet"]
    assert CliRunner().invoke(main, base).exit_code == 0
    before = digest_tree(out)
    image = sorted((out / "images").rglob("*.jpg"))[0]
    image.write_bytes(b"stale bytes of an earlier build")
    assert CliRunner().invoke(main, base).exit_code == 0  # a rerun resumes: finished units are kept
    assert image.read_bytes() == b"stale bytes of an earlier build"
    result = CliRunner().invoke(main, base + ["--overwrite"])
    assert result.exit_code == 0, result.output
    assert digest_tree(out) == before
    assert json.loads((out / "dataset.json").read_text())["run"]["units_resumed"] == 0
    refused = CliRunner().invoke(main, [*base[:-5], "--factor", "2.0", "--workers", "0", "--quiet"])
    assert refused.exit_code == 1 and "other settings" in refused.output
    other = CliRunner().invoke(main, [*base[:-5], "--factor", "2.0", "--workers", "0", "--quiet", "--overwrite"])
    assert other.exit_code == 0, other.output
    assert json.loads((out / "dataset.json").read_text())["settings"]["occlusion"]["factor"] == 2.0
    assert digest_tree(out) != before


def test_ratio_spread_is_the_spread_of_the_per_image_targets(tree, tmp_path):
    """--ratio-spread: each image's target coverage is drawn around the (calibrated) mean with
    that standard deviation (0: every image of a category the same target)."""
    image = np.zeros((112, 96, 3), np.uint8)
    for spread in (0.0, 0.08, 0.15):
        cfg = OcclusionConfig(ratio=0.5, ratio_spread=spread, categories=("cup",))
        targets = [occlude(image, np.random.default_rng([7, i]), config=cfg)[2]["target"] for i in range(2000)]
        assert abs(np.std(targets) - spread) < 0.01, spread
    ratios = {}
    for spread in ("0.08", "0.25"):
        out = tmp_path / spread
        result = CliRunner().invoke(main, ["build", "--source", "folder", "--data", str(tree), "--out", str(out),
                                           "--ratio", "0.5", "--ratio-spread", spread, "--workers", "0", "--quiet"])
        assert result.exit_code == 0, result.output
        assert json.loads((out / "dataset.json").read_text())["settings"]["occlusion"]["ratio_spread"] == float(spread)
        ratios[spread] = pd.read_csv(out / "manifest.csv").query("kind == 'occluder'")["ratio"].to_numpy()
    assert len(ratios["0.08"]) == len(ratios["0.25"]) > 10 and not np.array_equal(ratios["0.08"], ratios["0.25"])


def test_failed_alignment_rows_are_carried_over(tmp_path):
    """An align-faces output with failed inputs: occgen occludes the written crops and lists each
    failed input once, status failed, with alignment's reason."""
    from alignment.cli import main as align_main

    src = tmp_path / "photos" / "person"
    src.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for k in range(3):
        cv2.imwrite(str(src / f"face_{k}.jpg"), face_like(rng)[:, :, ::-1])
    (src / "empty.jpg").write_bytes(b"")
    (src / "text.jpg").write_text("not an image")
    aligned = tmp_path / "aligned"
    result = CliRunner().invoke(align_main, ["--data", str(tmp_path / "photos"), "--out", str(aligned), "--workers", "0",
                                             "--quiet"])
    assert result.exit_code == 0, result.output
    reasons = pd.read_csv(aligned / "manifest.csv", keep_default_na=False).set_index("source")["reason"]
    out = tmp_path / "occ"
    result = CliRunner().invoke(main, ["build", "--source", "folder", "--data", str(aligned), "--out", str(out),
                                       "--format", "folder", "--workers", "0", "--quiet"])
    assert result.exit_code == 0, result.output
    manifest = pd.read_csv(out / "manifest.csv", dtype=str, keep_default_na=False)
    failed = manifest[manifest["status"] == "failed"].set_index("source")
    assert sorted(failed.index) == ["person/empty.jpg", "person/text.jpg"]
    for source, row in failed.iterrows():
        assert row["reason"] == f"alignment: {reasons[source]}" and row["path"] == ""
    assert sorted(manifest.loc[manifest["status"] == "ok", "source"]) == [f"person/face_{k}.jpg" for k in range(3)]
    counts = json.loads((out / "dataset.json").read_text())["counts"]
    assert counts["failed_inputs"] == 2 and counts["inputs"] == 5


def test_cli_preview_category_shows_only_that_category(tree, tmp_path):
    """preview --category X of a set is the sheet of the same set with every other category
    removed from its manifest (same seed), and not the sheet of the whole set."""
    import shutil

    out = tmp_path / "set"
    result = CliRunner().invoke(main, ["build", "--source", "lfw", "--data", str(tree), "--out", str(out),
                                       "--factor", "2.0", "--workers", "0", "--quiet"])
    assert result.exit_code == 0, result.output
    manifest = pd.read_csv(out / "manifest.csv", dtype=str, keep_default_na=False)
    category = manifest.loc[manifest["kind"] == "occluder", "category"].value_counts().index[0]
    only = tmp_path / "only"
    shutil.copytree(out, only)
    manifest[manifest["category"] == category].to_csv(only / "manifest.csv", index=False)
    sheets = {}
    for name, args in (("category", ["--data", str(out), "--category", category]), ("restricted", ["--data", str(only)]),
                       ("all", ["--data", str(out)])):
        result = CliRunner().invoke(main, ["preview", *args, "--out-file", str(tmp_path / f"{name}.png"), "--count",
                                           "48"])
        assert result.exit_code == 0, result.output
        sheets[name] = cv2.imread(str(tmp_path / f"{name}.png"))
    assert np.array_equal(sheets["category"], sheets["restricted"])
    assert sheets["category"].shape != sheets["all"].shape or not np.array_equal(sheets["category"], sheets["all"])
    missing = CliRunner().invoke(main, ["preview", "--data", str(out), "--category", "no-such-category"])
    assert missing.exit_code == 1 and "no occluder samples of no-such-category" in missing.output
