"""Pair lists and folds: the one parser of LFW-style ``pairs.txt`` and the one fold cutter.

LFW ``pairs.txt`` (View 2): a header ``folds n``, then per fold n matched lines ``name i j`` and
n mismatched lines ``name1 i name2 j``. MFR2's pair list has the same lines without the header;
it is cut into 10 contiguous folds (the first ``len % 10`` one pair longer).

Evaluation reads pair lists as one table ``path1, path2, same, fold`` (absolute paths) from
three formats: the ``pairs.csv`` of an occgen folder dataset (paths relative to its folder),
LFW's ``pairs.txt`` (``name/name_%04d.jpg`` under an aligned folder) and MFR2's (``.png``)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from alob_common.errors import UserError


class PairsError(UserError):
    """A pair list that cannot be read; the message names the file and line."""


@dataclass(frozen=True)
class Pair:
    line: int  # 1-based line number in the file
    text: str
    stem1: str  # "<identity>/<identity>_<nnnn>", the source path without extension
    stem2: str
    same: bool
    fold: int


@dataclass
class Pairs:
    path: Path
    folds: int
    per_fold: int
    pairs: list[Pair] = field(default_factory=list)
    malformed: list[dict] = field(default_factory=list)


def _stem(name: str, number: str) -> str:
    return f"{name}/{name}_{int(number):04d}"


def parse_pairs_txt(path: str | Path, folds_without_header: int = 10) -> Pairs:
    """Parse ``pairs.txt``; malformed lines are kept aside with the reason, not fatal."""
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except OSError as err:
        raise PairsError(f"cannot read pairs file {path}: {err.strerror or err}") from None
    header = lines[0].split() if lines else []
    has_header = len(header) == 2 and all(v.isdigit() for v in header)
    if not has_header and (not lines or len(header) not in (3, 4)):
        raise PairsError(f"{path}: first line must be '<folds> <pairs per class and fold>', e.g. '10 300', "
                          "or a pair line")
    folds, per_fold = (int(v) for v in header) if has_header else (folds_without_header, 0)
    result = Pairs(path, folds, per_fold)
    index = 0
    start = 2 if has_header else 1
    for number, text in enumerate(lines[start - 1 :], start=start):
        parts = text.split()
        if not parts:
            continue
        try:
            if len(parts) == 3:
                pair = Pair(number, text, _stem(parts[0], parts[1]), _stem(parts[0], parts[2]), True, 0)
            elif len(parts) == 4:
                pair = Pair(number, text, _stem(parts[0], parts[1]), _stem(parts[2], parts[3]), False, 0)
            else:
                raise ValueError("expected 3 or 4 fields")
        except ValueError as err:
            result.malformed.append({"line": number, "text": text, "reason": str(err)})
            index += 1
            continue
        fold = index // (2 * per_fold) if has_header else 0
        result.pairs.append(Pair(pair.line, text, pair.stem1, pair.stem2, pair.same, fold))
        index += 1
    if not has_header:
        labels = contiguous_folds(len(result.pairs), folds)
        result.pairs = [replace(p, fold=int(k)) for p, k in zip(result.pairs, labels)]
    return result


def contiguous_folds(n_pairs: int, n_folds: int = 10) -> np.ndarray:
    """Fold index of each of ``n_pairs`` pairs cut into ``n_folds`` contiguous blocks, the first
    ``n_pairs % n_folds`` one pair longer (as scikit-learn's unshuffled KFold cuts); fewer folds
    when there are fewer pairs than folds."""
    from sklearn.model_selection import KFold  # here: importing scikit-learn costs every occgen worker a second

    folds = np.zeros(n_pairs, dtype=int)
    if n_pairs < 2:
        return folds
    splitter = KFold(n_splits=min(n_folds, n_pairs), shuffle=False)
    for k, (_, test) in enumerate(splitter.split(np.zeros(n_pairs))):
        folds[test] = k
    return folds


def pairs_csv_table(dataset_dir: str | Path) -> pd.DataFrame:
    """The ``pairs.csv`` of a folder dataset, paths made absolute."""
    dataset_dir = Path(dataset_dir)
    table = pd.read_csv(dataset_dir / "pairs.csv", dtype={"path1": str, "path2": str}, keep_default_na=False)
    missing = {"path1", "path2", "same"} - set(table.columns)
    if missing:
        raise PairsError(f"{dataset_dir / 'pairs.csv'} lacks columns {sorted(missing)}")
    if "fold" not in table.columns:
        table["fold"] = contiguous_folds(len(table))
    table["path1"] = [str(dataset_dir / p) for p in table["path1"]]
    table["path2"] = [str(dataset_dir / p) for p in table["path2"]]
    table["same"] = table["same"].astype(bool)
    return table[["path1", "path2", "same", "fold"]]


def pairs_txt_table(pairs_txt: str | Path, image_root: str | Path, ext: str = ".jpg") -> pd.DataFrame:
    """LFW-style ``pairs.txt`` (with or without the ``folds n`` header) under ``image_root``."""
    parsed = parse_pairs_txt(pairs_txt)
    if parsed.malformed:
        bad = parsed.malformed[0]
        raise PairsError(f"{pairs_txt}:{bad['line']}: {bad['reason']} ('{bad['text']}')")
    image_root = Path(image_root)
    table = pd.DataFrame(
        [(str(image_root / f"{p.stem1}{ext}"), str(image_root / f"{p.stem2}{ext}"), p.same, p.fold) for p in parsed.pairs],
        columns=["path1", "path2", "same", "fold"],
    )
    if parsed.per_fold and len(table) != parsed.folds * 2 * parsed.per_fold:
        raise PairsError(f"{pairs_txt}: header promises {parsed.folds} folds of {2 * parsed.per_fold} pairs, "
                         f"found {len(table)} pairs")
    return table


def pair_table(spec: str | Path, image_root: str | Path | None = None, fmt: str = "auto") -> pd.DataFrame:
    """Dispatch on format: a folder holding ``pairs.csv``; or a ``pairs.txt`` with ``image_root``
    (``fmt`` ``lfw`` = .jpg, ``mfr2`` = .png; ``auto`` picks by which file exists)."""
    spec = Path(spec)
    if spec.is_dir() and (spec / "pairs.csv").is_file() and fmt in ("auto", "csv"):
        return pairs_csv_table(spec)
    if not spec.is_file():
        raise PairsError(f"no pair list at {spec} (a folder with pairs.csv, or a pairs.txt)")
    if image_root is None:
        raise PairsError(f"{spec} is a pairs.txt: the aligned image folder must be given too")
    if fmt == "auto":
        table = pairs_txt_table(spec, image_root, ".jpg")
        sample = [*table.path1[:20], *table.path2[:20]]
        fmt = "lfw" if any(Path(p).exists() for p in sample) else "mfr2"  # one missing image decides nothing
    return pairs_txt_table(spec, image_root, ".png" if fmt == "mfr2" else ".jpg")


def missing_images(table: pd.DataFrame) -> list[str]:
    """Image paths named by the pairs that do not exist on disk."""
    paths = pd.unique(pd.concat([table.path1, table.path2]))
    return [p for p in paths if not Path(p).is_file()]
