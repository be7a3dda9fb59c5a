"""alob_common.recordio against packs written here by hand from the published byte layout
(struct.pack, independently of the module), and round trips through its writer."""

from __future__ import annotations

import multiprocessing
import os
import struct
from pathlib import Path

import cv2
import numpy as np
import pytest

from alob_common.errors import UserError
from alob_common.insightface_pack import open_pack
from alob_common.recordio import (
    RecordIOError,
    RecordReader,
    RecordWriter,
    frame_record,
    pack_image_record,
    unpack_image_record,
)

MAGIC = 0xCED7230A
MAGIC_BYTES = b"\x0a\x23\xd7\xce"  # 0xced7230a, little-endian


# --- test-only writer: the layout as MXNet's RecordIOWriter and recordio.pack produce it ---------

def hand_frame(payload: bytes) -> bytes:
    """One record: cut where the magic sits at a multiple of 4 (magic dropped), flags 0 or 1/2…/3,
    each part padded with zeros to 4 bytes."""
    cuts = [i for i in range(0, len(payload) - 3, 4) if payload[i:i + 4] == MAGIC_BYTES]
    pieces, start = [], 0
    for cut in cuts:
        pieces.append(payload[start:cut])
        start = cut + 4
    pieces.append(payload[start:])
    flags = [0] if len(pieces) == 1 else [1] + [2] * (len(pieces) - 2) + [3]
    out = b""
    for flag, piece in zip(flags, pieces):
        out += struct.pack("<II", MAGIC, (flag << 29) | len(piece)) + piece + b"\0" * (-len(piece) % 4)
    return out


def hand_image_record(image: bytes, label, record_id: int = 0) -> bytes:
    """IRHeader ``<IfQQ`` (flag, label, id, id2), then the label array when flag > 0, then the image."""
    if isinstance(label, (list, tuple)):
        return struct.pack("<IfQQ", len(label), 0.0, record_id, 0) + struct.pack(f"<{len(label)}f", *label) + image
    return struct.pack("<IfQQ", 0, label, record_id, 0) + image


def hand_write(rec: Path, records: dict[int, bytes], file_order: list[int]) -> dict[int, int]:
    """Write ``records`` in ``file_order`` to ``rec`` and its ``.idx``; returns key -> offset."""
    offsets, data = {}, b""
    for key in file_order:
        offsets[key] = len(data)
        data += hand_frame(records[key])
    rec.write_bytes(data)
    rec.with_suffix(".idx").write_text("".join(f"{k}\t{offsets[k]}\n" for k in sorted(offsets)))
    return offsets


def hand_parts(data: bytes) -> list[tuple[int, int, int]]:
    """(offset, cflag, length) of every part of a .rec, walked by hand."""
    parts, pos = [], 0
    while pos < len(data):
        magic, lrecord = struct.unpack_from("<II", data, pos)
        assert magic == MAGIC
        length = lrecord & ((1 << 29) - 1)
        parts.append((pos, lrecord >> 29, length))
        pos += 8 + length + (-length % 4)
    return parts


# --- the test pack --------------------------------------------------------------------------------

def _picture(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:24, 0:20]
    base = np.stack([x * 10, y * 8, (x + y) * 5], axis=2).astype(np.int16)
    return np.clip(base + rng.integers(-8, 8, base.shape), 0, 255).astype(np.uint8)


