"""Every command against a corpus of bad inputs made here: each ends with its own exit code, 0 (work
done, bad items recorded), 1 (a one-line error) or 2 (a usage error, one error line under click's
usage header), never a Python traceback, and leaves what an earlier run wrote as it was. The
commands run as real processes."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from train_fixtures import write_folders, write_pairs, write_shards

BIN = Path(sys.executable).parent


def _jpeg(seed: int = 0, size: int = 64) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (size, size, 3), dtype=np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """Bad inputs of every kind, plus a few good ones to run against."""
    root = tmp_path_factory.mktemp("corpus")
    (root / "empty").mkdir()
    (root / "only-text").mkdir()
    (root / "only-text" / "notes.txt").write_text("no images here")
    (root / "a-file").write_text("a file where a folder is expected")
    bad = root / "bad-images" / "person"
    bad.mkdir(parents=True)
    for k in range(3):
        (bad / f"good_{k}.jpg").write_bytes(_jpeg(k))
    (bad / "zero.jpg").write_bytes(b"")
    (bad / "truncated.jpg").write_bytes(_jpeg(9)[:200])
    (bad / "jpeg-named.png").write_bytes(_jpeg(7))
    (bad / "text-named.jpg").write_text("not an image")
    (root / "pairs-malformed.txt").write_text("10 300\nperson 1\nthis line is wrong too much here\n")
    (root / "pairs-empty.txt").write_text("")
    write_shards(root / "shards-good", classes=3, per_class=4)
    write_folders(root / "folders-good", classes=3, per_class=4)
    write_pairs(root / "pairs-good", classes=3, per_class=4)
    garbage = root / "shards-garbage" / "shards"
    garbage.mkdir(parents=True)
    (garbage / "train-000000.tar").write_bytes(b"\x00garbage" * 100)
    (root / "shards-garbage" / "classes.csv").write_text("label,identity,count\n0,a,1\n")
    (root / "shards-disagree").mkdir()
    write_shards(root / "shards-disagree", classes=3, per_class=4)
    (root / "shards-disagree" / "classes.csv").write_text("label,identity,count\n0,only,1\n")
    nojson = root / "shards-nojson" / "shards"
    nojson.mkdir(parents=True)
    with tarfile.open(nojson / "train-000000.tar", "w") as tar:
        data = _jpeg(1)
        info = tarfile.TarInfo("a/0001.jpg")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    (root / "shards-nojson" / "classes.csv").write_text("label,identity,count\n0,a,1\n")
    (root / "not-npz.npz").write_text("not a numpy file")
    (root / "garbage.bin").write_bytes(b"\x80\x04junk")
    (root / "pack-garbage").mkdir()
    (root / "pack-garbage" / "train.rec").write_bytes(b"\x00garbage" * 100)
    (root / "pack-garbage" / "train.idx").write_text("0\t0\n1\t16\n")
    _bad_sample_data(root)
    return root


def _bad_sample_data(root: Path) -> None:
    """Training data with one bad sample among good ones, in each form that can hold one."""
    jpeg = write_shards(root / "shards-bad-jpeg", classes=3, per_class=4, shards=1, fmt="jpg")
    tar = jpeg / "shards" / "train-000000.tar"
    with tarfile.open(tar) as src:
        members = [(m, src.extractfile(m).read()) for m in src.getmembers()]
    jpegs = [k for k, (member, _) in enumerate(members) if member.name.endswith(".jpg")]
    with tarfile.open(tar, "w") as out:
        for k, (member, data) in enumerate(members):
            if k == jpegs[len(jpegs) // 2]:
                data = data[:300] + bytes(len(data) - 300)  # the header kept, the scan data zeroed
            out.addfile(member, io.BytesIO(data))
    zero = write_folders(root / "folders-zero-byte", classes=3, per_class=4)
    (zero / "id001" / "0002.png").write_bytes(b"")
    cut = write_shards(root / "shards-cut", classes=3, per_class=4, shards=2)
    last = cut / "shards" / "train-000001.tar"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2 + 100])  # cut in the middle of a member
    mixed = write_shards(root / "shards-one-garbage", classes=3, per_class=4, shards=2)
    (mixed / "shards" / "train-000002.tar").write_bytes(b"\x00garbage" * 100)


def _run(*cmd: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / cmd[0]), *cmd[1:]], capture_output=True, text=True, timeout=300, cwd=cwd)


def _no_traceback(result: subprocess.CompletedProcess, allowed=(0, 1, 2)) -> None:
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output[-3000:]
    assert result.returncode in allowed, (result.returncode, output[-2000:])


def _error_line(result: subprocess.CompletedProcess) -> str:
    """The one line of a failed command's stderr; a usage error (exit 2) may be preceded by
    click's usage header (``Usage: …``, ``Try '… --help' for help.`` and a blank line)."""
    lines = result.stderr.splitlines()
    if result.returncode == 2 and lines and lines[0].startswith("Usage: "):
        assert lines[1].startswith("Try '") and lines[2] == "", result.stderr
        lines = lines[3:]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    return lines[0]


