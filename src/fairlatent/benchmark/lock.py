"""One benchmark per output folder: ``OUT/benchmark.pid`` names the process that runs there.

Two benchmarks in one folder would interleave their writes to the same stage folders and results files. A
lock whose process has died (a killed run, a reboot) is stale and is taken over, so a crash never needs a
manual clean-up; a lock naming this very process (a ``--background`` child taking over from its parent's
check) is ours. Under torchrun (``--nproc N``) rank 0 holds the lock for all the ranks of its job.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator

from fairlatent.errors import FairlatentError

LOCK_NAME = "benchmark.pid"


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is ours to signal (signal 0 checks without sending anything)."""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def take_lock(out: str | os.PathLike, *, check_only: bool = False) -> Path:
    """Create ``out`` if needed and write this process's pid to ``out/benchmark.pid``; return the lock path.

    Raises FairlatentError (naming the other pid and its log) when another live process holds the folder.
    ``check_only``: refuse the same way, but write nothing (the parent of a background run checks; the child
    takes the lock).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    lock = out / LOCK_NAME
    if lock.is_file():
        try:
            pid = int(lock.read_text().strip())
        except ValueError:
            pid = -1
        if pid > 0 and pid != os.getpid() and pid_alive(pid):
            raise FairlatentError(f"{out}: another benchmark (pid {pid}) is running in this folder; wait for it "
                                  f"or stop it (kill {pid}); its log is {out / 'benchmark.log'}")
    if not check_only:
        lock.write_text(str(os.getpid()))
    return lock


@contextlib.contextmanager
def benchmark_lock(out: str | os.PathLike) -> Iterator[Path | None]:
    """Hold the folder's lock for the ``with`` block; it is released however the block ends.

    Under torchrun only rank 0 takes it (the job's other ranks yield None): one job, one lock."""
    from fairlatent.train.distributed import env_world_size

    if env_world_size() > 1 and int(os.environ.get("RANK", "0")) != 0:
        yield None
        return
    lock = take_lock(out)
    try:
        yield lock
    finally:
        lock.unlink(missing_ok=True)


__all__ = ["LOCK_NAME", "benchmark_lock", "pid_alive", "take_lock"]