def _encode(rgb: np.ndarray, ext: str) -> bytes:
    ok, buf = cv2.imencode(ext, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert ok
    return buf.tobytes()


def _with_magic_tail(image: bytes) -> bytes:
    """Pad ``image`` to 4 bytes, then two magics: behind a 24-byte header they sit at multiples of 4,
    so the record is written in three parts (1, 2, 3). Decoders ignore bytes after the image."""
    return image + b"\0" * (-len(image) % 4) + MAGIC_BYTES + b"midl" + MAGIC_BYTES + b"end"


@pytest.fixture()
def pack(tmp_path):
    """An insightface pack: 5 images of 3 identities, identity records 6..8, header record 0
    written last in the file (as insightface does); labels as floats and as arrays; PNG and JPEG."""
    pictures = {key: _picture(key) for key in range(1, 6)}
    images = {1: _encode(pictures[1], ".png"), 2: _encode(pictures[2], ".jpg"),
              3: _with_magic_tail(_encode(pictures[3], ".png")),
              4: _encode(pictures[4], ".jpg"), 5: _encode(pictures[5], ".png")}
    records = {
        1: hand_image_record(images[1], 0.0),
        2: hand_image_record(images[2], [0.0, 7.5]),
        3: hand_image_record(images[3], 1.0),
        4: hand_image_record(images[4], [1.0]),
        5: hand_image_record(images[5], 2.0, record_id=55),
        6: hand_image_record(b"", [1.0, 3.0]),
        7: hand_image_record(b"", [3.0, 5.0]),
        8: hand_image_record(b"", [5.0, 6.0]),
        0: hand_image_record(b"", [6.0, 9.0]),
    }
    folder = tmp_path / "faces_test_112x112"
    folder.mkdir()
    offsets = hand_write(folder / "train.rec", records, [1, 2, 3, 4, 5, 6, 7, 8, 0])
    (folder / "property").write_text("3,24,20\n")
    return {"folder": folder, "records": records, "offsets": offsets, "pictures": pictures, "images": images}


# --- reading --------------------------------------------------------------------------------------

def test_open_pack_reads_header_identities_labels_and_images(pack):
    opened = open_pack(pack["folder"])
    assert opened.num_images == len(opened) == 5
    assert opened.num_classes == 3
    assert opened.image_size == (24, 20)
    assert opened.identity_ranges == [(1, 3), (3, 5), (5, 6)]
    assert [opened.label(i) for i in range(5)] == [0, 0, 1, 1, 2]
    for i, key in enumerate(range(1, 6)):
        assert opened.image_bytes(i) == pack["images"][key]
        rgb = opened.image(i)
        assert rgb.dtype == np.uint8 and rgb.shape == (24, 20, 3)
        if key in (1, 3, 5):  # PNG: exact
            np.testing.assert_array_equal(rgb, pack["pictures"][key])
        else:  # JPEG: close
            assert np.abs(rgb.astype(int) - pack["pictures"][key]).mean() < 8


def test_open_pack_accepts_the_rec_path_and_counts_classes_without_property(pack):
    (pack["folder"] / "property").unlink()
    opened = open_pack(pack["folder"] / "train.rec")
    assert opened.property_classes is None and opened.num_classes == 3


def test_labels_as_float_and_as_array(pack):
    label, image = unpack_image_record(pack["records"][1])
    assert label == 0.0 and isinstance(label, float) and image == pack["images"][1]
    label, image = unpack_image_record(pack["records"][2])
    assert label.dtype == np.float32
    np.testing.assert_array_equal(label, [0.0, 7.5])
    assert image == pack["images"][2]


def test_multi_part_record_is_joined_with_the_magic(pack):
    rec = pack["folder"] / "train.rec"
    parts = hand_parts(rec.read_bytes())
    start = pack["offsets"][3]
    flags = [flag for offset, flag, _ in parts if offset >= start][:3]
    assert flags == [1, 2, 3]
    payload = RecordReader(rec).read(3)
    assert payload == pack["records"][3]
    assert payload.count(MAGIC_BYTES) == 2


def test_plain_pack_without_header_is_all_images(tmp_path):
    images = [_encode(_picture(k), ".png") for k in range(4)]
    records = {k: hand_image_record(images[k], float(k % 2)) for k in range(4)}
    hand_write(tmp_path / "plain.rec", records, [0, 1, 2, 3])
    opened = open_pack(tmp_path)
    assert opened.num_images == 4 and opened.identity_ranges == []
    assert opened.num_classes == 2
    assert [opened.image_bytes(i) for i in range(4)] == images


def test_streaming_without_idx_follows_file_order(pack):
    rec = pack["folder"] / "train.rec"
    rec.with_suffix(".idx").unlink()
    reader = RecordReader(rec)
    assert not reader.has_index
    order = [1, 2, 3, 4, 5, 6, 7, 8, 0]
    assert list(reader) == [pack["records"][k] for k in order]
    assert len(reader) == 9
    assert reader.read(8) == pack["records"][0]
    with pytest.raises(RecordIOError, match="needs its index"):
        open_pack(pack["folder"])


def test_iteration_with_idx_is_in_key_order(pack):
    reader = RecordReader(pack["folder"] / "train.rec")
    assert reader.keys.tolist() == list(range(9))
    assert [key for key, _ in reader.items()] == list(range(9))
    assert list(reader) == [pack["records"][k] for k in range(9)]


def test_check_index_accepts_the_hand_written_pack(pack):
    RecordReader(pack["folder"] / "train.rec").check_index()


# --- errors ---------------------------------------------------------------------------------------

def _rewrite_idx(folder: Path, key: int, offset: int) -> None:
    idx = folder / "train.idx"
    lines = [line.split("\t") for line in idx.read_text().splitlines()]
    idx.write_text("".join(f"{k}\t{offset if int(k) == key else o}\n" for k, o in lines))


def test_idx_offset_inside_a_record_is_an_error(pack):
    folder = pack["folder"]
    _rewrite_idx(folder, 2, pack["offsets"][2] + 8)
    reader = RecordReader(folder / "train.rec")
    with pytest.raises(RecordIOError, match=r"key 2 at offset \d+ by .*train.idx"):
        reader.read(2)
    with pytest.raises(RecordIOError, match="does not match"):
        reader.check_index()


def test_idx_offset_at_a_continuation_part_is_an_error(pack):
    folder = pack["folder"]
    parts = hand_parts((folder / "train.rec").read_bytes())
    middle = next(offset for offset, flag, _ in parts if flag == 2)
    _rewrite_idx(folder, 3, middle)
    with pytest.raises(RecordIOError, match="continuation flag 2"):
        RecordReader(folder / "train.rec").read(3)


@pytest.mark.parametrize("offset, reason", [(6, "cannot start a record"), (10**6, "cannot start a record")])
def test_idx_offset_unaligned_or_past_the_end_is_refused_on_open(pack, offset, reason):
    _rewrite_idx(pack["folder"], 4, offset)
    with pytest.raises(RecordIOError, match=reason):
        RecordReader(pack["folder"] / "train.rec")


def test_malformed_idx_line_is_an_error(pack):
    idx = pack["folder"] / "train.idx"
    idx.write_text(idx.read_text() + "nine\tten\n")
    with pytest.raises(RecordIOError, match=r"train.idx:10: expected"):
        RecordReader(pack["folder"] / "train.rec")


def test_truncated_rec_is_an_error(pack):
    rec = pack["folder"] / "train.rec"
    data = rec.read_bytes()
    rec.write_bytes(data[: pack["offsets"][0] + 12])  # header record 0 (written last) cut short
    with pytest.raises(RecordIOError, match="truncated"):
        RecordReader(rec).read(0)
    rec.with_suffix(".idx").unlink()
    with pytest.raises(RecordIOError, match="truncated"):
        list(RecordReader(rec))


def test_wrong_magic_is_an_error(pack):
    rec = pack["folder"] / "train.rec"
    data = bytearray(rec.read_bytes())
    data[0:4] = b"\xff\xd8\xff\xe0"
    rec.write_bytes(bytes(data))
    with pytest.raises(RecordIOError, match="magic 0xe0ffd8ff"):
        RecordReader(rec).read(1)
    rec.with_suffix(".idx").unlink()
    with pytest.raises(RecordIOError, match="magic"):
        next(iter(RecordReader(rec)))


def test_missing_rec_is_an_error(tmp_path):
    with pytest.raises(RecordIOError, match="no RecordIO file"):
        RecordReader(tmp_path / "train.rec")
    with pytest.raises(RecordIOError, match="train.rec or a single .rec"):
        open_pack(tmp_path)
    assert issubclass(RecordIOError, UserError)


def test_image_record_shorter_than_its_labels_is_an_error():
    with pytest.raises(RecordIOError, match="shorter than its 24-byte header"):
        unpack_image_record(b"\0" * 10)
    with pytest.raises(RecordIOError, match="cannot hold the 5 labels"):
        unpack_image_record(struct.pack("<IfQQ", 5, 0.0, 0, 0) + b"\0" * 8)


# --- writing --------------------------------------------------------------------------------------

EDGE_PAYLOADS = [
    b"",
    b"abc",
    MAGIC_BYTES,
    MAGIC_BYTES * 3,
    b"ab" + MAGIC_BYTES + b"cd",  # unaligned: not split
    b"abcd" + MAGIC_BYTES,
    bytes(range(256)) * 5 + MAGIC_BYTES + b"x",
]


@pytest.mark.parametrize("payload", EDGE_PAYLOADS)
def test_frame_record_matches_the_published_layout(payload):
    assert frame_record(payload) == hand_frame(payload)


def test_writer_round_trip_is_byte_identical(pack, tmp_path):
    records, order = pack["records"], [1, 2, 3, 4, 5, 6, 7, 8, 0]
    out = tmp_path / "copy" / "train.rec"
    with RecordWriter(out) as writer:
        for key in order:
            writer.write(records[key], key=key)
        assert not out.exists()  # only the temporary file until close
    assert out.read_bytes() == (pack["folder"] / "train.rec").read_bytes()
    assert out.with_suffix(".idx").read_text() == "".join(f"{k}\t{pack['offsets'][k]}\n" for k in order)
    assert sorted(p.name for p in out.parent.iterdir()) == ["train.idx", "train.rec"]
    reader = RecordReader(out)
    assert all(reader.read(k) == records[k] for k in records)


def test_writer_edge_payloads_and_default_keys(tmp_path):
    out = tmp_path / "edge.rec"
    with RecordWriter(out) as writer:
        keys = [writer.write(p) for p in EDGE_PAYLOADS]
    assert keys == list(range(len(EDGE_PAYLOADS)))
    assert list(RecordReader(out)) == EDGE_PAYLOADS
    out.with_suffix(".idx").unlink()
    assert list(RecordReader(out)) == EDGE_PAYLOADS


def test_writer_aborts_on_error_and_refuses_duplicate_keys(tmp_path):
    out = tmp_path / "x.rec"
    with pytest.raises(RecordIOError, match="already written"), RecordWriter(out) as writer:
        writer.write(b"one", key=3)
        writer.write(b"two", key=3)
    assert list(tmp_path.iterdir()) == []


def test_pack_image_record_matches_the_hand_layout():
    image = b"\x89PNG fake"
    assert pack_image_record(image, 4.0, id=9) == hand_image_record(image, 4.0, record_id=9)
    assert pack_image_record(image, [1.0, 2.5]) == hand_image_record(image, [1.0, 2.5])
    label, back = unpack_image_record(pack_image_record(image, np.array([3.0, 4.0, 5.0])))
    np.testing.assert_array_equal(label, [3.0, 4.0, 5.0])
    assert back == image


# --- several processes ----------------------------------------------------------------------------

class _Records:
    """A map-style dataset over a reader, as a DataLoader would hold it."""

    def __init__(self, reader: RecordReader):
        self.reader = reader

    def __len__(self) -> int:
        return len(self.reader)

    def __getitem__(self, key: int) -> tuple[int, bytes]:
        return os.getpid(), self.reader.read(key)


def _read_in_child(args: tuple[RecordReader, int]) -> bytes:
    reader, key = args
    return reader.read(key)


def test_dataloader_workers_read_the_same_bytes(pack):
    torch_data = pytest.importorskip("torch.utils.data")
    reader = RecordReader(pack["folder"] / "train.rec")
    expected = [reader.read(k) for k in range(len(reader))]  # the parent's handle is open before the fork
    loader = torch_data.DataLoader(_Records(reader), batch_size=None, num_workers=2)
    got = list(loader)
    assert [payload for _, payload in got] == expected
    assert len({pid for pid, _ in got}) == 2 and os.getpid() not in {pid for pid, _ in got}
    assert reader.read(3) == expected[3]  # the parent's handle still works


def test_spawned_processes_read_the_same_bytes(pack):
    reader = RecordReader(pack["folder"] / "train.rec")
    expected = [reader.read(k) for k in range(len(reader))]
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        got = pool.map(_read_in_child, [(reader, k) for k in range(len(reader))])
    assert got == expected
