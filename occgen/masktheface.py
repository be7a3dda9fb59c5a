"""MaskTheFace template sets: ``masks.cfg`` (an INI file; per template a ``template`` path and
six anchor points ``mask_a`` .. ``mask_f`` as ``x, y``) and RGBA template pictures, with
``_left``/``_right`` variants for turned heads.

A template is fitted to a face as MaskTheFace does: the homography from its six points to the
face's six anchors (:func:`occgen.face_landmarks.six_points`; least squares over the six), a perspective
warp of the RGBA picture, and alpha compositing with the colour scaled to the face's brightness.
The variant is chosen by yaw: beyond 13° the ``_left`` template (nose towards the image's left)
or ``_right`` one. Sections without a template picture (MaskTheFace's ``empty`` and ``inpaint``)
are skipped and listed in ``problems``.
"""

from __future__ import annotations

import configparser
import functools
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from occgen.face_landmarks import YAW_TEMPLATE_SWITCH, FaceShape, six_points
from occgen.library import OccgenError
from occgen.mask_drawing import MASK_TYPES

POINT_NAMES = ("mask_a", "mask_b", "mask_c", "mask_d", "mask_e", "mask_f")
WORK_WIDTH = 192  # templates are shrunk once (area filter) to this width: crops are ~100 px wide


@dataclass
class Template:
    """One RGBA template (premultiplied-ready float arrays) and its six anchor points."""

    name: str
    base: str  # the name without _left/_right, e.g. surgical_blue
    side: str  # "", "left" or "right"
    rgba: np.ndarray  # float32 (h, w, 4), colour premultiplied by alpha, at most WORK_WIDTH wide
    points: np.ndarray  # (6, 2) float, a..f, in that picture's pixels


@dataclass
class TemplateSet:
    """The loaded templates, grouped by mask type (``surgical`` holds surgical, surgical_blue, …)."""

    root: Path
    templates: dict[str, Template]
    problems: list[str] = field(default_factory=list)

    def bases(self, kind: str) -> list[str]:
        """Template base names of a mask type, sorted."""
        return sorted({t.base for t in self.templates.values() if _type_of(t.base) == kind and t.side == ""})

    def has(self, kind: str) -> bool:
        return bool(self.bases(kind))

    def pick(self, kind: str, yaw: float, rng: np.random.Generator) -> Template:
        """A template of ``kind`` (uniform over its bases), the side variant chosen by ``yaw``."""
        bases = self.bases(kind)
        if not bases:
            raise OccgenError(f"no {kind} templates in {self.root}")
        base = bases[int(rng.integers(len(bases)))]
        side = "left" if yaw < -YAW_TEMPLATE_SWITCH else "right" if yaw > YAW_TEMPLATE_SWITCH else ""
        return self.templates.get(f"{base}_{side}" if side else base, self.templates[base])

    def apply(self, image: np.ndarray, face: FaceShape, kind: str, rng: np.random.Generator
              ) -> tuple[np.ndarray, np.ndarray, str]:
        """Fit a template of ``kind`` to ``face``; returns (image, alpha 0..1, template name)."""
        template = self.pick(kind, face.yaw, rng)
        out, alpha = fit_template(image, template, six_points(face))
        return out, alpha, f"mtf:{template.name}"


def _type_of(base: str) -> str | None:
    head = base.split("_")[0]
    return next((t for t in MASK_TYPES if t.lower() == head.lower()), None)


def _point(text: str) -> tuple[float, float]:
    x, y = (float(v) for v in text.split(","))
    return x, y


def _resolve(root: Path, relative: str) -> Path | None:
    for candidate in (root.parent / relative, root / relative, root / "templates" / Path(relative).name):
        if candidate.is_file():
            return candidate
    return None


