"""LFW for the fold experiment: finding it (or downloading it, MD5-checked), splitting it by its
identity-disjoint View-2 folds into training people and test pairs, and the symlink views that
let a command see just some people."""

from __future__ import annotations

import os
import shutil
import socket
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from alob_common.atomic import write_text_atomic
from alob_common.images import is_image_name
from alob_common.pairs import Pair, parse_pairs_txt
from alob_experiment.config import PipelineError, Size

LFW_URL = "http://vis-www.cs.umass.edu/lfw/"
LFW_FILES = {  # file → md5, as published with LFW (and checked by torchvision's LFW dataset)
    "lfw-deepfunneled.tgz": "68331da3eb755a505a502b5aacb3c201",
    "pairs.txt": "9f1ba174e4e1c508ff7cdf10ac338a7d",
}


@dataclass
class Split:
    """Training people and test pairs chosen from ``pairs.txt``."""

    train_folds: list[int]
    test_folds: list[int]
    train_people: list[str]
    test_people: list[str]
    test_lines: list[str]  # pairs.txt lines of the chosen test pairs, fold by fold
    pairs_per_fold: int
    images: dict[str, int] = field(default_factory=dict)  # person → image count, for the chosen people
    val_fold: int | None = None  # a training fold held out for validation (its people not trained on)
    val_people: list[str] = field(default_factory=list)
    val_lines: list[str] = field(default_factory=list)


def lfw_layout(folder: Path) -> tuple[Path, Path] | None:
    """(image folder, pairs.txt) of an LFW folder, or None. Accepts a folder holding
    ``lfw-deepfunneled/`` (or ``lfw/``) and ``pairs.txt``, or an image folder with ``pairs.txt``
    inside or beside it."""
    for images in (folder / "lfw-deepfunneled", folder / "lfw", folder):
        for pairs in (folder / "pairs.txt", images / "pairs.txt", images.parent / "pairs.txt"):
            if images.is_dir() and pairs.is_file() and any(p.is_dir() for p in images.iterdir()):
                return images, pairs
    return None


def _online(host: str = "vis-www.cs.umass.edu", timeout: float = 5.0) -> bool:
    try:
        with socket.create_connection((host, 80), timeout=timeout):
            return True
    except OSError:
        return False


def download_lfw(dest: Path) -> tuple[Path, Path]:
    """Download the deep-funneled LFW and pairs.txt from LFW's public site into ``dest``,
    checking both MD5 sums (torchvision's download helpers); ``dest/.complete`` marks a download
    that finished, so an interrupted one is redone rather than used."""
    from torchvision.datasets.utils import download_and_extract_archive, download_url

    dest.mkdir(parents=True, exist_ok=True)
    archive = "lfw-deepfunneled.tgz"
    try:
        download_and_extract_archive(LFW_URL + archive, str(dest), filename=archive, md5=LFW_FILES[archive],
                                     remove_finished=True)
        download_url(LFW_URL + "pairs.txt", str(dest), md5=LFW_FILES["pairs.txt"])
    except (OSError, RuntimeError) as err:
        raise PipelineError(f"downloading LFW from {LFW_URL} failed ({err}); fetch lfw-deepfunneled.tgz and "
                            "pairs.txt by hand and pass --data") from None
    found = lfw_layout(dest)
    if found is None:
        raise PipelineError(f"the LFW download in {dest} does not have the expected layout")
    (dest / ".complete").touch()
    return found


def find_lfw(lfw_dir: str | Path | None, work: Path, download: bool = True) -> tuple[Path, Path]:
    """LFW from ``--data``, else ``$ALOB_DATA/lfw``, else a previous download in
    ``WORK/lfw``, else downloaded (when the machine is online)."""
    if lfw_dir is not None:
        found = lfw_layout(Path(lfw_dir))
        if found is None:
            raise PipelineError(f"--data {lfw_dir}: expected lfw-deepfunneled/ (identity folders) and pairs.txt there")
        return found
    env = [Path(os.environ["ALOB_DATA"]) / "lfw"] if os.environ.get("ALOB_DATA") else []
    for folder in env:
        if folder.is_dir() and (found := lfw_layout(folder)) is not None:
            return found
    if (work / "lfw" / ".complete").is_file() and (found := lfw_layout(work / "lfw")) is not None:
        return found
    where = " or ".join(str(c) for c in [*env, work / "lfw"])
    if download and _online():
        return download_lfw(work / "lfw")
    why = "downloading is off (--no-download)" if not download else "this machine is offline"
    raise PipelineError(f"LFW not found and {why}: put lfw-deepfunneled/ and pairs.txt in {where}, "
                        "or pass --data DIR")


