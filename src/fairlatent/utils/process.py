"""Whether a process still runs: the test behind folder locks and the clean-up of stale temporaries."""

from __future__ import annotations

import os


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists and has not exited.

    Signal 0 checks existence without sending anything; a process of another user answers with
    ``PermissionError`` and counts as alive (safer to keep its lock or temporary than to take it). A zombie (a
    killed process its parent has not reaped yet, e.g. a rank of a torchrun job killed with its launcher)
    still answers signal 0 but will never write again, so it counts as dead: otherwise a run restarted right
    after ``kill -9`` would be refused by the lock of the process it replaces.
    """
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            state = fh.read().rsplit(")", 1)[1].split()[0]  # the name in parentheses may contain spaces
    except (OSError, IndexError):
        return True  # no /proc (macOS): existence is all we know
    return state not in ("Z", "X")


__all__ = ["pid_alive"]
