"""The training loop: one backward pass of L_f + λ·L_m per step, the two optimisers, AMP, DDP,
checkpoints with exact resumption, validation, metrics.csv, TensorBoard and a progress bar."""

from __future__ import annotations

import json
import math
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from tqdm import tqdm

from alob_common.atomic import write_json_atomic
from alob_train import __version__
from alob_train.checkpoint import (
    TRAINING_KEYS,
    load_checkpoint,
    restore_training_state,
    save_checkpoint,
    training_state,
)
from alob_train.backbones import DEFAULT_INPUT_SIZES
from alob_train.config import TrainConfig
from alob_train.data import (
    DataError,
    DataInfo,
    SampleTransform,
    build_loader,
    build_transform,
    open_data,
)
from alob_train.embed import validate_folder
from alob_train.diagnostics import accuracy, mechanism_diagnostics
from alob_train.finetune import apply_freezing, calibrate_batch_norms, load_init
from alob_train.layers import dann_ramp
from alob_train.metrics_log import MetricsLog, add_to_window, new_window, train_row
from alob_train.model import ALOB
from alob_train.optim import build_optimizers, build_schedulers, lr_multiplier, optimizer_states_to
from alob_train.preprocess import normalize
from alob_train.runtime import Dist, amp_dtype, init_distributed, run_together, setup_device
from alob_train.samples import BadSamples


class TrainingDiverged(Exception):
    """The loss became NaN or infinite; the run stopped and kept its last good checkpoint."""


@dataclass
class Session:
    """What one training process works with, built once by :func:`prepare`."""

    config: TrainConfig
    info: DataInfo
    d: Dist
    device: torch.device
    amp: torch.dtype | None
    model: ALOB
    forward: torch.nn.Module  # the model, wrapped by DDP and torch.compile when asked for
    optimizers: dict[str, torch.optim.Optimizer]
    schedulers: dict[str, torch.optim.lr_scheduler.LRScheduler]
    scaler: torch.amp.GradScaler | None
    transform: SampleTransform
    steps_per_epoch: int
    total_steps: int
    last_step: int

    @property
    def checkpoints(self) -> Path:
        return Path(self.config.out) / "checkpoints"


def _steps(info: DataInfo, config: TrainConfig, world: int) -> tuple[int, int, int]:
    """(steps per epoch, steps of all epochs, the step this session stops at)."""
    steps_per_epoch = info.num_samples // (config.batch_size * world)
    if steps_per_epoch == 0:
        raise DataError(f"{info.num_samples} samples are fewer than one batch of {config.batch_size} "
                        f"per process ({world} processes): lower --batch-size")
    total = config.epochs * steps_per_epoch
    return steps_per_epoch, total, min(total, config.max_steps) if config.max_steps is not None else total


def _checkpoint_to_resume(config: TrainConfig, info: DataInfo) -> dict[str, Any]:
    """``last.pt`` of the run, which must have been trained on the same classes."""
    path = Path(config.out) / "checkpoints" / "last.pt"
    if not path.is_file():
        raise DataError(f"nothing to resume: {path} not found")
    checkpoint = load_checkpoint(path, keys=TRAINING_KEYS)
    if list(checkpoint["classes"]) != list(info.classes):
        raise DataError(f"the classes of {config.data} differ from those the run was trained on")
    return checkpoint


def prepare(config: TrainConfig, resume: bool = False) -> tuple[Session, int, float | None]:
    """Join the process group, open the data, build (or restore from ``last.pt``) the model,
    optimisers and schedules on the device; returns the session, the step to start at and the
    best validation accuracy so far. Sets ``config.input_size`` from the data when it is None."""
    d = init_distributed(config.device)
    device = setup_device(config.device, d.local_rank, config.threads)
    info = open_data(config.data, config.split)
    default_size = DEFAULT_INPUT_SIZES.get(config.backbone) or info.first_image().shape[:2]
    config.input_size = tuple(config.input_size or default_size)  # type: ignore[assignment]
    steps_per_epoch, total_steps, last_step = _steps(info, config, d.world)
    checkpoint = _checkpoint_to_resume(config, info) if resume else None

    torch.manual_seed(config.seed)
    model = ALOB.from_config(config, info.num_classes)
    if checkpoint is None:
        load_init(model, config)  # a resumed run carries its own weights
    apply_freezing(model, config)
    optimizers = build_optimizers(model, config, d.world)
    schedulers = build_schedulers(optimizers, config, steps_per_epoch)
    amp = amp_dtype(config.amp, device)
    scaler = torch.amp.GradScaler(device.type) if amp == torch.float16 else None
    step, best = 0, None
    if checkpoint is not None:
        step, best = restore_training_state(checkpoint, model, optimizers, schedulers, scaler)
    model.to(device)
    if config.channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer_states_to(optimizers, device)
    net = torch.nn.parallel.DistributedDataParallel(
        model, device_ids=[device.index] if device.type == "cuda" else None) if d.world > 1 else model
    forward = torch.compile(net) if config.compile else net
    session = Session(config, info, d, device, amp, model, forward, optimizers, schedulers, scaler,
                      build_transform(config), steps_per_epoch, total_steps, last_step)
    return session, step, best


