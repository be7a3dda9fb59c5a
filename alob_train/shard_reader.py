"""WebDataset shards read straight from their tar headers: the samples ``webdataset`` groups
(``__key__``, ``__url__`` and the bytes of each extension), about thirty times cheaper per sample
than ``webdataset.tarfile_to_samples`` over Python's ``tarfile`` (``bench/input_profile.py``).

Plain (uncompressed) ustar/GNU/pax tars, as occgen and ``webdataset.TarWriter`` write them:
regular files, GNU long names and pax ``path`` records. As with ``tarfile``, the archive ends at
its zero block, at the end of the file or at a header that does not check out after the first;
a header or a member's data cut short raises :class:`tarfile.ReadError`, and so does a first
header that is not one. Grouping follows webdataset: key = the name up to the first dot of its last
part, extension = the rest (lower case), consecutive members of one key form a sample, names
``__…__`` are metadata and skipped.
"""

from __future__ import annotations

import re
import tarfile
from typing import BinaryIO, Iterator

BLOCK = 512
_KEY = re.compile(r"^((?:.*/|)[^.]+)[.]([^/]*)$")
_META = re.compile(r"__[^/]*__($|/)")


def _number(field: bytes) -> int:
    """A header number: octal text, or base-256 when the first byte has its top bit set."""
    if field[0] & 0x80:
        return int.from_bytes(field[1:], "big")
    text = field.split(b"\0", 1)[0].strip()
    return int(text, 8) if text else 0


def _header(block: bytes) -> tuple[str, int, bytes] | None:
    """(name, size, type) of a header block, or None when its checksum does not check out."""
    try:
        checksum = _number(block[148:156])
    except ValueError:
        return None
    if checksum != sum(block[:148]) + 256 + sum(block[156:]):
        return None
    name = block[:100].split(b"\0", 1)[0]
    if block[257:262] == b"ustar" and block[345] != 0:
        name = block[345:500].split(b"\0", 1)[0] + b"/" + name
    return name.decode("utf-8", "surrogateescape"), _number(block[124:136]), block[156:157]


def _pax_path(data: bytes) -> str | None:
    for record in data.split(b"\n"):
        _, _, entry = record.partition(b" ")
        if entry.startswith(b"path="):
            return entry[5:].decode("utf-8", "surrogateescape")
    return None


def tar_members(stream: BinaryIO) -> Iterator[tuple[str, bytes]]:
    """(name, data) of each regular file in a tar stream."""
    first, long_name = True, None
    while True:
        block = stream.read(BLOCK)
        if block == bytes(BLOCK) or not block and not first:
            return
        if len(block) < BLOCK:
            raise tarfile.ReadError("empty file" if not block else "truncated header")
        found = _header(block)
        if found is None:
            if first:
                raise tarfile.ReadError("bad checksum")
            return
        first = False
        name, size, kind = found
        data = stream.read(size)
        if len(data) < size:
            raise tarfile.ReadError("unexpected end of data")
        stream.read(-size % BLOCK)
        if kind == b"L":
            long_name = data.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
        elif kind == b"x":
            long_name = _pax_path(data) or long_name
        elif kind in (b"0", b"\0", b"7"):
            yield (long_name or name), data
            long_name = None


def shard_samples(url: str, errors: list[BaseException] | None = None) -> Iterator[dict]:
    """The samples of one shard file, grouped as webdataset groups them. With ``errors``, a
    damaged shard is not raised: its error is appended there and, as webdataset does, the
    sample being read when it broke off comes last (possibly cut short)."""
    current: dict | None = None
    try:
        with open(url, "rb") as stream:
            for name, data in tar_members(stream):
                if "/" not in name and _META.match(name):
                    continue
                match = _KEY.match(name)
                if not match:
                    continue
                key, ext = match.group(1), match.group(2).lower()
                if current is None or key != current["__key__"]:
                    if current is not None:
                        yield current
                    current = {"__key__": key, "__url__": url}
                if ext in current:
                    raise ValueError(f"{name}: duplicate file name in tar file {ext}")
                current[ext] = data
    except (tarfile.TarError, OSError, ValueError) as err:
        if errors is None:
            raise
        errors.append(err)
    if current is not None:
        yield current
