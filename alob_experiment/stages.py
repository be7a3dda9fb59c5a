"""The stages of the LFW fold experiment: the project command each one runs (``align-faces``,
``occgen build``, ``alob-train``, ``alob-eval``), and running them resumably.

A finished stage leaves ``WORK/stages/<name>.json`` (its command and time) and is skipped on a
rerun with the same command; an interrupted one is resumed by the command itself. Data flows
one way: align → occgen → train → eval."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from alob_common.atomic import write_json_atomic
from alob_experiment.config import (
    CLEAN_DATA,
    NO_TRAINING,
    SCENARIOS,
    TRAINING_CONFIGS,
    PipelineError,
    Settings,
    Size,
    has_trimmer,
)
from alob_experiment.lfw import Split


def command(name: str) -> str:
    """Path of one of the project's console scripts: beside this Python, else on PATH."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.is_file() else shutil.which(name)
    if found is None:
        raise PipelineError(f"command {name!r} not found: install the project (pip install -e .) in this environment")
    return found


@dataclass
class Stage:
    """One step of the pipeline and what became of it."""

    name: str
    argv: list[str]
    resume: list[str] | None = None  # the command to run instead when ``resume_if`` exists
    resume_if: str | None = None
    status: str = "pending"  # done, skipped (done before), failed
    seconds: float = 0.0


def _aligned(settings: Settings) -> Path:
    return Path(settings.aligned) if settings.aligned else Path(settings.work) / "aligned"


def _device(settings: Settings) -> list[str]:
    """``--device`` for the stages that run a model, when the pipeline was given one (else each
    command's own default, auto)."""
    return [] if settings.device == "auto" else ["--device", settings.device]


VALIDATION_SCENARIO = ["--factor", "2.0", "--blend", "rect"]  # held-out fold's pairs, image 2 occluded


def _data_stages(settings: Settings, size: Size) -> list[Stage]:
    """Alignment (unless an aligned LFW is reused), the occluded/masked test sets, the validation
    set (with ``--until-plateau``), the training set."""
    work, seed, workers = Path(settings.work), str(settings.seed), str(settings.workers)
    stages = []
    if settings.aligned is None:
        stages.append(Stage("align", [command("align-faces"), "--data", str(work / "lfw-subset"),
                                      "--out", str(_aligned(settings)), "--workers", workers, *_device(settings)]))
    for bench, (_, options) in SCENARIOS.items():
        if options is not None:
            stages.append(Stage(f"build-{bench}", [
                command("occgen"), "build", "--source", "lfw", "--data", str(work / "test-src"),
                "--pairs", str(work / "split" / "test_pairs.txt"), "--out", str(work / "data" / bench),
                *options, "--seed", seed, "--workers", workers]))
    if settings.patience:
        stages.append(Stage("build-val", [
            command("occgen"), "build", "--source", "lfw", "--data", str(work / "val-src"),
            "--pairs", str(work / "split" / "val_pairs.txt"), "--out", str(work / "data" / "val"),
            *VALIDATION_SCENARIO, "--seed", seed, "--workers", workers]))
    stages.append(Stage("build-train", [
        command("occgen"), "build", "--source", "folder", "--data", str(work / "train-src"),
        "--out", str(work / "data" / "train"), "--kind", "mixed", "--mask-fraction", f"{settings.mask_fraction:g}",
        "--clean-ratio", "1:2", "--copies", str(size.copies), "--seed", seed, "--workers", workers]))
    return stages


STEP_BUDGET_EPOCHS = 1000  # with a step budget: an epoch cap that no fine-tuning run reaches


