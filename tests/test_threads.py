"""The thread policy (fairlatent.utils.threads): the pure share, the precedence of the environment, the job
registry, the runtime rebalance, and that the CLI sets the environment before torch loads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fairlatent.errors import FairlatentError
from fairlatent.utils import threads as th
from fairlatent.utils.threads import (
    Cores,
    JobEntry,
    JobRegistry,
    Probe,
    ThreadPolicy,
    count_jobs,
    external_load,
    fair_share,
    thread_setting,
    usable_cores,
    wait_policy,
)

SRC = str(Path(th.__file__).resolve().parents[2])
POLICY_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY", th.ENV_THREADS, th.ENV_WAIT, th.MARK_THREADS,
               th.MARK_WAIT, "LOCAL_WORLD_SIZE")  # fmt: skip


# --- the pure share ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cores, jobs, external, expected",
    [
        (Cores(2, 2, False), 1, 0, 2),  # alone on an idle 2-core machine: torch's own default
        (Cores(2, 2, False), 2, 0, 1),  # two jobs: one core each
        (Cores(2, 2, False), 1, 1, 1),  # beside a busy loop
        (Cores(2, 2, False), 3, 0, 1),  # never zero
        (Cores(2, 2, False), 1, 7, 1),
        (Cores(8, 4, False), 1, 0, 4),  # hyper-threads: at most one thread per physical core
        (Cores(8, 4, False), 2, 0, 2),
        (Cores(8, 4, False), 1, 5, 3),  # 8 - 5 = 3 logical CPUs left
        (Cores(3, 3, False), 2, 0, 1),  # floor: 2 + 2 threads on 3 cores would spin-wait again
        (Cores(2, 2, True), 1, 5, 2),  # restricted: /proc/loadavg describes other CPUs, ignored
        (Cores(16, 16, False), 4, 0, 4),
    ],
)
def test_fair_share(cores, jobs, external, expected):
    assert fair_share(cores, jobs, external) == expected


def test_usable_cores():
    assert usable_cores(4, 4) == Cores(4, 4, False)
    assert usable_cores(4, 8) == Cores(4, 4, True)  # an affinity subset
    assert usable_cores(8, 8, quota=2.0) == Cores(2, 2, True)  # a container's CPU quota
    assert usable_cores(8, 8, quota=1.5) == Cores(1, 1, True)
    assert usable_cores(8, 8, quota=16.0, physical=4) == Cores(8, 4, False)
    assert usable_cores(8, 8, physical=12) == Cores(8, 8, False)


def test_external_load():
    assert external_load(5, 2) == 3
    assert external_load(1, 4) == 0  # our sleeping threads do not make others' load negative


# --- the environment ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "env, mode, threads",
    [
        ({}, "auto", None),
        ({"OMP_NUM_THREADS": "3"}, "fixed", 3),
        ({"MKL_NUM_THREADS": "2"}, "fixed", 2),
        ({"OMP_NUM_THREADS": "4,2"}, "fixed", None),  # OpenMP's own syntax: left to OpenMP
        ({"OMP_NUM_THREADS": "3", th.MARK_THREADS: "3"}, "auto", None),  # a fairlatent parent's choice
        ({"OMP_NUM_THREADS": "3", th.MARK_THREADS: "2"}, "fixed", 3),  # changed by the user since
        ({th.ENV_THREADS: "auto", "OMP_NUM_THREADS": "1"}, "auto", None),
        ({th.ENV_THREADS: "5", "OMP_NUM_THREADS": "1"}, "fixed", 5),
        ({th.ENV_THREADS: "torch"}, "torch", None),
    ],
)
def test_thread_setting(env, mode, threads):
    s = thread_setting(env)
    assert (s.mode, s.threads) == (mode, threads)


@pytest.mark.parametrize("value", ["0", "-1", "many"])
def test_thread_setting_rejects_nonsense(value):
    with pytest.raises(FairlatentError, match=th.ENV_THREADS):
        thread_setting({th.ENV_THREADS: value})


def test_wait_policy_precedence():
    assert wait_policy({}, "auto") == (None, "runtime default")
    assert wait_policy({}, "auto", "PASSIVE")[0] == "PASSIVE"
    assert wait_policy({}, "fixed", "PASSIVE")[0] is None  # a fixed setting gets nothing it did not ask for
    assert wait_policy({th.ENV_WAIT: "passive"}, "fixed")[0] == "PASSIVE"
    assert wait_policy({"OMP_WAIT_POLICY": "ACTIVE", th.ENV_WAIT: "PASSIVE"}, "auto", "PASSIVE")[0] is None
    assert wait_policy({"OMP_WAIT_POLICY": "PASSIVE", th.MARK_WAIT: "PASSIVE"}, "auto")[0] is None
    assert wait_policy({"OMP_WAIT_POLICY": "PASSIVE", th.MARK_WAIT: "PASSIVE"}, "auto", "PASSIVE")[0] == "PASSIVE"
    with pytest.raises(FairlatentError, match=th.ENV_WAIT):
        wait_policy({th.ENV_WAIT: "sometimes"}, "auto")


# --- counting jobs -----------------------------------------------------------------------------------


def test_count_jobs():
    me = JobEntry(10, ancestors=(5, 1))
    others = [JobEntry(10), JobEntry(20, threads=2), JobEntry(30)]
    assert count_jobs(me, others) == (3, 3)  # ourselves + 20 + 30; they declare 2 + 1 (undecided)
    # our own ancestor (an --nproc parent waiting for us) does not compete
    assert count_jobs(me, [*others, JobEntry(5, threads=2)]) == (3, 3)
    # neither does someone else's waiting parent
    assert count_jobs(me, [*others, JobEntry(40, threads=2), JobEntry(41, ancestors=(40,))]) == (4, 4)


def test_count_jobs_torchrun_ranks():
    me = JobEntry(10, ancestors=(9,), group="run:9")
    others = [JobEntry(11, threads=1, ancestors=(9,), group="run:9"), JobEntry(50, threads=2)]
    # 4 local ranks count as 4 even while only 2 have registered, plus the unrelated job
    assert count_jobs(me, others, local_world=4) == (5, 3)


# --- the registry ------------------------------------------------------------------------------------


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_registry_counts_live_jobs_and_cleans_stale(tmp_path, live_process):
    reg = JobRegistry(tmp_path / "jobs")
    me, dead = os.getpid(), _dead_pid()
    assert reg.write(JobEntry(me, threads=2, start=th.read_start_ticks(me)))
    assert reg.write(JobEntry(live_process.pid, start=th.read_start_ticks(live_process.pid)))
    assert reg.write(JobEntry(dead, threads=1))
    assert (reg.dir.stat().st_mode & 0o777) == 0o700
    assert sorted(e.pid for e in reg.entries()) == sorted([me, live_process.pid])
    assert not (reg.dir / f"{dead}.json").exists()  # the stale file is gone
    assert {e.pid: e.threads for e in reg.entries()}[me] == 2
    reg.remove(live_process.pid)
    assert [e.pid for e in reg.entries()] == [me]


def test_registry_leaves_out_a_stopped_job_until_it_continues(tmp_path, live_process):
    import signal
    import time

    reg = JobRegistry(tmp_path)
    reg.write(JobEntry(os.getpid()))
    reg.write(JobEntry(live_process.pid, start=th.read_start_ticks(live_process.pid)))
    assert sorted(e.pid for e in reg.entries()) == sorted([os.getpid(), live_process.pid])
    os.kill(live_process.pid, signal.SIGSTOP)
    try:
        for _ in range(100):  # the state changes asynchronously
            if th.read_state(live_process.pid) == "T":
                break
            time.sleep(0.01)
        assert th.read_state(live_process.pid) == "T"
        assert [e.pid for e in reg.entries()] == [os.getpid()]
        assert (tmp_path / f"{live_process.pid}.json").exists()  # not removed: it is alive
    finally:
        os.kill(live_process.pid, signal.SIGCONT)
    for _ in range(100):
        if th.read_state(live_process.pid) != "T":
            break
        time.sleep(0.01)
    assert sorted(e.pid for e in reg.entries()) == sorted([os.getpid(), live_process.pid])


def test_registry_ignores_a_reused_pid(tmp_path):
    reg = JobRegistry(tmp_path)
    me = os.getpid()
    start = th.read_start_ticks(me)
    assert start is not None
    reg.write(JobEntry(me, start=start - 1))  # a file left by an earlier process with our pid
    assert reg.entries() == []
    assert list(tmp_path.glob("*.json")) == []


def test_registry_skips_unreadable_files(tmp_path):
    reg = JobRegistry(tmp_path)
    (tmp_path / "123.json").write_text("{not json")
    reg.write(JobEntry(os.getpid()))
    assert [e.pid for e in reg.entries()] == [os.getpid()]


def test_jobs_dir_choice(tmp_path):
    assert th.jobs_dir({th.ENV_JOBS_DIR: str(tmp_path / "x")}) == tmp_path / "x"
    assert th.jobs_dir({"XDG_RUNTIME_DIR": str(tmp_path)}) == tmp_path / "fairlatent-jobs"
    assert th.jobs_dir({}).name == f"fairlatent-jobs-{os.getuid()}"


# --- one process's policy, with fake readings ---------------------------------------------------------


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def _policy(env, reg, pid, *, cores=Cores(4, 4, False), runnable=1, clock=None, applied=None):
    probe = Probe(cores=lambda: cores, runnable=lambda: runnable, ancestors=lambda: (), start_ticks=th.read_start_ticks,
                  sleep=lambda s: None)  # fmt: skip
    return ThreadPolicy(env, reg, pid=pid, probe=probe, clock=clock or Clock(),
                        set_threads=(applied.append if applied is not None else lambda n: None))  # fmt: skip


def test_auto_policy_writes_env_and_registry(tmp_path):
    env: dict[str, str] = {}
    reg = JobRegistry(tmp_path)
    d = _policy(env, reg, os.getpid(), cores=Cores(4, 4, False), runnable=1).start()
    assert (d.mode, d.threads) == ("auto", 4)
    assert env["OMP_NUM_THREADS"] == env[th.MARK_THREADS] == "4"
    assert "OMP_WAIT_POLICY" not in env  # AUTO_WAIT_POLICY is None until measured
    saved = json.loads((tmp_path / f"{os.getpid()}.json").read_text())
    assert saved["threads"] == 4 and "4 (auto" in saved["desc"]


def test_auto_policy_counts_external_load(tmp_path):
    env: dict[str, str] = {}
    d = _policy(env, JobRegistry(tmp_path), os.getpid(), cores=Cores(2, 2, False), runnable=2).start()
    assert d.threads == 1 and "other load 1" in d.why
    d = _policy({}, JobRegistry(tmp_path / "r"), os.getpid(), cores=Cores(2, 2, True), runnable=9).start()
    assert d.threads == 2 and "load ignored" in d.why


def test_auto_wait_policy_switch(tmp_path):
    env: dict[str, str] = {}
    pol = _policy(env, JobRegistry(tmp_path), os.getpid())
    pol.auto_wait = "PASSIVE"
    pol.start()
    assert env["OMP_WAIT_POLICY"] == env[th.MARK_WAIT] == "PASSIVE"
    user = {"OMP_WAIT_POLICY": "ACTIVE"}
    pol = _policy(user, JobRegistry(tmp_path / "u"), os.getpid())
    pol.auto_wait = "PASSIVE"
    pol.start()
    assert user["OMP_WAIT_POLICY"] == "ACTIVE" and th.MARK_WAIT not in user


def test_rebalance_follows_jobs(tmp_path, live_process):
    reg, clock, applied = JobRegistry(tmp_path), Clock(), []
    first = _policy({}, reg, os.getpid(), clock=clock, applied=applied)
    assert first.start().threads == 4
    second_env: dict[str, str] = {}
    second = _policy(second_env, reg, live_process.pid)  # a second job starts
    assert second.start().threads == 2
    assert first.rebalance() is None and applied == []  # not yet: checks are rate-limited
    clock.t += th.RECHECK_S
    assert first.rebalance() == 2 and applied == [2]
    assert first.decision.threads == 2 and "2 jobs" in first.decision.why
    clock.t += th.RECHECK_S
    assert first.rebalance() is None and applied == [2]  # nothing changed, nothing applied
    live_process.kill()  # the second job ends (killed: its file stays, but its pid is gone)
    live_process.wait()
    clock.t += th.RECHECK_S
    assert first.rebalance() == 4 and applied == [2, 4]
    assert json.loads((tmp_path / f"{os.getpid()}.json").read_text())["threads"] == 4


def test_user_threads_win_and_never_change(tmp_path, live_process):
    reg, clock, applied = JobRegistry(tmp_path), Clock(), []
    env = {"OMP_NUM_THREADS": "3"}
    pol = _policy(env, reg, os.getpid(), clock=clock, applied=applied)
    d = pol.start()
    assert (d.mode, d.threads) == ("fixed", 3) and env == {"OMP_NUM_THREADS": "3"}
    _policy({}, reg, live_process.pid).start()
    for _ in range(3):
        clock.t += th.RECHECK_S
        assert pol.rebalance() is None
    assert applied == [] and env == {"OMP_NUM_THREADS": "3"}
    assert json.loads((tmp_path / f"{os.getpid()}.json").read_text())["threads"] == 3  # still counted by others


def test_torch_mode_does_nothing(tmp_path):
    env = {th.ENV_THREADS: "torch"}
    d = _policy(env, JobRegistry(tmp_path), os.getpid()).start()
    assert (d.mode, d.threads) == ("torch", None)
    assert env == {th.ENV_THREADS: "torch"} and list(tmp_path.iterdir()) == []


def test_close_only_in_the_registering_process(tmp_path):
    reg = JobRegistry(tmp_path)
    pol = _policy({}, reg, os.getpid())
    pol.start()
    pol.pid = os.getpid() + 1  # as seen from a forked child running atexit
    pol.close()
    assert (tmp_path / f"{os.getpid()}.json").exists()
    pol.pid = os.getpid()
    pol.close()
    assert not (tmp_path / f"{os.getpid()}.json").exists()


def test_policy_leaves_a_process_with_torch_loaded_alone(monkeypatch):
    import torch  # noqa: F401  (loaded in the test process, as in a notebook or a test calling main())

    monkeypatch.setattr(th, "_POLICY", None)
    before = dict(os.environ)
    d = th.apply_process_policy()
    assert d.mode == "torch-loaded" and dict(os.environ) == before
    assert th.rebalance(now=1e12) is None
    assert "torch-loaded" in th.describe()


# --- real processes ----------------------------------------------------------------------------------


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in POLICY_VARS}
    env.update(PYTHONPATH=SRC, **{th.ENV_JOBS_DIR: str(tmp_path / "jobs"), th.ENV_DEBUG: "1"}, **extra)
    return env


def test_importing_the_cli_does_not_load_torch(tmp_path):
    code = "import sys, fairlatent.cli; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], env=_env(tmp_path), capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", "a module imported by fairlatent.cli imports torch: the thread policy would come too late"


def test_cli_applies_the_policy_before_torch(tmp_path):
    """Run the real entry point on a command that loads torch, and check torch got the chosen count."""
    code = ("import sys; from fairlatent.cli import main; sys.argv[1:] = ['--help']\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "import os, torch; from fairlatent.utils.threads import describe\n"
            "print(describe(), '|', os.environ['OMP_NUM_THREADS'], torch.get_num_threads())")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], env=_env(tmp_path), capture_output=True, text=True, check=True)
    line = out.stdout.strip().splitlines()[-1]
    desc, nums = line.split("|")
    chosen = int(desc.split("fairlatent threads:")[1].split()[0])
    assert "(auto:" in desc
    assert nums.split() == [str(chosen), str(chosen)]
    assert "fairlatent threads:" in out.stderr  # FAIRLATENT_THREADS_DEBUG prints the decision
    assert list((tmp_path / "jobs").glob("*.json")) == []  # unregistered at exit


def test_cli_keeps_the_users_setting(tmp_path):
    code = ("import os; from fairlatent.utils.threads import apply_process_policy as a; d = a(); import torch; "
            "print(d.mode, os.environ['OMP_NUM_THREADS'], os.environ.get('FAIRLATENT_AUTO_OMP_NUM_THREADS'), "
            "os.environ.get('OMP_WAIT_POLICY'), torch.get_num_threads())")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], env=_env(tmp_path, OMP_NUM_THREADS="1"), capture_output=True,
                         text=True, check=True)  # fmt: skip
    assert out.stdout.split() == ["fixed", "1", "None", "None", "1"]


def test_two_processes_see_each_other(tmp_path):
    code = "from fairlatent.utils.threads import apply_process_policy as a; print(a().why, flush=True); input()"
    first = subprocess.Popen([sys.executable, "-c", code], env=_env(tmp_path), stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert "1 job," in first.stdout.readline()
        second = subprocess.run([sys.executable, "-c", code], env=_env(tmp_path), input="\n", capture_output=True,
                                text=True, check=True)  # fmt: skip
        assert "2 jobs" in second.stdout
    finally:
        first.communicate("\n", timeout=30)
    assert list((tmp_path / "jobs").glob("*.json")) == []
