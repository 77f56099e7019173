"""The benchmark's tables: ``results.md`` (rewritten after every finished target) and the terminal summary.

Numbers are the bootstrap medians with their 95 % intervals (percent; KL in nats), as the pipeline reports
them. Averages over targets are plain means of the per-target medians, as the paper averages its categories.
With several seeds, each target's medians are also summarised across seeds (mean ± sd, n seeds), and the
text says what a seed resamples (``seed_scope``: the split, GAN and f_g too, or only the pipeline).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from rich.table import Table

from fairlatent.benchmark.paper import PAPER_AVERAGES, paper_overall

METRICS = ("AP", "DEO", "BA", "KL")
LOWER = {"DEO", "BA", "KL"}


def _iv(m: dict[str, float] | None, digits: int = 1) -> str:
    if not m or m.get("median") is None or np.isnan(m["median"]):
        return "–"
    return f"{m['median']:.{digits}f} [{m['lo']:.{digits}f}, {m['hi']:.{digits}f}]"


def _f(x: float | None, digits: int = 2) -> str:
    return "–" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:.{digits}f}"


def method_means(runs: dict[str, Any], methods: list[str]) -> dict[str, dict[str, float]]:
    """Mean over runs of each method's median of each metric."""
    out: dict[str, dict[str, float]] = {}
    for m in methods:
        vals = {k: [r["methods"][m][k]["median"] for r in runs.values() if m in r["methods"] and k in r["methods"][m]]
                for k in METRICS}
        out[m] = {k: float(np.nanmean(v)) if v else float("nan") for k, v in vals.items()}
        out[m]["n"] = len([r for r in runs.values() if m in r["methods"]])
    return out


def _rel(new: float, base: float) -> str:
    if base == 0 or np.isnan(base) or np.isnan(new):
        return "–"
    return f"{100 * (new - base) / abs(base):+.0f} %"


def average_rows(runs: dict[str, Any], methods: list[str]) -> list[tuple[str, int, list[str]]]:
    """(method, runs, one cell per metric): the mean, and for the fairness metrics its change vs baseline."""
    means = method_means(runs, methods)
    return [(m, means[m]["n"], [_f(means[m][k]) + ("" if m == "baseline" or "baseline" not in means or k == "AP"
                                                   else f" ({_rel(means[m][k], means['baseline'][k])})")
                                for k in METRICS]) for m in methods]


def averages_table(results: dict[str, Any], methods: list[str]) -> Table:
    runs = results.get("runs", {})
    table = Table(title=f"mean over {len(runs)} target runs of the test-split medians (percent; KL nats)")
    table.add_column("method", style="bold")
    for k in METRICS:
        table.add_column(k + (" ↓" if k in LOWER else " ↑"), justify="right")
    for m, _, cells in average_rows(runs, methods):
        table.add_row(m, *cells)
    return table


def seed_behaviour(cfg: dict[str, Any]) -> str:
    """One sentence: what the seeds of these results resample (``seed_scope``; results written before the
    field existed used one split, GAN and f_g for every seed)."""
    seeds = cfg.get("seeds", [0])
    scope = cfg.get("seed_scope", "pipeline")
    if scope == "all":
        return (f"Seed behaviour: `seed_scope = \"all\"` — each of the {len(seeds)} seed(s) {seeds} draws its own "
                "identity-disjoint split, its own GAN and its own protected classifier f_g, then its own pipeline "
                "(classifiers, latent samples); the spread across seeds includes the GAN draw.")
    return (f"Seed behaviour: `seed_scope = \"pipeline\"` — one split, one GAN and one protected classifier f_g "
            f"(seed {seeds[0]}) are shared by the {len(seeds)} seed(s) {seeds}; a seed resamples only the pipeline "
            "(classifiers, latent samples), so the spread across seeds leaves out the split and the GAN draw.")


def seed_aggregates(runs: dict[str, Any], methods: list[str]) -> dict[str, dict[str, dict[str, Any]]]:
    """``{target: {method: {metric: {"mean", "sd", "n"}}}}`` over the seeds of each target's runs; sd is the
    sample standard deviation (ddof = 1; None for one seed)."""
    by_target: dict[str, list[dict[str, Any]]] = {}
    for key, r in runs.items():
        by_target.setdefault(r.get("target", key.split("/")[0]), []).append(r)
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for t, rs in by_target.items():
        out[t] = {}
        for m in methods:
            cells = {}
            for k in METRICS:
                v = np.array([r["methods"][m][k]["median"] for r in rs
                              if m in r["methods"] and k in r["methods"][m] and r["methods"][m][k]["median"] is not None],
                             dtype=float)
                v = v[~np.isnan(v)]
                cells[k] = {"mean": float(v.mean()) if len(v) else None,
                            "sd": float(v.std(ddof=1)) if len(v) > 1 else None, "n": int(len(v))}
            out[t][m] = cells
    return out


