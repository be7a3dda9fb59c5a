"""insightface's verification sets (``lfw.bin``, ``cfp_fp.bin``, ``agedb_30.bin`` …), read safely
and written so insightface's own loader reads them.

A ``.bin`` is one pickle of the tuple ``(bins, issame_list)``:

* ``bins``: the encoded images (JPEG or PNG bytes), two per pair, the pair's images consecutive
  (pair ``k`` is ``bins[2k]`` and ``bins[2k+1]``); files written by Python 2 hold ``str``, which
  loads as ``bytes`` with ``encoding="bytes"``, and some hold uint8 numpy arrays instead;
* ``issame_list``: one bool per pair (a list, or a numpy bool array).

insightface scores them with 10 contiguous folds of the pair list. A pickle can name any Python
callable, so these files are loaded with an unpickler that resolves only the few names such a
file needs (list, tuple, bytes, bool, numpy arrays) and refuses every other one.

In the project's pair table (``path1, path2, same, fold``) each image gets a stable synthetic
name, ``<bin file name>#<image index, 6 digits>`` (``lfw.bin#000123``), so embeddings can be
keyed by it like a path.
"""

from __future__ import annotations

import codecs
import io
import os
import pickle
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from alob_common.atomic import write_bytes_atomic
from alob_common.errors import UserError
from alob_common.pairs import contiguous_folds


class VerificationBinError(UserError):
    """A verification ``.bin`` that cannot be read (or is refused); the message names the file."""


# The callables a verification pickle may name. numpy's array and scalar rebuilders are taken
# from a live array's pickle recipe, which gives the right ones for numpy 1 (numpy.core) and
# numpy 2 (numpy._core) without importing a deprecated module.
_RECONSTRUCT = np.array([]).__reduce__()[0]
_SCALAR = np.float32(0).__reduce__()[0]
_ALLOWED = {
    ("builtins", "list"): list,
    ("builtins", "tuple"): tuple,
    ("builtins", "bytes"): bytes,
    ("builtins", "bytearray"): bytearray,
    ("builtins", "bool"): bool,
    ("__builtin__", "list"): list,
    ("__builtin__", "tuple"): tuple,
    ("__builtin__", "bool"): bool,
    ("_codecs", "encode"): codecs.encode,  # how protocol 2 spells bytes
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy.core.multiarray", "scalar"): _SCALAR,
    ("numpy._core.multiarray", "scalar"): _SCALAR,
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the names in ``_ALLOWED``; any other global is refused."""

    def __init__(self, data: bytes, source: Path):
        super().__init__(io.BytesIO(data), encoding="bytes")
        self.source = source

    def find_class(self, module: str, name: str) -> object:
        allowed = _ALLOWED.get((module, name))
        if allowed is None:
            raise VerificationBinError(f"{self.source}: refusing to load {module}.{name} from the pickle (a "
                                       "verification .bin holds only lists, tuples, bytes, bools and numpy arrays)")
        return allowed


def _image_bytes(item: object, index: int, path: Path) -> bytes:
    if isinstance(item, (bytes, bytearray)):
        return bytes(item)
    if isinstance(item, np.ndarray) and item.dtype == np.uint8:
        return item.tobytes()
    raise VerificationBinError(f"{path}: image {index} is a {type(item).__name__}, not encoded image bytes")


def read_bin(path: str | os.PathLike) -> tuple[list[bytes], np.ndarray]:
    """``(images, issame)``: the encoded images (2 per pair, consecutive) and one bool per pair."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise VerificationBinError(f"cannot read verification set {path}: {err.strerror or err}") from None
    try:
        loaded = _RestrictedUnpickler(data, path).load()
    except VerificationBinError:
        raise
    except Exception as err:  # any unpickling failure means "not a readable .bin"
        raise VerificationBinError(f"{path}: not a readable verification pickle "
                                   f"({type(err).__name__}: {err})") from None
    if not isinstance(loaded, (tuple, list)) or len(loaded) != 2:
        raise VerificationBinError(f"{path}: expected a pickled (bins, issame_list) pair, "
                                   f"found {type(loaded).__name__}")
    bins, issame = loaded
    if not isinstance(bins, (list, tuple)) or not isinstance(issame, (list, tuple, np.ndarray)):
        raise VerificationBinError(f"{path}: expected (list of images, list of bools), found "
                                   f"({type(bins).__name__}, {type(issame).__name__})")
    images = [_image_bytes(item, i, path) for i, item in enumerate(bins)]
    same = np.asarray(issame).astype(bool).ravel()
    if len(images) != 2 * len(same):
        raise VerificationBinError(f"{path}: {len(images)} images for {len(same)} pairs (two per pair expected)")
    return images, same


def write_bin(path: str | os.PathLike, images: Sequence[bytes], issame: Sequence[bool] | np.ndarray) -> None:
    """Write ``(images, issame)`` as insightface writes a ``.bin`` (a protocol-4 pickle of a list of
    bytes and a list of bools), atomically."""
    bins = [bytes(image) for image in images]
    same = [bool(s) for s in np.asarray(issame).ravel()]
    if len(bins) != 2 * len(same):
        raise VerificationBinError(f"{path}: {len(bins)} images for {len(same)} pairs (two per pair expected)")
    write_bytes_atomic(path, pickle.dumps((bins, same), protocol=4))


def bin_image_name(bin_name: str, index: int) -> str:
    """The synthetic path of image ``index`` of a ``.bin``, e.g. ``lfw.bin#000123``."""
    return f"{bin_name}#{index:06d}"


def bin_pair_table(bin_name: str, issame: Sequence[bool] | np.ndarray, n_folds: int = 10) -> pd.DataFrame:
    """The pair table ``path1, path2, same, fold`` of a ``.bin`` named ``bin_name`` (its file
    name), with insightface's ``n_folds`` contiguous folds."""
    same = np.asarray(issame, dtype=bool).ravel()
    return pd.DataFrame({
        "path1": [bin_image_name(bin_name, 2 * k) for k in range(len(same))],
        "path2": [bin_image_name(bin_name, 2 * k + 1) for k in range(len(same))],
        "same": same,
        "fold": contiguous_folds(len(same), n_folds),
    })


def load_bin_pairs(path: str | os.PathLike, n_folds: int = 10) -> tuple[pd.DataFrame, dict[str, bytes]]:
    """A ``.bin`` as the pair table and its images keyed by the table's synthetic paths."""
    path = Path(path)
    images, same = read_bin(path)
    named = {bin_image_name(path.name, i): image for i, image in enumerate(images)}
    return bin_pair_table(path.name, same, n_folds), named


def write_pairs_bin(path: str | os.PathLike, table: pd.DataFrame) -> bool:
    """Write the pair table's images (``path1`` then ``path2`` of each pair, the files' bytes as
    stored) and same-flags as a ``.bin``. Returns whether the table's folds are the 10 contiguous
    folds insightface will cut, i.e. whether the ``.bin`` scores exactly as the table does."""
    images = []
    for first, second in zip(table["path1"], table["path2"]):
        for image in (first, second):
            try:
                images.append(Path(image).read_bytes())
            except OSError as err:
                raise VerificationBinError(f"cannot read {image}: {err.strerror or err}") from None
    write_bin(path, images, table["same"].to_numpy(bool))
    return bool(np.array_equal(table["fold"].to_numpy(int), contiguous_folds(len(table))))
