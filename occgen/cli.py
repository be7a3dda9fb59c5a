"""``occgen``: synthesise occluded face datasets (``build``), look at them (``preview``) and
manage the occluder library (``assets``)."""

from __future__ import annotations

import os
import sys

import click

from alob_common.images import ImageScan
from alob_common.vocabulary import OldSyntax, Renamed, VocabCommand, version_option
from occgen.build import build as run_build
from occgen.build_config import (
    DEFAULT_CLEAN_RATIO,
    DEFAULT_FORMAT,
    DEFAULT_SIZE_MODE,
    FORMATS,
    KINDS,
    SOURCES,
    BuildConfig,
    Job,
    dataset_name,
    default_occlusion,
    default_workers,
)
from occgen.cli_tools import CONTEXT, assets, one_line_errors, preview, to_bin, warn
from occgen.face_landmarks import LANDMARK_METHODS, dlib_predictor
from occgen.library import OccgenError, library_or_default
from occgen.masks import MASK_TYPES, MaskConfig, parse_mask_types
from occgen.masktheface import load_templates
from occgen.synth import (
    RATIO_SOLVERS,
    OcclusionConfig,
    is_old_scale_set,
    modern_scale_set,
    parse_clean_ratio,
    parse_scale_set,
)

@click.group(context_settings=CONTEXT)
@version_option
def main() -> None:
    """Occlusion synthesis for aligned face crops (FROM's LFW-OCC and training sets, and better).

    \b
    occgen build    occlude an aligned folder, an insightface pack or .bin into a dataset
    occgen to-bin   a folder dataset's pairs.csv as an insightface verification .bin file
    occgen preview  contact sheet of a built dataset with mask outlines
    occgen assets   list, draw or regenerate the occluder library
    """


def _categories(ctx, param, value: str | None):
    return tuple(v.strip() for v in value.split(",") if v.strip()) if value else None


def _mask_types(ctx, param, value: str | None):
    try:
        return parse_mask_types(value) if value else None
    except ValueError as err:
        raise click.BadParameter(str(err)) from None


def _clean_ratio(ctx, param, value: str) -> float:
    try:
        return parse_clean_ratio(value)
    except ValueError as err:
        raise click.BadParameter(str(err)) from None


def _size_mode_help() -> str:
    """``--ratio 0.52 for lfw, --scale-set 1..5/0.5 for folder``, from DEFAULT_SIZE_MODE."""
    return ", ".join(f"--{key.replace('_', '-')} {value} for {source}"
                     for source, mode in DEFAULT_SIZE_MODE.items() for key, value in mode.items())


BUILD_HELP = f"""Occlude an aligned face folder into a dataset.

    Size mode: one of --factor, --scale-set, --ratio [default: {_size_mode_help()}]; occluders
    only, --kind mask has its own options (--mask-*, --landmarks). Outputs, in the --out folder
    (field by field in docs/FORMATS.md): manifest.csv (one row per output and per failed input),
    dataset.json (settings, counts, coverage mean and spread, the input files that are not
    images), pairs.csv (lfw, bin) or classes.csv (folder, rec). Reruns resume.

    \b
    Examples:
      occgen build --source lfw --data lfw-aligned --pairs pairs.txt --out lfw-occ-3.0 --factor 3.0 --blend rect
      occgen build --source lfw --data lfw-aligned --pairs pairs.txt --out lfw-occ-r0.52 --ratio 0.52
      occgen build --source folder --data casia-aligned --out casia-occ --scale-set 1..5/0.5 --copies 1
      occgen build --source lfw --kind mask --data lfw-aligned --pairs pairs.txt --out lfw-masked
      occgen build --source folder --kind mixed --mask-fraction 0.5 --data casia-aligned --out casia-mixed
      occgen build --source rec --data faces_webface_112x112 --out webface-occ --format rec
      occgen build --source bin --data faces_webface_112x112/lfw.bin --out lfw-bin-occ --ratio 0.52
    """


@main.command(cls=VocabCommand, context_settings=CONTEXT, help=BUILD_HELP,
              renamed=[Renamed("--src", "--data"), Renamed("--pick", "--pick-occluder")],
              old_syntax=[OldSyntax("--scale-set", is_old_scale_set, modern_scale_set)])
