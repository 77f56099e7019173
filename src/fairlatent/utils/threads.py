"""How many intra-op threads torch uses: decided once before torch loads, revisited while training.

Why: torch's default is one OpenMP thread per physical core, and OpenMP threads spin-wait for each other.
On a 2-core machine shared with anything else the threads wait on cores they do not get: ``train-gan
--steps 300`` took 20 s alone, 61 s beside a pure-Python busy loop (34 s with one thread) and 142 s each
for two jobs side by side (32 s each with one thread; issue 11). A fair share of the cores avoids that.

**Precedence** (first that applies wins; :func:`thread_setting`):

1. ``FAIRLATENT_THREADS=N`` (fixed N), ``=auto`` (the policy below, even over ``OMP_NUM_THREADS``) or
   ``=torch`` (do nothing: torch's own default, the behaviour before this module);
2. ``OMP_NUM_THREADS`` or ``MKL_NUM_THREADS`` set by the user: used as is and never changed at runtime.
   A fixed thread count is what makes runs bitwise reproducible (floating-point reductions split
   differently over a different number of threads), so set one when that matters. torchrun sets
   ``OMP_NUM_THREADS=1`` in its ranks when unset, so data-parallel ranks are fixed at one thread;
3. otherwise **auto**.

**Auto**: ``threads = max(1, min(physical, usable - external) // jobs)`` (:func:`fair_share`), where

- ``usable``: the CPUs this process may run on (``os.sched_getaffinity``, capped by a cgroup CPU quota),
  ``physical``: the distinct physical cores among them (torch's own default, so an idle machine gets what
  torch would pick);
- ``jobs``: the fairlatent processes running as this user, from a registry of one small JSON file per
  pid (:class:`JobRegistry`, in ``$XDG_RUNTIME_DIR/fairlatent-jobs`` or ``/tmp/fairlatent-jobs-$UID``;
  written at start, removed at exit, files of dead pids ignored and deleted). A job waiting on a
  descendant that is itself a job (``--nproc`` waiting on torchrun's ranks) does not count; torchrun's
  local ranks count one each (``LOCAL_WORLD_SIZE``, also before all of them have registered);
- ``external``: other CPU load, as the runnable count of ``/proc/loadavg`` (every running or runnable
  thread of the machine, right now) minus our own threads and the threads the registered jobs declare,
  the smallest of a few samples (a transient process does not count, a busy loop does). It is used
  only when this process may run on every CPU of the machine: in a container or a cpuset the count
  describes CPUs we do not run on. Floor division: 3 cores for 2 jobs give 1 thread each, as two jobs
  of 2 threads on 3 cores would spin-wait again.

The thread count goes in ``OMP_NUM_THREADS`` before torch loads (torch reads it when it initialises
OpenMP and MKL), together with a marker (``FAIRLATENT_AUTO_OMP_NUM_THREADS``) so a fairlatent child
process recognises its parent's automatic choice and decides afresh instead of taking it as the user's.
While training, the engine calls :func:`rebalance` every step; at most every :data:`RECHECK_S` seconds
it recounts jobs and load and calls ``torch.set_num_threads`` when the share changed (a second job
started, or one finished). Auto mode is therefore not bitwise reproducible across machine loads.

**Wait policy**: ``OMP_WAIT_POLICY=PASSIVE`` makes idle OpenMP threads sleep instead of spin; it must be
in the environment before torch loads. Measured beside a busy loop it helped less than one thread did
(37 s vs 34 s), and with threads at a fair share there is little to spin against, while its cost on an
idle machine (sleeping threads wake up late for every small op) is not measured yet. So the switch
:data:`AUTO_WAIT_POLICY` is ``None`` (leave the runtime's default) until ``benchmarks/bench_contention.py``
says otherwise; ``FAIRLATENT_WAIT_POLICY=PASSIVE|ACTIVE`` chooses per run, a user's ``OMP_WAIT_POLICY``
always wins.

**Visibility**: :func:`describe` returns one line (threads, why, wait policy); it is printed to stderr
at start and at every change when ``FAIRLATENT_THREADS_DEBUG=1``, and stored in each job's registry file
(``cat /tmp/fairlatent-jobs-$UID/*.json``).

This module is applied by the CLI entry point (:func:`fairlatent.cli.main`) before anything imports torch.
A process that imported torch first (a notebook, a test calling ``main()``) keeps its threads: the
policy leaves it alone rather than change them under code that already set them. Torch is never
imported here at module level.
"""

