"""occgen and insightface's formats: a RecordIO pack or a verification .bin as the source, a pack
as the output (--format rec), a folder dataset to a .bin (to-bin); all deterministic across
workers and jobs."""

from __future__ import annotations

import hashlib
import struct
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from alob_common.insightface_pack import open_pack
from alob_common.recordio import RecordWriter, pack_image_record, unpack_image_record
from alob_common.verification_bin import read_bin, write_bin
from occgen.cli import main

LABELS = [0, 0, 0, 1, 1, 2, 2, 2, 2]  # 3 identities, images in label order as insightface packs them


def face_112(rng: np.random.Generator) -> np.ndarray:
    """A 112x112 crop with a skin-toned oval, eyes and mouth near insightface's template."""
    img = np.full((112, 112, 3), rng.integers(40, 200, 3), np.uint8)
    cv2.ellipse(img, (56, 62), (36, 46), 0, 0, 360, tuple(int(v) for v in rng.integers(120, 230, 3)), -1)
    for x in (38, 73):
        cv2.circle(img, (x, 52), 4, (30, 30, 30), -1)
    cv2.line(img, (42, 90), (70, 90), (120, 40, 40), 3)
    return img


def jpeg(rgb: np.ndarray) -> bytes:
    return cv2.imencode(".jpg", rgb[:, :, ::-1])[1].tobytes()


@pytest.fixture(scope="module")
def pack(tmp_path_factory) -> Path:
    """An insightface-style pack folder: images 1..9, identity records 10..12, header 0 last."""
    folder = tmp_path_factory.mktemp("faces_webface_112x112")
    rng = np.random.default_rng(0)
    n = len(LABELS)
    with RecordWriter(folder / "train.rec") as writer:
        for key, label in enumerate(LABELS, start=1):
            writer.write(pack_image_record(jpeg(face_112(rng)), float(label)), key)
        for label in range(3):
            keys = [k for k, lab in enumerate(LABELS, start=1) if lab == label]
            writer.write(pack_image_record(b"", [keys[0], keys[-1] + 1]), n + 1 + label)
        writer.write(pack_image_record(b"", [n + 1, n + 4]), 0)
    (folder / "property").write_text("3,112,112")
    return folder


@pytest.fixture(scope="module")
def bin_file(tmp_path_factory) -> Path:
    """A verification .bin of 20 pairs (40 112x112 JPEGs), alternating same / not same."""
    path = tmp_path_factory.mktemp("bins") / "lfw.bin"
    rng = np.random.default_rng(1)
    write_bin(path, [jpeg(face_112(rng)) for _ in range(40)], [k % 2 == 0 for k in range(20)])
    return path


def digest(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != "dataset.json"}


def build(*args: str) -> None:
    result = CliRunner().invoke(main, ["build", "--quiet", *args])
    assert result.exit_code == 0, result.output


def test_pack_to_shards_is_the_same_whatever_the_jobs(pack, tmp_path):
    common = ["--source", "rec", "--data", str(pack), "--shard-size", "4", "--seed", "3"]
    build(*common, "--out", str(tmp_path / "one"), "--workers", "0")
    for index in (1, 0):  # the other order of jobs, each a separate run; the last one assembles
        build(*common, "--out", str(tmp_path / "two"), "--workers", "0", "--num-shards", "2", "--shard-index", str(index))
    assert digest(tmp_path / "one") == digest(tmp_path / "two")
    manifest = pd.read_csv(tmp_path / "one" / "manifest.csv", dtype=str, keep_default_na=False)
    assert manifest["label"].astype(int).tolist() == LABELS
    assert manifest["identity"].tolist() == [f"{lab:05d}" for lab in LABELS]
    assert manifest["key"].tolist()[0] == "00000/00000001"
    classes = pd.read_csv(tmp_path / "one" / "classes.csv")
    assert classes["count"].tolist() == [3, 2, 4]


def test_pack_to_folder_keeps_112x112(pack, tmp_path):
    build("--source", "rec", "--data", str(pack / "train.rec"), "--out", str(tmp_path / "f"), "--format", "folder",
          "--workers", "0", "--clean-ratio", "0:1")
    image = cv2.imread(str(tmp_path / "f" / "images" / "00002" / "00000009.jpg"))
    assert image.shape == (112, 112, 3)


def test_format_rec_writes_an_insightface_pack(pack, tmp_path):
    common = ["--source", "rec", "--data", str(pack), "--format", "rec", "--shard-size", "2"]
    build(*common, "--out", str(tmp_path / "one"), "--workers", "0")
    build(*common, "--out", str(tmp_path / "pool"), "--workers", "2")
    for index in (0, 2, 1):
        build(*common, "--out", str(tmp_path / "jobs"), "--workers", "0", "--num-shards", "3", "--shard-index", str(index))
    one = digest(tmp_path / "one")
    assert one == digest(tmp_path / "pool") == digest(tmp_path / "jobs")
    out = open_pack(tmp_path / "one")
    assert len(out) == len(LABELS) and out.num_classes == 3 and out.image_size == (112, 112)
    assert [out.label(i) for i in range(len(out))] == LABELS
    assert out.identity_ranges == [(1, 4), (4, 6), (6, 10)]
    label, _ = unpack_image_record(out.reader.read(1))
    assert isinstance(label, float) and label == 0.0 and out.image(0).shape == (112, 112, 3)
    header, empty = unpack_image_record(out.reader.read(0))
    assert header.tolist() == [10.0, 13.0] and empty == b""
    assert (tmp_path / "one" / "property").read_text() == "3,112,112\n"
    _check_layout_by_hand(tmp_path / "one")


