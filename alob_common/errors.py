"""The one base class of errors caused by the user's input or settings."""

from __future__ import annotations


class UserError(Exception):
    """A problem with the input or the settings, reported to the user in one line (never a
    traceback). Each package derives its own (``AlignError``, ``OccgenError``, ``DataError`` …)."""
