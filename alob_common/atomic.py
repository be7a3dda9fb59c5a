"""Atomic file writes: a reader (or a rerun after a crash) sees the old file or the new one,
never half of one. Every file a later stage reads is written through these functions."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd


def _temporary(path: str | os.PathLike) -> str:
    # The process id keeps concurrent writers (worker processes, array jobs) apart.
    folder, name = os.path.split(os.fspath(path))
    return os.path.join(folder, f".{name}.{os.getpid()}.tmp")


def _create(path: str) -> int:
    """Open ``path`` for writing (created or truncated), creating its folder only when missing."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
    try:
        return os.open(path, flags, 0o666)
    except FileNotFoundError:
        folder = os.path.dirname(path)
        if not folder:
            raise
        os.makedirs(folder, exist_ok=True)
        return os.open(path, flags, 0o666)


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path`` and rename it over ``path``.

    The folder is created only when missing, and the file is written with plain system calls on
    string paths (builders write thousands of files per second).
    """
    path = os.fspath(path)
    tmp = _temporary(path)
    fd = _create(tmp)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.close(fd)
        fd = -1
        os.replace(tmp, path)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Atomically write UTF-8 text."""
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | os.PathLike, data: Any) -> None:
    """Atomically write ``data`` as indented JSON (non-JSON values written with ``str``)."""
    write_text_atomic(path, json.dumps(data, indent=2, default=str) + "\n")


def write_csv_atomic(path: str | os.PathLike, table: "pd.DataFrame") -> None:
    """Atomically write a table as CSV without the index (the project's table format)."""
    write_text_atomic(path, table.to_csv(index=False))


_ROOT_FD: list[int] = []


def _link(source: str | os.PathLike, path: str) -> None:
    """Hard-link ``path`` to the file ``source`` names, through a symlink to its target (link(2)
    links the symlink itself; linkat with AT_SYMLINK_FOLLOW, which Python uses only when given a
    folder descriptor, follows it; the descriptor is ignored for the absolute path given)."""
    if not _ROOT_FD:
        _ROOT_FD.append(os.open("/", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC))
    os.link(os.path.abspath(source), path, src_dir_fd=_ROOT_FD[0], follow_symlinks=True)


def link_or_copy_atomic(source: str | os.PathLike, path: str | os.PathLike, data: bytes) -> None:
    """Put a copy of ``source`` (whose bytes are ``data``) at ``path``: a hard link to the file
    ``source`` is or points to when both lie on one file system (no second copy on disk, ten
    times faster to create; a link appears whole, so a new name needs no temporary), else the
    bytes. An existing ``path`` is replaced through a temporary link."""
    path = os.fspath(path)
    try:
        try:
            _link(source, path)
            return
        except FileNotFoundError:
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
            _link(source, path)
            return
        except FileExistsError:
            pass
        tmp = _temporary(path)
        try:
            _link(source, tmp)
            os.replace(tmp, path)
        finally:
            Path(tmp).unlink(missing_ok=True)  # renaming onto a link of the same file leaves the source name
    except OSError:
        write_bytes_atomic(path, data)


def remove_stale_temporaries(root: str | os.PathLike) -> int:
    """Delete the temporary files (``.<name>.<pid>.tmp``) that a killed writer left under
    ``root``; a rerun calls this before it resumes. Returns how many were removed."""
    removed = 0
    for path in Path(root).rglob(".*.tmp"):
        if path.is_file():
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def write_figure_atomic(figure: Any, path: str | os.PathLike, **savefig_options: Any) -> None:
    """Atomically write a matplotlib figure in the format of ``path``'s extension."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format=Path(path).suffix.lstrip(".") or "png", **savefig_options)
    write_bytes_atomic(path, buffer.getvalue())
