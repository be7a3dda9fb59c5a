"""``alob-train --val`` takes an insightface verification ``.bin`` (scored as the folder it was
made from), and the learning-rate rule under torchrun is explicit (``--lr-scaling``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from train_fixtures import write_pairs, write_shards

from alob_common.pairs import pair_table
from alob_common.verification_bin import write_pairs_bin
from alob_train.checkpoint import load_model, save_untrained
from alob_train.cli import main
from alob_train.config import TrainConfig
from alob_train.embed import validate_folder
from alob_train.model import ALOB
from alob_train.optim import build_optimizers, lr_multiplier

PROJECT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def val_set(tmp_path) -> tuple[Path, Path]:
    """A folder dataset with pairs.csv (10 contiguous folds) and the .bin made from it."""
    folder = write_pairs(tmp_path / "val", classes=5, per_class=8)
    table = pd.read_csv(folder / "pairs.csv")
    table["fold"] = [k * 10 // len(table) for k in range(len(table))]  # insightface's 10 contiguous folds
    table.to_csv(folder / "pairs.csv", index=False)
    assert write_pairs_bin(tmp_path / "val.bin", pair_table(folder))
    return folder, tmp_path / "val.bin"


def test_a_bin_validates_as_the_folder_it_was_made_from(val_set, tmp_path):
    folder, bin_file = val_set
    model, config = load_model(save_untrained(tmp_path / "run", "lightcnn9", "alob", (40, 32), classes=5))
    from_folder = validate_folder(model, folder, tuple(config["input_size"]))
    from_bin = validate_folder(model, bin_file, tuple(config["input_size"]))
    assert from_bin == from_folder and from_bin["val_pairs"] == 40
    assert 0.0 < from_bin["val_acc"] <= 1.0


def test_alob_train_val_takes_a_bin(val_set, tmp_path):
    _, bin_file = val_set
    data = write_shards(tmp_path / "data", classes=5, per_class=4, size=(40, 32))
    result = CliRunner().invoke(main, ["--data", str(data), "--out", str(tmp_path / "run"), "--val", str(bin_file),
                                       "--backbone", "lightcnn9", "--batch-size", "4", "--epochs", "1",
                                       "--workers", "0", "--quiet", "--no-tensorboard", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "best val accuracy" in result.output
    metrics = pd.read_csv(tmp_path / "run" / "metrics.csv")
    val = metrics[metrics.phase == "val"]
    assert len(val) == 1 and val.val_pairs.iloc[0] == 40 and 0 < val.val_acc.iloc[0] <= 1
    assert (tmp_path / "run" / "checkpoints" / "best.pt").is_file()
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert record["global_batch"] == 4 and record["lr_multiplier"] == 1.0
    (tmp_path / "bad.bin").write_bytes(b"junk")
    bad = CliRunner().invoke(main, ["--data", str(data), "--out", str(tmp_path / "run2"), "--val",
                                    str(tmp_path / "bad.bin"), "--backbone", "lightcnn9", "--batch-size", "4",
                                    "--epochs", "1", "--workers", "0", "--quiet", "--no-tensorboard"])
    assert bad.exit_code == 1 and "validation set" in bad.output and len(bad.output.strip().splitlines()) == 1


def test_lr_scaling_multiplies_the_rates_by_the_processes_only_when_linear():
    model = ALOB.from_config(TrainConfig(data="", out="", backbone="lightcnn9", input_size=(40, 32)), 5)
    for rule, factor in (("none", 1.0), ("linear", 4.0)):
        config = TrainConfig(data="", out="", backbone="lightcnn9", lr_trimmer=0.01, lr_identifier=0.001,
                             lr_scaling=rule)
        assert lr_multiplier(config, 4) == factor and lr_multiplier(config, 1) == 1.0
        optimizers = build_optimizers(model, config, processes=4)
        assert optimizers["trimmer"].param_groups[0]["lr"] == pytest.approx(0.01 * factor)
        assert optimizers["identifier"].param_groups[0]["lr"] == pytest.approx(0.001 * factor)
    with pytest.raises(ValueError, match="lr_scaling"):
        lr_multiplier(TrainConfig(data="", out="", lr_scaling="sqrt"), 2)


@pytest.mark.slow
def test_linear_lr_scaling_under_torchrun(tmp_path):
    """Two gloo processes with --lr-scaling linear: each process takes --batch-size images, the
    global batch and the rates in force are twice those of one process."""
    data = write_shards(tmp_path / "data", classes=4, per_class=6, shards=4)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(PROJECT), os.environ.get("PYTHONPATH", "")]),
               OMP_NUM_THREADS="1")
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
         "-m", "alob_train.cli", "--data", str(data), "--out", str(tmp_path / "run"), "--backbone", "lightcnn9",
         "--batch-size", "3", "--max-steps", "2", "--workers", "0", "--lr", "0.002", "--lr-scaling", "linear",
         "--log-every", "1", "--quiet", "--no-tensorboard", "--device", "cpu", "--threads", "1"],
        capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert record["world_size"] == 2 and record["global_batch"] == 6 and record["lr_multiplier"] == 2.0
    assert record["config"]["lr_scaling"] == "linear" and record["config"]["lr_identifier"] == 0.002
    metrics = pd.read_csv(tmp_path / "run" / "metrics.csv")
    assert metrics[metrics.phase == "train"].lr_identifier.iloc[0] == pytest.approx(0.004)
    assert torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)["step"] == 2