from __future__ import annotations

import atexit
import json
import os
import sys
import tempfile
import time
from collections import deque
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Mapping, MutableMapping, Sequence

from fairlatent.errors import FairlatentError
from fairlatent.utils.process import pid_alive

ENV_THREADS = "FAIRLATENT_THREADS"
ENV_WAIT = "FAIRLATENT_WAIT_POLICY"
ENV_JOBS_DIR = "FAIRLATENT_JOBS_DIR"
ENV_DEBUG = "FAIRLATENT_THREADS_DEBUG"
# What this module itself put in the environment, so children can tell it from a user's setting.
MARK_THREADS = "FAIRLATENT_AUTO_OMP_NUM_THREADS"
MARK_WAIT = "FAIRLATENT_AUTO_OMP_WAIT_POLICY"

#: The switch: the OpenMP wait policy set in auto mode ("PASSIVE", "ACTIVE" or None for the runtime's
#: default). None until measured on an idle machine (see the module docstring).
AUTO_WAIT_POLICY: str | None = None

#: Seconds between two runtime re-evaluations (a directory listing and a /proc read: well under 1 ms).
RECHECK_S = 5.0
#: Load samples whose minimum is the external load (at start a few ms apart, at runtime the last ones).
LOAD_SAMPLES = 3

__all__ = [
    "AUTO_WAIT_POLICY", "Cores", "Decision", "JobEntry", "JobRegistry", "Probe", "ThreadPolicy",
    "ThreadSetting", "apply_process_policy", "count_jobs", "describe", "external_load", "fair_share",
    "jobs_dir", "rebalance", "thread_setting", "usable_cores", "wait_policy",
]


# --- pure decisions ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ThreadSetting:
    """Who decides the thread count: ``mode`` "fixed" (``threads`` or, if unparseable, OpenMP's reading of
    the variable), "auto" or "torch" (nobody: torch's default); ``source`` says which variable said so."""

    mode: str
    threads: int | None
    source: str


def thread_setting(env: Mapping[str, str]) -> ThreadSetting:
    """The precedence of the module docstring, from the environment alone."""
    raw = env.get(ENV_THREADS, "").strip()
    if raw:
        low = raw.lower()
        if low == "auto":
            return ThreadSetting("auto", None, f"{ENV_THREADS}=auto")
        if low == "torch":
            return ThreadSetting("torch", None, f"{ENV_THREADS}=torch")
        if raw.isdigit() and int(raw) >= 1:
            return ThreadSetting("fixed", int(raw), f"{ENV_THREADS}={raw}")
        raise FairlatentError(f"{ENV_THREADS}={raw!r}: expected a positive integer, 'auto' or 'torch'")
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        val = env.get(var, "").strip()
        if val and not (var == "OMP_NUM_THREADS" and env.get(MARK_THREADS) == val):
            return ThreadSetting("fixed", int(val) if val.isdigit() and int(val) >= 1 else None, f"{var}={val}")
    inherited = env.get(MARK_THREADS)
    return ThreadSetting("auto", None, "inherited auto" if inherited else "no thread setting")


def wait_policy(env: Mapping[str, str], mode: str, auto_default: str | None = None) -> tuple[str | None, str]:
    """``(OMP_WAIT_POLICY to set or None, why)``: the user's ``OMP_WAIT_POLICY`` wins (nothing to set),
    then ``FAIRLATENT_WAIT_POLICY``, then ``auto_default`` in auto mode only."""
    user = env.get("OMP_WAIT_POLICY", "").strip()
    if user and env.get(MARK_WAIT) != user:
        return None, f"OMP_WAIT_POLICY={user} (user)"
    raw = env.get(ENV_WAIT, "").strip().upper()
    if raw:
        if raw in ("PASSIVE", "ACTIVE"):
            return raw, f"{ENV_WAIT}={raw}"
        if raw == "DEFAULT":
            return None, f"{ENV_WAIT}=default"
        raise FairlatentError(f"{ENV_WAIT}={raw!r}: expected PASSIVE, ACTIVE or default")
    if mode == "auto" and auto_default:
        return auto_default, "AUTO_WAIT_POLICY"
    return None, "runtime default"


