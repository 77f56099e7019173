"""``tabular.md`` and ``tabular.json``: the tabular benchmark's summary as a document.

Every figure in the document comes from the summary (or from the ``ctgan`` package comparison's JSON, when
given), and each of the issue's targets gets a verdict computed from the same rows, so the text cannot drift
from the numbers.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping

from fairlatent.utils.io import write_json, write_text

__all__ = ["PUBLISHED", "targets", "markdown", "write_outputs"]

#: Published figures shown beside ours, with where they come from.
PUBLISHED = {
    "sdgym_adult_f1": {"identity (real rows)": 0.669, "TVAE": 0.626, "CTGAN": 0.601, "TableGAN": 0.492,
                       "source": "SDGym leaderboard (Xu et al. 2019, Table 4 / the SDGym repository): F1 of "
                                 "classifiers trained on synthetic Adult rows, tested on real rows"},
    "fairgan_adult": {"real_risk_difference": 0.2,
                      "source": "FairGAN (Xu, Yuan, Zhang & Wu 2018) on Adult: the real data's risk difference "
                                "P(income > 50K | male) − P(· | female) is about 0.2"},
}

SDGYM_CTGAN, SDGYM_TVAE = 0.601, 0.626
RISK_TARGET, ACC_SLACK = 0.05, 0.03


def _agg(summary: Mapping[str, Any], dataset: str, method: str) -> dict[str, Any] | None:
    for a in summary["aggregate"]:
        if a["dataset"] == dataset and a["method"] == method:
            return a
    return None


def _mean(a: Mapping[str, Any] | None, metric: str) -> float:
    return a[metric]["mean"] if a and metric in a else math.nan


def targets(summary: Mapping[str, Any], package: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """The issue's targets, each with the figures it was judged on and ``met`` (True, False or None: not run)."""
    out: list[dict[str, Any]] = []
    ct = _agg(summary, "adult", "ctgan")
    f1 = _mean(ct, "f1_mean")
    out.append({"target": f"CTGAN on Adult, mean F1 of the classifiers trained on synthetic rows ≥ {SDGYM_CTGAN} "
                          f"(SDGym's CTGAN; TVAE {SDGYM_TVAE})",
                "ours": None if math.isnan(f1) else round(f1, 3),
                "met": None if math.isnan(f1) else bool(f1 >= SDGYM_CTGAN)})
    if package:
        ratio = package.get("seconds_per_epoch", {}).get("ratio")
        fid_ok = package.get("fidelity_at_least_equal")
        eff_ok = package.get("efficacy_at_least_equal")
        met = None if ratio is None else bool(ratio >= 1.5 and fid_ok and eff_ok)
        out.append({"target": "against the ctgan package, same data and epochs: fidelity and efficacy at least "
                              "equal, time per epoch ≥ 1.5× faster on 2 cores",
                    "ours": {"speed_ratio": ratio, "fidelity_at_least_equal": fid_ok,
                             "efficacy_at_least_equal": eff_ok}, "met": met})
    else:
        out.append({"target": "against the ctgan package (benchmarks/tabular_ctgan_package.py)", "ours": None,
                    "met": None})
    real, eg = _agg(summary, "adult", "real"), _agg(summary, "adult", "expgrad_dp")
    for method in ("fairgan", "fairgan_dp", "ctgan:real+fair_synthetic"):
        a = _agg(summary, "adult", method)
        if a is None:
            continue
        rd, acc, dp = _mean(a, "risk_difference"), _mean(a, "acc_lr"), _mean(a, "dp_lr")
        racc, eacc, edp = _mean(real, "acc_lr"), _mean(eg, "acc_lr"), _mean(eg, "dp_lr")
        checks = {"risk_difference": rd, "risk_ok": bool(abs(rd) <= RISK_TARGET),
                  "accuracy": acc, "real_accuracy": racc, "accuracy_ok": bool(acc >= racc - ACC_SLACK),
                  "dp": dp, "expgrad_dp": edp, "expgrad_accuracy": eacc,
                  "beats_expgrad": bool(dp < edp and acc >= eacc)}
        out.append({"target": f"{method} on Adult: synthetic risk difference ≤ {RISK_TARGET}, logistic regression "
                              f"within {ACC_SLACK * 100:.0f} accuracy points of real-data training, and a lower DP "
                              "than ExponentiatedGradient (DP) at equal or better accuracy",
                    "ours": {k: round(v, 4) if isinstance(v, float) else v for k, v in checks.items()},
                    "met": checks["risk_ok"] and checks["accuracy_ok"] and checks["beats_expgrad"]})
    return out


