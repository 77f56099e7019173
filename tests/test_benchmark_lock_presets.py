"""The benchmark's folder lock and its presets/overrides, as library functions (the CLI only calls them)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from fairlatent.benchmark.lock import LOCK_NAME, benchmark_lock, pid_alive, take_lock
from fairlatent.benchmark.presets import TEST_PRESET, preset
from fairlatent.errors import FairlatentError


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped), so nothing answers to it."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_lock_is_written_released_and_refuses_a_live_holder(tmp_path):
    out = tmp_path / "bench"
    with benchmark_lock(out) as lock:
        assert lock == out / LOCK_NAME and lock.read_text().splitlines()[0] == str(os.getpid())
        take_lock(out)  # our own pid: ours, not another benchmark's
    assert not lock.exists()
    with pytest.raises(RuntimeError), benchmark_lock(out):
        raise RuntimeError("a failing run")
    assert not lock.exists()  # released however the block ends
    lock.write_text(str(os.getppid()))  # a live process that is not this one
    with pytest.raises(FairlatentError, match=rf"another benchmark \(pid {os.getppid()}\)"):
        take_lock(out)
    with pytest.raises(FairlatentError, match="another benchmark"):
        take_lock(out, check_only=True)
    assert lock.read_text() == str(os.getppid())  # refused: the other holder's lock is untouched


def test_stale_or_garbled_lock_is_taken_over_and_check_only_writes_nothing(tmp_path):
    pid = dead_pid()
    assert not pid_alive(pid) and pid_alive(os.getpid())
    (tmp_path / LOCK_NAME).write_text(str(pid))
    take_lock(tmp_path, check_only=True)
    assert (tmp_path / LOCK_NAME).read_text() == str(pid)
    assert take_lock(tmp_path).read_text().splitlines()[0] == str(os.getpid())
    (tmp_path / LOCK_NAME).write_text("not a pid")
    assert take_lock(tmp_path).read_text().splitlines()[0] == str(os.getpid())


def test_presets_are_fresh_copies_and_unknown_ones_are_named():
    p = preset("test")
    assert p == TEST_PRESET and p is not TEST_PRESET
    p["gan"]["steps"] = 1
    assert TEST_PRESET["gan"]["steps"] == 400 and preset("test")["gan"]["steps"] == 400
    assert preset("default") == {}
    with pytest.raises(FairlatentError, match="--preset 'paper'"):
        preset("paper")




def test_waiting_lock_makes_a_second_holder_wait_for_the_first(tmp_path):
    """The shared-translator lock: a second process (here a second open file description, as flock treats
    one) blocks until the first lets go, instead of failing or running alongside it."""
    import subprocess
    import sys
    import time

    from fairlatent.utils.lock import waiting_lock

    lock = tmp_path / "sub" / "translator.lock"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from fairlatent.utils.lock import waiting_lock\n"
        f"with waiting_lock({str(lock)!r}):\n"
        "    print('held', flush=True); time.sleep(1.5)\n")], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"  # the other process holds it now
    t0 = time.perf_counter()
    with waiting_lock(lock) as path:
        waited = time.perf_counter() - t0
        assert path == lock
    assert waited > 1.0  # the holder kept it 1.5 s after saying so: we waited for it to let go
    assert holder.wait() == 0


def test_waiting_lock_without_waiting_answers_at_once_and_takes_it_when_free(tmp_path):
    """``wait=False``: None at once while another process holds the lock (no waiting); when it is free, the
    lock itself, held for the block, so that a second taker that does not wait is then refused. Deciding
    and taking are one step: what a benchmark rank needs to choose between training the shared translator
    and running the other methods first."""
    import subprocess
    import sys
    import time

    from fairlatent.utils.lock import waiting_lock

    lock = tmp_path / "translator.lock"
    try_it = ("import sys; from fairlatent.utils.lock import waiting_lock\n"
              f"with waiting_lock({str(lock)!r}, wait=False) as got:\n"
              "    print('none' if got is None else 'took', flush=True)\n")
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from fairlatent.utils.lock import waiting_lock\n"
        f"with waiting_lock({str(lock)!r}):\n"
        "    print('held', flush=True); time.sleep(3)\n")], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    t0 = time.perf_counter()
    with waiting_lock(lock, wait=False) as got:
        assert got is None
    assert time.perf_counter() - t0 < 1.0  # answered while the holder still had 3 s to go
    assert holder.wait() == 0
    with waiting_lock(lock, wait=False) as got:  # free now: taken, and held for the block
        assert got == lock
        other = subprocess.run([sys.executable, "-c", try_it], capture_output=True, text=True, check=True)
        assert other.stdout.strip() == "none"
    other = subprocess.run([sys.executable, "-c", try_it], capture_output=True, text=True, check=True)
    assert other.stdout.strip() == "took"  # let go at the end of the block
