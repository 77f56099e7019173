"""`fairlatent benchmark status`: what a benchmark folder says of its progress, read from the folder alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from fairlatent.benchmark.lock import claim_text, read_claim
from fairlatent.benchmark.status import benchmark_status, status_lines
from fairlatent.errors import FairlatentError


def _write(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj) if not isinstance(obj, str) else obj)


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.fixture
def folder(tmp_path):
    """Four planned runs: A finished, B claimed by a live process and training, C with a record of another
    config (so it will be rerun: waiting), D failed; a finished stage and a begun one with a training log."""
    out = tmp_path / "bench"
    planned = [{"run": f"{r}/seed0", "bucket": "runs", "record": f"runs__{r}__seed0.json", "key": f"k{r}"}
               for r in "ABCD"]
    _write(out / "results.json", {"runs": {}, "failed": {}, "planned": planned})
    _write(out / "done" / "runs__A__seed0.json", {"key": "kA", "status": "done", "result": {"wall_s": 600.0}})
    _write(out / "done" / "runs__B__seed0.claim", claim_text(1, os.getpid()))
    _write(out / "done" / "runs__C__seed0.json", {"key": "old", "status": "done", "result": {"wall_s": 1.0}})
    _write(out / "done" / "runs__D__seed0.json", {"key": "kD", "status": "failed", "error": "no cell"})
    _write(out / "benchmark.pid", f"{os.getpid()}\nstarted: 2026-12-02 00:00:00\ncommand: x\n")
    _write(out / "shared" / "seed0" / "gan" / ".key", "g")
    _write(out / "shared" / "seed0" / "gan" / "stage.json", {"key": "g", "done": True})
    begun = out / "shared" / "seed0" / "translator"
    _write(begun / ".key", "t")
    _write(begun / "model" / "translator.json", {"step": 300, "total_steps": 1000})
    _write(begun / "model" / "log.csv", "step,epoch,loss,elapsed_s\n100,0.1,1.0,50.0\n200,0.2,0.9,100.0\n"
                                        "300,0.3,0.8,160.0\n")
    return out


def test_status_counts_runs_by_their_records_claims_and_keys_and_reads_the_begun_stages(folder):
    st = benchmark_status(folder)
    assert st["lock"]["alive"] and st["lock"]["pid"] == os.getpid()
    assert st["planned"] == 4
    assert st["finished"] == ["A/seed0"] and st["failed"] == ["D/seed0"]
    assert st["running"] == [{"run": "B/seed0", "rank": 1, "pid": os.getpid(), "alive": True}]
    assert st["waiting"] == ["C/seed0"]  # its record is of another config
    [stage] = st["stages"]  # the finished GAN stage is not listed
    assert stage["stage"] == "shared/seed0/translator"
    assert stage["step"] == 300 and stage["total"] == 1000 and stage["epoch"] == 0.3
    assert stage["s_per_step"] == pytest.approx(0.6)  # the last two rows: 60 s for 100 steps
    assert stage["left_s"] == pytest.approx(700 * 0.6)
    # two runs left (B and C) at the median wall of the one finished run, on the one live rank
    assert st["estimate"] == {"runs_left": 2, "median_run_s": 600.0, "finished_runs": 1, "ranks": 1,
                              "left_s": 1200.0}
    text = "\n".join(status_lines(st))
    assert "running (pid" in text and "runs: 1 of 4 finished, 1 failed, 1 running, 1 waiting" in text
    assert "running B/seed0 (rank 1 pid" in text and "failed D/seed0" in text
    assert "shared/seed0/translator: step 300 of 1000 (epoch 0.3) · 0.60 s/step · about 7 min left" in text
    assert "≈ 20 min" in text


def test_status_of_a_folder_whose_invocation_died(folder):
    dead = _dead_pid()
    (folder / "benchmark.pid").write_text(f"{dead}\nstarted: 2026-12-01 10:00:00\n")
    (folder / "done" / "runs__B__seed0.claim").write_text(claim_text(0, dead))
    st = benchmark_status(folder)
    assert not st["lock"]["alive"] and st["running"][0]["alive"] is False
    text = "\n".join(status_lines(st))
    assert f"not running (the last invocation, pid {dead}" in text and "rerun its command to resume" in text
    assert "running B/seed0 (rank 0 pid" in text and ", gone)" in text


def test_status_of_a_results_file_without_a_plan_says_so(folder):
    res = json.loads((folder / "results.json").read_text())
    del res["planned"]
    (folder / "results.json").write_text(json.dumps(res))
    st = benchmark_status(folder)
    assert st["planned"] is None and st["finished"] == [] and "estimate" not in st
    assert any("the plan is not recorded" in ln for ln in status_lines(st))


def test_status_of_a_folder_without_a_benchmark_is_an_error_naming_it(tmp_path, capsys):
    from fairlatent.cli import main

    with pytest.raises(FairlatentError, match=str(tmp_path / "nothing")):
        benchmark_status(tmp_path / "nothing")
    with pytest.raises(SystemExit) as exc:
        main(["benchmark", "status", str(tmp_path / "nothing")])
    assert exc.value.code == 2
    assert "no benchmark here" in capsys.readouterr().err


def test_a_claim_reads_back_what_the_rank_wrote_and_nothing_from_a_vanished_or_garbled_file(tmp_path):
    path = tmp_path / "run.claim"
    path.write_text(claim_text(3, 4242))
    assert read_claim(path) == {"rank": 3, "pid": 4242}
    path.write_text("rank x pid\n")
    assert read_claim(path) == {}
    assert read_claim(tmp_path / "gone.claim") == {}


def test_status_while_the_shared_stages_train_says_preparing_and_shows_them(folder):
    """A CelebA benchmark trains a seed's GAN for hours before it writes results.json: the lock and the begun
    stages are all the folder has, and the status reads them instead of calling the folder empty."""
    (folder / "results.json").unlink()
    st = benchmark_status(folder)
    assert st["preparing"] and st["planned"] is None and st["lock"]["alive"]
    assert [s["stage"] for s in st["stages"]] == ["shared/seed0/translator"]
    text = "\n".join(status_lines(st))
    assert "runs: not planned yet: the invocation is in its shared stages" in text
    assert "shared/seed0/translator: step 300 of 1000" in text
    assert "estimate" not in st  # no plan, so no runs to time
