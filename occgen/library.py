"""The occluder library: RGBA occluders by category, from ``assets/occluders/`` or a user folder.

Three folder layouts load: this project's (``index.csv`` with category, file, size, placement
hint and anchor), FROM's (category folders, optionally an ``occluder.txt`` listing
``category/file.png``), and any folder of images (the parent folder is the category). Alpha is
used when present; an image without alpha is its full rectangle. Files that cannot be used are
skipped and reported in :attr:`OccluderLibrary.problems`, one line each.
"""

from __future__ import annotations

import hashlib
import os
import re
import site
import sys
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from alob_common.errors import UserError
from alob_common.images import is_image_name

MIN_OPAQUE_FRACTION = 0.01  # an occluder whose alpha covers less than this is unusable
HINTS = ("eyes", "mouth", "anywhere")
DEFAULT_HINTS = {
    "eye_mask": "eyes", "eyeglasses": "eyes", "sunglasses": "eyes", "glasses": "eyes",
    "mouth_mask": "mouth", "mask": "mouth", "scarf": "mouth",
}
ENV_VAR = "OCCGEN_OCCLUDERS"
FLAT_BACKDROP = (238, 238, 238)


class OccgenError(UserError):
    """A problem with occgen's inputs, reported to the user in one line."""


@dataclass(eq=False)
class Occluder:
    """One occluder: RGB and alpha (uint8), where it belongs on a face, and its anchor point
    (fractions of its width and height) that semantic placement puts on the face point."""

    category: str
    name: str
    rgb: np.ndarray
    alpha: np.ndarray
    hint: str = "anywhere"
    anchor: tuple[float, float] = (0.5, 0.5)

    @property
    def size(self) -> tuple[int, int]:
        """Native (width, height) in pixels; FROM's ``factor`` multiplies this."""
        return self.rgb.shape[1], self.rgb.shape[0]

    @cached_property
    def premultiplied(self) -> tuple[np.ndarray, np.ndarray]:
        """(RGB × alpha, alpha) as float32, the form that resizes without colour fringes."""
        a = self.alpha.astype(np.float32) / 255.0
        return self.rgb.astype(np.float32) * a[..., None], a

    @cached_property
    def flat(self) -> np.ndarray:
        """RGB flattened on a light grey backdrop by its alpha: the opaque picture rect mode
        pastes (an RGB occluder is unchanged)."""
        a = self.alpha.astype(np.float32)[..., None] / 255.0
        return np.rint(self.rgb * a + np.float32(FLAT_BACKDROP) * (1 - a)).astype(np.uint8)

    @cached_property
    def mask_integral(self) -> np.ndarray:
        """Summed-area table of the alpha > 0.5 mask, (h + 1, w + 1), for fast coverage sums."""
        return cv2.integral((self.alpha > 127).astype(np.uint8)).astype(np.float64)

    @cached_property
    def rect_integral(self) -> np.ndarray:
        """Summed-area table of the full rectangle (what rect blending covers)."""
        return cv2.integral(np.ones(self.alpha.shape, np.uint8)).astype(np.float64)


@dataclass
class OccluderLibrary:
    """Occluders grouped by category, plus the one-line problems met while loading."""

    occluders: list[Occluder]
    root: Path | None = None
    problems: list[str] = field(default_factory=list)
    _subsets: dict = field(default_factory=dict, repr=False, compare=False)

    @cached_property
    def by_category(self) -> dict[str, list[Occluder]]:
        groups: dict[str, list[Occluder]] = {}
        for occ in self.occluders:
            groups.setdefault(occ.category, []).append(occ)
        return dict(sorted(groups.items()))

    @property
    def categories(self) -> list[str]:
        return list(self.by_category)

    def subset(self, categories: list[str] | tuple[str, ...] | None) -> "OccluderLibrary":
        """The library restricted to ``categories`` (all when None; made once per selection);
        unknown names are an error."""
        if not categories:
            return self
        key = tuple(sorted(categories))
        if key not in self._subsets:
            unknown = sorted(set(categories) - set(self.by_category))
            if unknown:
                raise OccgenError(f"unknown occluder categories {', '.join(unknown)}; have {', '.join(self.categories)}")
            chosen = [o for o in self.occluders if o.category in categories]
            self._subsets[key] = OccluderLibrary(chosen, self.root, self.problems)
        return self._subsets[key]

    @cached_property
    def fingerprint(self) -> str:
        """A digest of the occluders' names, sizes and alpha: what derived caches depend on."""
        digest = hashlib.blake2b(digest_size=16)
        for occ in self.occluders:
            digest.update(f"{occ.category}/{occ.name}/{occ.size}".encode())
            digest.update(occ.alpha.tobytes())
        return digest.hexdigest()

    def pick(self, rng: np.random.Generator, by: str = "category") -> Occluder:
        """``by="category"``: a category uniformly, then one of its occluders uniformly (balanced
        whatever the category sizes); ``by="file"``: one occluder uniformly, as FROM does."""
        if by == "file":
            return self.occluders[int(rng.integers(len(self.occluders)))]
        groups = list(self.by_category.values())
        group = groups[int(rng.integers(len(groups)))]
        return group[int(rng.integers(len(group)))]

    def table(self) -> pd.DataFrame:
        """One row per occluder: category, file, width, height, hint, anchor."""
        return pd.DataFrame(
            [{"category": o.category, "file": o.name, "width": o.size[0], "height": o.size[1], "hint": o.hint,
              "anchor_x": o.anchor[0], "anchor_y": o.anchor[1]} for o in self.occluders]
        )


