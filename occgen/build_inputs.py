"""What identifies the files a build reads besides SRC: the ``--pairs`` file and the
``--occluders`` folder. ``dataset.json`` keeps each as its path relative to OUT (so the folder
holds no absolute path) and a content digest; a rerun into OUT compares the digests, so inputs
that moved with the same content are accepted and inputs with other content are refused."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from alob_common.digests import file_sha256, tree_sha256
from alob_common.images import is_image_name
from occgen.library import OccgenError

INPUT_KEYS = ("pairs", "occluders")  # the settings that name an input, identified by content
LISTINGS = ("index.csv", "occluder.txt")  # the occluder layouts' index files (occgen.library)


def relative_to_out(path: str | os.PathLike, out: str | os.PathLike) -> str:
    """``path`` relative to the folder ``out`` (POSIX separators), or absolute where no relative
    path exists (another drive)."""
    try:
        return Path(os.path.relpath(Path(path).resolve(), Path(out).resolve())).as_posix()
    except ValueError:
        return Path(path).resolve().as_posix()


def _occluder_file(name: str) -> bool:
    return name in LISTINGS or is_image_name(name)


def identify_inputs(settings: dict[str, Any], out: str | os.PathLike) -> dict[str, Any]:
    """``settings`` with the ``pairs`` file as ``{"path", "sha256"}`` and the ``occluders``
    folder as ``{"path", "sha256"}`` (the digest of its index files and images,
    :func:`alob_common.digests.tree_sha256`); an input not given stays None."""
    settings = dict(settings)
    if settings.get("pairs"):
        settings["pairs"] = {"path": relative_to_out(settings["pairs"], out), "sha256": file_sha256(settings["pairs"])}
    if settings.get("occluders"):
        folder = settings["occluders"]
        settings["occluders"] = {"path": relative_to_out(folder, out), "sha256": tree_sha256(folder, _occluder_file)}
    return settings


def _content(value: Any) -> str | None:
    """The digest an input's entry names; an older dataset.json's absolute path is read now."""
    if isinstance(value, dict):
        return value.get("sha256")
    if isinstance(value, str):  # written before digests were kept
        path = Path(value)
        if path.is_file():
            return file_sha256(path)
        return tree_sha256(path, _occluder_file) if path.is_dir() else f"missing {value}"
    return None


def _describe(value: Any, option: str) -> str:
    if value is None:
        return "the bundled library" if option == "occluders" else f"no --{option}"
    if isinstance(value, dict):
        return f"{value.get('path')}, sha256 {str(value.get('sha256'))[:12]}…"
    return str(value)


def check_same_inputs(old: dict[str, Any], new: dict[str, Any], out: str | os.PathLike) -> None:
    """Refuse (one-line :class:`OccgenError`) a rerun whose ``--pairs`` or ``--occluders`` content
    differs from what OUT was built from; where they lie does not matter."""
    for key in INPUT_KEYS:
        was, now = old.get(key), new.get(key)
        if _content(was) != _content(now):
            raise OccgenError(f"{out} was made from other --{key} content (then {_describe(was, key)}; now "
                              f"{_describe(now, key)}); use --overwrite or another OUT")
