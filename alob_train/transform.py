"""One training sample's transform, split so that the costly part runs once per batch.

:meth:`SampleTransform.prepare` (per sample, in a DataLoader worker): optional on-the-fly
occlusion or face mask, fit to the input size, the flip/jitter parameters drawn; the image stays
uint8. :meth:`SampleTransform.finish` (per batch): flip and colour jitter by
:class:`alob_train.augment.BatchJitter`. :func:`alob_train.preprocess.normalize` then maps the
uint8 batch to [-1, 1] where the batch is used (the training step, on its device), so a batch
travels as uint8.

:meth:`SampleTransform.__call__` is the reference: the same sample by the per-sample path
(torchvision v2 on one image, normalised), which defines what the batched path must give and
what the tests compare it with, bit for bit.

Every random choice comes from a numpy generator seeded by the sample's seed (seed, epoch, key):
first "clean or not" (and, with masks, "mask or occluder"), then occgen's own draws, then one
integer that seeds the flip/jitter draws.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torchvision.io import ImageReadMode, decode_jpeg
from torchvision.transforms import v2

from alob_train.augment import BatchJitter, JitterParams
from alob_train.preprocess import fit_to_input, normalize
from alob_train.samples import DataError, decode_image
from occgen import MaskConfig, OcclusionConfig, mask_face, occlude
from occgen.synth import parse_clean_ratio, parse_scale_set

# Face masks on the fly: landmarks from the crop's template driving occgen's face-shape model
# (no dlib per sample: deterministic and the same with or without dlib installed).
ON_THE_FLY_MASKS = MaskConfig(landmarks="model")


@dataclass(frozen=True)
class OnTheFlyOcclusion:
    """``--occlude``: each training sample stays clean with probability ``clean_fraction``, else
    gets one occluder by ``occgen.occlude`` at a factor occgen draws from ``scales`` (FROM's
    training recipe: clean:occluded 1:2, factors 1..5/0.5) or, with probability
    ``mask_fraction`` of the occluded ones, a face mask by ``occgen.mask_face`` (as ``occgen
    build --kind mixed --mask-fraction``)."""

    clean_fraction: float = 1 / 3
    scales: tuple[float, ...] = parse_scale_set("1..5/0.5")
    mask_fraction: float = 0.0

    @staticmethod
    def parse(clean_ratio: str, scale_set: str, mask_fraction: float = 0.0) -> "OnTheFlyOcclusion":
        """From ``--clean-ratio`` (``"1:2"``, clean:occluded), ``--scale-set`` (``"1..5/0.5"``, both
        ends included, or ``"1,2,3"``), read by occgen's own parsers, and
        ``--mask-fraction`` (0..1)."""
        try:
            clean_fraction = parse_clean_ratio(clean_ratio)
            scales = parse_scale_set(scale_set)
        except ValueError as err:
            raise DataError(f"bad occlusion setting: {err}") from None
        if not scales or min(scales) <= 0:
            raise DataError(
                f"bad occlusion setting: the factors of scale set {scale_set!r} must be positive")
        if not 0 <= mask_fraction <= 1:
            raise DataError(f"bad occlusion setting: mask fraction {mask_fraction} is not in 0..1")
        return OnTheFlyOcclusion(clean_fraction, scales, float(mask_fraction))

    def apply(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The sample's image, clean, occluded or masked by ``rng``'s draws."""
        return image if self.keeps_clean(rng) else self.cover(image, rng)

    def keeps_clean(self, rng: np.random.Generator) -> bool:
        """The sample's first draw: does it stay clean?"""
        return bool(rng.random() < self.clean_fraction)

    def cover(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """An occluded sample's image: a face mask or an occluder, by ``rng``'s next draws."""
        if self.mask_fraction and rng.random() < self.mask_fraction:
            return mask_face(image, rng, ON_THE_FLY_MASKS)[0]
        return occlude(image, rng, config=OcclusionConfig(scale_set=self.scales))[0]


class SampleTransform:
    """uint8 HWC RGB array + seed -> the model's input: optional occlusion, fit to the input
    size, optional flip and colour jitter (torchvision v2's, per sample), normalisation."""

    def __init__(
        self,
        input_size: tuple[int, int],
        augment: bool = True,
        jitter: tuple[float, float, float, float] = (0.2, 0.2, 0.2, 0.05),
        occlusion: OnTheFlyOcclusion | None = None,
    ) -> None:
        self.input_size = tuple(input_size)
        self.occlusion = occlusion
        steps = [v2.RandomHorizontalFlip(), v2.ColorJitter(*jitter)] if augment else []
        self.augment = v2.Compose(steps) if steps else None
        self.jitter = BatchJitter(tuple(jitter)) if augment else None

    def _occluded(self, image: np.ndarray, rng: np.random.Generator) -> torch.Tensor:
        return self._fit(image if self.occlusion is None else self.occlusion.apply(image, rng))

    def _fit(self, image: np.ndarray) -> torch.Tensor:
        if not (image.flags.writeable and image.flags.c_contiguous):
            image = np.array(image)
        return fit_to_input(torch.from_numpy(image).permute(2, 0, 1), self.input_size)

    def prepare(self, image: np.ndarray, seed: tuple[int, ...]) -> tuple[torch.Tensor, JitterParams | None]:
        """One sample, before the batch: (uint8 CHW image at the input size, occluded when its
        draw says so; its flip/jitter parameters, None without augmentation)."""
        rng = np.random.default_rng(seed)
        img = self._occluded(image, rng)
        return img, (None if self.jitter is None else self.jitter.params(int(rng.integers(2**62))))

    def finish(self, images: torch.Tensor, params: list[JitterParams | None]) -> torch.Tensor:
        """A stacked uint8 batch of prepared samples, flipped and jittered (still uint8)."""
        return images if self.jitter is None else self.jitter.apply(images, params)

    def batch(self, images: list[torch.Tensor], params: list[JitterParams | None]) -> torch.Tensor:
        """The DataLoader's batch step (``collate_good``'s ``finish``): stack, flip and jitter."""
        stacked = torch.stack(images) if images else torch.empty((0, 3, *self.input_size), dtype=torch.uint8)
        return self.finish(stacked, params)

    def prepare_encoded(self, data: bytes, seed: tuple[int, ...]) -> tuple[torch.Tensor, JitterParams | None] | str:
        """``--augment-on device``: :meth:`prepare` with a clean JPEG left encoded (a 1-D uint8
        tensor, decoded by :meth:`on_device`); an occluded or non-JPEG sample is decoded here.
        The same draws as :meth:`prepare`; a str is why the image cannot be decoded."""
        rng = np.random.default_rng(seed)
        clean = self.occlusion is None or self.occlusion.keeps_clean(rng)
        if clean and data[:3] == b"\xff\xd8\xff":
            img = torch.frombuffer(bytearray(data), dtype=torch.uint8)
        else:
            image = decode_image(data)
            if isinstance(image, str):
                return image
            img = self._fit(image if clean else self.occlusion.cover(image, rng))
        return img, (None if self.jitter is None else self.jitter.params(int(rng.integers(2**62))))

    def on_device(self, pieces: list[torch.Tensor], params: list[JitterParams | None],
                  device: torch.device) -> torch.Tensor:
        """A batch of :meth:`prepare_encoded` samples on ``device``: the encoded ones decoded there
        (``torchvision.io.decode_jpeg``; nvJPEG on a GPU) and fitted, then flipped and jittered
        there. On the CPU it equals the workers' batch (tested); on a GPU the float steps may
        round differently (untested here: no GPU)."""
        pieces = list(pieces)
        encoded = [i for i, piece in enumerate(pieces) if piece.ndim == 1]
        if encoded:
            try:
                images = decode_jpeg([pieces[i] for i in encoded], mode=ImageReadMode.RGB, device=device)
            except RuntimeError as err:
                raise DataError(f"a JPEG could not be decoded on {device} ({err}); "
                                "train with --augment-on workers to skip bad samples instead") from None
            for i, image in zip(encoded, images):
                pieces[i] = fit_to_input(image, self.input_size)
        batch = torch.stack([piece.to(device) for piece in pieces])
        return self.finish(batch, params)

    def __call__(self, image: np.ndarray, seed: tuple[int, ...]) -> torch.Tensor:
        """The reference path for one sample: float32 CHW in [-1, 1]."""
        rng = np.random.default_rng(seed)
        img = self._occluded(image, rng)
        if self.augment is not None:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(int(rng.integers(2**62)))
                img = self.augment(img)
        return normalize(img)
