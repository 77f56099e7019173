"""The benchmark's tables: ``results.md`` (rewritten after every finished target) and the terminal summary.

Numbers are the bootstrap medians with their 95 % intervals (percent; KL in nats), as the pipeline reports
them. Averages over targets are plain means of the per-target medians, as the paper averages its categories.
With several seeds, each target's medians are also summarised across seeds (mean ± sd, n seeds), and the
text says what a seed resamples (``seed_scope``: the split, GAN and f_g too, or only the pipeline).

Every table reads a run's numbers through :func:`metric_interval`, and so does the machine-readable record
(:func:`fairlatent.benchmark.publish.results_record`), so the published JSON and the tables cannot disagree.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
from rich.table import Table

from fairlatent.benchmark.paper import PAPER_AVERAGES, paper_overall

METRICS = ("AP", "DEO", "BA", "KL", "EOdds")
#: the metrics the paper reports (its tables have no EOdds), for the tables set beside the paper's
PAPER_METRICS = ("AP", "DEO", "BA", "KL")
LOWER = {"DEO", "BA", "KL", "EOdds"}
#: the row of the across-seeds tables that averages over targets
ALL_TARGETS = "all targets"


def metric_interval(run: dict[str, Any], method: str, metric: str) -> dict[str, float] | None:
    """The test-split ``{"median", "lo", "hi"}`` of one method's metric in one run record, as every table
    shows it; None where the method is missing from the run, or the metric does not apply to it (AP and KL
    of a post-processing method, which makes decisions and no scores, so the record has no such key), or its
    median is undefined (null or NaN, e.g. DEO of a group without positives)."""
    res = run.get("methods", {}).get(method)
    iv = res.get(metric) if isinstance(res, dict) else None
    if not _defined(iv):
        return None
    return {q: (None if iv.get(q) is None else float(iv[q])) for q in ("median", "lo", "hi")}


def _defined(iv: Any) -> bool:
    """Whether a record's interval has a median to show (not missing, null or NaN)."""
    return isinstance(iv, dict) and iv.get("median") is not None and not np.isnan(iv["median"])


def _median(run: dict[str, Any], method: str, metric: str) -> float | None:
    iv = metric_interval(run, method, metric)
    return None if iv is None else iv["median"]


def _header(first: str) -> str:
    """``| <first> | AP ↑ | DEO ↓ | … |`` over :data:`METRICS`."""
    return f"| {first} | " + " | ".join(k + (" ↓" if k in LOWER else " ↑") for k in METRICS) + " |"


def _iv(m: dict[str, float] | None, digits: int = 1) -> str:
    if not m or m.get("median") is None or np.isnan(m["median"]):
        return "–"
    return f"{m['median']:.{digits}f} [{_f(m['lo'], digits)}, {_f(m['hi'], digits)}]"


def _f(x: float | None, digits: int = 2) -> str:
    return "–" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:.{digits}f}"


def method_means(runs: dict[str, Any], methods: list[str]) -> dict[str, dict[str, float]]:
    """Mean over runs of each method's median of each metric."""
    out: dict[str, dict[str, float]] = {}
    for m in methods:
        vals = {k: [v for r in runs.values() if (v := _median(r, m, k)) is not None] for k in METRICS}
        out[m] = {k: float(np.nanmean(v)) if v else float("nan") for k, v in vals.items()}
        out[m]["n"] = len([r for r in runs.values() if m in r["methods"]])
    return out


def _rel(new: float, base: float, digits: int = 2) -> str:
    """Change of ``new`` relative to ``base`` in percent, or "–" where ``base`` shows as zero at ``digits``
    decimals (the tables' precision): a KL of 1e-17 nats would otherwise turn a change of 0.01 into
    "+10¹⁷ %", a figure nobody can read or check against the cells beside it."""
    if np.isnan(base) or np.isnan(new) or abs(base) < 0.5 * 10.0**-digits:
        return "–"
    return f"{100 * (new - base) / abs(base):+.0f} %"


