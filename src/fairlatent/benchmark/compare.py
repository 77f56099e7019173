"""Two benchmark folders side by side: does one latent space serve the method better than the other?

Issue 17 asks whether InfoGAN's latent gives the paper's method an easier job than the plain GAN's: higher
held-out accuracy of the hyperplanes, a smaller |cos θ| between them, edits that keep f_t's label more often,
and a larger DEO reduction. Answering it takes two benchmark runs of the same groups (ToyFaces pairs or CelebA
targets) and seeds that differ only in the generator, and a table that reads them run by run: the runs share
their split, their baseline classifier and their labelers' seeds, so the per-run difference B − A removes what
the seed shares, as :func:`fairlatent.benchmark.markdown.paired_differences` does between methods.

Input: the ``results.json`` of each folder (any benchmark built on :class:`fairlatent.benchmark.tasks.
TaskBenchmark`: its ``runs`` are ``<group>/seed<s>`` records with ``latent`` and ``methods``). Runs present
in only one folder are named and left out.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fairlatent.benchmark.markdown import _f, _mean_sd, _msd, _msd_signed
from fairlatent.errors import FairlatentError
from fairlatent.utils.io import read_json

#: (field, heading, digits, higher is better) of what is compared per run
FIELDS = (("h_t", "h_t acc", 3, True), ("h_g", "h_g acc", 3, True), ("abs_cos", "|cos θ|", 3, False),
          ("flip", "flip", 3, True), ("keep", "keep", 3, True), ("fid", "FID G(z)", 1, False),
          ("d_deo", "ΔDEO", 1, False), ("d_ap", "ΔAP", 2, True))


def read_results(folder: str | Path) -> dict[str, Any]:
    """A benchmark folder's ``results.json`` (or the file itself), checked to hold run records."""
    path = Path(folder)
    path = path / "results.json" if path.is_dir() else path
    if not path.is_file():
        raise FairlatentError(f"{path}: no results.json (is {folder} a benchmark folder?)")
    results = read_json(path)
    if not isinstance(results.get("runs"), dict):
        raise FairlatentError(f"{path}: no 'runs' mapping (not a benchmark's results.json)")
    return results


def run_figures(run: dict[str, Any], method: str) -> dict[str, float | None]:
    """One run's figures for the comparison: the latent diagnostics, the FID of all of G(z) against the real
    images (when the run measured it), the baseline's DEO and ``method``'s paired ΔDEO (with its interval) and
    ΔAP against the baseline (test split). A figure the run lacks is None."""
    lat = run.get("latent") or {}
    res = (run.get("methods") or {}).get(method) or {}
    vs = res.get("vs_baseline") or {}
    fid = next((row.get("FID") for row in run.get("generative") or [] if row.get("name") == "G(z) · all"), None)
    base = ((run.get("methods") or {}).get("baseline") or {}).get("DEO") or {}
    cos = lat.get("cos_theta")
    return {"h_t": lat.get("h_t_heldout_acc"), "h_g": lat.get("h_g_heldout_acc"),
            "abs_cos": None if cos is None else abs(cos), "flip": lat.get("flip_rate_g"),
            "keep": lat.get("keep_rate_t"), "fid": fid, "base_deo": base.get("median"),
            "d_deo": (vs.get("DEO") or {}).get("median"), "d_deo_lo": (vs.get("DEO") or {}).get("lo"),
            "d_deo_hi": (vs.get("DEO") or {}).get("hi"), "d_ap": (vs.get("AP") or {}).get("median")}


def _group(key: str) -> str:
    return key.rsplit("/seed", 1)[0]


