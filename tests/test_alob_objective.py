"""ALOB's objective under test: the mechanism diagnostics on hand-built features, which optimiser
owns each head, the GRL ramp over the run's real length, and one preprocessing for training and
evaluation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from train_fixtures import write_shards

from alob_train.config import TrainConfig
from alob_train.data import SampleTransform
from alob_train.diagnostics import mechanism_diagnostics
from alob_train.embed import model_embedder
from alob_train.engine import grl_coefficient, plateaued, train
from alob_train.model import ALOB
from alob_train.optim import build_optimizers


def test_trimmer_equal_to_minus_its_class_weight_logs_cosine_minus_one():
    torch.manual_seed(0)
    weight = torch.randn(5, 16)
    labels = torch.tensor([0, 3, 4, 3])
    fm = -2.5 * weight[labels]
    f = torch.randn(4, 16)
    figures = mechanism_diagnostics(f, fm, weight, labels)
    assert figures["trimmer_cos_wy"] == pytest.approx(-1.0, abs=1e-6)
    u = fm / fm.norm(dim=1, keepdim=True)
    expected = ((f * u).sum(1).abs() / f.norm(dim=1)).mean()
    assert figures["removed_fraction"] == pytest.approx(float(expected), rel=1e-6)
    assert figures["fm_norm"] == pytest.approx(float(fm.norm(dim=1).mean()), rel=1e-6)
    assert figures["fm_var"] == pytest.approx(float(fm.var(dim=0, unbiased=False).mean()), rel=1e-6)
    collapsed = mechanism_diagnostics(f, torch.ones(4, 16), weight, labels)
    assert collapsed["fm_var"] == 0.0
    assert mechanism_diagnostics(f, fm, weight, labels, subtract=True)["removed_fraction"] == pytest.approx(
        float((fm.norm(dim=1) / f.norm(dim=1)).mean()), rel=1e-6)


@pytest.mark.parametrize("classifier", ["shared", "separate"])
def test_trimmer_loss_of_the_forward_pass_reaches_the_identifier_head_only_when_shared(classifier):
    """The model's own forward: L_m is CosFace of the Trimmer's head on fᵐ; its gradient reaches
    the Identifier's head only when the head is shared, never the Identifier's backbone, and
    reaches the Trimmer's backbone reversed by the GRL."""
    torch.manual_seed(0)
    model = ALOB(num_classes=4, backbone="lightcnn9", variant="alob", input_size=(40, 32), classifier=classifier)
    x, labels = torch.randn(4, 3, 40, 32), torch.tensor([0, 1, 2, 3])
    out = model(x, labels)
    expected = torch.nn.functional.cross_entropy(model.trimmer_head(out["fm"], labels), labels)
    assert out["loss_m"].item() == pytest.approx(expected.item(), rel=1e-6)
    out["loss_m"].backward()
    identifier_head_grad = model.classifier.weight.grad
    if classifier == "separate":
        assert identifier_head_grad is None and model.trimmer_classifier.weight.grad.abs().sum() > 0
    else:
        assert model.trimmer_classifier is None and identifier_head_grad.abs().sum() > 0
    assert all(p.grad is None for p in model.identifier.parameters())
    reversed_grads = {name: p.grad.clone() for name, p in model.trimmer.named_parameters()}
    model.zero_grad(set_to_none=True)
    model.grl = None  # the same pass without the reversal
    model(x, labels)["loss_m"].backward()
    for name, p in model.trimmer.named_parameters():
        torch.testing.assert_close(p.grad, -reversed_grads[name], msg=name)


def _owners(model: ALOB, optimizers: dict[str, torch.optim.Optimizer]) -> dict[int, list[str]]:
    owners: dict[int, list[str]] = {id(p): [] for p in model.parameters()}
    for name, optimizer in optimizers.items():
        for group in optimizer.param_groups:
            for p in group["params"]:
                owners[id(p)].append(name)
    return owners


def test_every_parameter_in_one_optimiser_and_identifier_head_as_the_baselines():
    config = TrainConfig(data="-", out="-", backbone="lightcnn9", input_size=(40, 32), classifier="separate")
    alob = ALOB.from_config(config, 4)
    optimizers = build_optimizers(alob, config)
    owners = _owners(alob, optimizers)
    assert all(len(v) == 1 for v in owners.values())
    assert owners[id(alob.classifier.weight)] == ["identifier"]
    assert owners[id(alob.trimmer_classifier.weight)] == ["trimmer"]
    base_config = TrainConfig(data="-", out="-", backbone="lightcnn9", input_size=(40, 32), variant="baseline")
    baseline = ALOB.from_config(base_config, 4)
    base_opt = build_optimizers(baseline, base_config)
    assert _owners(baseline, base_opt)[id(baseline.classifier.weight)] == ["identifier"]
    a, b = optimizers["identifier"], base_opt["identifier"]
    assert type(a) is type(b)
    keys = ("lr", "betas", "eps", "weight_decay", "amsgrad")
    assert {k: a.param_groups[0][k] for k in keys} == {k: b.param_groups[0][k] for k in keys}