def _snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def earlier(corpus, tmp_path_factory) -> dict[str, Path]:
    """What earlier, successful runs wrote, by the names the cases write to: an aligned folder and
    an occgen build (each made by its command's "bad image files" case), a training run, an
    evaluation report, a .bin, and a pipeline work folder holding a training run."""
    root = tmp_path_factory.mktemp("earlier")
    made = {"align": root / "align", "occgen": root / "occgen", "other": root / "other"}
    for folder in made.values():
        folder.mkdir()
    for name, where in (("align: bad image files", made["align"]), ("occgen build: bad image files", made["occgen"])):
        result = _run(*[a.format(root=corpus, tmp=where) for a in CASES[name][2]], cwd=where)
        assert result.returncode == 0, result.stderr
    other = made["other"]
    for cmd in (("alob-train", "--data", f"{corpus}/shards-good", "--out", f"{other}/run", "--backbone", "lightcnn9",
                 "--batch-size", "4", "--max-steps", "1", "--workers", "0", "--quiet", "--no-tensorboard"),
                ("alob-eval", "--checkpoint", f"{other}/run", "--bench", f"x={corpus}/pairs-good", "--out",
                 f"{other}/rep", "--quiet"),
                ("occgen", "to-bin", "--data", f"{corpus}/pairs-good", "--out-file", f"{other}/x.bin")):
        result = _run(*cmd, cwd=other)
        assert result.returncode == 0, result.stderr
    (other / "w" / "runs").mkdir(parents=True)
    shutil.copytree(other / "run", other / "w" / "runs" / "baseline")
    return made


