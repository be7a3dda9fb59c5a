"""The settings of a training run, their defaults and the presets, in one place.

:class:`TrainConfig`'s defaults are the default preset (``paper``), so ``train(TrainConfig(data=...,
out=...))`` from Python is the run ``alob-train --data ... --out ...`` makes; :func:`resolve_config`
is what both call to apply a preset and explicit settings; :func:`resume_config` applies the
settings of a rerun with ``--resume`` to a run's stored config, refusing those that would change
what is trained.
"""

from __future__ import annotations

import json
import os
import types
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Mapping, Union, get_args, get_origin, get_type_hints

from alob_common.errors import UserError
from alob_common.settings import check_same_settings

# The paper's training configuration (§4.2): 21 epochs, batch 128, learning rates ÷10 after epoch
# 10, initial rate 0.01 for ResNet18 (and its face-style siblings) and 0.001 for LightCNN-9.
# "paper-exact" uses it on both optimisers. "paper" (the default) differs in one value: Adam (the
# Identifier side) starts at 0.001 for the ResNets too, because Adam at 0.01 barely learned in our
# measurement (docs/BENCHMARKS.md, "alob-train": 7 % vs 27 % training accuracy over steps 121-150
# on 62 LFW identities). A value that depends on the backbone is a dict keyed by backbone name.
PAPER_LR = {"resnet18": 0.01, "iresnet18": 0.01, "iresnet50": 0.01, "lightcnn9": 0.001, "facenet": 0.01}
_PAPER_SCHEDULE = {"epochs": 21, "batch_size": 128, "milestones": (10,), "gamma": 0.1, "warmup_epochs": 0.0}
PRESETS: dict[str, dict[str, Any]] = {
    "paper": {**_PAPER_SCHEDULE, "lr_trimmer": PAPER_LR,
              "lr_identifier": {k: min(v, 0.001) for k, v in PAPER_LR.items()}},
    "paper-exact": {**_PAPER_SCHEDULE, "lr_trimmer": PAPER_LR, "lr_identifier": PAPER_LR},
}
DEFAULT_PRESET = "paper"
_DEFAULT = PRESETS[DEFAULT_PRESET]

# The trunk stage up to which a pretrained backbone is frozen when --freeze-until is not given.
DEFAULT_FREEZE = {"facenet": "mixed_7a"}

# Settings that do not change what is trained: a resumed run may give them other values.
RESUMABLE = ("epochs", "max_steps", "workers", "device", "augment_on", "log_every", "save_every", "val", "val_batch_size",
             "patience", "tensorboard", "progress", "threads", "compile", "max_bad_samples")
# Where the run and its data are may change too (the data's classes are checked on resume).
_PLACES = ("data", "out")


class ConfigError(UserError):
    """A run's stored settings (``run.json``) that cannot be read or make no sense."""


def default_workers() -> int:
    """DataLoader workers per training process when none are asked for: min(8, CPU cores)."""
    return min(8, os.cpu_count() or 1)


def default_out(backbone: str, variant: str) -> str:
    """The run folder when ``--out`` is not given."""
    return f"runs/{backbone}-{variant}"