def _msd(c: dict[str, Any], digits: int) -> str:
    if c["mean"] is None:
        return "–"
    return f"{c['mean']:.{digits}f} ± {c['sd']:.{digits}f}" if c["sd"] is not None else f"{c['mean']:.{digits}f} ± –"


def _metric_cells(res: dict[str, Any]) -> str:
    """``| AP | DEO | BA | KL |`` cells of one method's result: median [95 % interval]."""
    return " | ".join(_iv(res.get(k), 2 if k == "KL" else 1) for k in METRICS)


def machine_line(results: dict[str, Any]) -> str:
    mach = results.get("machine", {})
    return (f"Machine: {mach.get('cpu', '?')}, {mach.get('cores', '?')} cores, torch threads "
            f"{mach.get('torch_threads', '?')}, CUDA: {mach.get('cuda') or 'none'}; torch {mach.get('torch', '?')}.")


def results_markdown(results: dict[str, Any]) -> str:
    cfg = results.get("config", {})
    methods = cfg.get("methods", [])
    runs = results.get("runs", {})
    lines: list[str] = ["# CelebA benchmark results", ""]
    lines += [machine_line(results), seed_behaviour(cfg), "",
              f"Protected attribute: `{cfg.get('protected')}`; image size {cfg.get('size')}; seeds {cfg.get('seeds')}; "
              f"finished target runs: {len(runs)}" + (f"; wall time of the last invocation {results['total_s'] / 60:.1f} min "
                                                     "(a resumed run skips finished work; stage times below)"
                                                     if "total_s" in results else " (run in progress)") + ".", ""]
    sel = results.get("targets", {})
    if sel:
        lines += [f"## Targets (≥ {sel['min_positives']} positive training images in each protected group)", "",
                  "| target | positives g=0 | positives g=1 | used |", "|---|---:|---:|---|"]
        for t, c in sel["counts"].items():
            lines.append(f"| {t} | {c['g0']} | {c['g1']} | {'yes' if t in sel['chosen'] else 'no'} |")
        lines.append("")

    if runs and "baseline" in methods:
        lines += ["## Averages over targets (test split; mean of per-target medians)", "",
                  "| method | n | AP ↑ | DEO ↓ | BA ↓ | KL ↓ |", "|---|---:|---:|---:|---:|---:|"]
        for m, n, cells in average_rows(runs, methods):
            lines.append(f"| {m} | {n} | " + " | ".join(cells) + " |")
        po = paper_overall()
        lines += ["", "The paper (ResNet-50, 128 px ProGAN, 162k CelebA training images; REFERENCE §1), baseline / "
                  "latent de-biasing:", "", "| category | AP | DEO | BA | KL |", "|---|---|---|---|---|"]
        for cat, vals in PAPER_AVERAGES.items():
            lines.append(f"| {cat} | " + " | ".join(f"{vals[k][0]} / {vals[k][1]} ({_rel(vals[k][1], vals[k][0])})"
                                                    if k != "AP" else f"{vals[k][0]} / {vals[k][1]}"
                                                    for k in METRICS) + " |")
        lines.append("| all 26 (size-weighted) | " + " | ".join(
            f"{po[k][0]} / {po[k][1]} ({_rel(po[k][1], po[k][0])})" if k != "AP" else f"{po[k][0]} / {po[k][1]}"
            for k in METRICS) + " |")
        # ours by the paper's categories
        cats = sorted({r.get("category") or "–" for r in runs.values()})
        lines += ["", "Ours by the paper's categories, baseline / latent_debias:", "",
                  "| category | targets | AP | DEO | BA | KL |", "|---|---:|---|---|---|---|"]
        for cat in cats:
            sub = {k: r for k, r in runs.items() if (r.get("category") or "–") == cat}
            mm = method_means(sub, [m for m in ("baseline", "latent_debias") if m in methods])
            if "latent_debias" in mm:
                lines.append(f"| {cat} | {len(sub)} | " + " | ".join(
                    f"{_f(mm['baseline'][k], 1)} / {_f(mm['latent_debias'][k], 1)}" for k in METRICS) + " |")
        lines.append("")

        agg = seed_aggregates(runs, methods)
        n_seeds = len(cfg.get("seeds", [0]))
        lines += ["## Per target across seeds (test-split medians: mean ± sd over the seeds; n = seeds)", "",
                  seed_behaviour(cfg), "",
                  "| target | method | n | AP ↑ | DEO ↓ | BA ↓ | KL ↓ |", "|---|---|---:|---|---|---|---|"]
        for t, per in agg.items():
            for m in methods:
                cells = per[m]
                if not any(c["n"] for c in cells.values()):
                    continue
                n = max(c["n"] for c in cells.values())
                lines.append(f"| {t} | {m} | {n}{'' if n == n_seeds else f' of {n_seeds}'} | "
                             + " | ".join(_msd(cells[k], 2 if k == "KL" else 1) for k in METRICS) + " |")
        lines.append("")
        lines += ["## Per target (test split: median [95 % bootstrap interval])", "",
                  "| target | method | AP ↑ | DEO ↓ | BA ↓ | KL ↓ | ΔDEO vs baseline (P better) |",
                  "|---|---|---|---|---|---|---|"]
        for key, r in runs.items():
            for m in methods:
                if m not in r["methods"]:
                    continue
                res = r["methods"][m]
                vs = res.get("vs_baseline", {}).get("DEO")
                d = f"{vs['median']:+.1f} [{vs['lo']:+.1f}, {vs['hi']:+.1f}] ({vs['p_better']:.0%})" if vs else ""
                lines.append(f"| {key} | {m} | {_metric_cells(res)} | {d} |")
        lines.append("")
        lines += diagnostics_lines(runs, cfg.get("protected", "Male"))
    failed = results.get("failed", {})
    if failed:
        lines += ["## Failed target runs", "", "A rerun with the same settings skips them (the same seeds fail the "
                  "same way); delete `done/<run>.json` in the benchmark folder to try one again.", ""]
        lines += [f"- `{k}`: {v}" for k, v in failed.items()] + [""]
    skew = results.get("skew", {})
    if skew:
        lines += ["## Controlled skew (train split subsampled; same size at every skew)", "",
                  "| run | method | AP ↑ | DEO ↓ | BA ↓ | KL ↓ |", "|---|---|---|---|---|---|"]
        for key, r in skew.items():
            for m in methods:
                if m in r["methods"]:
                    lines.append(f"| {key} | {m} | {_metric_cells(r['methods'][m])} |")
        lines.append("")
    lines += timing_lines(results)
    return "\n".join(lines) + "\n"


