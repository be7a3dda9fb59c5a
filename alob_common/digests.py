"""Content digests: what identifies an input file or folder whatever its path (a build resumed
after its inputs moved, a cache keyed by a file's bytes)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Callable


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def tree_sha256(root: str | os.PathLike, keep: Callable[[str], bool] = lambda name: True) -> str:
    """Hex SHA-256 of a folder's listing and contents: each file under ``root`` whose name
    ``keep`` accepts (hidden files and folders left out, links followed), as its path relative to
    ``root`` and its own SHA-256, in sorted order. The same files with the same bytes give the
    same digest wherever the folder lies."""
    root = Path(root)
    entries = []
    for folder, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if not name.startswith(".") and keep(name):
                path = Path(folder) / name
                entries.append((path.relative_to(root).as_posix(), file_sha256(path)))
    digest = hashlib.sha256()
    for rel, content in sorted(entries):
        digest.update(f"{rel}\0{content}\n".encode())
    return digest.hexdigest()