@version_option
@click.option("--kind", type=click.Choice(KINDS), default=BuildConfig.kind, show_default=True,
              help="occluder: FROM-style occluders. mask: landmark-fitted face masks (LFW-Masked with --source lfw). "
                   "mixed: each occluded sample gets a mask with probability --mask-fraction, else an occluder.")
@click.option("--mask-types", callback=_mask_types,
              help=f"Comma-separated mask types drawn per image [default: all: {','.join(MASK_TYPES)}].")
@click.option("--mask-templates", type=click.Path(),
              help="A MaskTheFace template folder (masks.cfg + RGBA templates): fit its templates by homography "
                   "instead of drawing the masks; types without a template are drawn.")
@click.option("--mask-fraction", type=click.FloatRange(0, 1), default=BuildConfig.mask_fraction, show_default=True,
              help="--kind mixed: of the occluded samples, the fraction that get masks (the rest get occluders).")
@click.option("--landmarks", type=click.Choice(LANDMARK_METHODS), default=MaskConfig.landmarks, show_default=True,
              help="Mask fitting: auto = dlib 68 points when dlib and its model are installed, else the 5-point "
                   "face-shape model; dlib = require dlib; model = never dlib. Any failure falls back to the "
                   "template landmarks (recorded in the manifest); no face is dropped.")
@click.option("--source", type=click.Choice(SOURCES), required=True,
              help="lfw: every image occluded once, next to a clean copy, plus pairs.csv (evaluation set). "
                   "folder: any identity-folder tree to a training set with clean and occluded samples. "
                   "rec: an insightface pack to a training set (identities from its labels). "
                   "bin: an insightface verification .bin to an evaluation set like lfw (its pairs and folds).")
@click.option("--data", "src", required=True, type=click.Path(),
              help="Input: an aligned folder (align-faces output or any identity tree); for rec a pack folder (train.rec, "
                   "train.idx, property) or a .rec; for bin a .bin file.")
@click.option("--out", type=click.Path(file_okay=False),
              help="Output folder [default: the dataset's conventional name in the current folder, e.g. lfw-occ-3.0, "
                   "lfw-occ-r0.52].")
@click.option("--pairs", type=click.Path(dir_okay=False), help="LFW pairs.txt (View 2) for --source lfw; writes pairs.csv in --out.")
@click.option("--factor", type=click.FloatRange(min=0, min_open=True),
              help="FROM-exact: resize each occluder to FACTOR × its native size (capped at W-1 × H-1); e.g. 2.0 or 3.0.")
@click.option("--scale-set", help="FROM's training recipe: the factor drawn per image from a list, e.g. 1..5/0.5 "
                                  "(1 to 5 in steps of 0.5, both ends included) or 2,3 [default for --source "
                                  "folder and rec, when no other size mode is given: 1..5/0.5].")
@click.option("--ratio", type=click.FloatRange(0, 1, min_open=True, max_open=True),
              help="Target coverage: occluders cover RATIO of the crop on average, e.g. 0.52 (LFW-OCC-3.0) or 0.4309 (2.0).")
@click.option("--ratio-spread", type=click.FloatRange(0, 0.3), default=OcclusionConfig.ratio_spread, show_default=True,
              help="Standard deviation of the per-image coverage targets in --ratio mode.")
@click.option("--ratio-solver", type=click.Choice(RATIO_SOLVERS), default=OcclusionConfig.ratio_solver,
              show_default=True,
              help="--ratio mode: curve reads each occluder's size from its coverage table (one paste per image); "
                   "search is the earlier per-image search, which reproduces builds made before the tables.")
@click.option("--blend", type=click.Choice(["alpha", "rect"]), default=OcclusionConfig.blend, show_default=True,
              help="alpha: composite with the occluder's alpha, mask = alpha > 0.5. rect: paste the whole rectangle (FROM).")
@click.option("--placement", type=click.Choice(["random", "semantic"]), default=OcclusionConfig.placement,
              show_default=True,
              help="random: centre anywhere (FROM). semantic: eyewear on the eyes, masks and scarves on nose and mouth.")
@click.option("--true-mask", is_flag=True,
              help="With --factor/--scale-set and --blend rect: save the exact pasted rectangle instead of FROM's mask "
                   "(FROM clips the mask at W-1/H-1, missing the last column/row).")
