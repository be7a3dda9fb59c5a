"""Training data: WebDataset shards or identity folders -> (normalised image, label) batches.

Two inputs are read (the layouts occgen writes; README.md, "occgen" and "alob-train"):

- shards: ``DIR/shards/<split>-%06d.tar`` (``<key>.jpg|png``, ``<key>.json`` with ``label``) and
  ``DIR/classes.csv`` (``label, identity, count``); streamed with ``webdataset``.
- folders: ``DIR/<identity>/<image>`` or an occgen folder dataset ``DIR/images/<identity>/<image>``;
  labels are the sorted identity names' indices.

A sample that cannot be used is skipped and counted, not raised (``alob_train/samples.py``).

Every random choice for a sample (on-the-fly occlusion, flip, colour jitter) is drawn from a
generator seeded by (seed, epoch, sample index or key), so a batch is the same whatever the
number of workers or processes and whether the run was resumed.
"""

from __future__ import annotations

import itertools
import json
import os
import sys
import tarfile
import zlib
from functools import partial
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import pandas as pd
import torch
import webdataset as wds
from torch.utils.data import (
    DataLoader,
    Dataset,
    DistributedSampler,
    IterableDataset,
    get_worker_info,
)

from alob_common.images import is_image_name
from alob_common.insightface_pack import Pack, open_pack
from alob_common.recordio import RecordIOError, unpack_image_record
from alob_train.config import TrainConfig
from alob_train.samples import (
    READ_ERRORS,
    BadSample,
    BadSamples,
    DataError,
    collate_good,
    decode_image,
    readable_shards,
    sample_image,
    shard_item,
    tar_samples,
)
from alob_train.transform import OnTheFlyOcclusion, SampleTransform

__all__ = ["DataError", "DataInfo", "FolderDataset", "OnTheFlyOcclusion", "ResumableSampler", "SampleTransform",
           "ShardStream", "build_loader", "build_transform", "open_data"]


@dataclass
class DataInfo:
    """What a training input holds: its kind, files, class names (index = label), sample count."""

    root: Path
    kind: str
    classes: list[str]
    num_samples: int
    shards: list[str] = field(default_factory=list)
    items: list[tuple[str, int]] = field(default_factory=list)
    bad_shards: list[BadSample] = field(default_factory=list)
    pack: Pack | None = None  # an insightface pack: ``items`` hold (record key, label)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def first_image(self) -> np.ndarray:
        """The first image that decodes (to learn the input size)."""
        if self.kind in ("folder", "pack"):
            images = (decode_image(self.read(source)) for source, _ in self.items)
        else:
            images = (sample_image(s) for s in tar_samples(self.shards) if not isinstance(s, BadSample))
        for image in images:
            if not isinstance(image, str):
                return image
        raise DataError(f"no image in {self.root} can be read")

    def read(self, source: str) -> str | bytes:
        """What :func:`decode_image` takes for an item: its path, or a pack record's image bytes."""
        if self.pack is None:
            return source
        return unpack_image_record(self.pack.reader.read(int(source)))[1]


def _count_shard_samples(shards: list[str]) -> tuple[int, dict[int, str]]:
    """Count samples and collect label -> identity by reading the json members of the tars
    (a damaged tar up to its damage, a json without a label not at all)."""
    count, names = 0, {}
    for shard in shards:
        try:
            with tarfile.open(shard) as tar:
                for member in tar:
                    if member.name.endswith(".json") and not member.name.endswith(".mask.json"):
                        try:
                            meta = json.load(tar.extractfile(member))
                            names.setdefault(int(meta["label"]), str(meta.get("identity", meta["label"])))
                        except (ValueError, KeyError, TypeError):
                            continue
                        count += 1
        except READ_ERRORS:
            continue
    return count, names


