"""Training under CPU contention: torch's default threads vs the thread policy (fairlatent.utils.threads).

Issue 11: on a 2-core machine ``train-gan --steps 300`` on 3,000 ToyFaces took 20 s alone, 61 s beside a
pure-Python busy loop and 142 s each for two jobs side by side, because OpenMP threads spin-wait on cores
they do not get. This times the real command (``python -m fairlatent.cli train-gan``, so start-up and
the policy are included) in subprocesses, for three cases:

- ``alone``: one job on the machine;
- ``pair``: two jobs started together (each one's time is reported, and their mean);
- ``busy``: one job beside a pure-Python busy loop (the loop starts 1 s earlier);

under each policy:

- ``default``: ``FAIRLATENT_THREADS=torch``, the behaviour before the policy (torch's default threads);
- ``auto``: the policy as users get it (no thread variable set);
- ``auto-passive``: the policy plus ``OMP_WAIT_POLICY=PASSIVE`` (``FAIRLATENT_WAIT_POLICY``), to decide
  the switch ``AUTO_WAIT_POLICY``: worth turning on only if it costs ≤ 10 % alone;
- ``one`` (not run unless asked): ``OMP_NUM_THREADS=1``, the README's former advice.

Thread variables of the calling shell are removed from the jobs' environment, and the jobs register in a
directory of their own under ``--work``. It prints case × policy → seconds and the slowdown against the
same policy alone, the threads each job chose (and any change while it ran), then the target's ratios:

- pair / alone for ``auto`` ≤ 2.5 (two jobs side by side each at most ~2.5× slower than alone);
- auto alone / default alone ≤ 1.10 (the policy costs at most 10 % on an idle machine).

Run it on an otherwise idle machine (it warns when the machine is not idle at the start):

    python benchmarks/bench_contention.py [--steps 300] [--n 3000] [--work DIR] [--cases alone,pair,busy]
        [--policies default,auto,auto-passive] [--repeats 1]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"
CASES = ("alone", "pair", "busy")
POLICIES = {
    "default": {"FAIRLATENT_THREADS": "torch"},
    "auto": {},
    "auto-passive": {"FAIRLATENT_WAIT_POLICY": "PASSIVE"},
    "one": {"OMP_NUM_THREADS": "1"},
}
# Variables that would decide the threads in place of the policy under test.
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY", "FAIRLATENT_THREADS", "FAIRLATENT_WAIT_POLICY",
               "FAIRLATENT_AUTO_OMP_NUM_THREADS", "FAIRLATENT_AUTO_OMP_WAIT_POLICY", "FAIRLATENT_JOBS_DIR")  # fmt: skip
BUSY_LOOP = "while True:\n    pass"


def job_env(policy: str, work: Path) -> dict[str, str]:
    """The environment of one job: the caller's, minus thread settings, plus the policy's."""
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARS}
    path = env.get("PYTHONPATH")
    env["PYTHONPATH"] = f"{SRC}{os.pathsep}{path}" if path else str(SRC)
    env.update(POLICIES[policy], FAIRLATENT_JOBS_DIR=str(work / "jobs"), FAIRLATENT_THREADS_DEBUG="1")
    return env


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "fairlatent.cli", *args]


def build_data(work: Path, n: int) -> Path:
    """3,000 ToyFaces at 32 px (built once per ``--n``; reused by later invocations with the same --work)."""
    data = work / f"toyfaces_{n}"
    stamp = data / ".bench_complete"
    if not stamp.exists():
        t = time.perf_counter()
        subprocess.run(cli("data", "toyfaces", "--out", str(data), "--n", str(n), "--size", "32", "--seed", "0",
                           "--overwrite"), env=dict(job_env("default", work), FAIRLATENT_THREADS_DEBUG=""), check=True,
                       stdout=subprocess.DEVNULL)  # fmt: skip
        stamp.write_text("ok")
        print(f"built {n} ToyFaces in {time.perf_counter() - t:.1f} s → {data}")
    return data


def start_job(data: Path, out: Path, steps: int, policy: str, work: Path) -> tuple[subprocess.Popen, float, Path]:
    shutil.rmtree(out, ignore_errors=True)  # a leftover checkpoint would resume instead of training
    log = out.with_suffix(".stderr")
    log.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(cli("train-gan", "--data", str(data), "--out", str(out), "--steps", str(steps), "--quiet"),
                            env=job_env(policy, work), stdout=subprocess.DEVNULL, stderr=log.open("w"))  # fmt: skip
    return proc, time.perf_counter(), log


def wait_jobs(jobs: list[tuple[subprocess.Popen, float, Path]]) -> list[float]:
    """Each job's wall time from its start to its exit (polled every 20 ms)."""
    times: list[float | None] = [None] * len(jobs)
    while any(t is None for t in times):
        for i, (proc, t0, log) in enumerate(jobs):
            if times[i] is None and proc.poll() is not None:
                times[i] = time.perf_counter() - t0
                if proc.returncode != 0:
                    raise SystemExit(f"job failed (exit {proc.returncode}); its stderr:\n{log.read_text()[-3000:]}")
        time.sleep(0.02)
    return [float(t) for t in times]  # type: ignore[arg-type]


def threads_chosen(log: Path) -> str:
    """'2' or '2→1→2' from the decision lines the job printed (FAIRLATENT_THREADS_DEBUG)."""
    counts = re.findall(r"^fairlatent threads: (\S+)", log.read_text(), flags=re.M)
    return "→".join(counts) if counts else "?"


