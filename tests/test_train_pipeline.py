"""The batched input pipeline gives the reference per-sample pipeline's tensors, bit for bit: the
flip/jitter (numpy on the CPU, torch elsewhere) against torchvision v2, the loader's batches
against the per-sample path on occgen-built shards of real LFW faces (clean, occluded, masked),
the fast JPEG decoders against Pillow, the tar reader against webdataset."""

from __future__ import annotations

import importlib
import subprocess
import sys
import tarfile
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import webdataset as wds
from torch.utils.data import DataLoader
from torchvision.transforms import v2
from train_fixtures import write_shards

from alob_common.images import read_rgb
from alob_train import samples
from alob_train.augment import BatchJitter
from alob_train.config import TrainConfig
from alob_train.data import SampleTransform, ShardStream, build_loader, build_transform, open_data
from alob_train.preprocess import normalize

ROOT = Path(__file__).resolve().parents[1]


def _lfw_crops(lfw_dir: Path, count: int) -> list[np.ndarray]:
    """Real faces: the 112×96 centre of the first ``count`` deep-funneled LFW images."""
    files = sorted(lfw_dir.glob("*/*.jpg"))[:count]
    return [read_rgb(f)[69:181, 77:173] for f in files]


def _reference_jitter(images: torch.Tensor, seeds: list[int], jitter) -> torch.Tensor:
    compose = v2.Compose([v2.RandomHorizontalFlip(), v2.ColorJitter(*jitter)])
    out = []
    for image, seed in zip(images, seeds):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            out.append(compose(image))
    return torch.stack(out)


@pytest.mark.parametrize("jitter", [(0.2, 0.2, 0.2, 0.05), (0.6, 0.5, 0.9, 0.5), (0.0, 0.3, 0.0, 0.2)])
def test_batch_jitter_is_torchvisions_bit_for_bit(lfw_dir, jitter):
    faces = torch.stack([torch.from_numpy(f).permute(2, 0, 1) for f in _lfw_crops(lfw_dir, 48)])
    odd = torch.from_numpy(np.random.default_rng(1).integers(0, 256, (16, 3, 37, 29), dtype=np.uint8))
    flat = torch.full((4, 3, 37, 29), 128, dtype=torch.uint8)  # grey: max == min everywhere
    jitterer = BatchJitter(jitter)
    for images in (faces, odd, flat):
        seeds = [int(s) for s in np.random.default_rng(len(images)).integers(2**62, size=len(images))]
        params = [jitterer.params(s) for s in seeds]
        expected = _reference_jitter(images, seeds, jitter)
        assert torch.equal(jitterer.apply(images, params), expected)  # numpy, in chunks
        assert torch.equal(BatchJitter._apply(images.clone(), params, _torch_steps()), expected)  # the device path


def _torch_steps():
    from alob_train import augment
    return augment._STEPS


def test_jitter_draws_follow_the_reference_generator():
    params = BatchJitter((0.2, 0.2, 0.2, 0.05)).params(12345)
    torch.manual_seed(12345)
    assert params.flip == bool(torch.rand(1) < 0.5)
    assert params.order == tuple(torch.randperm(4).tolist())
    assert 0.8 <= params.factors[0] <= 1.2 and -0.05 <= params.factors[3] <= 0.05


