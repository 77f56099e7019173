"""A latent-settings variant of the ToyFaces benchmark beside the published sweep, run by run.

A variant (e.g. class-balanced hyperplanes, ``--set latent.plane_weights=cells``) is measured on the same
pairs and seeds as ``docs/benchmarks/toyfaces.json``. Its GANs are the sweep's when it ran with
``--set gan_from=<sweep folder>``, or, on the CPU the sweep ran on, retrained bit for bit (same seed, same
thread count); the baseline column says which: its DEO must equal the sweep's, else the two runs did not see
the same data and classifier, and the row is marked. Per (pair, seed) run found in both, for each latent
method: the paired ΔDEO against the baseline, median [95 % interval] (ΔAP), in the sweep and in the variant,
with the diagnostics that explain the difference (|cos θ|, f_g's flip rate and f_t's keep rate on the images,
and whether the pre-flight blocked the method, with the checks that blocked it in the variant::

    python benchmarks/toyfaces_variant_compare.py docs/benchmarks/toyfaces.json runs/toyfaces-cells/results.json

Reads only the two ``results.json``; writes nothing. The closing lines apply the issue's rule to the pairs the
variant covers on every seed the sweep has (eligible: mean baseline DEO ≥ 5; lowered / raised: more than half
of the seeds' intervals below / above 0), for both.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

MIN_DEO = 5.0


def _delta(run: dict, method: str) -> str:
    m = run["methods"].get(method)
    if m is None or "vs_baseline" not in m:
        return "–"
    d, a = m["vs_baseline"]["DEO"], m["vs_baseline"]["AP"]
    mark = "**" if d["lo"] > 0 else ""
    return f"{mark}{d['median']:+.1f} [{d['lo']:+.1f}, {d['hi']:+.1f}]{mark} ({a['median']:+.1f})"


def _diag(run: dict) -> str:
    lat = run.get("latent") or {}
    if not lat:
        return "–"
    return f"{abs(lat['cos_theta']):.2f} / {lat['flip_rate_g']:.2f} / {lat['keep_rate_t']:.2f}"


def _blocked(run: dict, method: str) -> str:
    pf = run.get("preflight") or {}
    ok = pf.get("by_method", {}).get(method)
    if ok is None:
        return "?"
    return "quiet" if ok else "blocked"


def _blocking(run: dict) -> str:
    pf = run.get("preflight") or {}
    return ", ".join(pf.get("blocking", [])) or "–"


def _verdict(runs: list[dict], method: str) -> str | None:
    ds = [r["methods"][method]["vs_baseline"]["DEO"] for r in runs if method in r["methods"]]
    if len(ds) != len(runs):
        return None
    half = len(ds) / 2
    if sum(d["hi"] < 0 for d in ds) > half:
        return "lowered"
    if sum(d["lo"] > 0 for d in ds) > half:
        return "raised"
    return "neither"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("sweep", type=Path, help="the published results.json")
    ap.add_argument("variant", type=Path, help="the variant's results.json")
    args = ap.parse_args(argv)
    ref = json.loads(args.sweep.read_text())["runs"]
    var = json.loads(args.variant.read_text())["runs"]
    methods = [m for m in ("latent_debias", "latent_debias_filtered", "latent_debias_verified")
               if any(m in r["methods"] for r in var.values())]
    common = sorted(k for k in var if k in ref)
    if not common:
        print(f"{args.variant}: no finished run shares a (pair, seed) with {args.sweep}", file=sys.stderr)
        return 1
    print("| pair | seed | baseline DEO sweep / variant | |cos θ|, flip, keep: sweep → variant | "
          + " | ".join(f"{m}: sweep → variant" for m in methods) + " | blocking: sweep → variant |")
    print("|---|---:|---|---|" + "---|" * len(methods) + "---|")
    for k in common:
        r, v = ref[k], var[k]
        b_r, b_v = (x["methods"]["baseline"]["DEO"]["median"] for x in (r, v))
        same = "" if abs(b_r - b_v) < 1e-9 else " (**differs**: other data or classifier)"
        cells = [f"{_delta(r, m)} {_blocked(r, m)} → {_delta(v, m)} {_blocked(v, m)}" for m in methods]
        print(f"| {r['pair']} | {r['seed']} | {b_r:.1f} / {b_v:.1f}{same} | {_diag(r)} → {_diag(v)} | "
              + " | ".join(cells) + f" | {_blocking(r)} → {_blocking(v)} |")
    print()
    pairs = sorted({ref[k]["pair"] for k in common})
    for p in pairs:
        seeds_ref = [r for r in ref.values() if r["pair"] == p]
        seeds_var = [var[k] for k in common if var[k]["pair"] == p]
        if len(seeds_var) < len(seeds_ref):
            print(f"{p}: the variant has {len(seeds_var)} of the sweep's {len(seeds_ref)} seeds; no pair verdict")
            continue
        deo = sum(r["methods"]["baseline"]["DEO"]["median"] for r in seeds_ref) / len(seeds_ref)
        verdicts = ", ".join(f"{m} {_verdict(seeds_ref, m)} → {_verdict(seeds_var, m)}" for m in methods)
        print(f"{p}: mean baseline DEO {deo:.1f} ({'eligible' if deo >= MIN_DEO else 'below the bar'}); {verdicts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
