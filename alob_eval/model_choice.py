"""The model an ``alob-eval`` command measures: the options that choose it (``--checkpoint``,
``--onnx``, ``--reference``, ``--embeddings``) and how it runs (``--backend``, ``--device``),
the one place that loads it (:func:`embedder_for`) and the embedding of benchmark images with it
(:func:`vectors_for`), shared by verification, ``ar``, ``tsne``, ``embed`` and ``suite``; and
``--far``'s list of false accept rates (verification and ``suite``).
"""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from alob_common.errors import UserError
from alob_common.vocabulary import deprecated, parse_list
from alob_eval.cam_command import model_device_option
from alob_eval.onnx_backend import AUTO_MIN_IMAGES, BACKENDS
from alob_eval.onnx_models import onnx_options
from alob_eval.reference_models import REFERENCE_MODELS

BATCH_HELP = "Images embedded per forward pass; lower it if memory runs short."
MODEL_KEYS = ("checkpoint", "onnx", "reference", "embeddings")


def model_options(func):
    """Options that choose the model being measured and how it runs (alob-eval, ar and embed)."""
    func = onnx_options(func)
    func = click.option("--backend", type=click.Choice(BACKENDS), default="auto", show_default=True,
                        help="How a --checkpoint model is run: torch (the reference), onnx (ONNX Runtime, optional "
                             "[onnx] extra; same embeddings, faster on CPU) or auto (onnx when installed and at least "
                             f"{AUTO_MIN_IMAGES} images are embedded, else torch).")(func)
    func = click.option("--embeddings", type=click.Path(exists=True, dir_okay=False), default=None,
                        help="Measure precomputed embeddings: an .npz with 'paths' and 'embeddings' (one vector per "
                             "image; paths absolute or relative to the benchmark folder).")(func)
    func = click.option("--reference", type=click.Choice(REFERENCE_MODELS), default=None,
                        help="Measure a published reference model (optional [reference] extra).")(func)
    func = click.option("--which", default="best", show_default=True,
                        help="Checkpoint of the run to load: best (falls back to last), last or epoch_NNN.")(func)
    func = click.option("--checkpoint", type=click.Path(exists=True), default=None,
                        help="Measure a model trained by alob-train: its run folder or a .pt file.")(func)
    return model_device_option(func)


def checkpoint_embedder(checkpoint: str, which: str, backend: str = "torch", images: int = 0, device: str = "cpu"):
    """Embedder, description, model, settings and backend used of a trained model (best.pt, else
    last.pt, by default); ``backend`` as --backend, ``images``: how many will be embedded,
    ``device`` as --device (ONNX Runtime runs on the CPU: auto picks torch on a GPU)."""
    import torch

    from alob_eval.onnx_backend import BackendUnavailable, checkpoint_onnx_embedder, resolve_backend
    from alob_train.checkpoint import checkpoint_file, load_trained
    from alob_train.embed import fuse_conv_bn, model_embedder
    from alob_train.runtime import setup_device

    run = Path(checkpoint)
    try:
        model, cfg, which = load_trained(run, which)
        where = setup_device(device, 0, None)
    except UserError as err:
        raise click.ClickException(str(err)) from None
    if where.type != "cpu" and backend == "onnx":
        raise click.UsageError("--backend onnx runs on the CPU: give --device cpu, or --backend torch on a GPU")
    name = f"{cfg['variant']}-{cfg['backbone']} ({run.name}, {which})"
    # BatchNorms folded into their convolutions, channels_last (~1.5-2x faster convolutions on CPU)
    fast = fuse_conv_bn(model).to(where, memory_format=torch.channels_last)
    size = tuple(cfg["input_size"])
    embed = model_embedder(fast, size, where, channels_last=True)
    used = (f"torch {torch.__version__.split('+')[0]} ({torch.get_num_threads()} threads)" if where.type == "cpu"
            else f"torch {torch.__version__.split('+')[0]} on {where}")
    if where.type == "cpu" and resolve_backend(backend, images) == "onnx":
        try:  # the same embedding through ONNX Runtime (checked against `embed` on probe images)
            embed, used = checkpoint_onnx_embedder(fast, size, checkpoint_file(run, which), embed,
                                                   np.random.default_rng(0))
        except BackendUnavailable as err:
            if backend == "onnx":
                raise click.ClickException(str(err)) from None
            click.echo(f"{err}: using the torch backend", err=True)
    return embed, name, model, cfg, used


