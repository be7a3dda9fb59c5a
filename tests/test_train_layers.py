"""GRL, feature projection purification and CosFace against hand computations."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from alob_train.layers import (
    CosFace,
    GradientReversal,
    dann_ramp,
    grad_reverse,
    project_out,
)


@pytest.mark.parametrize("coeff", [1.0, 0.3, 2.5])
def test_grl_gradient_is_minus_c_times_identity_gradient(coeff):
    torch.manual_seed(0)
    weights = torch.randn(4, 7)
    x1 = torch.randn(4, 7, requires_grad=True)
    x2 = x1.detach().clone().requires_grad_(True)
    (torch.sin(x1) * weights).sum().backward()
    y = grad_reverse(x2, coeff)
    assert torch.equal(y, x2)  # identity forward
    (torch.sin(y) * weights).sum().backward()
    torch.testing.assert_close(x2.grad, -coeff * x1.grad, rtol=0, atol=1e-6)


def test_grl_module_follows_its_coefficient():
    grl = GradientReversal(1.0)
    x = torch.ones(3, requires_grad=True)
    grl.coeff = 0.25
    grl(x).sum().backward()
    assert torch.equal(x.grad, torch.full((3,), -0.25))


def test_dann_ramp_goes_from_zero_to_one():
    assert dann_ramp(0.0) == 0.0
    assert dann_ramp(0.5) == pytest.approx(2 / (1 + math.exp(-5)) - 1)
    assert dann_ramp(1.0) == pytest.approx(0.99990920, abs=1e-7)
    assert dann_ramp(2.0) == dann_ramp(1.0)


def test_fpp_output_is_orthogonal_to_trimmer_feature():
    torch.manual_seed(1)
    f, fm = torch.randn(64, 512), torch.randn(64, 512) * 3
    out = project_out(f, fm)
    assert F.cosine_similarity(out, fm, dim=1).abs().max() < 1e-5
    f64, fm64 = f.double(), fm.double()
    expected = f64 - ((f64 * fm64).sum(1, keepdim=True) / (fm64 * fm64).sum(1, keepdim=True)) * fm64
    torch.testing.assert_close(out.double(), expected, rtol=1e-5, atol=1e-5)


def test_fpp_keeps_a_feature_already_orthogonal():
    f = torch.tensor([[1.0, 2.0, 0.0, 0.0]])
    fm = torch.tensor([[0.0, 0.0, 3.0, -1.0]])
    torch.testing.assert_close(project_out(f, fm), f)


def test_fpp_is_stable_when_trimmer_feature_is_zero():
    f = torch.randn(5, 16, requires_grad=True)
    fm = torch.zeros(5, 16, requires_grad=True)
    out = project_out(f, fm)
    torch.testing.assert_close(out, f.detach())
    out.pow(2).sum().backward()
    assert torch.isfinite(f.grad).all() and torch.isfinite(fm.grad).all()


def test_fpp_detach_stops_gradient_into_trimmer_feature():
    f = torch.randn(3, 8, requires_grad=True)
    fm = torch.randn(3, 8, requires_grad=True)
    project_out(f, fm, detach=True).sum().backward()
    assert fm.grad is None and f.grad is not None


def test_cosface_logits_match_hand_computation():
    head = CosFace(2, 3, s=30.0, m=0.4)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]]))
    x = torch.tensor([[3.0, 0.0], [1.0, 1.0]])
    labels = torch.tensor([0, 1])
    r = 1 / math.sqrt(2)
    # cosines: row 0 = (1, 0, r); row 1 = (r, r, 1)
    expected = torch.tensor([[30 * (1 - 0.4), 0.0, 30 * r], [30 * r, 30 * (r - 0.4), 30.0]])
    torch.testing.assert_close(head(x, labels), expected, rtol=0, atol=1e-5)
    torch.testing.assert_close(head(x), torch.tensor([[30.0, 0.0, 30 * r], [30 * r, 30 * r, 30.0]]), rtol=0, atol=1e-5)
    loss = F.cross_entropy(head(x, labels), labels)
    by_hand = -(torch.log_softmax(expected, 1)[0, 0] + torch.log_softmax(expected, 1)[1, 1]) / 2
    assert loss.item() == pytest.approx(by_hand.item(), abs=1e-5)
