"""The CelebA benchmark's two questions, answered from its own figures in one sentence each.

A reviewer reading the comparison asks (issue 15):

1. *Which method gives the largest DEO reduction for at most one AP point of cost?* Answered on the average
   over targets of the paired differences to the baseline (method − baseline within each (target, seed) run,
   averaged over the seed's targets, then mean ± sd over seeds: the ``all targets`` row of
   :func:`fairlatent.benchmark.markdown.paired_differences`). Methods that produce decisions rather than
   scores (post-processing) have no AP, so no AP cost can be read; they are listed apart with their ΔDEO and
   ΔBA rather than silently ranked.
2. *Does latent de-biasing beat image-space counterfactuals on the same footing?* The same three figures for
   both: the share of synthetic images whose f_g label flipped and whose f_t label held (G(z′) against G(z);
   the translated image against the real one), and the downstream DEO. The downstream comparison is paired
   within each run (latent method − ``cyclegan_augment``, same split, GAN, f_g and translator), averaged over
   the seed's targets; "beats" is said only when every seed's average is lower, "loses" when every one is
   higher, otherwise neither is consistently better.

The answers are data (:func:`plain_answers`, kept in ``results.json``) and sentences (:func:`plain_answer_lines`).
"""

from __future__ import annotations

from typing import Any

from fairlatent.benchmark.markdown import ALL_TARGETS, _difference, _mean_sd, paired_differences, per_seed_means

#: The AP cost (points) the first question allows.
MAX_AP_COST = 1.0
#: The image-space competitor of the second question.
COUNTERFACTUAL = "cyclegan_augment"
#: The latent methods compared with it, in the order they are reported (the paper's, then its variants).
LATENT_METHODS = ("latent_debias", "latent_debias_verified", "latent_debias_filtered")


def _edit_rates(runs: dict[str, Any], source: str) -> dict[str, float | None]:
    """Mean over runs of the flip and keep rates of the latent edit (``source = "latent"``) or of the
    translations (``"translations"``); None where no run measured them."""
    recs = [r[source] for r in runs.values() if r.get(source)]
    return {k: _mean_sd([x[k] for x in recs if x.get(k) is not None])["mean"] for k in ("flip_rate_g", "keep_rate_t")}


def plain_answers(runs: dict[str, Any], methods: list[str], *, baseline: str = "baseline",
                  max_ap_cost: float = MAX_AP_COST) -> dict[str, Any]:
    """Both answers as data (see the module docstring); a question the methods cannot answer is None."""
    out: dict[str, Any] = {"max_ap_cost": max_ap_cost, "scored": {}, "best_within_ap_cost": None, "no_ap": {},
                           "latent_vs_counterfactual": None}
    if baseline not in methods or not runs:
        return out
    avg = paired_differences(runs, methods, baseline)[ALL_TARGETS]
    scored = {m: c for m, c in avg.items() if c["AP"]["n"] and c["DEO"]["n"]}
    out["scored"] = {m: {"dDEO": c["DEO"], "dAP": c["AP"]} for m, c in scored.items()}
    within = {m: c for m, c in scored.items() if c["AP"]["mean"] >= -max_ap_cost}
    if within:
        best = min(within, key=lambda m: within[m]["DEO"]["mean"])
        out["best_within_ap_cost"] = {"method": best, "dDEO": within[best]["DEO"], "dAP": within[best]["AP"],
                                      "others": {m: c for m, c in out["scored"].items() if m != best}}
    out["no_ap"] = {m: {"dDEO": c["DEO"], "dBA": c["BA"]} for m, c in avg.items()
                    if not c["AP"]["n"] and c["DEO"]["n"]}
    latent = [m for m in LATENT_METHODS if m in methods]
    if COUNTERFACTUAL in methods and latent:
        per_seed = per_seed_means(runs, latent, _difference(COUNTERFACTUAL))
        downstream = {}
        for m in latent:
            seeds = per_seed[m]["DEO"]
            vals = list(seeds.values())
            verdict = ("beats" if vals and all(v < 0 for v in vals) else
                       "loses to" if vals and all(v > 0 for v in vals) else "is not consistently better than")
            downstream[m] = {"dDEO_vs_counterfactual_by_seed": seeds, **_mean_sd(vals),
                             "dDEO_vs_baseline": avg[m]["DEO"], "verdict": verdict}
        out["latent_vs_counterfactual"] = {
            "counterfactual": COUNTERFACTUAL, "latent_edit": _edit_rates(runs, "latent"),
            "translations": _edit_rates(runs, "translations"),
            "counterfactual_dDEO_vs_baseline": avg[COUNTERFACTUAL]["DEO"], "latent": downstream}
    return out