def load_templates(folder: str | Path) -> TemplateSet:
    """Load a MaskTheFace template folder (the one holding ``masks.cfg``); OccgenError when the
    folder or its ``masks.cfg`` is missing or no usable template remains."""
    root = Path(folder)
    cfg_path = root / "masks.cfg"
    if not root.is_dir():
        raise OccgenError(f"mask template folder not found: {root}")
    if not cfg_path.is_file():
        raise OccgenError(f"{root} has no masks.cfg (expected a MaskTheFace template folder, e.g. MaskTheFace/masks)")
    parser = configparser.ConfigParser()
    try:
        parser.read(cfg_path)
    except configparser.Error as err:
        raise OccgenError(f"{cfg_path}: not a valid masks.cfg ({err.__class__.__name__})") from None
    templates: dict[str, Template] = {}
    problems: list[str] = []
    for name in parser.sections():
        section = parser[name]
        if "template" not in section:
            problems.append(f"{name}: no template picture (skipped)")
            continue
        path = _resolve(root, section["template"].strip())
        if path is None:
            problems.append(f"{name}: template {section['template'].strip()} not found (skipped)")
            continue
        try:
            points = np.array([_point(section[p]) for p in POINT_NAMES], np.float64)
        except (KeyError, ValueError):
            problems.append(f"{name}: needs six points mask_a..mask_f as 'x, y' (skipped)")
            continue
        rgba = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if rgba is None or rgba.ndim != 3 or rgba.shape[2] != 4:
            problems.append(f"{name}: {path.name} is not an RGBA picture (skipped)")
            continue
        base, side = name, ""
        for s in ("left", "right"):
            if name.endswith(f"_{s}"):
                base, side = name[: -len(s) - 1], s
        if _type_of(base) is None:
            problems.append(f"{name}: not one of the mask types {', '.join(MASK_TYPES)} (skipped)")
            continue
        templates[name] = Template(name, base, side, *_prepare(cv2.cvtColor(rgba, cv2.COLOR_BGRA2RGBA), points))
    if not any(t.side == "" for t in templates.values()):
        raise OccgenError(f"{cfg_path}: no usable mask template ({'; '.join(problems[:3])})")
    return TemplateSet(root, templates, problems)


def _prepare(rgba: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Premultiply the colour by alpha (no dark fringes when warped) and shrink to WORK_WIDTH."""
    work = rgba.astype(np.float32)
    work[..., :3] *= work[..., 3:] / 255.0
    scale = min(1.0, WORK_WIDTH / rgba.shape[1])
    if scale < 1.0:
        size = (round(rgba.shape[1] * scale), round(rgba.shape[0] * scale))
        work = cv2.resize(work, size, interpolation=cv2.INTER_AREA)
        points = points * np.array([size[0] / rgba.shape[1], size[1] / rgba.shape[0]])
    return work, points


@functools.lru_cache(maxsize=4)
def load_templates_cached(folder: str) -> TemplateSet:
    """:func:`load_templates`, once per process and folder."""
    return load_templates(folder)


def fit_template(image: np.ndarray, template: Template, face_points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Warp ``template`` onto ``image`` by the homography from its six points to ``face_points``
    and composite it, its colour scaled to the face's brightness; returns (image, alpha)."""
    h, w = image.shape[:2]
    matrix, _ = cv2.findHomography(template.points, face_points, 0)
    if matrix is None:
        matrix = np.vstack([cv2.estimateAffine2D(template.points, face_points)[0], [0, 0, 1]])
    warped = cv2.warpPerspective(template.rgba, matrix, (w, h), flags=cv2.INTER_LINEAR,
                                 borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    alpha = np.clip(warped[..., 3] / 255.0, 0, 1)
    colour = warped[..., :3]
    lum = image.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    under = alpha > 0.5
    gain = float(np.clip((lum[under].mean() / 150.0) ** 0.7, 0.4, 1.15)) if under.any() else 1.0
    out = image.astype(np.float32) * (1 - alpha[..., None]) + colour * gain
    return np.clip(np.rint(out), 0, 255).astype(np.uint8), alpha

