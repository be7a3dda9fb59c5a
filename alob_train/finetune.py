"""Fine-tuning a pretrained recogniser: initialisation, frozen stages, batch-norm statistics and
the parameter groups that get a smaller learning rate.

A run with ``--init NAME`` (:data:`alob_train.pretrained.INITS`) starts its Identifier from those
weights, and its Trimmer's trunk too unless ``--trimmer-init scratch``. The Trimmer's embedding head
always starts new: with the Identifier's own head the Trimmer would output f itself, and the
orthogonal projection would leave nothing (f − proj_f(f) = 0). Then:

* ``--freeze-until STAGE`` freezes the trunk stages up to and including STAGE in every pretrained
  network: no gradient, no update, batch norms in eval mode;
* ``--bn-stats frozen`` keeps every batch norm of a pretrained network in eval mode (its running
  statistics are used and never change); ``update`` trains them as usual, after
  :func:`calibrate_batch_norms` has given the folded batch norms of a converted graph (identity plus
  an offset) the real statistics of the first batch, so that training mode starts from the function
  the pretrained network computes;
* ``--backbone-lr-mult`` multiplies the learning rate of the pretrained parameters (the new CosFace
  heads keep the full rate), and ``--head-warmup-steps`` holds those parameters still for the first
  steps while the heads settle.
"""

from __future__ import annotations

import torch
from torch import nn

from alob_train.backbones import Backbone, stage_names
from alob_train.config import ConfigError, TrainConfig
from alob_train.pretrained import init_weights


def pretrained_networks(model: nn.Module, config: TrainConfig) -> list[nn.Module]:
    """The parts of ``model`` that start from pretrained weights: the Identifier backbone and,
    unless ``--trimmer-init scratch``, the Trimmer's trunk (none with ``--init scratch``)."""
    if config.init == "scratch":
        return []
    nets = [model.identifier]
    if model.trimmer is not None and config.trimmer_init == "trunk":
        nets.append(model.trimmer.trunk)
    return nets


def _trunk(part: nn.Module) -> nn.Module:
    return part.trunk if isinstance(part, Backbone) else part


def frozen_stage_count(config: TrainConfig) -> int:
    """How many leading trunk stages ``--freeze-until`` freezes (0: none)."""
    if not config.freeze_until or config.freeze_until == "none" or config.init == "scratch":
        return 0
    names = stage_names(config.backbone)
    if config.freeze_until not in names:
        raise ConfigError(f"--freeze-until {config.freeze_until!r} is not a stage of {config.backbone}: "
                          f"choose one of {', '.join(names)}")
    return names.index(config.freeze_until) + 1


def shared_stage_count(config: TrainConfig) -> int:
    """Leading trunk stages that the Identifier and the Trimmer may compute once for both: the
    frozen ones, when both start from the same weights and ``--shared-trunk`` is on."""
    if not config.shared_trunk or config.variant == "baseline" or config.trimmer_init != "trunk":
        return 0
    return frozen_stage_count(config)


def load_init(model: nn.Module, config: TrainConfig) -> None:
    """Copy the pretrained weights into every network that starts from them (a new run only: a
    resumed run and an evaluated checkpoint carry their own weights)."""
    nets = pretrained_networks(model, config)
    if nets:
        state = init_weights(config.init, config.backbone)
        model.identifier.load_state_dict(state)
        if len(nets) > 1:
            model.trimmer.trunk.load_state_dict({k[len("trunk."):]: v for k, v in state.items() if k.startswith("trunk.")})


def apply_freezing(model: nn.Module, config: TrainConfig) -> None:
    """Mark the frozen stages (no gradient) and list the modules that stay in eval mode while the
    model trains (``model.kept_in_eval``, honoured by ``ALOB.train``)."""
    count = frozen_stage_count(config)
    kept: list[nn.Module] = []
    for net in pretrained_networks(model, config):
        for stage in list(_trunk(net).children())[:count]:
            stage.requires_grad_(False)
            kept.append(stage)
        if config.bn_stats == "frozen":
            kept += [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    model.kept_in_eval = kept
    model.train(model.training)


@torch.no_grad()
def calibrate_batch_norms(model: nn.Module, config: TrainConfig, images: torch.Tensor) -> None:
    """For ``--bn-stats update``: re-express every trainable batch norm of the pretrained networks
    with the statistics of ``images`` (mean μ, variance σ² of its input) without changing what it
    computes in eval mode: running stats (μ, σ²), weight γ·√(σ²+ε)/√(v+ε), bias β + (μ − m)·γ/√(v+ε),
    where (m, v, γ, β) are its values before. Training mode then starts from nearly the same function."""
    norms = [m for net in pretrained_networks(model, config) for m in net.modules()
             if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.weight is not None and m.weight.requires_grad]
    stats: dict[nn.Module, tuple[torch.Tensor, torch.Tensor]] = {}

    def record(module, inputs, _output):
        x = inputs[0].float()
        dims = [0] + list(range(2, x.dim()))
        stats[module] = (x.mean(dims), x.var(dims, unbiased=False))

    hooks = [m.register_forward_hook(record) for m in norms]
    was_training = model.training
    model.eval()
    try:
        for net in pretrained_networks(model, config):
            net(images)
    finally:
        for hook in hooks:
            hook.remove()
        model.train(was_training)
    for m, (mean, var) in stats.items():
        scale = m.weight / torch.sqrt(m.running_var + m.eps)
        m.bias.add_((mean - m.running_mean) * scale)
        m.weight.copy_(scale * torch.sqrt(var + m.eps))
        m.running_mean.copy_(mean)
        m.running_var.copy_(var)


def pretrained_parameter_ids(model: nn.Module, config: TrainConfig) -> set[int]:
    """``id`` of every parameter that came pretrained (``--backbone-lr-mult`` applies to them)."""
    return {id(p) for net in pretrained_networks(model, config) for p in net.parameters()}
