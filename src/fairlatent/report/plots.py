"""Figures for the report, rendered with matplotlib's Agg backend to PNG bytes."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def score_histograms(scores: dict[str, np.ndarray], y: np.ndarray, g: np.ndarray, *, target: str,
                     protected: str, bins: int = 30) -> bytes:
    """Paper-style figure: target-score distributions per protected group, one column per method.

    Top row: images whose true target is 1; bottom row: target 0. A fair classifier draws the two protected
    groups' histograms on top of each other in each panel.
    """
    methods = list(scores)
    fig, axes = plt.subplots(2, len(methods), figsize=(3.2 * len(methods), 4.6), squeeze=False, sharex=True)
    edges = np.linspace(0, 1, bins + 1)
    for j, m in enumerate(methods):
        for i, t in enumerate((1, 0)):
            ax = axes[i, j]
            for gv, colour in ((0, "tab:blue"), (1, "tab:orange")):
                sel = (y == t) & (g == gv)
                if sel.any():
                    ax.hist(scores[m][sel], bins=edges, density=True, alpha=0.55, color=colour,
                            label=f"{protected}={gv} (n={int(sel.sum())})")
            ax.set_title(f"{m}\n{target}={t}", fontsize=9)
            ax.tick_params(labelsize=7)
            if i == 1:
                ax.set_xlabel(f"score for {target}", fontsize=8)
            if j == 0:
                ax.set_ylabel("density", fontsize=8)
            ax.legend(fontsize=6)
    fig.tight_layout()
    return _png(fig)


def metric_bars(methods: dict[str, dict], metrics: list[str], split: str) -> bytes:
    """Median and 95 % interval of each metric per method, for one evaluation split."""
    names = list(methods)
    fig, axes = plt.subplots(1, len(metrics), figsize=(2.6 * len(metrics), 2.8), squeeze=False)
    for k, metric in enumerate(metrics):
        ax = axes[0, k]
        med = [methods[m][split][metric]["median"] for m in names]
        lo = [methods[m][split][metric]["median"] - methods[m][split][metric]["lo"] for m in names]
        hi = [methods[m][split][metric]["hi"] - methods[m][split][metric]["median"] for m in names]
        ax.bar(range(len(names)), med, yerr=[lo, hi], capsize=3, color="tab:gray")
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(names, rotation=35, ha="right", fontsize=7)
        ax.set_title(metric, fontsize=9)
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    return _png(fig)
