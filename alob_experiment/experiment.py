"""The LFW fold experiment end to end: find LFW, split it by View-2 folds, align, build the
occluded/masked test sets and the training set, train each variant, evaluate every scenario,
and write one report.

Each stage runs the project's own command (``align-faces``, ``occgen``, ``alob-train``,
``alob-eval``) as a subprocess, so the stages meet only through their documented on-disk formats
and every stage can be rerun, inspected or replaced alone. A finished stage leaves
``WORK/stages/<name>.json`` (its command and time) and is skipped on a rerun with the same
command; an interrupted one is resumed by the command itself.

Protocol: LFW's ten View-2 folds are identity-disjoint. The training set is every image of the
people in the training folds (default 1–5) with clean:occluded samples 1:2 (occluders and
masks); the test pairs are those of the other folds, scored in four scenarios: Face–Face (both
clean), Face–Occlusion at FROM's factors 2.0 and 3.0 and Face–Mask (image 2 occluded/masked).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import pandas as pd

from alob_common.errors import UserError
from alob_common.images import is_image_name
from alob_common.pairs import parse_pairs_txt

LFW_URL = "http://vis-www.cs.umass.edu/lfw/"
LFW_FILES = {  # file → md5, as published with LFW (and checked by torchvision's LFW dataset)
    "lfw-deepfunneled.tgz": "68331da3eb755a505a502b5aacb3c201",
    "pairs.txt": "9f1ba174e4e1c508ff7cdf10ac338a7d",
}
SCENARIOS = {  # benchmark name → (scenario, occgen build options)
    "lfw": ("Face–Face", None),
    "lfw-occ-2.0": ("Face–Occlusion", ["--factor", "2.0", "--blend", "rect"]),
    "lfw-occ-3.0": ("Face–Occlusion", ["--factor", "3.0", "--blend", "rect"]),
    "lfw-masked": ("Face–Mask", ["--kind", "mask"]),
}


class PipelineError(UserError):
    """A problem the user can fix (missing data, a failed stage); the message says what."""


@dataclass(frozen=True)
class Size:
    """How much of LFW and how much training one run uses."""

    name: str
    train_people: int | None  # None: every person of the training folds; else the N with most images
    pairs_per_fold: int | None  # matched (and as many mismatched) test pairs per fold; None: all
    copies: int  # training samples made from each training image (clean:occluded 1:2 overall)
    epochs: int  # the learning rates drop ×0.1 half-way, as the paper's at epoch 10 of 21
    cam_images: int | None  # occluded test images for the CAM overlap numbers; None: all
    batch_size: int = 64


RUN_SIZES = {
    "quick": Size("quick", train_people=60, pairs_per_fold=60, copies=1, epochs=1, cam_images=300),
    "full": Size("full", train_people=None, pairs_per_fold=None, copies=3, epochs=2, cam_images=None),
}


@dataclass
class Split:
    """Training people and test pairs chosen from ``pairs.txt``."""

    train_folds: list[int]
    test_folds: list[int]
    train_people: list[str]
    test_people: list[str]
    test_lines: list[str]  # pairs.txt lines of the chosen test pairs, fold by fold
    pairs_per_fold: int
    images: dict[str, int] = field(default_factory=dict)  # person → image count, for the chosen people


def lfw_layout(folder: Path) -> tuple[Path, Path] | None:
    """(image folder, pairs.txt) of an LFW folder, or None. Accepts a folder holding
    ``lfw-deepfunneled/`` (or ``lfw/``) and ``pairs.txt``, or an image folder with ``pairs.txt``
    inside or beside it."""
    for images in (folder / "lfw-deepfunneled", folder / "lfw", folder):
        for pairs in (folder / "pairs.txt", images / "pairs.txt", images.parent / "pairs.txt"):
            if images.is_dir() and pairs.is_file() and any(p.is_dir() for p in images.iterdir()):
                return images, pairs
    return None


def _online(host: str = "vis-www.cs.umass.edu", timeout: float = 5.0) -> bool:
    try:
        with socket.create_connection((host, 80), timeout=timeout):
            return True
    except OSError:
        return False


def download_lfw(dest: Path) -> tuple[Path, Path]:
    """Download the deep-funneled LFW and pairs.txt from LFW's public site into ``dest``,
    checking both MD5 sums (torchvision's download helpers); ``dest/.complete`` marks a download
    that finished, so an interrupted one is redone rather than used."""
    from torchvision.datasets.utils import download_and_extract_archive, download_url

    dest.mkdir(parents=True, exist_ok=True)
    archive = "lfw-deepfunneled.tgz"
    try:
        download_and_extract_archive(LFW_URL + archive, str(dest), filename=archive, md5=LFW_FILES[archive],
                                     remove_finished=True)
        download_url(LFW_URL + "pairs.txt", str(dest), md5=LFW_FILES["pairs.txt"])
    except (OSError, RuntimeError) as err:
        raise PipelineError(f"downloading LFW from {LFW_URL} failed ({err}); fetch lfw-deepfunneled.tgz and "
                            "pairs.txt by hand and pass --lfw-dir") from None
    found = lfw_layout(dest)
    if found is None:
        raise PipelineError(f"the LFW download in {dest} does not have the expected layout")
    (dest / ".complete").touch()
    return found


def find_lfw(lfw_dir: str | Path | None, work: Path, download: bool = True) -> tuple[Path, Path]:
    """LFW from ``--lfw-dir``, else ``$ALOB_DATA/lfw``, else a previous download in
    ``WORK/lfw``, else downloaded (when the machine is online)."""
    if lfw_dir is not None:
        found = lfw_layout(Path(lfw_dir))
        if found is None:
            raise PipelineError(f"--lfw-dir {lfw_dir}: expected lfw-deepfunneled/ (identity folders) and pairs.txt there")
        return found
    env = [Path(os.environ["ALOB_DATA"]) / "lfw"] if os.environ.get("ALOB_DATA") else []
    for folder in env:
        if folder.is_dir() and (found := lfw_layout(folder)) is not None:
            return found
    if (work / "lfw" / ".complete").is_file() and (found := lfw_layout(work / "lfw")) is not None:
        return found
    where = " or ".join(str(c) for c in [*env, work / "lfw"])
    if download and _online():
        return download_lfw(work / "lfw")
    why = "downloading is off (--no-download)" if not download else "this machine is offline"
    raise PipelineError(f"LFW not found and {why}: put lfw-deepfunneled/ and pairs.txt in {where}, "
                        "or pass --lfw-dir DIR")


def _count_images(images: Path, person: str) -> int:
    folder = images / person
    return sum(1 for p in folder.iterdir() if is_image_name(p.name)) if folder.is_dir() else 0


def _people(pair) -> tuple[str, str]:
    return pair.stem1.split("/")[0], pair.stem2.split("/")[0]


def plan_split(pairs_txt: Path, images: Path, train_folds: list[int], size: Size) -> Split:
    """Choose the training people (of ``train_folds``, 1-based) and the test pairs (of the other
    folds). With ``size.train_people`` set, the people with most images are kept (ties by name);
    with ``size.pairs_per_fold`` set, the first N matched and N mismatched pairs of each test fold."""
    parsed = parse_pairs_txt(pairs_txt)
    if parsed.malformed:
        bad = parsed.malformed[0]
        raise PipelineError(f"{pairs_txt}:{bad['line']}: {bad['reason']}")
    folds = sorted({p.fold + 1 for p in parsed.pairs})
    if not set(train_folds) < set(folds):
        raise PipelineError(f"--train-folds {train_folds}: the pairs file has folds {folds[0]}..{folds[-1]}; "
                            "leave at least one for testing")
    test_folds = [k for k in folds if k not in train_folds]
    train = sorted({name for p in parsed.pairs if p.fold + 1 in train_folds for name in _people(p)})
    counts = {name: _count_images(images, name) for name in train}
    train = [n for n in train if counts[n] > 0]
    if size.train_people is not None:
        train = sorted(train, key=lambda n: (-counts[n], n))[: size.train_people]
    available = parsed.per_fold or min(Counter(p.fold for p in parsed.pairs).values()) // 2
    per_fold = min(size.pairs_per_fold or available, available)  # a small pairs file caps --quick's count
    lines, test = [], set()
    for fold in test_folds:
        chosen = []
        for same in (True, False):
            kind = [p for p in parsed.pairs if p.fold + 1 == fold and p.same == same]
            chosen += kind[:per_fold]
        if len(chosen) != 2 * per_fold:
            raise PipelineError(f"fold {fold} of {pairs_txt} has fewer than {per_fold} matched and mismatched pairs")
        lines += [p.text.strip() for p in chosen]
        test.update(name for p in chosen for name in _people(p))
    overlap = set(train) & test
    if overlap:
        raise PipelineError(f"training and test people overlap ({len(overlap)}, e.g. {min(overlap)}): "
                            "the folds of this pairs file are not identity-disjoint")
    images_of = {n: counts.get(n) or _count_images(images, n) for n in [*train, *sorted(test)]}
    return Split(train_folds, test_folds, train, sorted(test), lines, per_fold, images_of)


def write_test_pairs(split: Split, path: Path) -> None:
    """The test pairs as a View-2 style file (header ``folds n``), readable by every tool."""
    text = f"{len(split.test_folds)} {split.pairs_per_fold}\n" + "\n".join(split.test_lines) + "\n"
    _write_text(path, text)


def link_people(src: Path, people: list[str], dest: Path, manifest: Path | None = None) -> Path:
    """A folder of symlinks to ``src/<person>`` for each person, so a command sees just these
    people without copying images; with an aligned folder's ``manifest``, its rows for these
    people become the view's own ``manifest.csv``. Rebuilt from scratch each time."""
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for person in people:
        (tmp / person).symlink_to((src / person).resolve(), target_is_directory=True)
    if manifest is not None and manifest.is_file():
        table = pd.read_csv(manifest, dtype=str, keep_default_na=False)
        person = table["source" if "source" in table.columns else "path"].str.split("/").str[0]
        table[person.isin(set(people))].to_csv(tmp / "manifest.csv", index=False)
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    return dest


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


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


def run_stage(stage: Stage, work: Path, log=print) -> Stage:
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
    with open(logs / f"{stage.name}.log", "a") as out:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, bufsize=0)
        assert proc.stdout is not None
        for chunk in iter(lambda: proc.stdout.read(4096), b""):
            sys.stdout.buffer.write(chunk)
            sys.stdout.flush()
            out.write(chunk.decode(errors="replace"))
        code = proc.wait()
    stage.seconds = time.perf_counter() - start
    if code != 0:
        stage.status = "failed"
        raise PipelineError(f"stage {stage.name} failed (exit {code}); its output is in {logs / (stage.name + '.log')}")
    stage.status = "done"
    _write_text(marker, json.dumps({"argv": stage.argv, "seconds": stage.seconds}, indent=2))
    return stage


