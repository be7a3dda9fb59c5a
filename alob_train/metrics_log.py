"""metrics.csv and TensorBoard: one row per logged step, written by rank 0."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import pandas as pd

from alob_common.atomic import write_csv_atomic


class MetricsLog:
    """``RUN/metrics.csv`` (rewritten atomically at each row) and, optionally, TensorBoard
    scalars under ``RUN/tensorboard`` named ``<phase>/<column>``. On resume, the rows after the
    resumed step are dropped, so that the file reads as if the run had never stopped."""

    def __init__(self, run: Path, resume_step: int | None, tensorboard: bool) -> None:
        self.path = run / "metrics.csv"
        self.rows: list[dict] = []
        if resume_step is not None and self.path.is_file():
            old = pd.read_csv(self.path)
            self.rows = old[old["step"] <= resume_step].to_dict("records")
        self.writer = None
        if tensorboard:
            # tensorboard is slow to import: only when asked for
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(run / "tensorboard"), purge_step=resume_step)

    def add(self, row: dict[str, Any]) -> None:
        """Append a row (``epoch``, ``step``, ``phase`` and numbers) to both outputs."""
        self.rows.append(row)
        write_csv_atomic(self.path, pd.DataFrame(self.rows))
        if self.writer is not None:
            for key, value in row.items():
                if key not in ("epoch", "step", "phase") and isinstance(value, (int, float)) and math.isfinite(value):
                    self.writer.add_scalar(f"{row['phase']}/{key}", value, row["step"])

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


_SUMS = ("loss", "loss_f", "loss_m", "correct", "n")


def new_window() -> dict[str, float]:
    """Running sums of the training statistics since the last logged row, and its start time."""
    return {**dict.fromkeys(_SUMS, 0.0), "t": time.time()}


def add_to_window(window: dict[str, float], stats: list[float]) -> None:
    """Add one step's sums (loss·n, L_f·n, L_m·n, correct, n) to ``window``."""
    for key, value in zip(_SUMS, stats):
        window[key] += value


def train_row(window: dict[str, float], epoch: int, step: int, lrs: dict[str, float], grl_coeff: float) -> dict:
    """The metrics.csv row of a window: mean losses, training accuracy, learning rates, GRL C, speed."""
    n, seconds = window["n"], time.time() - window["t"]
    return {
        "epoch": epoch, "step": step, "phase": "train",
        "loss": window["loss"] / n, "loss_f": window["loss_f"] / n, "loss_m": window["loss_m"] / n,
        "acc": window["correct"] / n,
        "lr_trimmer": lrs.get("trimmer", float("nan")), "lr_identifier": lrs["identifier"],
        "grl_coeff": grl_coeff, "samples_per_s": n / max(seconds, 1e-9),
    }
