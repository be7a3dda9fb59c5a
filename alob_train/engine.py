"""The training loop: one backward pass of L_f + λ·L_m, two optimisers, schedules, AMP, DDP,
checkpoints with exact resumption, metrics.csv, TensorBoard and a progress bar."""

from __future__ import annotations

import json
import math
import os
import sys
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader
from tqdm import tqdm

from alob_train import __version__
from alob_train.checkpoint import (
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from alob_train.data import (
    DataError,
    DataInfo,
    FolderDataset,
    Occlusion,
    ResumableSampler,
    SampleTransform,
    ShardStream,
    open_data,
    worker_init,
)
from alob_train.layers import dann_ramp
from alob_train.model import ALOB

# Settings that do not change what is trained; they may differ when a run is resumed.
RESUMABLE = ("epochs", "max_steps", "workers", "device", "log_every", "save_every", "val", "val_batch_size",
             "tensorboard", "progress", "threads", "compile")


class TrainingDiverged(Exception):
    """The loss became NaN or infinite; the run stopped and kept its last good checkpoint."""


@dataclass
class TrainConfig:
    """Every setting of a run; ``run.json`` stores it and ``--resume`` reloads it."""

    data: str
    out: str
    backbone: str = "resnet18"
    variant: str = "alob"
    input_size: tuple[int, int] | None = None
    epochs: int = 21
    max_steps: int | None = None
    batch_size: int = 128
    lr_trimmer: float = 0.01
    lr_identifier: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    identifier_weight_decay: float = 0.0
    milestones: tuple[int, ...] = (10,)
    gamma: float = 0.1
    warmup_epochs: float = 0.0
    trimmer_weight: float = 1.0
    grl_coeff: float = 1.0
    grl_schedule: str = "constant"
    classifier: str = "shared"
    detach_fpp: bool = False
    scale: float = 30.0
    margin: float = 0.4
    dim: int = 512
    dropout: float = 0.0
    augment: bool = True
    jitter: tuple[float, float, float, float] = (0.2, 0.2, 0.2, 0.05)
    occlude: bool = False
    clean_ratio: str = "1:2"
    scale_set: str = "1:0.5:5"
    split: str = "train"
    shuffle_buffer: int = 1000
    workers: int = 2
    seed: int = 0
    device: str = "auto"
    amp: str = "auto"
    channels_last: bool = True
    compile: bool = False
    val: str | None = None
    val_batch_size: int = 64
    log_every: int = 20
    save_every: int = 0
    tensorboard: bool = True
    progress: bool = True
    threads: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_json(cls, values: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        tuples = ("input_size", "milestones", "jitter")
        return cls(**{k: tuple(v) if k in tuples and v is not None else v for k, v in values.items() if k in known})


@dataclass
class _Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def _init_distributed(device_kind: str) -> _Dist:
    """Join the process group when started by torchrun (WORLD_SIZE > 1): nccl on GPU, gloo on CPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return _Dist()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device_kind == "cuda" else "gloo")
    return _Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def _resolve_device(name: str, local_rank: int) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        name = f"cuda:{local_rank}"
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DataError("--device cuda asked for, but no CUDA device is available")
    return device


def _amp_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    if amp == "auto":
        amp = "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "off"
    return {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}[amp]


def lr_factor(step: int, steps_per_epoch: int, milestones: tuple[int, ...], gamma: float,
              warmup_epochs: float) -> float:
    """Learning-rate multiplier at a global step: linear warm-up, then ×gamma at each milestone epoch."""
    epoch = step // steps_per_epoch
    factor = gamma ** sum(epoch >= m for m in milestones)
    warmup_steps = warmup_epochs * steps_per_epoch
    if warmup_steps > 0 and step < warmup_steps:
        factor *= (step + 1) / warmup_steps
    return factor


def build_optimizers(model: ALOB, config: TrainConfig) -> dict[str, torch.optim.Optimizer]:
    """The paper's two optimisers: SGD (momentum, weight decay) for the Trimmer side and Adam for
    the Identifier side (``baseline`` has only the latter)."""
    groups = model.param_groups()
    optimizers: dict[str, torch.optim.Optimizer] = {}
    if groups["trimmer"]:
        optimizers["trimmer"] = torch.optim.SGD(groups["trimmer"], lr=config.lr_trimmer, momentum=config.momentum,
                                                weight_decay=config.weight_decay)
    optimizers["identifier"] = torch.optim.Adam(groups["identifier"], lr=config.lr_identifier,
                                                weight_decay=config.identifier_weight_decay)
    return optimizers


class _Metrics:
    """metrics.csv (rewritten atomically with pandas at each row) and TensorBoard, on rank 0."""

    def __init__(self, run: Path, resume_step: int | None, tensorboard: bool) -> None:
        self.path = run / "metrics.csv"
        self.rows: list[dict] = []
        if resume_step is not None and self.path.is_file():
            old = pd.read_csv(self.path)
            self.rows = old[old["step"] <= resume_step].to_dict("records")
        self.writer = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(run / "tensorboard"), purge_step=resume_step)

    def add(self, row: dict) -> None:
        self.rows.append(row)
        tmp = self.path.with_suffix(".csv.tmp")
        pd.DataFrame(self.rows).to_csv(tmp, index=False)
        os.replace(tmp, self.path)
        if self.writer is not None:
            for key, value in row.items():
                if key not in ("epoch", "step", "phase") and isinstance(value, (int, float)) and math.isfinite(value):
                    self.writer.add_scalar(f"{row['phase']}/{key}", value, row["step"])

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _loader(info: DataInfo, config: TrainConfig, transform: SampleTransform, d: _Dist, epoch: int,
            skip_batches: int, pin: bool):
    """The batches of one epoch for this rank, starting ``skip_batches`` in (resume)."""
    common = dict(batch_size=config.batch_size, num_workers=config.workers, pin_memory=pin,
                  worker_init_fn=worker_init, drop_last=True,
                  generator=torch.Generator().manual_seed(config.seed + epoch))
    if info.kind == "folder":
        dataset = FolderDataset(info, transform, config.seed)
        dataset.epoch = epoch
        sampler = ResumableSampler(dataset, d.world, d.rank, config.seed)
        sampler.set_epoch(epoch)
        sampler.skip = skip_batches * config.batch_size
        return iter(DataLoader(dataset, sampler=sampler, **common))
    stream = ShardStream(info, transform, config.seed, d.rank, d.world, config.shuffle_buffer)
    stream.epoch = epoch
    batches = iter(DataLoader(stream, **common))
    for _ in range(skip_batches):  # a stream cannot seek: read through what was already trained on
        next(batches)
    return batches


def _state(model: ALOB, optimizers: dict, schedulers: dict, scaler, epoch: int, step: int,
           step_in_epoch: int, info: DataInfo, config: TrainConfig, best: float | None) -> dict[str, Any]:
    return {
        "model": model.state_dict(),
        "optimizers": {k: o.state_dict() for k, o in optimizers.items()},
        "schedulers": {k: s.state_dict() for k, s in schedulers.items()},
        "scaler": scaler.state_dict() if scaler is not None else {},
        "epoch": epoch, "step": step, "step_in_epoch": step_in_epoch,
        "classes": list(info.classes), "config": config.to_json(), "rng": rng_state(),
        "best_val_acc": best, "version": __version__,
    }


def train(config: TrainConfig, resume: bool = False, command: list[str] | None = None) -> dict[str, Any]:
    """Train (or resume) a run in ``config.out``; returns the summary also stored in run.json.

    Raises :class:`DataError` for unusable inputs and :class:`TrainingDiverged` on a NaN/inf loss.
    """
    device_kind = "cuda" if config.device.startswith("cuda") or (config.device == "auto" and torch.cuda.is_available()) else "cpu"
    d = _init_distributed(device_kind)
    device = _resolve_device(config.device, d.local_rank)
    if config.threads:
        torch.set_num_threads(config.threads)
    if device.type == "cuda":
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    run = Path(config.out)
    ckpt_dir = run / "checkpoints"

    info = open_data(config.data, config.split)
    input_size = tuple(config.input_size or info.first_image().shape[:2])
    config.input_size = input_size  # type: ignore[assignment]
    steps_per_epoch = info.num_samples // (config.batch_size * d.world)
    if steps_per_epoch == 0:
        raise DataError(f"{info.num_samples} samples are fewer than one batch of {config.batch_size} "
                        f"per process ({d.world} processes): lower --batch-size")
    total_steps = config.epochs * steps_per_epoch
    last_step = min(total_steps, config.max_steps) if config.max_steps else total_steps

    checkpoint = None
    if resume:
        if not (ckpt_dir / "last.pt").is_file():
            raise DataError(f"nothing to resume: {ckpt_dir / 'last.pt'} not found")
        checkpoint = load_checkpoint(ckpt_dir / "last.pt")
        if list(checkpoint["classes"]) != list(info.classes):
            raise DataError(f"the classes of {config.data} differ from those the run was trained on")

    torch.manual_seed(config.seed)
    model = ALOB(info.num_classes, config.backbone, config.variant, input_size, config.dim, config.dropout,
                 config.classifier, config.detach_fpp, config.grl_coeff, config.scale, config.margin)
    optimizers = build_optimizers(model, config)
    schedule = (steps_per_epoch, tuple(config.milestones), config.gamma, config.warmup_epochs)
    schedulers = {k: torch.optim.lr_scheduler.LambdaLR(o, lambda s: lr_factor(s, *schedule))
                  for k, o in optimizers.items()}
    amp_dtype = _amp_dtype(config.amp, device)
    scaler = torch.amp.GradScaler(device.type) if amp_dtype == torch.float16 else None

    step, best = 0, None
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
        for k, o in optimizers.items():
            o.load_state_dict(checkpoint["optimizers"][k])
        for k, s in schedulers.items():
            s.load_state_dict(checkpoint["schedulers"][k])
        if scaler is not None and checkpoint["scaler"]:
            scaler.load_state_dict(checkpoint["scaler"])
        step, best = int(checkpoint["step"]), checkpoint["best_val_acc"]
        set_rng_state(checkpoint["rng"])
    model.to(device)
    if config.channels_last:
        model.to(memory_format=torch.channels_last)
    for o in optimizers.values():  # optimiser states loaded on CPU follow their parameters
        for state in o.state.values():
            for k, v in state.items():
                if torch.is_tensor(v) and k != "step":
                    state[k] = v.to(device)
    net = torch.nn.parallel.DistributedDataParallel(
        model, device_ids=[device.index] if device.type == "cuda" else None) if d.world > 1 else model
    forward = torch.compile(net) if config.compile else net

    transform = SampleTransform(input_size, config.augment, tuple(config.jitter),
                                Occlusion.parse(config.clean_ratio, config.scale_set) if config.occlude else None)
    if d.main:
        run.mkdir(parents=True, exist_ok=True)
        (run / "run.json").write_text(json.dumps({
            "tool": "alob-train", "version": __version__, "command": command or sys.argv,
            "config": config.to_json(), "world_size": d.world, "device": str(device),
            "data": {"kind": info.kind, "samples": info.num_samples, "classes": info.num_classes},
            "steps_per_epoch": steps_per_epoch, "total_steps": total_steps, "resumed_from_step": step if resume else None,
        }, indent=2))
    metrics = _Metrics(run, step if resume else None, config.tensorboard) if d.main else None

    def save(epoch: int, step_in_epoch: int, names: list[str]) -> None:
        if not d.main:
            return
        state = _state(model, optimizers, schedulers, scaler, epoch, step, step_in_epoch, info, config, best)
        for name in names:
            save_checkpoint(state, ckpt_dir / name)

    start = time.time()
    first_step, samples_done = step, 0
    bar = tqdm(total=last_step, initial=step, unit="step", dynamic_ncols=True,
               disable=not (config.progress and d.main), file=sys.stderr)
    window = {"loss": 0.0, "loss_f": 0.0, "loss_m": 0.0, "correct": 0.0, "n": 0.0, "t": time.time()}
    last = {}
    try:
        while step < last_step:
            epoch, in_epoch = divmod(step, steps_per_epoch)
            batches = _loader(info, config, transform, d, epoch, in_epoch, device.type == "cuda")
            model.train()
            got = 0
            for images, labels in batches:
                got += 1
                images = images.to(device, non_blocking=True)
                if config.channels_last:
                    images = images.contiguous(memory_format=torch.channels_last)
                labels = labels.to(device, non_blocking=True)
                coeff = config.grl_coeff * (dann_ramp(step / total_steps) if config.grl_schedule == "dann" else 1.0)
                model.set_grl_coeff(coeff)
                with torch.autocast(device.type, dtype=amp_dtype) if amp_dtype else nullcontext():
                    out = forward(images, labels)
                loss_m = out["loss_m"] if out["loss_m"] is not None else torch.zeros((), device=device)
                loss = out["loss_f"] + config.trimmer_weight * loss_m
                n = labels.numel()
                stats = torch.stack([loss.detach().float() * n, out["loss_f"].detach().float() * n,
                                     loss_m.detach().float() * n,
                                     (out["cos"].argmax(1) == labels).sum().float(),
                                     torch.tensor(float(n), device=device)])
                if d.world > 1:
                    dist.all_reduce(stats)
                stats = stats.tolist()
                if not math.isfinite(stats[0]):
                    raise TrainingDiverged(
                        f"loss became {stats[0] / stats[4]} at step {step + 1} (epoch {epoch + 1}); stopped. "
                        f"{ckpt_dir / 'last.pt'} keeps the last good state: lower the learning rate or "
                        "use --warmup-epochs, then --resume")
                for o in optimizers.values():
                    o.zero_grad(set_to_none=True)
                if scaler is not None:
                    scaler.scale(loss).backward()
                    for o in optimizers.values():
                        scaler.step(o)
                    scaler.update()
                else:
                    loss.backward()
                    for o in optimizers.values():
                        o.step()
                for s in schedulers.values():
                    s.step()
                step += 1
                samples_done += int(stats[4])
                for key, value in zip(("loss", "loss_f", "loss_m", "correct", "n"), stats):
                    window[key] += value
                bar.update(1)
                if step % config.log_every == 0 or step == last_step or (step % steps_per_epoch) == 0:
                    seconds = time.time() - window["t"]
                    last = {
                        "epoch": epoch + 1, "step": step, "phase": "train",
                        "loss": window["loss"] / window["n"], "loss_f": window["loss_f"] / window["n"],
                        "loss_m": window["loss_m"] / window["n"], "acc": window["correct"] / window["n"],
                        "lr_trimmer": optimizers["trimmer"].param_groups[0]["lr"] if "trimmer" in optimizers else float("nan"),
                        "lr_identifier": optimizers["identifier"].param_groups[0]["lr"],
                        "grl_coeff": coeff, "samples_per_s": window["n"] / max(seconds, 1e-9),
                    }
                    bar.set_postfix(loss=f"{last['loss']:.3f}", acc=f"{last['acc']:.3f}",
                                    lr=f"{last['lr_identifier']:.2g}", img_s=f"{last['samples_per_s']:.1f}")
                    if metrics is not None:
                        metrics.add(last)
                    window = {"loss": 0.0, "loss_f": 0.0, "loss_m": 0.0, "correct": 0.0, "n": 0.0, "t": time.time()}
                if step % steps_per_epoch == 0:
                    break
                if step >= last_step:
                    break
                if config.save_every and step % config.save_every == 0:
                    save(epoch, step - epoch * steps_per_epoch, ["last.pt"])
            del batches
            if got == 0:
                raise DataError(f"no training sample could be read from {config.data}")
            epoch_done = step % steps_per_epoch == 0
            if epoch_done:
                done_epoch = step // steps_per_epoch
                names = ["last.pt", f"epoch_{done_epoch:03d}.pt"]
                if config.val and d.main:
                    from alob_train.embed import validate_folder

                    result = validate_folder(model, config.val, input_size, device, config.val_batch_size,
                                           config.channels_last)
                    metrics.add({"epoch": done_epoch, "step": step, "phase": "val", **result})
                    if best is None or result["val_acc"] > best:
                        best = result["val_acc"]
                        names.append("best.pt")
                    bar.write(f"epoch {done_epoch}: val accuracy {result['val_acc']:.4f} ± {result['val_std']:.4f}")
                save(done_epoch, 0, names)
            else:
                save(epoch, step - epoch * steps_per_epoch, ["last.pt"])
            if d.world > 1:
                dist.barrier()
    finally:
        bar.close()
        if metrics is not None:
            metrics.close()
    seconds = time.time() - start
    summary = {
        "steps": step, "session_steps": step - first_step, "epochs_completed": step // steps_per_epoch, "steps_per_epoch": steps_per_epoch,
        "seconds": seconds, "samples_per_s": samples_done / seconds if seconds > 0 else 0.0,
        "final_loss": last.get("loss"), "final_acc": last.get("acc"), "best_val_acc": best,
        "checkpoint": str(ckpt_dir / "last.pt"), "world_size": d.world,
    }
    if d.main:
        meta = json.loads((run / "run.json").read_text())
        meta["summary"] = summary
        (run / "run.json").write_text(json.dumps(meta, indent=2))
    summary["model"] = model
    return summary
