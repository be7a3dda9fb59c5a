"""occgen builds stay byte for byte what they were before the speed work: the digests below were
computed with the code of that time (``python tests/test_occgen_golden.py`` prints them) on a
generated tree. The default factor and scale-set builds must still give them; ratio mode gives
them with ``ratio_solver="search"`` (the old per-image search; the default is now the
precomputed coverage curve, whose outputs differ by design).

Each build is pinned by one digest per kind of file (``.jpg``, ``.png``, ``.csv``, the shards and
their members by type). The inputs are JPEGs written by OpenCV, so a machine with another codec
makes other inputs: there (the tree's own digest differs) only the kinds that hold JPEG-encoded
pixels (:data:`CODEC_KINDS`) are left unchecked, and the masks, manifests and pair lists are still
compared; ``test_a_codec_change_alters_only_the_jpeg_kinds`` shows that this is the line.
"""

from __future__ import annotations

import hashlib
import sys
import tarfile
import warnings
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

if __name__ == "__main__":  # run as a script from tests/: the project root is one folder up
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from occgen.build import BuildConfig, Job, build
from occgen.masks import MaskConfig
from occgen.synth import OcclusionConfig, parse_scale_set

GOLDEN = {  # per kind of file; the outputs' whole-folder digests equal those pinned at commit 1fd8c7a
    "tree": "bb8131bc3a033becdf301a0ba349d92b107e25d3b1289a370e9bb6f17c150d6a",
    "lfw factor 3.0 rect": {
        ".csv": "d4b77569ed675b3fa2a2abdf02b1fabac2a5fdf53d77c4c0b988c5017f1e5118",
        ".jpg": "f81574debf1fc8d79d98cbe1df84977ff1b27adcbe517143885455d962330ce3",
        ".png": "9ebafb8130c845a6866231adb69976652d1a1480279a6cce92d494d8a00f3738",
    },
    "lfw factor 2.0 alpha": {
        ".csv": "5b23224d9ec6a848d73d65729b67e4071a0ffbe2a9013620efe6729cd38148d6",
        ".jpg": "b9530cde76b5c5c10b769b7c4ed82ca463b4d0ab920dae8447780f3079da2c3e",
        ".png": "c907250d16478908b1c7170bccef46b53456cdad7fba0234178d505a4a2be402",
    },
    "lfw factor 2.0 alpha semantic": {
        ".csv": "746a9dcb5c6417ada81a5a2762ff764ccea784e2d61e8b2217e91ab4a0ac4d4e",
        ".jpg": "fea680c035f581110eacd542134d96dcd98880ddb248cd28355704fdfbebeb40",
        ".png": "8ed3700272989cfe06066dffcd1d15ea31304665b0eb556400e8eb04cdbe018d",
    },
    "folder scale-set shards": {
        ".csv": "aa95b5af895ed808d49b9198fcfa180450998ba8f7d4674ad43d6d35bf52e185",
        ".tar": "48acfd7883f0145b375fdc29d131762f365f2a93c7aa94b87ef06f62d8c5ac11",
        "tar .jpg": "085204eed97ba203ba8bb26050297869f91873374ed1e4e7b00552e11a9c88d3",
        "tar .json": "bbe754e37341b5fa11569866654bd2d7d0e81d2495a07b0acd8ac922b4f3d183",
        "tar .mask.png": "d81e9448d3df4650da2a423fa8d0863f9a24c06efce584c12e1f233604d45864",
    },
    "folder scale-set folder form": {
        ".csv": "3a0e532a77d532cb2c1b881ebdd50547fede208fb8ef75e2fbb6496afe50190e",
        ".jpg": "6febaf08011a1ed7e4a37b16d03e3536991326be19113931823a0cfb7678813c",
        ".png": "f2dc5b003d5f28c96c996d0be39f15a46b68ce4fd57c7ef229a2b3035e5e2956",
    },
    "lfw ratio 0.52 search": {
        ".csv": "dc0daa6b86d8d26263d232ec3d249739b9a5cb4b6bd053c6146522f92838ec03",
        ".jpg": "647126ef5ba88456ac45583b2935535d7e8cb9feb1086458ae9831a0fc26d808",
        ".png": "0c95eb4f601a36c66643b54b995106639d59bcd530575ff4e46b2e28945ec448",
    },
    "lfw ratio 0.45 semantic search": {
        ".csv": "40b5f04b21653a8c6ee47c3a0b29de5242757f45cac8d2ea7b8346768fb5aab3",
        ".jpg": "a06aeaff642394758c513576d3c109bed565c1818ca84ba53d1d6eea4391780a",
        ".png": "4e692317788a15cbb57e5eca0228775c37bc3f6b13836df968ec4acfb009a659",
    },
    "lfw ratio 0.4 rect search": {
        ".csv": "6e010e7134fde4751025fc7ed7a60e2df685f73d465e582b09828ce4718b9fb4",
        ".jpg": "83ada5d9570faa96ad4828a10d25cd95c9babdf1e031306e20b82b3bc1839c0f",
        ".png": "2c1f4897a2766e7cdc637adbfa968725841cb57cc4ad52f15bb3d7988140ce21",
    },
    "lfw masks (face-shape model)": {
        ".csv": "a881c579aaf6fc9d88f2e3b00f1dba7263a05a507e9425cf0d29450af14807c1",
        ".jpg": "9d5b12f7013c12388e7c024fb3e94b94a4022bd6dc3ec97e99e870f66b44661e",
        ".png": "7e67b1d58bd147f3b08a00575345c76a91048f809bb8842ebe36c895e1d4870b",
    },
    "folder mixed shards": {
        ".csv": "ec8dd1ca284e65720199743a91bd38735a4ea81b44e187cb8a99f5c8e531e4d4",
        ".tar": "64ca251d8332ae858cea789b00c1203f56562fca04634a8c81b14abf5274e9e8",
        "tar .jpg": "aaa41b1d71ac214e6d6993c9e4581e45e69e27b1cf63a1171d679a8fdb591f1d",
        "tar .json": "c7692b86dc66c81ee7f0fee9246de1673c0ac0575450e308ade7972fbd437e43",
        "tar .mask.png": "b3a00ac5d83eaf28f35de8df5392cb245099c48050a9fff323de2f52eb3790f6",
    },
}


