"""``alob-export``: a trained model, or the pretrained FaceNet, as one deployable ONNX graph.

The graph maps an aligned crop batch to the embedding ``alob-eval`` scores (for ALOB both
networks and the projection, for the baseline the Identifier: the model's ``embed``), with a
dynamic batch axis and opset :data:`alob_eval.onnx_backend.EXPORT_OPSET`, exported by the same
function as the ``--backend onnx`` cache (:func:`alob_eval.onnx_backend.export_module`).

Every export takes insightface's input convention (RGB, (x − 127.5) / 127.5, NCHW, the model's
input size fixed in the graph), which is the trained models' own normalisation; the pretrained
FaceNet, trained on (x − 127.5) / 128, gets that rescaling inside the graph. The convention is
written into the graph's ``metadata_props`` (:meth:`InputConvention.metadata`), so
``alob-eval --onnx OUT.onnx`` needs no options, and insightface's ``ArcFaceONNX`` reads the input
size from the graph and applies the same normalisation by default.

Before the file is written, ONNX Runtime's embeddings of real crops are compared with
PyTorch's: below cosine :data:`MIN_COSINE` for any crop the export is refused and nothing is
written.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import click
import numpy as np

from alob_common.errors import UserError
from alob_common.verification import Embedder
from alob_common.vocabulary import Renamed, VocabCommand, version_option
from alob_eval.onnx_models import InputConvention, OnnxModelError, open_onnx_model, run_model

if TYPE_CHECKING:
    import torch

MIN_COSINE = 0.99999  # per-crop agreement with PyTorch an export must reach
FACENET_SIZE = (160, 160)
FACENET_STD = 128.0  # facenet-pytorch's fixed standardisation: (x - 127.5) / 128


class ExportError(UserError):
    """An export that cannot be made or does not reproduce PyTorch; the message is one line."""


@dataclass
class ExportSource:
    """What is exported: a module taking insightface-convention batches, its input size, PyTorch's
    embedder of RGB uint8 crops (the reference the graph must reproduce), a description, the
    metadata naming the source and the crops to check on when none are given."""

    module: torch.nn.Module
    size: tuple[int, int]
    reference: Embedder
    name: str
    metadata: dict[str, str] = field(default_factory=dict)
    default_crops: Path | None = None


def run_source(run: str | Path, which: str = "best") -> ExportSource:
    """A run of ``alob-train`` (best.pt, else last.pt) or a checkpoint file: its ``embed``, with
    the BatchNorms folded as the ONNX backend exports it; the check crops default to the run's
    ``--val`` folder, else its training data when that is a folder of images."""
    from alob_eval.onnx_backend import embedding_module
    from alob_train.checkpoint import CheckpointError, load_trained
    from alob_train.embed import fuse_conv_bn, model_embedder

    run = Path(run)
    try:
        model, cfg, which = load_trained(run, which)
    except CheckpointError as err:
        raise ExportError(str(err)) from None
    size = (int(cfg["input_size"][0]), int(cfg["input_size"][1]))
    name = f"{cfg['variant']}-{cfg['backbone']} ({run.name}, {which})"
    crops = None
    if run.is_dir():
        for key in ("val", "data"):
            if cfg.get(key) and (candidate := run / cfg[key]).is_dir():  # an absolute value replaces run/
                crops = candidate
                break
    metadata = {"alob.model": name, "alob.variant": str(cfg["variant"]), "alob.backbone": str(cfg["backbone"])}
    return ExportSource(embedding_module(fuse_conv_bn(model)), size, model_embedder(model, size), name, metadata,
                        crops)


def facenet_source() -> ExportSource:
    """The pretrained FaceNet (``load_facenet`` of alob_train's ``pretrained`` module: Inception-ResNet-v1 on
    VGGFace2, 160×160 input standardised as (x − 127.5) / 128), with the rescaling from
    insightface's convention in the graph."""
    import torch

    try:
        from alob_train import pretrained
    except ImportError as err:
        raise ExportError(f"the pretrained FaceNet is not available in this installation ({err})") from None
    net = pretrained.load_facenet().eval()

    class FacenetOnInsightfaceInput(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, images: torch.Tensor) -> torch.Tensor:
            return self.net(images * (127.5 / FACENET_STD))

    @torch.inference_mode()
    def reference(images) -> np.ndarray:
        from alob_train.preprocess import fit_to_input

        batch = torch.stack([fit_to_input(torch.from_numpy(np.ascontiguousarray(i)).permute(2, 0, 1), FACENET_SIZE)
                             for i in images]).float()
        return net((batch - 127.5) / FACENET_STD).numpy()

    metadata = {"alob.model": "facenet (InceptionResnetV1, VGGFace2)"}
    return ExportSource(FacenetOnInsightfaceInput().eval(), FACENET_SIZE, reference, "pretrained FaceNet", metadata)


