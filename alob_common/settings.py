"""The check that keeps an output folder consistent: a rerun may resume or extend it only with
the settings it was made with. Values are compared, not the presence of options, so repeating
the same command with its own values is always accepted."""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from alob_common.errors import UserError


class SettingsChanged(UserError):
    """A rerun asked for settings that differ from those an output was made with."""


def _same(old: Any, new: Any) -> bool:
    if isinstance(old, (list, tuple)) and isinstance(new, (list, tuple)):
        return len(old) == len(new) and all(_same(a, b) for a, b in zip(old, new))
    if isinstance(old, (int, float)) and isinstance(new, (int, float)) and not isinstance(old, bool):
        return float(old) == float(new)
    return old == new


def changed_settings(old: Mapping[str, Any], new: Mapping[str, Any],
                     keys: Iterable[str] | None = None) -> dict[str, tuple[Any, Any]]:
    """``{key: (old, new)}`` for the ``keys`` (default: all keys of either) whose values differ;
    a key missing on one side differs only if the other side has a value. Lists and tuples are
    the same sequence, 2 and 2.0 the same number."""
    keys = sorted(set(old) | set(new)) if keys is None else list(keys)
    return {k: (old.get(k), new.get(k)) for k in keys if not _same(old.get(k), new.get(k))}


def check_same_settings(old: Mapping[str, Any], new: Mapping[str, Any], where: str, hint: str,
                        keys: Iterable[str] | None = None) -> None:
    """Raise :class:`SettingsChanged` naming every differing setting with its old and new value:
    ``"<where> was made with other settings (size: '112x96' -> '112x112'); <hint>"``."""
    changed = changed_settings(old, new, keys)
    if changed:
        detail = ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in changed.items())
        raise SettingsChanged(f"{where} was made with other settings ({detail}); {hint}")
