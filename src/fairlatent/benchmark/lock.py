"""One benchmark per output folder: ``OUT/benchmark.pid`` names the process that runs there.

Two benchmarks in one folder would interleave their writes to the same stage folders and results files. The
mechanism (stale-lock takeover, a lock naming this very process is ours, rank 0 holds it under torchrun) is
the general folder lock of :mod:`fairlatent.utils.lock`; this module fixes its file name and message.

Within the folder each run is held by the rank that claimed it: ``done/<run>.claim``, written by
:class:`~fairlatent.benchmark.tasks.TaskBenchmark` and read by :mod:`fairlatent.benchmark.status`, says
which, in the one format of :func:`claim_text` / :func:`read_claim`.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator

from fairlatent.utils.lock import folder_lock, pid_alive
from fairlatent.utils.lock import take_lock as _take_folder_lock

LOCK_NAME = "benchmark.pid"


def _hint(out: Path) -> str:
    return f"; its log is {out / 'benchmark.log'}"


def take_lock(out: str | os.PathLike, *, check_only: bool = False) -> Path:
    """Create ``out`` if needed and write this process's pid to ``out/benchmark.pid``; return the lock path.

    Raises FairlatentError (naming the other pid and its log) when another live process holds the folder.
    ``check_only``: refuse the same way, but write nothing (the parent of a background run checks; the child
    takes the lock).
    """
    return _take_folder_lock(out, name=LOCK_NAME, what="benchmark", hint=_hint(Path(out)), check_only=check_only)


@contextlib.contextmanager
def benchmark_lock(out: str | os.PathLike) -> Iterator[Path | None]:
    """Hold the folder's lock for the ``with`` block; it is released however the block ends.

    Under torchrun only rank 0 takes it (the job's other ranks yield None): one job, one lock."""
    with folder_lock(out, name=LOCK_NAME, what="benchmark", hint=_hint(Path(out))) as lock:
        yield lock


def claim_text(rank: int, pid: int) -> str:
    """What a run's claim file says: ``"rank R pid P"`` (read back by :func:`read_claim`)."""
    return f"rank {rank} pid {pid}\n"


def read_claim(path: Path) -> dict[str, int]:
    """The rank and process id a claim file names (:func:`claim_text`); empty when it cannot be read, e.g.
    removed between listing and reading because its run just finished."""
    try:
        words = path.read_text(encoding="utf-8").split()
    except OSError:
        return {}
    return {name: int(value) for name, value in zip(words[::2], words[1::2])
            if name in ("rank", "pid") and value.isdigit()}


__all__ = ["LOCK_NAME", "benchmark_lock", "claim_text", "pid_alive", "read_claim", "take_lock"]
