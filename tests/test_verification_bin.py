"""alob_common.verification_bin: round trips, the restricted unpickler, and an lfw.bin built from
the real LFW's pairs.txt (skipped without it)."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

from alob_common.images import decode_rgb
from alob_common.pairs import parse_pairs_txt
from alob_common.verification_bin import (
    VerificationBinError,
    bin_pair_table,
    load_bin_pairs,
    read_bin,
    write_bin,
)


def test_write_read_round_trip(tmp_path):
    images = [bytes([i]) * (i + 3) for i in range(6)]
    issame = [True, False, True]
    write_bin(tmp_path / "set.bin", images, issame)
    back, same = read_bin(tmp_path / "set.bin")
    assert back == images
    assert same.dtype == bool and same.tolist() == issame
    assert [p.name for p in tmp_path.iterdir()] == ["set.bin"]


def test_written_file_is_what_insightface_loads(tmp_path):
    images = [b"a", b"b", b"c", b"d"]
    write_bin(tmp_path / "x.bin", images, np.array([False, True]))
    with open(tmp_path / "x.bin", "rb") as f:
        bins, issame_list = pickle.load(f, encoding="bytes")  # insightface's load_bin
    assert bins == images and issame_list == [False, True]
    assert all(type(b) is bytes for b in bins) and all(type(s) is bool for s in issame_list)


def test_numpy_images_and_labels_from_a_protocol_2_pickle(tmp_path):
    bins = [np.frombuffer(b"img%d" % i, dtype=np.uint8) for i in range(4)]
    (tmp_path / "old.bin").write_bytes(pickle.dumps((bins, np.array([True, False])), protocol=2))
    images, same = read_bin(tmp_path / "old.bin")
    assert images == [b"img0", b"img1", b"img2", b"img3"]
    assert same.tolist() == [True, False]


class _Exploit:
    def __reduce__(self):
        return os.system, ("touch pwned",)


def test_restricted_unpickler_refuses_other_callables(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "evil.bin").write_bytes(pickle.dumps(([_Exploit(), b"x"], [True]), protocol=4))
    with pytest.raises(VerificationBinError, match=r"refusing to load (posix|os|nt)\.system"):
        read_bin(tmp_path / "evil.bin")
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("content, reason", [
    (b"not a pickle", "not a readable verification pickle"),
    (pickle.dumps(([b"a", b"b", b"c"], [True]), protocol=4), "3 images for 1 pairs"),
    (pickle.dumps({"bins": []}, protocol=4), "expected a pickled"),
    (pickle.dumps(([1, 2], [True]), protocol=4), "image 0 is a int"),
])
def test_malformed_bins_are_one_line_errors(tmp_path, content, reason):
    (tmp_path / "bad.bin").write_bytes(content)
    with pytest.raises(VerificationBinError, match=reason):
        read_bin(tmp_path / "bad.bin")


def test_write_refuses_odd_image_count(tmp_path):
    with pytest.raises(VerificationBinError, match="two per pair"):
        write_bin(tmp_path / "x.bin", [b"a"], [True])
    assert not (tmp_path / "x.bin").exists()


def test_pair_table_names_and_contiguous_folds():
    table = bin_pair_table("lfw.bin", [True, False] * 11)
    assert list(table.columns) == ["path1", "path2", "same", "fold"]
    assert table.path1.iloc[3] == "lfw.bin#000006" and table.path2.iloc[3] == "lfw.bin#000007"
    assert table.fold.tolist() == [0, 0, 0, 1, 1, 1] + [k for k in range(2, 10) for _ in range(2)]


def test_lfw_bin_from_real_pairs_txt(tmp_path, lfw_dir, lfw_pairs):
    parsed = parse_pairs_txt(lfw_pairs)
    chosen = []  # 3 matched and 3 mismatched pairs from each of the 10 folds: 60 pairs, 6 per fold
    for fold in range(10):
        in_fold = [p for p in parsed.pairs if p.fold == fold]
        chosen += [p for p in in_fold if p.same][:3] + [p for p in in_fold if not p.same][:3]
    files = [lfw_dir / f"{stem}.jpg" for p in chosen for stem in (p.stem1, p.stem2)]
    images = [path.read_bytes() for path in files]
    write_bin(tmp_path / "lfw.bin", images, [p.same for p in chosen])

    table, named = load_bin_pairs(tmp_path / "lfw.bin")
    assert len(table) == 60
    assert table.same.tolist() == [p.same for p in chosen]
    assert table.fold.tolist() == [p.fold for p in chosen]  # 10 contiguous folds = the View-2 folds
    stems = [files[int(path.rsplit("#", 1)[1])].relative_to(lfw_dir).with_suffix("").as_posix()
             for row in zip(table.path1, table.path2) for path in row]
    assert stems == [stem for p in chosen for stem in (p.stem1, p.stem2)]
    assert [named[path] for path in table.path1] == [images[2 * k] for k in range(60)]
    assert [named[path] for path in table.path2] == [images[2 * k + 1] for k in range(60)]
    assert decode_rgb(named[table.path1.iloc[0]]).shape == (250, 250, 3)