@dataclass
class Settings:
    """Everything a pipeline run depends on; stored in ``WORK/pipeline.json``."""

    work: str
    size: str
    lfw_images: str
    pairs_txt: str
    aligned: str | None = None  # an existing aligned LFW to reuse instead of aligning
    variants: tuple[str, ...] = ("baseline", "alob")
    backbone: str = "resnet18"
    train_folds: tuple[int, ...] = (1, 2, 3, 4, 5)
    mask_fraction: float = 0.5
    seed: int = 0
    workers: int = 2
    train_people: int | None = None  # overrides of the size: 0 = every training person
    pairs_per_fold: int | None = None
    epochs: int | None = None
    batch_size: int | None = None
    max_steps: int | None = None
    cam_limit: int | None = None

    def resolved_size(self) -> Size:
        """The named size with this run's overrides applied."""
        size = RUN_SIZES[self.size]
        if self.train_people is not None:
            size = replace(size, train_people=self.train_people or None)
        if self.pairs_per_fold is not None:
            size = replace(size, pairs_per_fold=self.pairs_per_fold)
        if self.epochs is not None:
            size = replace(size, epochs=self.epochs)
        if self.batch_size is not None:
            size = replace(size, batch_size=self.batch_size)
        return size


# Settings that decide what data is built; a WORK folder keeps them for life.
DATA_SETTINGS = ("size", "lfw_images", "pairs_txt", "aligned", "train_folds", "train_people", "pairs_per_fold",
                 "mask_fraction", "seed", "backbone")


