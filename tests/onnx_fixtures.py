"""Small ONNX face models and small verification sets made in the tests (alob-eval --onnx,
alob-export, alob-eval suite).

``TinyNet`` is a real (random-weight) convolutional embedder: RGB NCHW input normalised as
insightface's models take it, (x - 127.5) / 127.5. ``export_tiny`` writes it with torch.onnx,
either as is (dynamic batch and size) or behind a front end that takes what other models take:
BGR channels, NHWC layout, pixels scaled to 0..1, a fixed batch of one and a fixed 112x112 size.
The sets are "people" made of a random picture each, seen with noise: an LFW-style aligned
folder with a pairs.txt, and .bin files of its pairs.
"""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import torch

from alob_common.images import read_rgb


class TinyNet(torch.nn.Module):
    """Conv (stride 8) -> ReLU -> 2x2 average grid -> linear 24: works at any input size."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.conv = torch.nn.Conv2d(3, 6, 8, stride=8)
        self.fc = torch.nn.Linear(6 * 4, 24)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.conv(x))
        h, w = y.shape[-2] // 2, y.shape[-1] // 2
        cells = [y[..., :h, :w], y[..., :h, w:], y[..., h:, :w], y[..., h:, w:]]
        return self.fc(torch.cat([c.mean(dim=(-2, -1)) for c in cells], dim=1))


class BgrNhwcFront(torch.nn.Module):
    """TinyNet behind another convention: NHWC, BGR, pixels / 255."""

    def __init__(self, net: TinyNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rgb = x.permute(0, 3, 1, 2).flip(1)
        return self.net(rgb * 2.0 - 1.0)


def export_tiny(path: Path, variant: str = "insightface", seed: int = 0) -> Path:
    """``insightface``: TinyNet, input 'data' N x 3 x H x W (batch, height and width dynamic),
    output 'fc1'. ``bgr-nhwc``: BgrNhwcFront, input 1 x 112 x 112 x 3 fixed, two outputs (an
    extra 'pooled' first, so the embedding must be named)."""
    net = TinyNet(seed).eval()
    if variant == "insightface":
        dims = {0: torch.export.Dim("batch"), 2: torch.export.Dim("h", min=16, max=512),
                3: torch.export.Dim("w", min=16, max=512)}
        program = torch.onnx.export(net, (torch.zeros(2, 3, 112, 112),), input_names=["data"], output_names=["fc1"],
                                    dynamic_shapes=(dims,), dynamo=True, external_data=False, verbose=False)
    else:
        class TwoOutputs(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.front = BgrNhwcFront(net)

            def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
                return x.mean(dim=(1, 2)), self.front(x)

        program = torch.onnx.export(TwoOutputs().eval(), (torch.zeros(1, 112, 112, 3),), input_names=["input"],
                                    output_names=["pooled", "embedding"], dynamo=True, external_data=False,
                                    verbose=False)
    program.save(str(path))
    return path


@torch.inference_mode()
def tiny_vectors(images: list[np.ndarray], seed: int = 0, flip: bool = False) -> np.ndarray:
    """TinyNet's embeddings of RGB uint8 112x112 crops computed here, in float64 (with ``flip``:
    the sum over each image and its mirror, as alob-eval's --flip)."""
    net = TinyNet(seed).eval()

    def run(batch: list[np.ndarray]) -> np.ndarray:
        x = torch.from_numpy(np.stack(batch)).permute(0, 3, 1, 2).float() / 127.5 - 1.0
        return net(x).double().numpy()

    vectors = run(images)
    return vectors + run([np.ascontiguousarray(i[:, ::-1]) for i in images]) if flip else vectors


def write_people(root: Path, people: int = 8, per_person: int = 3, seed: int = 0) -> tuple[Path, Path]:
    """An LFW-style aligned folder ``P00/P00_0001.jpg`` ... (112x112) and a pairs.txt of 10 folds,
    each with one matched and one mismatched pair; returns (folder, pairs.txt)."""
    rng = np.random.default_rng(seed)
    for p in range(people):
        base = cv2.resize(rng.integers(0, 256, (7, 7, 3)).astype(np.float32), (112, 112))
        (root / f"P{p:02d}").mkdir(parents=True, exist_ok=True)
        for k in range(1, per_person + 1):
            noisy = np.clip(base + rng.normal(0, 25, base.shape), 0, 255).astype(np.uint8)
            cv2.imwrite(str(root / f"P{p:02d}" / f"P{p:02d}_{k:04d}.jpg"), noisy)
    lines = ["10 1"]
    for fold in range(10):
        a, b = fold % people, (fold + 3) % people
        lines += [f"P{a:02d} 1 {2 + fold % (per_person - 1)}", f"P{a:02d} {1 + fold % per_person} P{b:02d} 1"]
    pairs = root.parent / f"{root.name}-pairs.txt"
    pairs.write_text("\n".join(lines) + "\n")
    return root, pairs


def write_bin(path: Path, folder: Path, pairs_txt: Path) -> Path:
    """The pairs of ``pairs_txt`` over ``folder`` as an insightface ``.bin``."""
    from alob_common.pairs import pair_table
    from alob_common.verification_bin import write_pairs_bin

    write_pairs_bin(path, pair_table(pairs_txt, folder))
    return path


def images_of(paths: list[str], images: dict[str, bytes] | None = None) -> list[np.ndarray]:
    """RGB crops of files, or of a .bin's encoded images held in ``images``, by the evaluation's reader."""
    images = images or {}
    return [read_rgb(io.BytesIO(images[p])) if p in images else read_rgb(p) for p in paths]
