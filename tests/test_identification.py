"""AR identification protocols on a small fixture with AR's file naming."""

from __future__ import annotations

import numpy as np
import pytest

from alob_eval.identification import ar_identification, rank1, scan_ar


@pytest.fixture()
def ar_folder(tmp_path):
    for sex, person in (("m", 1), ("m", 2), ("w", 1), ("w", 7)):
        for image in range(1, 27):
            (tmp_path / f"{sex}-{person:03d}-{image:02d}.bmp").write_bytes(b"")
    (tmp_path / "README.txt").write_text("not an AR image")
    (tmp_path / "M-002-5.BMP").write_bytes(b"")  # other case, one-digit image number
    return tmp_path


def test_scan_ar(ar_folder):
    table = scan_ar(ar_folder)
    assert len(table) == 4 * 26 + 1
    assert sorted(table.identity.unique()) == ["m-001", "m-002", "w-001", "w-007"]
    assert table.image.between(1, 26).all()


def test_protocols_rank1_hand_known(ar_folder):
    table = scan_ar(ar_folder)
    rng = np.random.default_rng(0)
    people = {i: rng.normal(size=16) for i in table.identity.unique()}
    vectors = {}
    for row in table.itertuples():
        vectors[row.path] = people[row.identity] + rng.normal(scale=0.05, size=16)
    # person w-007's scarf probes look like m-001: those 6 of 24 scarf probes fail
    for row in table[(table.identity == "w-007") & table.image.isin([11, 12, 13, 24, 25, 26])].itertuples():
        vectors[row.path] = people["m-001"] + rng.normal(scale=0.05, size=16)
    result = ar_identification(table, vectors)
    for protocol in ("1", "2"):
        assert result[protocol]["sunglasses"]["rank1"] == 1.0
        assert result[protocol]["scarf"]["rank1"] == pytest.approx(18 / 24)
        assert result[protocol]["scarf"]["probes"] == 24 and result[protocol]["scarf"]["people"] == 4


def test_rank1_simple():
    gallery = np.array([[1.0, 0.0], [0.0, 1.0]])
    probes = np.array([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3]])
    assert rank1(gallery, np.array(["a", "b"]), probes, np.array(["a", "b", "b"])) == pytest.approx(2 / 3)
