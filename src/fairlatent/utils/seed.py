"""Determinism: one seed in every config gives the same numbers on CPU."""

from __future__ import annotations

import random

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) global generators."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def rng(seed: int, *stream: int | str) -> np.random.Generator:
    """An independent NumPy generator for ``seed`` and a named sub-stream.

    Sub-streams (e.g. ``rng(seed, "bootstrap")``) keep different consumers of one config seed from
    sharing random numbers, so adding a consumer never shifts another's results.
    """
    keys = [seed] + [abs(hash_str(s)) if isinstance(s, str) else int(s) for s in stream]
    return np.random.default_rng(np.random.SeedSequence(keys))


def torch_generator(seed: int, *stream: int | str) -> torch.Generator:
    """A CPU torch generator seeded from :func:`rng` (same sub-stream convention)."""
    g = torch.Generator()
    g.manual_seed(int(rng(seed, *stream).integers(0, 2**63 - 1)))
    return g


def hash_str(s: str) -> int:
    """A stable (process-independent) 63-bit hash of a string; Python's ``hash`` is salted per process."""
    import hashlib

    return int.from_bytes(hashlib.sha256(s.encode()).digest()[:8], "little") & (2**63 - 1)
