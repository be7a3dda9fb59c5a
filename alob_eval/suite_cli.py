"""The ``alob-eval suite`` command: builds the occluded and masked versions of every set
(:mod:`alob_eval.suite`), measures every model on every set, resumably, and writes the report
(:mod:`alob_eval.suite_report`).

The models are chosen, loaded and embedded by the same code as ``alob-eval`` itself
(:func:`alob_eval.model_choice.vectors_for`), so a model is loaded and run one way. Within one
suite, images with the same bytes (a set's clean images, copied into each of its versions; a
``.bin`` made from a folder) are embedded once per model.
"""

from __future__ import annotations

import hashlib
import sys
import time
from pathlib import Path

import click
import numpy as np

from alob_common.atomic import write_json_atomic
from alob_common.errors import UserError
from alob_common.verification import TAR_CONVENTIONS
from alob_common.vocabulary import parse_list, version_option
from alob_eval.cam_command import model_device_option
from alob_eval.model_choice import BATCH_HELP, far_option, vectors_for
from alob_eval.onnx_backend import BACKENDS
from alob_eval.onnx_models import onnx_convention_options
from alob_eval.reference_models import REFERENCE_MODELS
from alob_eval.suite import (
    Scenario,
    SuiteError,
    SuiteModel,
    SuiteSet,
    ensure_built,
    load_result,
    parse_models,
    parse_sets,
    result_key,
    rescore,
    result_path,
    scenario_benchmarks,
    scenarios,
)

SUITE_HELP = """Measure models over many verification sets, clean, occluded and masked: one table.

\b
Sets (--set, repeat): an insightface verification .bin (lfw.bin, cfp_fp.bin ...), a folder of
them (each named by its stem), or an aligned folder with its pairs file, NAME=DIR@pairs.txt.
For each set the occluded versions (FROM's procedure at --factor 2.0,3.0, or --ratio R,...)
and a masked version are built once by occgen into OUT/sets/ and reused by later runs with the
same settings (other settings rebuild them). Models (repeat, any mix, each NAME=VALUE or
VALUE): --checkpoint, --onnx, --reference, --embeddings. A finished model x set is kept in
OUT/results/ and not recomputed: an interrupted suite resumes. Writes OUT/suite.csv, suite.md,
suite.png, suite.json and, with two models or more, differences.csv (paired, per set and
scenario).

\b
  alob-eval suite --set faces_webface_112x112/ --set lfw-folder=lfw-aligned@pairs.txt \\
      --onnx r50=w600k_r50.onnx --reference facenet --out suite-report/
"""


def _digest(path: str, images: dict[str, bytes]) -> str:
    data = images[path] if path in images else Path(path).read_bytes()
    return hashlib.blake2b(data, digest_size=16).hexdigest()


class _Embeddings:
    """Per model, the vectors computed so far in this suite, by image content."""

    def __init__(self, options: dict, quiet: bool) -> None:
        self.options, self.quiet = options, quiet
        self.known: dict[str, dict[str, np.ndarray]] = {}
        self.described: dict[str, tuple[str, str]] = {}

    def vectors(self, model: SuiteModel, benches: list) -> tuple[dict[str, np.ndarray], str, str]:
        """Every benchmark image's vector, the model's description and backend."""
        groups = [(b.root, list(dict.fromkeys([*b.pairs.path1, *b.pairs.path2]))) for b in benches]
        images = {p: data for b in benches for p, data in b.images.items()}
        flip, batch = self.options["flip"], self.options["batch_size"]
        args = model.args(self.options["model"])
        if model.kind == "embeddings":  # looked up by path, nothing to compute
            vectors, description, used = vectors_for(groups, args, flip, batch, True, images)
            self.described[model.name] = (description, used)
            return vectors, description, used
        digests = {p: _digest(p, images) for _, paths in groups for p in paths}
        known = self.known.setdefault(model.name, {})
        todo = {d: p for p, d in digests.items() if d not in known}
        if todo or model.name not in self.described:
            paths = list(todo.values())
            click.echo(f"  embedding {len(paths)} images ({len(digests) - len(paths)} known by content)", err=True)
            vectors, description, used = vectors_for([(Path("."), paths)], args, flip, batch, self.quiet,
                                                          {p: images[p] for p in paths if p in images})
            known.update({d: vectors[p] for d, p in todo.items()})
            self.described[model.name] = (description, used)
        return {p: known[d] for p, d in digests.items()}, *self.described[model.name]