# the latent diagnostics every benchmark's table shows: their legend and their columns
LATENT_LEGEND = ("h_t, h_g: held-out accuracy of the latent hyperplanes against the labelers' labels of G(z); "
                 "flip: share of pairs whose f_g label flipped; keep: share whose f_t label stayed; ")
LATENT_COLUMNS = "h_t acc | h_g acc | cos θ | flip | keep"
LATENT_FIELDS = ("h_t_heldout_acc", "h_g_heldout_acc", "cos_theta", "flip_rate_g", "keep_rate_t")


def diagnostics_lines(runs: dict[str, Any], protected: str) -> list[str]:
    """Why latent de-biasing did or did not help: hyperplanes, edits, and the GAN's coverage of each cell."""
    lines = ["## Diagnostics per target", "",
             LATENT_LEGEND + "rare cell: the (target=1) cell of the protected group where the target is rarer, among G(z) as "
             "labelled, and its precision / recall / coverage against the real images of that cell (domain "
             "features of the protected classifier).", "",
             f"| run | {LATENT_COLUMNS} | G(z) cells t1g0 / t1g1 | rare cell P / R / C | G(z) FID all |",
             "|---|---:|---:|---:|---:|---:|---|---|---:|"]
    for key, r in runs.items():
        lat = r.get("latent")
        if not lat:
            continue
        cells = lat["generated_label_rates"]["cells"]
        n = max(1, sum(cells.values()))
        rows = {row["name"]: row for row in r.get("generative", [])}
        c = r["cells"].get("train", {})
        rare_g = 0 if c.get("t1_g0", 0) < c.get("t1_g1", 0) else 1
        rare = rows.get(f"G(z) · {r['target']}=1, {protected}={rare_g}")
        allrow = rows.get("G(z) · all")
        lines.append(f"| {key} | {_f(lat['h_t_heldout_acc'])} | {_f(lat['h_g_heldout_acc'])} | {_f(lat['cos_theta'])} "
                     f"| {_f(lat['flip_rate_g'])} | {_f(lat['keep_rate_t'])} | "
                     f"{cells['t1_g0'] / n:.1%} / {cells['t1_g1'] / n:.1%} | "
                     + (f"{_f(rare['precision'])} / {_f(rare['recall'])} / {_f(rare['coverage'])}" if rare else "–")
                     + f" | {_f(allrow['FID'], 1) if allrow else '–'} |")
    lines.append("")
    return lines


def timing_lines(results: dict[str, Any]) -> list[str]:
    lines = ["## Wall time per stage (seconds)", ""]
    shared = results.get("shared_timings_s", {})
    if shared:
        lines.append("Shared: " + ", ".join(f"{k} {v:.0f}" for k, v in shared.items()) + ".")
    runs = list(results.get("runs", {}).values()) + list(results.get("skew", {}).values())
    if runs:
        stages: dict[str, list[float]] = {}
        for r in runs:
            for k, v in r.get("timings_s", {}).items():
                stages.setdefault(k, []).append(v)
        lines.append(f"Per target run (mean over {len(runs)} runs; sum in brackets): " + ", ".join(
            f"{k} {np.mean(v):.0f} ({np.sum(v):.0f})" for k, v in stages.items() if k != "total")
            + f". Sum of all stage times: {(sum(shared.values()) + sum(np.sum(v) for k, v in stages.items() if k != 'total')) / 60:.0f} min.")
    lines.append("")
    return lines
