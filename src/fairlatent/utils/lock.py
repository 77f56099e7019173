"""One process per output folder: a pid file names the process that writes there.

Two processes writing one folder (two ``fairlatent demo --out runs/x``, two trainings into one ``--out``)
would interleave their writes, redo each other's stages and replace each other's files. The first takes the
folder's lock; any other is refused with a message naming the holder (pid, command line, start time). A lock
whose process has died (a killed run, a reboot) is stale and is taken over, so a crash never needs a manual
clean-up; a lock naming this very process is ours (a ``--background`` child taking over from its parent's
check, or a nested call). Under torchrun rank 0 holds the lock for all the ranks of its job.

The lock file's first line is the pid (what older versions wrote, and still read as a lock); the lines after
it, ``started: …`` and ``command: …``, are for the message.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from pathlib import Path
from typing import Iterator

from fairlatent.errors import FairlatentError
from fairlatent.utils.process import pid_alive

LOCK_NAME = "fairlatent.pid"



def read_lock(lock: Path) -> dict[str, str | int]:
    """``{"pid": int, "started": str, "command": str}`` of a lock file (pid -1 when unreadable)."""
    try:
        lines = lock.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return {"pid": -1}
    try:
        info: dict[str, str | int] = {"pid": int(lines[0].strip())}
    except (IndexError, ValueError):
        return {"pid": -1}
    for line in lines[1:]:
        key, sep, value = line.partition(": ")
        if sep and key in ("started", "command"):
            info[key] = value
    return info


def _holder(info: dict[str, str | int]) -> str:
    extra = [f"started {info['started']}"] if info.get("started") else []
    if info.get("command"):
        extra.append(f"command: {info['command']}")
    return f"pid {info['pid']}" + (f"; {'; '.join(extra)}" if extra else "")


def take_lock(folder: str | os.PathLike, *, name: str = LOCK_NAME, what: str = "fairlatent process",
              hint: str = "", check_only: bool = False) -> Path:
    """Create ``folder`` if needed and write this process's pid to ``folder/name``; return the lock path.

    Raises FairlatentError (naming the other process) when another live process holds the folder; ``what``
    names that process in the message ("another <what> (pid …) is running in this folder") and ``hint`` is
    appended. ``check_only``: refuse the same way, but write nothing.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lock = folder / name
    record = (f"{os.getpid()}\nstarted: {time.strftime('%Y-%m-%d %H:%M:%S')}\n"
              f"command: {' '.join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv else '?'}\n")
    for _ in range(3):
        if lock.is_file() or lock.is_symlink():
            info = read_lock(lock)
            pid = int(info["pid"])
            if pid > 0 and pid != os.getpid() and pid_alive(pid):
                raise FairlatentError(f"{folder}: another {what} ({_holder(info)}) is running in this folder; "
                                      f"wait for it or stop it (kill {pid}){hint}")
            if check_only:
                return lock
            if pid == os.getpid():
                return lock
            # stale: replace it in one rename, so a concurrent taker sees either the old or our record
            tmp = lock.with_name(f".{name}.{os.getpid()}")
            tmp.write_text(record, encoding="utf-8")
            os.replace(tmp, lock)
        elif check_only:
            return lock
        else:
            try:  # O_EXCL: of two processes starting together, exactly one creates the file
                fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            except FileExistsError:
                continue
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(record)
        if read_lock(lock).get("pid") == os.getpid():
            return lock
    raise FairlatentError(f"{folder}: could not take the lock {lock} (another process keeps taking it)")


def _world_size() -> int:
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return 1


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike, *, name: str = LOCK_NAME, what: str = "fairlatent process",
                hint: str = "") -> Iterator[Path | None]:
    """Hold ``folder``'s lock for the ``with`` block; it is released however the block ends.

    Under torchrun only rank 0 takes it (the job's other ranks yield None): one job, one lock. A lock this
    process already held when the block started (a nested call) is left in place at the end."""
    if _world_size() > 1 and os.environ.get("RANK", "0").strip() not in ("", "0"):
        yield None
        return
    lock = Path(folder) / name
    nested = read_lock(lock).get("pid") == os.getpid() if lock.is_file() else False
    lock = take_lock(folder, name=name, what=what, hint=hint)
    try:
        yield lock
    finally:
        if not nested and read_lock(lock).get("pid") == os.getpid():
            lock.unlink(missing_ok=True)


@contextlib.contextmanager
def waiting_lock(path: str | os.PathLike, *, wait: bool = True) -> Iterator[Path | None]:
    """Hold an exclusive lock on the file ``path`` for the ``with`` block, *waiting* while another process
    holds it (``fcntl.flock``, released by the kernel if the holder dies).

    For work that several processes of one job may need and exactly one should do, e.g. a benchmark's
    shared model that the first of its runs to need it trains while the others wait for it, instead of
    waiting at a collective barrier that times out long before a model trains.

    ``wait=False`` never waits: the block gets None at once when another process holds the lock, and the
    lock otherwise. Deciding whether to do the work and taking the lock are then one atomic step; a probe of
    the lock followed by a waiting take leaves a gap in which another process can take it,
    and the prober then waits for work it meant to skip."""
    import fcntl

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield None
            return
        try:
            yield path
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


__all__ = ["LOCK_NAME", "folder_lock", "pid_alive", "read_lock", "take_lock", "waiting_lock"]

