"""Output writers: plain files (folder form) and WebDataset tar shards, both atomic.

A shard is written under a temporary name with webdataset's ``TarWriter`` (fixed mtime, user
and group, so the same samples give a byte-identical tar) and renamed when complete, so a
killed run never leaves a half shard that looks whole.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from alob_common.atomic import write_bytes_atomic

TAR_MTIME = 946684800.0  # 2000-01-01: any fixed value makes tars reproducible


class FolderWriter:
    """Writes each file atomically under ``root``."""

    def __init__(self, root: Path):
        self.root = os.fspath(root)

    def write(self, relative: str, data: bytes) -> None:
        write_bytes_atomic(os.path.join(self.root, relative), data)


class ShardWriter:
    """Writes one WebDataset tar at ``path`` (a context manager); renamed into place on success."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def __enter__(self) -> "ShardWriter":
        from webdataset import TarWriter

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, self.tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        self.handle = os.fdopen(fd, "wb")
        self.tar = TarWriter(self.handle, user="alob", group="alob", mtime=TAR_MTIME, encoder=False)
        return self

    def write(self, sample: dict) -> None:
        """``sample`` holds ``__key__`` and bytes per extension (``jpg``, ``mask.png``, ``json``)."""
        self.tar.write(sample)

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            self.tar.close()
            self.handle.close()
            if exc_type is None:
                os.replace(self.tmp, self.path)
        finally:
            Path(self.tmp).unlink(missing_ok=True)
