"""``alob-eval``: pair verification of a model on several benchmarks, with a report."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from typing import TYPE_CHECKING

import click

from alob_common.errors import UserError
import numpy as np

from alob_common.atomic import write_json_atomic, write_text_atomic
from alob_common.verification import TAR_CONVENTIONS
from alob_eval.diagnose import diagnose_command
from alob_eval.onnx_backend import AUTO_MIN_IMAGES, BACKENDS
from alob_eval.onnx_models import onnx_options
from alob_eval.reference_models import REFERENCE_MODELS
from alob_eval.suite_cli import suite_command

if TYPE_CHECKING:
    from alob_eval.benchmarks import Benchmark


def _parse_bench(spec: str) -> Benchmark:
    """A ``--bench`` value as a benchmark; a malformed one is a usage error (exit 2)."""
    from alob_eval.benchmarks import BenchmarkSpecError, parse_bench_spec

    try:
        return parse_bench_spec(spec)
    except BenchmarkSpecError as err:
        raise click.BadParameter(str(err)) from None
    except UserError as err:
        raise click.ClickException(str(err)) from None


def _model_options(func):
    """Options that choose the model being measured and how it runs (shared by alob-eval and ar)."""
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
    return func


def _checkpoint_embedder(checkpoint: str, which: str, backend: str = "torch", images: int = 0):
    """Embedder, description, model, settings and backend used of a trained model (best.pt, else
    last.pt, by default); ``backend`` as --backend, ``images``: how many will be embedded."""
    import torch

    from alob_eval.onnx_backend import BackendUnavailable, checkpoint_onnx_embedder, resolve_backend
    from alob_train.checkpoint import CheckpointError, checkpoint_file, load_trained
    from alob_train.embed import fuse_conv_bn, model_embedder

    run = Path(checkpoint)
    try:
        model, cfg, which = load_trained(run, which)
    except CheckpointError as err:
        raise click.ClickException(str(err)) from None
    name = f"{cfg['variant']}-{cfg['backbone']} ({run.name}, {which})"
    # BatchNorms folded into their convolutions, channels_last (~1.5-2x faster convolutions on CPU)
    fast = fuse_conv_bn(model).to(memory_format=torch.channels_last)
    size = tuple(cfg["input_size"])
    embed = model_embedder(fast, size, channels_last=True)
    used = f"torch {torch.__version__.split('+')[0]} ({torch.get_num_threads()} threads)"
    if resolve_backend(backend, images) == "onnx":
        try:  # the same embedding through ONNX Runtime (checked against `embed` on probe images)
            embed, used = checkpoint_onnx_embedder(fast, size, checkpoint_file(run, which), embed,
                                                   np.random.default_rng(0))
        except BackendUnavailable as err:
            if backend == "onnx":
                raise click.ClickException(str(err)) from None
            click.echo(f"{err}: using the torch backend", err=True)
    return embed, name, model, cfg, used


def _check_one_model(model_args: dict) -> None:
    """Exactly one of --checkpoint, --onnx, --reference and --embeddings names the model measured."""
    given = [f"--{key}" for key in ("checkpoint", "onnx", "reference", "embeddings") if model_args.get(key) is not None]
    if len(given) != 1:
        which = f" (got {' and '.join(given)})" if given else ""
        raise click.UsageError("give exactly one model: --checkpoint RUN, --onnx MODEL.onnx, --reference NAME or "
                               f"--embeddings FILE{which}")


def _skip_missing_images(benchmarks: list[Benchmark]) -> list[Benchmark]:
    """Drop the pairs naming images missing on disk (counted in the results), saying so once per benchmark."""
    from alob_eval.benchmarks import without_missing_images

    kept = []
    for bench in benchmarks:
        bench, missing = without_missing_images(bench)
        if missing:
            click.echo(f"{bench.name}: skipped {bench.skipped_pairs} pairs naming {len(missing)} missing images, "
                       f"e.g. {missing[0]}", err=True)
        kept.append(bench)
    return kept


def _vectors_for(paths_by_root: list[tuple[Path, list[str]]], model_args: dict, flip: bool, batch_size: int,
                 quiet: bool, images: dict[str, bytes] | None = None) -> tuple[dict[str, np.ndarray], str, str]:
    """Embeddings of every path: looked up in --embeddings, or computed by --checkpoint or
    --reference (``images``: encoded images held in memory, a .bin's, by path); returns them, the
    model's description and the backend that computed them."""
    from alob_eval.benchmarks import embed_images
    from alob_eval.embeddings import embeddings_for, load_embeddings
    from alob_eval.reference_models import ModelUnavailable, reference_embedder

    _check_one_model(model_args)
    checkpoint, reference, embeddings = model_args.get("checkpoint"), model_args.get("reference"), model_args.get("embeddings")
    backend = model_args.get("backend") or "auto"
    if backend == "onnx" and not checkpoint:
        raise click.UsageError("--backend onnx runs a --checkpoint model; drop it for --onnx, --reference or "
                               "--embeddings")
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
    if checkpoint:
        embed, model, _, _, used = _checkpoint_embedder(checkpoint, model_args.get("which", "best"), backend, len(paths))
    elif model_args.get("onnx"):
        from alob_eval.onnx_models import onnx_embedder

        try:
            embed, model, used = onnx_embedder(model_args)
        except UserError as err:
            raise click.ClickException(str(err)) from None
    else:
        try:
            embed, model, used = reference_embedder(reference), f"reference {reference}", "the reference model's own runtime"
        except ModelUnavailable as err:
            raise click.ClickException(str(err)) from None
    return embed_images(embed, paths, images, batch_size, flip, progress=not quiet), model, used


@click.group(invoke_without_command=True,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--bench", "benches", multiple=True, metavar="NAME=DIR[@pairs.txt]|NAME=FILE.bin",
              help="A benchmark: a folder dataset with pairs.csv (from occgen), an aligned folder and a "
                   "standard pairs.txt (LFW: .jpg; MFR2: .png, detected), or an insightface verification .bin "
                   "(lfw.bin, cfp_fp.bin …; its images are named /abs/path/FILE.bin#000000 …, or FILE.bin#000000 in an embeddings file). Repeat for several scenarios.")
@_model_options
@click.option("--save-embeddings", type=click.Path(dir_okay=False), default=None,
              help="Also write the embeddings of every benchmark image to this .npz (absolute paths, and the "
                   ".bin names), in the format --embeddings reads, to re-score them later.")
@click.option("--far", "fars", type=float, multiple=True, default=(1e-3, 1e-4), show_default=True,
              help="False accept rates at which TAR is reported.")
@click.option("--tar-convention", type=click.Choice(TAR_CONVENTIONS), default="roc", show_default=True,
              help="roc: one ROC over all pairs (sklearn); order: FROM's order statistic; fold: insightface's "
                   "per-fold interpolation.")
@click.option("--flip", is_flag=True, help="Flip-test fusion: embedding = f(image) + f(mirrored image).")
@click.option("--batch-size", type=click.IntRange(1, None), default=64, show_default=True)
@click.option("--out", type=click.Path(file_okay=False), default="report", show_default=True,
              help="Folder for results.json, results.md and roc.png.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.pass_context
def main(ctx, benches, checkpoint, which, reference, embeddings, backend, save_embeddings, fars, tar_convention,
         flip, batch_size, out, quiet, **onnx_args) -> None:
    """Verify face pairs with cosine similarity: 10-fold accuracy ± std and TAR@FAR per benchmark.

    Without a sub-command, runs pair verification on every --bench and writes REPORT/results.json,
    results.md (the paper's table layout) and roc.png. Example (any ONNX face model on LFW and LFW-OCC-3.0):

      alob-eval --onnx w600k_r50.onnx --bench lfw=lfw-aligned@pairs.txt --bench lfw-occ-3.0=lfw-occ-3.0/

    Sub-commands: `suite` (many sets, clean, occluded and masked, several models: one table), `ar` (AR
    identification), `tsne` (embedding picture), `cam` (Trimmer attention vs true occlusion masks),
    `diagnose` (ALOB's mechanism figures on pair sets).
    """
    if ctx.invoked_subcommand is not None:
        return
    if not benches:
        raise click.UsageError("give at least one --bench NAME=DIR[@pairs.txt]")
    from alob_common.errors import UserError
    from alob_eval.benchmarks import evaluate_benchmarks
    from alob_eval.report import write_eval_report

    model_args = {"checkpoint": checkpoint, "which": which, "reference": reference, "embeddings": embeddings,
                  "backend": backend, **onnx_args}
    _check_one_model(model_args)
    benchmarks = [_parse_bench(spec) for spec in benches]
    if embeddings is None:  # an embeddings file may name images that are not on this machine
        benchmarks = _skip_missing_images(benchmarks)
    start = time.perf_counter()
    groups = [(b.root, list(dict.fromkeys([*b.pairs.path1, *b.pairs.path2]))) for b in benchmarks]
    images = {path: data for b in benchmarks for path, data in b.images.items()}
    vectors, model, used = _vectors_for(groups, model_args, flip, batch_size, quiet, images)
    try:
        results, curves = evaluate_benchmarks(benchmarks, vectors, tuple(fars), tar_convention)
        if save_embeddings:
            _save_vectors(save_embeddings, vectors)
    except UserError as err:
        raise click.ClickException(str(err)) from None
    meta = {"model": model, "backend": used, "flip": flip, "command": sys.argv,
            "seconds": round(time.perf_counter() - start, 1), "benchmarks": {b.name: str(b.root) for b in benchmarks}}
    write_eval_report(out, results, curves, meta, tuple(fars))
    click.echo((Path(out) / "results.md").read_text())
    click.echo(f"report: {Path(out) / 'results.md'} ({meta['seconds']} s, embeddings by {used})")


def _save_vectors(path: str, vectors: dict[str, np.ndarray]) -> None:
    """``--save-embeddings``: the vectors as scored (float64), keyed by the benchmarks' paths."""
    from alob_eval.embeddings import save_embeddings

    try:
        save_embeddings(path, list(vectors), np.stack(list(vectors.values())), np.float64)
    except OSError as err:
        raise UserError(f"cannot write embeddings to {path}: {err.strerror or err}") from None
    click.echo(f"embeddings: {path} ({len(vectors)} images)")


@main.command("ar")
@click.option("--ar-dir", type=click.Path(exists=True, file_okay=False), required=True,
              help="Aligned AR images named like m-001-01.bmp (sex, person, image 1-26).")
@_model_options
@click.option("--gallery-1", default="1,2,3,14,15,16", show_default=True, help="Protocol 1 gallery image numbers.")
@click.option("--gallery-2", default="1", show_default=True, help="Protocol 2 gallery image numbers.")
@click.option("--flip", is_flag=True, help="Flip-test fusion.")
@click.option("--batch-size", type=click.IntRange(1, None), default=64, show_default=True)
@click.option("--out", type=click.Path(file_okay=False), default="report-ar", show_default=True)
@click.option("--quiet", is_flag=True)
def ar_command(ar_dir, checkpoint, which, reference, embeddings, backend, gallery_1, gallery_2, flip, batch_size,
               out, quiet, **onnx_args) -> None:
    """AR identification: rank-1 of sunglasses and scarf probes under protocols 1 and 2."""
    from alob_eval.identification import ar_identification, scan_ar

    table = scan_ar(ar_dir)
    if table.empty:
        raise click.ClickException(f"no AR-named images (m-001-01.bmp ...) under {ar_dir}")
    try:
        protocols = {"1": tuple(int(v) for v in gallery_1.split(",")), "2": tuple(int(v) for v in gallery_2.split(","))}
    except ValueError:
        raise click.BadParameter("gallery image numbers are comma-separated integers") from None
    model_args = {"checkpoint": checkpoint, "which": which, "reference": reference, "embeddings": embeddings,
                  "backend": backend, **onnx_args}
    vectors, model, used = _vectors_for([(Path(ar_dir), table.path.tolist())], model_args, flip, batch_size, quiet)
    result = ar_identification(table, vectors, protocols)
    lines = ["| protocol | sunglasses rank-1 (%) | scarf rank-1 (%) | people |", "|---|---|---|---|"]
    for name, probes in result.items():
        lines.append(f"| {name} | {100 * probes['sunglasses']['rank1']:.2f} | {100 * probes['scarf']['rank1']:.2f} | "
                     f"{probes['sunglasses']['people']} |")
    table_md = "\n".join(lines)
    write_text_atomic(Path(out) / "ar.md", f"# AR identification: {model}\n\n{table_md}\n\nGalleries: {protocols}\n"
                      f"Embeddings by: {used}\n")
    write_json_atomic(Path(out) / "ar.json", {"model": model, "backend": used, "galleries": protocols, "results": result})
    click.echo(table_md)
    click.echo(f"report: {Path(out) / 'ar.md'}")


@main.command("tsne")
@click.option("--images", type=click.Path(exists=True, file_okay=False), required=True,
              help="Identity folders of aligned images (an aligned LFW, or an occgen dataset's images/).")
@click.option("--checkpoint", "checkpoints", type=click.Path(exists=True), multiple=True,
              help="A run of alob-train (best.pt, else last.pt); repeat for one panel each.")
@click.option("--reference", "references", type=click.Choice(REFERENCE_MODELS), multiple=True,
              help="A reference model; repeat for one panel each.")
@click.option("--embeddings", "embedding_files", type=click.Path(exists=True, dir_okay=False), multiple=True,
              help="An embeddings file; repeat for one panel each.")
@click.option("--onnx", "onnx_files", type=click.Path(exists=True, dir_okay=False), multiple=True,
              help="An ONNX face model (its metadata's input convention, else insightface's); repeat for one "
                   "panel each.")
@click.option("--identities", type=click.IntRange(2, 10), default=5, show_default=True)
@click.option("--per-identity", type=click.IntRange(2, None), default=20, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="Chooses the identities and seeds t-SNE.")
@click.option("--out", type=click.Path(dir_okay=False), default="tsne.png", show_default=True)
def tsne_command(images, checkpoints, references, embedding_files, onnx_files, identities, per_identity, seed,
                 out) -> None:
    """t-SNE of a few identities x many images: one panel per model, points coloured by identity."""
    from alob_eval.tsne import pick_identities, plot_panels, tsne_2d

    if not checkpoints and not references and not embedding_files and not onnx_files:
        raise click.UsageError("give at least one --checkpoint, --onnx, --reference or --embeddings")
    try:
        chosen = pick_identities(images, identities, per_identity, np.random.default_rng(seed))
    except ValueError as err:
        raise click.ClickException(str(err)) from None
    paths = [p for group in chosen.values() for p in group]
    labels = [name for name, group in chosen.items() for _ in group]
    models = ([{"checkpoint": c} for c in checkpoints] + [{"reference": r} for r in references]
              + [{"embeddings": e} for e in embedding_files] + [{"onnx": o} for o in onnx_files])
    panels = {}
    for model_args in models:
        vectors, model, _ = _vectors_for([(Path(images), paths)], model_args, False, 64, True)
        panels[model] = tsne_2d(np.stack([vectors[p] for p in paths]), seed)
    plot_panels(out, panels, labels)
    click.echo(f"t-SNE of {identities} identities x {per_identity} images, {len(panels)} panel(s): {out}")


@main.command("cam")
@click.option("--data", type=click.Path(exists=True, file_okay=False), required=True,
              help="An occgen folder dataset (manifest.csv with per-image mask_path), e.g. lfw-occ-3.0/.")
@click.option("--checkpoint", type=click.Path(exists=True), required=True,
              help="A run of alob-train (best.pt, else last.pt) or a .pt file.")
@click.option("--which", default="best", show_default=True, help="best (falls back to last), last or epoch_NNN.")
@click.option("--network", type=click.Choice(["trimmer", "identifier"]), default="trimmer", show_default=True,
              help="Which backbone to explain; a baseline model has only the identifier.")
@click.option("--limit", type=click.IntRange(1, None), default=None,
              help="Score a random sample of N occluded images (drawn with --seed) instead of all.")
@click.option("--batch-size", type=click.IntRange(1, None), default=32, show_default=True)
@click.option("--rows", type=click.IntRange(1, 20), default=6, show_default=True,
              help="Images in the picture (one per occluder category in turn).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seeds --limit's sample, the picture's rows and the random baseline map.")
@click.option("--out", type=click.Path(file_okay=False), default="report-cam", show_default=True,
              help="Folder for cam.json, cam.md and cam_grid.png.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def cam_command(data, checkpoint, which, network, limit, batch_size, rows, seed, out, quiet) -> None:
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
    _, name, model, cfg, _ = _checkpoint_embedder(checkpoint, which)  # torch: Grad-CAM needs gradients
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


main.add_command(diagnose_command)
main.add_command(suite_command(_vectors_for))

if __name__ == "__main__":
    main()
