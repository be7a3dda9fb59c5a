"""alob-eval end to end with precomputed embeddings on the real LFW pair list."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from alob_common.pairs import pair_table
from alob_eval.cli import main
from alob_eval.embeddings import save_embeddings


def _lfw_embeddings(lfw_pairs: Path, lfw_dir: Path, tmp_path: Path, per_identity: bool) -> Path:
    table = pair_table(lfw_pairs, lfw_dir)
    paths = sorted(set(table.path1) | set(table.path2))
    rng = np.random.default_rng(0)
    if per_identity:  # every image of a person gets that person's vector
        identities = {Path(p).parent.name for p in paths}
        by_id = {name: rng.normal(size=64) for name in sorted(identities)}
        vectors = np.stack([by_id[Path(p).parent.name] for p in paths])
    else:  # an untrained model: nothing shared between images
        vectors = rng.normal(size=(len(paths), 64))
    rel = [str(Path(p).relative_to(lfw_dir)) for p in paths]
    out = tmp_path / ("ideal.npz" if per_identity else "random.npz")
    save_embeddings(out, rel, vectors)
    return out


def test_identity_embeddings_score_100_and_random_ones_50(lfw_pairs, lfw_dir, tmp_path):
    bench = f"lfw={lfw_dir}@{lfw_pairs}"
    for per_identity, low, high in ((True, 1.0, 1.0), (False, 0.46, 0.54)):
        emb = _lfw_embeddings(lfw_pairs, lfw_dir, tmp_path, per_identity)
        out = tmp_path / f"report-{per_identity}"
        result = CliRunner().invoke(main, ["--embeddings", str(emb), "--bench", bench, "--out", str(out), "--quiet"])
        assert result.exit_code == 0, result.output
        stored = json.loads((out / "results.json").read_text())["results"]["lfw"]
        assert stored["pairs"] == 6000 and stored["folds"] == 10
        assert low <= stored["accuracy"] <= high
        assert (out / "roc.png").is_file() and "| lfw | 6000 |" in (out / "results.md").read_text()


def test_usage_errors(tmp_path):
    runner = CliRunner()
    (tmp_path / "set").mkdir()
    (tmp_path / "set" / "pairs.csv").write_text("path1,path2,same,fold\na.jpg,b.jpg,1,0\n")
    bench = ["--bench", f"x={tmp_path / 'set'}"]
    save_embeddings(tmp_path / "e.npz", ["a.jpg"], np.ones((1, 4)))
    cases = {  # what is wrong → (arguments, message)
        "no pair list": (["--embeddings", str(tmp_path / "e.npz"), "--bench", f"x={tmp_path}"], "no pair list"),
        "bad bench": (["--embeddings", str(tmp_path / "e.npz"), "--bench", "x"], "expected NAME=DIR"),
        "no bench": (["--embeddings", str(tmp_path / "e.npz")], "give at least one --bench"),
        "no model": (bench, "give exactly one model"),
        "two models": (["--checkpoint", str(tmp_path), "--reference", "dlib", *bench],
                       "give exactly one model: --checkpoint RUN, --onnx MODEL.onnx, --reference NAME or "
                       "--embeddings FILE (got --checkpoint and --reference)"),
        "three models": (["--checkpoint", str(tmp_path), "--reference", "facenet", "--embeddings",
                          str(tmp_path / "e.npz"), *bench], "(got --checkpoint and --reference and --embeddings)"),
        "unknown reference": (["--reference", "vgg", *bench], "'vgg' is not one of 'facenet', 'dlib'"),
    }
    for case, (args, message) in cases.items():
        result = runner.invoke(main, args)
        assert result.exit_code == 2 and message in result.output, (case, result.output)
    lacking = runner.invoke(main, ["--embeddings", str(tmp_path / "e.npz"), *bench])
    assert lacking.exit_code == 1 and "1 images have no embedding" in lacking.output


def test_ar_subcommand_with_embeddings(tmp_path):
    rng = np.random.default_rng(0)
    people = {f"{s}-{n:03d}": rng.normal(size=8) for s in "mw" for n in (1, 2, 3)}
    names, vectors = [], []
    for person, base in people.items():
        for image in range(1, 27):
            name = f"{person}-{image:02d}.bmp"
            (tmp_path / name).write_bytes(b"")
            names.append(name)
            vectors.append(base + rng.normal(scale=0.01, size=8))
    save_embeddings(tmp_path / "ar.npz", names, np.stack(vectors))
    out = tmp_path / "rep"
    result = CliRunner().invoke(main, ["ar", "--data", str(tmp_path), "--embeddings", str(tmp_path / "ar.npz"),
                                       "--out", str(out)])
    assert result.exit_code == 0, result.output
    stored = json.loads((out / "ar.json").read_text())["results"]
    assert stored["1"]["sunglasses"]["rank1"] == 1.0 and stored["2"]["scarf"]["probes"] == 36


def test_tsne_subcommand(tmp_path):
    rng = np.random.default_rng(1)
    names, vectors = [], []
    for person in range(6):
        (tmp_path / "imgs" / f"p{person}").mkdir(parents=True)
        base = rng.normal(size=16)
        for k in range(20 if person != 5 else 3):  # p5 has too few images to be chosen
            rel = f"p{person}/{k:02d}.jpg"
            (tmp_path / "imgs" / rel).write_bytes(b"")
            names.append(rel)
            vectors.append(base + rng.normal(scale=0.1, size=16))
    save_embeddings(tmp_path / "e.npz", names, np.stack(vectors))
    out = tmp_path / "tsne.png"
    result = CliRunner().invoke(main, ["tsne", "--data", str(tmp_path / "imgs"), "--embeddings", str(tmp_path / "e.npz"),
                                       "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:4] == b"\x89PNG"
    from alob_eval.tsne import pick_identities

    chosen = pick_identities(tmp_path / "imgs", 5, 20, np.random.default_rng(0))
    assert sorted(chosen) == ["p0", "p1", "p2", "p3", "p4"] and all(len(v) == 20 for v in chosen.values())


def test_tsne_keeps_identities_apart():
    from sklearn.metrics import silhouette_score

    from alob_eval.tsne import tsne_2d

    rng = np.random.default_rng(2)
    labels = np.repeat(np.arange(5), 20)
    vectors = rng.normal(size=(5, 32))[labels] + rng.normal(scale=0.2, size=(100, 32))
    assert silhouette_score(tsne_2d(vectors), labels) > 0.5


def _occgen_set(tmp_path: Path) -> Path:
    """A tiny LFW-style occgen set (3 people x 4 synthetic faces, each occluded once), with one
    row marked failed and one mask deleted, as a damaged build could leave it."""
    import cv2
    import pandas as pd

    from occgen.build import BuildConfig, Job, build
    from occgen.synth import OcclusionConfig

    src = tmp_path / "aligned"
    rng = np.random.default_rng(0)
    for person in ("Ann_A", "Ben_B", "Cy_C"):
        (src / person).mkdir(parents=True)
        for k in range(1, 5):
            face = np.full((112, 96, 3), rng.integers(30, 200, 3), np.uint8)
            cv2.ellipse(face, (48, 60), (32, 44), 0, 0, 360, tuple(int(v) for v in rng.integers(120, 230, 3)), -1)
            for x in (31, 65):
                cv2.circle(face, (x, 52), 4, (25, 25, 25), -1)
            cv2.line(face, (36, 90), (60, 90), (120, 40, 40), 3)
            cv2.imwrite(str(src / person / f"{person}_{k:04d}.jpg"), face[:, :, ::-1])
    out = tmp_path / "occ"
    build(Job(src, out, BuildConfig("lfw", OcclusionConfig(factor=2.0, blend="rect"), seed=1)), progress=False)
    manifest = pd.read_csv(out / "manifest.csv", keep_default_na=False)
    occluded = manifest.index[manifest.occluded.astype(str) == "True"]
    assert len(occluded) == 12
    manifest.loc[occluded[0], "status"] = "failed"
    manifest.to_csv(out / "manifest.csv", index=False)
    (out / manifest.loc[occluded[1], "mask_path"]).unlink()
    return out


@pytest.mark.slow
def test_cam_subcommand_end_to_end(tmp_path):
    from alob_train.checkpoint import save_untrained

    data = _occgen_set(tmp_path)
    run = save_untrained(tmp_path / "run", "resnet18", "alob")
    out = tmp_path / "cam"
    runner = CliRunner()
    result = runner.invoke(main, ["cam", "--data", str(data), "--checkpoint", str(run), "--out", str(out),
                                  "--batch-size", "4", "--rows", "3", "--quiet"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["cam.json", "cam.md", "cam_grid.png"]
    assert (out / "cam_grid.png").read_bytes()[:4] == b"\x89PNG"
    report = json.loads((out / "cam.json").read_text())
    counts = report["counts"]
    assert counts["occluded_rows"] == 12 and counts["failed"] == 1 and counts["no_mask"] == 1
    assert counts["usable"] == 10 and counts["scored"] + counts["unscorable"] == 10
    overall = report["results"]["overall"]
    assert set(overall) == {"gradcam", "gradcam++", "centre-prior", "random"}
    for figures in overall.values():
        assert figures["images"] == counts["scored"] > 0
        assert 0.0 <= figures["pointing_game"] <= 1.0
        assert 0.0 <= figures["auc_mean"] <= 1.0 and 0.0 <= figures["auc_pooled"] <= 1.0
    assert "layer4" in report["meta"]["layer"] and "| Grad-CAM++ |" in (out / "cam.md").read_text()
    limited = runner.invoke(main, ["cam", "--data", str(data), "--checkpoint", str(run), "--out", str(tmp_path / "c2"),
                                   "--limit", "3", "--rows", "2", "--quiet"])
    assert limited.exit_code == 0, limited.output
    assert json.loads((tmp_path / "c2" / "cam.json").read_text())["counts"]["not_sampled"] == 7
    base = save_untrained(tmp_path / "base", "resnet18", "baseline")  # no Trimmer: its one backbone on request
    identifier = runner.invoke(main, ["cam", "--data", str(data), "--checkpoint", str(base), "--network", "identifier",
                                      "--out", str(tmp_path / "c3"), "--limit", "2", "--rows", "1", "--quiet"])
    assert identifier.exit_code == 0, identifier.output
    assert json.loads((tmp_path / "c3" / "cam.json").read_text())["meta"]["network"] == "identifier"


def test_cam_subcommand_errors(tmp_path):
    from alob_train.checkpoint import save_untrained

    run = save_untrained(tmp_path / "base", "resnet18", "baseline")
    runner = CliRunner()
    no_manifest = runner.invoke(main, ["cam", "--data", str(tmp_path), "--checkpoint", str(run)])
    assert no_manifest.exit_code == 1 and "no manifest.csv" in no_manifest.output
    (tmp_path / "manifest.csv").write_text("path,mask_path,occluded,status\nimages/a.jpg,masks/a.png,True,ok\n")
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    (tmp_path / "images" / "a.jpg").write_bytes(b"")
    (tmp_path / "masks" / "a.png").write_bytes(b"")
    baseline = runner.invoke(main, ["cam", "--data", str(tmp_path), "--checkpoint", str(run)])
    assert baseline.exit_code == 1 and "without a Trimmer" in baseline.output
    assert len(baseline.output.strip().splitlines()) == 1
    help_text = runner.invoke(main, ["cam", "--help"]).output
    assert "--limit" in help_text and "pointing game" in help_text


def test_folded_batchnorms_keep_the_embedding():
    import torch

    from alob_train.embed import fuse_conv_bn
    from alob_train.model import ALOB

    torch.manual_seed(0)
    for backbone in ("resnet18", "iresnet18"):
        model = ALOB(5, backbone, "alob").eval()
        for module in model.modules():  # trained-looking statistics, so that folding matters
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.normal_()
                module.running_var.uniform_(0.5, 2.0)
        fused = fuse_conv_bn(model)
        left = sum(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
        assert left < sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules()) / 2
        x = torch.randn(2, 3, 112, 96)
        torch.testing.assert_close(fused.embed(x), model.embed(x), rtol=1e-4, atol=1e-4)


def _pair_set(root: Path, pairs: int, txt_folds: int | None = None, fold_of=None) -> tuple[Path, str]:
    """``pairs`` matched and ``pairs`` mismatched pairs of generated people and an embeddings file
    giving each person one vector. With ``txt_folds``: a View-2 style pairs.txt (header
    ``txt_folds pairs/txt_folds``, each fold its matched then its mismatched lines) over empty
    image files; else a pairs.csv whose pair i goes to fold ``fold_of(i, same)``."""
    images, rng, vectors = root / "imgs", np.random.default_rng(0), {}
    for i in range(pairs):
        for name in (f"P{i}", f"Q{i}"):
            (images / name).mkdir(parents=True, exist_ok=True)
            base = rng.normal(size=16)
            for k in (1, 2):
                (images / name / f"{name}_{k:04d}.jpg").write_bytes(b"")
                vectors[f"{name}/{name}_{k:04d}.jpg"] = base + rng.normal(scale=0.05, size=16)
    save_embeddings(root / "e.npz", list(vectors), np.stack(list(vectors.values())))
    if txt_folds:
        per_fold, lines = pairs // txt_folds, [f"{txt_folds} {pairs // txt_folds}"]
        for fold in range(txt_folds):
            block = range(fold * per_fold, (fold + 1) * per_fold)
            lines += [f"P{i}\t1\t2" for i in block] + [f"P{i}\t1\tQ{i}\t1" for i in block]
        (root / "pairs.txt").write_text("\n".join(lines) + "\n")
        return root / "e.npz", f"{images}@{root / 'pairs.txt'}"
    rows = [f"P{i}/P{i}_0001.jpg,{f'P{i}/P{i}_0002.jpg' if same else f'Q{i}/Q{i}_0001.jpg'},{int(same)},"
            f"{fold_of(i, same)}" for same in (True, False) for i in range(pairs)]
    (images / "pairs.csv").write_text("path1,path2,same,fold\n" + "\n".join(rows) + "\n")
    return root / "e.npz", str(images)


def _verify(emb: Path, spec: str, out: Path) -> tuple[object, dict | None]:
    result = CliRunner().invoke(main, ["--embeddings", str(emb), "--bench", f"b={spec}", "--out", str(out), "--quiet"])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    stored = json.loads((out / "results.json").read_text())["results"]["b"] if result.exit_code == 0 else None
    return result, stored


def _one_line_error(result, message: str) -> None:
    """Exit 1 with the message as the last and only error line, no traceback."""
    assert result.exit_code == 1, result.output
    last = result.output.rstrip("\n").splitlines()[-1]
    assert last.startswith("Error: ") and message in last and "Traceback" not in result.output, result.output


def test_a_pair_list_of_one_fold_is_recut_and_says_so(tmp_path):
    """The issue's case, a pairs.txt header '1 n': no held-out threshold without a re-cut."""
    emb, spec = _pair_set(tmp_path / "one", 30, txt_folds=1)
    result, stored = _verify(emb, spec, tmp_path / "r1")
    assert result.exit_code == 0, result.output
    assert stored["folds"] == 10 and stored["accuracy"] == 1.0 and len(stored["fold_accuracies"]) == 10
    assert stored["fold_rule"].startswith("the pair list has one fold: re-cut into 10 folds")
    assert "re-cut into 10 folds" in (tmp_path / "r1" / "results.md").read_text()
    emb, spec = _pair_set(tmp_path / "few", 3, txt_folds=1)  # fewer pairs than 10 folds
    result, stored = _verify(emb, spec, tmp_path / "r2")
    assert result.exit_code == 0 and stored["folds"] == 3 and "re-cut into 3 folds" in stored["fold_rule"]
    emb, spec = _pair_set(tmp_path / "tiny", 1, txt_folds=1)  # one pair of each class: nothing to hold out
    _one_line_error(_verify(emb, spec, tmp_path / "r3")[0], "too few to choose a threshold on held-out pairs")