def _pm(c: dict[str, Any], digits: int = 1) -> str:
    if c.get("mean") is None:
        return "–"
    return f"{c['mean']:+.{digits}f}" + (f" ± {c['sd']:.{digits}f}" if c.get("sd") is not None else "")


def _rate(x: float | None) -> str:
    return "–" if x is None else f"{x:.0%}"


def plain_answer_lines(answers: dict[str, Any]) -> list[str]:
    """The answers as a markdown section (empty when neither question can be answered)."""
    best, cf, no_ap = answers["best_within_ap_cost"], answers["latent_vs_counterfactual"], answers["no_ap"]
    if not answers["scored"] and cf is None and not no_ap:
        return []
    cost = answers["max_ap_cost"]
    lines = ["## In plain words", "",
             "Average over targets of the paired difference to the baseline (test medians), mean ± sd over the "
             "seeds.", ""]
    if best is not None:
        lines.append(f"- **Largest DEO reduction for at most {cost:g} AP point of cost: `{best['method']}`**, "
                     f"ΔDEO {_pm(best['dDEO'])} at ΔAP {_pm(best['dAP'], 2)}. The others: "
                     + "; ".join(f"`{m}` ΔDEO {_pm(c['dDEO'])} at ΔAP {_pm(c['dAP'], 2)}"
                                 + ("" if c["dAP"]["mean"] >= -cost else f" (over the {cost:g}-point cost)")
                                 for m, c in sorted(best["others"].items(), key=lambda kv: kv[1]["dDEO"]["mean"]))
                     + ".")
    elif answers["scored"]:
        lines.append(f"- **No method stays within {cost:g} AP point of the baseline**: "
                     + "; ".join(f"`{m}` ΔDEO {_pm(c['dDEO'])} at ΔAP {_pm(c['dAP'], 2)}"
                                 for m, c in sorted(answers["scored"].items(), key=lambda kv: kv[1]["dAP"]["mean"],
                                                    reverse=True)) + ".")
    if no_ap:
        lines.append("- Post-processing makes decisions, not scores, so its AP cost cannot be read: "
                     + "; ".join(f"`{m}` ΔDEO {_pm(c['dDEO'])} at ΔBA {_pm(c['dBA'])}" for m, c in no_ap.items())
                     + ".")
    if cf is not None:
        le, tr = cf["latent_edit"], cf["translations"]
        lines.append(f"- **Latent de-biasing against image-space counterfactuals (`{cf['counterfactual']}`), same "
                     f"splits and seeds.** f_g flipped on {_rate(le['flip_rate_g'])} of latent pairs against "
                     f"{_rate(tr['flip_rate_g'])} of translations; f_t held on {_rate(le['keep_rate_t'])} against "
                     f"{_rate(tr['keep_rate_t'])} (means over runs). Downstream ΔDEO against the baseline: "
                     f"`{cf['counterfactual']}` {_pm(cf['counterfactual_dDEO_vs_baseline'])}; "
                     + "; ".join(f"`{m}` {_pm(d['dDEO_vs_baseline'])}, so it **{d['verdict']}** the "
                                 f"counterfactuals (paired DEO difference {_pm(d)}, by seed "
                                 + ", ".join(f"{v:+.1f}" for v in d["dDEO_vs_counterfactual_by_seed"].values())
                                 + ")" for m, d in cf["latent"].items()) + ".")
    return lines + [""]


__all__ = ["COUNTERFACTUAL", "LATENT_METHODS", "MAX_AP_COST", "plain_answer_lines", "plain_answers"]