def _open_shards(root: Path, shards: list[Path]) -> DataInfo:
    urls, bad = readable_shards([str(p) for p in shards])
    if not urls:
        raise DataError(f"no readable shard in {root}: {bad[0].where}: {bad[0].reason}")
    for shard in bad:
        print(f"warning: skipping {shard.where}: {shard.reason}", file=sys.stderr)
    classes_csv = root / "classes.csv"
    if classes_csv.is_file():
        table = pd.read_csv(classes_csv)
        if not {"label", "identity"} <= set(table.columns) or table.empty:
            raise DataError(f"{classes_csv} needs rows with columns label, identity, count")
        table = table.sort_values("label")
        if list(table["label"]) != list(range(len(table))):
            raise DataError(f"{classes_csv}: labels must be 0..N-1 without gaps")
        classes = [str(v) for v in table["identity"]]
        total = int(table["count"].sum()) if "count" in table else _count_shard_samples(urls)[0]
    else:
        total, names = _count_shard_samples(urls)
        if not names:
            raise DataError(f"the shards in {root} hold no samples")
        classes = [names.get(i, str(i)) for i in range(max(names) + 1)]
    if total == 0:
        raise DataError(f"the shards in {root} hold no samples")
    return DataInfo(root, "shards", classes, total, shards=urls, bad_shards=bad)


def _open_folders(root: Path) -> DataInfo:
    identities = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    items, classes = [], []
    for name in identities:
        files = sorted(p for p in (root / name).iterdir() if is_image_name(p.name))
        if files:
            items.extend((str(p), len(classes)) for p in files)
            classes.append(name)
    if not items:
        raise DataError(f"no identity folders with images in {root}")
    return DataInfo(root, "folder", classes, len(items), items=items)


def _open_pack(root: Path) -> DataInfo:
    """An insightface pack (``train.rec`` + ``train.idx``, e.g. ``faces_webface_112x112``): its
    images by record key, labelled from the identity records; classes named by their number."""
    try:
        pack = open_pack(root)
        labelled = pack.labelled_keys()
    except RecordIOError as err:
        raise DataError(str(err)) from None
    if not labelled:
        raise DataError(f"the pack in {root} holds no image records")
    classes = [str(c) for c in range(max(pack.num_classes, max(label for label, _ in labelled) + 1))]
    items = [(str(key), label) for label, key in labelled]
    return DataInfo(root, "pack", classes, len(items), items=items, pack=pack)


def open_data(path: str | Path, split: str = "train") -> DataInfo:
    """Recognise a training input: occgen shards (``shards/<split>-*.tar``, else any ``*.tar``
    there or in ``path``), an insightface pack (``*.rec`` with its ``.idx``), an occgen folder
    dataset (``images/``) or plain identity folders."""
    root = Path(path)
    if root.is_file() and root.suffix == ".rec" or root.is_dir() and any(root.glob("*.rec")):
        return _open_pack(root)
    if not root.is_dir():
        raise DataError(f"data folder not found: {root}")
    for folder in (root / "shards", root):
        shards = sorted(folder.glob(f"{split}-*.tar")) or sorted(folder.glob("*.tar"))
        if shards:
            return _open_shards(root, shards)
    if (root / "shards").is_dir():
        raise DataError(f"{root / 'shards'} holds no .tar shards")
    return _open_folders(root / "images" if (root / "images").is_dir() else root)


def _item(transform: SampleTransform, mode: str, image: np.ndarray | bytes, label: int, seed: tuple[int, ...],
          where: str) -> tuple[torch.Tensor, int] | tuple[torch.Tensor, int, Any] | BadSample:
    """A dataset's sample by ``mode``: ``reference`` (the per-sample path) ``(normalised image,
    label)``; ``workers`` (the loader's) ``(uint8 image, label, flip/jitter parameters)``;
    ``device`` the same from the image's bytes, a clean JPEG left encoded."""
    if mode == "reference":
        return transform(image, seed), label
    prepared = transform.prepare(image, seed) if mode == "workers" else transform.prepare_encoded(image, seed)
    return BadSample(where, prepared) if isinstance(prepared, str) else (prepared[0], label, prepared[1])


