"""How a truncation sweep is shown: the two-panel figure (``sweep.png``) and the terminal table.

The rows come from :func:`fairlatent.metrics.generative.truncation.truncation_sweep`; presenting them is the
report layer's job, so the CLI command only parses arguments and calls.
"""

from __future__ import annotations

import math
import os
from typing import Any

from rich.markup import escape
from rich.table import Table

from fairlatent.utils.io import atomic_file

COLUMNS = ("fid", "precision", "recall", "density", "coverage")


def plot_truncation_sweep(rows: list[dict[str, Any]], path: str | os.PathLike) -> None:
    """Two panels: FID, and precision/recall/density/coverage, against τ (untruncated drawn at the right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    finite = [r["truncation"] for r in rows if r["truncation"] is not None]
    right = (max(finite) * 1.25) if finite else 1.0
    xs = [r["truncation"] if r["truncation"] is not None else right for r in rows]
    with matplotlib.rc_context({"text.parse_math": False}):  # feature names and paths are plain text
        _draw_sweep(plt, rows, xs, path)


def _draw_sweep(plt, rows, xs, path) -> None:
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.plot(xs, [_nan(r["fid"]) for r in rows], "o-", color="black")
    ax1.set_xlabel("truncation τ")
    ax1.set_ylabel("FID")
    for key in ("precision", "recall", "density", "coverage"):
        ax2.plot(xs, [_nan(r[key]) for r in rows], "o-", label=key)
    ax2.set_xlabel("truncation τ")
    ax2.legend()
    for ax in (ax1, ax2):
        ax.set_xticks(xs, [f"{x:g}" if r["truncation"] is not None else "none" for x, r in zip(xs, rows)])
    fig.suptitle(f"fidelity/diversity vs truncation ({rows[0]['features']})" if rows else "")
    fig.tight_layout()
    with atomic_file(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def _nan(x) -> float:
    """A value to plot: None (null in sweep.json) as NaN, which matplotlib leaves as a gap."""
    return float("nan") if x is None else float(x)


def _cell(x) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.4g}"


def truncation_table(rows: list[dict[str, Any]], title: str) -> Table:
    """One row per τ ("none" = untruncated): FID, precision, recall, density, coverage (None/NaN as "n/a")."""
    table = Table(title=escape(title))
    for col in ("τ", "FID", "precision", "recall", "density", "coverage"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row("none" if r["truncation"] is None else f"{r['truncation']:g}",
                      *(_cell(r.get(k)) for k in COLUMNS))
    return table


__all__ = ["plot_truncation_sweep", "truncation_table"]
