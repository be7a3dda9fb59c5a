"""Read verification pair lists into one table: ``path1, path2, same, fold`` (absolute paths).

Three formats:

* ``pairs.csv`` of an occgen folder dataset (``path1, path2, same, fold``; paths relative to
  the dataset folder);
* LFW's ``pairs.txt`` (header ``10 300``, then per fold 300 matched ``name n1 n2`` and 300
  mismatched ``name1 n1 name2 n2`` lines; images ``name/name_%04d.jpg`` under an aligned folder);
* MFR2's ``pairs.txt``: the same lines without a header, space separated, ``.png`` images;
  cut into 10 contiguous folds.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from alob_train.verification import contiguous_folds


class PairsError(ValueError):
    """A pair list that cannot be read; the message names the file and line."""


def read_pairs_csv(dataset_dir: str | Path) -> pd.DataFrame:
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


def read_pairs_txt(pairs_txt: str | Path, image_root: str | Path, ext: str = ".jpg") -> pd.DataFrame:
    """LFW-style ``pairs.txt`` (with or without the ``folds n`` header) under ``image_root``,
    parsed by occgen's reader (the one parser of this format in the project)."""
    from occgen.library import OccgenError
    from occgen.pairs import read_pairs as parse

    try:
        parsed = parse(pairs_txt)
    except OccgenError as err:
        raise PairsError(str(err)) from None
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


def read_pairs(spec: str | Path, image_root: str | Path | None = None, fmt: str = "auto") -> pd.DataFrame:
    """Dispatch on format: a folder holding ``pairs.csv``; or a ``pairs.txt`` with ``image_root``
    (``fmt`` ``lfw`` = .jpg, ``mfr2`` = .png; ``auto`` picks by which file exists)."""
    spec = Path(spec)
    if spec.is_dir() and (spec / "pairs.csv").is_file() and fmt in ("auto", "csv"):
        return read_pairs_csv(spec)
    if not spec.is_file():
        raise PairsError(f"no pair list at {spec} (a folder with pairs.csv, or a pairs.txt)")
    if image_root is None:
        raise PairsError(f"{spec} is a pairs.txt: the aligned image folder must be given too")
    if fmt == "auto":
        table = read_pairs_txt(spec, image_root, ".jpg")
        fmt = "lfw" if Path(table.path1.iloc[0]).exists() else "mfr2"
    return read_pairs_txt(spec, image_root, ".png" if fmt == "mfr2" else ".jpg")


def missing_images(table: pd.DataFrame) -> list[str]:
    """Image paths named by the pairs that do not exist on disk."""
    paths = pd.unique(pd.concat([table.path1, table.path2]))
    return [p for p in paths if not Path(p).is_file()]