def test_two_folds_are_used_as_given(tmp_path):
    emb, spec = _pair_set(tmp_path, 20, txt_folds=2)
    result, stored = _verify(emb, spec, tmp_path / "r")
    assert result.exit_code == 0, result.output
    assert stored["folds"] == 2 and stored["fold_rule"] == "the pair list's own folds" and stored["accuracy"] == 1.0


def test_folds_holding_one_class_are_scored(tmp_path):
    """Fold 0 holds only genuine pairs, fold 1 only impostors, fold 2 both: the threshold of
    fold 2 is chosen on one class per training fold, never a crash."""
    emb, spec = _pair_set(tmp_path / "a", 12, fold_of=lambda i, same: 2 if i >= 8 else int(not same))
    result, stored = _verify(emb, spec, tmp_path / "ra")
    assert result.exit_code == 0, result.output
    assert stored["folds"] == 3 and len(stored["fold_accuracies"]) == 3 and 0 <= stored["accuracy"] <= 1
    emb, spec = _pair_set(tmp_path / "b", 6, fold_of=lambda i, same: int(not same))  # each fold one class
    result, stored = _verify(emb, spec, tmp_path / "rb")
    assert result.exit_code == 0, result.output
    assert stored["fold_accuracies"] == [1.0, 1.0]  # a threshold learnt on one class still separates these
    with open(tmp_path / "b" / "imgs" / "pairs.csv") as handle:
        genuine_only = [line for line in handle if not line.rstrip().endswith(",0,1")]
    (tmp_path / "b" / "imgs" / "pairs.csv").write_text("".join(genuine_only))
    _one_line_error(_verify(emb, spec, tmp_path / "rc")[0], "b: verification needs genuine and impostor pairs: "
                                                           "6 genuine, 0 impostor")


