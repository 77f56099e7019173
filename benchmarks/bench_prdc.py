"""Precision/recall + density/coverage: fairlatent (chunked torch) vs the prdc package, side by side.

Each run is a separate child process so peak RSS (resource.getrusage ru_maxrss) is per method.
Usage: python benchmarks/bench_prdc.py [--n 10000] [--dim 2048] [--big 50000] [--readme]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = r"""
import contextlib, io, json, resource, sys, time
import numpy as np
method, n, dim, k = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rs = np.random.default_rng(0)
real = rs.standard_normal((n, dim), dtype=np.float32)
fake = rs.standard_normal((n, dim), dtype=np.float32)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
if method == "prdc":
    import prdc
    with contextlib.redirect_stdout(io.StringIO()):
        out = {a: float(b) for a, b in prdc.compute_prdc(real, fake, nearest_k=k).items()}
else:
    from fairlatent.metrics.generative import compute_prdc
    out = compute_prdc(real, fake, k_pr=k, k_dc=k)
out["seconds"] = time.perf_counter() - t
out["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
out["data_gib"] = 2 * real.nbytes / 2**30
print(json.dumps(out))
"""


def run(method: str, n: int, dim: int, k: int) -> dict:
    proc = subprocess.run([sys.executable, "-c", CHILD, method, str(n), str(dim), str(k)], capture_output=True,
                          text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--dim", type=int, default=2048)
    ap.add_argument("--big", type=int, default=0, help="also run fairlatent alone at this n (e.g. 50000)")
    ap.add_argument("--readme", action="store_true", help="prdc README example: 10k vs 10k N(0, I_1000), k=5")
    args = ap.parse_args()
    if args.readme:
        ours = run("fairlatent", 10000, 1000, 5)
        print("README example (expected P 0.4772 R 0.4705 D 1.0555 C 0.9735):")
        print(json.dumps(ours))
    ours = run("fairlatent", args.n, args.dim, 5)
    ref = run("prdc", args.n, args.dim, 5)
    print(f"{args.n}×{args.n}, {args.dim}-d, k=5")
    for name, r in (("fairlatent", ours), ("prdc", ref)):
        print(f"  {name:10s} {r['seconds']:7.2f} s  peak RSS {r['peak_rss_gib']:.2f} GiB  (features {r['data_gib']:.2f} GiB)"
              f"  P {r['precision']:.4f} R {r['recall']:.4f} D {r['density']:.4f} C {r['coverage']:.4f}")
    print(f"  speed-up {ref['seconds'] / ours['seconds']:.2f}×, peak memory ratio {ours['peak_rss_gib'] / ref['peak_rss_gib']:.2f}")
    if args.big:
        big = run("fairlatent", args.big, args.dim, 5)
        print(f"{args.big}×{args.big}, {args.dim}-d: {big['seconds']:.1f} s, peak RSS {big['peak_rss_gib']:.2f} GiB "
              f"(features alone {big['data_gib']:.2f} GiB)")


if __name__ == "__main__":
    main()
