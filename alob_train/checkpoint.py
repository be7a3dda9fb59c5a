"""Checkpoints: plain dicts of tensors and numbers (``torch.load(..., weights_only=True)``),
written atomically (temporary file in the same folder, then ``os.replace``)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch


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


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (tensors and plain values only)."""
    return torch.load(path, map_location=map_location, weights_only=True)


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


def load_model(run_or_file: str | Path, which: str = "last", map_location: str | torch.device = "cpu"):
    """Rebuild a trained :class:`~alob_train.model.ALOB` in eval mode from a run folder
    (``checkpoints/<which>.pt``: ``last``, ``best`` or ``epoch_NNN``) or a checkpoint file.

    Returns ``(model, config)``, ``config`` being the run's settings (backbone, variant,
    input_size ...), so that an evaluation feeds images of the size the model was trained on.
    """
    from alob_train.model import ALOB

    path = Path(run_or_file)
    if path.is_dir():
        path = path / "checkpoints" / f"{which}.pt"
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    state = load_checkpoint(path, map_location)
    cfg = state["config"]
    model = ALOB(len(state["classes"]), cfg["backbone"], cfg["variant"], tuple(cfg["input_size"]), cfg["dim"],
                 cfg["dropout"], cfg["classifier"], cfg["detach_fpp"], cfg["grl_coeff"], cfg["scale"], cfg["margin"])
    model.load_state_dict(state["model"])
    return model.eval(), cfg


def save_untrained(run: str | Path, backbone: str = "resnet18", variant: str = "alob",
                   input_size: tuple[int, int] = (112, 96), classes: int = 10, seed: int = 0) -> Path:
    """Save a randomly initialised model as ``run/checkpoints/last.pt``, loadable by
    :func:`load_model` like a trained run (for tests and timing benchmarks); returns ``run``."""
    from alob_train.engine import TrainConfig
    from alob_train.model import ALOB

    config = TrainConfig(data="", out=str(run), backbone=backbone, variant=variant, input_size=tuple(input_size))
    torch.manual_seed(seed)
    model = ALOB(classes, backbone, variant, tuple(input_size), config.dim, config.dropout, config.classifier,
                 config.detach_fpp, config.grl_coeff, config.scale, config.margin)
    state = {"model": model.state_dict(), "classes": [f"class{k}" for k in range(classes)],
             "config": config.to_json(), "epoch": 0, "step": 0}
    save_checkpoint(state, Path(run) / "checkpoints" / "last.pt")
    return Path(run)