# name: (exit code, what the one error line says, the command line); exit 0 = the work is done
# and the bad items are recorded
CASES = {
    # align-faces
    "align: missing SRC": (1, "source folder not found", ("align-faces", "--data", "{root}/nope", "--out", "{tmp}/o")),
    "align: empty SRC": (1, "found nothing but folders", ("align-faces", "--data", "{root}/empty", "--out", "{tmp}/o")),
    "align: SRC without images": (1, "(found 1 non-image file(s) (notes.txt))",
                                  ("align-faces", "--data", "{root}/only-text", "--out", "{tmp}/o")),
    "align: bad image files": (0, "", ("align-faces", "--data", "{root}/bad-images", "--out", "{tmp}/o", "--workers",
                                       "0", "--quiet")),
    "align: OUT under a file": (1, "cannot write to output folder",
                                ("align-faces", "--data", "{root}/bad-images", "--out", "{root}/a-file/o",
                                 "--workers", "0")),
    "align: bad size": (2, "Invalid value for '--size': unsupported crop size '3x3'",
                        ("align-faces", "--data", "{root}/bad-images", "--out", "{tmp}/o", "--size", "3x3")),
    "align: bad shard index": (1, "--shard-index must lie in 0..1", ("align-faces", "--data", "{root}/bad-images",
                                                                     "--out", "{tmp}/o",
                                                                     "--num-shards", "2", "--shard-index", "5")),
    # occgen
    "occgen build: missing SRC": (1, "source folder not found", ("occgen", "build", "--source", "folder", "--data",
                                                                 "{root}/nope", "--out", "{tmp}/o")),
    "occgen build: SRC without images": (1, "no images found under", ("occgen", "build", "--source", "folder",
                                                                      "--data", "{root}/only-text", "--out", "{tmp}/o")),
    "occgen build: bad image files": (0, "", ("occgen", "build", "--source", "folder", "--data", "{root}/bad-images",
                                              "--out", "{tmp}/o", "--workers", "0", "--quiet")),
    "occgen build: malformed pairs": (1, "pairs-malformed.txt: no readable pair line (line 2: expected 3 or 4 fields)",
                                      ("occgen", "build", "--source", "lfw", "--data", "{root}/bad-images", "--pairs",
                                       "{root}/pairs-malformed.txt", "--out", "{tmp}/o", "--quiet")),
    "occgen build: empty pairs": (1, "first line must be", ("occgen", "build", "--source", "lfw", "--data",
                                                            "{root}/bad-images", "--pairs", "{root}/pairs-empty.txt",
                                                            "--out", "{tmp}/o", "--quiet")),
    "occgen build: OUT under a file": (1, "cannot write to output folder", ("occgen", "build", "--source", "folder",
                                                                            "--data", "{root}/bad-images", "--out",
                                                                            "{root}/a-file/o", "--quiet")),
    "occgen build: garbage pack": (1, "where a RecordIO part header belongs", ("occgen", "build", "--source", "rec",
                                                                               "--data", "{root}/pack-garbage", "--out",
                                                                               "{tmp}/o", "--workers", "0", "--quiet")),
    "occgen build: pack without index": (1, "a pack needs its index a-file.idx", ("occgen", "build", "--source", "rec",
                                                                                  "--data", "{root}/a-file", "--out",
                                                                                  "{tmp}/o")),
    "occgen build: garbage bin": (1, "not a readable verification pickle", ("occgen", "build", "--source", "bin",
                                                                            "--data", "{root}/garbage.bin", "--out",
                                                                            "{tmp}/o")),
    "occgen build: bin is a folder": (1, "verification .bin not found", ("occgen", "build", "--source", "bin", "--data",
                                                                         "{root}/empty", "--out", "{tmp}/o")),
    "occgen to-bin: no pairs.csv": (1, "only-text: no pairs.csv", ("occgen", "to-bin", "--data", "{root}/only-text",
                                                                   "--out-file", "{tmp}/x.bin")),
    "occgen to-bin: OUT under a file": (1, "cannot write", ("occgen", "to-bin", "--data", "{root}/pairs-good",
                                                            "--out-file", "{root}/a-file/x.bin")),
    "occgen preview: not a dataset": (1, "no manifest.csv images or shards", ("occgen", "preview", "--data",
                                                                              "{root}/only-text")),
    "occgen preview: missing": (2, "Invalid value for '--data'", ("occgen", "preview", "--data", "{root}/nope")),
    "occgen assets: bad occluders": (1, "no usable occluder images", ("occgen", "assets", "--occluders",
                                                                      "{root}/only-text")),
    # alob-train
    "train: missing data": (1, "data folder not found", ("alob-train", "--data", "{root}/nope", "--out", "{tmp}/run2")),
    "train: empty data": (1, "no identity folders with images", ("alob-train", "--data", "{root}/empty", "--out",
                                                                 "{tmp}/run2")),
    "train: garbage shard": (1, "no readable shard", ("alob-train", "--data", "{root}/shards-garbage", "--out",
                                                      "{tmp}/run2", "--max-steps", "1", "--workers", "0", "--quiet")),
    "train: classes.csv disagrees": (1, "1 samples are fewer than one batch of 4",  # classes.csv counts 1
                                     ("alob-train", "--data", "{root}/shards-disagree", "--out", "{tmp}/run2",
                                      "--max-steps", "1", "--workers", "0", "--quiet", "--batch-size", "4")),
    "train: shard without json": (1, "no training sample could be read", ("alob-train", "--data",
                                                                          "{root}/shards-nojson", "--out", "{tmp}/run2",
                                                                          "--max-steps", "1", "--workers", "0",
                                                                          "--quiet", "--batch-size", "1")),
    "train: resume nothing": (1, "nothing to resume", ("alob-train", "--out", "{tmp}/run2", "--resume")),
    "train: data into an earlier run": (1, "--resume", ("alob-train", "--data", "{root}/folders-good", "--out",
                                                        "{tmp}/run", "--max-steps", "1", "--workers", "0", "--quiet")),
    "train: bad backbone": (2, "Invalid value for '--backbone': 'vgg'", ("alob-train", "--data", "{root}/folders-good",
                                                                         "--backbone", "vgg")),
    # alob-eval
    "eval: no model": (2, "give exactly one model", ("alob-eval", "--bench", "x={root}/pairs-good", "--out",
                                                     "{tmp}/rep")),
    "eval: missing checkpoint": (2, "Invalid value for '--checkpoint'", ("alob-eval", "--checkpoint", "{root}/nope",
                                                                         "--bench", "x={root}/pairs-good", "--out",
                                                                         "{tmp}/rep")),
    "eval: embeddings not npz": (1, "not-npz.npz is not a readable embeddings file", (
        "alob-eval", "--embeddings", "{root}/not-npz.npz", "--bench", "x={root}/pairs-good", "--out", "{tmp}/rep")),
    "eval: malformed pairs.txt": (1, "pairs-malformed.txt:2: expected 3 or 4 fields", (
        "alob-eval", "--embeddings", "{root}/not-npz.npz", "--bench", "x={root}/bad-images@{root}/pairs-malformed.txt",
        "--out", "{tmp}/rep")),
    "eval: garbage bin": (1, "not a readable verification pickle", ("alob-eval", "--embeddings", "{root}/not-npz.npz",
                                                                    "--bench", "x={root}/garbage.bin", "--out",
                                                                    "{tmp}/rep")),
    "eval: bench without pairs": (2, "no pair list at", ("alob-eval", "--embeddings", "{root}/not-npz.npz", "--bench",
                                                         "x={root}/empty", "--out", "{tmp}/rep")),
    "eval ar: empty": (1, "no AR-named images", ("alob-eval", "ar", "--data", "{root}/empty", "--embeddings",
                                                 "{root}/not-npz.npz", "--out", "{tmp}/rep")),
    "eval tsne: missing": (2, "Invalid value for '--data'", ("alob-eval", "tsne", "--data", "{root}/nope",
                                                               "--embeddings", "{root}/not-npz.npz", "--out-file",
                                                               "{tmp}/rep/tsne.png")),
    "eval cam: not a dataset": (2, "Invalid value for '--checkpoint'", ("alob-eval", "cam", "--data",
                                                                        "{root}/only-text", "--checkpoint",
                                                                        "{root}/nope", "--out", "{tmp}/rep")),
    "eval diagnose: no pairs": (2, "no pair list at", ("alob-eval", "diagnose", "--checkpoint", "{tmp}/run",
                                                       "--bench", "x={root}/only-text", "--out", "{tmp}/rep")),
    # alob-pipeline
    "pipeline: missing lfw": (1, "expected lfw-deepfunneled/", ("alob-pipeline", "--data", "{root}/nope", "--out",
                                                                "{tmp}/w", "--no-download")),
    "pipeline: empty lfw": (1, "expected lfw-deepfunneled/", ("alob-pipeline", "--data", "{root}/empty", "--out",
                                                              "{tmp}/w", "--no-download")),
    "pipeline: bad folds": (2, "'eleven': expected a comma-separated list", ("alob-pipeline", "--data",
                                                                             "{root}/empty", "--out", "{tmp}/w",
                                                                             "--train-on", "eleven")),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CASES))