def _train_stage(settings: Settings, size: Size, variant: str) -> Stage:
    """Training of one configuration (:data:`TRAINING_CONFIGS`); an interrupted run resumes from
    its last checkpoint. With ``--until-plateau`` it validates on the held-out fold every epoch
    and stops on the plateau rule, ``--epochs`` being the cap.

    A fine-tuned comparison (``--init``) with ``--max-steps`` gives every configuration that step
    budget whatever its data (the clean-only training set is a third of the mixed one) at a constant
    learning rate: the epochs are no cap then, and no milestone falls inside the run."""
    work, run = Path(settings.work), Path(settings.work) / "runs" / variant
    budget = ["--epochs", str(size.epochs)] + (["--max-steps", str(settings.max_steps)] if settings.max_steps else [])
    milestones = str(max(1, size.epochs // 2))
    if settings.init and settings.max_steps:
        budget, milestones = ["--epochs", str(STEP_BUDGET_EPOCHS), "--max-steps", str(settings.max_steps)], "none"
    if settings.patience:
        budget += ["--val", str(work / "data" / "val"), "--patience", str(settings.patience)]
    if variant in NO_TRAINING:
        budget = ["--epochs", "1", "--max-steps", "0"]
    data = work / "train-src" if variant in CLEAN_DATA else work / "data" / "train"
    init = ["--init", settings.init] if settings.init else []
    argv = [command("alob-train"), "--data", str(data), "--out", str(run),
            "--backbone", settings.backbone, *init, *TRAINING_CONFIGS[variant], *budget,
            "--milestones", milestones, "--batch-size", str(size.batch_size),
            "--seed", str(settings.seed), "--workers", str(settings.train_workers), "--no-tensorboard", *_device(settings)]
    resume = [command("alob-train"), "--out", str(run), "--resume", *budget, "--workers", str(settings.train_workers),
              *_device(settings)]
    return Stage(f"train-{variant}", argv, resume, str(run / "checkpoints" / "last.pt"))


def _eval_stage(settings: Settings, variant: str) -> Stage:
    """Pair verification of one variant on every scenario."""
    work = Path(settings.work)
    test_pairs = work / "split" / "test_pairs.txt"
    which = "best" if settings.patience else "last"  # on a plateau run, the epoch validation chose
    argv = [command("alob-eval"), "--checkpoint", str(work / "runs" / variant), "--which", which,
            "--far", "1e-3,1e-2", "--out", str(work / "reports" / variant), *_device(settings)]
    for bench in SCENARIOS:
        where = f"{_aligned(settings)}@{test_pairs}" if bench == "lfw" else str(work / "data" / bench)
        argv += ["--bench", f"{bench}={where}"]
    return Stage(f"eval-{variant}", argv)


def _diagnose_stage(settings: Settings, variant: str) -> Stage:
    """The mechanism on every test scenario (``alob-eval diagnose``) for a variant with a Trimmer."""
    work = Path(settings.work)
    argv = [command("alob-eval"), "diagnose", "--checkpoint", str(work / "runs" / variant),
            "--which", "best" if settings.patience else "last", "--out", str(work / "reports" / f"{variant}-diagnostics")]
    for bench in SCENARIOS:
        where = f"{_aligned(settings)}@{work / 'split' / 'test_pairs.txt'}" if bench == "lfw" else str(work / "data" / bench)
        argv += ["--bench", f"{bench}={where}"]
    return Stage(f"diagnose-{variant}", argv)


def _picture_stages(settings: Settings, split: Split, size: Size) -> list[Stage]:
    """Grad-CAM of the first variant with a Trimmer, and a t-SNE of five test people."""
    work, stages = Path(settings.work), []
    with_trimmer = [v for v in settings.variants if has_trimmer(v)]
    if with_trimmer:
        argv = [command("alob-eval"), "cam", "--checkpoint", str(work / "runs" / with_trimmer[0]),
                "--data", str(work / "data" / "lfw-occ-3.0"), "--out", str(work / "reports" / "cam"), *_device(settings)]
        limit = settings.cam_limit or size.cam_images
        stages.append(Stage("cam", argv + (["--limit", str(limit)] if limit else [])))
    counts = sorted((split.images[p] for p in split.test_people), reverse=True)
    per_identity = min(20, counts[4]) if len(counts) >= 5 else 0
    if per_identity >= 2:  # t-SNE of 5 test people (unseen in training) × up to 20 images
        argv = [command("alob-eval"), "tsne", "--data", str(work / "test-src"), "--identities", "5",
                "--per-identity", str(per_identity), "--out-file", str(work / "reports" / "tsne.png"),
                "--seed", str(settings.seed), *_device(settings)]
        for variant in settings.variants:
            argv += ["--checkpoint", str(work / "runs" / variant)]
        stages.append(Stage("tsne", argv))
    return stages


def plan_stages(settings: Settings, split: Split, size: Size) -> list[Stage]:
    """The commands of a run, in order."""
    with_trimmer = [v for v in settings.variants if has_trimmer(v)]
    return [*_data_stages(settings, size),
            *(_train_stage(settings, size, v) for v in settings.variants),
            *(_eval_stage(settings, v) for v in settings.variants),
            *(_diagnose_stage(settings, v) for v in with_trimmer if settings.init),
            *(_picture_stages(settings, split, size) if settings.pictures else [])]


def run_stage(stage: Stage, work: Path, log: Callable[[str], None] = print) -> Stage:
    """Run a stage's command unless ``WORK/stages/<name>.json`` shows it finished with the same
    command; its output streams to the terminal and to ``WORK/logs/<name>.log``."""
    marker = work / "stages" / f"{stage.name}.json"
    if marker.is_file():
        before = json.loads(marker.read_text())
        if before.get("argv") == stage.argv:
            stage.status, stage.seconds = "skipped", before.get("seconds", 0.0)
            log(f"  {stage.name}: done before ({stage.seconds:.0f} s), skipped")
            return stage
    logs = work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    argv = stage.resume if stage.resume and stage.resume_if and Path(stage.resume_if).exists() else stage.argv
    log(f"  {stage.name}: {' '.join([Path(argv[0]).name, *argv[1:]])}")
    start = time.perf_counter()
    code = _stream(argv, logs / f"{stage.name}.log")
    stage.seconds = time.perf_counter() - start
    if code != 0:
        stage.status = "failed"
        raise PipelineError(f"stage {stage.name} failed (exit {code}); its output is in {logs / (stage.name + '.log')}")
    stage.status = "done"
    write_json_atomic(marker, {"argv": stage.argv, "seconds": stage.seconds})
    return stage


def _stream(argv: list[str], log_file: Path) -> int:
    """Run ``argv``, copying its output to the terminal and appending it to ``log_file``. On
    Ctrl-C (which the command receives too) wait for the command to save its state and stop."""
    with open(log_file, "a") as out:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, bufsize=0)
        assert proc.stdout is not None
        try:
            for chunk in iter(lambda: proc.stdout.read(4096), b""):
                sys.stdout.buffer.write(chunk)
                sys.stdout.flush()
                out.write(chunk.decode(errors="replace"))
        except KeyboardInterrupt:
            out.write(proc.communicate()[0].decode(errors="replace"))
            raise
        return proc.wait()
