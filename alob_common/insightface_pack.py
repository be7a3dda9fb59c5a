"""insightface's training packs on top of :mod:`alob_common.recordio`: ``open_pack`` and
:class:`Pack`.

insightface packs (``faces_webface_112x112``, MS1M …) put a header in record 0: a label array
``[a, b]`` and no image. Records ``1 .. a-1`` are the images; records ``a .. b-1`` are one per
identity, each with the label array ``[start, end)`` of its image records. An image's label is
its class (a float, or an array whose element 0 is the class). The folder's ``property`` file
reads ``num_classes,height,width``. A pack whose record 0 is an image is plain: every record is
an image.

The ``.idx`` is required: insightface writes the header record last, so only the index says which
record is which.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from alob_common.images import decode_rgb
from alob_common.recordio import RecordIOError, RecordReader, unpack_image_record


def class_of(label: np.ndarray | float) -> int:
    """The class of an image label: the float itself, or element 0 of a label array."""
    return int(label if np.ndim(label) == 0 else label[0])


@dataclass
class Pack:
    """An insightface training pack opened for random access by image index ``0 .. num_images-1``."""

    reader: RecordReader
    image_keys: np.ndarray
    identity_ranges: list[tuple[int, int]] = field(default_factory=list)  # image keys [start, end) per identity
    property_classes: int | None = None
    image_size: tuple[int, int] | None = None  # (height, width) from ``property``

    @property
    def num_images(self) -> int:
        """How many image records the pack holds."""
        return len(self.image_keys)

    def __len__(self) -> int:
        return self.num_images

    @cached_property
    def num_classes(self) -> int:
        """From ``property``, else the header's identity count, else the largest label + 1 (which
        reads every record once)."""
        if self.property_classes is not None:
            return self.property_classes
        if self.identity_ranges:
            return len(self.identity_ranges)
        return max((self.label(i) for i in range(self.num_images)), default=-1) + 1

    def key(self, i: int) -> int:
        """The record key of image ``i``."""
        if not 0 <= i < self.num_images:
            raise IndexError(f"image index {i} outside 0..{self.num_images - 1}")
        return int(self.image_keys[i])

    def record(self, i: int) -> tuple[np.ndarray | float, bytes]:
        """The raw ``(label, image_bytes)`` of image ``i``."""
        return unpack_image_record(self.reader.read(self.key(i)))

    def label(self, i: int) -> int:
        """The class of image ``i``."""
        return class_of(self.record(i)[0])

    def image_bytes(self, i: int) -> bytes:
        """The encoded image (JPEG or PNG) of image ``i``."""
        return self.record(i)[1]

    def labelled_keys(self) -> list[tuple[int, int]]:
        """``(class, record key)`` of every image. With identity records each identity's class is
        read from its first record (a pack of millions opens in seconds); a plain pack's classes
        are read from every record."""
        ranges = self.identity_ranges
        if ranges and sum(end - start for start, end in ranges) == self.num_images:
            labelled = []
            for start, end in ranges:
                if end > start:
                    label = class_of(unpack_image_record(self.reader.read(start))[0])
                    labelled += [(label, key) for key in range(start, end)]
            return labelled
        return [(self.label(i), self.key(i)) for i in range(self.num_images)]

    def image(self, i: int) -> np.ndarray:
        """Image ``i`` decoded to RGB uint8."""
        rgb = decode_rgb(self.image_bytes(i))
        if rgb is None:
            raise RecordIOError(f"{self.reader.rec_path}: record {self.key(i)} does not hold a readable image")
        return rgb


def _read_property(path: Path) -> tuple[int | None, tuple[int, int] | None]:
    if not path.is_file():
        return None, None
    text = path.read_text().strip()
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) != 3:
        raise RecordIOError(f"{path}: expected 'num_classes,height,width', found {text!r}")
    return values[0], (values[1], values[2])


def _find_rec(source: Path) -> Path:
    if not source.is_dir():
        return source
    if (source / "train.rec").is_file():
        return source / "train.rec"
    found = sorted(source.glob("*.rec"))
    if len(found) != 1:
        raise RecordIOError(f"{source}: expected train.rec or a single .rec file, found "
                            f"{', '.join(p.name for p in found) or 'none'}")
    return found[0]


def _header(reader: RecordReader) -> tuple[int, int] | None:
    """``(a, b)`` of an insightface header record 0: a label array of at least two values and
    no image; None when record 0 is an ordinary image."""
    if 0 not in reader:
        return None
    label, image = unpack_image_record(reader.read(0))
    if np.ndim(label) == 0 or len(label) < 2 or image:
        return None
    return int(label[0]), int(label[1])


def _count_keys(keys: np.ndarray, start: int, end: int) -> int:
    return int(np.searchsorted(keys, end) - np.searchsorted(keys, start))


def open_pack(source: str | os.PathLike) -> Pack:
    """Open a pack folder (``train.rec`` + ``train.idx`` + ``property``) or a ``.rec`` path.

    The ``.idx`` is required: insightface writes the header record last, so only the index
    says which record is which."""
    rec = _find_rec(Path(source))
    reader = RecordReader(rec)
    if not reader.has_index:
        raise RecordIOError(f"{rec}: a pack needs its index {rec.with_suffix('.idx').name} beside it "
                            "(RecordReader can stream a .rec without one)")
    classes, size = _read_property(rec.parent / "property")
    header = _header(reader)
    if header is None:
        return Pack(reader, reader.keys, [], classes, size)
    first_identity, end_identity = header
    if not 1 <= first_identity <= end_identity:
        raise RecordIOError(f"{rec}: header record 0 holds [{first_identity}, {end_identity}], "
                            "not [first identity record, end of identity records]")
    for start, end, what in ((1, first_identity, "image"), (first_identity, end_identity, "identity")):
        if _count_keys(reader.keys, start, end) != end - start:
            raise RecordIOError(f"{reader.idx_path}: header record 0 announces {what} records {start}..{end - 1}, "
                                "some are missing from the index")
    ranges = []
    for key in range(first_identity, end_identity):
        label, _ = unpack_image_record(reader.read(key))
        if np.ndim(label) == 0 or len(label) < 2:
            raise RecordIOError(f"{rec}: identity record {key} lacks its [start, end) label array")
        ranges.append((int(label[0]), int(label[1])))
    return Pack(reader, np.arange(1, first_identity, dtype=np.int64), ranges, classes, size)
