"""``align-faces --data SRC --out OUT``: detect five landmarks and warp every face photo onto a template."""

from __future__ import annotations

import importlib.util
import os
import signal
import sys

import click

from alob_common.errors import UserError
from alob_common.geometry import CROP_SIZES, normalize_size, parse_size
from alob_common.vocabulary import Renamed, VocabCommand, check_device, version_option


def _thresholds(ctx, param, value: str) -> tuple[float, float, float]:
    try:
        parts = tuple(float(v) for v in value.split(","))
    except ValueError:
        parts = ()
    if len(parts) != 3 or not all(0.0 < p < 1.0 for p in parts):
        raise click.BadParameter("three comma-separated probabilities, e.g. 0.6,0.7,0.7")
    return parts  # type: ignore[return-value]


def _size(ctx, param, value: str) -> str:
    try:
        parse_size(normalize_size(value))
    except ValueError as err:
        raise click.BadParameter(str(err)) from None
    return normalize_size(value)


def _resolve_device(device: str, detector: str) -> str:
    """``auto``: the GPU when torch sees one (MTCNN only; dlib runs on the CPU), else the CPU."""
    if device != "auto":
        return device
    if detector != "mtcnn":
        return "cpu"
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _cuda_ready(device: str) -> None:
    """One-line error, before any worker starts, when a CUDA device is asked for but absent."""
    import torch

    if not torch.cuda.is_available():
        raise click.ClickException(f"--device {device}: no CUDA device (torch {torch.__version__} sees none)")
    index = int(device.partition(":")[2] or 0)
    if index >= torch.cuda.device_count():
        raise click.ClickException(f"--device {device}: no CUDA device {index} ({torch.cuda.device_count()} found)")


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


@click.command(cls=VocabCommand, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
               positionals=("--data", "--out"), renamed=[Renamed("--pick", "--pick-face")])
@version_option
@click.option("--data", required=True, type=click.Path(file_okay=False, path_type=str),
              help="Input: the folder of face photos, walked recursively (identity folders stay identity folders).")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=str),
              help="Output folder for the aligned crops (the input's tree mirrored), manifest.csv and dataset.json.")
@click.option("--size", default="112x96", show_default=True, callback=_size,
              help=f"Crop size H×W, written 112x96 or 112×96 ({', '.join(CROP_SIZES)}): 112x96 is the "
                   "SphereFace/CosFace template, 112x112 the insightface one.")
@click.option("--detector", type=click.Choice(["mtcnn", "dlib"]), default="mtcnn", show_default=True,
              help="mtcnn (facenet-pytorch) or dlib (HOG detector + 68-point predictor; needs the [dlib] extra).")
@click.option("--fallback", type=click.Choice(["center", "skip"]), default="center", show_default=True,
              help="No face found: 'center' writes insightface's centre crop (status fallback); "
                   "'skip' writes nothing (status failed).")
@click.option("--pick-face", "pick", type=click.Choice(["center", "largest"]), default="center", show_default=True,
              help="Several faces in a photo: the one nearest the image centre weighted by size (LFW convention), "
                   "or the largest.")
@click.option("--thresholds", default="0.6,0.7,0.7", show_default=True, callback=_thresholds,
              help="MTCNN P-, R-, O-net score thresholds.")
@click.option("--min-face-size", type=click.IntRange(8, None), default=20, show_default=True,
              help="Smallest face MTCNN looks for, in pixels.")
@click.option("--device", default="auto", show_default=True, callback=check_device,
              help="Where MTCNN runs: auto (the GPU when torch sees one, else the CPU), cpu, cuda or cuda:N.")
@click.option("--workers", type=click.IntRange(0, None), default=None,
              help="Worker processes that decode, detect, warp and write; 0 = all in this process "
                   "[default: the number of CPU cores; 0 on a GPU].")
@click.option("--decode-threads", type=click.IntRange(0, None), default=None,
              help="Threads per process that decode the next images while the detector runs, and warp, "
                   "encode and write the crops [default: 0 on cpu, number of CPU cores with cuda]; "
                   "the output is the same with or without.")
@click.option("--batch-size", type=click.IntRange(1, None), default=16, show_default=True,
              help="Images sent to the detector in one call (of equal size, unless --batch-across-sizes).")
@click.option("--batch-across-sizes/--no-batch-across-sizes", default=None,
              help="MTCNN: batch images of different sizes on a common padded canvas, so mixed-size trees "
                   "make full batches [default: on with cuda, off on cpu]; landmarks move by MTCNN's own "
                   "jitter (mean ~1.5 px) compared with the equal-size batches.")
@click.option("--max-pixels", type=click.IntRange(10_000, None), default=40_000_000, show_default=True,
              help="Larger images are decoded downscaled to this many pixels (landmarks stay in source pixels).")