def check_crops(path: str | Path, count: int) -> list[np.ndarray]:
    """Up to ``count`` real crops spread over ``path``: a folder of images (searched recursively,
    an occgen or aligned folder) or a verification ``.bin``; unreadable images are passed over."""
    from alob_common.images import decode_rgb, read_rgb, scan_images
    from alob_common.verification_bin import read_bin

    path = Path(path)
    if path.is_file() and path.suffix == ".bin":
        encoded = read_bin(path)[0]
        picks = np.unique(np.linspace(0, len(encoded) - 1, min(count, len(encoded))).round().astype(int))
        images = [decode_rgb(encoded[i]) for i in picks]
    elif path.is_dir():
        files = scan_images(path).images
        picks = np.unique(np.linspace(0, len(files) - 1, min(count, len(files))).round().astype(int)) if files else []
        images = []
        for i in picks:
            try:
                images.append(read_rgb(files[i]))
            except (OSError, ValueError):
                continue
    else:
        raise ExportError(f"--data {path}: give a folder of aligned face crops or a verification .bin")
    images = [i for i in images if i is not None]
    if not images:
        raise ExportError(f"--data {path}: no readable face crop to check the export on")
    return images


def export_onnx(source: ExportSource, out: str | Path, crops: list[np.ndarray]) -> dict:
    """Export ``source`` to ``out``: the graph with its input convention in the metadata, checked
    against PyTorch on ``crops`` (cosine ≥ :data:`MIN_COSINE` each) and read back by
    :func:`open_onnx_model` before it is renamed into place. Returns what was done."""
    from alob_eval.onnx_backend import BackendUnavailable, export_module, min_cosine

    out = Path(out)
    convention = InputConvention(size=source.size, output="embedding")
    try:
        proto = export_module(source.module, source.size)
    except BackendUnavailable as err:
        raise ExportError(str(err).split(";")[0]) from None
    props = {**convention.metadata(), **source.metadata}
    del proto.metadata_props[:]
    for key, value in props.items():
        proto.metadata_props.add(key=key, value=value)
    proto.doc_string = f"face embedding: {convention.describe()}; {source.name}"
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
        with os.fdopen(fd, "wb") as handle:
            handle.write(proto.SerializeToString())
    except OSError as err:
        raise ExportError(f"cannot write {out}: {err.strerror or err}") from None
    try:
        model = open_onnx_model(tmp)
        if model.convention != convention or model.batch is not None:
            raise ExportError(f"the graph reads back as {model.describe()}, not {convention.describe()} with a "
                              "dynamic batch")
        cosine = min_cosine(run_model(model, crops), source.reference(crops))
        if not cosine >= MIN_COSINE:
            raise ExportError(f"refused: ONNX Runtime's embeddings differ from PyTorch's on the {len(crops)} check "
                              f"crops (min cosine {cosine:.6f} < {MIN_COSINE}); nothing written")
        os.replace(tmp, out)
    except OnnxModelError as err:
        raise ExportError(f"the exported graph cannot be run: {err}") from None
    finally:
        Path(tmp).unlink(missing_ok=True)
    opset = next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))
    dim = int(source.reference(crops[:1]).shape[1])
    return {"out": str(out), "model": source.name, "opset": opset, "min_cosine": cosine, "crops": len(crops),
            "convention": convention, "dim": dim, "megabytes": out.stat().st_size / 1e6}


