"""``alob-train``: train ALOB (or an ablation/baseline) on occgen shards or identity folders."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from alob_common.errors import UserError
from alob_common.geometry import CROP_SIZES
from alob_train.backbones import BACKBONES
from alob_train.model import VARIANTS
from alob_train.preprocess import parse_input_size

# The paper's training configuration (§4.2): 21 epochs, batch 128, lr ÷10 at epoch 10, initial lr
# 0.01 for ResNet18 (and its face-style siblings) and 0.001 for LightCNN-9. "paper-exact" uses it
# on both optimisers. "paper" (the default) differs in one value: Adam (the Identifier side) starts
# at 0.001 for the ResNets too, because Adam at 0.01 barely learned in our measurement
# (docs/BENCHMARKS.md, "alob-train": 7 % vs 27 % training accuracy over steps 121-150 on 62 LFW
# identities).
_LR = {"resnet18": 0.01, "iresnet18": 0.01, "iresnet50": 0.01, "lightcnn9": 0.001}
_SCHEDULE = {"epochs": 21, "batch_size": 128, "milestones": (10,), "gamma": 0.1, "warmup_epochs": 0.0}
PRESETS = {
    "paper": {**_SCHEDULE, "lr": _LR, "lr_identifier": {k: min(v, 0.001) for k, v in _LR.items()}},
    "paper-exact": {**_SCHEDULE, "lr": _LR, "lr_identifier": _LR},
}


def _ints(ctx, param, value: str | None) -> tuple[int, ...] | None:
    if value is None:
        return None
    try:
        return tuple(int(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise click.BadParameter("comma-separated epoch numbers, e.g. 10 or 10,16") from None


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


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--data", type=click.Path(path_type=str),
              help="Training data: an occgen output with shards/<split>-NNNNNN.tar and classes.csv, an occgen "
                   "folder dataset (images/<identity>/...), or plain identity folders. On --resume, defaults to the run's.")
@click.option("--out", type=click.Path(file_okay=False, path_type=str), default=None,
              help="Run folder for run.json, checkpoints/, metrics.csv and tensorboard/ [default: runs/<backbone>-<variant>].")
@click.option("--resume", is_flag=True, help="Continue the run in --out from checkpoints/last.pt, exactly where it stopped.")
@click.option("--preset", type=click.Choice(list(PRESETS)), default="paper", show_default=True,
              help="Defaults for epochs, batch size, learning rates and schedule (21 epochs, batch 128, ÷10 after "
                   "epoch 10); 'paper' starts Adam at 0.001 where 'paper-exact' uses the paper's 0.01 for the "
                   "ResNets (see docs/BENCHMARKS.md). Options given explicitly win.")
@click.option("--backbone", type=click.Choice(list(BACKBONES)), default="resnet18", show_default=True,
              help="resnet18 (He et al., the paper's), iresnet18/iresnet50 (face-style IR nets, ~4× compute), lightcnn9.")
@click.option("--variant", type=click.Choice(list(VARIANTS)), default="alob", show_default=True,
              help="alob; ablations alob-g (no GRL), alob-f (f - f^m instead of FPP), sum, concat; baseline (one backbone).")
@click.option("--input-size", default="auto", show_default=True, callback=_size,
              help=f"Model input H×W ({', '.join(CROP_SIZES)}, or any HxW); auto = the data's image size. "
                   "112x112 images fed to a 112x96 model are cut to columns 8..104, other sizes resized.")
@click.option("--epochs", type=click.IntRange(1, None), help="Epochs [preset: 21].")
@click.option("--max-steps", type=click.IntRange(1, None), help="Stop after this many optimiser steps in all (short runs).")
@click.option("--batch-size", type=click.IntRange(1, None), help="Images per step and process [preset: 128].")
@click.option("--lr", type=click.FloatRange(0, min_open=True),
              help="Initial learning rate of both optimisers [preset paper: SGD 0.01 ResNets / 0.001 LightCNN-9, "
                   "Adam 0.001; paper-exact: both 0.01 ResNets / 0.001 LightCNN-9].")
@click.option("--lr-trimmer", type=click.FloatRange(0, min_open=True), help="Trimmer-side (SGD) learning rate [default: --lr].")
@click.option("--lr-identifier", type=click.FloatRange(0, min_open=True), help="Identifier-side (Adam) learning rate [default: --lr].")
@click.option("--milestones", callback=_ints, help="Epochs after which the learning rates are multiplied by --gamma [preset: 10].")
@click.option("--gamma", type=click.FloatRange(0, 1), help="Learning-rate factor at each milestone [preset: 0.1].")
@click.option("--warmup-epochs", type=click.FloatRange(0, None), help="Linear learning-rate warm-up, in epochs (fractions allowed) [preset: 0].")
@click.option("--weight-decay", type=click.FloatRange(0, None), default=5e-4, show_default=True, help="SGD (Trimmer side) weight decay.")
@click.option("--identifier-weight-decay", type=click.FloatRange(0, None), default=0.0, show_default=True,
              help="Adam (Identifier side) L2 weight decay; the paper gives none.")
@click.option("--lambda", "trimmer_weight", type=click.FloatRange(0, None), default=1.0, show_default=True,
              help="λ in L = L_f + λ·L_m.")
@click.option("--grl-coeff", type=click.FloatRange(0, None), default=1.0, show_default=True, help="C of the gradient reversal layer.")
@click.option("--grl-schedule", type=click.Choice(["constant", "dann"]), default="constant", show_default=True,
              help="constant C, or DANN's ramp C·(2/(1+exp(-10p))-1) over training progress p.")
@click.option("--classifier", type=click.Choice(["shared", "separate"]), default="shared", show_default=True,
              help="One CosFace weight for f^m and the purified f (the paper's text), or one each (concat always has two).")
@click.option("--detach-fpp", is_flag=True, help="Stop L_f's gradient into the Trimmer through the projection.")
@click.option("--scale", type=click.FloatRange(0, min_open=True), default=30.0, show_default=True, help="CosFace s.")
@click.option("--margin", type=click.FloatRange(0, None), default=0.4, show_default=True, help="CosFace m.")
@click.option("--dropout", type=click.FloatRange(0, 1), default=0.0, show_default=True, help="Dropout in the embedding head.")
@click.option("--augment/--no-augment", default=True, show_default=True, help="Random horizontal flip and colour jitter.")
@click.option("--jitter", default="0.2,0.2,0.2,0.05", show_default=True, callback=_jitter,
              help="Colour jitter brightness,contrast,saturation,hue.")
@click.option("--occlude", is_flag=True, help="Occlude clean images on the fly with occgen.occlude (needs occgen).")
@click.option("--clean-ratio", default="1:2", show_default=True, help="With --occlude: clean:occluded proportion.")
@click.option("--scale-set", default="1:0.5:5", show_default=True, help="With --occlude: occluder factors start:step:stop.")
@click.option("--split", default="train", show_default=True, help="Shard name prefix to read (shards/<split>-*.tar).")
@click.option("--shuffle-buffer", type=click.IntRange(1, None), default=1000, show_default=True,
              help="Samples in each shard reader's shuffle buffer.")
@click.option("--workers", type=click.IntRange(0, None), default=None,
              help="DataLoader worker processes per training process [default: min(8, CPU cores)]; 0 = in process.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of weights, data order and augmentation.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda (under torchrun each rank its LOCAL_RANK GPU).")
@click.option("--amp", type=click.Choice(["auto", "bf16", "fp16", "off"]), default="auto", show_default=True,
              help="Mixed precision: auto = bf16 on a GPU that has it, off on CPU; fp16 uses a gradient scaler.")
@click.option("--channels-last/--no-channels-last", default=True, show_default=True, help="NHWC memory format (faster on CPU and GPU).")
@click.option("--compile", "compile_", is_flag=True, help="torch.compile the model (slow first step; pays on GPU).")
@click.option("--threads", type=click.IntRange(1, None), help="Torch CPU threads [default: torch's choice].")
@click.option("--val", type=click.Path(file_okay=False, path_type=str),
              help="Folder dataset with pairs.csv: verification accuracy after every epoch; best.pt keeps the best.")
@click.option("--val-batch-size", type=click.IntRange(1, None), default=64, show_default=True)
@click.option("--log-every", type=click.IntRange(1, None), default=20, show_default=True,
              help="Steps per metrics.csv/TensorBoard row.")
@click.option("--save-every", type=click.IntRange(0, None), default=0, show_default=True,
              help="Also write last.pt every N steps (0: at epoch ends and when the run stops).")
@click.option("--tensorboard/--no-tensorboard", default=True, show_default=True, help="Write TensorBoard logs to RUN/tensorboard.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.pass_context
def main(ctx: click.Context, **opts) -> None:
    """Train ALOB: an Identifier and a Trimmer backbone, the Trimmer's embedding through a gradient
    reversal layer into a CosFace classifier (L_m), the Identifier's embedding purified by
    orthogonal projection away from the Trimmer's into CosFace (L_f); one backward pass of
    L_f + λ·L_m, the Trimmer side stepped by SGD (momentum 0.9, weight decay 5e-4) and the
    Identifier side by Adam.

    Writes RUN/run.json (the resolved settings), RUN/checkpoints/last.pt and epoch_NNN.pt
    (loadable with torch.load(..., weights_only=True)), RUN/metrics.csv and TensorBoard logs.
    Under torchrun the processes split the data and rank 0 writes.

    Example: alob-train --data occ-casia/ --out runs/alob-r18
    """
    from alob_train.engine import RESUMABLE, TrainConfig, TrainingDiverged, train

    given = {k for k in opts if ctx.get_parameter_source(k) == click.core.ParameterSource.COMMANDLINE}
    out = opts["out"] or f"runs/{opts['backbone']}-{opts['variant']}"
    if opts["resume"]:
        run_json = Path(out) / "run.json"
        if not run_json.is_file():
            raise click.ClickException(f"nothing to resume: {run_json} not found")
        config = TrainConfig.from_json(json.loads(run_json.read_text())["config"])
        changed = sorted(k for k in given - {"resume", "out", "data", "quiet", "compile_"} if k not in RESUMABLE)
        if changed:
            raise click.ClickException(f"cannot change {', '.join('--' + k.replace('_', '-') for k in changed)} "
                                       "when resuming; start a new run instead")
        for key in given & set(RESUMABLE):
            setattr(config, key, opts[key])
        if "quiet" in given:
            config.progress = not opts["quiet"]
        if "compile_" in given:
            config.compile = opts["compile_"]
        if opts["data"]:
            config.data = opts["data"]
    else:
        if not opts["data"]:
            raise click.ClickException("--data is required (a shard or identity-folder dataset)")
        if (Path(out) / "checkpoints" / "last.pt").exists():
            raise click.ClickException(f"{out} already holds a run: add --resume to continue it or choose another --out")
        preset = PRESETS[opts["preset"]]
        lr = opts["lr"] or preset["lr"][opts["backbone"]]
        config = TrainConfig(
            data=opts["data"], out=out, backbone=opts["backbone"], variant=opts["variant"],
            input_size=opts["input_size"], epochs=opts["epochs"] or preset["epochs"], max_steps=opts["max_steps"],
            batch_size=opts["batch_size"] or preset["batch_size"],
            lr_trimmer=opts["lr_trimmer"] or lr,
            lr_identifier=opts["lr_identifier"] or opts["lr"] or preset["lr_identifier"][opts["backbone"]],
            weight_decay=opts["weight_decay"], identifier_weight_decay=opts["identifier_weight_decay"],
            milestones=opts["milestones"] if opts["milestones"] is not None else preset["milestones"],
            gamma=opts["gamma"] if opts["gamma"] is not None else preset["gamma"],
            warmup_epochs=opts["warmup_epochs"] if opts["warmup_epochs"] is not None else preset["warmup_epochs"],
            trimmer_weight=opts["trimmer_weight"], grl_coeff=opts["grl_coeff"], grl_schedule=opts["grl_schedule"],
            classifier=opts["classifier"], detach_fpp=opts["detach_fpp"], scale=opts["scale"], margin=opts["margin"],
            dropout=opts["dropout"], augment=opts["augment"], jitter=opts["jitter"], occlude=opts["occlude"],
            clean_ratio=opts["clean_ratio"], scale_set=opts["scale_set"], split=opts["split"],
            shuffle_buffer=opts["shuffle_buffer"], seed=opts["seed"], device=opts["device"], amp=opts["amp"],
            channels_last=opts["channels_last"], compile=opts["compile_"], threads=opts["threads"],
            val=opts["val"], val_batch_size=opts["val_batch_size"], log_every=opts["log_every"],
            save_every=opts["save_every"], tensorboard=opts["tensorboard"], progress=not opts["quiet"],
        )
        config.workers = opts["workers"] if opts["workers"] is not None else min(8, os.cpu_count() or 1)
    try:
        summary = train(config, resume=opts["resume"], command=sys.argv)
    except (UserError, TrainingDiverged, ValueError) as err:
        raise click.ClickException(str(err)) from None
    except KeyboardInterrupt:
        click.echo(f"\ninterrupted: {config.out}/checkpoints/last.pt holds the last completed epoch or save; "
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
        + f"\ncheckpoint: {summary['checkpoint']}\nmetrics: {Path(config.out) / 'metrics.csv'}"
    )


if __name__ == "__main__":
    main()