def grl_coefficient(config: TrainConfig, step: int, last_step: int) -> float:
    """The GRL's C at global ``step`` (0-based): ``grl_coeff``, or with the ``dann`` schedule
    ``grl_coeff`` times DANN's ramp over the run's real length (``--epochs`` or ``--max-steps``,
    whichever ends it), normalised so that the last step gets exactly ``grl_coeff``."""
    if config.grl_schedule != "dann":
        return config.grl_coeff
    return config.grl_coeff * dann_ramp((step + 1) / max(last_step, 1)) / dann_ramp(1.0)


def _diagnostics(s: Session, out: dict[str, Any], labels: torch.Tensor) -> dict[str, float]:
    """The mechanism figures of this batch (this process's share; :mod:`alob_train.diagnostics`)."""
    head = s.model.trimmer_head
    if out["fm"] is None or head is None:
        return {}
    figures = mechanism_diagnostics(out["f"], out["fm"], head.weight.detach(), labels,
                                    subtract=s.config.variant == "alob-f")
    figures["acc_trimmer"] = accuracy(head.cosine(out["fm"]), labels)
    return figures


def train_step(s: Session, images: torch.Tensor, labels: torch.Tensor, step: int,
               diagnose: bool = False) -> tuple[list[float], float, dict[str, float]]:
    """One optimiser step on a batch at global ``step``; returns the batch's sums over all
    processes (loss·n, L_f·n, L_m·n, correct, n), the GRL coefficient used and, when
    ``diagnose``, the batch's mechanism figures. Raises :class:`TrainingDiverged` before updating
    anything when the loss is not finite."""
    config = s.config
    images = normalize(images.to(s.device, non_blocking=True))  # the loader's batches are uint8
    if config.channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    labels = labels.to(s.device, non_blocking=True)
    coeff = grl_coefficient(config, step, s.last_step)
    s.model.set_grl_coeff(coeff)
    with torch.autocast(s.device.type, dtype=s.amp) if s.amp else nullcontext():
        out = s.forward(images, labels)
    loss_m = out["loss_m"] if out["loss_m"] is not None else torch.zeros((), device=s.device)
    loss = out["loss_f"] + config.trimmer_weight * loss_m
    n = labels.numel()
    stats = torch.stack([loss.detach().float() * n, out["loss_f"].detach().float() * n, loss_m.detach().float() * n,
                         (out["cos"].argmax(1) == labels).sum().float(), torch.tensor(float(n), device=s.device)])
    if s.d.world > 1:
        dist.all_reduce(stats)
    stats = stats.tolist()
    if not math.isfinite(stats[0]):
        raise TrainingDiverged(
            f"loss became {stats[0] / stats[4]} at step {step + 1} (epoch {step // s.steps_per_epoch + 1}); stopped. "
            f"{s.checkpoints / 'last.pt'} keeps the last good state: lower the learning rate or "
            "use --warmup-epochs, then --resume")
    for o in s.optimizers.values():
        o.zero_grad(set_to_none=True)
    if s.scaler is not None:
        s.scaler.scale(loss).backward()
        for o in s.optimizers.values():
            s.scaler.step(o)
        s.scaler.update()
    else:
        loss.backward()
        for o in s.optimizers.values():
            o.step()
    for scheduler in s.schedulers.values():
        scheduler.step()
    return stats, coeff, _diagnostics(s, out, labels) if diagnose else {}


def save(s: Session, names: list[str], step: int, best: float | None) -> None:
    """Write the training state at ``step`` as each of ``checkpoints/<names>`` (rank 0 only)."""
    if not s.d.main:
        return
    epoch, step_in_epoch = divmod(step, s.steps_per_epoch)
    state = training_state(s.model, s.optimizers, s.schedulers, s.scaler, epoch=epoch, step=step,
                           step_in_epoch=step_in_epoch, classes=s.info.classes, config=s.config, best_val_acc=best)
    for name in names:
        save_checkpoint(state, s.checkpoints / name)


