"""``alob-eval --onnx MODEL.onnx``: any face-embedding ONNX model, run by ONNX Runtime on the CPU.

Such models differ in what they expect, so the input convention (:class:`InputConvention`) is
resolved per setting, first found wins:

1. the command-line option (``--onnx-size``, ``--onnx-channels``, ``--onnx-mean``,
   ``--onnx-std``, ``--onnx-layout``, ``--onnx-output``);
2. the graph's metadata (``metadata_props`` keys ``alob.input_size``, ``alob.channels``,
   ``alob.mean``, ``alob.std``, ``alob.layout``, ``alob.output``), which ``alob-export`` writes;
3. the graph itself: a fixed height and width, the layout from where the 3-channel axis is, and
   insightface's test for models converted from MXNet (a ``Sub`` and a ``Mul`` node among the
   first eight: the normalisation is inside the graph, so mean 0 and std 1);
4. insightface's recognition models: 112×112, RGB, (x − 127.5) / 127.5, NCHW, the first output.

Crops are brought to the input size by :func:`alob_train.preprocess.fit_to_input` (the project's
one resize: a 112×112 crop fed to a 112×96 model is cut to columns 8..104, any other size is
resized), then channel order, normalisation and layout are applied. A graph with a dynamic batch
axis embeds whole batches; a fixed batch of B embeds B images per run (the last run padded).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import click
import numpy as np

from alob_common.errors import UserError
from alob_common.verification import Embedder

PREFIX = "alob."
DEFAULT_SIZE = (112, 112)  # insightface's recognition models (ArcFace R50/R100 ...)
DEFAULT_MEAN = DEFAULT_STD = 127.5
CHANNELS = ("RGB", "BGR")
LAYOUTS = ("NCHW", "NHWC")
FLOAT_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64}


class OnnxModelError(UserError):
    """An ONNX model that cannot be run as a face embedder; the message is one line and says why."""


@dataclass(frozen=True)
class InputConvention:
    """What an ONNX face model expects: input size (H, W), channel order, per-channel mean and std
    applied as (x − mean) / std to 0..255 pixels, layout, and the name of the embedding output."""

    size: tuple[int, int] = DEFAULT_SIZE
    channels: str = "RGB"
    mean: tuple[float, float, float] = (DEFAULT_MEAN,) * 3
    std: tuple[float, float, float] = (DEFAULT_STD,) * 3
    layout: str = "NCHW"
    output: str = ""

    def describe(self) -> str:
        """One line, e.g. ``112x112 RGB NCHW, (x - 127.5) / 127.5, output 'embedding'``."""
        mean = _numbers_text(self.mean)
        std = _numbers_text(self.std)
        return (f"{self.size[0]}x{self.size[1]} {self.channels} {self.layout}, (x - {mean}) / {std}, "
                f"output {self.output!r}")

    def metadata(self) -> dict[str, str]:
        """The convention as the graph metadata :func:`open_onnx_model` reads back."""
        return {f"{PREFIX}input_size": f"{self.size[0]}x{self.size[1]}", f"{PREFIX}channels": self.channels,
                f"{PREFIX}mean": _numbers_text(self.mean), f"{PREFIX}std": _numbers_text(self.std),
                f"{PREFIX}layout": self.layout, f"{PREFIX}output": self.output}


def _numbers_text(values: Sequence[float]) -> str:
    """``127.5`` for three equal values, else ``123.7,116.3,103.5``."""
    texts = [f"{v:g}" for v in values]
    return texts[0] if len(set(texts)) == 1 else ",".join(texts)


def parse_triple(text: str, what: str) -> tuple[float, float, float]:
    """``"127.5"`` or ``"123.7,116.3,103.5"`` -> three floats (a one-line error otherwise)."""
    try:
        values = [float(v) for v in str(text).split(",")]
    except ValueError:
        raise OnnxModelError(f"{what} must be a number or three comma-separated numbers, got {text!r}") from None
    if len(values) not in (1, 3):
        raise OnnxModelError(f"{what} must be a number or three comma-separated numbers, got {text!r}")
    return tuple(values * 3 if len(values) == 1 else values)


def parse_size(text: str) -> tuple[int, int]:
    """``"112x96"`` (or ``"112×96"``) -> ``(112, 96)``."""
    from alob_common.geometry import normalize_size

    try:
        h, w = (int(v) for v in normalize_size(str(text)).split("x"))
    except ValueError:
        raise OnnxModelError(f"an input size looks like 112x112 (height x width), got {text!r}") from None
    if h < 1 or w < 1:
        raise OnnxModelError(f"input size {text!r} must be positive")
    return h, w


@dataclass
class OnnxModel:
    """A loaded model: its session, input and output, the resolved convention, the fixed batch
    size (None when the batch axis is dynamic) and where each setting came from."""

    path: Path
    session: Any
    input_name: str
    convention: InputConvention
    batch: int | None
    sources: dict[str, str]

    def embedder(self) -> Embedder:
        """An :data:`Embedder`: RGB uint8 crops -> (N, D) float32 embeddings."""
        return lambda images: run_model(self, images)

    def describe(self) -> str:
        """The convention and where it came from, e.g. ``112x112 RGB NCHW ... (size: graph, ...)``."""
        origin = ", ".join(f"{key}: {where}" for key, where in self.sources.items())
        batch = "dynamic batch" if self.batch is None else f"fixed batch {self.batch}"
        settings = ("layout", "input_size", "channels", "mean", "std", "output")
        rest = origin if all(k in self.sources for k in settings) else "; the rest: ".join(
            [origin, "insightface's defaults"] if origin else ["insightface's defaults"])
        return f"{self.convention.describe()}, {batch} ({rest})"


def preprocess(images: Sequence[np.ndarray], convention: InputConvention) -> np.ndarray:
    """RGB uint8 crops (H, W, 3) -> the float32 batch the convention describes."""
    import torch

    from alob_train.preprocess import fit_to_input

    fitted = [fit_to_input(torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1), convention.size)
              for image in images]
    x = torch.stack(fitted).float().numpy()  # N, 3, H, W, RGB
    if convention.channels == "BGR":
        x = x[:, ::-1]
    mean = np.asarray(convention.mean, np.float32)[None, :, None, None]
    std = np.asarray(convention.std, np.float32)[None, :, None, None]
    x = x / std - mean / std  # with mean = std = 127.5: x / 127.5 - 1, the training normalisation exactly
    if convention.layout == "NHWC":
        x = x.transpose(0, 2, 3, 1)
    return np.ascontiguousarray(x, dtype=np.float32)


def run_model(model: OnnxModel, images: Sequence[np.ndarray]) -> np.ndarray:
    """Embed ``images`` (one run per batch, or per ``model.batch`` images for a fixed batch)."""
    if not len(images):
        return np.zeros((0, 0), np.float32)
    x = preprocess(images, model.convention)
    dtype = FLOAT_TYPES[model.session.get_inputs()[0].type]
    step = model.batch or len(x)
    rows = []
    for start in range(0, len(x), step):
        chunk = x[start : start + step]
        real = len(chunk)
        if real < step:  # a fixed batch: pad with copies of the last image
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], step - real, axis=0)])
        out = model.session.run([model.convention.output], {model.input_name: chunk.astype(dtype)})[0]
        out = np.asarray(out)
        if out.ndim < 1 or out.shape[0] != len(chunk):
            raise OnnxModelError(f"{model.path.name}: output {model.convention.output!r} has shape {list(out.shape)} "
                                 f"for a batch of {len(chunk)}; choose the embedding with --onnx-output")
        rows.append(out.reshape(len(chunk), -1)[:real].astype(np.float32))
    return np.concatenate(rows)


def _session(path: Path) -> Any:
    """An ONNX Runtime CPU session (the backend's settings), or a one-line error for a file that
    is not a model ONNX Runtime can load."""
    from alob_eval.onnx_backend import BackendUnavailable, onnx_session

    try:
        return onnx_session(path)
    except BackendUnavailable as err:
        raise OnnxModelError(str(err).replace("--backend onnx", "--onnx")) from None
    except Exception as err:  # onnxruntime's own exception types (invalid protobuf, graph errors ...)
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise OnnxModelError(f"{path}: not an ONNX model ONNX Runtime can load ({first[:200]})") from None


def _normalised_inside(path: Path) -> bool:
    """insightface's test for a model converted from MXNet, whose graph subtracts and scales the
    pixels itself: nodes named Sub/_minus and Mul/_mul among the first eight."""
    try:
        import onnx

        nodes = onnx.load(str(path), load_external_data=False).graph.node[:8]
    except Exception:  # onnx missing or unreadable: the session loaded it, so keep insightface's defaults
        return False
    names = [node.name for node in nodes]
    return (any(n.startswith(("Sub", "_minus")) for n in names)
            and any(n.startswith(("Mul", "_mul")) for n in names))


def _image_input(path: Path, session: Any) -> Any:
    """The one image input of the graph; a one-line error for any other input signature."""
    inputs = session.get_inputs()
    if len(inputs) != 1:
        names = ", ".join(repr(i.name) for i in inputs)
        raise OnnxModelError(f"{path.name}: the model has {len(inputs)} inputs ({names}); --onnx runs a model "
                             "with one image input")
    image = inputs[0]
    if image.type not in FLOAT_TYPES:
        raise OnnxModelError(f"{path.name}: input {image.name!r} is {image.type}; --onnx feeds float images")
    if len(image.shape) != 4:
        raise OnnxModelError(f"{path.name}: input {image.name!r} has shape {list(image.shape)} (rank "
                             f"{len(image.shape)}); --onnx feeds image batches N x 3 x H x W (NCHW) or "
                             "N x H x W x 3 (NHWC)")
    return image


def _fixed(value: Any) -> int | None:
    return value if isinstance(value, int) and value > 0 else None


def _layout(path: Path, shape: list, given: str | None, sources: dict[str, str]) -> str:
    """The layout: given, else from where the 3-channel axis is, else NCHW; checked against the shape."""
    if given:
        layout = given.upper()
    elif _fixed(shape[1]) != 3 and _fixed(shape[3]) == 3:
        layout, sources["layout"] = "NHWC", "graph"
        return layout
    else:
        layout = "NCHW"
    channels = _fixed(shape[1] if layout == "NCHW" else shape[3])
    if channels not in (None, 3):
        raise OnnxModelError(f"{path.name}: input shape {list(shape)} has {channels} channels where {layout} puts "
                             "them; --onnx feeds 3-channel colour images (set --onnx-layout if the order differs)")
    return layout


def open_onnx_model(path: str | Path, size: str | None = None, channels: str | None = None,
                    mean: str | None = None, std: str | None = None, layout: str | None = None,
                    output: str | None = None) -> OnnxModel:
    """Load ``path`` and resolve its input convention (options, then metadata, then the graph,
    then insightface's defaults; see the module docstring). Any problem is an
    :class:`OnnxModelError` with a one-line message."""
    path = Path(path)
    if not path.is_file():
        raise OnnxModelError(f"ONNX model not found: {path}")
    session = _session(path)
    image = _image_input(path, session)
    meta = session.get_modelmeta().custom_metadata_map
    sources: dict[str, str] = {}

    def pick(key: str, option: str | None) -> str | None:
        if option is not None:
            sources[key] = "option"
            return option
        if meta.get(PREFIX + key):
            sources[key] = "metadata"
            return meta[PREFIX + key]
        return None

    shape = list(image.shape)
    order = pick("layout", layout)
    resolved_layout = _layout(path, shape, order, sources)
    if resolved_layout not in LAYOUTS:
        raise OnnxModelError(f"{path.name}: layout {order!r} must be one of {', '.join(LAYOUTS)}")
    hw = [_fixed(v) for v in (shape[2:4] if resolved_layout == "NCHW" else shape[1:3])]
    input_size = _input_size(path, hw, pick("input_size", size), sources)
    channel_order = (pick("channels", channels) or "RGB").upper()
    if channel_order not in CHANNELS:
        raise OnnxModelError(f"{path.name}: channel order {channel_order!r} must be RGB or BGR")
    norm = _normalisation(path, pick("mean", mean), pick("std", std), sources)
    out_name = _output(path, session, pick("output", output), sources)
    convention = InputConvention(input_size, channel_order, norm[0], norm[1], resolved_layout, out_name)
    return OnnxModel(path, session, image.name, convention, _fixed(shape[0]), sources)


def _input_size(path: Path, fixed: list[int | None], given: str | None, sources: dict[str, str]) -> tuple[int, int]:
    """The input size: the graph's fixed height and width (a given size must agree), else the one
    given, else 112x112."""
    if all(fixed):
        graph = (int(fixed[0]), int(fixed[1]))
        if given is not None and parse_size(given) != graph:
            raise OnnxModelError(f"{path.name}: the graph fixes the input size at {graph[0]}x{graph[1]}, not {given}")
        sources["input_size"] = "graph"
        return graph
    return parse_size(given) if given is not None else DEFAULT_SIZE


def _normalisation(path: Path, mean: str | None, std: str | None, sources: dict[str, str]) -> tuple[tuple, tuple]:
    """Mean and std: given or from metadata; else insightface's (0 and 1 for a graph that
    normalises itself, 127.5 and 127.5 otherwise)."""
    if (mean is None or std is None) and _normalised_inside(path):
        sources.setdefault("mean", "graph normalises (insightface's test)")
        mean = "0" if mean is None else mean
        std = "1" if std is None else std
    mean_values = parse_triple(mean if mean is not None else DEFAULT_MEAN, "--onnx-mean")
    std_values = parse_triple(std if std is not None else DEFAULT_STD, "--onnx-std")
    if not all(v > 0 for v in std_values):
        raise OnnxModelError(f"{path.name}: the std must be positive, got {std_values}")
    return mean_values, std_values


def _output(path: Path, session: Any, given: str | None, sources: dict[str, str]) -> str:
    """The embedding output: the one named, else the first (as insightface runs them)."""
    names = [o.name for o in session.get_outputs()]
    if given is None:
        if len(names) > 1:
            sources["output"] = f"the first of {len(names)}"
        return names[0]
    if given not in names:
        raise OnnxModelError(f"{path.name}: no output named {given!r}; its outputs are {', '.join(map(repr, names))}")
    return given


def onnx_convention_options(func):
    """The input-convention options of ``--onnx`` models (alob-eval, ar and suite)."""
    options = [
        click.option("--onnx-output", default=None, metavar="NAME",
                     help="The output that is the embedding, when the graph has several (default: the "
                          "metadata's, else the first)."),
        click.option("--onnx-layout", type=click.Choice(LAYOUTS, case_sensitive=False), default=None,
                     help="Input layout (default: the metadata's, else NHWC when the last axis is the "
                          "3-channel one, else NCHW)."),
        click.option("--onnx-std", default=None, metavar="S|S1,S2,S3",
                     help="Pixels enter as (x - mean) / std, x in 0..255 (default: the metadata's, else 127.5, "
                          "or 1 when the graph normalises itself: insightface's test)."),
        click.option("--onnx-mean", default=None, metavar="M|M1,M2,M3",
                     help="See --onnx-std (default: the metadata's, else 127.5, or 0 when the graph "
                          "normalises itself)."),
        click.option("--onnx-channels", type=click.Choice(CHANNELS, case_sensitive=False), default=None,
                     help="Channel order the model expects (default: the metadata's, else RGB, as "
                          "insightface feeds its models)."),
        click.option("--onnx-size", default=None, metavar="HxW",
                     help="Input size (height x width, 112x112 or 112×112) for a graph whose height and width are "
                          "dynamic (default: the metadata's, else 112x112); a fixed size is read from the graph."),
    ]
    for option in options:
        func = option(func)
    return func


def onnx_options(func):
    """The ``--onnx`` model option and its input-convention options (alob-eval, ar and embed)."""
    func = onnx_convention_options(func)
    return click.option("--onnx", type=click.Path(exists=True, dir_okay=False), default=None, metavar="MODEL.onnx",
                        help="Measure any face-embedding ONNX model (ONNX Runtime, optional [onnx] extra); "
                             "defaults follow insightface's recognition models: RGB, (x - 127.5) / 127.5, "
                             "NCHW, 112x112 unless the graph fixes its size.")(func)


def onnx_embedder(model_args: dict) -> tuple[Embedder, str, str, tuple[int, int]]:
    """The embedder, description, runtime and input size of ``model_args['onnx']`` with the
    ``onnx_*`` convention options of ``model_args``; prints the convention used."""
    model = open_onnx_model(model_args["onnx"], model_args.get("onnx_size"), model_args.get("onnx_channels"),
                            model_args.get("onnx_mean"), model_args.get("onnx_std"),
                            model_args.get("onnx_layout"), model_args.get("onnx_output"))
    click.echo(f"{model.path.name}: {model.describe()}", err=True)
    import onnxruntime

    threads = model.session.get_session_options().intra_op_num_threads
    return (model.embedder(), f"onnx {model.path.name}", f"onnxruntime {onnxruntime.__version__} ({threads} threads)",
            model.convention.size)