@dataclass
class TrainConfig:
    """Every setting of a run; ``run.json`` stores it and ``--resume`` reloads it.

    The defaults are those of the ``paper`` preset; ``lr_trimmer``/``lr_identifier`` left at
    ``None`` take that preset's rate for the backbone.
    """

    data: str
    out: str
    backbone: str = "resnet18"
    variant: str = "alob"
    input_size: tuple[int, int] | None = None
    epochs: int = _DEFAULT["epochs"]
    max_steps: int | None = None
    batch_size: int = _DEFAULT["batch_size"]
    lr_trimmer: float | None = None
    lr_identifier: float | None = None
    momentum: float = 0.9
    weight_decay: float = 5e-4
    identifier_weight_decay: float = 0.0
    milestones: tuple[int, ...] = _DEFAULT["milestones"]
    gamma: float = _DEFAULT["gamma"]
    warmup_epochs: float = _DEFAULT["warmup_epochs"]
    lr_scaling: str = "none"  # or "linear": under torchrun both rates × the number of processes
    trimmer_weight: float = 1.0
    grl_coeff: float = 1.0
    grl_schedule: str = "constant"
    classifier: str = "separate"  # docs/RESULTS.md, "Screening": the shared head couples fᵐ to W_y
    detach_fpp: bool = False
    scale: float = 30.0
    margin: float = 0.4
    dim: int = 512
    dropout: float = 0.0
    augment: bool = True
    jitter: tuple[float, float, float, float] = (0.2, 0.2, 0.2, 0.05)
    occlude: bool = False
    clean_ratio: str = "1:2"
    scale_set: str = "1..5/0.5"
    mask_fraction: float = 0.0
    augment_on: str = "workers"  # or "device": decode clean JPEGs, flip and jitter on the training device
    split: str = "train"
    shuffle_buffer: int = 1000
    workers: int = field(default_factory=default_workers)
    seed: int = 0
    device: str = "auto"
    amp: str = "auto"
    channels_last: bool = True
    compile: bool = False
    val: str | None = None
    val_batch_size: int = 64
    patience: int | None = None  # with val: stop once accuracy has not risen for this many epochs
    log_every: int = 20
    save_every: int = 0
    tensorboard: bool = True
    progress: bool = True
    threads: int | None = None
    max_bad_samples: int = 10
    # fine-tuning a pretrained network (alob_train/finetune.py; docs/USAGE.md, "Fine-tuning")
    # (each default measured: docs/RESULTS.md, "Fine-tuning FaceNet"; none acts with init "scratch")
    init: str = "scratch"
    trimmer_init: str = "trunk"  # pretrained trunk, new head; or "scratch"
    freeze_until: str | None = None  # None: DEFAULT_FREEZE of the backbone when init is pretrained
    backbone_lr_mult: float = 0.1
    bn_stats: str = "frozen"  # or "update"
    head_warmup_steps: int = 0
    shared_trunk: bool = True

    def __post_init__(self) -> None:
        if self.lr_trimmer is None or self.lr_identifier is None:
            rates = preset_values(DEFAULT_PRESET, self.backbone)
            self.lr_trimmer = rates["lr_trimmer"] if self.lr_trimmer is None else self.lr_trimmer
            self.lr_identifier = rates["lr_identifier"] if self.lr_identifier is None else self.lr_identifier

    def to_json(self) -> dict[str, Any]:
        """The settings as JSON values, as ``run.json`` and checkpoints store them: tuples become
        lists, and the paths do not depend on where the run lies or the command ran (``out`` is
        ``"."``, ``data`` and ``val`` relative to the run folder when inside it, else absolute), so
        that a copied run folder is a run of its own."""
        values = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}
        values.update(out=".", data=_portable(self.data, self.out), val=_portable(self.val, self.out))
        return values

    @classmethod
    def from_json(cls, values: Mapping[str, Any], run: str | Path | None = None) -> "TrainConfig":
        """Back from :meth:`to_json`; unknown keys are ignored, missing ones take the defaults.
        With ``run`` (the folder the values were stored in) ``out`` becomes ``run`` and relative
        paths are taken from it. Raises :class:`ConfigError` for a value of the wrong type."""
        known = {f.name: f for f in fields(cls)}
        values = {k: v for k, v in values.items() if k in known}
        for key, value in values.items():
            if not _fits(value, _HINTS[key]):
                raise ConfigError(f"config.{key} is {value!r}, not of type {known[key].type}")
        if run is not None:
            values.update(out=str(run), data=_located(values.get("data"), run), val=_located(values.get("val"), run))
        tuples = ("input_size", "milestones", "jitter")
        return cls(**{k: tuple(v) if k in tuples and v is not None else v for k, v in values.items()})


_HINTS = get_type_hints(TrainConfig)


def _fits(value: Any, hint: Any) -> bool:
    """Whether a JSON value can stand for a field annotated ``hint`` (ints for floats too)."""
    origin, args = get_origin(hint), get_args(hint)
    if origin in (Union, types.UnionType):
        return any(_fits(value, h) for h in args)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            return False
        if args[-1] is Ellipsis:
            return all(_fits(v, args[0]) for v in value)
        return len(value) == len(args) and all(_fits(v, h) for v, h in zip(value, args))
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint) if isinstance(hint, type) else True


def _portable(path: str | None, run: str) -> str | None:
    """``path`` as stored in a run: relative to the run folder ``run`` when inside it, else absolute."""
    if not path:
        return path
    absolute, folder = Path(os.path.abspath(path)), Path(os.path.abspath(run))
    return absolute.relative_to(folder).as_posix() if absolute.is_relative_to(folder) else str(absolute)


