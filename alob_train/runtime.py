"""Where a run executes: the torchrun process group, the device and mixed precision, and
:func:`run_together`, which lets a process's error stop every process of the group at once."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, TypeVar

import torch
import torch.distributed as dist

from alob_common.errors import UserError
from alob_train.data import DataError

T = TypeVar("T")


@dataclass(frozen=True)
class Dist:
    """This process's place in a torchrun group (one process: rank 0 of 1)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Rank 0, the one process that writes the run folder."""
        return self.rank == 0


def init_distributed(device: str) -> Dist:
    """Join the process group when started by torchrun (WORLD_SIZE > 1): nccl for a GPU run
    (``device`` cuda, or auto with a GPU present), gloo on CPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    if not dist.is_initialized():
        on_gpu = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
        dist.init_process_group("nccl" if on_gpu else "gloo")
    return Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def setup_device(name: str, local_rank: int, threads: int | None) -> torch.device:
    """The device of ``--device`` (auto: a GPU when there is one; under torchrun the
    LOCAL_RANK one), with torch's fast GPU settings (cuDNN autotuning, TF32) turned on."""
    if threads:
        torch.set_num_threads(threads)
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        name = f"cuda:{local_rank}"
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DataError("--device cuda asked for, but no CUDA device is available")
    if device.type == "cuda":
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return device


def amp_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast type of ``--amp`` (auto: bf16 on a GPU that has it, else none)."""
    if amp == "auto":
        amp = "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "off"
    return {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}[amp]


class RunStopped(UserError):
    """Under torchrun: one process met an error (too many bad samples, unreadable data), and every
    process stops with the same one-line message naming that process and its error."""

    def __init__(self, message: str, origin: int) -> None:
        super().__init__(message)
        self.origin = origin  # the rank whose error stopped the run


def run_together(d: Dist, device: torch.device, work: Callable[[], T | None]) -> T | None:
    """``work()`` in every process of the group at once (the same call in each), so that no process
    is left waiting in a collective for one that stopped. When ``work`` raises a
    :class:`UserError` in any process, every process raises :class:`RunStopped` with the message
    of the lowest such rank; when it returns None in any process (its data ran out), every
    process gets None. With one process: ``work()``, its errors as they are."""
    if d.world <= 1:
        return work()
    try:
        result, error = work(), None
    except UserError as err:
        result, error = None, err
    flags = torch.tensor([float(error is not None), float(result is None)], device=device)
    dist.all_reduce(flags)
    failed, ended = flags.tolist()
    if failed:
        messages: list[str | None] = [None] * d.world
        dist.all_gather_object(messages, None if error is None else str(error))
        origin = next(rank for rank, message in enumerate(messages) if message is not None)
        raise RunStopped(f"process {origin} of {d.world} stopped the run: {messages[origin]}", origin)
    return None if ended else result