def test_command_on_bad_input_never_tracebacks(corpus, earlier, tmp_path, name):
    """The exact exit code, one error line saying what is wrong, no traceback, and what earlier
    runs wrote where the command writes (OUT, the run, the report, the .bin, the work folder)
    left as it was; a run that does its work (exit 0) resumes an earlier identical run."""
    code, says, command = CASES[name]
    mine = earlier["align" if command[0] == "align-faces" else "occgen" if command[0] == "occgen" else "other"]
    for item in mine.iterdir():
        shutil.copytree(item, tmp_path / item.name) if item.is_dir() else shutil.copy2(item, tmp_path / item.name)
    before = _snapshot(tmp_path)
    result = _run(*[a.format(root=corpus, tmp=tmp_path) for a in command], cwd=tmp_path)
    _no_traceback(result, allowed=(code,))
    after = _snapshot(tmp_path)
    if code:
        assert says in _error_line(result), result.stderr
        assert {k: v for k, v in after.items() if k in before} == before, "an earlier run's output was changed"
        assert not [k for k in after if k not in before and not k.startswith("run2/")], sorted(set(after) - set(before))
    else:
        assert result.stderr == ""
        del before["o/dataset.json"], after["o/dataset.json"]  # the rerun's time and command
        assert after == before, "a resumed rerun changed the earlier output"