class FolderDataset(Dataset):
    """Map-style dataset over identity folders or a pack's records; ``epoch`` is part of every
    sample's seed; ``mode`` as in :func:`_item`."""

    def __init__(self, info: DataInfo, transform: SampleTransform, seed: int) -> None:
        self.info, self.items, self.transform, self.seed, self.epoch = info, info.items, transform, seed, 0
        self.mode = "reference"

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, Any] | BadSample:
        source, label = self.items[index]
        where = source if self.info.pack is None else f"record {source}"
        try:
            data = self.info.read(source)
            image = decode_image(data) if self.mode != "device" else data if isinstance(data, bytes) else (
                Path(data).read_bytes() or "empty image (0 bytes)")
        except RecordIOError as err:
            image = f"unreadable record ({err})"
        except OSError as err:
            image = f"unreadable image ({err})"
        if isinstance(image, str):
            return BadSample(where, image)
        return _item(self.transform, self.mode, image, label, (self.seed, self.epoch, index), where)


class ResumableSampler(DistributedSampler):
    """``DistributedSampler`` (a seeded permutation per epoch, split across ranks, equal length)
    that can start ``skip`` samples into this rank's share, to resume mid-epoch exactly."""

    def __init__(self, dataset: Dataset, num_replicas: int, rank: int, seed: int) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed, drop_last=True)
        self.skip = 0

    def __iter__(self) -> Iterator[int]:
        return itertools.islice(super().__iter__(), self.skip, None)

    def __len__(self) -> int:
        return self.num_samples - self.skip


class ShardStream(IterableDataset):
    """Endless stream of (image, label) from WebDataset shards for one process.

    Each epoch (and each repeat round within it, so that no rank runs dry) shuffles the shard
    list with (seed, epoch, round), deals the shards over the ``world × workers`` readers (or, with
    fewer shards than readers, deals samples), shuffles samples in a seeded buffer and decodes.
    The engine takes a fixed number of batches per epoch from it, the same on every rank. A bad
    sample or damaged shard is yielded as its :class:`BadSample`; a round that yields no good
    sample ends the stream (nothing readable is left to this reader).
    """

    def __init__(self, info: DataInfo, transform: SampleTransform, seed: int, rank: int = 0,
                 world: int = 1, buffer: int = 1000) -> None:
        self.shards, self.transform, self.seed = info.shards, transform, seed
        self.rank, self.world, self.buffer, self.epoch = rank, world, buffer, 0
        self.num_classes = info.num_classes
        self.mode = "reference"  # as in _item

    def _rounds(self) -> Iterator[tuple[int, list[str], Callable]]:
        worker = get_worker_info()
        wid, nworkers = (worker.id, worker.num_workers) if worker else (0, 1)
        slot, slots = self.rank * nworkers + wid, self.world * nworkers
        for rnd in itertools.count():
            order = np.random.default_rng((self.seed, self.epoch, rnd)).permutation(len(self.shards))
            urls = [self.shards[i] for i in order]
            if len(urls) >= slots:
                yield rnd, urls[slot::slots], lambda src: src
            else:
                yield rnd, urls, lambda src, s=slot, n=slots: itertools.islice(src, s, None, n)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, int, Any] | BadSample]:
        for rnd, urls, deal in self._rounds():
            if not urls:
                return
            pipeline = wds.DataPipeline(
                wds.SimpleShardList(urls),
                tar_samples,
                deal,
                wds.shuffle(self.buffer, initial=min(self.buffer, 100),
                            seed=zlib.crc32(repr((self.seed, self.epoch, rnd, self.rank)).encode())),
            )
            good = 0
            for sample in pipeline:
                item = sample if isinstance(sample, BadSample) else shard_item(sample, self.num_classes,
                                                                                decode=self.mode != "device")
                if isinstance(item, BadSample):
                    yield item
                    continue
                good += 1
                seed = (self.seed, self.epoch, rnd, zlib.crc32(sample["__key__"].encode()))
                yield _item(self.transform, self.mode, item[0], item[1], seed, f"{Path(sample['__shard__']).name}/"
                            f"{sample['__key__']}")
            if good == 0:
                return


