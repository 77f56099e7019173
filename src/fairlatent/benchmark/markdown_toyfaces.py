"""``results.md`` of the ToyFaces benchmark: the acceptance line, the pairs, the paired differences per pair
across seeds and per run, and the diagnostics (see :mod:`fairlatent.benchmark.toyfaces`).

Differences are method − baseline on the test split, percent points: the median and 95 % interval of the
paired bootstrap (every method scored on the same resamples), as the pipeline's ``paired_vs_baseline``.
"""

from __future__ import annotations

from typing import Any

from fairlatent.benchmark.markdown import (LATENT_COLUMNS, LATENT_FIELDS, LATENT_LEGEND, _f, _msd, finished_phrase,
                                          machine_line, preflight_lines, timing_lines)

DELTA_METRICS = ("DEO", "AP", "BA")


def _faint(faint: dict[str, float]) -> str:
    return ", ".join(f"{a} {s:g}" for a, s in faint.items()) or "none (bold)"


def pair_lines(cfg: dict[str, Any]) -> list[str]:
    """The table of the configured pairs (what each case is there for)."""
    lines = ["| pair | target | protected | skew P(g=t) | drawn faintly | why |", "|---|---|---|---:|---|---|"]
    for p in cfg.get("pairs", []):
        lines.append(f"| {p['name']} | {p['target']} | {p['protected']} | {p['skew']:g} | {_faint(p['faint'])} "
                     f"| {p.get('note', '')} |")
    return lines + [""]


def _sig(d: dict[str, Any], n: int) -> str:
    return f"↓{d['below0']} ↑{d['above0']} of {n}"


def toyfaces_markdown(results: dict[str, Any]) -> str:
    cfg = results.get("config", {})
    methods = cfg.get("methods", [])
    runs = results.get("runs", {})
    pairs = results.get("pairs", {})
    lines = ["# ToyFaces benchmark results", "", machine_line(results), "",
             f"ToyFaces: {cfg.get('n')} faces per run at {cfg.get('size')} px, splits {cfg.get('split_fractions')}; "
             f"seeds {cfg.get('seeds')} (a seed draws the faces, the GAN and every classifier); finished runs: "
             + finished_phrase(len(runs), len(cfg.get("pairs", [])) * len(cfg.get("seeds", [])), results) + ".", ""]
    acc = results.get("acceptance")
    by_method = results.get("acceptance_by_method", {})
    if acc or by_method:
        lines += ["## Acceptance", ""]
        if acc:
            lines += [f"**{acc['line']}.**", ""]
            if acc.get("default_of") and acc["method"] != acc["default_of"]:
                lines += [f"{acc['method']} is what {acc['default_of']} trains at its default settings "
                          f"(latent.pair_filter = 'verified'); this sweep sets latent.pair_filter = "
                          f"'{cfg.get('latent', {}).get('pair_filter', 'all')}', so its {acc['default_of']} rows "
                          "are the paper's method (every pair).", ""]
        lines += [f"- {a['line']}" + (f" (raised with a quiet pre-flight: {', '.join(a['raised_quiet'])})"
                                      if a.get("raised_quiet") else "")
                  for m, a in by_method.items() if acc is None or m != acc["method"]]
        rule = (acc or next(iter(by_method.values())))["rule"]
        lines += ["", f"Rule: {rule}.", ""]
        accs = ([acc] if acc else []) + [a for m, a in by_method.items() if acc is None or m != acc["method"]]
        refused = [a["lowered_or_refused_line"] for a in accs if a.get("refused")]
        if refused:
            lines += ["Lowered, or refused where it cannot help (blocked by the pre-flight on most of the pair's "
                      "seeds):", ""] + [f"- {line}" for line in refused] + [""]
        per_seed = [a["per_seed_bar"]["line"] for a in accs if "per_seed_bar" in a]
        if per_seed:
            lines += ["Bar on each seed (a pair is eligible through the seeds whose own baseline DEO clears the bar):",
                      ""] + [f"- {line}" for line in per_seed] + [""]
        lines += preflight_outcome_lines(accs)
    lines += ["## Pairs", ""] + pair_lines(cfg)
    if pairs:
        lines += ["## Paired differences to the baseline across seeds", "",
                  "Per pair and method: mean ± sd over the seeds of the paired median difference (method − "
                  "baseline, test split, points); ↓k ↑j of n: on k seeds the paired 95 % interval lies below 0, "
                  "on j above 0. Baseline DEO is the mean ± sd of its test median.", "",
                  "| pair | baseline DEO | method | ΔDEO ↓ | ΔAP ↑ | ΔBA ↓ |", "|---|---|---|---|---|---|"]
        for name, s in pairs.items():
            n = len(s["seeds"])
            base = _msd(s["metrics"]["baseline"]["DEO"], 1) if "baseline" in s["metrics"] else "–"
            for m, d in s["delta"].items():
                lines.append(f"| {name} | {base} | {m} | " + " | ".join(
                    f"{_msd(d[k]['median'], 1)} ({_sig(d[k], n)})" for k in DELTA_METRICS) + " |")
        lines.append("")
        lines += diagnostics_lines(pairs)
    lines += preflight_lines(runs)
    if runs:
        lines += ["## Per run (test split; paired difference to the baseline: median [95 % interval])", "",
                  "| run | method | DEO | ΔDEO | ΔAP | ΔBA |", "|---|---|---|---|---|---|"]
        for key, r in runs.items():
            for m in methods:
                res = r["methods"].get(m)
                if res is None:
                    continue
                vs = res.get("vs_baseline", {})
                lines.append(f"| {key} | {m} | {_f(res['DEO']['median'], 1)} | " + " | ".join(
                    f"{vs[k]['median']:+.1f} [{vs[k]['lo']:+.1f}, {vs[k]['hi']:+.1f}]" if k in vs else ""
                    for k in DELTA_METRICS) + " |")
        lines.append("")
    failed = results.get("failed", {})
    if failed:
        lines += ["## Failed runs", "", "A rerun with the same settings skips them (the same seed fails the same "
                  "way); delete `done/<run>.json` in the benchmark folder to try one again.", ""]
        lines += [f"- `{k}`: {v}" for k, v in failed.items()] + [""]
    lines += timing_lines(results)
    return "\n".join(lines) + "\n"