def _measure(model: SuiteModel, suite_set: SuiteSet, benches: list, embeddings: _Embeddings, key: str) -> dict:
    """One model on one set, every scenario: the result file's content (figures, and each pair's
    score, same flag and fold, so that other FARs or conventions are scored without embedding)."""
    from alob_eval.benchmarks import evaluate_benchmarks, without_missing_images

    start = time.perf_counter()
    if model.kind != "embeddings":  # pairs naming missing images are dropped and counted
        benches = [without_missing_images(b)[0] for b in benches]
    vectors, description, used = embeddings.vectors(model, benches)
    options = embeddings.options
    scoring = {"fars": list(options["fars"]), "tar_convention": options["tar_convention"]}
    results, curves = evaluate_benchmarks(benches, vectors, tuple(scoring["fars"]), scoring["tar_convention"])
    pairs = {b.name.split("/", 1)[1]: {"score": curves[b.name][0].tolist(), "same": curves[b.name][1].tolist(),
                                       "fold": b.pairs.fold.astype(int).tolist()} for b in benches}
    return {"key": key, "model": model.name, "description": description, "backend": used, "set": suite_set.name,
            "seconds": round(time.perf_counter() - start, 1), "scored": scoring,
            "scenarios": {name.split("/", 1)[1]: r for name, r in results.items()}, "pairs": pairs}


def _build_all(sets: list[SuiteSet], scens: list[Scenario], out: Path, seed: int, workers: int,
               quiet: bool) -> tuple[dict[str, dict[str, Path]], dict[str, dict], dict[str, str]]:
    """Every set's versions, built or reused: their folders, settings and a line on each."""
    import json

    folders: dict[str, dict[str, Path]] = {}
    settings: dict[str, dict] = {}
    notes: dict[str, str] = {}
    for suite_set in sets:
        folders[suite_set.name] = {}
        for scenario in scens[1:]:
            folder, done = ensure_built(suite_set, scenario, out, seed, workers, not quiet)
            folders[suite_set.name][scenario.name] = folder
            record = json.loads((folder.parent / f"{scenario.name}.json").read_text())
            settings[f"{suite_set.name}/{scenario.name}"] = record["settings"]
            dataset = json.loads((folder / "dataset.json").read_text())
            coverage = dataset.get("coverage", {}).get("mean")
            notes[f"{suite_set.name}/{scenario.name}"] = (
                f"occgen build: {dataset.get('counts', {}).get('occluded', '?')} images altered"
                + (f", mean coverage {100 * coverage:.1f} %" if coverage is not None else ""))
            click.echo(f"{suite_set.name} {scenario.name}: {done} ({folder})", err=True)
    return folders, settings, notes


def _check_inputs(sets: list[SuiteSet], models: list[SuiteModel], model_options: dict) -> None:
    """Fail before any work: every set's pairs must read, every ONNX model must load."""
    from alob_eval.onnx_models import open_onnx_model

    for suite_set in sets:
        try:
            suite_set.clean()
        except UserError as err:
            raise SuiteError(f"set {suite_set.name}: {err}") from None
    conventions = {k[len("onnx_"):]: v for k, v in model_options.items() if k.startswith("onnx_")}
    for model in models:
        if model.kind == "onnx":
            open_onnx_model(model.value, **conventions)


