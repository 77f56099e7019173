"""Where a benchmark stands, read from its folder alone (``fairlatent benchmark status OUT``): what a
``--background`` run (or one in another terminal, or one that died) has finished, what each rank is doing
now, and roughly how long the rest takes.

A benchmark spans hours to days and its log is terse (``--background`` runs ``--quiet``), so this is how a
user sees its progress. Nothing is imported from the running job and nothing is written; the folder says it
all, so it works on a job of any age, alive or dead:

* ``benchmark.pid``: the invocation that holds the folder, and whether its process is alive;
* ``results.json``'s ``planned``: every run of the invocation with its config key (written once its shared
  stages are done: a CelebA benchmark trains each seed's GAN before it plans a run, so for its first hours the
  folder holds only the lock and those stages, and the status says it is preparing);
* ``done/<run>.json``: a finished (or failed) run, counted only when its key is the planned one (a record of
  another config is rerun); ``done/<run>.claim``: the rank and process running it;
* stage folders: a folder with a ``.key`` and no ``stage.json`` is a stage begun and not finished
  (:mod:`fairlatent.pipeline.stages`); a ``log.csv`` in it gives a training's step, and its
  ``elapsed_s`` column the pace.
"""

from __future__ import annotations

import csv
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

from fairlatent.benchmark.lock import LOCK_NAME, read_claim
from fairlatent.errors import FairlatentError
from fairlatent.utils.lock import read_lock
from fairlatent.utils.process import pid_alive

#: how deep below a begun stage to look for its training's log.csv (stage/model/log.csv)
_LOG_DEPTH = 3


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _last_rows(log: Path, n: int = 2) -> list[dict[str, str]]:
    """The last ``n`` rows of a training's ``log.csv`` (its header names the columns)."""
    try:
        with open(log, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, csv.Error, UnicodeDecodeError):
        return []
    return rows[-n:]


def _number(row: dict[str, str], col: str) -> float | None:
    try:
        return float(row[col])
    except (KeyError, TypeError, ValueError):
        return None


def _total_steps(model_dir: Path) -> int | None:
    """A training's planned steps where its run says them: a translator's ``translator.json``
    (``total_steps``), a GAN's ``config.json`` (``config.steps``); None for an epoch-based classifier."""
    for name, path in (("translator.json", ("total_steps",)), ("config.json", ("config", "steps"))):
        value: Any = _read_json(model_dir / name)
        for k in path:
            value = value.get(k) if isinstance(value, dict) else None
        if isinstance(value, int) and value > 0:
            return value
    return None


def training_progress(stage_dir: Path, now: float | None = None) -> dict[str, Any]:
    """What a begun stage's training says of itself: ``{"step", "total", "epoch", "s_per_step",
    "left_s", "log_age_s"}`` from its newest ``log.csv`` (keys absent where unknown; ``{}`` without a log).
    The pace is that of the last two log rows, so it is today's pace, not the average since the start."""
    now = time.time() if now is None else now
    logs = [p for depth in range(1, _LOG_DEPTH + 1) for p in stage_dir.glob("/".join(["*"] * (depth - 1)
                                                                                      + ["log.csv"]))]
    if not logs:
        return {}
    log = max(logs, key=lambda p: p.stat().st_mtime)
    out: dict[str, Any] = {"log_age_s": round(now - log.stat().st_mtime, 1)}
    rows = _last_rows(log)
    if not rows:
        return out
    step, epoch = _number(rows[-1], "step"), _number(rows[-1], "epoch")
    if step is not None:
        out["step"] = int(step)
    if epoch is not None:
        out["epoch"] = epoch
    total = _total_steps(log.parent)
    if total is not None:
        out["total"] = total
    if len(rows) == 2:
        s0, s1 = _number(rows[0], "step"), step
        e0, e1 = _number(rows[0], "elapsed_s"), _number(rows[1], "elapsed_s")
        if None not in (s0, s1, e0, e1) and s1 > s0 and e1 >= e0:
            out["s_per_step"] = (e1 - e0) / (s1 - s0)
            if total is not None:
                out["left_s"] = round(max(total - s1, 0) * out["s_per_step"], 1)
    return out


def begun_stages(out: Path) -> list[Path]:
    """Every stage folder under ``out`` that was begun and not finished: a ``.key`` without ``stage.json``."""
    return sorted(p.parent for p in out.rglob(".key") if not (p.parent / "stage.json").is_file())


def _claim(path: Path) -> dict[str, Any]:
    """``done/<run>.claim``: the rank and process that took the run
    (:func:`~fairlatent.benchmark.lock.read_claim`), and whether that process is alive."""
    info: dict[str, Any] = dict(read_claim(path))
    if "pid" in info:
        info["alive"] = pid_alive(info["pid"])
    return info


