"""The engine and the command: exact resumption, NaN stop, schedules, outputs, CLI behaviour."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from train_fixtures import write_folders, write_pairs, write_shards

from alob_train.checkpoint import load_checkpoint, load_model
from alob_train.cli import main
from alob_train.config import TrainConfig, resolve_config
from alob_train.engine import TrainingDiverged, train
from alob_train.model import ALOB
from alob_train.optim import lr_factor


def _config(data, out, **kw) -> TrainConfig:
    base = dict(backbone="lightcnn9", variant="alob", batch_size=4, epochs=2, workers=0, lr_trimmer=0.01,
                lr_identifier=0.001, dropout=0.2, log_every=1, tensorboard=False, progress=False, threads=2)
    base.update(kw)
    return TrainConfig(data=str(data), out=str(out), **base)


def _weights(run) -> dict[str, torch.Tensor]:
    return load_checkpoint(run / "checkpoints" / "last.pt")


@pytest.mark.parametrize("kind", ["folder", "shards"])
def test_resume_k_plus_k_equals_2k_steps(tmp_path, kind):
    data = (write_folders(tmp_path / "data", classes=3, per_class=4) if kind == "folder"
            else write_shards(tmp_path / "data", classes=3, per_class=4, shards=2))
    # 12 samples / batch 4 = 3 steps per epoch: the split at step 4 falls inside epoch 2
    train(_config(data, tmp_path / "straight", max_steps=8, epochs=3))
    train(_config(data, tmp_path / "split", max_steps=4, epochs=3))
    assert _weights(tmp_path / "split")["step"] == 4
    cfg = _config(data, tmp_path / "split", max_steps=8, epochs=3)
    train(cfg, resume=True)
    a, b = _weights(tmp_path / "straight"), _weights(tmp_path / "split")
    assert a["step"] == b["step"] == 8
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    assert torch.equal(a["optimizers"]["identifier"]["state"][0]["exp_avg"], b["optimizers"]["identifier"]["state"][0]["exp_avg"])
    straight = pd.read_csv(tmp_path / "straight" / "metrics.csv")
    split = pd.read_csv(tmp_path / "split" / "metrics.csv")
    pd.testing.assert_frame_equal(straight.drop(columns="samples_per_s"), split.drop(columns="samples_per_s"))


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path, monkeypatch):
    data = write_folders(tmp_path / "data", classes=2, per_class=8)
    forward = ALOB.forward
    calls = {"n": 0}

    def poisoned(self, x, labels):
        calls["n"] += 1
        out = forward(self, x, labels)
        if calls["n"] == 3:
            out["loss_f"] = out["loss_f"] * float("nan")
        return out

    monkeypatch.setattr(ALOB, "forward", poisoned)
    with pytest.raises(TrainingDiverged, match="loss became nan at step 3") as err:
        train(_config(data, tmp_path / "run", save_every=1))
    assert "last.pt" in str(err.value)
    state = _weights(tmp_path / "run")
    assert state["step"] == 2
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


def test_lr_schedule_milestones_and_warmup():
    assert lr_factor(0, 10, (10,), 0.1, 0.0) == 1.0
    assert lr_factor(99, 10, (10,), 0.1, 0.0) == 1.0
    assert lr_factor(100, 10, (10,), 0.1, 0.0) == pytest.approx(0.1)
    assert lr_factor(165, 10, (10, 16), 0.1, 0.0) == pytest.approx(0.01)
    assert lr_factor(4, 10, (10,), 0.1, 1.0) == pytest.approx(0.5)
    assert lr_factor(10, 10, (10,), 0.1, 1.0) == 1.0


def test_cli_help_explains_every_option():
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    for option in ("--data", "--resume", "--preset", "--backbone", "--variant", "--max-steps", "--occlude",
                   "--amp", "--val", "--grl-schedule", "--classifier", "--detach-fpp"):
        assert option in result.output


def test_cli_runs_an_epoch_writes_outputs_and_resumes(tmp_path):
    data = write_shards(tmp_path / "data", classes=3, per_class=4)
    val = write_pairs(tmp_path / "val", classes=3, per_class=4)
    run = tmp_path / "run"
    common = ["--out", str(run), "--workers", "0", "--quiet", "--threads", "2"]
    result = CliRunner().invoke(main, ["--data", str(data), "--backbone", "lightcnn9", "--batch-size", "4",
                                       "--epochs", "1", "--val", str(val), "--log-every", "1"] + common)
    assert result.exit_code == 0, result.output
    assert "trained 3 steps (1 epochs of 3)" in result.output
    for name in ("run.json", "metrics.csv", "checkpoints/last.pt", "checkpoints/epoch_001.pt", "checkpoints/best.pt"):
        assert (run / name).is_file(), name
    assert any((run / "tensorboard").iterdir())
    meta = json.loads((run / "run.json").read_text())
    assert meta["config"]["lr_identifier"] == 0.001 and meta["config"]["epochs"] == 1  # LightCNN-9 paper lr
    state = load_checkpoint(run / "checkpoints" / "epoch_001.pt")
    assert state["step"] == 3 and state["classes"] == ["id000", "id001", "id002"]
    metrics = pd.read_csv(run / "metrics.csv")
    assert list(metrics["phase"]) == ["train"] * 3 + ["val"]
    model, cfg = load_model(run, "epoch_001")
    assert cfg["backbone"] == "lightcnn9" and tuple(cfg["input_size"]) == (40, 32)
    assert torch.equal(model.state_dict()["classifier.weight"], state["model"]["classifier.weight"])
    assert model.embed(torch.zeros(2, 3, 40, 32)).shape == (2, 512)

    refused = CliRunner().invoke(main, ["--data", str(data)] + common)
    assert refused.exit_code == 1 and len(refused.output.strip().splitlines()) == 1 and "--resume" in refused.output
    changed = CliRunner().invoke(main, ["--resume", "--backbone", "resnet18"] + common)
    assert changed.exit_code == 1 and len(changed.output.strip().splitlines()) == 1 and "backbone: 'lightcnn9' -> 'resnet18'" in changed.output

    result = CliRunner().invoke(main, ["--resume", "--epochs", "2"] + common)
    assert result.exit_code == 0, result.output
    assert "trained 6 steps (2 epochs of 3); this session 3 steps" in result.output
    assert (run / "checkpoints" / "epoch_002.pt").is_file()
    metrics = pd.read_csv(run / "metrics.csv")
    assert list(metrics["step"]) == [1, 2, 3, 3, 4, 5, 6, 6]


def test_cli_resume_compares_values_not_options(tmp_path):
    data = write_folders(tmp_path / "data", classes=2, per_class=4)  # 8 samples: 2 steps of 4 per epoch
    run = tmp_path / "run"
    command = ["--data", str(data), "--out", str(run), "--backbone", "lightcnn9", "--variant", "alob",
               "--preset", "paper-exact", "--lr", "0.002", "--size", "auto", "--batch-size", "4",
               "--workers", "0", "--quiet", "--threads", "2", "--no-tensorboard"]
    first = CliRunner().invoke(main, command + ["--epochs", "1"])
    assert first.exit_code == 0, first.output
    again = CliRunner().invoke(main, command + ["--epochs", "2", "--resume"])
    assert again.exit_code == 0, again.output
    assert "trained 4 steps (2 epochs of 2); this session 2 steps" in again.output
    refused = CliRunner().invoke(main, command + ["--epochs", "3", "--resume", "--batch-size", "2"])
    assert refused.exit_code == 1 and len(refused.output.strip().splitlines()) == 1 and "batch_size: 4 -> 2" in refused.output
    refused = CliRunner().invoke(main, ["--out", str(run), "--resume", "--lr", "0.01"])
    assert refused.exit_code == 1 and len(refused.output.strip().splitlines()) == 1 and "lr_trimmer: 0.002 -> 0.01" in refused.output
    assert load_checkpoint(run / "checkpoints" / "last.pt")["step"] == 4


def test_config_defaults_are_the_default_preset():
    assert resolve_config("paper", {"data": "d", "out": "o"}) == TrainConfig(data="d", out="o")
    light = TrainConfig(data="d", out="o", backbone="lightcnn9")
    assert light == resolve_config("paper", {"data": "d", "out": "o", "backbone": "lightcnn9"})
    assert (light.lr_trimmer, light.lr_identifier, light.epochs, light.batch_size) == (0.001, 0.001, 21, 128)
    exact = resolve_config("paper-exact", {"data": "d", "out": "o", "lr_trimmer": 0.05})
    assert (exact.lr_trimmer, exact.lr_identifier) == (0.05, 0.01)


@pytest.fixture(scope="module")
def full_precision_run(tmp_path_factory):
    """Two steps in float32: the reference of the mixed-precision runs (same data, seed, batches)."""
    root = tmp_path_factory.mktemp("fp32")
    data = write_folders(root / "data", classes=2, per_class=4)
    train(_config(data, root / "run", max_steps=2, epochs=2))
    return data, pd.read_csv(root / "run" / "metrics.csv")


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_mixed_precision_paths_train(tmp_path, full_precision_run, amp):
    """Under autocast the first step's loss (same weights, same batch) is float32's to within the
    format's rounding, yet not bit-equal (autocast is on); the weights stay finite. (The DANN ramp
    over the run's real length is test_alob_objective's.)"""
    data, reference = full_precision_run
    summary = train(_config(data, tmp_path / "run", amp=amp, max_steps=2, epochs=2))
    assert summary["steps"] == 2
    metrics = pd.read_csv(tmp_path / "run" / "metrics.csv")
    first, expected = metrics["loss"].iloc[0], reference["loss"].iloc[0]
    assert first != expected and first == pytest.approx(expected, rel=0.01)
    assert np.isfinite(metrics["loss"]).all() and len(metrics) == 2
    state = _weights(tmp_path / "run")["model"]
    assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())


@pytest.mark.parametrize("args, expected", [
    ([], {"lr_trimmer": 0.01, "lr_identifier": 0.001, "epochs": 21, "batch_size": 128, "milestones": (10,)}),
    (["--preset", "paper-exact"], {"lr_trimmer": 0.01, "lr_identifier": 0.01}),
    (["--backbone", "lightcnn9", "--preset", "paper-exact"], {"lr_trimmer": 0.001, "lr_identifier": 0.001}),
    (["--lr", "0.05", "--epochs", "3"], {"lr_trimmer": 0.05, "lr_identifier": 0.05, "epochs": 3}),
    (["--lr-identifier", "0.0002", "--milestones", "4,8"], {"lr_identifier": 0.0002, "milestones": (4, 8)}),
])
def test_cli_presets_and_overrides(tmp_path, monkeypatch, args, expected):
    seen = {}

    def fake_train(config, resume, command):
        seen["config"] = config
        return {"world_size": 1, "steps": 0, "session_steps": 0, "epochs_completed": 0, "steps_per_epoch": 1,
                "seconds": 0.0, "samples_per_s": 0.0, "final_acc": None, "final_loss": None, "best_val_acc": None,
                "checkpoint": "x"}

    monkeypatch.setattr("alob_train.engine.train", fake_train)
    data = write_folders(tmp_path / "data", classes=2, per_class=1)
    result = CliRunner().invoke(main, ["--data", str(data), "--out", str(tmp_path / "run")] + args)
    assert result.exit_code == 0, result.output
    for key, value in expected.items():
        assert getattr(seen["config"], key) == value, key
    if not args:  # the command's defaults are TrainConfig's
        assert seen["config"] == TrainConfig(data=str(data), out=str(tmp_path / "run"))


def test_cli_lambda_scale_and_margin_reach_the_loss_and_the_heads(tmp_path):
    """--lambda weighs L_m in the logged loss (loss = L_f + λ L_m at every step); --cosface-scale
    and --cosface-margin are the CosFace s and m of both heads of the trained model."""
    data = write_folders(tmp_path / "data", classes=3, per_class=4)
    run = tmp_path / "run"
    result = CliRunner().invoke(main, ["--data", str(data), "--out", str(run), "--backbone", "lightcnn9",
                                       "--batch-size", "4", "--max-steps", "3", "--lambda", "0.3",
                                       "--cosface-scale", "16", "--cosface-margin", "0.25", "--log-every", "1",
                                       "--workers", "0", "--threads", "2", "--quiet", "--no-tensorboard"])
    assert result.exit_code == 0, result.output
    metrics = pd.read_csv(run / "metrics.csv")
    assert len(metrics) == 3 and (metrics["loss_m"] > 0.1).all()
    np.testing.assert_allclose(metrics["loss"], metrics["loss_f"] + 0.3 * metrics["loss_m"], rtol=1e-5)
    model, cfg = load_model(run, "last")
    assert (cfg["trimmer_weight"], cfg["scale"], cfg["margin"]) == (0.3, 16.0, 0.25)
    x, labels = torch.randn(4, 512), torch.tensor([0, 1, 2, 0])
    for head in (model.classifier, model.trimmer_classifier):
        cos = torch.nn.functional.normalize(x) @ torch.nn.functional.normalize(head.weight).T
        expected = 16.0 * (cos - 0.25 * torch.nn.functional.one_hot(labels, 3))
        torch.testing.assert_close(head(x, labels), expected, rtol=1e-5, atol=1e-5)


def test_best_checkpoint_holds_the_best_validation_epoch(tmp_path, monkeypatch):
    """Validation accuracies 0.6, 0.9, 0.7 over three epochs: best.pt is epoch 2's weights (equal
    to epoch_002.pt), last.pt epoch 3's."""
    import alob_train.engine as engine

    accuracies = iter([0.6, 0.9, 0.7])
    monkeypatch.setattr(engine, "validate_folder", lambda *a, **k: {"val_acc": next(accuracies), "val_std": 0.0,
                                                                     "val_pairs": 10.0})
    data = write_folders(tmp_path / "data", classes=3, per_class=4)
    train(_config(data, tmp_path / "run", epochs=3, val=str(tmp_path), save_every=1))
    checkpoints = tmp_path / "run" / "checkpoints"
    best, second, last = (load_checkpoint(checkpoints / f"{n}.pt") for n in ("best", "epoch_002", "last"))
    assert (best["epoch"], best["step"], best["best_val_acc"]) == (2, 6, 0.9)
    assert (last["epoch"], last["step"]) == (3, 9)
    for key in best["model"]:
        assert torch.equal(best["model"][key], second["model"][key]), key
    assert not torch.equal(best["model"]["classifier.weight"], last["model"]["classifier.weight"])