def _runs(rs: list[dict[str, Any]]) -> str:
    return ", ".join(f"{r['run']} ({_f(r['baseline_deo'], 1)}: {r['median']:+.1f})" for r in rs)


def preflight_outcome_lines(accs: list[dict[str, Any]]) -> list[str]:
    """Per method, what it did on the runs the pre-flight was quiet for and on those it blocked it on."""
    accs = [a for a in accs if a.get("by_preflight")]
    if not accs:
        return []
    lines = ["What each method did where the pre-flight was quiet for it and where it blocked it (significant "
             "paired ΔDEO; controls: baseline DEO under 0.05 points; in brackets: baseline DEO: ΔDEO):", "",
             "| method | runs quiet | lowered / raised / controls / neither | raised or neither | runs blocked "
             "| lowered / raised / controls / neither | raised or neither |", "|---|---:|---|---|---:|---|---|"]
    for a in accs:
        cells = []
        for group in ("quiet", "blocked"):
            g = a["by_preflight"][group]
            cells += [str(g["runs"]), " / ".join(str(len(g[k])) for k in ("lowered", "raised", "controls", "neither")),
                      _runs(g["raised"] + g["neither"]) or "–"]
        lines.append(f"| {a['method']} | " + " | ".join(cells) + " |")
    return lines + [""]


def diagnostics_lines(pairs: dict[str, Any]) -> list[str]:
    """Hyperplanes, the complementary edit and the GAN's cells, per pair (mean over seeds)."""
    lines = ["## Diagnostics per pair (mean over seeds)", "",
             LATENT_LEGEND + "(under the complementary edit); f_t, f_g worst cell: the labeler's accuracy on its "
             "attribute in its worst (target, protected) cell of the real validation images (– where the run "
             "predates the check); cells: share of each (target, protected) cell among G(z) as labelled by "
             "f_t, f_g / among the real train images.", "",
             f"| pair | {LATENT_COLUMNS} | f_t worst cell | f_g worst cell | t0g0 | t0g1 | t1g0 | t1g1 |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|---|---|---|"]
    for name, s in pairs.items():
        d = s.get("diagnostics")
        if not d:
            continue
        cells = " | ".join(f"{_pct(d['cells'][c]['G(z)'])} / {_pct(d['cells'][c]['real'])}"
                           for c in ("t0_g0", "t0_g1", "t1_g0", "t1_g1"))
        labelers = " | ".join(_f(d.get(f"f_{w}_cell_acc", {}).get("mean")) for w in ("t", "g"))
        lines.append(f"| {name} | " + " | ".join(_f(d[k]["mean"]) for k in LATENT_FIELDS) + f" | {labelers} | {cells} |")
    return lines + [""]


def _pct(st: dict[str, Any]) -> str:
    return "–" if st["mean"] is None else f"{st['mean']:.0%}"
