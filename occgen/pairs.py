"""LFW ``pairs.txt`` (View 2): a header ``folds n``, then per fold n matched lines
``name i j`` and n mismatched lines ``name1 i name2 j``."""

from __future__ import annotations

from dataclasses import dataclass, field
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


def read_pairs(path: str | Path) -> Pairs:
    """Parse ``pairs.txt``; malformed lines are kept aside with the reason, not fatal."""
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except OSError as err:
        raise OccgenError(f"cannot read pairs file {path}: {err.strerror or err}") from None
    try:
        folds, per_fold = (int(v) for v in lines[0].split())
    except (ValueError, IndexError):
        raise OccgenError(f"{path}: first line must be '<folds> <pairs per class and fold>', e.g. '10 300'") from None
    result = Pairs(path, folds, per_fold)
    index = 0
    for number, text in enumerate(lines[1:], start=2):
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
        result.pairs.append(Pair(pair.line, text, pair.stem1, pair.stem2, pair.same, index // (2 * per_fold)))
        index += 1
    return result