_TRAIN = ("--backbone", "lightcnn9", "--batch-size", "4", "--max-steps", "3", "--workers", "0", "--quiet",
          "--no-tensorboard")


@pytest.mark.slow
@pytest.mark.parametrize("data", ["shards-bad-jpeg", "folders-zero-byte", "shards-cut", "shards-one-garbage"])
def test_one_bad_sample_is_skipped_and_counted(corpus, tmp_path, data):
    result = _run("alob-train", "--data", str(corpus / data), "--out", str(tmp_path / "run"), *_TRAIN)
    _no_traceback(result, allowed=(0,))
    bad = json.loads((tmp_path / "run" / "run.json").read_text())["bad_samples"]
    assert bad["count"] == 1 and len(bad["samples"]) == 1, bad
    assert "skipped 1 bad samples" in result.stdout


@pytest.mark.slow
def test_too_many_bad_samples_is_a_one_line_error(corpus, tmp_path):
    result = _run("alob-train", "--data", str(corpus / "folders-zero-byte"), "--out", str(tmp_path / "run"),
                  "--max-bad-samples", "0", "--epochs", "1", *_TRAIN)
    _no_traceback(result, allowed=(1,))
    assert "--max-bad-samples 0" in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr


def _corrupt_run(corpus: Path, tmp_path: Path) -> Path:
    run = tmp_path / "run"
    result = _run("alob-train", "--data", str(corpus / "shards-good"), "--out", str(run), "--backbone", "lightcnn9",
                  "--batch-size", "4", "--max-steps", "2", "--workers", "0", "--quiet", "--no-tensorboard")
    assert result.returncode == 0, result.stderr[-2000:]
    return run


@pytest.mark.slow
def test_damaged_run_folder_is_an_error_and_is_not_overwritten(corpus, tmp_path):
    run = _corrupt_run(corpus, tmp_path)
    last = run / "checkpoints" / "last.pt"
    last.write_bytes(last.read_bytes()[:1000])  # a checkpoint cut short
    before = last.read_bytes()
    for cmd in (("alob-train", "--out", str(run), "--resume", "--max-steps", "4"),
                ("alob-eval", "--checkpoint", str(run), "--which", "last", "--bench", f"x={corpus / 'pairs-good'}"),
                ("alob-eval", "diagnose", "--checkpoint", str(run), "--which", "last",
                 "--bench", f"x={corpus / 'pairs-good'}")):
        result = _run(*cmd, cwd=tmp_path)
        _no_traceback(result, allowed=(1,))
        assert "damaged" in _error_line(result) and str(last) in result.stderr, result.stderr
    assert last.read_bytes() == before
    for text in ("{ this is not json", json.dumps({"config": {"backbone": 7, "batch_size": "many"}})):
        (run / "run.json").write_text(text)
        result = _run("alob-train", "--out", str(run), "--resume")
        _no_traceback(result, allowed=(1,))
        assert str(run / "run.json") in _error_line(result)
        assert (run / "run.json").read_text() == text and last.read_bytes() == before


