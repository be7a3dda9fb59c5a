"""Where a build's input images come from, and how one is read.

``folder`` and ``lfw`` read an identity-folder tree; ``rec`` an insightface training pack (a
folder with ``train.rec``, ``train.idx`` and ``property``, or a ``.rec`` path); ``bin`` an
insightface verification ``.bin``. Every source is listed as sorted names whose parent folder is
the identity, so the sample list, the per-sample keys and seeds, the units and the outputs are
the same code for all of them:

* a pack record is named ``<label>/<record key>`` (both zero-padded, so sorting by name keeps the
  labels' order), so its key comes from the record index and its identity from its label;
* a ``.bin`` image is named ``<image index, 6 digits>.jpg`` (``.png`` when it holds a PNG); pair
  ``k`` is images ``2k`` and ``2k + 1``, in insightface's 10 contiguous folds.
"""

from __future__ import annotations

import os
from pathlib import Path

from alob_common.errors import UserError
from alob_common.images import no_images_message, scan_images
from alob_common.insightface_pack import Pack, open_pack
from alob_common.pairs import Pair, Pairs, contiguous_folds
from alob_common.recordio import unpack_image_record
from alob_common.verification_bin import read_bin
from occgen.build_plan import list_sources, scan_inputs
from occgen.library import OccgenError

PNG_SIGNATURE = b"\x89PNG"
_OPENED: dict[tuple[str, str], Pack | list[bytes]] = {}  # per process: the pack or the .bin's images


def _opened(source: str, src: Path) -> Pack | list[bytes]:
    """The pack or the ``.bin`` images of ``src``, opened once per process."""
    key = (source, str(src))
    if key not in _OPENED:
        try:
            _OPENED[key] = open_pack(src) if source == "rec" else read_bin(src)[0]
        except UserError as err:
            raise OccgenError(str(err)) from None
    return _OPENED[key]


def list_inputs(source: str, src: Path) -> tuple[list[str], list[dict], dict]:
    """The sorted input names, manifest rows of inputs that cannot be used (an aligned folder's
    failures) and the ``inputs`` summary of ``src``; OccgenError when ``src`` is unusable."""
    if source == "rec":
        return _pack_names(src), [], {"images": len(_opened(source, src)), "other_files": 0, "other_examples": []}
    if source == "bin":
        if not src.is_file():
            raise OccgenError(f"verification .bin not found: {src}")
        images = _opened(source, src)
        names = [f"{i:06d}.{'png' if data.startswith(PNG_SIGNATURE) else 'jpg'}" for i, data in enumerate(images)]
        return names, [], {"images": len(names), "other_files": 0, "other_examples": []}
    if not src.is_dir():
        raise OccgenError(f"source folder not found: {src}")
    scan = scan_inputs(src)
    rels, failed_rows = list_sources(src, scan)
    if not rels:
        raise OccgenError(no_images_message(src, scan_images(src)))
    return rels, failed_rows, scan.summary()


def _pack_names(src: Path) -> list[str]:
    """``<label>/<key>`` of every image of the pack. With identity records each identity's label
    is read from its first record; a plain pack's labels are read from every record."""
    pack = _opened("rec", src)
    if not len(pack):
        raise OccgenError(f"{src}: the pack holds no image records")
    labelled = pack.labelled_keys()
    width = max(5, len(str(max(label for label, _ in labelled))))
    keys = max(8, len(str(max(key for _, key in labelled))))
    return sorted(f"{label:0{width}d}/{key:0{keys}d}" for label, key in labelled)


def read_input(source: str, src: Path, name: str) -> bytes:
    """The encoded image named ``name`` (as listed by :func:`list_inputs`); OSError or a
    UserError when it cannot be read."""
    if source == "rec":
        pack = _opened(source, src)
        return unpack_image_record(pack.reader.read(int(Path(name).name)))[1]
    if source == "bin":
        return _opened(source, src)[int(name.split(".")[0])]
    with open(os.path.join(src, name), "rb") as handle:
        return handle.read()


def bin_pairs(src: Path, names: list[str]) -> Pairs:
    """The pairs of a ``.bin``: images ``2k`` and ``2k + 1`` (names without extension), its
    same-flags, and insightface's 10 contiguous folds."""
    try:
        same = read_bin(src)[1]
    except UserError as err:
        raise OccgenError(str(err)) from None
    folds = contiguous_folds(len(same))
    stems = [name.rsplit(".", 1)[0] for name in names]
    pairs = [Pair(k + 1, f"pair {k}", stems[2 * k], stems[2 * k + 1], bool(s), int(folds[k]))
             for k, s in enumerate(same)]
    return Pairs(src, int(folds.max()) + 1 if len(folds) else 0, 0, pairs)
