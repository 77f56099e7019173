"""Inception-v3 feature extraction throughput: fairlatent vs torch-fidelity, same random weights, CPU, batch.

Usage: python benchmarks/bench_inception.py [--batch 16] [--size 64] [--rounds 3]
(torch-fidelity must be installed: pip install --no-deps torch-fidelity.)
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
import time
import types
from pathlib import Path

import torch

from fairlatent.metrics.generative.inception import InceptionV3TF, load_inception


def fidelity_extractor(weights: Path):
    import importlib.metadata as md

    pkgdir = Path(md.distribution("torch-fidelity").locate_file("torch_fidelity"))
    pkg = types.ModuleType("torch_fidelity")
    pkg.__path__ = [str(pkgdir)]
    sys.modules["torch_fidelity"] = pkg
    spec = importlib.util.spec_from_file_location("torch_fidelity.feature_extractor_inceptionv3",
                                                  pkgdir / "feature_extractor_inceptionv3.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.FeatureExtractorInceptionV3("inception-v3-compat", ["2048", "logits_unbiased"],
                                              feature_extractor_weights_path=str(weights))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    torch.manual_seed(0)
    net = InceptionV3TF()
    for m in net.modules():
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(m.weight)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "w.pth"
        torch.save(net.state_dict(), path)
        models = {"fairlatent": load_inception(path), "torch-fidelity": fidelity_extractor(path)}
    x = torch.randint(0, 256, (args.batch, 3, args.size, args.size), dtype=torch.uint8)
    best = {k: float("inf") for k in models}
    with torch.inference_mode():
        for m in models.values():
            m(x)  # warm-up
        for _ in range(args.rounds):  # interleaved rounds: contention affects both alike
            for name, m in models.items():
                t = time.perf_counter()
                m(x)
                best[name] = min(best[name], time.perf_counter() - t)
    print(f"batch {args.batch} of {args.size}px images, {torch.get_num_threads()} threads")
    for name, t in best.items():
        print(f"  {name:15s} {args.batch / t:7.2f} images/s")
    print(f"  ratio fairlatent / torch-fidelity: {best['torch-fidelity'] / best['fairlatent']:.2f}")


if __name__ == "__main__":
    main()
