"""Backbones and ALOB variants: shapes, gradients, the GRL's sign flip, optimiser groups."""

from __future__ import annotations

import pytest
import torch

from alob_train.backbones import BACKBONES, build_backbone
from alob_train.model import ALOB, VARIANTS

RUN_SIZES = [(112, 96), (112, 112)]


@pytest.mark.slow
@pytest.mark.parametrize("size", RUN_SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("name", list(BACKBONES))
def test_backbone_embeds_to_512_and_backpropagates(name, size):
    torch.manual_seed(0)
    net = build_backbone(name, size)
    out = net(torch.randn(2, 3, *size))
    assert out.shape == (2, 512)
    out.pow(2).sum().backward()
    first_conv = next(p for p in net.parameters() if p.dim() == 4)
    assert first_conv.grad is not None and first_conv.grad.abs().sum() > 0


def test_backbone_final_maps_match_the_method():
    assert build_backbone("resnet18", (112, 96)).feature_shape == (512, 4, 3)
    assert build_backbone("iresnet18", (112, 96)).feature_shape == (512, 7, 6)
    assert build_backbone("lightcnn9", (112, 96)).feature_shape == (128, 7, 6)
    assert build_backbone("lightcnn9", (112, 112)).feature_shape == (128, 7, 7)


@pytest.mark.slow
@pytest.mark.parametrize("size", RUN_SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("variant", VARIANTS)
def test_variant_forward_backward_and_embedding(variant, size):
    torch.manual_seed(0)
    model = ALOB(7, "lightcnn9", variant, size)
    x, y = torch.randn(2, 3, *size), torch.tensor([1, 5])
    out = model(x, y)
    assert out["cos"].shape == (2, 7)
    assert out["loss_f"].ndim == 0
    assert (out["loss_m"] is None) == (variant == "baseline")
    total = out["loss_f"] + (out["loss_m"] if out["loss_m"] is not None else 0)
    total.backward()
    assert all(p.grad is not None for p in model.parameters())
    model.eval()
    emb = model.embed(x)
    assert emb.shape == (2, 1024 if variant == "concat" else 512)
    with torch.no_grad():  # each variant's embedding from the two backbones' features, by hand
        f = model.identifier(x)
        fm = model.trimmer(x) if model.trimmer is not None else None
        expected = {
            "alob": lambda: f - (f * fm).sum(1, keepdim=True) / (fm * fm).sum(1, keepdim=True) * fm,
            "alob-g": lambda: f - (f * fm).sum(1, keepdim=True) / (fm * fm).sum(1, keepdim=True) * fm,
            "alob-f": lambda: f - fm, "sum": lambda: f + fm, "concat": lambda: torch.cat([f, fm], dim=1),
            "baseline": lambda: f,
        }[variant]()
    torch.testing.assert_close(emb, expected, rtol=1e-4, atol=1e-5)
    if variant in ("alob", "alob-g"):
        assert torch.nn.functional.cosine_similarity(emb, fm, dim=1).abs().max() < 1e-5


def _trimmer_grads(model: ALOB, x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
    model.zero_grad()
    model(x, y)["loss_m"].backward()
    return [p.grad.clone() for p in model.trimmer.parameters()]


@pytest.mark.parametrize("coeff", [1.0, 0.5])
def test_grl_flips_the_trimmer_gradient_of_lm(coeff):
    torch.manual_seed(0)
    with_grl = ALOB(5, "resnet18", "alob", (64, 48), grl_coeff=coeff, classifier="shared")
    without = ALOB(5, "resnet18", "alob-g", (64, 48), classifier="shared")
    without.load_state_dict(with_grl.state_dict())
    x, y = torch.randn(4, 3, 64, 48), torch.tensor([0, 1, 2, 3])
    g_with, g_without = _trimmer_grads(with_grl, x, y), _trimmer_grads(without, x, y)
    assert sum(g.abs().sum() for g in g_without) > 0
    for a, b in zip(g_with, g_without):
        torch.testing.assert_close(a, -coeff * b, rtol=1e-4, atol=1e-6)
    # the classifier itself is not reversed: it minimises L_m in both models
    torch.testing.assert_close(with_grl.classifier.weight.grad, without.classifier.weight.grad)


@pytest.mark.parametrize("variant, classifier, classifier_side", [
    ("alob", "shared", "trimmer"),        # C_m, shared by f^m and the purified f: SGD
    ("alob", "separate", "identifier"),   # the purified f's own classifier: Adam; C_m: SGD
    ("concat", "shared", "identifier"),   # concat always has two classifiers
    ("baseline", "shared", "identifier"),
])
def test_param_groups_split_all_parameters_once(variant, classifier, classifier_side):
    model = ALOB(3, "lightcnn9", variant, (64, 48), classifier=classifier)
    groups = model.param_groups()
    ids = [id(p) for g in groups.values() for p in g]
    assert len(ids) == len(set(ids)) == len(list(model.parameters()))
    side = {name: {id(p) for p in params} for name, params in groups.items()}
    assert id(model.classifier.weight) in side[classifier_side]
    assert {id(p) for p in model.identifier.parameters()} <= side["identifier"]
    if variant == "baseline":
        assert not side["trimmer"] and model.trimmer is None and model.trimmer_classifier is None
    else:
        assert {id(p) for p in model.trimmer.parameters()} <= side["trimmer"]
        assert (model.trimmer_classifier is None) == (classifier_side == "trimmer")
        if model.trimmer_classifier is not None:
            assert id(model.trimmer_classifier.weight) in side["trimmer"]


def test_unknown_names_are_refused():
    with pytest.raises(ValueError, match="unknown backbone"):
        build_backbone("vgg")
    with pytest.raises(ValueError, match="unknown variant"):
        ALOB(3, "lightcnn9", "alob-x")
