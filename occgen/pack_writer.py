"""``occgen build --format rec``: an occluded training set as an insightface pack.

Each unit writes its samples as a piece of the pack (``OUT/.parts/train-NNNNNN.rec`` and its
``.idx``: image records keyed 0, 1, … with the label as a float in the header, as insightface's
packs hold them). The job that assembles the build joins the pieces in unit order into
``OUT/train.rec`` and ``OUT/train.idx``, so the pack is the same byte for byte whatever the
number of workers or jobs:

* records ``1 .. N`` are the images, in sample order (each identity's samples are contiguous);
* records ``N+1 .. N+C`` are one per class label ``0 .. C-1``, each with the label array
  ``[start, end)`` of its image records (an empty range for a class without samples);
* record 0, written last, is the header: the label array ``[N+1, N+C+1]`` and no image;
* ``OUT/property`` reads ``num_classes,height,width``.

The masks are not part of a pack; the manifest keeps every sample's occlusion and geometry.
"""

from __future__ import annotations

from pathlib import Path

from alob_common.atomic import write_text_atomic
from alob_common.images import decode_rgb
from alob_common.insightface_pack import class_of
from alob_common.recordio import (
    RecordReader,
    RecordWriter,
    pack_image_record,
    unpack_image_record,
)
from occgen.library import OccgenError

PACK_FILES = ("train.rec", "train.idx", "property")


def write_pack_piece(path: Path, samples: list[tuple[int, bytes]], rows: list[dict]) -> None:
    """One unit's ``(label, encoded image)`` samples as a small pack (``.rec`` + ``.idx``,
    renamed into place when complete); its ok manifest rows name ``train.rec``."""
    with RecordWriter(path) as writer:
        for label, image in samples:
            writer.write(pack_image_record(image, float(label)))
    for row in rows:
        if row["status"] == "ok":
            row["shard"] = PACK_FILES[0]


def assemble_pack(out: Path, pieces: list[Path], identities: list[str]) -> dict:
    """Join the unit pieces (in the given order) into ``train.rec``/``train.idx`` with the
    identity records and the header record, and write ``property``; returns the pack's counts."""
    ranges: dict[int, list[int]] = {}
    size = None
    key = 0
    with RecordWriter(out / PACK_FILES[0], out / PACK_FILES[1]) as writer:
        for piece in pieces:
            for payload in RecordReader(piece):
                label, image = unpack_image_record(payload)
                key = writer.write(payload, key + 1)
                span = ranges.setdefault(class_of(label), [key, key])
                if span[1] != key:
                    raise OccgenError(f"{piece}: the samples of label {class_of(label)} are not contiguous")
                span[1] = key + 1
                if size is None:
                    size = decode_rgb(image).shape[:2]
        first = key + 1
        for label in range(len(identities)):
            start, end = ranges.get(label, [first, first])
            writer.write(pack_image_record(b"", [start, end]), first + label)
        writer.write(pack_image_record(b"", [first, first + len(identities)]), 0)
    height, width = size or (0, 0)
    write_text_atomic(out / PACK_FILES[2], f"{len(identities)},{height},{width}\n")
    return {"files": list(PACK_FILES), "images": key, "classes": len(identities), "size": [height, width]}