@pytest.fixture(scope="module")
def lfw_shards(lfw_dir, tmp_path_factory) -> Path:
    """occgen build --format shards (all clean) over 40 real LFW face crops in 8 identities."""
    tmp = tmp_path_factory.mktemp("lfw-shards")
    for n, face in enumerate(_lfw_crops(lfw_dir, 40)):
        folder = tmp / "src" / f"id{n % 8}"
        folder.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / f"{n:03d}.jpg"), face[:, :, ::-1])
    subprocess.run([sys.executable, "-m", "occgen.cli", "build", "--source", "folder", "--data", str(tmp / "src"),
                    "--out", str(tmp / "data"), "--format", "shards", "--clean-ratio", "1:0", "--shard-size", "16",
                    "--workers", "0", "--quiet"], check=True, cwd=ROOT, capture_output=True)
    return tmp / "data"


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["clean", "occluded", "masked", "mixed"])
def test_loader_batches_equal_the_per_sample_reference(lfw_shards, mode):
    """build_loader's uint8 batches, normalised as the training step does, equal the batches of
    the per-sample reference path (occlusion, v2 flip/jitter and normalisation per sample), and
    so do those of --augment-on device run on the CPU (clean JPEGs decoded by torchvision)."""
    extra = {"clean": {}, "occluded": {"occlude": True, "clean_ratio": "0:1"},
             "masked": {"occlude": True, "clean_ratio": "0:1", "mask_fraction": 1.0},
             "mixed": {"occlude": True, "mask_fraction": 0.5}}[mode]
    config = TrainConfig(data=str(lfw_shards), out="", input_size=(112, 96), batch_size=8, workers=0,
                         shuffle_buffer=16, seed=4, **extra)
    info = open_data(lfw_shards)
    transform = build_transform(config)
    fast = [normalize(images) for images, _ in _take(build_loader(info, config, transform, 2, 0), 4)]
    stream = ShardStream(info, transform, config.seed, buffer=config.shuffle_buffer)
    stream.epoch = 2  # batched stays False: the reference items
    loader = DataLoader(stream, batch_size=8, collate_fn=samples.collate_good)
    reference = [images for images, _, _ in _take(iter(loader), 4)]
    assert len(fast) == 4 and all(torch.equal(a, b) for a, b in zip(fast, reference))
    on_device = replace(config, augment_on="device")
    device = [normalize(images) for images, _ in _take(build_loader(info, on_device, transform, 2, 0,
                                                                    device=torch.device("cpu")), 4)]
    assert len(device) == 4 and all(torch.equal(a, b) for a, b in zip(device, reference))
    assert fast[0].dtype == torch.float32 and -1 <= fast[0].min() and fast[0].max() <= 1


def _take(batches, n):
    out = []
    for batch in batches:
        out.append(batch)
        if len(out) == n:
            return out
    return out


@pytest.mark.parametrize("codec", ["simplejpeg", "cv2"])
def test_fast_jpeg_decoding_gives_pillows_pixels(lfw_dir, monkeypatch, codec, optional_part):
    from alob_common import images

    if codec == "cv2":
        monkeypatch.setattr(images, "simplejpeg", None)
    else:  # alob_common.images decodes with simplejpeg when it imports
        optional_part("simplejpeg (the [fast] extra)", ("simplejpeg",), lambda: importlib.import_module("simplejpeg"))
    files = sorted(lfw_dir.glob("*/*.jpg"))[::97][:60]
    for f in files:
        data = f.read_bytes()
        assert np.array_equal(samples.decode_jpeg_rgb(data), read_rgb(f))
    gray = cv2.imencode(".jpg", np.full((20, 16), 90, np.uint8))[1].tobytes()
    assert np.array_equal(samples.decode_image(gray), read_rgb(__import__("io").BytesIO(gray)))
    assert samples.decode_jpeg_rgb(b"\xff\xd8garbage") is None
    assert samples.decode_image(b"\xff\xd8garbage").startswith("unreadable image")


def test_shard_read_cut_short_keeps_the_whole_samples(tmp_path):
    root = write_shards(tmp_path / "d", classes=3, per_class=4, shards=2, fmt="jpg")
    cut = root / "shards" / "train-000001.tar"
    with tarfile.open(cut) as tar:
        middle = tar.getmembers()[7].offset_data + 10  # inside the third sample's second member
    cut.write_bytes(cut.read_bytes()[:middle])
    got = list(samples.tar_samples([str(cut)]))
    assert isinstance(got[-1], samples.BadSample) and "damaged shard" in got[-1].reason
    assert len(got) == 3 and all(isinstance(s, dict) and "jpg" in s for s in got[:-1])


def test_reference_transform_is_unchanged_for_a_single_sample(lfw_dir):
    """prepare + finish + normalize on a batch of one is the reference call."""
    face = _lfw_crops(lfw_dir, 1)[0]
    transform = SampleTransform((112, 96))
    image, params = transform.prepare(face, (0, 1, 2))
    assert image.dtype == torch.uint8
    assert torch.equal(normalize(transform.batch([image], [params]))[0], transform(face, (0, 1, 2)))