# ---- ONNX models, alob-export and alob-eval suite (issue 21) ----

def _onnx_inputs(root: Path) -> None:
    """An .onnx that is not a model, and a real model whose input is not an image batch (rank 2)."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    (root / "text.onnx").write_text("not a model")
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 10])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 10])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(root / "flat.onnx"))


ONNX_CASES = {
    "eval: onnx file not a model": ("alob-eval", "--onnx", "{root}/text.onnx", "--bench", "x={root}/pairs-good",
                                    "--out", "{tmp}/r"),
    "eval: onnx input of another rank": ("alob-eval", "--onnx", "{root}/flat.onnx", "--bench", "x={root}/pairs-good",
                                         "--out", "{tmp}/r"),
    "eval: onnx bad mean": ("alob-eval", "--onnx", "{root}/flat.onnx", "--onnx-mean", "a,b", "--bench",
                            "x={root}/pairs-good", "--out", "{tmp}/r"),
    "eval ar: onnx not a model": ("alob-eval", "ar", "--data", "{root}/bad-images", "--onnx", "{root}/text.onnx"),
    "eval embed: onnx not a model": ("alob-eval", "embed", "--data", "{root}/bad-images", "--onnx", "{root}/text.onnx",
                                     "--out", "{tmp}/e"),
    "eval suite: garbage bin": ("alob-eval", "suite", "--set", "{root}/garbage.bin", "--onnx", "{root}/flat.onnx",
                                "--out", "{tmp}/s", "--quiet"),
    "eval suite: folder with no sets": ("alob-eval", "suite", "--set", "{root}/empty", "--onnx", "{root}/flat.onnx",
                                        "--out", "{tmp}/s"),
    "eval suite: missing set": ("alob-eval", "suite", "--set", "{root}/nope.bin", "--onnx", "{root}/flat.onnx"),
    "eval suite: folder set without pairs": ("alob-eval", "suite", "--set", "x={root}/bad-images@{root}/nope.txt",
                                             "--onnx", "{root}/flat.onnx"),
    "eval suite: onnx model not a model": ("alob-eval", "suite", "--set", "x={root}/pairs-good@{root}/pairs-malformed.txt",
                                           "--onnx", "{root}/text.onnx", "--out", "{tmp}/s", "--quiet"),
    "eval suite: malformed factor list": ("alob-eval", "suite", "--set", "{root}/garbage.bin", "--onnx",
                                          "{root}/flat.onnx", "--factor", "2..1"),
    "export: missing run": ("alob-export", "--checkpoint", "{root}/nope", "--out-file", "{tmp}/x.onnx"),
    "export: not a run": ("alob-export", "--checkpoint", "{root}/only-text", "--out-file", "{tmp}/x.onnx", "--data",
                          "{root}/bad-images"),
    "export: not a run, positional form": ("alob-export", "{root}/only-text", "{tmp}/x.onnx"),
    "export: OUT not onnx": ("alob-export", "--checkpoint", "{root}/only-text", "--out-file", "{tmp}/x.pt"),
    "export: no model": ("alob-export", "--out-file", "{tmp}/x.onnx"),
}


def _run_tool(*cmd: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """As _run; alob-export through its module until the console script is installed."""
    if cmd[0] == "alob-export" and not (BIN / "alob-export").exists():
        return subprocess.run([sys.executable, "-m", "alob_eval.export", *cmd[1:]], capture_output=True, text=True,
                              timeout=300, cwd=cwd)
    return _run(*cmd, cwd=cwd)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(ONNX_CASES))
def test_onnx_export_and_suite_bad_inputs_never_traceback(corpus, tmp_path, name):
    _onnx_inputs(corpus)
    args = [a.format(root=corpus, tmp=tmp_path) for a in ONNX_CASES[name]]
    result = _run_tool(*args, cwd=tmp_path)
    _no_traceback(result, allowed=(1, 2))
    if result.returncode == 1:
        errors = [line for line in result.stderr.strip().splitlines() if not line.startswith("warning: ")]
        assert len(errors) == 1, result.stderr


# The README's failure table ("Inputs and failures, for every command"): every row's case is run
# here and must exit with the code the row states; a row without a case here fails, so the table
# and this list cannot drift apart. (Issue 22; kept apart from the sweep above.)
README_CASES = {
    ("align-faces", "an unreadable image among good ones"):
        ("align-faces", "--data", "{root}/bad-images", "--out", "{tmp}/o", "--workers", "0", "--quiet",
         "--device", "cpu"),
    ("align-faces", "the input folder is missing"): ("align-faces", "--data", "{root}/nope", "--out", "{tmp}/o"),
    ("align-faces", "an unknown `--size`"): ("align-faces", "--data", "{root}/bad-images", "--out", "{tmp}/o",
                                            "--size", "3x3"),
    ("occgen build", "an unreadable image among good ones"):
        ("occgen", "build", "--source", "folder", "--data", "{root}/bad-images", "--out", "{tmp}/o",
         "--workers", "0", "--quiet"),
    ("occgen build", "the input folder holds no image"):
        ("occgen", "build", "--source", "folder", "--data", "{root}/only-text", "--out", "{tmp}/o"),
    ("occgen build", "two size modes at once"):
        ("occgen", "build", "--source", "folder", "--data", "{root}/bad-images", "--out", "{tmp}/o",
         "--factor", "2", "--ratio", "0.5"),
    ("alob-train", "an unreadable sample among good ones"):
        ("alob-train", "--data", "{root}/folders-zero-byte", "--out", "{tmp}/run", *_TRAIN),
    ("alob-train", "the training data is missing"): ("alob-train", "--data", "{root}/nope", "--out", "{tmp}/run"),
    ("alob-train", "a damaged `last.pt` on `--resume`"): ("alob-train", "--out", "{damaged}", "--resume"),
    ("alob-train", "an unknown `--backbone`"): ("alob-train", "--data", "{root}/folders-good", "--backbone", "vgg"),
    ("alob-eval", "pairs naming missing images"):
        ("alob-eval", "--checkpoint", "{run}", "--bench", "x={missing}", "--out", "{tmp}/r", "--quiet",
         "--device", "cpu"),
    ("alob-eval", "an unreadable pair list"):
        ("alob-eval", "--checkpoint", "{run}", "--bench", "x={root}/bad-images@{root}/pairs-malformed.txt",
         "--out", "{tmp}/r"),
    ("alob-eval", "two models at once"):
        ("alob-eval", "--checkpoint", "{run}", "--reference", "facenet", "--bench", "x={root}/pairs-good"),
    ("alob-eval", "a malformed `--bench`"): ("alob-eval", "--checkpoint", "{run}", "--bench", "no-equals-sign"),
    ("alob-eval embed", "an unreadable image among good ones"):
        ("alob-eval", "embed", "--data", "{root}/bad-images", "--checkpoint", "{run}", "--out", "{tmp}/e",
         "--quiet", "--device", "cpu"),
    ("alob-eval", "an ONNX file that is not a model"):
        ("alob-eval", "--onnx", "{onnx}", "--bench", "x={root}/pairs-good", "--out", "{tmp}/r"),
    ("alob-eval suite", "a `.bin` that cannot be read"):
        ("alob-eval", "suite", "--set", "{root}/garbage.bin", "--checkpoint", "{run}", "--out", "{tmp}/s", "--quiet"),
    ("alob-eval suite", "a folder holding no set"):
        ("alob-eval", "suite", "--set", "{root}/empty", "--checkpoint", "{run}", "--out", "{tmp}/s"),
    ("alob-eval suite", "a malformed `--factor`"):
        ("alob-eval", "suite", "--set", "{root}/garbage.bin", "--checkpoint", "{run}", "--factor", "two"),
    ("alob-export", "a run folder without a checkpoint"):
        ("alob-export", "--checkpoint", "{root}/only-text", "--out-file", "{tmp}/x.onnx", "--data", "{root}/bad-images"),
    ("alob-export", "two models at once"):
        ("alob-export", "--checkpoint", "{run}", "--reference", "facenet", "--out-file", "{tmp}/x.onnx"),
    ("alob-pipeline", "LFW not found (`--no-download`)"):
        ("alob-pipeline", "--data", "{root}/empty", "--out", "{tmp}/w", "--no-download"),
    ("alob-pipeline", "a malformed `--train-on`"): ("alob-pipeline", "--data", "{root}/empty", "--train-on", "eleven"),
}


def _readme_failure_rows() -> list[tuple[str, str, int]]:
    """(command, case, exit code) of each row of the README's failure table."""
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = text[text.index("## Inputs and failures"):]
    section = section[: section.index("\n## ", 1)]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) == 4 and cells[2].isdigit():
            rows.append((cells[0].strip("`"), cells[1], int(cells[2])))
    return rows


