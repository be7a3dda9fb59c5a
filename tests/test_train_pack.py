"""alob-train straight from an insightface pack (train.rec, train.idx, property), as users hold
faces_webface_112x112: the pack occgen writes from identity folders trains like the folders."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from train_fixtures import write_folders

from alob_common.insightface_pack import open_pack
from alob_train.cli import main as train_main
from alob_train.data import open_data
from occgen.cli import main as occgen_main


@pytest.fixture(scope="module")
def pack(tmp_path_factory):
    root = tmp_path_factory.mktemp("pack")
    folders = write_folders(root / "folders", classes=3, per_class=6, size=(40, 32))
    result = CliRunner().invoke(occgen_main, ["build", "--source", "folder", "--data", str(folders), "--out",
                                              str(root / "pack"), "--format", "rec", "--workers", "0", "--quiet"])
    assert result.exit_code == 0, result.output
    return root / "pack"


def test_a_pack_opens_with_its_classes_and_every_image(pack):
    info = open_data(pack)
    assert info.kind == "pack" and info.num_classes == 3
    assert info.num_samples == len(open_pack(pack)) == 18
    assert info.first_image().shape == (40, 32, 3)
    assert sorted({label for _, label in info.items}) == [0, 1, 2]


def test_alob_train_trains_on_a_pack_and_resumes(pack, tmp_path):
    run = tmp_path / "run"
    common = ["--out", str(run), "--workers", "0", "--quiet", "--no-tensorboard", "--threads", "1"]
    result = CliRunner().invoke(train_main, ["--data", str(pack), "--backbone", "lightcnn9", "--batch-size", "4",
                                             "--epochs", "1", *common])
    assert result.exit_code == 0, result.output
    meta = json.loads((run / "run.json").read_text())
    assert meta["data"] == {"kind": "pack", "samples": 18, "classes": 3}
    assert meta["summary"]["steps"] == 18 // 4
    again = CliRunner().invoke(train_main, ["--resume", "--epochs", "2", *common])
    assert again.exit_code == 0, again.output
    assert json.loads((run / "run.json").read_text())["summary"]["epochs_completed"] == 2