def test_non_finite_embeddings_are_one_line_naming_the_images(tmp_path):
    emb, spec = _pair_set(tmp_path, 10, txt_folds=2)
    with np.load(emb) as data:
        paths, vectors = data["paths"].tolist(), data["embeddings"].copy()
    vectors[paths.index("P3/P3_0002.jpg"), 4] = np.nan
    vectors[paths.index("Q1/Q1_0001.jpg"), 0] = np.inf
    save_embeddings(emb, paths, vectors)
    _one_line_error(_verify(emb, spec, tmp_path / "r")[0], "2 images have non-finite (NaN or inf) embeddings: ")
    result = _verify(emb, spec, tmp_path / "r")[0]
    assert "Q1/Q1_0001.jpg" in result.output and "P3/P3_0002.jpg" in result.output


def test_pairs_naming_missing_images_are_skipped_and_counted(tmp_path):
    """With a model that reads images (a checkpoint), pairs whose image is missing are dropped,
    counted in the results and named once on the terminal; no pair left is a one-line error."""
    import cv2

    from alob_train.checkpoint import save_untrained

    emb, spec = _pair_set(tmp_path, 8, txt_folds=2)
    rng = np.random.default_rng(3)
    for image in (tmp_path / "imgs").glob("*/*.jpg"):
        cv2.imwrite(str(image), rng.integers(0, 255, (112, 96, 3), dtype=np.uint8))
    (tmp_path / "imgs" / "P5" / "P5_0001.jpg").unlink()  # in two pairs (matched and mismatched)
    run = save_untrained(tmp_path / "run", "resnet18", "baseline")
    out = tmp_path / "r"
    result = CliRunner().invoke(main, ["--checkpoint", str(run), "--bench", f"b={spec}", "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "b: skipped 2 pairs naming 1 missing images, e.g. " in result.output
    stored = json.loads((out / "results.json").read_text())["results"]["b"]
    assert stored["pairs"] == 14 and stored["skipped_pairs"] == 2 and stored["missing_images"] == 1
    assert "2 pairs skipped, naming 1 missing images" in (out / "results.md").read_text()
    for image in (tmp_path / "imgs").glob("*/*_0001.jpg"):
        image.unlink()
    result = CliRunner().invoke(main, ["--checkpoint", str(run), "--bench", f"b={spec}", "--out", str(out), "--quiet"])
    _one_line_error(result, "b: no pair left to score (16 pairs name ")


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A three-epoch run whose validation peaked at epoch 2 (best.pt = epoch 2, last.pt = epoch 3)
    and a pair set of its image size."""
    import alob_train.engine as engine
    from train_fixtures import write_folders, write_pairs

    from alob_train.config import TrainConfig

    root = tmp_path_factory.mktemp("run")
    accuracies = iter([0.6, 0.9, 0.7])
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(engine, "validate_folder", lambda *a, **k: {"val_acc": next(accuracies), "val_std": 0.0,
                                                                  "val_pairs": 10.0})
        config = TrainConfig(data=str(write_folders(root / "data", classes=3, per_class=4)), out=str(root / "run"),
                             backbone="lightcnn9", batch_size=4, epochs=3, workers=0, lr_trimmer=0.05,
                             lr_identifier=0.01, val=str(root), tensorboard=False, progress=False, threads=1)
        engine.train(config)
    return root / "run", write_pairs(root / "pairs", classes=3, per_class=4)


def _direct_embeddings(run: Path, which: str, paths: list[str], flip: bool = False) -> np.ndarray:
    """The checkpoint's embeddings of the images, computed here from the unfused model."""
    import torch

    from alob_common.images import read_rgb
    from alob_train.checkpoint import load_model
    from alob_train.preprocess import fit_to_input, normalize

    model, cfg = load_model(run, which)
    images = [torch.from_numpy(read_rgb(p)).permute(2, 0, 1) for p in paths]
    views = [images] + ([[image.flip(-1) for image in images]] if flip else [])
    return sum(model.embed(normalize(torch.stack([fit_to_input(i, tuple(cfg["input_size"])) for i in view]))).numpy()
               for view in views)


@pytest.mark.parametrize("which, used", [(None, "best"), ("last", "last"), ("epoch_001", "epoch_001")])
def test_checkpoint_choice_best_by_default_last_or_an_epoch(trained_run, tmp_path, which, used):
    """Without --which a run with best.pt is scored with it, not last.pt; --which last and
    --which epoch_NNN pick those files: the scored embeddings are that checkpoint's."""
    from alob_eval.embeddings import load_embeddings

    run, pairs = trained_run
    args = ["--checkpoint", str(run), "--bench", f"x={pairs}", "--backend", "torch", "--out", str(tmp_path / "rep"),
            "--save-embeddings", str(tmp_path / "e.npz"), "--quiet"] + (["--which", which] if which else [])
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "rep" / "results.json").read_text())["meta"]["model"].endswith(f"(run, {used})")
    saved = load_embeddings(tmp_path / "e.npz")
    paths = sorted(saved)
    np.testing.assert_allclose(np.stack([saved[p] for p in paths]), _direct_embeddings(run, used, paths),
                               rtol=1e-4, atol=1e-4)
    others = {"best", "last", "epoch_001"} - {used}
    for other in others:
        assert not np.allclose(np.stack([saved[p] for p in paths]), _direct_embeddings(run, other, paths), atol=1e-3)