def _ms(a: Mapping[str, Any], metric: str, digits: int = 3) -> str:
    if metric not in a:
        return "–"
    m = a[metric]
    sd = "" if m["sd"] is None else f" ± {m['sd']:.{digits}f}"
    return f"{round(m['mean'], digits) + 0.0:.{digits}f}{sd}"  # + 0.0: no "-0.000"


def _ci(row: Mapping[str, Any], metric: str) -> str:
    v = row.get(metric)
    if not isinstance(v, float) or math.isnan(v):
        return "–"
    ci = row.get(f"{metric}_ci")
    return f"{v:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else f"{v:.3f}"


def _fmt(value: Any) -> str:
    """A target's figures for a table cell: numbers to 3 decimals, a mapping as ``key value`` pairs."""
    if value is None:
        return "–"
    if isinstance(value, Mapping):
        return "; ".join(f"{k.replace('_', ' ')} {_fmt(v)}" for k, v in value.items())
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value + 0.0:.3f}" if abs(value) >= 5e-4 else "0.000"
    return str(value)


def _verdict(met: bool | None) -> str:
    return {True: "**met**", False: "**not met**", None: "not run"}[met]


def markdown(summary: Mapping[str, Any], *, command: str, config: Mapping[str, Any],
             package: Mapping[str, Any] | None = None, package_command: str | None = None, notes: str = "") -> str:
    """The document: targets, mean ± sd per data set, per-seed intervals, time per stage, published figures."""
    L = ["# Tabular benchmark: CTGAN, FairGAN and fair conditional sampling on Adult, COMPAS and German credit", "",
         "Produced by", "", f"    {command}", "",
         f"Seeds {config.get('seeds')}; epochs {config.get('epochs')} (per data set where a mapping; the models' "
         f"default is 300); bootstrap resamples {config.get('n_boot')}; classifiers {config.get('classifiers')}. "
         "Classifiers are trained on the named rows and tested on the real test split (Adult: the official test "
         "file; COMPAS and German: a 70/30 split seeded by the seed). DP and EO are fairlearn's demographic parity "
         "and equalized odds differences of logistic regression for the data set's first protected attribute "
         "(Adult and German: `sex`; COMPAS: `race`); risk difference is P(y=1 | privileged) − P(y=1 | rest) of "
         "the training rows themselves. Machine-readable: `tabular.json` beside this file. What the figures "
         "mean, and what was tried where a target is not met: [`docs/tabular.md`](../tabular.md).", ""]
    L += ["## Targets", "", "| target | ours | verdict |", "|---|---|---|"]
    for t in targets(summary, package):
        L.append(f"| {t['target']} | {_fmt(t['ours'])} | {_verdict(t['met'])} |")
    L.append("")
    datasets = list(dict.fromkeys(a["dataset"] for a in summary["aggregate"]))
    L += ["## Mean ± sd over seeds", ""]
    for name in datasets:
        L += [f"### {name}", "",
              "| method | seeds | mean F1 (classifiers) | LR F1 | LR acc | LR AUC | DP | EO | data risk diff. | shapes | pair trends | DCR ratio |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for a in summary["aggregate"]:
            if a["dataset"] != name:
                continue
            cells = [a["method"], str(len(a["seeds"]))] + [_ms(a, m) for m in
                     ("f1_mean", "f1_lr", "acc_lr", "auc_lr", "dp_lr", "eo_lr", "risk_difference", "fidelity_shapes",
                      "fidelity_pairs", "dcr_ratio")]
            L.append("| " + " | ".join(cells) + " |")
        L.append("")
    L += ["## Per seed: DP and EO of logistic regression with 95 % bootstrap intervals (test rows resampled)", "",
          "| data set | seed | method | DP | EO | acc |", "|---|---|---|---|---|---|"]
    for r in summary["rows"]:
        acc = r.get("acc_lr")
        L.append(f"| {r['dataset']} | {r['seed']} | {r['method']} | {_ci(r, 'dp_lr')} | {_ci(r, 'eo_lr')} | "
                 f"{acc:.3f} |" if isinstance(acc, float) and not math.isnan(acc) else
                 f"| {r['dataset']} | {r['seed']} | {r['method']} | {_ci(r, 'dp_lr')} | {_ci(r, 'eo_lr')} | – |")
    L += ["", "## Time per stage (seconds, mean over seeds; one CPU thread)", "",
          "| data set | model | epochs | fit | sample (+ fair rows) | evaluate |", "|---|---|---|---|---|---|"]
    for a in summary["aggregate"]:
        s = a.get("seconds")
        if s and "fit" in s:
            epochs = {r.get("epochs") for r in summary["rows"] if r["dataset"] == a["dataset"] and r["method"] == a["method"]}
            L.append(f"| {a['dataset']} | {a['method']} | {', '.join(str(e) for e in sorted(epochs, key=str))} | "
                     f"{s['fit']:.0f} | {s['sample']:.0f} | {s['evaluate']:.0f} |")
    L += ["", "## Published figures beside ours", ""]
    sd = PUBLISHED["sdgym_adult_f1"]
    real, ct = _agg(summary, "adult", "real"), _agg(summary, "adult", "ctgan")
    L += [f"{sd['source']}:", "", "| rows | published F1 | ours (mean F1 of our 3 classifiers) |", "|---|---|---|",
          f"| real | {sd['identity (real rows)']} | {_ms(real, 'f1_mean') if real else '–'} |",
          f"| CTGAN | {sd['CTGAN']} | {_ms(ct, 'f1_mean') if ct else '–'} |", f"| TVAE | {sd['TVAE']} | not built |", "",
          "SDGym averages its own classifier set on its own Adult copy, so the comparison is indicative.", "",
          f"{PUBLISHED['fairgan_adult']['source']}: ours {_ms(real, 'risk_difference') if real else '–'}.", ""]
    if package:
        L += ["## The `ctgan` package side by side", "", "Produced by", "", f"    {package_command or package.get('command')}", "",
              _package_table(package), ""]
    if notes:
        L += ["## Notes", "", notes.strip(), ""]
    return "\n".join(L)


def _package_table(p: Mapping[str, Any]) -> str:
    seeds = p.get("seeds", [p.get("seed")])
    rows = ["| | ours | ctgan package |", "|---|---|---|"]
    spe = p.get("seconds_per_epoch", {})
    rows.append(f"| seconds per epoch ({p.get('threads')} threads; slope between {p.get('epochs_timed')} epochs, "
                f"seed {seeds[0]}) | {spe.get('ours', math.nan):.2f} | {spe.get('package', math.nan):.2f} |")
    for key, label in (("column_shapes", "column shapes"), ("column_pair_trends", "column pair trends"),
                       ("f1_mean", "mean F1 (the classifiers)"), ("auc_lr", "LR AUC")):
        o, q = p.get("ours", {}).get(key), p.get("package", {}).get(key)
        if o is not None and q is not None:
            each = "; ".join(f"{v['ours'][key]:.3f} / {v['package'][key]:.3f}" for v in p.get("per_seed", {}).values())
            rows.append(f"| {label}, mean over seeds {seeds} (per seed, ours / package: {each}) | {o:.3f} | {q:.3f} |")
    rows.append(f"\nspeed ratio (package / ours): {spe.get('ratio', math.nan):.2f}×; {p.get('epochs')} epochs each; "
                f"data {p.get('dataset')}; {p.get('package_version')}.")
    return "\n".join(rows)


def write_outputs(summary: Mapping[str, Any], out_dir: str | Path, *, command: str, config: Mapping[str, Any],
                  package: Mapping[str, Any] | None = None, notes: str = "") -> dict[str, Path]:
    """Write ``tabular.json`` (config, rows, aggregate, targets, published figures, the package comparison)
    and ``tabular.md`` into ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / "tabular.json", "md": out_dir / "tabular.md"}
    write_json(paths["json"], {"command": command, "config": dict(config), "rows": summary["rows"],
                               "aggregate": summary["aggregate"], "targets": targets(summary, package),
                               "published": PUBLISHED, "ctgan_package": package})
    write_text(paths["md"], markdown(summary, command=command, config=config, package=package, notes=notes))
    return paths