def _echo_summary(done: dict, crops_from: str) -> None:
    convention = done["convention"]
    h, w = convention.size
    click.echo(f"exported: {done['out']} ({done['model']}; ONNX opset {done['opset']}, {done['megabytes']:.1f} MB)")
    click.echo(f"input 'images': float32 N x 3 x {h} x {w} (any N), RGB, (x - 127.5) / 127.5 with x in 0..255, "
               f"NCHW; output 'embedding': N x {done['dim']} (written into the graph's metadata)")
    click.echo(f"checked on {done['crops']} real crops from {crops_from}: min cosine to PyTorch "
               f"{done['min_cosine']:.7f} (>= {MIN_COSINE})")
    click.echo(f"measure it: alob-eval --onnx {done['out']} --bench NAME=DIR")


class ExportCommand(VocabCommand):
    """``alob-export`` also reads the positional form of its first version: ``RUN OUT.onnx``, or
    ``OUT.onnx`` alone with ``--reference`` (rewritten to ``--checkpoint`` and ``--out-file``)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not any(a == "--reference" or a.startswith("--reference=") for a in args):
            return super().parse_args(ctx, args)
        usual, self.positionals = self.positionals, ("--out-file",)
        try:
            return super().parse_args(ctx, args)
        finally:
            self.positionals = usual


@click.command(cls=ExportCommand, renamed=[Renamed("--crops", "--data")], positionals=("--checkpoint", "--out-file"),
               context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@version_option
@click.option("--checkpoint", type=click.Path(exists=True), default=None,
              help="The model to export: a run of alob-train (its folder) or a .pt file.")
@click.option("--which", default="best", show_default=True,
              help="Checkpoint of the run: best (falls back to last), last or epoch_NNN.")
@click.option("--reference", type=click.Choice(["facenet"]), default=None,
              help="Export the pretrained FaceNet (Inception-ResNet-v1, VGGFace2) instead of a run.")
@click.option("--data", type=click.Path(exists=True), default=None,
              help="Input: aligned face crops to check the export on, a folder of images (searched recursively) "
                   "or a verification .bin [default: the run's --val folder, else its training folder].")
@click.option("--check-images", type=click.IntRange(1, None), default=64, show_default=True,
              help="How many crops, spread over --data, the check uses.")
@click.option("--out-file", "out", type=click.Path(dir_okay=False), required=True, metavar="OUT.onnx",
              help="The ONNX file to write (written only once it has passed the check).")
def main(checkpoint, which, reference, data, check_images, out) -> None:
    """Write a trained model (a run of alob-train or a .pt) as one ONNX graph mapping aligned crop
    batches to the embedding alob-eval scores, with a dynamic batch axis.

    The input convention (RGB, (x - 127.5) / 127.5, NCHW, the model's input size) is written into
    the graph's metadata and printed, so `alob-eval --onnx OUT.onnx` needs no options. The export
    is refused, and nothing written, unless ONNX Runtime's embeddings of real crops match
    PyTorch's (cosine >= 0.99999 for each).

    \b
      alob-export --checkpoint runs/alob-r18 --out-file alob-r18.onnx
      alob-export --checkpoint runs/alob-r18 --out-file alob-r18.onnx --data lfw-aligned/
      alob-export --reference facenet --out-file facenet.onnx --data lfw-aligned/
    """
    if (checkpoint is None) == (reference is None):
        raise click.UsageError("give exactly one model: --checkpoint RUN or --reference facenet")
    if Path(out).suffix != ".onnx":
        raise click.UsageError(f"--out-file must be an .onnx file name, got {out}")
    try:
        source = facenet_source() if reference else run_source(checkpoint, which)
        where = data or source.default_crops
        if where is None:
            raise ExportError("give --data DIR (aligned face crops, or a .bin) to check the export on real faces")
        done = export_onnx(source, out, check_crops(where, check_images))
    except UserError as err:
        raise click.ClickException(str(err)) from None
    _echo_summary(done, str(where))


if __name__ == "__main__":
    main()
