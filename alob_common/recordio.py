"""MXNet's indexed RecordIO (``.rec`` + ``.idx``), read and written without MXNet.

Byte layout of a ``.rec`` file (all integers little-endian). A file is a sequence of parts; each
part starts on a 4-byte boundary:

* ``uint32`` magic ``0xced7230a``;
* ``uint32`` ``lrecord``: the upper 3 bits are the continuation flag ``cflag``, the lower 29 bits
  the length of the part's data;
* the data, then zero bytes up to the next multiple of 4.

A record is one part with ``cflag`` 0, or several parts: a first (1), any number of middle ones
(2) and a last (3). MXNet's writer splits a record wherever its payload holds the magic number at
an offset that is a multiple of 4: the four magic bytes are left out there and the payload goes on
in the next part, so a reader scanning for the magic can always resynchronise. Joining the parts
with the magic between them gives the payload back.

The ``.idx`` beside it is text, one line ``key<TAB>offset`` per record: the record's integer key
and the byte offset of its first part. Keys need not follow file order (insightface writes its
header record 0 last).

Image records (MXNet's ``IRHeader``) hold a 24-byte header ``<IfQQ``: ``flag`` (uint32),
``label`` (float32), ``id`` and ``id2`` (uint64). When ``flag`` is above 0, ``flag`` float32
labels follow and the header's ``label`` is unused. The encoded image (JPEG or PNG) is the rest.

The insightface pack layer on top (header record, identity records, ``property``) is
:mod:`alob_common.insightface_pack`.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np

from alob_common.atomic import _temporary, write_text_atomic
from alob_common.errors import UserError

MAGIC = 0xCED7230A
_MAGIC_BYTES = struct.pack("<I", MAGIC)
_PART_HEAD = struct.Struct("<II")
_IMAGE_HEAD = struct.Struct("<IfQQ")
_LENGTH_BITS = 29
_MAX_PART = (1 << _LENGTH_BITS) - 1


class RecordIOError(UserError):
    """A RecordIO file or pack that cannot be read as one; the message names the file and byte."""


def _padding(length: int) -> int:
    return -length % 4


def frame_record(payload: bytes) -> bytes:
    """The bytes MXNet writes for one record: split at every 4-aligned magic number in
    ``payload``, each part with its magic, ``lrecord`` and zero padding."""
    parts, start = [], 0
    found = payload.find(_MAGIC_BYTES)
    while found != -1:
        if found % 4 == 0:
            parts.append(payload[start:found])
            start = found + 4
            found = payload.find(_MAGIC_BYTES, start)
        else:
            found = payload.find(_MAGIC_BYTES, found + 1)
    parts.append(payload[start:])
    out = bytearray()
    for index, part in enumerate(parts):
        if len(part) > _MAX_PART:
            raise RecordIOError(f"a record part of {len(part)} bytes exceeds RecordIO's limit of {_MAX_PART}")
        if len(parts) == 1:
            cflag = 0
        else:
            cflag = 1 if index == 0 else 3 if index == len(parts) - 1 else 2
        out += _PART_HEAD.pack(MAGIC, cflag << _LENGTH_BITS | len(part))
        out += part
        out += bytes(_padding(len(part)))
    return bytes(out)


def _read_record(f: BinaryIO, path: Path, origin: str = "") -> bytes | None:
    """Read the record starting at ``f``'s position; None at a clean end of file. ``origin`` is
    added to errors about the record's first header (where it came from, e.g. the ``.idx``)."""
    parts: list[bytes] = []
    while True:
        where = f.tell()
        head = f.read(_PART_HEAD.size)
        if not head and not parts:
            return None
        if len(head) < _PART_HEAD.size:
            raise RecordIOError(f"{path}: truncated: the file ends inside a record header at byte {where}")
        magic, lrecord = _PART_HEAD.unpack(head)
        cflag, length = lrecord >> _LENGTH_BITS, lrecord & _MAX_PART
        if magic != MAGIC:
            raise RecordIOError(f"{path}: byte {where}: magic 0x{magic:08x} where a RecordIO part header belongs "
                                f"(expected 0x{MAGIC:08x}){'' if parts else origin}")
        if cflag not in ((2, 3) if parts else (0, 1)):
            expected = "a continuation part (flag 2 or 3)" if parts else "the start of a record (flag 0 or 1)"
            raise RecordIOError(f"{path}: byte {where}: part with continuation flag {cflag} where {expected} "
                                f"belongs{'' if parts else origin}")
        data = f.read(length + _padding(length))
        if len(data) < length:
            raise RecordIOError(f"{path}: truncated: a record at byte {where} promises {length} bytes, "
                                f"only {len(data)} remain")
        parts.append(data[:length])
        if cflag in (0, 3):
            return _MAGIC_BYTES.join(parts)


