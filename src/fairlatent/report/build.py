"""Assemble a run's report: ``report.json`` (machine-readable), ``report.html`` (one self-contained file a
person can read, images embedded) and the metric table printed in the terminal.

Every user-controlled string (attribute names, paths, run names) is HTML-escaped by jinja2's autoescape.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2
import numpy as np
from rich.console import Console
from rich.table import Table

from fairlatent.utils.io import write_json, write_text

if TYPE_CHECKING:  # pragma: no cover
    from fairlatent.pipeline.run import Pipeline

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


def build_report(pipe: "Pipeline", total_seconds: float) -> dict[str, Any]:
    from fairlatent.data.dataset import load_dataset

    st = pipe.stages.results
    run_dir = pipe.run_dir
    data = pipe._data()
    t, g = pipe.t, pipe.g
    evaluation = {m: st["evaluate"].outputs[m] for m in pipe.cfg.methods}

    cells = {}
    for split in ("train", "val", "test", "test_balanced"):
        idx = data.split_indices(split, required=False)
        if idx.size:
            tt, gg = data.labels(t, idx), data.labels(g, idx)
            cells[split] = {"n": int(idx.size), "P(g=t)": float((tt == gg).mean()),
                            **{f"t{a}_g{b}": int(((tt == a) & (gg == b)).sum()) for a in (0, 1) for b in (0, 1)}}

    report: dict[str, Any] = {
        "config": pipe.cfg.model_dump(),
        "target": t,
        "protected": g,
        "data": {"path": st["data"].outputs["path"], "cells": cells},
        "methods": evaluation,
    }
    if "hyperplanes" in st:
        hp, pairs = st["hyperplanes"].outputs, st["pairs"].outputs
        comp = pairs.get("complementary", next(iter(pairs.values())))
        report["latent"] = {
            "h_t_heldout_acc": hp["h_t"]["heldout_acc"], "h_g_heldout_acc": hp["h_g"]["heldout_acc"],
            "h_t_fit_acc": hp["h_t"]["fit_acc"], "h_g_fit_acc": hp["h_g"]["fit_acc"],
            "cos_theta": hp["cos_theta"],
            "angle_deg": float(np.degrees(np.arccos(np.clip(hp["cos_theta"], -1, 1)))), "pairs": comp["pairs"], "flip_rate_g": comp["flip_rate_g"],
            "keep_rate_t": comp["keep_rate_t"], "p_ft1_given_fg": comp["p_ft1_given_fg"],
            "agreement_dropped": comp["agreement_dropped"], "edits": pairs,
            "labeler_weights": st["labeler"].outputs.get("weights", "none"),
            "generated_label_rates": {"t": st["latents"].outputs["rate_t"], "g": st["latents"].outputs["rate_g"],
                                      "cells": st["latents"].outputs["cells"]},
        }
    if "generative" in st:
        report["generative"] = st["generative"].outputs
    report["timings_s"] = {**pipe.stages.timings(), "total": round(total_seconds, 2)}
    write_json(run_dir / "report.json", report)

    # ---- figures
    from fairlatent.report import plots

    figures: dict[str, str] = {}
    scores = np.load(st["evaluate"].dir / "scores.npz")
    for split in ("test", "test_balanced"):
        if f"_y/{split}" not in scores:
            continue
        method_scores = {m: scores[f"{m}/{split}"] for m in pipe.cfg.methods}
        figures[f"hist_{split}"] = _png_b64(plots.score_histograms(
            method_scores, scores[f"_y/{split}"], scores[f"_g/{split}"], target=t, protected=g))
        figures[f"bars_{split}"] = _png_b64(plots.metric_bars(evaluation, ["AP", "DEO", "BA", "KL"], split))
    pair_rows: list[dict[str, Any]] = []
    if "pairs" in st:
        pds = load_dataset(st["pairs"].dir / "complementary")
        n = len(pds) // 2
        rng = np.random.default_rng(pipe.cfg.seed)
        pick = np.sort(rng.choice(n, size=min(16, n), replace=False))
        imgs = np.stack([np.asarray(pds.images[i]) for i in pick] + [np.asarray(pds.images[n + i]) for i in pick])
        # row 1: G(z), row 2: G(z') — column k is one pair
        figures["pairs"] = _png_b64(_grid_png(imgs, nrow=len(pick), scale=max(1, 96 // imgs.shape[1])))
        gen = pipe._generator()
        samples, _ = gen.sample(64, seed=pipe.cfg.seed)
        figures["gan_samples"] = _png_b64(_grid_png(samples, nrow=16, scale=max(1, 64 // samples.shape[1])))
    real_idx = data.split_indices("train")[:64]
    figures["real_samples"] = _png_b64(_grid_png(np.asarray(data.images[np.sort(real_idx)]), nrow=16,
                                                 scale=max(1, 64 // data.image_size)))

    html = render_html(report, figures, run_dir=str(run_dir))
    write_text(run_dir / "report.html", html)

    console = pipe.console
    for split in ("test", "test_balanced"):
        console.print(metric_table(evaluation, split))
        if any("paired_vs_baseline" in r for r in evaluation.values()):
            console.print(paired_table(evaluation, split))
    if "latent" in report:
        lat = report["latent"]
        console.print(f"latent: h_t held-out acc {lat['h_t_heldout_acc']:.3f}, h_g held-out acc "
                      f"{lat['h_g_heldout_acc']:.3f}, cos θ {lat['cos_theta']:.3f}; {lat['pairs']} pairs, "
                      f"f_g flipped {lat['flip_rate_g']:.1%}, f_t kept {lat['keep_rate_t']:.1%}")
    console.print(f"report: {Path(run_dir) / 'report.html'}  ({total_seconds:.0f} s)")
    return report