def make_tree(root: Path, quality: int = 90) -> Path:
    """5 identities x 9 face-like 112x96 JPEGs (quality 90) with textured backgrounds."""
    rng = np.random.default_rng(11)
    for p in range(5):
        (root / f"person_{p}").mkdir(parents=True, exist_ok=True)
        for i in range(9):
            img = rng.integers(0, 256, (112, 96, 3), dtype=np.uint8)
            img = cv2.GaussianBlur(img, (5, 5), 0)
            cv2.ellipse(img, (48, 62), (34, 46), 0, 0, 360, tuple(int(v) for v in rng.integers(120, 230, 3)), -1)
            for x in (30, 65):
                cv2.circle(img, (x, 52), 4, (30, 30, 30), -1)
            cv2.imwrite(str(root / f"person_{p}" / f"person_{p}_{i:04d}.jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return root


def make_pairs(path: Path) -> Path:
    path.write_text("1 3\nperson_0 1 2\nperson_1 3 4\nperson_2 1 5\nperson_0 1 person_1 2\n"
                    "person_2 3 person_3 4\nperson_4 5 person_0 6\n")
    return path


def digest_folder(root: Path, skip: tuple[str, ...] = ("dataset.json",)) -> str:
    """One sha256 over the sorted (relative path, file sha256) of every file under ``root``."""
    digest = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.name not in skip:
            digest.update(p.relative_to(root).as_posix().encode() + b"\0")
            digest.update(hashlib.sha256(p.read_bytes()).digest())
    return digest.hexdigest()


def digest_by_format(root: Path) -> dict[str, str]:
    """One sha256 per kind of file under ``root`` (dataset.json aside), over the sorted (relative
    path, file sha256) of that kind: by suffix (``.jpg``, ``.png``, ``.csv``, ``.tar``), and for the
    members of the shards by member type (``tar .jpg``, ``tar .mask.png``, ``tar .json``)."""
    digests: dict[str, hashlib._Hash] = {}

    def add(kind: str, name: str, data: bytes) -> None:
        digest = digests.setdefault(kind, hashlib.sha256())
        digest.update(name.encode() + b"\0")
        digest.update(hashlib.sha256(data).digest())

    for p in sorted(root.rglob("*")):
        if not p.is_file() or p.name == "dataset.json":
            continue
        rel = p.relative_to(root).as_posix()
        add(p.suffix, rel, p.read_bytes())
        if p.suffix == ".tar":
            with tarfile.open(p) as tar:
                for member in tar:
                    add(f"tar .{member.name.rsplit('/', 1)[-1].split('.', 1)[1]}", f"{rel}/{member.name}",
                        tar.extractfile(member).read())
    return {kind: digest.hexdigest() for kind, digest in sorted(digests.items())}


def builds() -> dict[str, BuildConfig]:
    """The builds whose outputs are pinned (the ratio ones with the old search solver)."""
    search = {"ratio_solver": "search"} if "ratio_solver" in OcclusionConfig.__dataclass_fields__ else {}
    return {
        "lfw factor 3.0 rect": BuildConfig("lfw", OcclusionConfig(factor=3.0, blend="rect"), unit_size=16),
        "lfw factor 2.0 alpha": BuildConfig("lfw", OcclusionConfig(factor=2.0), unit_size=16),
        "lfw factor 2.0 alpha semantic": BuildConfig("lfw", OcclusionConfig(factor=2.0, placement="semantic")),
        "folder scale-set shards": BuildConfig("folder", OcclusionConfig(scale_set=parse_scale_set("1..5/0.5")),
                                               copies=2, format="shards", unit_size=20),
        "folder scale-set folder form": BuildConfig("folder", OcclusionConfig(scale_set=parse_scale_set("1..5/0.5")),
                                                    format="folder", seed=4),
        "lfw ratio 0.52 search": BuildConfig("lfw", OcclusionConfig(ratio=0.52, **search), unit_size=16),
        "lfw ratio 0.45 semantic search": BuildConfig("lfw", OcclusionConfig(ratio=0.45, placement="semantic",
                                                                             **search)),
        "lfw ratio 0.4 rect search": BuildConfig("lfw", OcclusionConfig(ratio=0.4, blend="rect", **search)),
        "lfw masks (face-shape model)": BuildConfig("lfw", OcclusionConfig(ratio=0.52, **search), kind="mask",
                                                   masks=MaskConfig(landmarks="model")),
        "folder mixed shards": BuildConfig("folder", OcclusionConfig(scale_set=parse_scale_set("1..5/0.5")),
                                           kind="mixed", masks=MaskConfig(landmarks="model"), format="shards"),
    }


CODEC_KINDS = (".jpg", ".tar", "tar .jpg")  # hold JPEG-encoded pixels of the (codec-made) inputs


def run_all(tmp: Path, quality: int = 90, names: tuple[str, ...] | None = None) -> dict:
    """The tree's digest and each build's digests by kind (``names``: only those builds)."""
    src = make_tree(tmp / "src", quality)
    pairs = make_pairs(tmp / "pairs.txt")
    result = {"tree": digest_folder(src)}
    for name, config in builds().items():
        if names is not None and name not in names:
            continue
        if config.source == "lfw":
            config = replace(config, pairs=str(pairs))
        out = tmp / name.replace(" ", "_")
        build(Job(src, out, config), progress=False)
        result[name] = digest_by_format(out)
    return result


@pytest.fixture(scope="module")
def digests(tmp_path_factory) -> dict:
    return run_all(tmp_path_factory.mktemp("golden"))


@pytest.mark.parametrize("name", list(builds()))
def test_build_is_byte_identical_to_the_pinned_digests(digests, name):
    same_codec = digests["tree"] == GOLDEN["tree"]
    checked = {kind: value for kind, value in GOLDEN[name].items() if same_codec or kind not in CODEC_KINDS}
    assert set(digests[name]) == set(GOLDEN[name]), f"{name}: other kinds of file"
    for kind, value in checked.items():
        assert digests[name][kind] == value, f"{name}: {kind} outputs changed"
    if not same_codec:
        warnings.warn(f"{name}: the generated JPEG inputs differ from the reference ones (another OpenCV/libjpeg); "
                      f"{', '.join(k for k in GOLDEN[name] if k not in checked)} not compared")


def test_a_codec_change_alters_only_the_jpeg_kinds(tmp_path):
    """Inputs encoded otherwise (quality 80 for 90, as another libjpeg would): every kind outside
    CODEC_KINDS keeps its pinned digest, and the JPEG kinds do change."""
    names = ("lfw masks (face-shape model)", "folder mixed shards")
    other = run_all(tmp_path, quality=80, names=names)
    assert other["tree"] != GOLDEN["tree"]
    for name in names:
        assert {k: v for k, v in other[name].items() if k not in CODEC_KINDS} == \
            {k: v for k, v in GOLDEN[name].items() if k not in CODEC_KINDS}, name
        assert all(other[name][k] != GOLDEN[name][k] for k in GOLDEN[name] if k in CODEC_KINDS), name


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        for key, value in run_all(Path(folder)).items():
            print(f'    "{key}": {value!r},')
