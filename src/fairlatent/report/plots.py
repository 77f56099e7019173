"""Figures for the report, rendered with matplotlib's Agg backend to PNG bytes.

Every label is plain text: attribute and method names come from the user's data, and matplotlib would
read an attribute called ``income_$50k_to_$100k`` as mathtext (and raise after the whole pipeline has run)
or drop a legend entry whose label starts with ``_``. :func:`plain_text` switches mathtext off for a whole
figure, and legends are given their labels explicitly.
"""

from __future__ import annotations

import functools
import io
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def plain_text(fn):
    """Run a figure-drawing function with mathtext off (``text.parse_math``): ``$``, ``^``, ``_`` and ``\\``
    in labels are drawn as typed."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with matplotlib.rc_context({"text.parse_math": False}):
            return fn(*args, **kwargs)

    return wrapper


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


@plain_text
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
            handles, labels = [], []
            for gv, colour in ((0, "tab:blue"), (1, "tab:orange")):
                sel = (y == t) & (g == gv)
                if sel.any():
                    *_, patches = ax.hist(scores[m][sel], bins=edges, density=True, alpha=0.55, color=colour)
                    handles.append(patches[0])
                    labels.append(f"{protected}={gv} (n={int(sel.sum())})")
            ax.set_title(f"{m}\n{target}={t}", fontsize=9)
            ax.tick_params(labelsize=7)
            if i == 1:
                ax.set_xlabel(f"score for {target}", fontsize=8)
            if j == 0:
                ax.set_ylabel("density", fontsize=8)
            if handles:  # explicit labels: one starting with "_" would otherwise be dropped silently
                ax.legend(handles, labels, fontsize=6)
    fig.tight_layout()
    return _png(fig)


def _finite(x) -> float | None:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) else None


@plain_text
def metric_bars(methods: dict[str, dict], metrics: list[str], split: str) -> bytes:
    """Median and 95 % interval of each metric per method, for one evaluation split.

    A method whose median is undefined (None/NaN in report.json) gets no bar and "n/a" under it; an
    undefined interval, no error bar."""
    names = [m for m in methods if split in methods[m]]
    fig, axes = plt.subplots(1, len(metrics), figsize=(2.6 * len(metrics), 2.8), squeeze=False)
    for k, metric in enumerate(metrics):
        ax = axes[0, k]
        stats = [methods[m][split].get(metric) or {} for m in names]
        med = [_finite(s.get("median")) for s in stats]
        lo = [_finite(s.get("lo")) for s in stats]
        hi = [_finite(s.get("hi")) for s in stats]
        ok = [md is not None for md in med]
        err_lo = [md - lw if md is not None and lw is not None else 0.0 for md, lw in zip(med, lo)]
        err_hi = [hg - md if md is not None and hg is not None else 0.0 for md, hg in zip(med, hi)]
        ax.bar(range(len(names)), [md if md is not None else 0.0 for md in med], yerr=[err_lo, err_hi], capsize=3,
               color=["tab:gray" if k else "none" for k in ok])
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels([n if k else f"{n} (n/a)" for n, k in zip(names, ok)], rotation=35, ha="right",
                           fontsize=7)
        ax.set_title(metric, fontsize=9)
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    return _png(fig)