def run_suite(sets: list[SuiteSet], models: list[SuiteModel], scens: list[Scenario],
              out: Path, options: dict, build: dict) -> tuple[dict, dict]:
    """Check the inputs, build, then measure every model × set not already finished; returns the
    results by (set, model) and the report's metadata."""
    _check_inputs(sets, models, options["model"])
    folders, settings, notes = _build_all(sets, scens, out, build["seed"], build["workers"], options["quiet"])
    scoring = {"fars": list(options["fars"]), "tar_convention": options["tar_convention"]}
    embeddings = _Embeddings(options, options["quiet"])
    results, total, step = {}, len(sets) * len(models), 0
    for suite_set in sets:
        benches = None
        built = {name: settings[f"{suite_set.name}/{name}"] for name in folders[suite_set.name]}
        for model in models:
            step += 1
            path = result_path(out, suite_set, model)
            key = result_key(model, suite_set, built, {"flip": options["flip"], **model.key_options(options["model"])})
            result = load_result(path, key)
            if result is not None and result["scored"] != scoring:  # other FARs or convention: scored again
                result = rescore(result, scoring)
                write_json_atomic(path, result)
            if result is None:
                click.echo(f"[{step}/{total}] {model.name} on {suite_set.name} ({len(scens)} scenarios)", err=True)
                benches = benches or scenario_benchmarks(suite_set, folders[suite_set.name])
                result = _measure(model, suite_set, benches, embeddings, key)
                write_json_atomic(path, result)
                click.echo(f"[{step}/{total}] {model.name} on {suite_set.name}: done in {result['seconds']} s", err=True)
            else:
                click.echo(f"[{step}/{total}] {model.name} on {suite_set.name}: finished before, kept", err=True)
            results[(suite_set.name, model.name)] = result
    meta = {"command": sys.argv, "options": {"flip": options["flip"], **scoring},
            "sets": {s.name: {"path": str(s.path), "pairs": str(s.pairs) if s.pairs else None} for s in sets},
            "scenarios": notes, "builds": settings,
            "models": {m.name: {"kind": m.kind, "value": m.value,
                                "description": results[(sets[0].name, m.name)]["description"],
                                "backend": results[(sets[0].name, m.name)]["backend"]} for m in models}}
    return results, meta


def _report(out: Path, results: dict, meta: dict, sets: list[SuiteSet], scens: list[Scenario],
            models: list[SuiteModel], compare_to: str | None, fars: tuple[float, ...]) -> None:
    from alob_eval.suite_report import paired_differences, suite_table, write_suite_report

    names = [m.name for m in models]
    table = suite_table(results, [s.name for s in sets], [s.name for s in scens], names, fars)
    versus = compare_to or names[0]
    diffs = paired_differences(results, [s.name for s in sets], [s.name for s in scens], names, versus, fars)
    write_suite_report(out, table, diffs, meta, names, fars)
    click.echo((out / "suite.md").read_text())
    click.echo(f"report: {out / 'suite.md'} ({len(table)} rows: {len(sets)} sets x {len(scens)} scenarios x "
               f"{len(models)} models)")


def _number_list(low: float, high: float | None):
    """A click callback: ``--factor 2.0,3.0`` as floats in (low, high), in the one list syntax."""

    def parse(ctx, param, value: str | None) -> tuple[float, ...]:
        if value is None:
            return ()
        try:
            numbers = tuple(parse_list(value, float))
        except ValueError as err:
            raise click.BadParameter(str(err)) from None
        if any(n <= low or (high is not None and n >= high) for n in numbers):
            raise click.BadParameter(f"{value}: each value must lie above {low:g}"
                                     + (f" and below {high:g}" if high is not None else ""))
        return numbers

    return parse


def _workers(value: int | None) -> int:
    from occgen.build_config import default_workers

    return default_workers() if value is None else value


@click.command("suite", help=SUITE_HELP, context_settings={"max_content_width": 100})
@version_option
@click.option("--set", "set_specs", multiple=True, required=True, metavar="FILE.bin|DIR|NAME=DIR@pairs.txt",
              help="A verification set; repeat for several. A folder is searched for .bin files.")
@click.option("--checkpoint", "checkpoints", multiple=True, metavar="[NAME=]RUN",
              help="A run of alob-train (best.pt, else last.pt) or a .pt file; repeat for several.")
