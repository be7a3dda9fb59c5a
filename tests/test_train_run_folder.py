"""A run folder stands on its own (a copy resumes in the copy), its stored settings and
checkpoints are checked when read back, and bad samples are counted once and capped."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from train_fixtures import write_folders, write_shards

from alob_train.checkpoint import CheckpointError, load_checkpoint, save_untrained
from alob_train.config import ConfigError, TrainConfig, load_run_config
from alob_train.data import FolderDataset, SampleTransform, open_data
from alob_train.samples import BadSample, BadSamples, TooManyBadSamples, collate_good

BIN = Path(sys.executable).parent


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_a_copied_run_resumes_in_the_copy_and_leaves_the_original_alone(tmp_path):
    data = write_shards(tmp_path / "data", classes=3, per_class=4, shards=2)
    a, b = tmp_path / "runs" / "a", tmp_path / "runs" / "b"
    args = ["--backbone", "lightcnn9", "--batch-size", "4", "--workers", "0", "--quiet", "--no-tensorboard"]
    first = subprocess.run([str(BIN / "alob-train"), "--data", str(data), "--out", str(a), "--epochs", "1", *args],
                           capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr[-2000:]
    stored = json.loads((a / "run.json").read_text())
    assert stored["config"]["out"] == "." and stored["config"]["data"] == str(data)
    assert stored["summary"]["checkpoint"] == "checkpoints/last.pt"
    shutil.copytree(a, b)
    before = _files(a)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    resumed = subprocess.run([str(BIN / "alob-train"), "--out", "../runs/b", "--resume", "--epochs", "3", "--quiet"],
                             capture_output=True, text=True, timeout=300, cwd=elsewhere)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert _files(a) == before
    assert torch.load(a / "checkpoints" / "last.pt", weights_only=True)["step"] == 3
    assert torch.load(b / "checkpoints" / "last.pt", weights_only=True)["step"] == 9
    assert (b / "checkpoints" / "epoch_003.pt").is_file() and not (a / "checkpoints" / "epoch_003.pt").exists()
    assert json.loads((b / "run.json").read_text())["summary"]["epochs_completed"] == 3


def test_stored_paths_are_relative_to_the_run_inside_it_and_absolute_outside(tmp_path):
    run = tmp_path / "run"
    config = TrainConfig(data=str(run / "data"), out=str(run), val=str(tmp_path / "val"))
    stored = config.to_json()
    assert (stored["out"], stored["data"], stored["val"]) == (".", "data", str(tmp_path / "val"))
    (run / "data").mkdir(parents=True)
    moved = TrainConfig.from_json(stored, tmp_path / "moved")
    assert moved.out == str(tmp_path / "moved") and moved.data == str(tmp_path / "moved" / "data")


@pytest.mark.parametrize("text, message", [
    ("{ not json", "not a run record"),
    ("[1, 2]", "holds no run settings"),
    (json.dumps({"config": {"data": "d", "backbone": 7}}), "config.backbone is 7"),
    (json.dumps({"config": {"data": "d", "batch_size": "many"}}), "config.batch_size is 'many'"),
    (json.dumps({"config": {"data": "d", "input_size": [1, 2, 3]}}), "config.input_size"),
])
def test_a_nonsensical_run_json_is_named_in_the_error(tmp_path, text, message):
    (tmp_path / "run.json").write_text(text)
    with pytest.raises(ConfigError, match=message) as err:
        load_run_config(tmp_path)
    assert str(tmp_path / "run.json") in str(err.value)


def test_a_damaged_checkpoint_raises_a_one_line_error_and_is_left_alone(tmp_path):
    last = save_untrained(tmp_path, backbone="lightcnn9", classes=2) / "checkpoints" / "last.pt"
    last.write_bytes(last.read_bytes()[:1000])
    before = last.read_bytes()
    with pytest.raises(CheckpointError, match="file is damaged") as err:
        load_checkpoint(last)
    assert str(last) in str(err.value) and "\n" not in str(err.value)
    torch.save({"model": {}}, last)
    with pytest.raises(CheckpointError, match="no classes, config"):
        load_checkpoint(last)
    last.write_bytes(before)
    with pytest.raises(CheckpointError):
        load_checkpoint(last)
    assert last.read_bytes() == before


def test_bad_samples_count_once_and_stop_past_the_limit():
    bad = BadSamples(limit=2)
    bad.add([BadSample("a.jpg", "empty"), BadSample("a.jpg", "empty"), BadSample("b.jpg", "x")])
    assert bad.count == 2
    resumed = BadSamples(limit=2, stored=bad.to_json())
    assert resumed.seen == bad.seen
    with pytest.raises(TooManyBadSamples, match="3 bad training samples, more than --max-bad-samples 2"):
        resumed.add([BadSample("c.jpg", "x")])


def test_a_bad_image_in_a_folder_is_a_marker_dropped_from_its_batch(tmp_path):
    root = write_folders(tmp_path / "f", classes=2, per_class=2)
    (root / "id001" / "0001.png").write_bytes(b"")
    info = open_data(root)
    dataset = FolderDataset(info, SampleTransform((40, 32), augment=False), seed=0)
    items = [dataset[i] for i in range(len(dataset))]
    assert isinstance(items[3], BadSample) and "0001.png" in items[3].where
    images, labels, dropped = collate_good(items)
    assert images.shape == (3, 3, 40, 32) and labels.tolist() == [0, 0, 1] and dropped == [items[3]]