def read_occluder(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read an image as (RGB, alpha) uint8; an image without alpha gets an opaque alpha.

    Raises OccgenError with the reason when the file is unreadable or its alpha is unusable.
    """
    array = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if array is None:
        raise OccgenError("unreadable image")
    if array.dtype == np.uint16:
        array = (array / 257.0).round().astype(np.uint8)
    elif array.dtype != np.uint8:
        raise OccgenError(f"unsupported pixel type {array.dtype}")
    if array.ndim == 2:
        array = array[..., None]
    channels = array.shape[2]
    if channels in (1, 2):
        rgb = np.repeat(array[..., :1], 3, axis=2)
    else:
        rgb = array[..., 2::-1]
    alpha = array[..., -1] if channels in (2, 4) else np.full(array.shape[:2], 255, np.uint8)
    if min(rgb.shape[:2]) < 2:
        raise OccgenError(f"too small ({rgb.shape[1]}x{rgb.shape[0]})")
    if (alpha > 127).mean() < MIN_OPAQUE_FRACTION:
        raise OccgenError("no usable alpha: (almost) fully transparent")
    return np.ascontiguousarray(rgb), np.ascontiguousarray(alpha)


def _category_of(listed: str) -> str:
    """The category of an ``occluder.txt`` line: its folder, else its name without a trailing
    number (``cup_3.png`` → ``cup``)."""
    path = Path(listed)
    if path.parent != Path("."):
        return path.parent.as_posix()
    return re.sub(r"[\s_\-]*\d+$", "", path.stem) or path.stem


def _entries(root: Path) -> tuple[list[dict], list[str]]:
    """The (category, file, hint, anchor) entries of a folder in any of the three layouts."""
    problems: list[str] = []
    if (root / "index.csv").exists():
        index = pd.read_csv(root / "index.csv", dtype={"category": str, "file": str}, keep_default_na=False)
        return index.to_dict("records"), problems
    listing = root / "occluder.txt"
    if listing.exists():
        files = [line.strip() for line in listing.read_text().splitlines() if line.strip()]
        entries = [{"category": _category_of(f), "file": f} for f in files]
    else:
        entries = []
        for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            rel = Path(dirpath).relative_to(root)
            category = rel.as_posix() if rel != Path(".") else "occluder"
            for name in sorted(filenames):
                if is_image_name(name):
                    entries.append({"category": category, "file": (rel / name).as_posix()})
        for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
            if dirpath != str(root) and not dirnames and not any(is_image_name(f) for f in filenames):
                problems.append(f"category {Path(dirpath).relative_to(root).as_posix()}: empty, no images")
    return entries, problems


def load_library(root: str | os.PathLike | None = None) -> OccluderLibrary:
    """Load the occluders under ``root`` (default: :func:`default_library_path`)."""
    root = Path(root) if root is not None else default_library_path()
    if not root.is_dir():
        raise OccgenError(f"occluder folder not found: {root}")
    entries, problems = _entries(root)
    occluders, used = [], set()
    for entry in entries:
        category, name = str(entry["category"]), str(entry["file"])
        try:
            rgb, alpha = read_occluder(root / name)
        except OccgenError as err:
            problems.append(f"occluder {name}: {err}; skipped")
            continue
        hint = str(entry.get("hint") or DEFAULT_HINTS.get(category, "anywhere"))
        anchor = (float(entry.get("anchor_x", 0.5) or 0.5), float(entry.get("anchor_y", 0.5) or 0.5))
        occluders.append(Occluder(category, name, rgb, alpha, hint if hint in HINTS else "anywhere", anchor))
        used.add(category)
    for category in sorted({str(e["category"]) for e in entries} - used):
        problems.append(f"category {category}: no usable occluder images; left out")
    if not occluders:
        raise OccgenError(f"no usable occluder images in {root}" + (f" ({problems[0]})" if problems else ""))
    return OccluderLibrary(occluders, root, problems)


def default_library_path() -> Path:
    """Where the project's own occluders are: ``$OCCGEN_OCCLUDERS``, the source checkout's
    ``assets/occluders``, or the copy ``pip install`` puts under ``<prefix>/share`` (or the
    user base for ``--user``)."""
    candidates = []
    if os.environ.get(ENV_VAR):
        candidates.append(Path(os.environ[ENV_VAR]))
    candidates.append(Path(__file__).resolve().parents[1] / "assets" / "occluders")
    for prefix in (sys.prefix, site.USER_BASE or ""):  # pip install . / pip install --user .
        candidates += [Path(prefix) / "share" / name / "occluders" for name in ("alob-toolkit", "alob_toolkit")]
    for path in candidates:
        if (path / "index.csv").exists():
            return path
    raise OccgenError(
        "occluder library not found (looked in " + ", ".join(str(p) for p in candidates)
        + "); run 'occgen assets --regenerate --out DIR' and pass --occluders DIR or set $" + ENV_VAR
    )


_DEFAULT: OccluderLibrary | None = None


def default_library() -> OccluderLibrary:
    """The project's library, loaded once per process."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = load_library()
    return _DEFAULT


def library_or_default(root: str | os.PathLike | None) -> OccluderLibrary:
    """The library under ``root``, or the project's own (loaded once per process) when None."""
    return load_library(root) if root else default_library()