@click.option("--pick-occluder", "pick", type=click.Choice(["category", "file"]), default=OcclusionConfig.pick, show_default=True,
              help="Which occluder: a category uniformly then a file in it, or any file uniformly (FROM; the same "
                   "for the bundled library, whose categories are all the same size).")
@click.option("--categories", callback=_categories, help="Comma-separated occluder categories to use [default: all].")
@click.option("--occluders", type=click.Path(file_okay=False),
              help="Occluder folder: this project's layout, FROM's (category folders, optional occluder.txt) or any PNGs "
                   "[default: the bundled library].")
@click.option("--clean-ratio", default=DEFAULT_CLEAN_RATIO, show_default=True, callback=_clean_ratio,
              help="--source folder: clean:occluded proportion of training samples.")
@click.option("--copies", type=click.IntRange(1, None), default=BuildConfig.copies, show_default=True,
              help="--source folder: samples made from each source image.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default=None,
              help="folder (images/, masks/), shards (WebDataset tars) or rec (an insightface pack: train.rec, "
                   "train.idx, property; training sets only) [default: "
                   + ", ".join(f"{fmt} for {source}" for source, fmt in DEFAULT_FORMAT.items()) + "].")
@click.option("--image-format", type=click.Choice(["jpg", "png"]), default=BuildConfig.image_format, show_default=True,
              help="File type of the written images: jpg (small) or png (lossless, several times larger).")
@click.option("--jpeg-quality", type=click.IntRange(50, 100), default=BuildConfig.jpeg_quality, show_default=True,
              help="JPEG quality of the written images (with --image-format jpg).")
@click.option("--shard-size", type=click.IntRange(1, None), default=BuildConfig.unit_size, show_default=True,
              help="Samples per unit of work (one tar in shard form).")
@click.option("--seed", type=int, default=BuildConfig.seed, show_default=True,
              help="Every sample's randomness comes from (seed, its key).")
@click.option("--workers", type=click.IntRange(0, None), default=None,
              help="Worker processes; 0 = all in this process [default: the number of CPU cores]. Never changes "
                   "the output.")
@click.option("--shard-index", type=click.IntRange(0, None), default=0, show_default=True,
              help="This job's part when the build is split over --num-shards jobs (array jobs).")
@click.option("--num-shards", type=click.IntRange(1, None), default=1, show_default=True,
              help="Split the build over this many jobs (array jobs, several machines sharing --out), each "
                   "started with its own --shard-index.")
@click.option("--overwrite", is_flag=True, help="Rebuild everything instead of resuming finished units.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def build(kind, mask_types, mask_templates, mask_fraction, landmarks, source, src, out, pairs, factor, scale_set,
          ratio, ratio_spread, ratio_solver, blend, placement, true_mask, pick, categories, occluders, clean_ratio,
          copies, fmt, image_format, jpeg_quality, shard_size, seed, workers, shard_index, num_shards, overwrite, quiet) -> None:
    """The ``build`` command (its help is BUILD_HELP)."""
    occlusion = _occlusion_config(source, factor, scale_set, ratio, ratio_spread=ratio_spread, ratio_solver=ratio_solver,
                                  blend=blend, placement=placement, from_mask=not true_mask, categories=categories,
                                  pick=pick)
    masks = _mask_config(kind, mask_types, mask_templates, landmarks)
    config = BuildConfig(
        kind=kind, masks=masks, mask_fraction=mask_fraction,
        source=source, occlusion=occlusion, seed=seed, copies=copies, clean=clean_ratio,
        format=fmt or DEFAULT_FORMAT[source], image_format=image_format,
        jpeg_quality=jpeg_quality, unit_size=shard_size, occluders=_absolute(occluders), pairs=_absolute(pairs),
    )
    out = out or dataset_name(config, src)
    job = Job(src, out, config, shard_index, num_shards, default_workers() if workers is None else workers, sys.argv)
    try:
        with one_line_errors():
            if kind != "mask":
                library = library_or_default(occluders)
                warn(library.problems)
                library.subset(categories)
            summary = run_build(job, progress=not quiet, overwrite=overwrite)
    except KeyboardInterrupt:
        click.echo("\ninterrupted: finished units are kept; rerun the same command to resume", err=True)
        sys.exit(130)
    _report(summary, src, out)