def test_flip_fusion_is_the_sum_over_image_and_mirror(trained_run, tmp_path):
    """--flip: each embedding is f(image) + f(mirrored image), and the reported accuracy is the
    10-fold accuracy of those vectors' cosines."""
    from alob_common.pairs import pairs_csv_table
    from alob_common.verification import cosine_scores, fold_accuracy, verification_folds
    from alob_eval.embeddings import load_embeddings

    run, pairs = trained_run
    result = CliRunner().invoke(main, ["--checkpoint", str(run), "--bench", f"x={pairs}", "--backend", "torch",
                                       "--flip", "--out", str(tmp_path / "rep"), "--save-embeddings",
                                       str(tmp_path / "e.npz"), "--quiet"])
    assert result.exit_code == 0, result.output
    saved = load_embeddings(tmp_path / "e.npz")
    paths = sorted(saved)
    fused = _direct_embeddings(run, "best", paths, flip=True)
    np.testing.assert_allclose(np.stack([saved[p] for p in paths]), fused, rtol=1e-4, atol=1e-4)
    assert not np.allclose(fused, 2 * _direct_embeddings(run, "best", paths), atol=1e-3)
    table = pairs_csv_table(pairs)
    vectors = dict(zip(paths, fused))
    scores = cosine_scores(np.stack([vectors[p] for p in table.path1]), np.stack([vectors[p] for p in table.path2]))
    folds, _ = verification_folds(table.same.to_numpy(bool), table.fold.to_numpy())
    expected = fold_accuracy(scores, table.same.to_numpy(bool), folds).mean
    stored = json.loads((tmp_path / "rep" / "results.json").read_text())
    assert stored["meta"]["flip"] is True and stored["results"]["x"]["accuracy"] == pytest.approx(expected, abs=1e-9)