@pytest.mark.parametrize("epochs, max_steps", [(3, None), (50, 7)])
def test_dann_ramp_reaches_full_strength_at_the_last_step(tmp_path, epochs, max_steps):
    data = write_shards(tmp_path / "data", classes=3, per_class=4, shards=1)
    config = TrainConfig(data=str(data), out=str(tmp_path / "run"), backbone="lightcnn9", batch_size=4,
                         epochs=epochs, max_steps=max_steps, workers=0, log_every=1, tensorboard=False,
                         progress=False, threads=1, grl_schedule="dann", grl_coeff=1.0)
    train(config)
    metrics = pd.read_csv(tmp_path / "run" / "metrics.csv")
    coeffs = metrics[metrics.phase == "train"].grl_coeff.to_numpy()
    n = max_steps or epochs * 3
    # DANN's ramp over the run's real length: C = ramp((step + 1) / n) / ramp(1), ramp(p) = 2/(1+e^(-10p)) - 1
    ramp = lambda p: 2 / (1 + np.exp(-10 * p)) - 1  # noqa: E731
    assert coeffs.tolist() == pytest.approx([ramp((k + 1) / n) / ramp(1.0) for k in range(n)], rel=1e-5)
    for column in ("trimmer_cos_wy", "removed_fraction", "fm_norm", "fm_var", "acc_trimmer", "acc"):
        assert metrics[column].notna().all(), column
    assert grl_coefficient(config, 0, 10) < grl_coefficient(config, 9, 10) == pytest.approx(1.0)


@pytest.mark.parametrize("shape", [(112, 112), (112, 96), (120, 100)])
def test_training_and_evaluation_see_the_same_tensor(shape):
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    trained = SampleTransform((112, 96), augment=False)(image, (0,))
    seen = []

    class Probe(torch.nn.Module):
        def embed(self, x: torch.Tensor) -> torch.Tensor:
            seen.append(x.clone())
            return x.flatten(1)

    model_embedder(Probe(), (112, 96))([image])
    assert torch.equal(seen[0][0], trained)
    if shape == (112, 112):
        expected = torch.from_numpy(image[:, 8:104]).permute(2, 0, 1).float() / 127.5 - 1
        assert torch.equal(trained, expected)


def test_plateau_rule_counts_epochs_since_the_best_after_the_last_milestone():
    config = TrainConfig(data="-", out="-", patience=2, milestones=(3,))
    assert not plateaued([0.5, 0.6, 0.55, 0.54], epoch=2, config=config)  # before the milestone
    assert plateaued([0.5, 0.6, 0.55, 0.54], epoch=4, config=config)
    assert not plateaued([0.5, 0.6, 0.55, 0.61], epoch=4, config=config)
    assert not plateaued([0.5, 0.6, 0.55], epoch=4, config=TrainConfig(data="-", out="-", milestones=(3,)))


def test_training_stops_on_a_validation_plateau(tmp_path, monkeypatch):
    import alob_train.engine as engine

    accuracies = iter([0.6, 0.7, 0.65, 0.64, 0.9, 0.95])
    monkeypatch.setattr(engine, "validate_folder", lambda *a, **k: {"val_acc": next(accuracies), "val_std": 0.0,
                                                                     "val_pairs": 10.0})
    data = write_shards(tmp_path / "data", classes=3, per_class=4, shards=1)
    config = TrainConfig(data=str(data), out=str(tmp_path / "run"), backbone="lightcnn9", batch_size=4, epochs=6,
                         milestones=(1,), workers=0, tensorboard=False, progress=False, threads=1,
                         val=str(tmp_path), patience=2)
    summary = train(config)
    assert summary["stopped_on_plateau"] is True
    assert summary["epochs_completed"] == 4 and summary["best_val_acc"] == pytest.approx(0.7)


def test_validation_on_a_one_fold_pair_list_uses_the_evaluation_rule(tmp_path):
    """--val on an occgen set built from a pairs.txt headed ``1 n`` (one fold) is scored by
    re-cut folds, as alob-eval does, instead of failing for want of held-out pairs: the same
    accuracy as alob-eval reports for the same checkpoint and folder."""
    import json

    from click.testing import CliRunner
    from train_fixtures import write_pairs

    from alob_eval.cli import main as eval_main
    from alob_train.checkpoint import load_model, save_untrained
    from alob_train.embed import validate_folder

    val = write_pairs(tmp_path / "val", classes=4, per_class=6)
    table = pd.read_csv(val / "pairs.csv")
    table["fold"] = 0
    table.loc[[0, 5, 9], "same"] = 1 - table.loc[[0, 5, 9], "same"]  # mislabelled pairs: accuracy below 1
    table.to_csv(val / "pairs.csv", index=False)
    run = save_untrained(tmp_path / "run", "lightcnn9", "baseline", input_size=(40, 32), classes=4)
    model, _ = load_model(run, "last")
    result = validate_folder(model, val, (40, 32))
    evaluated = CliRunner().invoke(eval_main, ["--checkpoint", str(run), "--which", "last", "--backend", "torch",
                                               "--bench", f"val={val}", "--out", str(tmp_path / "rep"), "--quiet"])
    assert evaluated.exit_code == 0, evaluated.output
    reported = json.loads((tmp_path / "rep" / "results.json").read_text())["results"]["val"]
    assert result["val_pairs"] == len(table) == reported["pairs"]
    assert reported["folds"] == 10 and 0.5 < reported["accuracy"] < 1.0
    assert result["val_acc"] == pytest.approx(reported["accuracy"], abs=1e-9)
    assert result["val_std"] == pytest.approx(reported["accuracy_std"], abs=1e-9)
