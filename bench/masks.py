"""Benchmark of occgen's face masks against a MaskTheFace-like pipeline, side by side in one run.

Per image, bytes in and bytes out (decode, mask, encode the image as JPEG and the mask as PNG),
one process, medians over repeats:

* occgen, ``--landmarks auto`` (dlib 68 points on the crop's fixed face box) and procedural masks;
* occgen, ``--landmarks model`` (the 5-point face-shape model, no dlib);
* occgen with ``--mask-templates`` (MaskTheFace's templates fitted by homography);
* a MaskTheFace-like pipeline written here for the comparison: dlib's HOG face detector on the
  image (upsampled once, as ``face_recognition.face_locations`` does by default), the 68-point
  predictor, six anchor points, ``cv2.findHomography`` of an RGBA template, a perspective warp
  and alpha compositing; faces the detector misses get no mask (MaskTheFace drops them).

Usage:  python bench/masks.py --src /work/data/lfw-aligned --templates ../shared/data/masktheface/masks
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

if not __package__:  # run as a script, this file's folder would shadow the occgen package
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import cv2
import numpy as np
import pandas as pd

from alob_common.dlib_models import SHAPE_68, dlib_model_path
from alob_common.images import decode_rgb, encode
from occgen.face_landmarks import crop_landmarks
from occgen.masks import MASK_TYPES, MaskConfig, mask_face
from occgen.masktheface import load_templates
from occgen.rng import rng_for


def masktheface_like(blobs: list[bytes], templates, detector, predictor) -> int:
    """The MaskTheFace way; returns how many faces got no mask (not detected)."""
    import dlib  # noqa: F401  (the detector and predictor are dlib objects)

    names = sorted(t for t in templates.templates if templates.templates[t].side == "")
    dropped = 0
    for i, blob in enumerate(blobs):
        image = decode_rgb(blob)
        faces = detector(image, 1)
        if not len(faces):
            dropped += 1
            continue
        pts = np.array([(p.x, p.y) for p in predictor(image, faces[0]).parts()], np.float64)
        six = np.array([pts[1], (pts[27] + pts[28]) / 2, pts[15], pts[4], pts[8], pts[12]])
        template = templates.templates[names[i % len(names)]]
        matrix, _ = cv2.findHomography(template.points, six, 0)
        warped = cv2.warpPerspective(template.rgba, matrix, (image.shape[1], image.shape[0]))
        alpha = warped[..., 3:].astype(np.float32) / 255.0
        out = (image * (1 - alpha) + warped[..., :3] * alpha).astype(np.uint8)
        mask = (alpha[..., 0] > 0.5).astype(np.uint8) * 255
        encode(out, ".jpg"), encode(mask, ".png")
    return dropped


def ours(blobs: list[bytes], rows: list[dict], config: MaskConfig, templates=None) -> None:
    for i, (blob, row) in enumerate(zip(blobs, rows, strict=True)):
        image = decode_rgb(blob)
        points5 = crop_landmarks(row, *image.shape[:2]) if row else None
        out, mask, _ = mask_face(image, rng_for(0, str(i)), config, points5, templates)
        encode(out, ".jpg"), encode(mask.astype(np.uint8) * 255, ".png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--src", required=True, type=Path, help="aligned folder (align-faces output)")
    parser.add_argument("--templates", type=Path, help="MaskTheFace template folder (masks.cfg)")
    parser.add_argument("--subset", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the medians to this file")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    table = pd.read_csv(args.src / "manifest.csv", dtype=str, keep_default_na=False)
    table = table[table["path"] != ""]
    table = table.iloc[:: max(1, len(table) // args.subset)][: args.subset]
    rows = table.to_dict("records")
    blobs = [(args.src / r["path"]).read_bytes() for r in rows]
    templates = load_templates(args.templates) if args.templates else None
    runs = {"occgen, 5-point face-shape model": lambda: ours(blobs, rows, MaskConfig(landmarks="model"))}
    have_dlib = dlib_model_path(SHAPE_68) is not None
    try:
        import dlib
    except ImportError:
        have_dlib = False
    if have_dlib:
        runs["occgen, dlib 68 on the crop"] = lambda: ours(blobs, rows, MaskConfig(landmarks="dlib"))
    if templates is not None:
        runs["occgen, MaskTheFace templates (+ dlib 68 when installed)"] = lambda: ours(
            blobs, rows, MaskConfig(landmarks="auto"), templates)
    dropped = None
    if have_dlib and templates is not None:
        detector, predictor = dlib.get_frontal_face_detector(), dlib.shape_predictor(dlib_model_path(SHAPE_68))
        result = {}

        def mtf() -> None:
            result["dropped"] = masktheface_like(blobs, templates, detector, predictor)

        runs["MaskTheFace-like (dlib HOG detection + 68 points + homography)"] = mtf
    ours(blobs[:3], rows[:3], MaskConfig())  # warm-up: model loading outside the timings
    times: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(args.repeats):
        for name, fn in runs.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    if have_dlib and templates is not None:
        dropped = result["dropped"]
    print(f"{len(blobs)} aligned crops from {args.src}, {args.repeats} repeats, one process, medians; "
          f"types {', '.join(MASK_TYPES)}")
    rates = {k: len(blobs) / statistics.median(v) for k, v in times.items()}
    base = rates.get("MaskTheFace-like (dlib HOG detection + 68 points + homography)")
    for name, rate in rates.items():
        ratio = f"  {rate / base:5.2f}x" if base else ""
        print(f"  {name:<64} {rate:8.1f} img/s{ratio}")
    if dropped is not None:
        print(f"  MaskTheFace-like pipeline: {dropped} of {len(blobs)} faces not detected (no mask written); "
              "occgen: 0 dropped")
    if args.json:
        ours_rate = rates.get("occgen, dlib 68 on the crop") or rates["occgen, 5-point face-shape model"]
        args.json.write_text(json.dumps({"images": len(blobs), "repeats": args.repeats, "images_per_s": rates,
                                         "ours": ours_rate, "reference": base,
                                         "ratio": ours_rate / base if base else None, "dropped_by_reference": dropped},
                                        indent=2))


if __name__ == "__main__":
    main()
