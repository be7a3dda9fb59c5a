"""Checkpoints: plain dicts of tensors and numbers (``torch.load(..., weights_only=True)``),
written atomically (temporary file in the same folder, then ``os.replace``); what a training
checkpoint holds, and the model rebuilt from one."""

from __future__ import annotations

import os
import pickle
import re
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch

from alob_common.errors import UserError
from alob_train import __version__
from alob_train.config import TrainConfig
from alob_train.model import ALOB


def save_checkpoint(state: dict[str, Any], path: str | Path) -> None:
    """Write ``state`` to ``path`` so that a reader never sees a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(state, fh)
            fh.flush()
            os.fsync(fh.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class CheckpointError(UserError):
    """A checkpoint that cannot be read or does not hold what is needed; the file is left as it is."""


MODEL_KEYS = ("model", "classes", "config")
TRAINING_KEYS = MODEL_KEYS + ("optimizers", "schedulers", "scaler", "step", "rng", "best_val_acc")
_DAMAGE = (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError, zipfile.BadZipFile, KeyError,
           IndexError, TypeError)


def _first_line(err: BaseException) -> str:
    """The first sentence of an exception's message (torch's run to many), or its type."""
    line = (str(err).strip().splitlines() or [type(err).__name__])[0]
    return re.split(r"(?<=\.)\s", line)[0].rstrip(".")


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu",
                    keys: tuple[str, ...] = MODEL_KEYS) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (tensors and plain values only) that
    holds ``keys``; a damaged file (cut short, overwritten, not a checkpoint) raises
    :class:`CheckpointError` naming it, and is never touched."""
    hint = ("it was left as it is: restore it from a copy, or copy an intact checkpoints/epoch_NNN.pt "
            "over it to continue from that epoch")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except _DAMAGE as err:
        raise CheckpointError(f"cannot read checkpoint {path}: file is damaged ({_first_line(err)}); {hint}") from None
    missing = [k for k in keys if not isinstance(state, dict) or k not in state]
    if missing:
        raise CheckpointError(f"cannot read checkpoint {path}: file is damaged (no {', '.join(missing)}); {hint}")
    return state


def rng_state() -> dict[str, Any]:
    """Torch's random states (CPU and, when present, CUDA), for exact resumption."""
    state: dict[str, Any] = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` saved."""
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def training_state(model: ALOB, optimizers: dict, schedulers: dict, scaler: torch.amp.GradScaler | None, *,
                   epoch: int, step: int, step_in_epoch: int, classes: list[str], config: TrainConfig,
                   best_val_acc: float | None) -> dict[str, Any]:
    """Everything a run needs to continue exactly where it stopped: weights, optimiser, schedule
    and scaler states, the position (epoch, global step, step within the epoch), the class names,
    the settings, torch's random states and the best validation accuracy so far."""
    return {
        "model": model.state_dict(),
        "optimizers": {k: o.state_dict() for k, o in optimizers.items()},
        "schedulers": {k: s.state_dict() for k, s in schedulers.items()},
        "scaler": scaler.state_dict() if scaler is not None else {},
        "epoch": epoch, "step": step, "step_in_epoch": step_in_epoch,
        "classes": list(classes), "config": config.to_json(), "rng": rng_state(),
        "best_val_acc": best_val_acc, "version": __version__,
    }


def restore_training_state(state: dict[str, Any], model: ALOB, optimizers: dict, schedulers: dict,
                           scaler: torch.amp.GradScaler | None) -> tuple[int, float | None]:
    """Load what :func:`training_state` saved into freshly built parts and restore the random
    states; returns ``(step, best_val_acc)``. A state that does not fit raises :class:`CheckpointError`."""
    try:
        model.load_state_dict(state["model"])
        for k, o in optimizers.items():
            o.load_state_dict(state["optimizers"][k])
        for k, s in schedulers.items():
            s.load_state_dict(state["schedulers"][k])
        if scaler is not None and state["scaler"]:
            scaler.load_state_dict(state["scaler"])
        set_rng_state(state["rng"])
        return int(state["step"]), state["best_val_acc"]
    except (KeyError, RuntimeError, ValueError, TypeError) as err:
        raise CheckpointError(f"the checkpoint does not fit the run's model and settings ({_first_line(err)})") from None


def checkpoint_file(run_or_file: str | Path, which: str = "last") -> Path:
    """The checkpoint file a run folder's ``which`` names (``checkpoints/<which>.pt``), or the file given."""
    path = Path(run_or_file)
    return path / "checkpoints" / f"{which}.pt" if path.is_dir() else path


def resolve_which(run_or_file: str | Path, which: str = "best") -> str:
    """The checkpoint name a run folder's ``which`` stands for: ``best`` falls back to ``last`` in
    a run trained without ``--val`` (no ``best.pt``), as in every command."""
    run = Path(run_or_file)
    if run.is_dir() and which == "best" and not (run / "checkpoints" / "best.pt").is_file():
        return "last"
    return which


def load_model(run_or_file: str | Path, which: str = "best",
               map_location: str | torch.device = "cpu") -> tuple[ALOB, dict[str, Any]]:
    """Rebuild a trained :class:`~alob_train.model.ALOB` in eval mode from a run folder
    (``checkpoints/<which>.pt``: ``best`` by default, falling back to ``last`` when the run has no
    ``best.pt``, as ``alob-eval --which``; ``last``; or ``epoch_NNN``) or a checkpoint file.

    Returns ``(model, config)``, ``config`` being the run's settings (backbone, variant,
    input_size ...), so that an evaluation feeds images of the size the model was trained on.
    Raises :class:`CheckpointError` for a damaged checkpoint.
    """
    path = checkpoint_file(run_or_file, resolve_which(run_or_file, which))
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    state = load_checkpoint(path, map_location)
    try:
        model = ALOB.from_config(TrainConfig.from_json(state["config"]), len(state["classes"]))
        model.load_state_dict(state["model"])
    except (UserError, KeyError, RuntimeError, ValueError, TypeError) as err:
        raise CheckpointError(f"cannot read checkpoint {path}: file is damaged ({_first_line(err)})") from None
    return model.eval(), state["config"]


def load_trained(checkpoint: str | Path, which: str = "best") -> tuple[ALOB, dict[str, Any], str]:
    """What the evaluation commands load: :func:`load_model` with ``best`` falling back to
    ``last`` for a run folder without ``best.pt`` (a run trained without ``--val``). Returns the
    model, its settings and the checkpoint name used; any failure is a one-line
    :class:`CheckpointError`."""
    run = Path(checkpoint)
    which = resolve_which(run, which)
    try:
        model, cfg = load_model(run, which)
    except (FileNotFoundError, KeyError, RuntimeError) as err:
        raise CheckpointError(f"cannot load checkpoint {checkpoint}: {err}") from None
    return model, cfg, which


def save_untrained(run: str | Path, backbone: str = "resnet18", variant: str = "alob",
                   input_size: tuple[int, int] = (112, 96), classes: int = 10, seed: int = 0) -> Path:
    """Save a randomly initialised model as ``run/checkpoints/last.pt``, loadable by
    :func:`load_model` like a trained run (for tests and timing benchmarks); returns ``run``."""
    config = TrainConfig(data="", out=str(run), backbone=backbone, variant=variant, input_size=tuple(input_size))
    torch.manual_seed(seed)
    model = ALOB.from_config(config, classes)
    state = {"model": model.state_dict(), "classes": [f"class{k}" for k in range(classes)],
             "config": config.to_json(), "epoch": 0, "step": 0}
    save_checkpoint(state, Path(run) / "checkpoints" / "last.pt")
    return Path(run)
