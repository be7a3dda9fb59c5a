"""Stable per-item random generators: an item's randomness depends only on (seed, key)."""

from __future__ import annotations

import hashlib

import numpy as np


def stable_hash(key: str) -> int:
    """A 64-bit hash of ``key`` that is the same in every process and Python version."""
    return int.from_bytes(hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest(), "little")


def rng_for(seed: int, key: str) -> np.random.Generator:
    """The generator of one item: depends only on (seed, key), never on order or worker."""
    return np.random.default_rng([int(seed), stable_hash(key)])
