"""Where a training sample's microseconds go: each stage of the input pipeline timed on its own
(CPU time of this process, pinned to one core, one thread), over the same samples, by the
trainer's own functions. Used by ``bench/input_pipeline.py``; also runnable alone:

    python bench/input_profile.py SHARDS_DIR [--samples 1024]
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
import zlib
from pathlib import Path

# run as a script, bench/ comes first on the path, and bench/occgen.py would shadow the package
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import cv2  # noqa: E402  (after the path fix above)
import numpy as np  # noqa: E402
import torch  # noqa: E402
import webdataset as wds  # noqa: E402

from alob_common.images import read_rgb  # noqa: E402
from alob_train.data import open_data
from alob_train.preprocess import normalize
from alob_train.samples import decode_jpeg_rgb, shard_item, tar_samples
from alob_train.transform import OnTheFlyOcclusion, SampleTransform

SIZE = (112, 96)


def _timed(fn, items) -> tuple[float, list]:
    """(CPU µs per item, results) of ``fn`` over ``items``."""
    start = time.process_time()
    out = [fn(item) for item in items]
    return (time.process_time() - start) / max(len(items), 1) * 1e6, out


def _read(shards: list[str], samples: int, reader=tar_samples) -> tuple[float, list[dict]]:
    """CPU µs per sample to read and label ``samples`` samples with ``reader``, and the samples."""
    start, got = time.process_time(), []
    for sample in reader(shards * 100):
        sample.setdefault("__shard__", sample.get("__url__", ""))
        item = shard_item(sample, 10**9)
        if not isinstance(item, tuple):
            continue
        got.append(sample)
        if len(got) == samples:
            break
    return (time.process_time() - start) / len(got) * 1e6, got


def _stages(data: Path, samples: int, batch: int) -> dict[str, tuple[float | None, float | None]]:
    """Stage -> (µs before, µs after) per sample; None where a stage has no counterpart."""
    info = open_data(data)
    us_read, raw = _read(info.shards, samples)
    us_wds, _ = _read(info.shards, samples, lambda urls: wds.tarfile_to_samples()([{"url": u} for u in urls]))
    blobs = [s.get("jpg") or s.get("png") for s in raw]
    seeds = [(0, 0, 0, zlib.crc32(s["__key__"].encode())) for s in raw]
    us_pil, images = _timed(lambda b: read_rgb(io.BytesIO(b)), blobs)
    us_fast, _ = _timed(decode_jpeg_rgb, blobs)
    us_cv2, _ = _timed(lambda b: cv2.cvtColor(cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_COLOR),
                                              cv2.COLOR_BGR2RGB), blobs)
    occluder = OnTheFlyOcclusion(clean_fraction=0.0)
    us_occ, _ = _timed(lambda p: occluder.apply(p[0], np.random.default_rng(p[1])), list(zip(images, seeds)))
    masker = OnTheFlyOcclusion(clean_fraction=0.0, mask_fraction=1.0)
    n_mask = max(len(images) // 8, 16)  # masks are slow: fewer suffice
    us_mask, _ = _timed(lambda p: masker.apply(p[0], np.random.default_rng(p[1])), list(zip(images, seeds))[:n_mask])
    transform = SampleTransform(SIZE)
    us_prep, prepared = _timed(lambda p: transform.prepare(*p), list(zip(images, seeds)))
    fitted = [img for img, _ in prepared]
    aug_seeds = [int(np.random.default_rng(s).integers(2**62)) for s in seeds]

    def reference_jitter(pair):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(pair[1])
            return transform.augment(pair[0])

    us_v2, jittered = _timed(reference_jitter, list(zip(fitted, aug_seeds)))
    us_norm1, floats = _timed(normalize, jittered)
    chunks = [slice(i, i + batch) for i in range(0, len(fitted) - batch + 1, batch)]
    us_stack_f, _ = _timed(lambda c: torch.stack(floats[c]), chunks)
    us_stack_u, stacked = _timed(lambda c: torch.stack(fitted[c]), chunks)
    us_batch, done = _timed(lambda c: transform.finish(stacked[chunks.index(c)], [p for _, p in prepared[c]]), chunks)
    us_norm, _ = _timed(normalize, done)
    per = 1 / batch
    return {
        "tar read + label (webdataset)": (us_wds, us_read),
        "JPEG decode: Pillow (before) / simplejpeg (after)": (us_pil, us_fast),
        "(JPEG decode by cv2.imdecode, for comparison)": (us_cv2, us_cv2),
        "occlusion: occgen.occlude, per occluded sample": (us_occ, us_occ),
        "face mask: occgen.mask_face, per masked sample": (us_mask, us_mask),
        "seed, fit to input, flip/jitter draws": (None, us_prep),
        "flip + colour jitter": (us_v2, us_batch * per),
        "normalise to [-1, 1]": (us_norm1, us_norm * per),
        "collate (stack)": (us_stack_f * per, us_stack_u * per),
    }


def profile_table(data: Path, samples: int, batch: int, core: int = 0) -> str:
    """The stage table (markdown) and each mode's total µs and implied samples/s per core (the
    after total without normalisation, which the training step does on its device)."""
    os.sched_setaffinity(0, {core})
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    stages = _stages(data, samples, batch)
    rows = ["| stage (µs per sample, CPU time) | before | after |", "|---|---|---|"]
    rows += [f"| {name} | {_us(b)} | {_us(a)} |" for name, (b, a) in stages.items()]
    common = ["tar read + label (webdataset)", "JPEG decode: Pillow (before) / simplejpeg (after)",
              "seed, fit to input, flip/jitter draws", "flip + colour jitter", "normalise to [-1, 1]",
              "collate (stack)"]
    occ, mask = "occlusion: occgen.occlude, per occluded sample", "face mask: occgen.mask_face, per masked sample"
    shares = {"clean": {}, "occluded": {occ: 1.0}, "masked": {mask: 1.0}, "mixed": {occ: 2 / 3}}
    for mode, extra in shares.items():  # after: normalising is the training step's, on its device
        totals = [sum((stages[s][i] or 0) for s in common if i == 0 or s != "normalise to [-1, 1]")
                  + sum(stages[s][i] * f for s, f in extra.items()) for i in (0, 1)]
        rows.append(f"| **sum, {mode}** (samples/s per core) | {totals[0]:,.0f} ({1e6 / totals[0]:,.0f}) | "
                    f"{totals[1]:,.0f} ({1e6 / totals[1]:,.0f}) |")
    return "\n".join(rows)


def _us(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f}"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path)
    parser.add_argument("--samples", type=int, default=1024)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--core", type=int, default=0)
    args = parser.parse_args()
    print(profile_table(args.data, args.samples, args.batch_size, args.core))