def validate(s: Session, step: int, best: float | None, log: MetricsLog, bar: tqdm) -> tuple[float, bool]:
    """Score ``--val`` after an epoch (rank 0), log it; returns (best accuracy, whether this is it)."""
    epoch = step // s.steps_per_epoch
    result = validate_folder(s.model, s.config.val, tuple(s.config.input_size), s.device, s.config.val_batch_size,
                             s.config.channels_last)
    log.add({"epoch": epoch, "step": step, "phase": "val", **result})
    bar.write(f"epoch {epoch}: val accuracy {result['val_acc']:.4f} ± {result['val_std']:.4f}")
    improved = best is None or result["val_acc"] > best
    return (result["val_acc"] if improved else best), improved


def _end_span(s: Session, step: int, best: float | None, log: MetricsLog | None, bar: tqdm) -> float | None:
    """After an epoch or the session's last step: at an epoch's end validate (``--val``) and
    write ``epoch_NNN.pt`` (and ``best.pt`` when it improved), always ``last.pt``; then wait for
    the other processes. Returns the best validation accuracy."""
    names = ["last.pt"]
    if step % s.steps_per_epoch == 0:
        names.append(f"epoch_{step // s.steps_per_epoch:03d}.pt")
        if s.config.val and log is not None:
            best, improved = validate(s, step, best, log, bar)
            names += ["best.pt"] if improved else []
    save(s, names, step, best)
    if s.d.world > 1:
        dist.barrier()
    return best


def plateaued(val_accuracies: list[float], epoch: int, config: TrainConfig) -> bool:
    """The ``--patience`` rule after ``epoch`` epochs: past the last learning-rate milestone, the
    best validation accuracy is ``patience`` or more epochs old."""
    if not config.patience or not val_accuracies or epoch < max(config.milestones, default=0):
        return False
    since_best = len(val_accuracies) - 1 - max(range(len(val_accuracies)), key=val_accuracies.__getitem__)
    return since_best >= config.patience