def worker_init(worker_id: int) -> None:
    """DataLoader worker set-up: one thread per worker (the main process owns the cores)."""
    torch.set_num_threads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def build_transform(config: TrainConfig) -> SampleTransform:
    """The training transform a run's settings describe (``config.input_size`` resolved)."""
    occlusion = (OnTheFlyOcclusion.parse(config.clean_ratio, config.scale_set, config.mask_fraction)
                 if config.occlude else None)
    return SampleTransform(tuple(config.input_size), config.augment, tuple(config.jitter), occlusion)


def _good_batches(batches: Iterable[tuple[torch.Tensor, torch.Tensor, list[BadSample]]], bad: BadSamples,
                  data: Path, stream: bool, smallest: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The loader's batches with their bad samples counted in ``bad``. A batch left with fewer
    than ``smallest`` samples is passed over in a stream; a folder epoch has a fixed number of
    batches, so there it stops the run."""
    got = 0
    for images, labels, dropped in batches:
        bad.add(dropped)
        if labels.numel() < smallest:
            if stream:
                continue
            raise DataError(f"a batch of {data} is left with {labels.numel()} readable samples (bad: "
                            f"{', '.join(b.where for b in dropped)}); repair them or raise --batch-size")
        got += 1
        yield images, labels
    if got == 0 and bad.count:
        where, reason = next(iter(bad.seen.items()))
        raise DataError(f"no training sample could be read from {data}: {bad.count} bad samples "
                        f"(the first: {where}: {reason})")


def build_loader(info: DataInfo, config: TrainConfig, transform: SampleTransform, epoch: int, skip_batches: int,
                 rank: int = 0, world: int = 1, pin: bool = False, bad: BadSamples | None = None,
                 device: torch.device | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The uint8 batches (N, 3, H, W; :func:`alob_train.preprocess.normalize` makes them the
    model's input) of one epoch for one process of ``world``, starting ``skip_batches`` in
    (resume). Each sample is prepared in a worker and each batch flipped and jittered there at
    once (:class:`SampleTransform`); with ``config.augment_on == "device"`` the batch is finished
    on ``device`` instead (:meth:`SampleTransform.on_device`). Bad samples are dropped from their
    batch and counted in ``bad`` (the run's record; a new one when None), which raises past
    ``config.max_bad_samples``."""
    bad = BadSamples(config.max_bad_samples) if bad is None else bad
    bad.add(info.bad_shards)
    mode = "device" if config.augment_on == "device" else "workers"
    common = dict(batch_size=config.batch_size, num_workers=config.workers, pin_memory=pin,
                  worker_init_fn=worker_init, drop_last=True,
                  collate_fn=partial(collate_good, finish=transform.batch if mode == "workers" else _pieces),
                  generator=torch.Generator().manual_seed(config.seed + epoch))
    smallest = min(2, config.batch_size)  # batch norm needs two samples to train on
    if info.kind in ("folder", "pack"):
        dataset = FolderDataset(info, transform, config.seed)
        dataset.epoch, dataset.mode = epoch, mode
        sampler = ResumableSampler(dataset, world, rank, config.seed)
        sampler.set_epoch(epoch)
        sampler.skip = skip_batches * config.batch_size
        batches = _good_batches(DataLoader(dataset, sampler=sampler, **common), bad, info.root, False, smallest)
        return batches if mode == "workers" else _finished_on(batches, transform, device or torch.device("cpu"))
    stream = ShardStream(info, transform, config.seed, rank, world, config.shuffle_buffer)
    stream.epoch, stream.mode = epoch, mode
    batches = _good_batches(DataLoader(stream, **common), bad, info.root, True, smallest)
    for _ in range(skip_batches):  # a stream cannot seek: read through what was already trained on
        if next(batches, None) is None:
            break
    return batches if mode == "workers" else _finished_on(batches, transform, device or torch.device("cpu"))


def _pieces(images: list[torch.Tensor], params: list[Any]) -> tuple[list[torch.Tensor], list[Any]]:
    """``--augment-on device`` collate: the samples as they are (encoded or uint8) and their parameters."""
    return images, params


def _finished_on(batches: Iterator[tuple[Any, torch.Tensor]], transform: SampleTransform,
                 device: torch.device) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    for (pieces, params), labels in batches:
        yield transform.on_device(pieces, params, device), labels