def _count_images(images: Path, person: str) -> int:
    folder = images / person
    return sum(1 for p in folder.iterdir() if is_image_name(p.name)) if folder.is_dir() else 0


def _people(pair: Pair) -> tuple[str, str]:
    return pair.stem1.split("/")[0], pair.stem2.split("/")[0]


def _test_pairs(pairs: list[Pair], folds: list[int], per_fold: int, pairs_txt: Path) -> list[Pair]:
    """The first ``per_fold`` matched and mismatched pairs of each of ``folds`` (numbered from 0)."""
    chosen = []
    for fold in folds:
        in_fold = []
        for same in (True, False):
            in_fold += [p for p in pairs if p.fold == fold and p.same == same][:per_fold]
        if len(in_fold) != 2 * per_fold:
            raise PipelineError(f"fold {fold} of {pairs_txt} has fewer than {per_fold} matched and mismatched pairs")
        chosen += in_fold
    return chosen


def plan_split(pairs_txt: Path, images: Path, train_folds: list[int], size: Size, hold_out: bool = False) -> Split:
    """Choose the training people (of ``train_folds``, numbered from 0 as pairs.csv's ``fold``) and the test pairs (of the other
    folds). With ``size.train_people`` set, the people with most images are kept (ties by name);
    with ``size.pairs_per_fold`` set, the first N matched and N mismatched pairs of each test fold.
    With ``hold_out``, the last training fold is the validation fold instead: its pairs (as many
    per fold as the test folds) validate, and its people are not trained on."""
    parsed = parse_pairs_txt(pairs_txt)
    if parsed.malformed:
        bad = parsed.malformed[0]
        raise PipelineError(f"{pairs_txt}:{bad['line']}: {bad['reason']}")
    folds = sorted({p.fold for p in parsed.pairs})
    if not set(train_folds) < set(folds):
        raise PipelineError(f"--train-on {train_folds}: the pairs file has folds {folds[0]}..{folds[-1]}; "
                            "leave at least one for testing")
    test_folds = [k for k in folds if k not in train_folds]
    val_fold = train_folds[-1] if hold_out else None
    if hold_out and len(train_folds) < 2:
        raise PipelineError("a validation fold is held out of --train-on: give at least two training folds")
    train_folds = [k for k in train_folds if k != val_fold]
    train = sorted({name for p in parsed.pairs if p.fold in train_folds for name in _people(p)})
    counts = {name: _count_images(images, name) for name in train}
    train = [n for n in train if counts[n] > 0]
    if size.train_people is not None:
        train = sorted(train, key=lambda n: (-counts[n], n))[: size.train_people]
    available = parsed.per_fold or min(Counter(p.fold for p in parsed.pairs).values()) // 2
    per_fold = min(size.pairs_per_fold or available, available)  # a small pairs file caps --quick's count
    chosen = _test_pairs(parsed.pairs, test_folds, per_fold, pairs_txt)
    test = {name for p in chosen for name in _people(p)}
    overlap = set(train) & test
    if overlap:
        raise PipelineError(f"training and test people overlap ({len(overlap)}, e.g. {min(overlap)}): "
                            "the folds of this pairs file are not identity-disjoint")
    val = _test_pairs(parsed.pairs, [val_fold], per_fold, pairs_txt) if val_fold is not None else []
    val_people = sorted({name for p in val for name in _people(p)})
    images_of = {n: counts.get(n) or _count_images(images, n) for n in [*train, *sorted(test), *val_people]}
    lines = [p.text.strip() for p in chosen]
    return Split(train_folds, test_folds, train, sorted(test), lines, per_fold, images_of, val_fold, val_people,
                 [p.text.strip() for p in val])


def write_test_pairs(split: Split, path: Path, validation: bool = False) -> None:
    """The test (or ``validation``) pairs as a View-2 style file (header ``folds n``), readable by
    every tool."""
    folds, lines = (1, split.val_lines) if validation else (len(split.test_folds), split.test_lines)
    write_text_atomic(path, f"{folds} {split.pairs_per_fold}\n" + "\n".join(lines) + "\n")


def link_people(src: Path, people: list[str], dest: Path, manifest: Path | None = None) -> Path:
    """A folder of symlinks to ``src/<person>`` for each person, so a command sees just these
    people without copying images; with an aligned folder's ``manifest``, its rows for these
    people become the view's own ``manifest.csv``. Rebuilt from scratch each time."""
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for person in people:
        (tmp / person).symlink_to((src / person).resolve(), target_is_directory=True)
    if manifest is not None and manifest.is_file():
        table = pd.read_csv(manifest, dtype=str, keep_default_na=False)
        person = table["source" if "source" in table.columns else "path"].str.split("/").str[0]
        table[person.isin(set(people))].to_csv(tmp / "manifest.csv", index=False)
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    return dest