def average_rows(runs: dict[str, Any], methods: list[str]) -> list[tuple[str, int, list[str]]]:
    """(method, runs, one cell per metric): the mean, and for the fairness metrics its change vs baseline."""
    means = method_means(runs, methods)
    return [(m, means[m]["n"], [_f(means[m][k]) + ("" if m == "baseline" or "baseline" not in means or k == "AP"
                                                   or np.isnan(means[m][k])
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
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for t, rs in _by_target(runs).items():
        out[t] = {}
        for m in methods:
            out[t][m] = {k: _mean_sd([v for r in rs if (v := _median(r, m, k)) is not None]) for k in METRICS}
    return out


def _mean_sd(values: list[float]) -> dict[str, Any]:
    """``{"mean", "sd", "n"}`` of values over seeds; sd with ddof = 1 (None for fewer than two)."""
    v = np.asarray(values, dtype=float)
    return {"mean": float(v.mean()) if len(v) else None, "sd": float(v.std(ddof=1)) if len(v) > 1 else None,
            "n": int(len(v))}


def _by_target(runs: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for key, r in runs.items():
        out.setdefault(r.get("target", key.split("/")[0]), []).append(r)
    return out


def _seed_of(key: str, run: dict[str, Any]) -> Any:
    return run.get("seed", key.rsplit("/seed", 1)[-1])


def per_seed_means(runs: dict[str, Any], methods: list[str],
                   value: Callable[[dict[str, Any], str, str], float | None] | None = None,
                   metrics: tuple[str, ...] = METRICS) -> dict[str, dict[str, dict[Any, float]]]:
    """``{method: {metric: {seed: mean}}}``: per seed, the mean over that seed's targets of
    ``value(run, method, metric)`` (default: the test median of :func:`metric_interval`) for each name in
    ``metrics``; a seed without a value for that method and metric is left out."""
    value = value or _median
    by_seed: dict[Any, list[dict[str, Any]]] = {}
    for key, r in runs.items():
        by_seed.setdefault(_seed_of(key, r), []).append(r)
    out: dict[str, dict[str, dict[Any, float]]] = {}
    for m in methods:
        out[m] = {}
        for k in metrics:
            out[m][k] = {}
            for seed, rs in by_seed.items():
                v = [x for r in rs if (x := value(r, m, k)) is not None]
                if v:
                    out[m][k][seed] = float(np.mean(v))
    return out


def seed_average(runs: dict[str, Any], methods: list[str],
                 value: Callable[[dict[str, Any], str, str], float | None] | None = None,
                 metrics: tuple[str, ...] = METRICS) -> dict[str, dict[str, Any]]:
    """``{method: {metric: {"mean", "sd", "n"}}}`` of the average over targets: the per-seed means of
    :func:`per_seed_means`, then mean ± sd over the seeds (n = seeds with a value). The sd is the seed-to-seed
    spread of the target average, which is what a rerun with another seed would move, not the spread
    between targets."""
    return {m: {k: _mean_sd(list(by_seed.values())) for k, by_seed in per.items()}
            for m, per in per_seed_means(runs, methods, value, metrics).items()}


#: the group moves: each rate of the run's two protected groups, the group with the lower baseline TPR first
GROUP_MOVES = ("TPR_low", "TPR_high", "FPR_low", "FPR_high")


def _group_move(baseline: str):
    """``value(run, method, move)``: the change, in points, of one group's rate from the baseline's to the
    method's (each at its own threshold, whole test split). "low" is the group whose baseline TPR is the
    lower in that run (on CelebA with `Male`: the women for Big_Nose, the men for Attractive), so the rows
    average like with like across targets; a method that lowers the "high" group's TPR is levelling down."""
    def value(run: dict[str, Any], method: str, move: str) -> float | None:
        base = (run["methods"].get(baseline) or {}).get("rates_by_group")
        mine = (run["methods"].get(method) or {}).get("rates_by_group")
        if not base or not mine or len(base) != 2 or set(base) != set(mine):
            return None
        tpr = {a: base[a].get("TPR") for a in base}
        if any(v is None or not np.isfinite(v) for v in tpr.values()):
            return None
        low, high = sorted(base, key=lambda a: tpr[a])
        rate, side = move.split("_")
        a = low if side == "low" else high
        b, m = base[a].get(rate), mine[a].get(rate)
        return None if b is None or m is None or not np.isfinite(b) or not np.isfinite(m) else (m - b) * 100
    return value


def group_move_lines(runs: dict[str, Any], methods: list[str], protected: str,
                     baseline: str = "baseline") -> list[str]:
    """The section "Which group moved": per method, the change of each group's TPR and FPR against the
    baseline (the per-seed mean over targets, then mean ± sd over seeds), from the runs' ``rates_by_group``;
    nothing when no run has them (records written before they existed)."""
    others = [m for m in methods if m != baseline]
    avg = seed_average(runs, others, _group_move(baseline), GROUP_MOVES)
    rows = [(m, cells) for m, cells in avg.items() if any(c["n"] for c in cells.values())]
    if not rows:
        return []
    lines = [f"## Which group moved (test split, points: each `{protected}` group's rate at the method's threshold "
             "minus the baseline's; per seed the mean over targets, then mean ± sd over seeds)", "",
             "DEO is the gap between the two groups' TPRs. \"low\" is the group with the lower baseline TPR in "
             "each run, \"high\" the other. A method can close the gap by raising the low group's TPR or by "
             "lowering the high group's, which is levelling down. The FPR columns show the false positives "
             "each group gained for that.", "",
             "| method | n | ΔTPR low | ΔTPR high | ΔFPR low | ΔFPR high |", "|---|---:|---:|---:|---:|---:|"]
    for m, cells in rows:
        n = max(c["n"] for c in cells.values())
        lines.append(f"| {m} | {n} | " + " | ".join(_msd_signed(cells[k], 1) for k in GROUP_MOVES) + " |")
    return lines + [""]


def _difference(baseline: str):
    def value(run: dict[str, Any], method: str, metric: str) -> float | None:
        a, b = _median(run, method, metric), _median(run, baseline, metric)
        return None if a is None or b is None else a - b
    return value


def paired_differences(runs: dict[str, Any], methods: list[str],
                       baseline: str = "baseline") -> dict[str, dict[str, dict[str, Any]]]:
    """``{target: {method: {metric: {"mean", "sd", "n"}}}}`` of the paired difference method − baseline of
    the test medians, taken within each (target, seed) run (same split, GAN and f_g) and then summarised over
    the seeds (sd with ddof = 1); plus the row :data:`ALL_TARGETS` (per seed the mean difference over that
    seed's targets, then over seeds). Pairing within a run removes what the seed shares between the two
    methods, which the difference of the two across-seed means would keep. A metric that does not apply to
    the method (AP/KL of a post-processing method) has n = 0."""
    diff = _difference(baseline)
    others = [m for m in methods if m != baseline]
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for t, rs in _by_target(runs).items():
        out[t] = {m: {k: _mean_sd([v for r in rs if (v := diff(r, m, k)) is not None]) for k in METRICS}
                  for m in others}
    out[ALL_TARGETS] = seed_average(runs, others, diff)
    return out


def _msd(c: dict[str, Any], digits: int) -> str:
    if c["mean"] is None:
        return "–"
    return f"{c['mean']:.{digits}f} ± {c['sd']:.{digits}f}" if c["sd"] is not None else f"{c['mean']:.{digits}f} ± –"


def _msd_signed(c: dict[str, Any], digits: int) -> str:
    if c["mean"] is None:
        return "–"
    return f"{c['mean']:+.{digits}f} ± " + (f"{c['sd']:.{digits}f}" if c["sd"] is not None else "–")


def _metric_cells(run: dict[str, Any], method: str) -> str:
    """``| AP | DEO | … |`` cells of one method in one run: median [95 % interval] (:func:`metric_interval`)."""
    return " | ".join(_iv(metric_interval(run, method, k), 2 if k == "KL" else 1) for k in METRICS)


def finished_phrase(finished: int, expected: int, results: dict[str, Any]) -> str:
    """"N of M" runs, and the wall time of the last invocation that ran something when it finished (kept by
    ``--run-nothing``); nothing is said about a run being in progress, which the results cannot know."""
    return (f"{finished} of {expected}" + (f"; wall time of the last invocation {results['total_s'] / 60:.1f} min (a "
                                           "resumed run skips finished work; stage times below)"
                                           if "total_s" in results else ""))


def _cpu_label(machine: dict[str, Any]) -> str:
    """``cpu (capability)``, or the CPU's name alone for records made before the capability was recorded."""
    cpu, cap = machine.get("cpu") or "", machine.get("cpu_capability")
    return f"{cpu} ({cap})" if cpu and cap else cpu


def machine_line(results: dict[str, Any], buckets: tuple[str, ...] = ("runs", "skew")) -> str:
    """Where the results were written (the last invocation's machine) and, when the runs record it, on which
    CPUs the runs were computed: results are bitwise reproducible on one kind of CPU only, so a benchmark
    resumed on another machine says how many runs each kind made (runs recorded before the field existed
    are counted as not recorded)."""
    mach = results.get("machine", {})
    line = (f"Machine: {_cpu_label(mach) or '?'}, {mach.get('cores', '?')} cores, torch threads "
            f"{mach.get('torch_threads', '?')}, CUDA: {mach.get('cuda') or 'none'}; torch {mach.get('torch', '?')}.")
    kinds: dict[str, int] = {}
    for b in buckets:
        for run in results.get(b, {}).values():
            cpu = _cpu_label(run.get("machine") or {}) or "not recorded"
            kinds[cpu] = kinds.get(cpu, 0) + 1
    if set(kinds) - {"not recorded"}:
        line += " Runs by CPU: " + ", ".join(f"{cpu} {n}" for cpu, n in sorted(kinds.items())) + "."
    return line


def results_markdown(results: dict[str, Any], figure: str | None = None) -> str:
    """``results.md``. ``figure``: the AP-versus-DEO plot's path relative to the document (embedded when given;
    the caller passes it only when the PNG exists, so the link is never dangling)."""
    cfg = results.get("config", {})
    methods = cfg.get("methods", [])
    runs = results.get("runs", {})
    sep = "|" + "---|" * (len(METRICS) + 2)
    lines: list[str] = ["# CelebA benchmark results", ""]
    lines += [machine_line(results), seed_behaviour(cfg), "",
              f"Protected attribute: `{cfg.get('protected')}`; image size {cfg.get('size')}; seeds {cfg.get('seeds')}; "
              "finished target runs: " + finished_phrase(
                  len(runs), len(results.get("targets", {}).get("chosen", [])) * len(cfg.get("seeds", [])), results)
              + ".", ""]
    if results.get("command"):
        lines += ["Produced by", "", f"    {results['command']}", ""]
    sel = results.get("targets", {})
    if sel:
        lines += [f"## Targets (≥ {sel['min_positives']} positive training images in each protected group)", "",
                  "| target | positives g=0 | positives g=1 | used |", "|---|---:|---:|---|"]
        for t, c in sel["counts"].items():
            lines.append(f"| {t} | {c['g0']} | {c['g1']} | {'yes' if t in sel['chosen'] else 'no'} |")
        lines.append("")

    if runs and "baseline" in methods:
        lines += ["## Averages over targets (test split; mean of per-target medians)", "",
                  _header("method | n"),
                  "|---|---:|" + "---:|" * len(METRICS)]
        for m, n, cells in average_rows(runs, methods):
            lines.append(f"| {m} | {n} | " + " | ".join(cells) + " |")
        po = paper_overall()
        lines += ["", "The paper (ResNet-50, 128 px ProGAN, 162k CelebA training images; REFERENCE §1), baseline / "
                  "latent de-biasing (the paper reports no EOdds):", "",
                  "| category | " + " | ".join(PAPER_METRICS) + " |", "|---" * (len(PAPER_METRICS) + 1) + "|"]
        for cat, vals in PAPER_AVERAGES.items():
            lines.append(f"| {cat} | " + " | ".join(f"{vals[k][0]} / {vals[k][1]} ({_rel(vals[k][1], vals[k][0])})"
                                                    if k != "AP" else f"{vals[k][0]} / {vals[k][1]}"
                                                    for k in PAPER_METRICS) + " |")
        lines.append("| all 26 (size-weighted) | " + " | ".join(
            f"{po[k][0]} / {po[k][1]} ({_rel(po[k][1], po[k][0])})" if k != "AP" else f"{po[k][0]} / {po[k][1]}"
            for k in PAPER_METRICS) + " |")
        # ours by the paper's categories
        cats = sorted({r.get("category") or "–" for r in runs.values()})
        lines += ["", "Ours by the paper's categories, baseline / latent_debias:", "",
                  "| category | targets | " + " | ".join(PAPER_METRICS) + " |",
                  "|---|---:|" + "---|" * len(PAPER_METRICS)]
        for cat in cats:
            sub = {k: r for k, r in runs.items() if (r.get("category") or "–") == cat}
            mm = method_means(sub, [m for m in ("baseline", "latent_debias") if m in methods])
            if "latent_debias" in mm:
                lines.append(f"| {cat} | {len(sub)} | " + " | ".join(
                    f"{_f(mm['baseline'][k], 1)} / {_f(mm['latent_debias'][k], 1)}" for k in PAPER_METRICS) + " |")
        lines.append("")
        from fairlatent.benchmark.plain_answers import plain_answer_lines, plain_answers

        lines += plain_answer_lines(plain_answers(runs, methods))
        if figure:
            lines += ["## AP against DEO (test split; one point per method and seed)", "",
                      "Each point is one method in one seed: the mean over that seed's targets of the test medians "
                      "(up and to the left is better: AP higher, DEO lower); the baseline is ringed. A "
                      "post-processing method has no AP (it makes decisions, not scores), so it is not drawn.", "",
                      f"![AP against DEO, one point per method and seed]({figure})", ""]

        agg = seed_aggregates(runs, methods)
        avg = seed_average(runs, methods)
        n_seeds = len(cfg.get("seeds", [0]))

        def n_of(cells: dict[str, Any]) -> str:
            n = max(c["n"] for c in cells.values())
            return f"{n}{'' if n == n_seeds else f' of {n_seeds}'}"

        lines += ["## Per target across seeds (test-split medians: mean ± sd over the seeds; n = seeds)", "",
                  seed_behaviour(cfg), f"The rows '{ALL_TARGETS}' average over each seed's targets first, so "
                  "their sd is the seed-to-seed spread of the average.", "",
                  _header("target | method | n"), sep + "---|"]
        for t, per in [*agg.items(), (ALL_TARGETS, avg)]:
            for m in methods:
                cells = per[m]
                if not any(c["n"] for c in cells.values()):
                    continue
                lines.append(f"| {t} | {m} | {n_of(cells)} | "
                             + " | ".join(_msd(cells[k], 2 if k == "KL" else 1) for k in METRICS) + " |")
        lines.append("")
        diffs = paired_differences(runs, methods)
        lines += ["## Paired differences against the baseline (test-split medians, method − baseline within "
                  "each run: mean ± sd over the seeds; n = seeds)", "",
                  "Negative is better for DEO, BA, KL and EOdds, positive for AP; '–': the metric does not "
                  "apply to the method (a post-processing method makes decisions, so it has no AP or KL).", "",
                  _header("target | method | n").replace(" ↑", " Δ↑").replace(" ↓", " Δ↓"), sep + "---|"]
        for t, per in diffs.items():
            for m, cells in per.items():
                if not any(c["n"] for c in cells.values()):
                    continue
                lines.append(f"| {t} | {m} | {n_of(cells)} | "
                             + " | ".join(_msd_signed(cells[k], 2 if k == "KL" else 1) for k in METRICS) + " |")
        lines.append("")
        lines += group_move_lines(runs, methods, cfg.get("protected", "Male"))
        if cfg.get("protected_extra"):
            lines += protected_attribute_lines(runs, methods, [cfg.get("protected", "Male"), *cfg["protected_extra"]])
        lines += ["## Per target (test split: median [95 % bootstrap interval])", "",
                  _header("target | method") + " ΔDEO vs baseline (P better) |", sep + "---|"]
        for key, r in runs.items():
            for m in methods:
                if m not in r["methods"]:
                    continue
                vs = r["methods"][m].get("vs_baseline", {}).get("DEO")
                d = f"{vs['median']:+.1f} [{vs['lo']:+.1f}, {vs['hi']:+.1f}] ({vs['p_better']:.0%})" if vs else ""
                lines.append(f"| {key} | {m} | {_metric_cells(r, m)} | {d} |")
        lines.append("")
        lines += diagnostics_lines(runs, cfg.get("protected", "Male"))
        lines += preflight_lines(runs)
    failed = results.get("failed", {})
    if failed:
        lines += ["## Failed target runs", "", "A rerun with the same settings skips them (the same seeds fail the "
                  "same way); delete `done/<run>.json` in the benchmark folder to try one again.", ""]
        lines += [f"- `{k}`: {v}" for k, v in failed.items()] + [""]
    skew = results.get("skew", {})
    if skew:
        lines += ["## Controlled skew (train split subsampled; same size at every skew)", "",
                  _header("run | method"), sep]
        for key, r in skew.items():
            for m in methods:
                if m in r["methods"]:
                    lines.append(f"| {key} | {m} | {_metric_cells(r, m)} |")
        lines.append("")
    lines += timing_lines(results)
    return "\n".join(lines) + "\n"


#: the fairness metrics shown for every protected attribute (AP does not depend on the protected attribute)
PROTECTED_TABLE_METRICS = ("DEO", "BA", "EOdds")


def protected_interval(run: dict[str, Any], method: str, attribute: str, metric: str,
                       key: str = "by_protected") -> dict[str, float] | None:
    """One method's test ``{"median", "lo", "hi"}`` of a fairness metric measured with the groups of
    ``attribute`` (``key="by_protected_vs_baseline"``: the paired difference to the baseline, with
    ``p_better``); None where the run has no such figure."""
    iv = ((run.get("methods", {}).get(method) or {}).get(key) or {}).get(attribute, {}).get(metric)
    return iv if _defined(iv) else None


def protected_attribute_lines(runs: dict[str, Any], methods: list[str], attributes: list[str]) -> list[str]:
    """With ``protected_extra``: every method's DEO, BA and EOdds for each protected attribute, per target
    across seeds, and the paired ΔDEO against the baseline per attribute with the seeds whose interval
    excludes 0; then what each of ``latent_debias_multi``'s edits did on the images."""
    lines = ["## Every protected attribute (test split)", "",
             f"The groups of each protected attribute ({', '.join(f'`{a}`' for a in attributes)}) score the same "
             "predictions: mean ± sd over the seeds of the test medians; ΔDEO is the paired difference to the "
             "baseline within each run (mean ± sd over the seeds; ↓k ↑j of n: on k seeds its 95 % interval lies "
             "below 0, on j above 0).", "",
             "| target | method | attribute | n | " + " | ".join(f"{k} ↓" for k in PROTECTED_TABLE_METRICS)
             + " | ΔDEO |", "|---|---|---|---:|" + "---|" * (len(PROTECTED_TABLE_METRICS) + 1)]
    for t, rs in _by_target(runs).items():
        for m in methods:
            for a in attributes:
                vals = {k: [iv["median"] for r in rs if (iv := protected_interval(r, m, a, k))]
                        for k in PROTECTED_TABLE_METRICS}
                if not any(vals.values()):
                    continue
                deltas = [iv for r in rs if (iv := protected_interval(r, m, a, "DEO", "by_protected_vs_baseline"))]
                d = ("" if not deltas else _msd_signed(_mean_sd([iv["median"] for iv in deltas]), 1)
                     + f" (↓{sum(iv['hi'] < 0 for iv in deltas)} ↑{sum(iv['lo'] > 0 for iv in deltas)} of "
                       f"{len(deltas)})")
                n = max(len(v) for v in vals.values())
                lines.append(f"| {t} | {m} | {a} | {n} | "
                             + " | ".join(_msd(_mean_sd(vals[k]), 1) for k in PROTECTED_TABLE_METRICS)
                             + f" | {d or '–'} |")
    lines.append("")
    edits = [(key, multi) for key, r in runs.items() if (multi := (r.get("latent") or {}).get("multi_edits"))]
    if edits:
        lines += ["### What each edit of `latent_debias_multi` did on the images", "",
                  "Per run and edit: the share of pairs whose labeler label flipped, for each attribute the edit "
                  "flips, and stayed, for each it holds (the target included); did all: the share on which every "
                  "one did.", "", "| run | edit | flipped | held | did all |", "|---|---|---|---|---:|"]
        for key, per in edits:
            for name, e in per.items():
                flip = ", ".join(f"{a} {v:.0%}" for a, v in e.get("flip_rate", {}).items())
                keep = ", ".join(f"{a} {v:.0%}" for a, v in e.get("keep_rate", {}).items())
                did = e.get("did_all_rate")
                lines.append(f"| {key} | {name} | {flip or '–'} | {keep or '–'} | "
                             f"{'–' if did is None else f'{did:.0%}'} |")
        lines.append("")
    return lines


def preflight_lines(runs: dict[str, Any]) -> list[str]:
    """Every run's pre-flight verdict: the failed checks that block a method, the cautions, and the methods
    trained on pairs that the run was quiet for (nothing for runs without latent stages)."""
    checked = {k: r["preflight"] for k, r in runs.items() if r.get("preflight") is not None}
    if not checked:
        return []
    lines = ["## Pre-flight per run", "",
             "Failed checks that block a method (its pairs can be wrong: fairlatent.latent.preflight.blocks) "
             "and cautions (failed, but no listed method's pairs depend on them); per method that trains on "
             "pairs, whether the run was quiet for it.", "",
             "| run | blocking | cautions | quiet for |", "|---|---|---|---|"]
    for key, pf in checked.items():
        block = pf.get("blocking", pf["failed"])
        caution = [c for c in pf["failed"] if c not in block]
        quiet = [m for m, ok in pf.get("by_method", {}).items() if ok]
        lines.append(f"| {key} | {', '.join(block) or '–'} | {', '.join(caution) or '–'} | "
                     f"{', '.join(quiet) or '–'} |")
    return lines + [""]


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