def _read_index(idx_path: Path, rec_path: Path, rec_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Keys and offsets of a ``.idx``, sorted by key; offsets that cannot start a record in a
    ``.rec`` of ``rec_size`` bytes are refused here, before any read."""
    try:
        lines = idx_path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise RecordIOError(f"cannot read index {idx_path}: {getattr(err, 'strerror', None) or err}") from None
    entries: dict[int, int] = {}
    for number, line in enumerate(lines, start=1):
        fields = line.split()
        if not fields:
            continue
        try:
            key, offset = (int(v) for v in fields)
        except ValueError:
            raise RecordIOError(f"{idx_path}:{number}: expected 'key<TAB>offset' (two integers), "
                                f"found {line!r}") from None
        if key in entries:
            raise RecordIOError(f"{idx_path}:{number}: key {key} appears twice")
        if offset < 0 or offset % 4 or offset + _PART_HEAD.size > rec_size:
            raise RecordIOError(f"{idx_path}:{number}: offset {offset} of key {key} cannot start a record in "
                                f"{rec_path} ({rec_size} bytes): the .idx does not match the .rec")
        entries[key] = offset
    keys = np.array(sorted(entries), dtype=np.int64)
    offsets = np.array([entries[k] for k in keys.tolist()], dtype=np.int64)
    return keys, offsets


class RecordReader:
    """Random access to the records of a ``.rec`` by key, through its ``.idx``.

    The file is opened lazily, once per process, so a reader made in the main process can be
    handed to DataLoader workers (forked or spawned): each opens its own handle. Without a
    ``.idx`` the keys are the records' positions in the file (0, 1, …, as MXNet's sequential
    reader counts them); iteration then streams the file, and the first ``len`` or ``read``
    reads it once to find where the records start.
    """

    def __init__(self, rec_path: str | os.PathLike, idx_path: str | os.PathLike | None = None):
        self.rec_path = Path(rec_path)
        if not self.rec_path.is_file():
            raise RecordIOError(f"no RecordIO file at {self.rec_path}")
        if idx_path is None:
            beside = self.rec_path.with_suffix(".idx")
            self.idx_path = beside if beside.is_file() else None
        else:
            self.idx_path = Path(idx_path)
            if not self.idx_path.is_file():
                raise RecordIOError(f"no RecordIO index at {self.idx_path}")
        self._keys: np.ndarray | None = None
        self._offsets: np.ndarray | None = None
        if self.idx_path is not None:
            self._keys, self._offsets = _read_index(self.idx_path, self.rec_path, self.rec_path.stat().st_size)
        self._handle: BinaryIO | None = None
        self._pid: int | None = None

    @property
    def has_index(self) -> bool:
        """True when the keys come from a ``.idx`` file."""
        return self.idx_path is not None

    @property
    def keys(self) -> np.ndarray:
        """The record keys in ascending order."""
        self._locate()
        return self._keys

    def __len__(self) -> int:
        return len(self.keys)

    def __contains__(self, key: int) -> bool:
        return self._position(key) is not None

    def read(self, key: int) -> bytes:
        """The payload of record ``key`` (parts joined)."""
        position = self._position(key)
        if position is None:
            where = self.idx_path or f"{self.rec_path} (no .idx: keys are 0..{len(self) - 1})"
            raise RecordIOError(f"{where}: no record with key {key}")
        offset = int(self._offsets[position])
        f = self._file()
        f.seek(offset)
        origin = (f" (key {key} at offset {offset} by {self.idx_path}: "
                  "the .rec is damaged or the .idx belongs to another file)")
        payload = _read_record(f, self.rec_path, origin if self.has_index else "")
        if payload is None:
            raise RecordIOError(f"{self.rec_path}: no record at offset {offset}{origin}")
        return payload

    def items(self) -> Iterator[tuple[int, bytes]]:
        """``(key, payload)`` in key order; without a ``.idx``, one pass over the file."""
        if self.has_index:
            for key in self.keys.tolist():
                yield key, self.read(key)
            return
        with open(self.rec_path, "rb") as f:
            key = 0
            while (payload := _read_record(f, self.rec_path)) is not None:
                yield key, payload
                key += 1

    def __iter__(self) -> Iterator[bytes]:
        return (payload for _, payload in self.items())

    def record_offsets(self) -> list[int]:
        """Where each record of the ``.rec`` starts, in file order: one full read of the file."""
        starts = []
        with open(self.rec_path, "rb") as f:
            while True:
                start = f.tell()
                if _read_record(f, self.rec_path) is None:
                    return starts
                starts.append(start)

    def check_index(self) -> None:
        """Raise :class:`RecordIOError` unless the ``.idx`` offsets are exactly the records'
        starts (reads the whole ``.rec``)."""
        if not self.has_index:
            return
        starts = self.record_offsets()
        listed = set(self._offsets.tolist())
        stray = sorted(listed - set(starts))
        unlisted = sorted(set(starts) - listed)
        if stray or unlisted or len(listed) != len(self._offsets):
            detail = (f"offset {stray[0]} starts no record" if stray else
                      f"the record at offset {unlisted[0]} has no key" if unlisted else "two keys share an offset")
            raise RecordIOError(f"{self.idx_path} does not match {self.rec_path}: {detail}")

    def close(self) -> None:
        """Close this process's handle (a later read opens it again)."""
        if self._handle is not None and self._pid == os.getpid():
            self._handle.close()
        self._handle = None

    def __enter__(self) -> RecordReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_handle"] = None
        return state

    def _file(self) -> BinaryIO:
        if self._handle is None or self._pid != os.getpid():
            self._handle = open(self.rec_path, "rb")
            self._pid = os.getpid()
        return self._handle

    def _locate(self) -> None:
        if self._keys is None:
            self._offsets = np.array(self.record_offsets(), dtype=np.int64)
            self._keys = np.arange(len(self._offsets), dtype=np.int64)

    def _position(self, key: int) -> int | None:
        keys = self.keys
        position = int(np.searchsorted(keys, key))
        return position if position < len(keys) and keys[position] == key else None


