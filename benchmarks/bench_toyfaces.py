"""Benchmark: ToyFaces rendering speed (target: 20,000 faces at 32×32 with masks in ≤ 15 s on 2 cores).

Prints seconds and faces/s for: labels only, 32 px without masks, 32 px with masks, 32 px with masks +
writing the data set (make_toyfaces), and 64 px with masks. Run: ``python benchmarks/bench_toyfaces.py [N]``.
Absolute times depend on machine load; the ratios between rows are measured side by side in one run.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from fairlatent.data.toyfaces import _split_sizes, assign_labels, make_toyfaces, render_toyfaces


def timed(label: str, n: int, fn) -> float:
    t0 = time.perf_counter()
    fn()
    dt = time.perf_counter() - t0
    print(f"{label:<42s} {dt:7.2f} s  {n / dt:9.0f} faces/s")
    return dt


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    total = n + _split_sizes(n, (0.7, 0.15, 0.15), None)["test_balanced"]
    print(f"ToyFaces n={n} (+ test_balanced = {total} faces)")
    timed("labels only (assign_labels)", total, lambda: assign_labels(
        _split_sizes(n, (0.7, 0.15, 0.15), None), target="Wearing_Hat", protected="Eyeglasses",
        skews={"train": 0.9, "val": 0.9, "test": 0.9, "test_balanced": 0.5}, seed=0))
    timed("render 32 px, no masks", total, lambda: render_toyfaces(n=n, size=32, masks=False))
    t32 = timed("render 32 px, with masks", total, lambda: render_toyfaces(n=n, size=32, masks=True))
    with tempfile.TemporaryDirectory() as tmp:
        tw = timed("make_toyfaces 32 px (render + masks + write)", total,
                   lambda: make_toyfaces(Path(tmp) / "tf", n=n, size=32, progress=False))
    timed("render 64 px, with masks (n/4 faces)", total // 4, lambda: render_toyfaces(n=n // 4, size=64))
    print(f"target ≤ 15 s for 20k at 32 px with masks: render {t32:.1f} s, with write {tw:.1f} s "
          f"({'met' if tw <= 15 else 'NOT met'} on this machine under its current load)")


if __name__ == "__main__":
    main()