@pytest.fixture(scope="module")
def readme_inputs(corpus, tmp_path_factory) -> dict[str, Path]:
    """A checkpoint, a run whose last.pt is damaged, a pair set with one image missing."""
    from alob_train.checkpoint import save_untrained

    root = tmp_path_factory.mktemp("readme")
    run = save_untrained(root / "run", "lightcnn9", "alob", (40, 32), classes=3)
    damaged = root / "damaged"
    result = _run("alob-train", "--data", str(corpus / "shards-good"), "--out", str(damaged), *_TRAIN)
    assert result.returncode == 0, result.stderr[-2000:]
    last = damaged / "checkpoints" / "last.pt"
    last.write_bytes(last.read_bytes()[:1000])
    missing = write_pairs(root / "missing", classes=3, per_class=4)
    (missing / "images" / "id000" / "0000.png").unlink()
    (root / "text.onnx").write_text("not a model")
    return {"run": run, "damaged": damaged, "missing": missing, "onnx": root / "text.onnx"}


def test_the_readme_failure_table_is_found():
    rows = _readme_failure_rows()
    assert len(rows) >= 15 and {command for command, _, _ in rows} >= {"align-faces", "occgen build", "alob-train",
                                                                        "alob-eval", "alob-pipeline"}
    assert {code for _, _, code in rows} == {0, 1, 2}


@pytest.mark.slow
@pytest.mark.parametrize("row", _readme_failure_rows(), ids=lambda r: f"{r[0]}: {r[1]} -> {r[2]}")
def test_each_readme_failure_row_exits_as_stated(corpus, readme_inputs, tmp_path, row):
    command, case, code = row
    assert (command, case) in README_CASES, f"the README's row {command}: {case!r} has no case in this test"
    args = [a.format(root=corpus, tmp=tmp_path, **readme_inputs) for a in README_CASES[(command, case)]]
    result = _run_tool(*args, cwd=tmp_path)
    _no_traceback(result, allowed=(code,))
    if code:
        error = [line for line in result.stderr.splitlines() if not line.startswith("warning: ")]
        assert len(error) == 1 or (code == 2 and error[-1].startswith("Error:")), result.stderr
    if (command, case) == ("alob-eval", "pairs naming missing images"):
        results = json.loads((tmp_path / "r" / "results.json").read_text())["results"]["x"]
        assert results["skipped_pairs"] >= 1 and results["missing_images"] == 1
