"""Render a run's report: ``report.html`` (one self-contained file a person can read, images embedded) and
the metric tables printed in the terminal, from ``report.json`` and the files of the run directory.

The numbers come from ``report.json``, written by the pipeline (:mod:`fairlatent.pipeline.summary`); this
module never sees a live pipeline, so the report sits above the pipeline in the layering without a cycle and
a finished run folder can be re-rendered on its own (``build_report(run_dir)``).

Every user-controlled string (attribute names, paths, run names) is HTML-escaped by jinja2's autoescape.
"""

from __future__ import annotations

import base64
import io
import os
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
from rich.console import Console
from rich.table import Table

from fairlatent.errors import FairlatentError
from fairlatent.utils.io import read_json, write_text

REPORT_JSON = "report.json"  # the file fairlatent.pipeline.summary writes

HEADLINE = ["AP", "DEO", "BA", "KL", "DP", "EOdds", "acc", "worst_group_acc"]
# lower is better for the fairness metrics, higher for AP/accuracy
LOWER_IS_BETTER = {"DEO", "BA", "KL", "DP", "EOpp", "EOdds"}
DISPLAY = {"worst_group_acc": "worst-group acc"}


def _png_b64(png: bytes) -> str:
    return base64.b64encode(png).decode("ascii")


def _grid_png(images: np.ndarray, nrow: int, scale: int) -> bytes:
    from PIL import Image

    from fairlatent.utils.images import image_grid

    grid = image_grid(images, nrow=nrow)
    img = Image.fromarray(grid)
    img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def fmt_interval(m: dict[str, float]) -> str:
    return f"{m['median']:.1f} [{m['lo']:.1f}, {m['hi']:.1f}]"


def metric_table(methods: dict[str, Any], split: str, metrics: list[str] = HEADLINE) -> Table:
    """The terminal table: one row per metric, one column per method, ``median [95 % interval]``.

    Metrics run down the rows so the table stays readable in an 80-column terminal with several methods.
    """
    names = [m for m, res in methods.items() if split in res]
    table = Table(title=f"{split}: median [95% bootstrap interval]; percent, KL in nats")
    table.add_column("metric", style="bold")
    for name in names:
        table.add_column(name, justify="right", no_wrap=True)
    for metric in metrics:
        arrow = "↓" if metric in LOWER_IS_BETTER else "↑"
        table.add_row(f"{DISPLAY.get(metric, metric)} {arrow}", *[fmt_interval(methods[n][split][metric]) if metric in methods[n][split]
                                              else "–" for n in names])
    return table


def render_html(report: dict[str, Any], figures: dict[str, str], *, run_dir: str) -> str:
    """The self-contained HTML page. Every string from the report is escaped (jinja2 autoescape)."""
    env = jinja2.Environment(loader=jinja2.PackageLoader("fairlatent.report", "templates"),
                             autoescape=jinja2.select_autoescape(["html", "j2"], default=True),
                             undefined=jinja2.StrictUndefined)
    env.filters["interval"] = fmt_interval
    evaluation = report["methods"]
    return env.get_template("report.html.j2").render(
        report=report, figures=figures, metrics=HEADLINE, lower_is_better=LOWER_IS_BETTER, run_dir=run_dir,
        splits=[s for s in ("test", "test_balanced") if any(s in r for r in evaluation.values())])


def paired_table(methods: dict[str, Any], split: str, metrics: tuple[str, ...] = ("AP", "DEO", "BA", "EOdds")) -> Table:
    """Method − baseline on identical bootstrap resamples: median [95 % interval], and P(better)."""
    table = Table(title=f"{split}: method − baseline on the same resamples; median [95% interval] (P better)")
    table.add_column("method", style="bold")
    for metric in metrics:
        table.add_column(f"Δ{metric}", justify="right")
    for name, res in methods.items():
        paired = res.get("paired_vs_baseline", {}).get(split)
        if not paired:
            continue
        table.add_row(name, *[f"{paired[m]['median']:+.1f} [{paired[m]['lo']:+.1f}, {paired[m]['hi']:+.1f}] "
                              f"({paired[m]['p_better']:.0%})" for m in metrics])
    return table