def _check_layout_by_hand(folder: Path) -> None:
    """The header and an image record read with struct from the published layout, as MXNet's
    ``MXIndexedRecordIO`` + ``recordio.unpack`` would: magic, length, IRHeader, labels."""
    offsets = dict(tuple(int(v) for v in line.split("\t")) for line in (folder / "train.idx").read_text().splitlines())
    data = (folder / "train.rec").read_bytes()

    def record(key: int) -> bytes:
        magic, lrecord = struct.unpack_from("<II", data, offsets[key])
        assert magic == 0xCED7230A and lrecord >> 29 == 0  # one part each here
        return data[offsets[key] + 8 : offsets[key] + 8 + (lrecord & (1 << 29) - 1)]

    flag, label, _, _ = struct.unpack_from("<IfQQ", record(0))
    assert flag == 2 and struct.unpack_from("<2f", record(0), 24) == (10.0, 13.0)
    flag, label, _, _ = struct.unpack_from("<IfQQ", record(5))
    assert flag == 0 and label == 1.0 and record(5)[24:26] == b"\xff\xd8"  # a JPEG follows
    assert sorted(offsets) == list(range(13))


def test_bin_source_is_an_lfw_like_folder(bin_file, tmp_path):
    args = ["--source", "bin", "--data", str(bin_file), "--ratio", "0.4", "--workers", "0", "--shard-size", "7"]
    build(*args, "--out", str(tmp_path / "a"))
    build(*args, "--out", str(tmp_path / "b"), "--num-shards", "2", "--shard-index", "1")
    build(*args, "--out", str(tmp_path / "b"), "--num-shards", "2", "--shard-index", "0")
    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    out = tmp_path / "a"
    pairs = pd.read_csv(out / "pairs.csv")
    assert len(pairs) == 20 and pairs["fold"].tolist() == [k // 2 for k in range(20)]
    assert pairs.loc[3, "path1"] == "clean/000006.jpg" and pairs.loc[3, "path2"] == "images/000007.jpg"
    assert pairs["same"].tolist() == [int(k % 2 == 0) for k in range(20)]
    images, _ = read_bin(bin_file)
    assert (out / "clean" / "000006.jpg").read_bytes() == images[6]
    assert cv2.imread(str(out / "images" / "000007.jpg")).shape == (112, 112, 3)
    assert (out / "masks" / "000007.png").is_file() and (out / "manifest.csv").is_file()


def test_to_bin_writes_path1_and_path2_as_stored(bin_file, tmp_path):
    build("--source", "bin", "--data", str(bin_file), "--kind", "mask", "--workers", "0", "--out", str(tmp_path / "m"))
    result = CliRunner().invoke(main, ["to-bin", "--data", str(tmp_path / "m"), "--out-file", str(tmp_path / "m.bin")])
    assert result.exit_code == 0, result.output
    assert "wrote 20 pairs (40 images)" in result.output and "warning" not in result.output
    images, same = read_bin(tmp_path / "m.bin")
    assert same.tolist() == [k % 2 == 0 for k in range(20)]
    assert images[0] == (tmp_path / "m" / "clean" / "000000.jpg").read_bytes()
    assert images[1] == (tmp_path / "m" / "images" / "000001.jpg").read_bytes()


@pytest.mark.parametrize("args, message", [
    (["build", "--source", "bin", "--data", "{tmp}/missing.bin"], "verification .bin not found"),
    (["build", "--source", "bin", "--data", "{tmp}/bad.bin"], "not a readable verification pickle"),
    (["build", "--source", "rec", "--data", "{tmp}/empty"], "expected train.rec or a single .rec file"),
    (["build", "--source", "rec", "--data", "{tmp}/no.rec"], "no RecordIO file"),
    (["build", "--source", "bin", "--data", "{bin}", "--format", "rec"], "--format rec writes a training pack"),
    (["build", "--source", "bin", "--data", "{bin}", "--pairs", "{bin}"], "--pairs is for --source lfw"),
    (["to-bin", "--data", "{tmp}", "--out-file", "{tmp}/x.bin"], "no pairs.csv"),
])
def test_bad_input_is_one_line(bin_file, tmp_path, args, message):
    (tmp_path / "bad.bin").write_bytes(b"not a pickle")
    (tmp_path / "empty").mkdir()
    filled = [a.format(tmp=tmp_path, bin=bin_file) for a in args]
    if filled[0] == "build":
        filled += ["--out", str(tmp_path / "out"), "--workers", "0", "--quiet"]
    result = CliRunner().invoke(main, filled)
    assert result.exit_code == 1, result.output
    assert message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
