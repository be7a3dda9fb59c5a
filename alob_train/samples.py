"""Training samples read one at a time, with a bad one marked rather than raised.

A sample that cannot be used (an image that does not decode, a shard sample without its JSON or
its ``label``, a label outside ``classes.csv``) and a shard that is damaged (garbage, cut short)
become a :class:`BadSample`. The datasets yield the marker in place of the sample, the loader's
:func:`collate_good` drops it from the batch, and the main process counts it in
:class:`BadSamples`, which stops the run past ``--max-bad-samples``. Markers travel through the
DataLoader, so bad samples met in worker processes are counted too.
"""

from __future__ import annotations

import io
import json
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import torch
import webdataset as wds
from PIL import Image

from alob_common.errors import UserError
from alob_common.images import decode_jpeg_rgb, read_rgb

IMAGE_KEYS = ("jpg", "jpeg", "png", "webp")
# What a decoder or the tar reader raises on damaged bytes.
DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError)
READ_ERRORS = (tarfile.TarError, OSError, EOFError, ValueError, zlib.error)


class DataError(UserError):
    """Unusable training or validation data, reported to the user in one line."""


class TooManyBadSamples(UserError):
    """More bad samples than ``--max-bad-samples`` allows."""


@dataclass(frozen=True)
class BadSample:
    """A sample (or a whole shard) that could not be used: where it is, and why."""

    where: str
    reason: str


class BadSamples:
    """The distinct bad samples of a run (one met again in a later epoch counts once), kept by
    the main process; more than ``limit`` raises :class:`TooManyBadSamples`."""

    def __init__(self, limit: int, stored: dict[str, Any] | None = None) -> None:
        self.limit = limit
        self.seen: dict[str, str] = {}
        for entry in (stored or {}).get("samples", []) if isinstance(stored, dict) else []:
            if isinstance(entry, dict) and {"sample", "reason"} <= set(entry):
                self.seen[str(entry["sample"])] = str(entry["reason"])

    @property
    def count(self) -> int:
        return len(self.seen)

    def add(self, bad: Iterable[BadSample]) -> None:
        """Record ``bad``; raise when the run now holds more than the limit."""
        for sample in bad:
            self.seen.setdefault(sample.where, sample.reason)
        if self.count > self.limit:
            where, reason = next(iter(self.seen.items()))
            raise TooManyBadSamples(
                f"{self.count} bad training samples, more than --max-bad-samples {self.limit} (the first: {where}: "
                f"{reason}); repair or remove them, or raise --max-bad-samples")

    def to_json(self) -> dict[str, Any]:
        """``{"count", "limit", "samples": [{"sample", "reason"}, ...]}`` as run.json stores it."""
        return {"count": self.count, "limit": self.limit,
                "samples": [{"sample": k, "reason": v} for k, v in self.seen.items()]}


def collate_good(items: list[Any], finish: Callable[[list[torch.Tensor], list[Any]], Any] | None = None
                 ) -> tuple[Any, torch.Tensor, list[BadSample]]:
    """DataLoader collate: the good ``(image, label)`` or ``(image, label, params)`` items'
    images as a batch, their labels, and the bad ones set apart (the batch is then that much
    shorter; which samples share a batch does not change). ``finish(images, params)`` makes the
    batch (the training transform's batch step); without it the images are stacked."""
    bad = [item for item in items if isinstance(item, BadSample)]
    good = [item for item in items if not isinstance(item, BadSample)]
    labels = torch.tensor([item[1] for item in good], dtype=torch.long)
    images = [item[0] for item in good]
    if finish is not None:
        return finish(images, [item[2] if len(item) > 2 else None for item in good]), labels, bad
    return (torch.stack(images) if images else torch.empty(0)), labels, bad


def decode_image(data: bytes | str | Path) -> np.ndarray | str:
    """An image (file path or bytes) decoded to RGB uint8 by the project's reader (a JPEG's
    bytes by :func:`decode_jpeg_rgb`, the same pixels faster), or the reason it cannot be."""
    if isinstance(data, bytes) and not data:
        return "empty image (0 bytes)"
    fast = decode_jpeg_rgb(data) if isinstance(data, bytes) else None
    if fast is not None:
        return fast
    try:
        return read_rgb(io.BytesIO(data) if isinstance(data, bytes) else data)
    except DECODE_ERRORS as err:
        return f"unreadable image ({str(err).strip() or type(err).__name__})"


def tar_samples(urls: Iterable[dict | str]) -> Iterator[dict | BadSample]:
    """WebDataset samples (``__key__``, ``__shard__`` and bytes per extension) of each shard in
    ``urls`` (paths, or WebDataset's ``{"url": path}``), read and grouped by ``webdataset``; a
    shard damaged part-way gives the whole samples before the damage and then one
    :class:`BadSample` naming the shard."""
    for item in urls:
        url = item["url"] if isinstance(item, dict) else item
        errors: list[BaseException] = []
        held = None  # the last sample waits: when the shard breaks off, it is the one cut short
        for sample in _read_shard(url, errors):
            if held is not None:
                yield held
            held = {**sample, "__shard__": url}
        if not errors:
            if held is not None:
                yield held
            continue
        first = errors[0]
        why = str(first.args[0]) if first.args else type(first).__name__
        yield BadSample(str(url), f"damaged shard, read up to the damage ({why}); its last sample dropped")


def _read_shard(url: str, errors: list[BaseException]) -> Iterator[dict]:
    """One shard's samples, read and grouped by ``webdataset``; an error ends them (the sample it
    broke off last) and is appended to ``errors``."""
    yield from wds.tarfile_to_samples(handler=lambda err: errors.append(err) or True)([{"url": url}])


def sample_image(sample: dict) -> np.ndarray | str:
    """The decoded image of a shard sample (its jpg or png, not the mask), or why there is none."""
    ext = next((e for e in IMAGE_KEYS if e in sample), None)
    return "no image" if ext is None else decode_image(sample[ext])


def shard_item(sample: dict, num_classes: int, decode: bool = True) -> tuple[np.ndarray | bytes, int] | BadSample:
    """(decoded image, label) of a shard sample, or the :class:`BadSample` it is; with ``decode``
    False the image's bytes, undecoded (decoded later, on the training device)."""
    where = f"{Path(sample['__shard__']).name}/{sample['__key__']}"
    if "json" not in sample:
        return BadSample(where, "no .json")
    try:
        label = json.loads(sample["json"])["label"]
    except (KeyError, TypeError):
        return BadSample(where, "no label in its .json")
    except ValueError:
        return BadSample(where, "its .json does not parse")
    if not isinstance(label, int) or isinstance(label, bool) or not 0 <= label < num_classes:
        return BadSample(where, f"label {label!r} is not one of classes.csv's 0..{num_classes - 1}")
    if not decode:
        ext = next((e for e in IMAGE_KEYS if e in sample), None)
        return BadSample(where, "no image") if ext is None else (sample[ext], label)
    image = sample_image(sample)
    return BadSample(where, image) if isinstance(image, str) else (image, label)


def readable_shards(urls: list[str]) -> tuple[list[str], list[BadSample]]:
    """The shards whose first member can be read, and a :class:`BadSample` for each other one
    (an empty file, or garbage that is not a tar)."""
    good, bad = [], []
    for url in urls:
        try:
            with tarfile.open(url, mode="r|*") as tar:
                if tar.next() is None:
                    raise tarfile.ReadError("no members")
            good.append(url)
        except READ_ERRORS as err:
            reason = "empty shard file (0 bytes)" if Path(url).stat().st_size == 0 else f"not a tar ({err})"
            bad.append(BadSample(url, reason))
    return good, bad