def run_case(case: str, policy: str, data: Path, steps: int, work: Path, rep: int) -> tuple[list[float], list[str]]:
    base = work / "runs" / f"{case}-{policy}-{rep}"
    if case == "alone":
        jobs = [start_job(data, base / "a", steps, policy, work)]
    elif case == "pair":
        jobs = [start_job(data, base / "a", steps, policy, work), start_job(data, base / "b", steps, policy, work)]
    elif case == "busy":
        loop = subprocess.Popen([sys.executable, "-c", BUSY_LOOP])
        try:
            time.sleep(1.0)
            jobs = [start_job(data, base / "a", steps, policy, work)]
            return wait_jobs(jobs), [threads_chosen(j[2]) for j in jobs]
        finally:
            loop.kill()
            loop.wait()
    else:
        raise SystemExit(f"unknown case {case!r}; choose from {', '.join(CASES)}")
    return wait_jobs(jobs), [threads_chosen(j[2]) for j in jobs]


def runnable_now() -> int | None:
    try:
        return int(Path("/proc/loadavg").read_text().split()[3].split("/")[0])
    except (OSError, IndexError, ValueError):
        return None


def ratio_line(name: str, num: float | None, den: float | None, limit: float | None = None) -> str:
    if num is None or den is None:
        return f"  {name}: not measured (needs both cases)"
    r = num / den
    verdict = "" if limit is None else f"  (target ≤ {limit:.2f}: {'PASS' if r <= limit else 'FAIL'})"
    return f"  {name} = {num:.1f} / {den:.1f} = {r:.2f}{verdict}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--n", type=int, default=3000, help="ToyFaces images (train + val + test)")
    ap.add_argument("--work", type=Path, default=None, help="working directory (default: a temporary one)")
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--policies", default="default,auto,auto-passive", help=f"from {', '.join(POLICIES)}")
    ap.add_argument("--repeats", type=int, default=1, help="runs per case and policy (the median is reported)")
    args = ap.parse_args()
    cases = [c for c in args.cases.split(",") if c]
    policies = [p for p in args.policies.split(",") if p]
    for p in policies:
        if p not in POLICIES:
            ap.error(f"unknown policy {p!r}; choose from {', '.join(POLICIES)}")
    for c in cases:
        if c not in CASES:
            ap.error(f"unknown case {c!r}; choose from {', '.join(CASES)}")
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_contention_"))
    work.mkdir(parents=True, exist_ok=True)

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"{cpus} usable CPUs, python {sys.version.split()[0]}, {args.steps} steps on {args.n} ToyFaces, "
          f"work dir {work}")  # fmt: skip
    data = build_data(work, args.n)
    r = runnable_now()
    if r is not None and r > 1:
        print(f"WARNING: {r} threads runnable at the start (1 = this one): the machine is not idle, "
              "the figures below are polluted")  # fmt: skip

    results: dict[tuple[str, str], list[list[float]]] = {}
    chosen: dict[tuple[str, str], list[str]] = {}
    for rep in range(args.repeats):
        for case in cases:
            for policy in policies:  # policies interleaved within a case: slow drift hits them alike
                times, th = run_case(case, policy, data, args.steps, work, rep)
                results.setdefault((case, policy), []).append(times)
                chosen.setdefault((case, policy), []).extend(th)
                print(f"  [{rep + 1}/{args.repeats}] {case:5s} {policy:12s} "
                      f"{' '.join(f'{t:.1f}' for t in times)} s  threads {' '.join(th)}", flush=True)  # fmt: skip

    def secs(case: str, policy: str) -> float | None:
        runs = results.get((case, policy))
        return statistics.median(statistics.mean(t) for t in runs) if runs else None

    print()
    print(f"{'case':6s} {'policy':13s} {'seconds':>8s} {'each job':>16s} {'× alone':>8s}  threads chosen")
    for case in cases:
        for policy in policies:
            s = secs(case, policy)
            alone = secs("alone", policy)
            each = " ".join(f"{t:.1f}" for t in results[(case, policy)][len(results[(case, policy)]) // 2])
            slow = f"{s / alone:.2f}" if (s is not None and alone) else "-"
            print(f"{case:6s} {policy:13s} {s:8.1f} {each:>16s} {slow:>8s}  {' '.join(chosen[(case, policy)])}")
    print()
    print("target (issue 11):")
    for p in (q for q in policies if q != "default"):
        print(ratio_line(f"pair/alone [{p}]", secs("pair", p), secs("alone", p), 2.5))
        print(ratio_line(f"{p} alone / default alone", secs("alone", p), secs("alone", "default"), 1.10))
    print("for reference:")
    for p in policies:
        print(ratio_line(f"busy/alone [{p}]", secs("busy", p), secs("alone", p)))
    for p in (q for q in policies if q != "default"):
        print(ratio_line(f"pair [{p}] / alone [default]", secs("pair", p), secs("alone", "default")))
    out = {f"{c}|{p}": {"runs_s": v, "threads": chosen[(c, p)]} for (c, p), v in results.items()}
    (work / "results.json").write_text(json.dumps({"steps": args.steps, "n": args.n, "cpus": cpus, "results": out},
                                                  indent=1))  # fmt: skip
    print(f"\nraw figures: {work / 'results.json'}; each job's stderr under {work / 'runs'}")


if __name__ == "__main__":
    main()
