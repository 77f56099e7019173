"""benchmarks/infogan_mnist.py --into: the per-seed InfoGAN figures merged into a results JSON."""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "infogan_mnist.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("infogan_mnist_bench", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _args(steps=1500):
    return argparse.Namespace(arch="infogan_mnist", width=64, batch_size=128, lambda_cont=1.0, steps=steps)


def _result(seed, acc, mi):
    return {"seed": seed, "accuracy": acc, "mi_cat_final": mi, "train_s": 10.0 + seed, "per_digit_accuracy": {0: acc},
            "curve": [{"step": 1500, "accuracy": acc, "mi_cat": mi, "train_s": 10.0}]}


def test_seeds_accumulate_other_keys_stay_and_a_new_setting_replaces_the_entry(bench, tmp_path):
    path = tmp_path / "imbalance.json"
    path.write_text(json.dumps({"benchmarks": {"mnist-lt": {"x": 1}}}))
    bench.record_into(path, _args(), [_result(0, 0.9, 2.29)])
    bench.record_into(path, _args(), [_result(1, 0.6, 2.27), _result(2, 0.8, 2.28)])
    rec = json.loads(path.read_text())
    assert rec["benchmarks"] == {"mnist-lt": {"x": 1}}
    entry = rec["infogan_mnist"]
    assert sorted(entry["seeds"]) == ["0", "1", "2"]
    assert entry["accuracy_mean"] == pytest.approx((0.9 + 0.6 + 0.8) / 3)
    assert entry["accuracy_worst"] == pytest.approx(0.6) and entry["mi_cat_worst"] == pytest.approx(2.27)
    assert entry["mi_ceiling"] == pytest.approx(math.log(10))
    # the same seed again overwrites its own figures
    bench.record_into(path, _args(), [_result(1, 0.7, 2.27)])
    assert json.loads(path.read_text())["infogan_mnist"]["seeds"]["1"]["accuracy"] == pytest.approx(0.7)
    # another number of steps is another setting: its seeds are not mixed with the old ones
    bench.record_into(path, _args(steps=750), [_result(0, 0.5, 2.2)])
    entry = json.loads(path.read_text())["infogan_mnist"]
    assert list(entry["seeds"]) == ["0"] and entry["setting"]["steps"] == 750
    assert "precision" not in entry["setting"]  # the default is not named: older entries stay comparable
    # bf16 with the fused optimiser is another setting too
    fast = argparse.Namespace(**vars(_args(steps=750)), precision="bf16", fused_optimizer=True)
    bench.record_into(path, fast, [_result(1, 0.4, 2.1)])
    entry = json.loads(path.read_text())["infogan_mnist"]
    assert list(entry["seeds"]) == ["1"]
    assert entry["setting"]["precision"] == "bf16" and entry["setting"]["fused_optimizer"] is True
