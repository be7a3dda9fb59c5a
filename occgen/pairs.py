"""LFW ``pairs.txt`` (View 2): a header ``folds n``, then per fold n matched lines
``name i j`` and n mismatched lines ``name1 i name2 j``. MFR2's pair list has the same lines
without the header; it is cut into 10 contiguous folds (the first ``len % 10`` one pair longer)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from occgen.library import OccgenError


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


def read_pairs(path: str | Path, folds_without_header: int = 10) -> Pairs:
    """Parse ``pairs.txt``; malformed lines are kept aside with the reason, not fatal."""
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except OSError as err:
        raise OccgenError(f"cannot read pairs file {path}: {err.strerror or err}") from None
    header = lines[0].split() if lines else []
    has_header = len(header) == 2 and all(v.isdigit() for v in header)
    if not has_header and (not lines or len(header) not in (3, 4)):
        raise OccgenError(f"{path}: first line must be '<folds> <pairs per class and fold>', e.g. '10 300', "
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
        sizes = [len(part) for part in _split(len(result.pairs), folds)]
        labels = [k for k, size in enumerate(sizes) for _ in range(size)]
        result.pairs = [replace(p, fold=k) for p, k in zip(result.pairs, labels)]
    return result


def _split(n: int, parts: int) -> list[range]:
    """Contiguous blocks of ``range(n)``; the first ``n % parts`` one longer (as KFold cuts)."""
    parts = max(1, min(parts, n))
    base, extra = divmod(n, parts)
    bounds = [0]
    for k in range(parts):
        bounds.append(bounds[-1] + base + (k < extra))
    return [range(a, b) for a, b in zip(bounds, bounds[1:])]