def benchmark_status(out: str | os.PathLike, now: float | None = None) -> dict[str, Any]:
    """The state of the benchmark in folder ``out`` (see the module docstring), as a JSON-ready mapping.

    Raises FairlatentError naming the folder when it holds no benchmark (neither ``results.json`` nor the
    lock an invocation takes before its shared stages)."""
    out = Path(out)
    now = time.time() if now is None else now
    results = _read_json(out / "results.json")
    lock_path = out / LOCK_NAME
    if results is None and not lock_path.is_file():
        raise FairlatentError(f"{out}: no benchmark here (no readable results.json, no {LOCK_NAME}: a benchmark "
                              "takes the lock when it starts and writes results.json once its shared stages are "
                              "done)")
    lock = None
    if lock_path.is_file():
        info = read_lock(lock_path)
        pid = int(info.get("pid", -1))
        lock = {**info, "alive": pid > 0 and pid_alive(pid)}
    planned = (results or {}).get("planned")
    done_dir = out / "done"
    claims = {p.name.removesuffix(".claim"): _claim(p) for p in sorted(done_dir.glob("*.claim"))}
    finished, failed, walls = [], [], []
    running, waiting = [], []
    if isinstance(planned, list):
        for entry in planned:
            rec = _read_json(done_dir / entry["record"])
            stem = entry["record"].removesuffix(".json")
            if rec is not None and rec.get("key") in (entry.get("key"), entry.get("legacy_key")) \
                    and rec.get("status") in ("done", "failed"):
                (finished if rec["status"] == "done" else failed).append(entry["run"])
                wall = (rec.get("result") or {}).get("wall_s")
                if rec["status"] == "done" and isinstance(wall, (int, float)):
                    walls.append(float(wall))
            elif stem in claims:
                running.append({"run": entry["run"], **claims[stem]})
            else:
                waiting.append(entry["run"])
    stages = []
    for stage_dir in begun_stages(out):
        stages.append({"stage": str(stage_dir.relative_to(out)), **training_progress(stage_dir, now)})
    status: dict[str, Any] = {"out": str(out), "lock": lock, "planned": len(planned) if isinstance(planned, list)
                              else None, "finished": finished, "failed": failed, "running": running,
                              "waiting": waiting, "stages": stages, "preparing": results is None}
    ranks = len({c["pid"] for c in running if c.get("alive")}) or 1
    if walls and (running or waiting):
        per_run = statistics.median(walls)
        status["estimate"] = {"runs_left": len(running) + len(waiting), "median_run_s": round(per_run, 1),
                              "finished_runs": len(walls), "ranks": ranks,
                              "left_s": round((len(running) + len(waiting)) * per_run / ranks, 1)}
    return status


def _duration(s: float) -> str:
    if s < 90:
        return f"{s:.0f} s"
    if s < 90 * 60:
        return f"{s / 60:.0f} min"
    return f"{s / 3600:.1f} h"


def status_lines(status: dict[str, Any]) -> list[str]:
    """The terminal rendering of :func:`benchmark_status`."""
    lines = []
    lock = status["lock"]
    if lock is None:
        lines.append(f"benchmark {status['out']}: no invocation holds the folder (no {LOCK_NAME})")
    else:
        said = f"pid {lock.get('pid')}" + (f", started {lock['started']}" if lock.get("started") else "")
        lines.append(f"benchmark {status['out']}: " + (f"running ({said})" if lock["alive"] else
                                                        f"not running (the last invocation, {said}, is gone; "
                                                        "rerun its command to resume)"))
    if status.get("preparing"):
        lines.append("runs: not planned yet: the invocation is in its shared stages (split, GAN, f_g, …, below); "
                     "it writes the plan to results.json when they are done")
    elif status["planned"] is None:
        lines.append("runs: the plan is not recorded (results.json written by an older version); finished: "
                     "see results.md")
    else:
        lines.append(f"runs: {len(status['finished'])} of {status['planned']} finished, {len(status['failed'])} "
                     f"failed, {len(status['running'])} running, {len(status['waiting'])} waiting")
    for r in status["running"]:
        who = " ".join(f"{k} {r[k]}" for k in ("rank", "pid") if k in r)
        state = "" if "alive" not in r else (", alive" if r["alive"] else ", gone")
        lines.append(f"  running {r['run']} ({who}{state})")
    for r in status["failed"]:
        lines.append(f"  failed {r} (its error: done/ record; delete the record to retry)")
    if status["stages"]:
        lines.append("stages begun and not finished:")
    for s in status["stages"]:
        bits = []
        if "step" in s:
            bits.append(f"step {s['step']}" + (f" of {s['total']}" if "total" in s else "")
                        + (f" (epoch {s['epoch']:g})" if "epoch" in s else ""))
        if "s_per_step" in s:
            bits.append(f"{s['s_per_step']:.2f} s/step")
        if "left_s" in s:
            bits.append(f"about {_duration(s['left_s'])} left at that pace")
        if "log_age_s" in s:
            bits.append(f"log written {_duration(s['log_age_s'])} ago")
        lines.append(f"  {s['stage']}" + (": " + " · ".join(bits) if bits else ""))
    est = status.get("estimate")
    if est:
        lines.append(f"rough time left: {est['runs_left']} runs × {_duration(est['median_run_s'])} (median wall of "
                     f"{est['finished_runs']} finished runs) / {est['ranks']} rank(s) ≈ {_duration(est['left_s'])}; "
                     "shared models not yet trained (a seed's GAN) come on top")
    return lines


__all__ = ["begun_stages", "benchmark_status", "status_lines", "training_progress"]