def compare_latents(a: dict[str, Any], b: dict[str, Any], *, method: str = "latent_debias") -> dict[str, Any]:
    """Compare ``method`` between two benchmarks' results (A, B) over the runs they share.

    Returns ``{"method", "runs": {key: {"a": figures, "b": figures}}, "groups": {group: {field: {"a", "b",
    "b_minus_a"}}}, "only_a", "only_b"}``: per shared run the figures of :func:`run_figures`; per group (pair
    or target) and field the mean ± sd over its seeds of A, of B and of the per-run difference B − A
    (``{"mean", "sd", "n"}``); and the run keys present in one folder only."""
    runs_a, runs_b = a["runs"], b["runs"]
    shared = [k for k in runs_a if k in runs_b]
    if not shared:
        raise FairlatentError("the two benchmarks share no run (same pair or target and seed): nothing to compare")
    per_run = {k: {"a": run_figures(runs_a[k], method), "b": run_figures(runs_b[k], method)} for k in shared}
    groups: dict[str, dict[str, dict[str, Any]]] = {}
    for g in dict.fromkeys(_group(k) for k in shared):
        keys = [k for k in shared if _group(k) == g]
        groups[g] = {}
        for f, *_ in FIELDS:
            va = [per_run[k]["a"][f] for k in keys]
            vb = [per_run[k]["b"][f] for k in keys]
            both = [(x, y) for x, y in zip(va, vb) if x is not None and y is not None]
            groups[g][f] = {"a": _mean_sd([x for x in va if x is not None]),
                            "b": _mean_sd([y for y in vb if y is not None]),
                            "b_minus_a": _mean_sd([y - x for x, y in both])}
    return {"method": method, "runs": per_run, "groups": groups,
            "only_a": sorted(set(runs_a) - set(shared)), "only_b": sorted(set(runs_b) - set(shared))}


def _deo_f(fig: dict[str, float | None]) -> str:
    if fig["d_deo"] is None:
        return "–"
    lo, hi = fig["d_deo_lo"], fig["d_deo_hi"]
    sig = lo is not None and hi is not None and (hi < 0 or lo > 0)
    text = f"{fig['d_deo']:+.1f}" + ("" if lo is None or hi is None else f" [{lo:+.1f}, {hi:+.1f}]")
    return f"**{text}**" if sig else text


def comparison_markdown(cmp: dict[str, Any], names: tuple[str, str] = ("A", "B")) -> str:
    """The comparison as markdown: per group the mean ± sd over seeds of A, B and B − A, then every run."""
    a, b = names
    m = cmp["method"]
    lines = [f"## `{m}`: {a} against {b}", "",
             f"Per group (pair or target): mean ± sd over the seeds; {b} − {a} is taken within each run (same "
             f"split, baseline and seed) and then averaged. h_t, h_g: held-out accuracy of the latent hyperplanes; "
             f"|cos θ|: the angle between them; flip / keep: share of pairs whose f_g label flipped / f_t label "
             f"held on the images; FID of all G(z) against the real images; ΔDEO, ΔAP: `{m}` − baseline (test "
             "medians, points).", "",
             "| group | figure | " + f"{a} | {b} | {b} − {a} | better on the mean |", "|---|---|---|---|---|---|"]
    for g, per in cmp["groups"].items():
        for f, heading, digits, higher in FIELDS:
            c = per[f]
            if not c["a"]["n"] and not c["b"]["n"]:
                continue
            d = c["b_minus_a"]
            better = "–" if d["mean"] is None or d["mean"] == 0 else (b if (d["mean"] > 0) == higher else a)
            cell = heading.replace("|", "\\|")  # "|cos θ|" inside a table cell: escaped, or it splits the row
            lines.append(f"| {g} | {cell} | {_msd(c['a'], digits)} | {_msd(c['b'], digits)} | "
                         f"{_msd_signed(d, digits)} | {better} |")
    lines += ["", f"Every run (ΔDEO: median [95 % paired interval], bold where it excludes 0):", "",
              f"| run | baseline DEO | {a}: h_t / h_g / abs cos / keep | {a}: ΔDEO | {b}: h_t / h_g / abs cos / keep "
              f"| {b}: ΔDEO |", "|---|---:|---|---|---|---|"]
    for key, fig in cmp["runs"].items():
        def diag(x: dict[str, float | None]) -> str:
            return " / ".join(_f(x[f], 2) for f in ("h_t", "h_g", "abs_cos", "keep"))
        lines.append(f"| {key} | {_f(fig['a']['base_deo'], 1)} | {diag(fig['a'])} | {_deo_f(fig['a'])} | "
                     f"{diag(fig['b'])} | {_deo_f(fig['b'])} |")
    for side, keys in ((a, cmp["only_a"]), (b, cmp["only_b"])):
        if keys:
            lines += ["", f"Only in {side} ({len(keys)} runs, left out): " + ", ".join(f"`{k}`" for k in keys) + "."]
    return "\n".join(lines) + "\n"


__all__ = ["FIELDS", "compare_latents", "comparison_markdown", "read_results", "run_figures"]
