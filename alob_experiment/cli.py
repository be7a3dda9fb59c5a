"""``alob-pipeline``: the LFW fold experiment in one command (align → occlude/mask → train →
evaluate → report)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import click

from alob_common.errors import UserError
from alob_common.vocabulary import Renamed, VocabCommand, check_device, parse_list, version_option
from alob_train.backbones import BACKBONES
from alob_experiment.config import CLEAN_DATA, CONFIG_GROUPS, NO_TRAINING, TRAINING_CONFIGS
from alob_train.model import VARIANTS
from alob_train.pretrained import INIT_CHOICES, INITS


def _folds(ctx, param, value: str) -> tuple[int, ...] | str:
    """``--train-on``: View-2 fold numbers counted from 0 (as pairs.csv's fold), or ``both``."""
    if value.strip() == "both":
        return "both"
    try:
        folds = tuple(sorted(set(parse_list(value))))
    except ValueError as err:
        raise click.BadParameter(f"fold numbers (0-9): {err}, or 'both'") from None
    if min(folds) < 0:
        raise click.BadParameter(f"{value!r}: folds are numbered from 0")
    return folds


def _old_folds(value: str) -> str:
    """The deprecated ``--train-folds`` (counted from 1, ranges ``1-5``) as ``--train-on``'s value."""
    if value.strip() == "both":
        return "both"
    try:
        if "-" in value:
            low, high = (int(v) - 1 for v in value.split("-"))
            return f"{low}..{high}"
        return ",".join(str(int(v) - 1) for v in value.split(",") if v.strip())
    except ValueError:
        return value


def _variants(ctx, param, value: str | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    names = [n for v in value.split(",") if v.strip() for n in CONFIG_GROUPS.get(v.strip(), (v.strip(),))]
    unknown = [v for v in names if v not in TRAINING_CONFIGS]
    if unknown or not names:
        raise click.BadParameter(f"unknown configuration {unknown[0] if unknown else value!r}: choose from "
                                 f"{', '.join(TRAINING_CONFIGS)} or a group ({', '.join(CONFIG_GROUPS)})")
    return tuple(dict.fromkeys(names))


def _seeds(ctx, param, value: str | None) -> tuple[int, ...]:
    if value is None:
        return ()
    try:
        seeds = tuple(dict.fromkeys(int(v) for v in value.split(",") if v.strip()))
    except ValueError:
        raise click.BadParameter(f"{value!r}: expected seeds such as 0,1") from None
    if not seeds:
        raise click.BadParameter("give at least one seed")
    return seeds


@click.command(cls=VocabCommand, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
               renamed=[Renamed("--lfw-dir", "--data"), Renamed("--work", "--out"),
                        Renamed("--train-folds", "--train-on", _old_folds)])
@version_option
@click.option("--quick", "size", flag_value="quick", help="Small run (about 6 minutes on 2 CPU cores): the 60 "
              "training people with most images, 60+60 test pairs per fold, 1 epoch.")
@click.option("--full", "size", flag_value="full", default=True, help="[default] Every training person "
              "(5,373 images for folds 0-4), all 3,000 test pairs, 2 epochs of 3 samples per image.")
@click.option("--data", "lfw_dir", type=click.Path(file_okay=False), default=None,
              help="Input, LFW: a folder with lfw-deepfunneled/ and pairs.txt [default: $ALOB_DATA/lfw, else a previous "
                   "download in OUT/lfw, else downloaded from LFW's site when online, MD5-checked].")
@click.option("--out", "work", type=click.Path(file_okay=False), default="alob-work", show_default=True,
              help="Output folder for everything the run makes; rerun the same command to resume.")
@click.option("--aligned", type=click.Path(exists=True, file_okay=False), default=None,
              help="Reuse an LFW already aligned by align-faces (skips alignment).")
@click.option("--variants", callback=_variants, default=None,
              help="Training configurations to compare, comma-separated: the variants "
                   f"{', '.join(VARIANTS)}, the screening settings alob-shared, alob-separate, alob-separate-ramp "
                   "(the gradient reversal ramped up over training), alob-lambda0 (no Trimmer loss), zero-shot and baseline-clean (with "
                   "--init), or a group: 'all' (every variant), 'screen' (baseline and the six ALOB settings), "
                   "'finetune' (zero-shot, baseline-clean, baseline, alob, alob-lambda0) [default: zero-shot,baseline,alob; "
                   "baseline,alob with --init scratch].")
@click.option("--backbone", type=click.Choice(list(BACKBONES)), default=None,
              help="The network of every trained configuration [default: resnet18; facenet with --init].")
@click.option("--init", type=click.Choice(list(INIT_CHOICES)), default="facenet-vggface2", show_default=True,
              help="The models fine-tune a pretrained recogniser (alob-train --init with its fine-tuning defaults: "
                   "FaceNet, VGGFace2) or, with 'scratch', train from random weights as the paper does (for GPUs). "
                   "--variants finetune compares the network as it comes (zero-shot), the baseline fine-tuned on clean "
                   "images (baseline-clean) or on the occluded and masked ones (baseline), ALOB and ALOB with λ = 0 "
                   "(alob-lambda0).")
@click.option("--train-on", "train_folds", callback=_folds, default="0..4", show_default=True,
              help="LFW's ten standard test folds (View 2 of its protocol; no person is in two) whose people are "
                   "trained on, numbered 0-9 as pairs.csv's fold column: a list "
                   "such as 0..4 (0 to 4, both included) or 0,2,4,6,8; the other folds' pairs are the test set. "
                   "'both': train on 0..4 and test on 5..9, then the swap, and compare over both.")
@click.option("--seeds", callback=_seeds, default=None,
              help="Several seeds, e.g. 0,1: one run per seed (and half), compared pairwise in "
                   "OUT/report/comparison.md [default: --seed].")
@click.option("--until-plateau", "patience", type=click.IntRange(min=1), default=None,
              help="Train until validation accuracy stops rising: the last training fold is held out to "
                   "validate every epoch, and a run stops once past its learning-rate drop when accuracy has "
                   "not risen for this many epochs (--epochs is the cap; the best epoch is evaluated).")
@click.option("--train-people", type=click.IntRange(min=0), default=None,
              help="Override the size: train on the N people with most images (0 = all).")
@click.option("--pairs-per-fold", type=click.IntRange(min=1), default=None,
              help="Override the size: N matched and N mismatched test pairs per test fold.")
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Override the size's epochs.")
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Override the training batch "
              "[default: 64].")
@click.option("--max-steps", type=click.IntRange(min=1), default=None, help="Stop training after this many steps "
              "(smoke runs).")
@click.option("--mask-fraction", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="Of the occluded training samples, the fraction that get face masks (the rest occluders).")
@click.option("--cam-limit", type=click.IntRange(min=1), default=None,
              help="Occluded test images for the CAM overlap numbers [default: 300 quick, all full].")
@click.option("--workers", type=click.IntRange(min=0), default=None,
              help="Worker processes of the alignment and dataset builds (their --workers); 0 = all in one "
                   "process [default: the number of CPU cores].")
@click.option("--train-workers", type=click.IntRange(min=0), default=1, show_default=True,
              help="The --workers of each training run: DataLoader processes (on a GPU, most of the CPU cores).")
@click.option("--device", default="auto", show_default=True, callback=check_device,
              help="Where alignment, training and evaluation run (their --device): auto (the GPU when torch sees "
                   "one, else the CPU), cpu, cuda or cuda:N.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the data builds and the training runs (their --seed).")
@click.option("--no-download", is_flag=True, help="Never download LFW; stop if it is not found.")
def main(size: str, lfw_dir: str | None, work: str, aligned: str | None, variants: tuple[str, ...],
         backbone: str | None, init: str | None, train_folds: tuple[int, ...] | str, seeds: tuple[int, ...], patience: int | None, train_people: int | None, pairs_per_fold: int | None, epochs: int | None,
         batch_size: int | None, max_steps: int | None, mask_fraction: float,
         cam_limit: int | None, workers: int | None, train_workers: int, device: str, seed: int,
         no_download: bool) -> None:
    """Run the LFW fold experiment end to end and write OUT/report/report.md.

    LFW's ten standard test folds (View 2 of its protocol, numbered 0-9) share no person. The models train on every image of the
    people in --train-on (clean:occluded 1:2, occluders and face masks) and are tested on the other folds'
    pairs in four scenarios: Face–Face, Face–Occlusion (FROM factors 2.0 and 3.0) and Face–Mask.
    Every stage is a project command (align-faces, occgen, alob-train, alob-eval); its output stays
    in OUT and a rerun skips what is done and resumes what was interrupted.

    \b
    Examples:
      alob-pipeline --quick --data /data/lfw
      alob-pipeline --full --out lfw-experiment
      alob-pipeline --full --variants all --train-on 5..9     (halves swapped, with ablations)
    """
    from alob_experiment.config import Settings
    from alob_experiment.experiment import run_pipeline
    from alob_experiment.lfw import find_lfw

    start = time.perf_counter()
    work_dir = Path(work).resolve()
    init = None if init == "scratch" else init
    backbone = backbone or (INITS[init].backbone if init else "resnet18")
    variants = variants or (("zero-shot", "baseline", "alob") if init else ("baseline", "alob"))
    needs_init = [v for v in variants if v in (*NO_TRAINING, *CLEAN_DATA)]
    if needs_init and not init:
        raise click.UsageError(f"{needs_init[0]} needs a pretrained start: drop --init scratch")
    try:
        images, pairs_txt = find_lfw(lfw_dir, work_dir, download=not no_download)
        click.echo(f"LFW: {images} with {pairs_txt}; size {size}; work folder {work_dir}")
        settings = Settings(work=str(work_dir), size=size, lfw_images=str(images.resolve()),
                            pairs_txt=str(pairs_txt.resolve()), aligned=str(Path(aligned).resolve()) if aligned else None,
                            variants=variants, backbone=backbone, init=init, mask_fraction=mask_fraction,
                            train_folds=(0, 1, 2, 3, 4) if train_folds == "both" else train_folds,
                            both_halves=train_folds == "both", seeds=seeds, patience=patience,
                            seed=seed, workers=(os.cpu_count() or 1) if workers is None else workers, train_people=train_people, pairs_per_fold=pairs_per_fold,
                            epochs=epochs, batch_size=batch_size, max_steps=max_steps,
                            cam_limit=cam_limit, train_workers=train_workers, device=device)
        report = run_pipeline(settings, log=click.echo)
    except UserError as err:
        raise click.ClickException(str(err)) from None
    except KeyboardInterrupt:
        click.echo("\ninterrupted: rerun the same command to resume", err=True)
        sys.exit(130)
    click.echo(f"\ndone in {(time.perf_counter() - start) / 60:.1f} min; report: {report}")
    table = [line for line in report.read_text().splitlines() if line.startswith("|")]
    click.echo("\n".join(table[: 2 + 4]))


if __name__ == "__main__":
    main()
