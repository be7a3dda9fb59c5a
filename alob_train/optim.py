"""The paper's two optimisers and their learning-rate schedule."""

from __future__ import annotations

import torch

from alob_train.config import TrainConfig
from alob_train.finetune import pretrained_parameter_ids
from alob_train.model import ALOB


LR_SCALINGS = ("none", "linear")


def lr_multiplier(config: TrainConfig, processes: int) -> float:
    """The factor on both learning rates under ``processes`` training processes: 1 with
    ``lr_scaling`` ``none``; the number of processes with ``linear`` (each process takes
    ``batch_size`` images per step, so the global batch is ``batch_size`` × processes)."""
    if config.lr_scaling not in LR_SCALINGS:
        raise ValueError(f"unknown lr_scaling {config.lr_scaling!r}: choose one of {', '.join(LR_SCALINGS)}")
    return float(processes) if config.lr_scaling == "linear" else 1.0


def _groups(params: list[torch.nn.Parameter], lr: float, pretrained: set[int], mult: float) -> list[dict]:
    """A side's parameter groups: the pretrained ones at ``lr × mult`` (named ``pretrained``), the
    rest (``new``) at ``lr``; frozen parameters (no gradient) are left out."""
    trainable = [p for p in params if p.requires_grad]
    old = [p for p in trainable if id(p) in pretrained]
    new = [p for p in trainable if id(p) not in pretrained]
    return ([{"params": new, "lr": lr, "name": "new"}]
            + ([{"params": old, "lr": lr * mult, "name": "pretrained"}] if old else []))


def build_optimizers(model: ALOB, config: TrainConfig, processes: int = 1) -> dict[str, torch.optim.Optimizer]:
    """SGD (momentum, weight decay) for the Trimmer side and Adam for the Identifier side
    (``baseline`` has only the latter), their rates scaled by :func:`lr_multiplier`. In a
    fine-tuned run each has a second parameter group, the pretrained parameters, at
    ``--backbone-lr-mult`` times the rate."""
    groups = model.param_groups()
    pretrained = pretrained_parameter_ids(model, config)
    mult = config.backbone_lr_mult
    lr_trimmer = config.lr_trimmer * lr_multiplier(config, processes)
    lr_identifier = config.lr_identifier * lr_multiplier(config, processes)
    optimizers: dict[str, torch.optim.Optimizer] = {}
    if groups["trimmer"]:
        optimizers["trimmer"] = torch.optim.SGD(_groups(groups["trimmer"], lr_trimmer, pretrained, mult),
                                                lr=lr_trimmer, momentum=config.momentum,
                                                weight_decay=config.weight_decay)
    optimizers["identifier"] = torch.optim.Adam(_groups(groups["identifier"], lr_identifier, pretrained, mult),
                                                lr=lr_identifier, weight_decay=config.identifier_weight_decay)
    return optimizers


def lr_factor(step: int, steps_per_epoch: int, milestones: tuple[int, ...], gamma: float,
              warmup_epochs: float) -> float:
    """Learning-rate multiplier at a global step: linear warm-up, then ×gamma at each milestone epoch."""
    epoch = step // steps_per_epoch
    factor = gamma ** sum(epoch >= m for m in milestones)
    warmup_steps = warmup_epochs * steps_per_epoch
    if warmup_steps > 0 and step < warmup_steps:
        factor *= (step + 1) / warmup_steps
    return factor


def build_schedulers(optimizers: dict[str, torch.optim.Optimizer], config: TrainConfig,
                     steps_per_epoch: int) -> dict[str, torch.optim.lr_scheduler.LambdaLR]:
    """One per-step :func:`lr_factor` schedule for each optimiser; the ``pretrained`` groups stay
    at rate 0 for the first ``--head-warmup-steps`` steps."""
    schedule = (steps_per_epoch, tuple(config.milestones), config.gamma, config.warmup_epochs)
    hold = config.head_warmup_steps

    def rule(name: str):
        if name == "pretrained" and hold:
            return lambda s: 0.0 if s < hold else lr_factor(s, *schedule)
        return lambda s: lr_factor(s, *schedule)

    return {k: torch.optim.lr_scheduler.LambdaLR(o, [rule(g.get("name", "new")) for g in o.param_groups])
            for k, o in optimizers.items()}


def optimizer_states_to(optimizers: dict[str, torch.optim.Optimizer], device: torch.device) -> None:
    """Move optimiser states (loaded on the CPU from a checkpoint) to their parameters' device;
    Adam's step counters stay where they are."""
    for optimizer in optimizers.values():
        for state in optimizer.state.values():
            for key, value in state.items():
                if torch.is_tensor(value) and key != "step":
                    state[key] = value.to(device)
