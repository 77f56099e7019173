"""benchmarks/infogan_mnist.py --into: the per-seed InfoGAN figures merged into a results JSON."""

from __future__ import annotations

import argparse
import json
import math

import pytest


@pytest.fixture(scope="module")
def bench(benchmark_script):
    return benchmark_script("infogan_mnist")


def _args(steps=1500, **extra):
    return argparse.Namespace(arch="infogan_mnist", width=64, batch_size=128, lambda_cont=1.0, steps=steps, **extra)


def _result(seed, acc, mi):
    return {"seed": seed, "accuracy": acc, "mi_cat_final": mi, "train_s": 10.0 + seed, "per_digit_accuracy": {0: acc},
            "curve": [{"step": 1500, "accuracy": acc, "mi_cat": mi, "train_s": 10.0}]}


def _entries(path):
    return json.loads(path.read_text())["infogan_mnist"]


def test_seeds_accumulate_per_setting_and_other_keys_stay(bench, tmp_path):
    path = tmp_path / "imbalance.json"
    path.write_text(json.dumps({"benchmarks": {"mnist-lt": {"x": 1}}}))
    bench.record_into(path, _args(), [_result(0, 0.9, 2.29)])
    bench.record_into(path, _args(), [_result(1, 0.6, 2.27), _result(2, 0.8, 2.28)])
    rec = json.loads(path.read_text())
    assert rec["benchmarks"] == {"mnist-lt": {"x": 1}}
    [entry] = rec["infogan_mnist"]
    assert sorted(entry["seeds"]) == ["0", "1", "2"]
    assert entry["accuracy_mean"] == pytest.approx((0.9 + 0.6 + 0.8) / 3)
    assert entry["accuracy_worst"] == pytest.approx(0.6) and entry["mi_cat_worst"] == pytest.approx(2.27)
    assert entry["mi_ceiling"] == pytest.approx(math.log(10))
    # the same seed again overwrites its own figures
    bench.record_into(path, _args(), [_result(1, 0.7, 2.27)])
    assert _entries(path)[0]["seeds"]["1"]["accuracy"] == pytest.approx(0.7)
    assert _entries(path)[0]["accuracy_mean"] == pytest.approx((0.9 + 0.7 + 0.8) / 3)


def test_another_setting_gets_its_own_entry_and_never_mixes_seeds(bench, tmp_path):
    path = tmp_path / "imbalance.json"
    bench.record_into(path, _args(), [_result(0, 0.9, 2.29), _result(1, 0.7, 2.27)])
    bench.record_into(path, _args(steps=750), [_result(0, 0.5, 2.2)])
    fast = _args(steps=750, precision="bf16", fused_optimizer=True, note="a Xeon with AMX")
    bench.record_into(path, fast, [_result(1, 0.4, 2.1)])
    first, short, bf16 = _entries(path)
    assert sorted(first["seeds"]) == ["0", "1"] and first["accuracy_mean"] == pytest.approx(0.8)
    assert list(short["seeds"]) == ["0"] and short["setting"]["steps"] == 750
    assert "precision" not in short["setting"]  # the default is not named: older entries stay comparable
    assert list(bf16["seeds"]) == ["1"] and bf16["accuracy_mean"] == pytest.approx(0.4)
    assert bf16["setting"]["precision"] == "bf16" and bf16["setting"]["fused_optimizer"] is True
    assert bf16["note"] == "a Xeon with AMX" and "note" not in first
    # adding to the first setting again updates it in place, the others untouched
    bench.record_into(path, _args(), [_result(2, 1.0, 2.3)])
    entries = _entries(path)
    assert [sorted(e["seeds"]) for e in entries] == [["0", "1", "2"], ["0"], ["1"]]


def test_an_entry_written_before_the_list_is_kept(bench, tmp_path):
    path = tmp_path / "imbalance.json"
    bench.record_into(path, _args(), [_result(0, 0.9, 2.29)])
    old = _entries(path)[0]
    path.write_text(json.dumps({"infogan_mnist": old}))  # the single-dict format of earlier versions
    bench.record_into(path, _args(steps=3000), [_result(0, 0.85, 2.29)])
    entries = _entries(path)
    assert entries[0] == old and entries[1]["setting"]["steps"] == 3000


@pytest.fixture(scope="module")
def uniform_bench(benchmark_script):
    return benchmark_script("infogan_mnist_uniform_noise")


def test_the_uniform_noise_ablation_records_under_a_setting_of_its_own(bench, uniform_bench, tmp_path):
    module = uniform_bench
    path = tmp_path / "imbalance.json"
    bench.record_into(path, _args(), [_result(0, 0.9, 2.29)])
    module.record_uniform(bench.record_into)(path, _args(), [_result(0, 0.8, 2.28)])
    normal, uniform = _entries(path)
    assert "noise" not in normal["setting"] and uniform["setting"]["noise"] == "uniform"
    assert normal["accuracy_mean"] == pytest.approx(0.9) and uniform["accuracy_mean"] == pytest.approx(0.8)


def test_the_uniform_noise_ablation_draws_u_minus_one_one_from_the_step_generator(uniform_bench):
    import torch

    module = uniform_bench
    trainer = argparse.Namespace(config=argparse.Namespace(latent_dim=62))
    z = module.uniform_noise(trainer, torch.Generator().manual_seed(0), 4000)
    assert z.shape == (4000, 62) and float(z.min()) >= -1 and float(z.max()) < 1
    assert abs(float(z.mean())) < 0.01 and float(z.var()) == pytest.approx(1 / 3, abs=0.01)
    again = module.uniform_noise(trainer, torch.Generator().manual_seed(0), 4000)
    assert torch.equal(z, again)
