"""``alob-eval``: pair verification of a model on several benchmarks, with a report, and the
sub-commands ``embed``, ``ar`` and ``tsne`` (the model code they share: :mod:`alob_eval.model_choice`)."""

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
from alob_common.vocabulary import Renamed, VocabCommand, parse_list, version_option
from alob_eval.cam_command import cam_command, model_device_option
from alob_eval.diagnose import diagnose_command
from alob_eval.model_choice import BATCH_HELP, check_one_model, embedder_for, far_option, model_options, vectors_for
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


@click.group(invoke_without_command=True,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@version_option
@click.option("--bench", "benches", multiple=True, metavar="NAME=DIR[@pairs.txt]|NAME=FILE.bin",
              help="A benchmark: a folder dataset with pairs.csv (from occgen), an aligned folder and a "
                   "standard pairs.txt (LFW: .jpg; MFR2: .png, detected), or an insightface verification .bin "
                   "(lfw.bin, cfp_fp.bin …; its images are named /abs/path/FILE.bin#000000 …, or FILE.bin#000000 in an embeddings file). Repeat for several scenarios.")
@model_options
@click.option("--save-embeddings", type=click.Path(dir_okay=False), default=None,
              help="Also write the embeddings of every benchmark image to this .npz (absolute paths, and the "
                   ".bin names), in the format --embeddings reads, to re-score them later.")
@far_option
@click.option("--tar-convention", type=click.Choice(TAR_CONVENTIONS), default="roc", show_default=True,
              help="How TAR at a FAR is computed: roc, one ROC curve over all pairs (scikit-learn); order, the "
                   "threshold at the impostor score ranked FAR × impostors from the top (as FROM computes it); fold, "
                   "per fold on a threshold interpolated from the other folds (as insightface computes it).")
@click.option("--flip", is_flag=True, help="Flip-test fusion: embedding = f(image) + f(mirrored image).")
@click.option("--batch-size", type=click.IntRange(1, None), default=64, show_default=True, help=BATCH_HELP)
@click.option("--out", type=click.Path(file_okay=False), default="report", show_default=True,
              help="Output folder for results.json, results.md and roc.png.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.pass_context
def main(ctx, benches, checkpoint, which, reference, embeddings, backend, device, save_embeddings, fars,
         tar_convention, flip, batch_size, out, quiet, **onnx_args) -> None:
    """Verify face pairs with cosine similarity: 10-fold accuracy ± std and TAR@FAR per benchmark.

    Without a sub-command, runs pair verification on every --bench and writes REPORT/results.json,
    results.md (the paper's table layout) and roc.png. Examples (a reference model, and any ONNX
    face model, on LFW and LFW-OCC-3.0):

      alob-eval --reference facenet --bench lfw=lfw-aligned@pairs.txt --bench lfw-occ-3.0=lfw-occ-3.0/
      alob-eval --onnx w600k_r50.onnx --bench lfw=lfw-aligned@pairs.txt --bench lfw-occ-3.0=lfw-occ-3.0/

    Sub-commands: `suite` (many sets, clean, occluded and masked, several models: one table),
    `embed` (the embeddings of any image folder), `ar` (AR identification protocols), `tsne`
    (embedding picture), `cam` (Trimmer attention vs true occlusion masks), `diagnose` (ALOB's
    mechanism figures on pair sets).
    """
    if ctx.invoked_subcommand is not None:
        return
    if not benches:
        raise click.UsageError("give at least one --bench NAME=DIR[@pairs.txt]")
    from alob_common.errors import UserError
    from alob_eval.benchmarks import evaluate_benchmarks
    from alob_eval.report import write_eval_report

    model_args = {"checkpoint": checkpoint, "which": which, "reference": reference, "embeddings": embeddings,
                  "backend": backend, "device": device, **onnx_args}
    check_one_model(model_args)
    benchmarks = [_parse_bench(spec) for spec in benches]
    if embeddings is None:  # an embeddings file may name images that are not on this machine
        benchmarks = _skip_missing_images(benchmarks)
    start = time.perf_counter()
    groups = [(b.root, list(dict.fromkeys([*b.pairs.path1, *b.pairs.path2]))) for b in benchmarks]
    images = {path: data for b in benchmarks for path, data in b.images.items()}
    vectors, model, used = vectors_for(groups, model_args, flip, batch_size, quiet, images)
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


@main.command("ar", cls=VocabCommand, renamed=[Renamed("--ar-dir", "--data")])
@version_option
@click.option("--data", "ar_dir", type=click.Path(exists=True, file_okay=False), required=True,
              help="Input: aligned AR images named like m-001-01.bmp (sex, person, image 1-26).")
@model_options
@click.option("--gallery-1", default="1,2,3,14,15,16", show_default=True,
              help="Protocol 1 gallery image numbers, a list such as 1,2,3,14..16.")
@click.option("--gallery-2", default="1", show_default=True, help="Protocol 2 gallery image numbers, a list.")
@click.option("--flip", is_flag=True, help="Flip-test fusion: embedding = f(image) + f(mirrored image).")
@click.option("--batch-size", type=click.IntRange(1, None), default=64, show_default=True, help=BATCH_HELP)
@click.option("--out", type=click.Path(file_okay=False), default="report-ar", show_default=True,
              help="Output folder for ar.json and ar.md.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def ar_command(ar_dir, checkpoint, which, reference, embeddings, backend, device, gallery_1, gallery_2, flip,
               batch_size, out, quiet, **onnx_args) -> None:
    """AR identification: rank-1 of sunglasses and scarf probes under protocols 1 and 2."""
    from alob_eval.identification import ar_identification, scan_ar

    table = scan_ar(ar_dir)
    if table.empty:
        raise click.ClickException(f"no AR-named images (m-001-01.bmp ...) under {ar_dir}")
    try:
        protocols = {"1": tuple(parse_list(gallery_1)), "2": tuple(parse_list(gallery_2))}
    except ValueError as err:
        raise click.BadParameter(f"gallery image numbers: {err}") from None
    model_args = {"checkpoint": checkpoint, "which": which, "reference": reference, "embeddings": embeddings,
                  "backend": backend, "device": device, **onnx_args}
    vectors, model, used = vectors_for([(Path(ar_dir), table.path.tolist())], model_args, flip, batch_size, quiet)
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


@main.command("tsne", cls=VocabCommand, renamed=[Renamed("--images", "--data"), Renamed("--out", "--out-file")])
@version_option
@click.option("--data", "images", type=click.Path(exists=True, file_okay=False), required=True,
              help="Input: identity folders of aligned images (an aligned LFW, or an occgen dataset's images/).")
@click.option("--checkpoint", "checkpoints", type=click.Path(exists=True), multiple=True,
              help="A run of alob-train (best.pt, else last.pt); repeat for one panel each.")
@click.option("--reference", "references", type=click.Choice(REFERENCE_MODELS), multiple=True,
              help="A reference model; repeat for one panel each.")
@click.option("--embeddings", "embedding_files", type=click.Path(exists=True, dir_okay=False), multiple=True,
              help="An embeddings file; repeat for one panel each.")
@click.option("--onnx", "onnx_files", type=click.Path(exists=True, dir_okay=False), multiple=True,
              help="An ONNX face model (its metadata's input convention, else insightface's); repeat for one "
                   "panel each.")
@click.option("--identities", type=click.IntRange(2, 10), default=5, show_default=True,
              help="How many people are drawn (each gets a colour); chosen among those with enough images.")
@click.option("--per-identity", type=click.IntRange(2, None), default=20, show_default=True,
              help="Images per person (people with fewer are not chosen).")
@click.option("--seed", type=int, default=0, show_default=True, help="Chooses the identities and seeds t-SNE.")
@model_device_option
@click.option("--out-file", "out", type=click.Path(dir_okay=False), default="tsne.png", show_default=True,
              help="The PNG to write.")
def tsne_command(images, checkpoints, references, embedding_files, onnx_files, identities, per_identity, seed,
                 device, out) -> None:
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
    models = ([{"checkpoint": c, "device": device} for c in checkpoints] + [{"reference": r} for r in references]
              + [{"embeddings": e} for e in embedding_files] + [{"onnx": o} for o in onnx_files])
    panels = {}
    for model_args in models:
        vectors, model, _ = vectors_for([(Path(images), paths)], model_args, False, 64, True)
        panels[model] = tsne_2d(np.stack([vectors[p] for p in paths]), seed)
    plot_panels(out, panels, labels)
    click.echo(f"t-SNE of {identities} identities x {per_identity} images, {len(panels)} panel(s): {out}")


@main.command("embed")
@version_option
@click.option("--data", type=click.Path(exists=True, file_okay=False), required=True,
              help="Input: a folder of images, walked recursively: aligned crops, or raw photos with --align.")
@model_options
@click.option("--align", is_flag=True,
              help="The images are raw photos: find each face (MTCNN) and warp it onto the template of the "
                   "model's input size first, as align-faces does (no face: the centre crop, counted).")
@click.option("--flip", is_flag=True, help="Flip-test fusion: embedding = f(image) + f(mirrored image).")
@click.option("--batch-size", type=click.IntRange(1, None), default=64, show_default=True, help=BATCH_HELP)
@click.option("--out", type=click.Path(file_okay=False), default="embeddings", show_default=True,
              help="Output folder for embeddings.npz (paths relative to --data; the file --embeddings reads) and "
                   "embed.json (model, counts, the images that could not be read).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def embed_command(data, checkpoint, which, reference, embeddings, backend, device, align, flip, batch_size, out,
                  quiet, **onnx_args) -> None:
    """Write the embeddings of every image under --data with a trained model (or an ONNX or a
    reference model): OUT/embeddings.npz, one vector per image keyed by its path relative to --data, and
    OUT/embed.json. An unreadable image is skipped and listed. The same vectors as
    --save-embeddings for the same images; re-score them with alob-eval --embeddings.

    
    Examples:
      alob-eval embed --data my-aligned-faces/ --checkpoint runs/alob-r18 --out my-embeddings/
      alob-eval embed --data holiday-photos/ --align --checkpoint runs/alob-r18 --out holiday-embeddings/
      alob-eval embed --data my-aligned-faces/ --onnx w600k_r50.onnx --out r50-embeddings/
    """
    from alob_eval.embed_folder import embed_and_write

    if embeddings:
        raise click.UsageError("alob-eval embed computes embeddings: give --checkpoint, --onnx or --reference, not "
                               "--embeddings")
    model_args = {"checkpoint": checkpoint, "which": which, "reference": reference, "backend": backend,
                  "device": device, **onnx_args}
    check_one_model(model_args)
    count = sum(1 for _ in Path(data).rglob("*")) if backend == "auto" else 0  # auto's onnx needs many images
    embed, model, used, size = embedder_for(model_args, count)
    try:
        click.echo(embed_and_write(data, out, embed, {"model": model, "backend": used, "input_size": size},
                                   batch_size, flip, device if align else None, not quiet))
    except UserError as err:
        raise click.ClickException(str(err)) from None


main.add_command(cam_command)
main.add_command(diagnose_command)
main.add_command(suite_command)

if __name__ == "__main__":
    main()
