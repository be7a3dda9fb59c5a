"""``alob-eval cam``: Grad-CAM and Grad-CAM++ of the Trimmer on an occgen set, scored against the
true occlusion masks (the maths in :mod:`alob_eval.cam_maps`, the report in
:mod:`alob_eval.cam_report`)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click
import numpy as np

from alob_common.errors import UserError
from alob_common.vocabulary import check_device, version_option
from alob_train.checkpoint import load_trained
from alob_train.runtime import setup_device


def model_device_option(func):
    """``--device``: where a --checkpoint model runs, with the meaning it has in every command."""
    return click.option("--device", default="auto", show_default=True, callback=check_device,
                        help="Where a --checkpoint model runs: auto (the GPU when torch sees one, else the CPU), "
                             "cpu, cuda or cuda:N. Reference models, --onnx models and the onnx backend run on the CPU.")(func)


@click.command("cam")
@version_option
@model_device_option
@click.option("--data", type=click.Path(exists=True, file_okay=False), required=True,
              help="An occgen folder dataset (manifest.csv with per-image mask_path), e.g. lfw-occ-3.0/.")
@click.option("--checkpoint", type=click.Path(exists=True), required=True,
              help="A run of alob-train (best.pt, else last.pt) or a .pt file.")
@click.option("--which", default="best", show_default=True,
              help="Checkpoint of the run to load: best (falls back to last), last or epoch_NNN.")
@click.option("--network", type=click.Choice(["trimmer", "identifier"]), default="trimmer", show_default=True,
              help="Which backbone to explain; a baseline model has only the identifier.")
@click.option("--limit", type=click.IntRange(1, None), default=None,
              help="Score a random sample of N occluded images (drawn with --seed) instead of all.")
@click.option("--batch-size", type=click.IntRange(1, None), default=32, show_default=True,
              help="Images per forward and backward pass; lower it if memory runs short.")
@click.option("--rows", type=click.IntRange(1, 20), default=6, show_default=True,
              help="Images in the picture (one per occluder category in turn).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seeds --limit's sample, the picture's rows and the random baseline map.")
@click.option("--out", type=click.Path(file_okay=False), default="report-cam", show_default=True,
              help="Folder for cam.json, cam.md and cam_grid.png.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def cam_command(device, data, checkpoint, which, network, limit, batch_size, rows, seed, out, quiet) -> None:
    """Grad-CAM and Grad-CAM++ of the Trimmer on an occgen set, scored against the true masks.

    For every occluded image with a saved mask: pointing game (is the CAM peak on the occluder?)
    and ROC-AUC of CAM values vs mask pixels (mean per image and pooled), for both CAM methods
    and two trivial maps (centred Gaussian, uniform noise) as the chance reference. Writes
    OUT/cam.json, OUT/cam.md and OUT/cam_grid.png (clean and occluded images with their CAMs).
    The CAM layer is the backbone's second-to-last convolution (alob_eval.cam_maps.cam_target_layer).

    \b
      alob-eval cam --data lfw-occ-3.0/ --checkpoint runs/alob-r18 --out report-cam/
    """
    from alob_eval.cam_maps import CAM_LAYERS, cam_target_layer
    from alob_eval.cam_report import (
        CamDataError,
        grid_figure,
        pick_grid_rows,
        read_occluded_set,
        score_set,
        write_cam_report,
    )

    start = time.perf_counter()
    try:
        dataset = read_occluded_set(data)
    except (CamDataError, OSError, ValueError) as err:
        raise click.ClickException(str(err)) from None
    if dataset.rows.empty:
        raise click.ClickException(f"{data}: no occluded image with a saved mask to score ({dataset.counts})")
    try:  # torch: Grad-CAM needs gradients
        model, cfg, which = load_trained(checkpoint, which)
        model.to(setup_device(device, 0, None))
    except UserError as err:
        raise click.ClickException(str(err)) from None
    name = f"{cfg['variant']}-{cfg['backbone']} ({Path(checkpoint).name}, {which})"
    backbone = model.trimmer if network == "trimmer" else model.identifier
    if backbone is None:
        raise click.ClickException(f"{name} is a {cfg['variant']} model without a Trimmer; use --network identifier "
                                   "to explain its only backbone")
    layer = cam_target_layer(backbone, cfg["backbone"])
    usable = len(dataset.rows)
    if limit is not None and limit < usable:
        pick = np.sort(np.random.default_rng(seed).choice(usable, size=limit, replace=False))
        dataset.rows = dataset.rows.iloc[pick].reset_index(drop=True)
    size = tuple(cfg["input_size"])
    try:
        results = score_set(backbone, layer, dataset, size, batch_size, seed, progress=not quiet)
        picture = grid_figure(backbone, layer, dataset, pick_grid_rows(dataset, rows, seed), size,
                              f"{network} of {name}")
    except CamDataError as err:
        raise click.ClickException(str(err)) from None
    counts = dict(dataset.counts, not_sampled=usable - len(dataset.rows),
                  unscorable=results["overall"]["gradcam"]["skipped"], scored=results["overall"]["gradcam"]["images"])
    meta = {"model": name, "checkpoint": str(checkpoint), "network": network,
            "layer": CAM_LAYERS[cfg["backbone"]], "data": str(data), "limit": limit, "seed": seed,
            "batch_size": batch_size, "command": sys.argv, "seconds": round(time.perf_counter() - start, 1)}
    report = {"meta": meta, "counts": counts, "results": results}
    write_cam_report(out, report, picture)
    overall = results["overall"]
    for key in ("gradcam", "gradcam++", "centre-prior", "random"):
        r = overall[key]
        click.echo(f"{key:13s} pointing game {100 * r['pointing_game']:5.1f} %  AUC mean {r['auc_mean']:.3f}  "
                   f"pooled {r['auc_pooled']:.3f}  ({r['images']} images)")
    click.echo(f"report: {Path(out) / 'cam.md'} ({meta['seconds']} s)")
