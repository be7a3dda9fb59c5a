"""CAMs point where a network responds, and the overlap numbers score that against masks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from alob_train.cam import cam_maps, mask_overlap


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
