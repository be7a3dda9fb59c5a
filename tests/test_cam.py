"""CAMs point where a network responds, and the overlap numbers score that against masks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from alob_eval.cam_maps import cam_maps, mask_overlap


class BrightSpotNet(torch.nn.Module):
    """A fixed network whose embedding grows with bright pixels: its attention is known."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        with torch.no_grad():
            self.conv.weight.fill_(1.0 / 27)
            self.conv.bias.fill_(-0.5)
        self.head = torch.nn.Sequential(torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.conv(x))


@pytest.mark.parametrize("method", ["gradcam", "gradcam++"])
def test_cam_finds_the_bright_occluder(method):
    rng = np.random.default_rng(0)
    images = torch.full((6, 3, 56, 48), -0.8)
    masks = np.zeros((6, 56, 48), bool)
    for i in range(6):  # a bright "occluder" at a different place in each image
        y, x = rng.integers(0, 30), rng.integers(0, 24)
        images[i, :, y : y + 20, x : x + 18] = 0.9
        masks[i, y : y + 20, x : x + 18] = True
    net = BrightSpotNet()
    cams = cam_maps(net, net.conv, images, method)
    assert cams.shape == (6, 56, 48) and 0.0 <= cams.min() and cams.max() <= 1.0
    overlap = mask_overlap(cams, masks)
    assert overlap["pointing_game"] == 1.0
    # the 3x3 conv leaks activation one pixel past the square's edge and weakens it one pixel
    # inside, so the ranking is good but not perfect (chance would be 0.5)
    assert overlap["auc_mean"] > 0.85 and overlap["auc_pooled"] > 0.85


def test_mask_overlap_hand_known():
    cams = np.zeros((3, 4, 4))
    masks = np.zeros((3, 4, 4), bool)
    cams[0, 0, 0], masks[0, 0, :2] = 1.0, True  # hit
    cams[1, 3, 3], masks[1, 0, 0] = 1.0, True  # miss
    masks[2] = True  # full mask: skipped
    result = mask_overlap(cams, masks)
    assert result["images"] == 2 and result["skipped"] == 1
    assert result["pointing_game"] == 0.5
    # image 0: one of two masked pixels ranks first, the other ties with 14 clean zeros -> AUC 0.75
    # image 1: the masked pixel ties with 14 clean zeros and one clean pixel ranks above -> AUC 14*0.5/15
    assert result["auc_mean"] == pytest.approx((0.75 + 7 / 15) / 2)


@pytest.mark.parametrize("name", ["resnet18", "iresnet18", "iresnet50", "lightcnn9"])
def test_cam_layer_is_the_second_to_last_convolution(name):
    from alob_eval.cam_maps import CAM_LAYERS, cam_target_layer
    from alob_train.backbones import MFM, build_backbone

    backbone = build_backbone(name).eval()
    order = []  # convolutions in the order the forward pass runs them
    hooks = [m.register_forward_hook(lambda mod, i, o: order.append(mod)) for m in backbone.trunk.modules()
             if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
        backbone(torch.zeros(1, 3, 112, 96))
    for hook in hooks:
        hook.remove()
    layer = cam_target_layer(backbone, name)
    expected = order[-2]
    if name == "lightcnn9":  # the MFM unit that holds the convolution, not the convolution itself
        assert isinstance(layer, MFM) and layer.conv is expected
    else:
        assert layer is expected
    assert name in CAM_LAYERS
    with pytest.raises(ValueError, match="no CAM layer"):
        cam_target_layer(backbone, "vgg")


def test_partial_backward_gives_the_library_cam():
    """Freezing the layers below the CAM layer changes the cost, not the map."""
    from pytorch_grad_cam import GradCAMPlusPlus

    from alob_eval.cam_maps import EmbeddingNorm, cam_target_layer
    from alob_train.backbones import build_backbone

    torch.manual_seed(0)
    net = build_backbone("resnet18").eval()
    images = torch.randn(3, 3, 112, 96)
    layer = cam_target_layer(net, "resnet18")
    with GradCAMPlusPlus(model=net, target_layers=[layer]) as cam:
        plain = cam(input_tensor=images, targets=[EmbeddingNorm()] * 3)
    ours = cam_maps(net, layer, images, "gradcam++")
    np.testing.assert_allclose(ours, plain, atol=1e-5)
    assert all(p.requires_grad for p in net.parameters())


def test_quantised_auc_matches_sklearn_and_baselines_score_chance():
    from sklearn.metrics import roc_auc_score

    from alob_eval.cam_maps import MaskOverlap, centre_prior, random_maps

    rng = np.random.default_rng(3)
    masks = np.zeros((40, 56, 48), bool)
    for m in masks:
        y, x = rng.integers(0, 40), rng.integers(0, 30)
        m[y : y + 16, x : x + 18] = True
    cams = np.clip(masks * 0.2 + rng.random(masks.shape) * 0.9, 0, 1)
    acc = MaskOverlap()
    _, aucs = acc.update(cams[:25], masks[:25])
    acc.update(cams[25:], masks[25:])
    exact = [roc_auc_score(m.ravel(), c.ravel()) for c, m in zip(cams, masks)]
    np.testing.assert_allclose(aucs, exact[:25], atol=1e-3)
    summary = acc.summary()
    assert summary["images"] == 40 and summary["auc_mean"] == pytest.approx(np.mean(exact), abs=1e-3)
    assert summary["auc_pooled"] == pytest.approx(roc_auc_score(masks.ravel(), cams.ravel()), abs=1e-3)
    noise = mask_overlap(random_maps(np.random.default_rng(0), 40, 56, 48), masks)
    assert abs(noise["auc_pooled"] - 0.5) < 0.01
    flat = mask_overlap(np.zeros(masks.shape), masks)  # ties: the hit is the mask's area
    assert flat["pointing_game"] == pytest.approx(masks.mean(axis=(1, 2)).mean()) and flat["flat"] == 40
    assert centre_prior(2, 56, 48).max() == pytest.approx(1.0, abs=0.01)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        mask_overlap(cams * 2, masks)
