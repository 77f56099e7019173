"""The ToyFaces acceptance rule over the pairs of several sweeps at once.

A method measured in parts (the pairs the default misses in one folder, the other eligible pairs in another,
the demo's pair in a published file) is judged by the rule of ``docs/benchmarks/toyfaces.md`` over all of
them: per pair, each seed's paired ΔDEO [95 % interval] and the verdict (lowered / raised when more than half
of the seeds' intervals lie below / above 0), then :func:`fairlatent.benchmark.toyfaces.acceptance` over the
union of pairs (eligible: mean baseline DEO ≥ 5)::

    python benchmarks/toyfaces_acceptance_merge.py runs/os-hard/results.json runs/os-more/results.json \\
        docs/benchmarks/toyfaces_oversample.json --methods reweighting,latent_oversample,latent_oversample_probe

Each file is a ToyFaces benchmark's ``results.json`` (or its published copy). A pair found in two files is
refused: its seeds would come from different runs. Reads only; writes nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from fairlatent.benchmark.toyfaces import acceptance, pair_verdict


def merged_pairs(paths: list[Path]) -> dict[str, dict]:
    """``{pair: summary}`` from the files' ``pairs`` sections; a pair in two files is an error."""
    pairs: dict[str, dict] = {}
    origin: dict[str, Path] = {}
    for path in paths:
        try:
            res = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise SystemExit(f"{path}: not a readable results file ({exc})") from None
        if not isinstance(res, dict) or not isinstance(res.get("pairs"), dict):
            raise SystemExit(f"{path}: no 'pairs' section: not a ToyFaces benchmark's results")
        for name, summary in res["pairs"].items():
            if name in pairs:
                raise SystemExit(f"pair {name} is in both {origin[name]} and {path}: merge runs of one sweep only")
            pairs[name], origin[name] = summary, path
    return pairs


def _seed_cells(summary: dict, method: str) -> str:
    cells = []
    for d in summary["delta"][method]["DEO"]["per_seed"]:
        if d["lo"] is None or d["hi"] is None:
            cells.append(f"s{d['seed']} –")
            continue
        mark = "**" if d["hi"] < 0 or d["lo"] > 0 else ""
        cells.append(f"s{d['seed']} {mark}{d['median']:+.1f} [{d['lo']:+.1f}, {d['hi']:+.1f}]{mark}")
    return ", ".join(cells)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("results", nargs="+", type=Path)
    ap.add_argument("--methods", required=True, help="comma-separated methods to judge")
    args = ap.parse_args(argv)
    pairs = merged_pairs(args.results)
    methods = [m for m in args.methods.split(",") if m]
    for method in methods:
        missing = [p for p, s in pairs.items() if method not in s["delta"]]
        if missing:
            print(f"{method}: not measured on {', '.join(missing)} (left out for it)", file=sys.stderr)
        print(f"\n## {method}\n\n| pair | baseline DEO (mean) | ΔDEO per seed | ΔAP (mean) | verdict |\n|---|---:|---|---:|---|")
        for name, s in pairs.items():
            if method not in s["delta"]:
                continue
            dap = s["delta"][method]["AP"]["median"]["mean"]
            print(f"| {name} | {s['metrics']['baseline']['DEO']['mean']:.1f} | {_seed_cells(s, method)} | "
                  f"{'–' if dap is None else f'{dap:+.2f}'} | {pair_verdict(s, method)} |")
        acc = acceptance({p: s for p, s in pairs.items() if method in s["delta"]}, method)
        print(f"\n- {acc['line']}\n- {acc['per_seed_bar']['line']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