def check_one_model(model_args: dict) -> None:
    """Exactly one of --checkpoint, --onnx, --reference and --embeddings names the model measured."""
    given = [f"--{key}" for key in MODEL_KEYS if model_args.get(key) is not None]
    if len(given) != 1:
        which = f" (got {' and '.join(given)})" if given else ""
        raise click.UsageError("give exactly one model: --checkpoint RUN, --onnx MODEL.onnx, --reference NAME or "
                               f"--embeddings FILE{which}")
    if (model_args.get("backend") or "auto") == "onnx" and not model_args.get("checkpoint"):
        raise click.UsageError("--backend onnx runs a --checkpoint model; drop it for --onnx, --reference or "
                               "--embeddings")


def vectors_for(paths_by_root: list[tuple[Path, list[str]]], model_args: dict, flip: bool, batch_size: int,
                quiet: bool, images: dict[str, bytes] | None = None) -> tuple[dict[str, np.ndarray], str, str]:
    """Embeddings of every path: looked up in --embeddings, or computed by --checkpoint, --onnx
    or --reference (``images``: encoded images held in memory, a .bin's, by path); returns them,
    the model's description and the backend that computed them."""
    from alob_eval.benchmarks import embed_images
    from alob_eval.embeddings import embeddings_for, load_embeddings

    check_one_model(model_args)
    embeddings = model_args.get("embeddings")
    if embeddings:
        try:
            table = load_embeddings(embeddings)
        except UserError as err:
            raise click.ClickException(str(err)) from None
        vectors = {}
        try:
            for root, paths in paths_by_root:
                vectors.update(zip(paths, embeddings_for(table, paths, root)))
        except KeyError as err:
            raise click.ClickException(str(err.args[0])) from None
        return vectors, f"embeddings {embeddings}", "precomputed embeddings"
    images = images or {}
    missing = [p for _, paths in paths_by_root for p in paths if p not in images and not Path(p).is_file()]
    if missing:
        raise click.ClickException(f"{len(missing)} images are missing, e.g. {missing[0]}")
    paths = list(dict.fromkeys(p for _, group in paths_by_root for p in group))
    embed, model, used, _ = embedder_for(model_args, len(paths))
    return embed_images(embed, paths, images, batch_size, flip, progress=not quiet), model, used


def embedder_for(model_args: dict, images: int) -> tuple:
    """The embedder of a --checkpoint, --onnx or --reference model, its description, the backend
    used and the input size it wants (None: any aligned crop); ``images``: how many it will embed."""
    from alob_eval.reference_models import ModelUnavailable, reference_embedder

    checkpoint, reference = model_args.get("checkpoint"), model_args.get("reference")
    if checkpoint:
        embed, model, _, cfg, used = checkpoint_embedder(checkpoint, model_args.get("which", "best"),
                                                         model_args.get("backend") or "auto", images,
                                                         model_args.get("device") or "auto")
        return embed, model, used, tuple(cfg["input_size"])
    if model_args.get("onnx"):
        from alob_eval.onnx_models import onnx_embedder

        try:
            return onnx_embedder(model_args)
        except UserError as err:
            raise click.ClickException(str(err)) from None
    try:
        return reference_embedder(reference), f"reference {reference}", "the reference model's own runtime", None
    except ModelUnavailable as err:
        raise click.ClickException(str(err)) from None


def _fars(ctx, param, values: tuple[str, ...]) -> tuple[float, ...]:
    """``--far 1e-3,1e-4``: a list of false accept rates (repeating --far is the old way)."""
    if len(values) > 1:
        click.echo(deprecated("repeating --far", f"--far {','.join(values)}"), err=True)
    try:
        fars = tuple(float(v) for value in values for v in parse_list(value, float))
    except ValueError as err:
        raise click.BadParameter(str(err)) from None
    if any(not 0 < far < 1 for far in fars):
        raise click.BadParameter("false accept rates lie between 0 and 1, e.g. 1e-3,1e-4")
    return fars


def far_option(func):
    """``--far``: the false accept rates at which TAR is reported, a list (alob-eval and suite)."""
    return click.option("--far", "fars", multiple=True, default=("1e-3,1e-4",), show_default=True, callback=_fars,
                        help="False accept rates at which TAR is reported, a comma-separated list.")(func)
