"""The LFW fold experiment end to end: find LFW, split it by View-2 folds, align, build the
occluded/masked test sets and the training set, train each variant, evaluate every scenario,
and write one report.

Each stage runs the project's own command (``align-faces``, ``occgen``, ``alob-train``,
``alob-eval``) as a subprocess (:mod:`alob_experiment.stages`), so the stages meet only through
their on-disk formats and every stage can be rerun, inspected or replaced alone.

Protocol: LFW's ten View-2 folds are identity-disjoint. The training set is every image of the
people in the training folds (default 0–4, numbered from 0) with clean:occluded samples 1:2 (occluders and
masks); the test pairs are those of the other folds, scored in four scenarios: Face–Face (both
clean), Face–Occlusion at FROM's factors 2.0 and 3.0 and Face–Mask (image 2 occluded/masked).
"""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path
from typing import Callable

from alob_common.atomic import write_json_atomic, write_text_atomic
from alob_experiment.config import PipelineError, Settings, check_work
from alob_experiment.comparison import write_comparison_report
from alob_experiment.experiment_report import write_experiment_report
from alob_experiment.lfw import Split, link_people, plan_split, write_test_pairs
from alob_experiment.stages import Stage, command, plan_stages, run_stage


def prepare(settings: Settings, split: Split) -> None:
    """Write the split and the symlink folders the stages read."""
    work = Path(settings.work)
    write_test_pairs(split, work / "split" / "test_pairs.txt")
    if split.val_fold is not None:
        write_test_pairs(split, work / "split" / "val_pairs.txt", validation=True)
    write_text_atomic(work / "split" / "train_people.txt", "\n".join(split.train_people) + "\n")
    write_json_atomic(work / "split" / "split.json", asdict(split))
    if settings.aligned is None:
        everyone = sorted({*split.train_people, *split.test_people, *split.val_people})
        link_people(Path(settings.lfw_images), everyone, work / "lfw-subset")


def link_aligned(settings: Settings, split: Split) -> None:
    """Training and test views of the aligned folder (after alignment)."""
    work = Path(settings.work)
    aligned = Path(settings.aligned) if settings.aligned else work / "aligned"
    missing = [p for p in (*split.train_people, *split.test_people, *split.val_people) if not (aligned / p).is_dir()]
    if missing:
        raise PipelineError(f"{aligned} has no folder for {len(missing)} people (e.g. {missing[0]}): "
                            "is it an aligned LFW?")
    link_people(aligned, split.train_people, work / "train-src", aligned / "manifest.csv")
    link_people(aligned, split.test_people, work / "test-src", aligned / "manifest.csv")
    if split.val_people:
        link_people(aligned, split.val_people, work / "val-src", aligned / "manifest.csv")


def run_pipeline(settings: Settings, log: Callable[[str], None] = print) -> Path:
    """Run (or resume) the experiment and write its report; returns the report's path. Several
    seeds or both halves make one single run each (:meth:`Settings.runs`) on one aligned LFW,
    then a report of the paired differences between each configuration and the baseline."""
    runs = settings.runs()
    if len(runs) == 1:
        return run_single(runs[0], log)
    check_work(settings)
    write_json_atomic(Path(settings.work) / "pipeline.json", asdict(settings))
    aligned = settings.aligned or str(align_all(settings, log))
    for number, run in enumerate(runs, start=1):
        log(f"=== run {number}/{len(runs)}: train folds {run.train_folds[0]}-{run.train_folds[-1]}, seed {run.seed} "
            f"({run.work})")
        run_single(replace(run, aligned=aligned), log)
    return write_comparison_report(settings, runs)


def align_all(settings: Settings, log: Callable[[str], None]) -> Path:
    """Align the whole LFW once into ``WORK/aligned`` for every run of a multi-run experiment."""
    work = Path(settings.work)
    stage = Stage("align", [command("align-faces"), settings.lfw_images, str(work / "aligned"),
                            "--workers", str(settings.workers)])
    log("[align] every LFW image, once for all runs")
    run_stage(stage, work, log)
    return work / "aligned"


def run_single(settings: Settings, log: Callable[[str], None] = print) -> Path:
    """Run (or resume) every stage of one run (one half, one seed) and write its report."""
    work = Path(settings.work)
    size = settings.resolved_size()
    split = plan_split(Path(settings.pairs_txt), Path(settings.lfw_images), list(settings.train_folds), size,
                       hold_out=bool(settings.patience))
    log(f"split: {len(split.train_people)} training people ({sum(split.images[p] for p in split.train_people)} "
        f"images, folds {split.train_folds}); {len(split.test_lines)} test pairs "
        f"({len(split.test_people)} people, folds {split.test_folds})")
    check_work(settings)
    write_json_atomic(work / "pipeline.json", asdict(settings))
    prepare(settings, split)
    stages = plan_stages(settings, split, size)
    linked = False
    for number, stage in enumerate(stages, start=1):
        if stage.name != "align" and not linked:  # once, when the aligned folder is complete
            link_aligned(settings, split)
            linked = True
        log(f"[{number}/{len(stages)}] {stage.name}")
        run_stage(stage, work, log)
    return write_experiment_report(settings, split, stages)