@dataclass(frozen=True)
class Cores:
    """The CPUs this process may use: ``usable`` logical CPUs, ``physical`` distinct cores among them, and
    ``restricted`` when that is less than the machine (then /proc/loadavg describes CPUs we do not use)."""

    usable: int
    physical: int
    restricted: bool


def usable_cores(affinity: int, online: int, quota: float | None = None, physical: int | None = None) -> Cores:
    """Combine the affinity mask size, the machine's CPU count, a cgroup CPU quota (in CPUs) and the number
    of physical cores in the mask. A fractional quota rounds down (1.5 CPUs of time cannot feed 2 threads)."""
    usable = max(1, affinity)
    if quota is not None and quota > 0:
        usable = min(usable, max(1, int(quota)))
    phys = usable if physical is None else max(1, min(physical, usable))
    return Cores(usable=usable, physical=phys, restricted=usable < max(online, affinity))


def external_load(runnable: int, ours: int) -> int:
    """Runnable threads that are neither ours nor declared by a registered job (never negative: threads of
    ours that sleep at the moment of the sample would otherwise hide someone else's)."""
    return max(0, runnable - ours)


def fair_share(cores: Cores, jobs: int, external: int = 0) -> int:
    """``max(1, min(physical, usable - external) // jobs)``; ``external`` is ignored when ``restricted``."""
    free = cores.usable - (0 if cores.restricted else max(0, external))
    return max(1, min(cores.physical, free) // max(1, jobs))


@dataclass(frozen=True)
class JobEntry:
    """One registered fairlatent process: its pid, its declared threads (None: not decided yet), mode, its
    ancestors' pids, a torchrun group key (None outside torchrun), the kernel's start time of the pid
    (to tell a reused pid) and the one-line description of its decision."""

    pid: int
    threads: int | None = None
    mode: str = "auto"
    ancestors: tuple[int, ...] = ()
    group: str | None = None
    start: int | None = None
    desc: str = ""


def count_jobs(me: JobEntry, others: Sequence[JobEntry], local_world: int = 1) -> tuple[int, int]:
    """``(jobs competing for the cores, threads the other competing jobs declare)``, ourselves included in
    the first. A job that is an ancestor of a registered job waits for it and does not count; our own
    torchrun siblings (same ``group``) count as ``local_world`` however many have registered yet."""
    waiting = set(me.ancestors).union(*(e.ancestors for e in others))
    competing = [e for e in others if e.pid != me.pid and e.pid not in waiting
                 and not (me.group is not None and e.group == me.group)]  # fmt: skip
    siblings = max(1, local_world) if me.group is not None else 1
    declared = sum(e.threads or 1 for e in competing)
    if me.group is not None:
        declared += sum(e.threads or 1 for e in others if e.group == me.group and e.pid != me.pid)
    return len(competing) + siblings, declared


# --- thin OS readers ---------------------------------------------------------------------------------


def _read(path: str | Path) -> str | None:
    try:
        return Path(path).read_text()
    except OSError:
        return None


def read_runnable(path: str = "/proc/loadavg") -> int | None:
    """The 4th field of /proc/loadavg, ``R/T``: R threads of the machine are running or runnable now
    (the reading thread included)."""
    text = _read(path)
    try:
        return int(text.split()[3].split("/")[0]) if text else None
    except (IndexError, ValueError):
        return None


def _stat_fields(pid: int) -> list[str] | None:
    text = _read(f"/proc/{pid}/stat")
    if not text or ")" not in text:
        return None
    return text[text.rindex(")") + 2:].split()  # fields from 3 (state) on; the name may hold spaces


def read_state(pid: int) -> str | None:
    """The pid's scheduling state (field 3 of /proc/pid/stat: R, S, D, T, t, Z, ...), None when unreadable."""
    f = _stat_fields(pid)
    return f[0] if f else None


def read_start_ticks(pid: int) -> int | None:
    """The pid's start time in clock ticks since boot (field 22 of /proc/pid/stat): a reused pid differs."""
    f = _stat_fields(pid)
    try:
        return int(f[19]) if f else None
    except (IndexError, ValueError):
        return None


def read_ancestors(pid: int | None = None, depth: int = 8) -> tuple[int, ...]:
    """The pids above ``pid`` (parent first), up to ``depth`` levels, stopping at init."""
    out: list[int] = []
    cur = os.getpid() if pid is None else pid
    for _ in range(depth):
        f = _stat_fields(cur)
        try:
            parent = int(f[1]) if f else (os.getppid() if cur == os.getpid() else 0)
        except (IndexError, ValueError):
            parent = 0
        if parent <= 1:
            break
        out.append(parent)
        cur = parent
    return tuple(out)


def read_cpu_quota() -> float | None:
    """This process's cgroup CPU limit in CPUs (v2 ``cpu.max`` or v1 ``cpu.cfs_quota_us``), None if none."""
    paths: list[tuple[str, str | None]] = []
    for line in (_read("/proc/self/cgroup") or "").splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3 and parts[0] == "0":
            paths.append((f"/sys/fs/cgroup{parts[2].rstrip()}/cpu.max", None))
        elif len(parts) == 3 and "cpu" in parts[1].split(","):
            base = f"/sys/fs/cgroup/{parts[1]}{parts[2].rstrip()}"
            paths.append((f"{base}/cpu.cfs_quota_us", f"{base}/cpu.cfs_period_us"))
    paths += [("/sys/fs/cgroup/cpu.max", None), ("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "/sys/fs/cgroup/cpu/cpu.cfs_period_us")]
    for quota_path, period_path in paths:
        text = _read(quota_path)
        if text is None:
            continue
        try:
            if period_path is None:
                q, p = text.split()[:2]
                return None if q == "max" else int(q) / int(p)
            q = int(text.strip())
            return None if q <= 0 else q / int((_read(period_path) or "100000").strip())
        except (ValueError, ZeroDivisionError):
            return None
    return None


def read_cores() -> Cores:
    """:func:`usable_cores` from the affinity mask, ``os.cpu_count()``, the cgroup quota and sysfs topology."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = list(range(os.cpu_count() or 1))
    cores = {(_read(f"/sys/devices/system/cpu/cpu{c}/topology/core_cpus_list")
              or _read(f"/sys/devices/system/cpu/cpu{c}/topology/thread_siblings_list") or str(c)).strip()
             for c in cpus}  # fmt: skip
    return usable_cores(len(cpus), os.cpu_count() or len(cpus), read_cpu_quota(), len(cores) or None)


def jobs_dir(env: Mapping[str, str] | None = None) -> Path:
    """Where jobs register: ``FAIRLATENT_JOBS_DIR``, else ``$XDG_RUNTIME_DIR/fairlatent-jobs`` (per user,
    cleared at logout), else ``<tmp>/fairlatent-jobs-<uid>``."""
    env = os.environ if env is None else env
    if env.get(ENV_JOBS_DIR):
        return Path(env[ENV_JOBS_DIR])
    xdg = env.get("XDG_RUNTIME_DIR")
    if xdg and os.path.isdir(xdg) and os.access(xdg, os.W_OK):
        return Path(xdg) / "fairlatent-jobs"
    uid = os.getuid() if hasattr(os, "getuid") else 0
    return Path(tempfile.gettempdir()) / f"fairlatent-jobs-{uid}"


class JobRegistry:
    """One ``<pid>.json`` per running fairlatent process in ``directory`` (created 0700, must be ours).

    Files are written atomically (temporary file + rename); :meth:`entries` ignores and deletes the file
    of a pid that is gone or was reused (its start time differs), so a killed job leaves nothing behind
    that counts.
    """

    def __init__(self, directory: Path):
        self.dir = Path(directory)

    def _ensure(self) -> bool:
        try:
            self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            return not hasattr(os, "getuid") or self.dir.stat().st_uid == os.getuid()
        except OSError:
            return False

    def write(self, entry: JobEntry) -> bool:
        if not self._ensure():
            return False
        data = {"pid": entry.pid, "threads": entry.threads, "mode": entry.mode, "ancestors": list(entry.ancestors),
                "group": entry.group, "start": entry.start, "desc": entry.desc}  # fmt: skip
        tmp = self.dir / f".{entry.pid}.json.tmp"
        try:
            tmp.write_text(json.dumps(data))
            os.replace(tmp, self.dir / f"{entry.pid}.json")
        except OSError:
            return False
        return True

    def remove(self, pid: int) -> None:
        try:
            (self.dir / f"{pid}.json").unlink(missing_ok=True)
        except OSError:
            pass

    def entries(self) -> list[JobEntry]:
        """The live registered jobs that can run; stale files are deleted on the way. A stopped job (SIGSTOP,
        Ctrl-Z: state T) is alive but uses no core, so it is left out until it continues (its file stays);
        counting it would halve the threads of the job a user paused it for."""
        out: list[JobEntry] = []
        try:
            files = list(self.dir.glob("*.json"))
        except OSError:
            return out
        for path in files:
            try:
                d = json.loads(path.read_text())
                e = JobEntry(pid=int(d["pid"]), threads=d.get("threads"), mode=str(d.get("mode", "auto")),
                             ancestors=tuple(int(a) for a in d.get("ancestors", ())), group=d.get("group"),
                             start=d.get("start"), desc=str(d.get("desc", "")))  # fmt: skip
            except (OSError, ValueError, KeyError, TypeError):
                continue  # being written, or not ours to judge
            start = read_start_ticks(e.pid) if e.start is not None else None
            if not pid_alive(e.pid) or (start is not None and start != e.start):
                self.remove(e.pid)
                continue
            if read_state(e.pid) in ("T", "t"):  # stopped, or stopped by a tracer
                continue
            out.append(e)
        return out


# --- the policy of one process -----------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    """What was decided and why: ``mode`` (fixed | auto | torch | torch-loaded), ``threads`` (None: torch's
    default), the reason, the OpenMP wait policy set (None: not set by us) and its reason."""

    mode: str
    threads: int | None
    why: str
    wait: str | None = None
    wait_why: str = ""

    def line(self) -> str:
        t = "torch default" if self.threads is None else str(self.threads)
        w = self.wait or "unset"
        return f"fairlatent threads: {t} ({self.mode}: {self.why}); OMP_WAIT_POLICY {w} ({self.wait_why})"


@dataclass
class Probe:
    """The readings the policy needs, replaceable in tests."""

    cores: Callable[[], Cores] = read_cores
    runnable: Callable[[], int | None] = read_runnable
    ancestors: Callable[[], tuple[int, ...]] = read_ancestors
    start_ticks: Callable[[int], int | None] = read_start_ticks
    sleep: Callable[[float], None] = time.sleep


def _default_set_threads(n: int) -> None:
    torch = sys.modules.get("torch")  # never import it here: before torch loads the env variable does it
    if torch is not None:
        torch.set_num_threads(n)


@dataclass
class ThreadPolicy:
    """The policy of one process: :meth:`start` decides and writes the environment, :meth:`rebalance`
    revisits an auto decision, :meth:`close` unregisters. ``env`` is ``os.environ`` in real use."""

    env: MutableMapping[str, str]
    registry: JobRegistry | None
    pid: int = field(default_factory=os.getpid)
    probe: Probe = field(default_factory=Probe)
    set_threads: Callable[[int], None] = _default_set_threads
    clock: Callable[[], float] = time.monotonic
    auto_wait: str | None = None
    decision: Decision | None = None
    _entry: JobEntry | None = None
    _cores: Cores | None = None
    _external: deque = field(default_factory=lambda: deque(maxlen=LOAD_SAMPLES))
    _next: float = 0.0

    def _local_world(self) -> int:
        try:
            return int(self.env.get("LOCAL_WORLD_SIZE", "1"))
        except ValueError:
            return 1

    def _sample_external(self, ours: int) -> None:
        r = self.probe.runnable()
        if r is not None:
            self._external.append(external_load(r, ours))

    def _share(self, own_threads: int, *, samples: int) -> tuple[int, str]:
        """The auto thread count now, and why (counts jobs, samples the load ``samples`` times)."""
        me = self._entry or JobEntry(self.pid)
        others = self.registry.entries() if self.registry is not None else []
        jobs, declared = count_jobs(me, others, self._local_world() if me.group else 1)
        cores = self._cores or self.probe.cores()
        self._cores = cores
        if not cores.restricted:
            for i in range(samples):
                if i:
                    self.probe.sleep(0.01)
                self._sample_external(own_threads + declared)
        external = min(self._external) if self._external and not cores.restricted else 0
        n = fair_share(cores, jobs, external)
        load = "load ignored (restricted CPUs)" if cores.restricted else f"other load {external}"
        why = f"{cores.usable} cpus, {cores.physical} cores, {jobs} job{'s' if jobs != 1 else ''}, {load}"
        return n, why

    def start(self) -> Decision:
        setting = thread_setting(self.env)
        if setting.mode == "torch":
            self.decision = Decision("torch", None, setting.source, None, "not set")
            self._record()
            return self.decision
        wait, wait_why = wait_policy(self.env, setting.mode, self.auto_wait)
        if wait is not None:
            self.env["OMP_WAIT_POLICY"] = wait
            self.env[MARK_WAIT] = wait
        group = None
        if self._local_world() > 1:
            parent = self.probe.ancestors()[:1] or (0,)
            group = f"{self.env.get('TORCHELASTIC_RUN_ID', '')}:{parent[0]}"
        self._entry = JobEntry(self.pid, setting.threads if setting.mode == "fixed" else None, setting.mode,
                               self.probe.ancestors(), group, self.probe.start_ticks(self.pid))  # fmt: skip
        if self.registry is not None:
            self.registry.write(self._entry)  # before counting: two jobs starting together see each other
        if setting.mode == "fixed":
            if setting.threads is not None and setting.source.startswith(ENV_THREADS):
                self.env["OMP_NUM_THREADS"] = str(setting.threads)
                self.env.pop(MARK_THREADS, None)
            self.decision = Decision("fixed", setting.threads, setting.source, wait, wait_why)
        else:
            n, why = self._share(1, samples=LOAD_SAMPLES)  # before torch: only this thread of ours runs
            self._set_env(n)
            self.decision = Decision("auto", n, f"{why}; {setting.source}", wait, wait_why)
            self._next = self.clock() + RECHECK_S
        self._record()
        return self.decision

    def _set_env(self, n: int) -> None:
        self.env["OMP_NUM_THREADS"] = str(n)
        self.env[MARK_THREADS] = str(n)

    def _record(self) -> None:
        if self._entry is not None and self.decision is not None:
            self._entry = replace(self._entry, threads=self.decision.threads, desc=self.decision.line())
            if self.registry is not None:
                self.registry.write(self._entry)
        if self.decision is not None and self.env.get(ENV_DEBUG):
            print(self.decision.line(), file=sys.stderr, flush=True)

    def rebalance(self, now: float | None = None) -> int | None:
        """In auto mode, at most every :data:`RECHECK_S` seconds: recount and, when the share changed,
        apply it; return the new thread count, or None when nothing changed (or not auto)."""
        d = self.decision
        if d is None or d.mode != "auto":
            return None
        now = self.clock() if now is None else now
        if now < self._next:
            return None
        self._next = now + RECHECK_S
        n, why = self._share(d.threads or 1, samples=1)
        if n == d.threads:
            return None
        self.set_threads(n)
        self._set_env(n)
        self.decision = replace(d, threads=n, why=f"{why}; rebalanced")
        self._record()
        return n

    def close(self) -> None:
        if self.registry is not None and self._entry is not None and os.getpid() == self.pid:
            self.registry.remove(self.pid)  # a forked child running atexit must not unregister its parent


# --- the process-wide entry points -------------------------------------------------------------------

_POLICY: ThreadPolicy | None = None


def apply_process_policy() -> Decision:
    """Decide this process's threads and write ``OMP_NUM_THREADS``/``OMP_WAIT_POLICY`` into ``os.environ``;
    call first thing, before torch is imported. Idempotent. If torch is already loaded, change nothing."""
    global _POLICY
    if _POLICY is not None and _POLICY.decision is not None:
        return _POLICY.decision
    if "torch" in sys.modules:
        policy = ThreadPolicy(os.environ, None)
        policy.decision = Decision("torch-loaded", None, "torch was imported before the policy; threads left as set",
                                   None, "not set")  # fmt: skip
        if os.environ.get(ENV_DEBUG):
            print(policy.decision.line(), file=sys.stderr, flush=True)
    else:
        policy = ThreadPolicy(os.environ, JobRegistry(jobs_dir()), auto_wait=AUTO_WAIT_POLICY)
        policy.start()
        atexit.register(policy.close)
    _POLICY = policy
    return policy.decision  # type: ignore[return-value]


def rebalance(now: float | None = None) -> int | None:
    """The engine's hook (every step; costs a clock read except every :data:`RECHECK_S` seconds): see
    :meth:`ThreadPolicy.rebalance`. A no-op unless :func:`apply_process_policy` chose auto mode."""
    return _POLICY.rebalance(now) if _POLICY is not None else None


def describe() -> str:
    """One line: the current thread count, why, and the wait policy (or that no policy was applied)."""
    if _POLICY is None or _POLICY.decision is None:
        return "fairlatent threads: no policy applied (torch default unless the process set its own)"
    return _POLICY.decision.line()