def _stop_on_plateau(s: Session, step: int, log: MetricsLog | None) -> bool:
    """Whether every process ends the run now by the ``--patience`` rule (rank 0 decides)."""
    stop = False
    if s.config.patience and s.config.val and log is not None and step % s.steps_per_epoch == 0:
        accuracies = [r["val_acc"] for r in log.rows if r.get("phase") == "val"]
        stop = plateaued(accuracies, step // s.steps_per_epoch, s.config)
    if s.d.world > 1:
        flag = torch.tensor([float(stop)], device=s.device)
        dist.broadcast(flag, 0)
        stop = bool(flag.item())
    return stop


def _log_train(window: dict[str, float], s: Session, epoch: int, step: int, coeff: float, diag: dict[str, float],
               log: MetricsLog | None, bar: tqdm) -> dict[str, Any]:
    """Log the window's training row and the last batch's mechanism figures (metrics.csv,
    TensorBoard, progress bar); returns the row."""
    lrs = {k: o.param_groups[0]["lr"] for k, o in s.optimizers.items()}
    row = {**train_row(window, epoch, step, lrs, coeff), **diag}
    bar.set_postfix(loss=f"{row['loss']:.3f}", acc=f"{row['acc']:.3f}", lr=f"{row['lr_identifier']:.2g}",
                    img_s=f"{row['samples_per_s']:.1f}")
    if log is not None:
        log.add(row)
    return row


def _run_record(s: Session, command: list[str] | None, resumed_from: int | None) -> dict[str, Any]:
    """What ``run.json`` holds before the summary: the command, the settings and the data's counts."""
    return {
        "tool": "alob-train", "version": __version__, "command": command or sys.argv,
        "config": s.config.to_json(), "world_size": s.d.world, "device": str(s.device),
        "global_batch": s.config.batch_size * s.d.world, "lr_multiplier": lr_multiplier(s.config, s.d.world),
        "data": {"kind": s.info.kind, "samples": s.info.num_samples, "classes": s.info.num_classes},
        "steps_per_epoch": s.steps_per_epoch, "total_steps": s.total_steps, "resumed_from_step": resumed_from,
    }


@dataclass
class Progress:
    """Where a training session stands: the global step, samples seen, the last logged row, the
    running window of statistics, the best validation accuracy, and whether a plateau ended it."""

    step: int
    best: float | None
    samples: int = 0
    row: dict[str, Any] = field(default_factory=dict)
    window: dict[str, float] = field(default_factory=new_window)
    stopped_on_plateau: bool = False


def _train_epoch(s: Session, p: Progress, log: MetricsLog | None, bar: tqdm, bad: BadSamples) -> None:
    """Train from ``p.step`` to the end of its epoch (or the session's last step), logging every
    ``--log-every`` steps and writing ``last.pt`` every ``--save-every``."""
    config = s.config
    epoch, in_epoch = divmod(p.step, s.steps_per_epoch)
    batches = run_together(s.d, s.device, lambda: build_loader(s.info, config, s.transform, epoch, in_epoch, s.d.rank,
                                                                 s.d.world, pin=s.device.type == "cuda", bad=bad,
                                                                 device=s.device))
    s.model.train()
    got = 0
    # under torchrun every batch is fetched together: a process stopped by its bad samples stops them all
    while (batch := run_together(s.d, s.device, partial(next, batches, None))) is not None:
        images, labels = batch
        got += 1
        if p.step == 0 and config.bn_stats == "update" and config.init != "scratch":
            calibrate_batch_norms(s.model, config, normalize(images.to(s.device)))
        logged = (p.step + 1) % config.log_every == 0 or (p.step + 1) in (s.last_step, s.steps_per_epoch * (epoch + 1))
        stats, coeff, diag = train_step(s, images, labels, p.step, diagnose=logged)
        p.step += 1
        p.samples += int(stats[4])
        add_to_window(p.window, stats)
        bar.update(1)
        if logged:
            p.row, p.window = _log_train(p.window, s, epoch + 1, p.step, coeff, diag, log, bar), new_window()
        if p.step % s.steps_per_epoch == 0 or p.step >= s.last_step:
            break
        if config.save_every and p.step % config.save_every == 0:
            save(s, ["last.pt"], p.step, p.best)
    del batches
    run_together(s.d, s.device, lambda: _read_some(got, config.data))


def _read_some(got: int, data: str) -> bool:
    """True when this process trained on ``got`` > 0 batches this epoch, else :class:`DataError`."""
    if got == 0:
        raise DataError(f"no training sample could be read from {data}")
    return True


def _summary(s: Session, p: Progress, first_step: int, seconds: float) -> dict[str, Any]:
    """The end-of-session figures stored under ``summary`` in run.json."""
    return {
        "steps": p.step, "session_steps": p.step - first_step, "epochs_completed": p.step // s.steps_per_epoch,
        "steps_per_epoch": s.steps_per_epoch, "seconds": seconds,
        "samples_per_s": p.samples / seconds if seconds > 0 else 0.0, "final_loss": p.row.get("loss"),
        "final_acc": p.row.get("acc"), "best_val_acc": p.best, "stopped_on_plateau": p.stopped_on_plateau,
        "checkpoint": "checkpoints/last.pt", "world_size": s.d.world,
    }


def train(config: TrainConfig, resume: bool = False, command: list[str] | None = None) -> dict[str, Any]:
    """Train (or resume) a run in ``config.out``; returns the summary also stored in run.json,
    with the trained ``model`` added.

    Raises :class:`DataError` for unusable inputs and :class:`TrainingDiverged` on a NaN/inf loss.
    """
    s, step, best = prepare(config, resume)
    run = Path(config.out)
    record = _run_record(s, command, step if resume else None)
    bad = BadSamples(config.max_bad_samples, _stored_bad_samples(run) if resume else None)
    if s.d.main:
        write_json_atomic(run / "run.json", {**record, "bad_samples": bad.to_json()})
    log = MetricsLog(run, step if resume else None, config.tensorboard) if s.d.main else None
    bar = tqdm(total=s.last_step, initial=step, unit="step", dynamic_ncols=True,
               disable=not (config.progress and s.d.main), file=sys.stderr)
    p, start = Progress(step, best), time.time()
    try:
        while p.step < s.last_step:
            _train_epoch(s, p, log, bar, bad)
            p.best = _end_span(s, p.step, p.best, log, bar)
            if _stop_on_plateau(s, p.step, log):
                bar.write(f"validation accuracy has not risen for {config.patience} epochs: stopped at step {p.step}")
                p.stopped_on_plateau = True
                break
        if s.last_step == 0 and not resume:
            save(s, ["last.pt"], 0, None)  # --max-steps 0: the initialised model itself, for evaluation
    finally:
        bar.close()
        if log is not None:
            log.close()
    summary = _summary(s, p, step, time.time() - start)
    if s.d.main:
        write_json_atomic(run / "run.json", {**record, "summary": summary, "bad_samples": bad.to_json()})
    return {**summary, "bad_samples": bad.to_json(), "model": s.model}


def _stored_bad_samples(run: Path) -> dict[str, Any] | None:
    """The ``bad_samples`` an earlier session of the run recorded in run.json, if any."""
    try:
        return json.loads((run / "run.json").read_text()).get("bad_samples")
    except (OSError, ValueError, AttributeError):
        return None