def load_report(run_dir: str | os.PathLike) -> dict[str, Any]:
    """``report.json`` of a finished run (written by :func:`fairlatent.pipeline.summary.write_summary`)."""
    path = Path(run_dir) / REPORT_JSON
    if not path.is_file():
        raise FairlatentError(f"{path}: no report.json; run the pipeline in {run_dir} first (`fairlatent run`)")
    return read_json(path)


def report_figures(report: dict[str, Any], run_dir: str | os.PathLike) -> dict[str, str]:
    """The report's figures as base64 PNGs, drawn from files in the run directory that ``report["files"]``
    names: score histograms and metric bars (evaluation scores), the G(z)/G(z') pairs (the pair data set),
    generator samples, and real training images (the data set at ``report["data"]["path"]``)."""
    from fairlatent.data.dataset import load_dataset
    from fairlatent.report import plots

    run_dir = Path(run_dir)
    files = report.get("files", {})
    methods = list(report["methods"])
    t, g = report["target"], report["protected"]
    figures: dict[str, str] = {}
    scores = np.load(run_dir / files["scores"])
    for split in ("test", "test_balanced"):
        if f"_y/{split}" not in scores:
            continue
        method_scores = {m: scores[f"{m}/{split}"] for m in methods}
        figures[f"hist_{split}"] = _png_b64(plots.score_histograms(
            method_scores, scores[f"_y/{split}"], scores[f"_g/{split}"], target=t, protected=g))
        figures[f"bars_{split}"] = _png_b64(plots.metric_bars(report["methods"], ["AP", "DEO", "BA", "KL"], split))
    if "pairs" in files:
        pds = load_dataset(run_dir / files["pairs"])
        n = len(pds) // 2
        rng = np.random.default_rng(report["config"]["seed"])
        pick = np.sort(rng.choice(n, size=min(16, n), replace=False))
        imgs = np.stack([np.asarray(pds.images[i]) for i in pick] + [np.asarray(pds.images[n + i]) for i in pick])
        # row 1: G(z), row 2: G(z') — column k is one pair
        figures["pairs"] = _png_b64(_grid_png(imgs, nrow=len(pick), scale=max(1, 96 // imgs.shape[1])))
    if "gan_samples" in files:
        samples = np.load(run_dir / files["gan_samples"])
        figures["gan_samples"] = _png_b64(_grid_png(samples, nrow=16, scale=max(1, 64 // samples.shape[1])))
    data = load_dataset(report["data"]["path"])
    real_idx = data.split_indices("train")[:64]
    figures["real_samples"] = _png_b64(_grid_png(np.asarray(data.images[np.sort(real_idx)]), nrow=16,
                                                 scale=max(1, 64 // data.image_size)))
    return figures


def print_summary(report: dict[str, Any], run_dir: str | os.PathLike, console: Console) -> None:
    """The terminal view of a report: metric and paired tables per split, the latent line, the report path."""
    evaluation = report["methods"]
    for split in ("test", "test_balanced"):
        console.print(metric_table(evaluation, split))
        if any("paired_vs_baseline" in r for r in evaluation.values()):
            console.print(paired_table(evaluation, split))
    if "latent" in report:
        lat = report["latent"]
        console.print(f"latent: h_t held-out acc {lat['h_t_heldout_acc']:.3f}, h_g held-out acc "
                      f"{lat['h_g_heldout_acc']:.3f}, cos θ {lat['cos_theta']:.3f}; {lat['pairs']} pairs, "
                      f"f_g flipped {lat['flip_rate_g']:.1%}, f_t kept {lat['keep_rate_t']:.1%}")
    console.print(f"report: {Path(run_dir) / 'report.html'}  ({report['timings_s']['total']:.0f} s)")


def build_report(run_dir: str | os.PathLike, *, console: Console | None = None) -> dict[str, Any]:
    """Render ``run_dir/report.html`` from ``run_dir/report.json`` and the run's files, print the tables to
    ``console`` (a new one when None) and return the report dict. Needs no live pipeline: any finished run
    folder can be re-rendered."""
    report = load_report(run_dir)
    html = render_html(report, report_figures(report, run_dir), run_dir=str(run_dir))
    write_text(Path(run_dir) / "report.html", html)
    print_summary(report, run_dir, console or Console())
    return report


__all__ = ["HEADLINE", "LOWER_IS_BETTER", "build_report", "fmt_interval", "load_report", "metric_table",
           "paired_table", "print_summary", "render_html", "report_figures"]