def _located(path: str | None, run: str | Path) -> str | None:
    """A stored path back: a relative one is relative to the run folder ``run``. (Runs made before
    paths were stored this way hold them relative to the working folder; such a path is kept as it
    is when it exists and its reading under ``run`` does not.)"""
    if not path or os.path.isabs(path):
        return path
    inside = Path(run) / path
    return path if not inside.exists() and Path(path).exists() else os.path.normpath(inside)


def load_run_config(run: str | Path) -> TrainConfig:
    """The settings stored in ``run/run.json``, with ``out`` set to ``run`` wherever the folder
    was made (a copied run is resumed in the copy); a missing, unreadable or nonsensical file
    raises :class:`ConfigError` naming it."""
    path = Path(run) / "run.json"
    if not path.is_file():
        raise ConfigError(f"nothing to resume: {path} not found")
    hint = "restore it from a copy or start a new run (another --out)"
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise ConfigError(f"cannot read {path}: not a run record ({err}); {hint}") from None
    stored = record.get("config") if isinstance(record, dict) else None
    if not isinstance(stored, dict) or not isinstance(stored.get("data"), str):
        raise ConfigError(f"cannot read {path}: it holds no run settings (\"config\" with \"data\"); {hint}")
    try:
        return TrainConfig.from_json(stored, run)
    except (ConfigError, TypeError, ValueError) as err:
        raise ConfigError(f"cannot use {path}: {err}; {hint}") from None


def config_defaults() -> dict[str, Any]:
    """``{setting: default}`` of every :class:`TrainConfig` field that has a fixed default."""
    return {f.name: f.default for f in fields(TrainConfig) if f.default is not MISSING}


def preset_values(preset: str, backbone: str, lr: float | None = None) -> dict[str, Any]:
    """The settings a preset gives for a backbone; ``lr``, when given, is both learning rates."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}: choose one of {', '.join(PRESETS)}")
    values = {}
    for key, value in PRESETS[preset].items():
        if isinstance(value, dict):
            if backbone not in value:
                raise ValueError(f"unknown backbone {backbone!r}: choose one of {', '.join(value)}")
            value = value[backbone]
        values[key] = value
    if lr is not None:
        values.update(lr_trimmer=lr, lr_identifier=lr)
    return values


def resolve_config(preset: str = DEFAULT_PRESET, overrides: Mapping[str, Any] | None = None) -> TrainConfig:
    """The config of a new run: the preset's values for the backbone, then ``overrides``
    (:class:`TrainConfig` field names, ``data`` and ``out`` among them; ``lr`` sets both learning
    rates unless ``lr_trimmer``/``lr_identifier`` are given too). What ``alob-train`` runs."""
    overrides = dict(overrides or {})
    lr = overrides.pop("lr", None)
    backbone = overrides.get("backbone", TrainConfig.backbone)
    values = preset_values(preset, backbone, lr)
    if overrides.get("init", "scratch") != "scratch" and overrides.get("freeze_until") is None:
        values["freeze_until"] = DEFAULT_FREEZE.get(backbone)
    return TrainConfig(**{**values, **overrides})


def resume_config(stored: TrainConfig, overrides: Mapping[str, Any], preset: str | None = None) -> TrainConfig:
    """A run's stored config with the settings of a rerun applied (``overrides`` as in
    :func:`resolve_config`; ``preset`` only when one was asked for).

    Values are compared, not the presence of options: repeating the run's own settings is
    accepted; a setting that changes what is trained (all but :data:`RESUMABLE`, ``data`` and
    ``out``) to another value raises :class:`~alob_common.settings.SettingsChanged` naming the old
    and new values.
    """
    requested = dict(overrides)
    lr = requested.pop("lr", None)
    if preset is not None or lr is not None:
        implied = preset_values(preset or DEFAULT_PRESET, requested.get("backbone", stored.backbone), lr)
        keep = ("lr_trimmer", "lr_identifier") if preset is None else [k for k in implied if k not in RESUMABLE]
        requested = {**{k: implied[k] for k in keep}, **requested}
    if requested.get("input_size", ()) is None:
        del requested["input_size"]  # "auto": the data's size, which the stored config holds
    resumed = replace(stored, **requested)
    check_same_settings(stored.to_json(), resumed.to_json(), where=f"the run in {resumed.out}",
                        hint="--resume cannot change them: start a new run (another --out) instead",
                        keys=[k for k in requested if k not in RESUMABLE + _PLACES])
    return resumed