class RecordWriter:
    """Writes a ``.rec`` and its ``.idx`` under temporary names, renamed into place at
    :meth:`close`, so readers never see half a pack. Use it as a context manager: an exception
    inside the block removes the temporary files and leaves existing files untouched."""

    def __init__(self, rec_path: str | os.PathLike, idx_path: str | os.PathLike | None = None):
        self.rec_path = Path(rec_path)
        self.idx_path = Path(idx_path) if idx_path is not None else self.rec_path.with_suffix(".idx")
        self.rec_path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = Path(_temporary(self.rec_path))  # the name remove_stale_temporaries cleans after a crash
        self._rec: BinaryIO | None = open(self._tmp, "wb")
        self._index: list[tuple[int, int]] = []
        self._keys: set[int] = set()

    def write(self, payload: bytes, key: int | None = None) -> int:
        """Append one record; ``key`` defaults to one above the largest so far (0 first).
        Returns the key."""
        if self._rec is None:
            raise ValueError("RecordWriter is closed")
        key = (max(self._keys) + 1 if self._keys else 0) if key is None else int(key)
        if key < 0 or key in self._keys:
            raise RecordIOError(f"{self.rec_path}: key {key} is {'negative' if key < 0 else 'already written'}")
        offset = self._rec.tell()
        self._rec.write(frame_record(bytes(payload)))
        self._index.append((key, offset))
        self._keys.add(key)
        return key

    def close(self) -> None:
        """Move the ``.rec`` and then the ``.idx`` into place."""
        if self._rec is None:
            return
        self._rec.close()
        self._rec = None
        os.replace(self._tmp, self.rec_path)
        write_text_atomic(self.idx_path, "".join(f"{key}\t{offset}\n" for key, offset in self._index))

    def abort(self) -> None:
        """Drop what was written; existing files at the target paths stay as they were."""
        if self._rec is not None:
            self._rec.close()
            self._rec = None
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def pack_image_record(image: bytes, label: float | Sequence[float] | np.ndarray, id: int = 0, id2: int = 0) -> bytes:
    """An image record payload: a scalar ``label`` goes in the header (flag 0), a sequence
    becomes the float32 label array after it (flag = its length), as MXNet's ``recordio.pack``."""
    if np.ndim(label) == 0:
        return _IMAGE_HEAD.pack(0, float(label), id, id2) + bytes(image)
    labels = np.asarray(label, dtype="<f4").ravel()
    return _IMAGE_HEAD.pack(labels.size, 0.0, id, id2) + labels.tobytes() + bytes(image)


def unpack_image_record(payload: bytes) -> tuple[np.ndarray | float, bytes]:
    """``(label, image_bytes)`` of an image record: ``label`` is a float when the header holds it
    (flag 0), else the float32 label array."""
    if len(payload) < _IMAGE_HEAD.size:
        raise RecordIOError(f"an image record of {len(payload)} bytes is shorter than its "
                            f"{_IMAGE_HEAD.size}-byte header")
    flag, label, _, _ = _IMAGE_HEAD.unpack_from(payload)
    if flag == 0:
        return float(label), payload[_IMAGE_HEAD.size:]
    end = _IMAGE_HEAD.size + 4 * flag
    if len(payload) < end:
        raise RecordIOError(f"an image record of {len(payload)} bytes cannot hold the {flag} labels "
                            "its header announces")
    return np.frombuffer(payload, "<f4", flag, _IMAGE_HEAD.size).copy(), payload[end:]