def _occlusion_config(source: str, factor: float | None, scale_set: str | None, ratio: float | None,
                      **options) -> OcclusionConfig:
    """The occlusion settings from the size-mode options (the source's default when none is
    given) and the others; a usage error for two size modes or a bad value."""
    if sum(v is not None for v in (factor, scale_set, ratio)) > 1:
        raise click.UsageError("give only one of --factor, --scale-set, --ratio")
    try:
        scales = parse_scale_set(scale_set) if scale_set else None
        return default_occlusion(source, factor=factor, scale_set=scales, ratio=ratio, **options)
    except ValueError as err:
        raise click.BadParameter(str(err)) from None


def _mask_config(kind: str, mask_types: tuple[str, ...] | None, mask_templates: str | None,
                 landmarks: str) -> MaskConfig:
    """The mask settings; loads the templates (warning about unusable ones) and checks dlib when
    asked for, so a problem shows before any work."""
    if kind == "occluder" and (mask_types or mask_templates):
        raise click.UsageError("--mask-types and --mask-templates need --kind mask or --kind mixed")
    with one_line_errors():
        if mask_templates:
            warn(load_templates(mask_templates).problems)
        if landmarks == "dlib" and dlib_predictor() is None:
            raise OccgenError("--landmarks dlib: dlib or its 68-point model (face_recognition_models) is not installed")
    return MaskConfig(types=mask_types or MaskConfig().types, landmarks=landmarks,
                      templates=_absolute(mask_templates))


def _absolute(path: str | None) -> str | None:
    return os.path.abspath(path) if path else None


def _report(summary: dict, src: str, out: str) -> None:
    """The build's summary lines: speed, counts, coverage, masks, landmarks, pairs, manifest."""
    inputs = summary.get("inputs") or {}
    if inputs.get("other_files"):
        others = ImageScan([], inputs["other_files"], inputs["other_examples"]).describe_others()
        click.echo(f"warning: {src} holds {others}; only images are used", err=True)
    run = summary["run"]
    rate = run.get("samples_per_second")
    click.echo(f"built {run['processed']} samples in {run['seconds']:.1f} s" + (f" ({rate:.0f}/s)" if rate else "")
               + (f", {run['units_resumed']} units already done" if run["units_resumed"] else ""))
    if not summary.get("complete"):
        click.echo(summary.get("note", "incomplete"))
        return
    c = summary["counts"]
    click.echo(f"{c['samples']} samples ({c['occluded']} occluded, {c['clean']} clean) from {c['inputs']} inputs, "
               f"{c['failed_inputs']} failed")
    if "coverage" in summary:
        cov = summary["coverage"]
        click.echo(f"coverage: mean {cov['mean'] * 100:.2f} %, std {cov['std'] * 100:.2f}, "
                   f"5-95 % {cov['p05'] * 100:.1f}-{cov['p95'] * 100:.1f} %")
    for mask_type, m in summary.get("masks", {}).items():
        click.echo(f"  {mask_type:<9} {m['count']:>6} masks, coverage mean {m['mean'] * 100:.1f} % "
                   f"({m['min'] * 100:.1f}-{m['max'] * 100:.1f}), {m['template_fallbacks']} on template landmarks")
    if "landmarks" in summary:
        click.echo("landmarks: " + ", ".join(f"{k} {v}" for k, v in summary["landmarks"].items()))
    if "pairs" in summary:
        _report_pairs(summary["pairs"], out)
    click.echo(f"manifest: {os.path.join(out, 'manifest.csv')}")


def _report_pairs(p: dict, out: str) -> None:
    click.echo(f"pairs: {p['written']} of {p['read']} written to {os.path.join(out, 'pairs.csv')}")
    for s in p["skipped"][:5]:
        click.echo(f"warning: pairs line {s['line']} skipped: {s['reason']}", err=True)
    if len(p["skipped"]) > 5:
        click.echo(f"warning: {len(p['skipped']) - 5} more pairs skipped (see dataset.json)", err=True)


main.add_command(to_bin)
main.add_command(preview)
main.add_command(assets)


if __name__ == "__main__":
    main()