@click.option("--which", default="best", show_default=True,
              help="Checkpoint of every --checkpoint run: best (falls back to last), last or epoch_NNN.")
@click.option("--backend", type=click.Choice(BACKENDS), default="auto", show_default=True,
              help="How --checkpoint models run (as alob-eval --backend).")
@model_device_option
@click.option("--onnx", "onnx_files", multiple=True, metavar="[NAME=]MODEL.onnx",
              help="An ONNX face model; its convention from the options below, its metadata or insightface's "
                   "defaults (as alob-eval --onnx); repeat for several.")
@onnx_convention_options
@click.option("--reference", "references", multiple=True, metavar="[NAME=]" + "|".join(REFERENCE_MODELS),
              help="A published reference model (optional [reference] extra); repeat for several.")
@click.option("--embeddings", "embedding_files", multiple=True, metavar="[NAME=]FILE.npz",
              help="Precomputed embeddings naming every image of every version (absolute paths); repeat for "
                   "several.")
@click.option("--factor", "factors", default="2.0,3.0", show_default=True, callback=_number_list(0, None),
              help="Occluded versions the FROM way (rectangles) at these factors, a list.")
@click.option("--ratio", "ratios", default=None, callback=_number_list(0, 1),
              help="Occluded versions at these mean coverages (alpha occluders), a list such as 0.2,0.4, "
                   "instead of --factor's.")
@click.option("--masked/--no-masked", default=True, show_default=True, help="Also a face-masked version.")
@click.option("--seed", type=int, default=0, show_default=True, help="occgen's seed for every version.")
@click.option("--workers", type=click.IntRange(0, None), default=None,
              help="occgen build processes; 0 = all in this process [default: the number of CPU cores]. Never "
                   "changes the versions.")
@click.option("--compare-to", default=None, metavar="NAME",
              help="Paired differences are model - this model [default: the first model].")
@click.option("--flip", is_flag=True, help="Flip-test fusion: embedding = f(image) + f(mirrored image).")
@far_option
@click.option("--tar-convention", type=click.Choice(TAR_CONVENTIONS), default="roc", show_default=True,
              help="How TAR@FAR is computed (as alob-eval).")
@click.option("--batch-size", type=click.IntRange(1, None), default=64, show_default=True, help=BATCH_HELP)
@click.option("--out", type=click.Path(file_okay=False), default="suite-report", show_default=True,
              help="Output folder for the report; the built versions (sets/) and finished results (results/) "
                   "are kept here.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def suite_command(set_specs, checkpoints, which, backend, device, onnx_files, references, embedding_files, factors,
                  ratios, masked, seed, workers, compare_to, flip, fars, tar_convention, batch_size, out, quiet,
                  **onnx_args) -> None:
    bad = [r for r in references if r.partition("=")[2 if "=" in r else 0] not in REFERENCE_MODELS]
    if bad:
        raise click.BadParameter(f"{bad[0]}: the reference models are {', '.join(REFERENCE_MODELS)}",
                                 param_hint="--reference")
    try:
        sets = parse_sets(set_specs)
        models = parse_models({"checkpoint": checkpoints, "onnx": onnx_files, "reference": references,
                               "embeddings": embedding_files})
        if compare_to is not None and compare_to not in [m.name for m in models]:
            raise SuiteError(f"--compare-to {compare_to}: no model of that name")
        scens = scenarios(factors, ratios, masked)
        options = {"flip": flip, "fars": list(fars), "tar_convention": tar_convention, "batch_size": batch_size,
                   "quiet": quiet, "model": {"which": which, "backend": backend, "device": device, **onnx_args}}
        results, meta = run_suite(sets, models, scens, Path(out), options, {"seed": seed, "workers": _workers(workers)})
        _report(Path(out), results, meta, sets, scens, models, compare_to, tuple(fars))
    except UserError as err:
        raise click.ClickException(str(err)) from None
    except KeyboardInterrupt:
        click.echo(f"\ninterrupted: finished builds and model x set results are kept in {out}; rerun the same "
                   "command to resume", err=True)
        sys.exit(130)
