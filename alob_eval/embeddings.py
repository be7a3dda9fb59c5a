"""The embeddings file that lets any model be measured with our protocol.

Format: a NumPy ``.npz`` with two arrays, ``paths`` (N strings) and ``embeddings`` (N × D
floats), one vector per image. A path may be absolute or relative to the benchmark folder it
belongs to; :func:`embeddings_for` accepts either.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np

from alob_common.atomic import write_bytes_atomic
from alob_common.errors import UserError


def save_embeddings(path: str | Path, paths: list[str], vectors: np.ndarray, dtype: type = np.float32) -> None:
    """Write an embeddings file (``.npz``) atomically, the vectors as ``dtype`` (``alob-eval
    --save-embeddings`` keeps the float64 it scored, so a re-score gives the same figures)."""
    vectors = np.asarray(vectors, dtype=dtype)
    if vectors.ndim != 2 or len(vectors) != len(paths):
        raise ValueError("need one row of embeddings per path")
    buffer = io.BytesIO()
    np.savez(buffer, paths=np.asarray(paths, dtype=str), embeddings=vectors)
    write_bytes_atomic(path, buffer.getvalue())


def load_embeddings(path: str | Path) -> dict[str, np.ndarray]:
    """Read an embeddings file into ``{path: vector}``; an unreadable file is a :class:`UserError`."""
    try:
        with np.load(path, allow_pickle=False) as data:
            if "paths" not in data or "embeddings" not in data:
                raise UserError(f"{path}: an embeddings file needs arrays 'paths' and 'embeddings'")
            return dict(zip(data["paths"].tolist(), data["embeddings"]))
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise UserError(f"{path} is not a readable embeddings file (.npz): {err}") from None


def embeddings_for(table: dict[str, np.ndarray], paths: list[str], root: str | Path) -> np.ndarray:
    """Vectors of ``paths`` (absolute) looked up by absolute path or path relative to ``root``."""
    root = Path(root)
    rows, missing = [], []
    for p in paths:
        vector = table.get(p)
        if vector is None:
            try:
                vector = table.get(Path(p).relative_to(root).as_posix())
            except ValueError:
                vector = None
        if vector is None:
            missing.append(p)
        else:
            rows.append(vector)
    if missing:
        raise KeyError(f"{len(missing)} images have no embedding, e.g. {missing[0]}")
    return np.stack(rows)
