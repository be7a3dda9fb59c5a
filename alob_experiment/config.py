"""What one run of the LFW fold experiment depends on: the run sizes, the test scenarios, the
settings stored in ``WORK/pipeline.json``, and the check that keeps a work folder to one set of
data settings."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from alob_common.errors import UserError
from alob_common.settings import check_same_settings

SCENARIOS = {  # benchmark name → (scenario, occgen build options; None: the aligned LFW itself)
    "lfw": ("Face–Face", None),
    "lfw-occ-2.0": ("Face–Occlusion", ["--factor", "2.0", "--blend", "rect"]),
    "lfw-occ-3.0": ("Face–Occlusion", ["--factor", "3.0", "--blend", "rect"]),
    "lfw-masked": ("Face–Mask", ["--kind", "mask"]),
}


# The training configurations an experiment can compare: a name → the alob-train options that
# make it. Every variant of alob-train is one; the ALOB-objective screening adds the head, ramp and
# λ = 0 settings (the λ = 0 control keeps both networks and the projection but no Trimmer loss).
TRAINING_CONFIGS: dict[str, tuple[str, ...]] = {
    "baseline": ("--variant", "baseline"),
    "alob": ("--variant", "alob"),
    "alob-shared": ("--variant", "alob", "--classifier", "shared"),
    "alob-separate": ("--variant", "alob", "--classifier", "separate"),
    "alob-separate-ramp": ("--variant", "alob", "--classifier", "separate", "--grl-schedule", "dann"),
    "alob-lambda0": ("--variant", "alob", "--classifier", "separate", "--lambda", "0"),
    "alob-g": ("--variant", "alob-g"),
    "alob-f": ("--variant", "alob-f"),
    "sum": ("--variant", "sum"),
    "concat": ("--variant", "concat"),
    # with a pretrained --init: the network as it comes (no training step), and the baseline
    # fine-tuned on the clean training images only
    "zero-shot": ("--variant", "baseline"),
    "baseline-clean": ("--variant", "baseline"),
    # the screening of alob-train's fine-tuning defaults: each changes one of them
    "baseline-unfrozen": ("--variant", "baseline", "--freeze-until", "none"),
    "baseline-freeze-7a": ("--variant", "baseline", "--freeze-until", "mixed_7a"),
    "baseline-lr-mult-1": ("--variant", "baseline", "--backbone-lr-mult", "1"),
    "baseline-bn-update": ("--variant", "baseline", "--bn-stats", "update"),
    "baseline-warmup": ("--variant", "baseline", "--head-warmup-steps", "30"),
}


def has_trimmer(config: str) -> bool:
    """Whether training configuration ``config`` has a Trimmer (any variant but baseline)."""
    options = TRAINING_CONFIGS[config]
    return options[options.index("--variant") + 1] != "baseline"


NO_TRAINING = ("zero-shot",)  # saved as initialised (alob-train --max-steps 0)
CLEAN_DATA = ("baseline-clean",)  # trained on the aligned training images, no occluders or masks
CONFIG_GROUPS = {
    "all": ("baseline", "alob", "alob-g", "alob-f", "sum", "concat"),
    "screen": ("baseline", "alob-shared", "alob-separate", "alob-separate-ramp", "alob-lambda0", "alob-g", "alob-f"),
    "finetune": ("zero-shot", "baseline-clean", "baseline", "alob", "alob-lambda0"),
    "finetune-screen": ("zero-shot", "baseline", "baseline-unfrozen", "baseline-freeze-7a", "baseline-lr-mult-1",
                        "baseline-bn-update", "baseline-warmup"),
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
class Settings:
    """Everything a pipeline run depends on; stored in ``WORK/pipeline.json``."""

    work: str
    size: str
    lfw_images: str
    pairs_txt: str
    aligned: str | None = None  # an existing aligned LFW to reuse instead of aligning
    variants: tuple[str, ...] = ("baseline", "alob")
    backbone: str = "resnet18"
    train_folds: tuple[int, ...] = (0, 1, 2, 3, 4)  # View-2 folds numbered from 0, as pairs.csv's fold
    mask_fraction: float = 0.5
    seed: int = 0
    workers: int = 2
    train_people: int | None = None  # overrides of the size: 0 = every training person
    pairs_per_fold: int | None = None
    epochs: int | None = None
    batch_size: int | None = None
    max_steps: int | None = None
    cam_limit: int | None = None
    seeds: tuple[int, ...] = ()  # several: one run per seed (and half), compared pairwise; () = (seed,)
    both_halves: bool = False  # train on folds 0-4 and test 5-9, then the swap
    patience: int | None = None  # stop training on a validation plateau (held-out last training fold)
    train_workers: int = 1  # DataLoader workers of each training run (a GPU wants many)
    device: str = "auto"  # --device of the stages that run a model (align, train, eval)
    pictures: bool = True  # CAM and t-SNE stages (a multi-run experiment makes them for its first run only)
    init: str | None = None  # a pretrained initialisation (alob-train --init): every run fine-tunes it
    folds_from: int = 0  # fold numbers count from 0 (pipeline.json files of 0.1 lack this: theirs count from 1)

    def runs(self) -> list["Settings"]:
        """The single runs this setting asks for: one per (half, seed), each in its own
        ``WORK/folds-A-B/seed-S`` folder; just this one when there is one."""
        seeds = self.seeds or (self.seed,)
        halves = [self.train_folds]
        if self.both_halves:
            halves = [(0, 1, 2, 3, 4), (5, 6, 7, 8, 9)]
        if len(seeds) == 1 and len(halves) == 1:
            return [replace(self, seed=seeds[0], seeds=(), both_halves=False)]
        return [replace(self, work=str(Path(self.work) / f"folds-{h[0]}-{h[-1]}" / f"seed-{s}"), train_folds=h,
                        seed=s, seeds=(), both_halves=False, pictures=(h, s) == (halves[0], seeds[0]))
                for s in seeds for h in halves]  # seed by seed: each finished seed has both halves

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
                 "mask_fraction", "seed", "backbone", "seeds", "both_halves", "patience", "init")


def data_settings(values: dict[str, Any]) -> dict[str, Any]:
    """The data settings of a run (as stored in ``pipeline.json``), with the size's overrides
    resolved: ``--quick`` and ``--quick --train-people 60`` build the same data."""
    data = {key: values.get(key) for key in DATA_SETTINGS}
    data["seeds"], data["both_halves"] = list(data["seeds"] or []), bool(data["both_halves"])  # absent in older files
    if data["train_folds"] and values.get("folds_from", 1) == 1:  # a 0.1 work folder: folds counted from 1
        data["train_folds"] = [fold - 1 for fold in data["train_folds"]]
    size = RUN_SIZES.get(data["size"])
    if size is not None:
        if data["train_people"] is None:
            data["train_people"] = size.train_people
        data["train_people"] = data["train_people"] or None  # 0 and None: every training person
        if data["pairs_per_fold"] is None:
            data["pairs_per_fold"] = size.pairs_per_fold
    return data


def check_work(settings: Settings) -> None:
    """Refuse to continue in a WORK folder made with other data settings (its files would mix)."""
    saved = Path(settings.work) / "pipeline.json"
    if not saved.is_file():
        return
    before = data_settings(json.loads(saved.read_text()))
    now = data_settings(json.loads(json.dumps(asdict(settings))))
    check_same_settings(before, now, settings.work, "use another --out", DATA_SETTINGS)