def check_work(settings: Settings) -> None:
    """Refuse to continue in a WORK folder made with other data settings (its files would mix)."""
    saved = Path(settings.work) / "pipeline.json"
    if not saved.is_file():
        return
    before, now = json.loads(saved.read_text()), json.loads(json.dumps(asdict(settings)))
    changed = [k for k in DATA_SETTINGS if before.get(k) != now.get(k)]
    if changed:
        raise PipelineError(f"{settings.work} was made with other settings ({', '.join(changed)}: "
                            f"{before.get(changed[0])!r} there, {now.get(changed[0])!r} now); use another --work")


def plan_stages(settings: Settings, split: Split, size: Size) -> list[Stage]:
    """The commands of a run, in order (data flows one way: align → occgen → train → eval)."""
    work = Path(settings.work)
    seed = str(settings.seed)
    aligned = Path(settings.aligned) if settings.aligned else work / "aligned"
    stages = []
    if settings.aligned is None:
        stages.append(Stage("align", [command("align-faces"), str(work / "lfw-subset"), str(aligned),
                                      "--workers", str(settings.workers)]))
    test_pairs = work / "split" / "test_pairs.txt"
    for bench, (_, options) in SCENARIOS.items():
        if options is None:
            continue
        stages.append(Stage(f"build-{bench}", [command("occgen"), "build", "--source", "lfw", "--src",
                                               str(work / "test-src"), "--pairs", str(test_pairs), "--out",
                                               str(work / "data" / bench), *options, "--seed", seed,
                                               "--workers", str(settings.workers)]))
    stages.append(Stage("build-train", [command("occgen"), "build", "--source", "folder", "--src",
                                        str(work / "train-src"), "--out", str(work / "data" / "train"),
                                        "--kind", "mixed", "--mask-fraction", f"{settings.mask_fraction:g}",
                                        "--clean-ratio", "1:2", "--copies", str(size.copies), "--seed", seed,
                                        "--workers", str(settings.workers)]))
    epochs = size.epochs
    for variant in settings.variants:
        run = work / "runs" / variant
        budget = ["--epochs", str(epochs)] + (["--max-steps", str(settings.max_steps)] if settings.max_steps else [])
        argv = [command("alob-train"), "--data", str(work / "data" / "train"), "--out", str(run),
                "--backbone", settings.backbone, "--variant", variant, *budget,
                "--milestones", str(max(1, epochs // 2)), "--batch-size", str(size.batch_size), "--seed", seed, "--workers", "1", "--no-tensorboard"]
        resume = [command("alob-train"), "--out", str(run), "--resume", *budget, "--workers", "1"]
        stages.append(Stage(f"train-{variant}", argv, resume, str(run / "checkpoints" / "last.pt")))
    benches = [f"lfw={aligned}@{test_pairs}"] + [f"{b}={work / 'data' / b}" for b in SCENARIOS if b != "lfw"]
    for variant in settings.variants:
        argv = [command("alob-eval"), "--checkpoint", str(work / "runs" / variant), "--which", "last",
                "--far", "1e-3", "--far", "1e-2", "--out", str(work / "reports" / variant)]
        for b in benches:
            argv += ["--bench", b]
        stages.append(Stage(f"eval-{variant}", argv))
    with_trimmer = [v for v in settings.variants if v != "baseline"]
    if with_trimmer:
        argv = [command("alob-eval"), "cam", "--checkpoint", str(work / "runs" / with_trimmer[0]),
                "--data", str(work / "data" / "lfw-occ-3.0"), "--out", str(work / "reports" / "cam")]
        limit = settings.cam_limit or size.cam_images
        if limit:
            argv += ["--limit", str(limit)]
        stages.append(Stage("cam", argv))
    counts = sorted((split.images[p] for p in split.test_people), reverse=True)
    per_identity = min(20, counts[4]) if len(counts) >= 5 else 0
    if per_identity >= 2:  # t-SNE of 5 test people (unseen in training) × up to 20 images
        argv = [command("alob-eval"), "tsne", "--images", str(work / "test-src"), "--identities", "5",
                "--per-identity", str(per_identity), "--out", str(work / "reports" / "tsne.png"), "--seed", seed]
        for variant in settings.variants:
            argv += ["--checkpoint", str(work / "runs" / variant)]
        stages.append(Stage("tsne", argv))
    return stages


def prepare(settings: Settings, split: Split) -> None:
    """Write the split and the symlink folders the stages read."""
    work = Path(settings.work)
    images = Path(settings.lfw_images)
    write_test_pairs(split, work / "split" / "test_pairs.txt")
    _write_text(work / "split" / "train_people.txt", "\n".join(split.train_people) + "\n")
    _write_text(work / "split" / "split.json", json.dumps(asdict(split), indent=2))
    everyone = sorted({*split.train_people, *split.test_people})
    if settings.aligned is None:
        link_people(images, everyone, work / "lfw-subset")


def link_aligned(settings: Settings, split: Split) -> None:
    """Training and test views of the aligned folder (after alignment)."""
    work = Path(settings.work)
    aligned = Path(settings.aligned) if settings.aligned else work / "aligned"
    missing = [p for p in (*split.train_people, *split.test_people) if not (aligned / p).is_dir()]
    if missing:
        raise PipelineError(f"{aligned} has no folder for {len(missing)} people (e.g. {missing[0]}): "
                            "is it an aligned LFW?")
    link_people(aligned, split.train_people, work / "train-src", aligned / "manifest.csv")
    link_people(aligned, split.test_people, work / "test-src", aligned / "manifest.csv")


def _percent(value: float) -> str:
    return f"{100 * value:.2f}"


def _paired_difference(a: dict, b: dict) -> tuple[float, float] | None:
    """Mean and std over folds of b's fold accuracy minus a's (same folds, same pairs)."""
    fa, fb = a.get("fold_accuracies"), b.get("fold_accuracies")
    if not fa or not fb or len(fa) != len(fb):
        return None
    diffs = [y - x for x, y in zip(fa, fb)]
    mean = sum(diffs) / len(diffs)
    return mean, (sum((d - mean) ** 2 for d in diffs) / len(diffs)) ** 0.5


def write_report(settings: Settings, split: Split, stages: list[Stage]) -> Path:
    """``WORK/report/report.md`` and ``report.json``: every scenario × variant, training cost,
    stage times and the pictures (copied beside the report)."""
    work = Path(settings.work)
    out = work / "report"
    out.mkdir(parents=True, exist_ok=True)
    results, runs = {}, {}
    for variant in settings.variants:
        results[variant] = json.loads((work / "reports" / variant / "results.json").read_text())["results"]
        runs[variant] = json.loads((work / "runs" / variant / "run.json").read_text())
        shutil.copyfile(work / "reports" / variant / "roc.png", out / f"roc-{variant}.png")
    train_seconds = {s.name.removeprefix("train-"): s.seconds for s in stages if s.name.startswith("train-")}
    variants = list(settings.variants)
    test_pairs = len(split.test_lines)
    lines = [
        f"# LFW fold experiment ({settings.size})",
        "",
        (f"Train on every image of {len(split.train_people):,} people of LFW View-2 folds "
        f"{', '.join(map(str, split.train_folds))} ({sum(split.images[p] for p in split.train_people):,} images; "
        f"clean:occluded samples 1:2, occluded samples {_percent(1 - settings.mask_fraction)} % occluders / "
        f"{_percent(settings.mask_fraction)} % masks); test on {test_pairs:,} pairs of folds "
        f"{', '.join(map(str, split.test_folds))} ({split.pairs_per_fold} matched + {split.pairs_per_fold} "
        f"mismatched per fold; {len(split.test_people):,} people, none of them in training). "
        f"Backbone {settings.backbone}, seed {settings.seed}, same data and budget for every variant."),
        "",
        ("Verification: cosine similarity; accuracy = mean ± std over the test folds, the threshold chosen on "
        "the other test folds; TAR@FAR from one ROC over all pairs (sklearn `roc_curve`). "
        f"With {test_pairs // 2} impostor pairs, FAR = 1e-3 allows {test_pairs // 2 // 1000} false accept(s): "
        "read TAR@1e-3 as a rough figure and TAR@1e-2 as the steadier one."),
        "",
        "| scenario | benchmark | " + " | ".join(f"{v} accuracy (%) | {v} TAR@1e-3 | {v} TAR@1e-2" for v in variants)
        + (" | " + " | ".join(f"{v} − {variants[0]} (per fold)" for v in variants[1:]) if len(variants) > 1 else "")
        + " |",
        "|---|---|" + "---|---|---|" * len(variants) + "---|" * (len(variants) - 1),
    ]
    for bench, (scenario, _) in SCENARIOS.items():
        cells = []
        for v in variants:
            r = results[v][bench]
            cells += [f"{_percent(r['accuracy'])} ± {_percent(r['accuracy_std'])}",
                      _percent(r["tar_at_far"]["0.001"]["tar"]), _percent(r["tar_at_far"]["0.01"]["tar"])]
        for v in variants[1:]:
            diff = _paired_difference(results[variants[0]][bench], results[v][bench])
            cells.append("n/a" if diff is None else f"{100 * diff[0]:+.2f} ± {100 * diff[1]:.2f}")
        lines.append(f"| {scenario} | {bench} | " + " | ".join(cells) + " |")
    lines += ["", "Training (this machine):", "",
              "| variant | epochs | steps | samples per epoch | wall time (s) | samples/s | final training accuracy (%) |",
              "|---|---|---|---|---|---|---|"]
    for v in variants:
        summary, data = runs[v]["summary"], runs[v]["data"]
        lines.append(f"| {v} | {summary['epochs_completed']} | {summary['steps']} | {data['samples']} | "
                     f"{train_seconds.get(v, summary['seconds']):.0f} | {summary['samples_per_s']:.1f} | "
                     f"{_percent(summary['final_acc'])} |")
    cam_md = work / "reports" / "cam" / "cam.md"
    if cam_md.is_file():
        body = [line for line in cam_md.read_text().splitlines() if not line.startswith("# ")]
        lines += ["", "## Trimmer attention vs the true occlusion mask (LFW-OCC-3.0 test images)", "", *body]
        grid = work / "reports" / "cam" / "cam_grid.png"
        if grid.is_file():
            shutil.copyfile(grid, out / "cam_grid.png")
            lines += ["", "![CAM grid](cam_grid.png)"]
    tsne = work / "reports" / "tsne.png"
    if tsne.is_file():
        shutil.copyfile(tsne, out / "tsne.png")
        lines += ["", "## t-SNE of test identities", "", "![t-SNE](tsne.png)"]
    lines += ["", "## ROC", ""] + [f"![ROC {v}](roc-{v}.png)" for v in variants]
    lines += ["", "## Stages", "", "| stage | status | seconds |", "|---|---|---|"]
    lines += [f"| {s.name} | {s.status} | {s.seconds:.0f} |" for s in stages]
    lines += ["", "Commands: `WORK/stages/*.json`; logs: `WORK/logs/`; per-variant reports: `WORK/reports/`.", ""]
    _write_text(out / "report.md", "\n".join(lines))
    summary = {"settings": asdict(settings), "split": {k: v for k, v in asdict(split).items() if k != "images"},
               "results": results, "training": {v: runs[v]["summary"] for v in variants},
               "stages": [asdict(s) for s in stages]}
    _write_text(out / "report.json", json.dumps(summary, indent=2))
    return out / "report.md"


def run_pipeline(settings: Settings, log=print) -> Path:
    """Run (or resume) every stage and write the report; returns the report's path."""
    work = Path(settings.work)
    size = settings.resolved_size()
    split = plan_split(Path(settings.pairs_txt), Path(settings.lfw_images), list(settings.train_folds), size)
    log(f"split: {len(split.train_people)} training people ({sum(split.images[p] for p in split.train_people)} "
        f"images, folds {split.train_folds}); {len(split.test_lines)} test pairs "
        f"({len(split.test_people)} people, folds {split.test_folds})")
    check_work(settings)
    _write_text(work / "pipeline.json", json.dumps(asdict(settings), indent=2))
    prepare(settings, split)
    stages = plan_stages(settings, split, size)
    linked = False
    for number, stage in enumerate(stages, start=1):
        if stage.name != "align" and not linked:
            link_aligned(settings, split)
            linked = True
        log(f"[{number}/{len(stages)}] {stage.name}")
        run_stage(stage, work, log)
    return write_report(settings, split, stages)
