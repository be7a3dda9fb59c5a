"""Data layer: recognising inputs, the shard stream's split and determinism, sample transforms."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader
from train_fixtures import class_image, write_folders, write_pairs, write_shards

from alob_train.data import (
    DataError,
    FolderDataset,
    OnTheFlyOcclusion,
    ResumableSampler,
    SampleTransform,
    ShardStream,
    open_data,
)
from occgen import occlude


def test_open_shards_reads_classes_and_counts(tmp_path):
    info = open_data(write_shards(tmp_path / "d", classes=3, per_class=5, shards=2))
    assert info.kind == "shards" and info.classes == ["id000", "id001", "id002"]
    assert info.num_samples == 15 and len(info.shards) == 2
    assert info.first_image().shape == (40, 32, 3)


def test_open_shards_without_classes_csv_counts_the_tars(tmp_path):
    root = write_shards(tmp_path / "d", classes=3, per_class=4, fmt="jpg")
    (root / "classes.csv").unlink()
    info = open_data(root)
    assert info.num_samples == 12 and info.classes == ["id000", "id001", "id002"]


def test_open_folders_plain_and_occgen_layout(tmp_path):
    info = open_data(write_folders(tmp_path / "plain", classes=3, per_class=2))
    assert info.kind == "folder" and info.num_samples == 6 and info.items[-1][1] == 2
    info = open_data(write_pairs(tmp_path / "occ", classes=2, per_class=4))
    assert info.root.name == "images" and info.classes == ["id000", "id001"] and info.num_samples == 8


def test_bad_inputs_give_clear_errors(tmp_path):
    with pytest.raises(DataError, match="not found"):
        open_data(tmp_path / "missing")
    (tmp_path / "empty" / "shards").mkdir(parents=True)
    with pytest.raises(DataError, match="holds no .tar shards"):
        open_data(tmp_path / "empty")
    (tmp_path / "zero" / "shards").mkdir(parents=True)
    (tmp_path / "zero" / "shards" / "train-000000.tar").write_bytes(b"")
    with pytest.raises(DataError, match="empty shard"):
        open_data(tmp_path / "zero")
    (tmp_path / "noimages" / "a").mkdir(parents=True)
    with pytest.raises(DataError, match="no identity folders"):
        open_data(tmp_path / "noimages")


def _keys(info, rank, world, epoch, workers=0, n=None):
    seen = []
    transform = SampleTransform((40, 32), augment=False)
    stream = ShardStream(info, transform, seed=3, rank=rank, world=world, buffer=8)
    stream.epoch = epoch
    # one round of the endless stream = this reader's share of the data
    share = info.num_samples // world if n is None else n
    loader = DataLoader(stream, batch_size=1, num_workers=workers)
    for i, (image, label) in enumerate(loader):
        if i == share:
            break
        seen.append((label.item(), round(image.sum().item(), 2)))
    return seen


@pytest.mark.parametrize("shards", [4, 1])
def test_shard_stream_deals_every_sample_once_over_ranks(tmp_path, shards):
    info = open_data(write_shards(tmp_path / "d", classes=4, per_class=4, shards=shards))
    parts = [_keys(info, rank, 2, epoch=0) for rank in range(2)]
    assert len(parts[0]) == len(parts[1]) == 8
    everything = Counter(parts[0] + parts[1])
    assert len(everything) == 16 and set(everything.values()) == {1}


def test_shard_stream_is_deterministic_per_epoch_and_worker_count(tmp_path):
    info = open_data(write_shards(tmp_path / "d", classes=4, per_class=6, shards=4))
    a = _keys(info, 0, 1, epoch=1)
    assert a == _keys(info, 0, 1, epoch=1)
    assert a != _keys(info, 0, 1, epoch=2)
    assert sorted(a) == sorted(_keys(info, 0, 1, epoch=2))
    assert sorted(_keys(info, 0, 1, epoch=1, workers=2)) == sorted(a)


def test_resumable_sampler_skips_into_the_epoch():
    dataset = list(range(20))
    full = ResumableSampler(dataset, 1, 0, seed=5)
    full.set_epoch(3)
    order = list(full)
    part = ResumableSampler(dataset, 1, 0, seed=5)
    part.set_epoch(3)
    part.skip = 8
    assert list(part) == order[8:] and len(part) == 12


def test_transform_is_seeded_normalised_and_fits_the_size():
    image = class_image(2, 0, (112, 112))
    t = SampleTransform((112, 96))
    a, b, c = t(image, (0, 1, 2)), t(image, (0, 1, 2)), t(image, (0, 1, 3))
    assert a.shape == (3, 112, 96) and a.dtype == torch.float32
    assert torch.equal(a, b) and not torch.equal(a, c)
    plain = SampleTransform((112, 96), augment=False)(image, (0,))
    expected = torch.from_numpy(image[:, 8:104]).permute(2, 0, 1).float() / 127.5 - 1
    torch.testing.assert_close(plain, expected)
    assert plain.min() >= -1 and plain.max() <= 1
    assert SampleTransform((56, 48), augment=False)(image, (0,)).shape == (3, 56, 48)


def test_folder_dataset_samples_change_with_epoch_only(tmp_path):
    info = open_data(write_folders(tmp_path / "f", classes=2, per_class=2))
    ds = FolderDataset(info, SampleTransform((40, 32)), seed=0)
    first = ds[1][0]
    assert torch.equal(first, ds[1][0])
    ds.epoch = 1
    assert not torch.equal(first, ds[1][0])


def test_occlusion_settings_parse_with_occgens_parsers():
    occ = OnTheFlyOcclusion.parse("1:2", "1:0.5:5")
    assert occ.scales == (1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0)
    assert occ.clean_fraction == pytest.approx(1 / 3)
    assert occ == OnTheFlyOcclusion()  # the defaults are FROM's recipe
    assert OnTheFlyOcclusion.parse("1:0", "2,3") == OnTheFlyOcclusion(clean_fraction=1.0, scales=(2.0, 3.0))
    for ratio, scales in [("1-2", "1:0.5:5"), ("1:2", "5:0.5:1"), ("0:0", "1:0.5:5"), ("1:2", "0:1:3")]:
        with pytest.raises(DataError, match="bad occlusion setting"):
            OnTheFlyOcclusion.parse(ratio, scales)


def test_on_the_fly_occlusion_calls_occgen(monkeypatch):
    """occgen.occlude occludes a sample unless the sample's generator first draws below the clean
    fraction (1/3 for 1:2), with the scale set as its factors; the outcome is seeded per sample."""
    calls = []

    def spy(image, rng, library=None, config=None):
        out = occlude(image, rng, library, config)
        calls.append((config.scale_set, out[2]["scale"]))
        return out

    monkeypatch.setattr("alob_train.transform.occlude", spy)
    t = SampleTransform((40, 32), augment=False, occlusion=OnTheFlyOcclusion.parse("1:2", "1:0.5:5"))
    clean = SampleTransform((40, 32), augment=False)
    image = np.full((40, 32, 3), 200, np.uint8)
    changed = [not torch.equal(t(image, (0, i)), clean(image, (0, i))) for i in range(300)]
    expected = [np.random.default_rng((0, i)).random() >= 1 / 3 for i in range(300)]
    assert changed == expected and 160 <= sum(changed) <= 230  # 2/3 of 300 = 200
    factors = tuple(np.arange(1, 5.01, 0.5))
    assert len(calls) == sum(changed)
    assert {scale_set for scale_set, _ in calls} == {factors}
    assert {scale for _, scale in calls} == set(factors)
    assert torch.equal(t(image, (0, 7)), t(image, (0, 7)))
