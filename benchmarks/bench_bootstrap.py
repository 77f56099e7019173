"""Bootstrap speed: vectorised fairlatent bootstrap vs a per-resample sklearn AP loop (side by side).

Run: python benchmarks/bench_bootstrap.py [n]
"""

import sys
import time

import numpy as np
from sklearn.metrics import average_precision_score

from fairlatent.metrics.fairness import bootstrap_metrics, calibrated_threshold

n = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
r = np.random.default_rng(0)
g = r.integers(0, 2, n)
y = (r.random(n) < 0.3 + 0.3 * g).astype(int)
s = np.round(1 / (1 + np.exp(-(2 * (2 * y - 1) + 0.5 * g + r.normal(size=n)))), 4)
t = calibrated_threshold(y, s)

t0 = time.perf_counter()
res = bootstrap_metrics(y, s, sensitive_features=g, threshold=t, n_boot=500)
t_all = time.perf_counter() - t0

t0 = time.perf_counter()
res_ap = bootstrap_metrics(y, s, sensitive_features=g, threshold=t, n_boot=500, metrics=("AP",))
t_ap = time.perf_counter() - t0

t0 = time.perf_counter()
idx = np.random.default_rng(1).integers(0, n, (500, n))
aps = [average_precision_score(y[i], s[i]) for i in idx]
t_loop = time.perf_counter() - t0

print(f"n={n}, 500 resamples")
print(f"  all 9 metrics, vectorised : {t_all:.3f} s")
print(f"  AP only, vectorised       : {t_ap:.3f} s")
print(f"  AP only, sklearn loop     : {t_loop:.3f} s   (ratio loop/vectorised AP = {t_loop / t_ap:.1f}x)")
print(f"  AP median vectorised {res_ap['AP']['median']:.3f} vs loop {100 * np.median(aps):.3f} (different resamples)")