@click.option("--jpeg-quality", type=click.IntRange(50, 100), default=95, show_default=True,
              help="JPEG quality of the written crops (crops keep their input's file type); raise it to 100 "
                   "for near-lossless crops.")
@click.option("--shard-index", type=click.IntRange(0, None), default=0, show_default=True,
              help="This job's part when the run is split over --num-shards jobs (array jobs): every N-th input "
                   "of the sorted list, from the I-th. The last job to finish merges the manifest.")
@click.option("--num-shards", type=click.IntRange(1, None), default=1, show_default=True,
              help="Split the run over this many jobs (array jobs, several machines sharing --out), each "
                   "started with its own --shard-index.")
@click.option("--overwrite", is_flag=True, help="Redo every image instead of resuming from OUT/manifest.csv.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def main(data, out, size, detector, fallback, pick, thresholds, min_face_size, device, workers, decode_threads,
         batch_size, batch_across_sizes, max_pixels, jpeg_quality, shard_index, num_shards, overwrite,
         quiet) -> None:
    """Align every face photo under --data into --out.

    The input folder is walked recursively (every still-image type: jpg, png, bmp, webp, gif, tif, pgm/ppm,
    jp2 …, any case; other files are counted in the summary) and its folder tree is mirrored
    under the output folder, so identity folders stay identity folders. Each face is found with
    MTCNN (five landmarks), fitted to the template by a least-squares similarity transform and
    warped to a 112×96 (or 112×112) crop. manifest.csv gets one row per input (ok,
    fallback or failed, with the reason and the landmarks in source pixels) and
    dataset.json the settings and counts. Rerunning resumes where a run stopped.

    Example: align-faces --data lfw-deepfunneled/ --out lfw-aligned/ --workers 2
    """
    from alignment.align_folder import AlignConfig, align_folder
    from alob_common.geometry import parse_size

    device = _resolve_device(device, detector)
    on_gpu = device.startswith("cuda")
    if on_gpu and detector == "mtcnn":
        _cuda_ready(device)
    config = AlignConfig(
        size=parse_size(size), detector=detector, device=device, thresholds=thresholds,
        min_face_size=min_face_size, pick=pick, fallback=fallback, max_pixels=max_pixels,
        jpeg_quality=jpeg_quality, batch_size=batch_size,
        batch_across_sizes=on_gpu if batch_across_sizes is None else batch_across_sizes,
        decode_threads=(os.cpu_count() or 1 if on_gpu else 0) if decode_threads is None else decode_threads,
    )
    if workers is None:
        workers = 0 if on_gpu else os.cpu_count() or 1
    signal.signal(signal.SIGTERM, _interrupt)  # a scheduler's kill saves the manifest like Ctrl-C
    try:
        if detector == "dlib":
            from alob_common.dlib_models import SHAPE_68, require_dlib_model

            require_dlib_model(SHAPE_68, "--detector dlib")
        if detector == "mtcnn" and importlib.util.find_spec("facenet_pytorch") is None:
            raise ImportError("No module named 'facenet_pytorch'")
        summary = align_folder(data, out, config, workers=workers, overwrite=overwrite, progress=not quiet,
                               command=sys.argv, shard_index=shard_index, num_shards=num_shards)
    except ImportError as err:
        raise click.ClickException(
            f"facenet-pytorch is not importable ({err}): pip install --no-deps facenet-pytorch==2.6.0"
        ) from None
    except UserError as err:
        raise click.ClickException(str(err)) from None
    except KeyboardInterrupt:
        click.echo(f"\ninterrupted: {out}/manifest.csv holds what was done; rerun the same command to resume", err=True)
        sys.exit(130)
    c = summary["counts"]
    if not summary["complete"]:
        job = summary["job"]
        click.echo(f"job {job['shard_index']} of {num_shards}: {job['inputs']} images in {job['seconds']:.1f} s: "
                   f"ok {c['ok']}, fallback {c['fallback']}, failed {c['failed']}; the last job to finish writes "
                   f"{os.path.join(out, 'manifest.csv')}")
        return
    rate = summary["images_per_second"]
    click.echo(
        f"aligned {c['processed']} of {c['inputs']} images in {summary['seconds']:.1f} s"
        + (f" ({rate:.1f} images/s)" if rate else "")
        + f": ok {c['ok']}, fallback {c['fallback']}, failed {c['failed']}"
        + (f" ({c['resumed']} already done, resumed)" if c["resumed"] else "")
        + f"\nmanifest: {os.path.join(out, 'manifest.csv')}"
    )
    if c.get("other_files"):
        examples = ", ".join(summary["other_file_examples"])
        click.echo(f"not images, skipped: {c['other_files']} file(s) ({examples})")
