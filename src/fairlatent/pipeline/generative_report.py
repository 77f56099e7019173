"""Quality of the synthetic data the de-biasing trains on: FID/KID/precision/recall/density/coverage of
G(z) and G(z') against the real training images, overall and per (target, protected) cell.

A GAN that cannot draw the rare cells cannot de-bias them, so the per-cell rows matter more than the overall
one. Features are the labeler's penultimate layer ("domain" features): it was trained on the real data, and
ImageNet features can miss what matters in faces. Features are extracted once per set, then subset by cell.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fairlatent.data.dataset import Dataset

COLUMNS = ["n_real", "n_fake", "FID", "KID", "precision", "recall", "density", "coverage"]


def generative_metrics_by_cell(*, real: Dataset, pairs: Dataset, labeler_dir: str | Path, target: str,
                               protected: str, n: int, seed: int, cache_dir: Path,
                               progress: bool = True) -> dict[str, Any]:
    from fairlatent.models.classifier import load_classifier

    clf = load_classifier(labeler_dir)
    rng = np.random.default_rng(seed)
    tr = real.split_indices("train")
    tr = np.sort(rng.choice(tr, size=min(n, tr.size), replace=False))
    half = len(pairs) // 2
    pick = np.sort(rng.choice(half, size=min(n, half), replace=False))

    def feats(ds: Dataset, idx: np.ndarray) -> np.ndarray:
        out = [clf.features(np.asarray(ds.images[idx[i:i + 512]])) for i in range(0, idx.size, 512)]
        return np.concatenate(out).astype(np.float64)

    f_real = feats(real, tr)
    t_real, g_real = real.labels(target, tr), real.labels(protected, tr)
    sets = {"G(z)": pick, "G(z')": pick + half}
    rows: list[dict[str, Any]] = []
    for name, idx in sets.items():
        f_fake = feats(pairs, idx)
        t_fake, g_fake = pairs.labels(target, idx), pairs.labels(protected, idx)
        cells = [("all", np.ones(len(tr), bool), np.ones(len(idx), bool))]
        cells += [(f"{target}={a}, {protected}={b}", (t_real == a) & (g_real == b), (t_fake == a) & (g_fake == b))
                  for a in (0, 1) for b in (0, 1)]
        rows += [metric_row(f"{name} · {cell_name}", f_real[mr], f_fake[mf], seed) for cell_name, mr, mf in cells]
    return {"features": f"domain:{Path(labeler_dir).resolve()}", "columns": COLUMNS, "rows": rows}


def metric_row(name: str, f_real: np.ndarray, f_fake: np.ndarray, seed: int) -> dict[str, Any]:
    """One table row: the set sizes and FID/KID/precision/recall/density/coverage of ``f_fake`` against
    ``f_real`` (features), or None for each figure when either set has fewer than 10 images."""
    from fairlatent.metrics.generative import Features, compute_generative_metrics

    f_real, f_fake = np.asarray(f_real, dtype=np.float64), np.asarray(f_fake, dtype=np.float64)
    row: dict[str, Any] = {"name": name, "n_real": int(len(f_real)), "n_fake": int(len(f_fake))}
    if len(f_real) >= 10 and len(f_fake) >= 10:
        res = compute_generative_metrics(Features(f_real), Features(f_fake), fid=True, kid=True, prdc=True, seed=seed,
                                         progress=False, kid_subset_size=int(min(1000, len(f_real), len(f_fake))))
        row.update({k: pick_metric(res, k) for k in COLUMNS[2:]})
    else:
        row.update(dict.fromkeys(COLUMNS[2:]))
    return row


def pick_metric(res: dict[str, Any], key: str) -> float | None:
    """One figure of ``compute_generative_metrics``' result by its table name (None when it has none)."""
    aliases = {"FID": ("fid", "FID"), "KID": ("kid_mean", "kid", "KID"), "precision": ("precision",),
               "recall": ("recall",), "density": ("density",), "coverage": ("coverage",)}
    for k in aliases[key]:
        if k in res and res[k] is not None:
            return float(res[k])
    return None
