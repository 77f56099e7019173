"""What the CelebA benchmark publishes beside ``results.md``: a machine-readable record, an AP-versus-DEO figure,
and the copy of all three into the documentation folder (``--doc-dir``).

Rank 0 writes ``celeba.json`` and ``ap_vs_deo.png`` into the benchmark folder each time it rewrites
``results.md`` (:func:`write_benchmark_outputs`, before the markdown, so the markdown links the figure only
when it exists); at the end :func:`publish_docs` puts ``celeba.md``, ``celeba.json`` and
``celeba_ap_vs_deo.png`` into the documentation folder. The record's numbers come through
:func:`fairlatent.benchmark.markdown.metric_interval`, the accessor every table uses, so the JSON and the
tables show the same numbers by construction.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

from fairlatent.benchmark.markdown import (
    METRICS,
    PROTECTED_TABLE_METRICS,
    metric_interval,
    per_seed_means,
    protected_interval,
    results_markdown,
)
from fairlatent.errors import FairlatentError
from fairlatent.utils.io import write_json, write_text

JSON_NAME = "celeba.json"
FIGURE_NAME = "ap_vs_deo.png"
DOC_NAME = "celeba.md"
#: the figure's name in the documentation folder, which holds several benchmarks' files side by side
DOC_FIGURE_NAME = "celeba_ap_vs_deo.png"
BASELINE = "baseline"


def _runs(results: dict[str, Any], where: str) -> dict[str, dict[str, Any]]:
    runs = results.get("runs", {})
    if not isinstance(runs, dict):
        raise FairlatentError(f"{where}: 'runs' must map run keys to run records, got {type(runs).__name__}")
    for key, r in runs.items():
        if not isinstance(r, dict) or not isinstance(r.get("methods"), dict):
            raise FairlatentError(f"{where}: runs[{key!r}] has no 'methods' mapping (not a run record)")
    return runs


def _metric_names(runs: dict[str, dict[str, Any]]) -> list[str]:
    """Every metric any run record holds (an entry with a median), the tables' metrics first."""
    seen = {k for r in runs.values() for res in r["methods"].values() if isinstance(res, dict)
            for k, v in res.items() if isinstance(v, dict) and "median" in v and k != "vs_baseline"}
    return [k for k in METRICS if k in seen] + sorted(seen - set(METRICS))


def results_record(results: dict[str, Any], command: str | None = None, *,
                   where: str = "results.json") -> dict[str, Any]:
    """The machine-readable record of a CelebA benchmark's ``results.json`` content:
    ``{"command", "config", "runs": [{"target", "seed", "method", "split": "test", "metrics": {name:
    {"median", "lo", "hi"} | None}}]}``, one entry per (target, seed, method) of the ``runs`` bucket (the skew
    sweep is not a (target, seed) run and stays in ``results.json``), in the config's method order. With
    ``protected_extra``, an entry also has ``by_protected``: ``{attribute: {"DEO" | "BA" | "EOdds": {"median",
    "lo", "hi"} | None}}``, the main protected attribute included (the same numbers as its ``metrics``). An
    entry whose run recorded them has ``rates_by_group``: ``{group: {"n", "positives", "TPR", "FPR",
    "selection_rate"}}`` (fractions on the whole test split at the method's threshold; the "Which group
    moved" table is made of them).

    ``metrics`` has every metric that any run record holds, for every entry: the value is None (JSON null)
    where the metric does not apply to the method — a post-processing method such as
    ``threshold_optimizer_eo`` makes decisions, not scores, so it has no AP and no KL — or where its median
    is undefined (NaN, e.g. DEO with no positives in a group). The numbers are those of the markdown tables
    (read through :func:`~fairlatent.benchmark.markdown.metric_interval`), not recomputed. ``command``
    defaults to the one recorded in the results."""
    config = results.get("config")
    if not isinstance(config, dict):
        raise FairlatentError(f"{where}: no 'config' mapping (is this a benchmark's results.json?)")
    runs = _runs(results, where)
    metrics = _metric_names(runs)
    order = list(config.get("methods") or [])
    entries = []
    for key, r in runs.items():
        target = r.get("target", key.split("/")[0])
        seed = r.get("seed")
        for m in [*[m for m in order if m in r["methods"]], *sorted(set(r["methods"]) - set(order))]:
            entry = {"target": target, "seed": seed, "method": m, "split": "test",
                     "metrics": {k: metric_interval(r, m, k) for k in metrics}}
            attributes = r["methods"][m].get("by_protected") or {}
            if attributes:  # protected_extra: the fairness metrics with every protected attribute's groups
                entry["by_protected"] = {a: {k: protected_interval(r, m, a, k) for k in PROTECTED_TABLE_METRICS}
                                         for a in attributes}
            rates = r["methods"][m].get("rates_by_group")
            if rates:  # each protected group's TPR, FPR and P(ŷ=1) at the method's threshold (which group moved)
                entry["rates_by_group"] = rates
            entries.append(entry)
    entries.sort(key=lambda e: (str(e["target"]), -1 if e["seed"] is None else e["seed"]))  # stable: method order kept
    return {"command": command if command is not None else results.get("command"), "config": config,
            "runs": entries}


def plot_ap_vs_deo(results: dict[str, Any], path: str | os.PathLike) -> int:
    """Draw test AP against test DEO, one point per method and seed (the mean over that seed's targets of the
    run medians, as the tables' averages), into the PNG ``path``; return how many points were drawn.

    A method without AP (post-processing: decisions, not scores) has no point. Nothing is written when
    there is no point to draw (and a figure left at ``path`` by an earlier rewrite is removed, so the
    markdown never links numbers that are no longer in the results)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    runs = _runs(results, "results")
    methods = list(results.get("config", {}).get("methods") or sorted({m for r in runs.values() for m in r["methods"]}))
    means = per_seed_means(runs, methods)
    seeds = {m: [s for s in means[m]["AP"] if s in means[m]["DEO"]] for m in methods}
    points = {m: [(means[m]["DEO"][s], means[m]["AP"][s]) for s in seeds[m]] for m in methods}
    n = sum(len(p) for p in points.values())
    if n == 0:
        path.unlink(missing_ok=True)
        return 0
    markers = "osD^vP*Xh<>p"
    # mathtext off: method names are the user's (a `$` or `_` would be read as markup)
    with matplotlib.rc_context({"text.parse_math": False}):
        fig, ax = plt.subplots(figsize=(6.4, 4.8))
        for i, m in enumerate(methods):
            if not points[m]:
                continue
            x, y = zip(*points[m])
            base = m == BASELINE
            ax.scatter(x, y, s=110 if base else 45, marker=markers[i % len(markers)], color=f"C{i % 10}",
                       edgecolors="black" if base else "none", linewidths=1.8 if base else 0, zorder=3 if base else 2,
                       label=f"{m} (reference)" if base else m)
            for (px, py), seed in zip(points[m], seeds[m]):
                ax.annotate(f"s{seed}", (px, py), textcoords="offset points", xytext=(5, 4), fontsize=7,
                            color="0.35")
        ax.set_xlabel("DEO, % (test; lower is better)")
        ax.set_ylabel("AP, % (test; higher is better)")
        ax.set_title("CelebA: AP against DEO, mean over targets; one point per method and seed (s<seed>)",
                     fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="best")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
        plt.close(fig)
    os.replace(tmp, path)
    return n


def write_benchmark_outputs(results: dict[str, Any], out: str | os.PathLike) -> dict[str, Path | None]:
    """``OUT/celeba.json`` and ``OUT/ap_vs_deo.png`` (None when there is no point to draw yet)."""
    out = Path(out)
    write_json(out / JSON_NAME, results_record(results, where=str(out / "results.json")))
    drawn = plot_ap_vs_deo(results, out / FIGURE_NAME)
    return {"json": out / JSON_NAME, "figure": out / FIGURE_NAME if drawn else None}


_RESULTS_HEADING = re.compile(r"^## Results\b")
_HEADING = re.compile(r"^(#{1,5}) ")


def _doc_text(results_md: str, previous: str | None, out: Path) -> str:
    """The document: ``results.md`` as it is, or — when the document already exists with hand-written text
    above a ``---`` line followed by a ``## Results`` heading — that text kept, and below it the results with
    every heading one level down (the layout docs/benchmarks/celeba.md has), so a rerun does not erase the
    discussion of the numbers."""
    if previous:
        lines = previous.splitlines()
        for i, line in enumerate(lines):
            if line.strip() == "---":
                nxt = next((x for x in lines[i + 1:] if x.strip()), "")
                if _RESULTS_HEADING.match(nxt):
                    body = results_md.splitlines()
                    if body and body[0].startswith("# "):
                        body = body[1:]
                    body = [_HEADING.sub(lambda mt: "#" + mt.group(1) + " ", x) for x in body]
                    return "\n".join([*lines[:i + 1], "", f"## Results ({out / 'results.md'})", *body]).rstrip() + "\n"
    return results_md


def publish_docs(results: dict[str, Any], out: str | os.PathLike, doc_dir: str | os.PathLike,
                 name: str = "celeba") -> dict[str, Path]:
    """Put the benchmark's outputs into ``doc_dir``: ``<name>.md`` (``results.md``, with the figure linked
    under its name there; see :func:`_doc_text` for a document that already has text of its own),
    ``<name>.json`` and ``<name>_ap_vs_deo.png`` (``name`` "celeba": :data:`DOC_NAME`, :data:`JSON_NAME`,
    :data:`DOC_FIGURE_NAME`). Another name keeps a second benchmark's documents (other methods or targets on
    the same faces) beside the main one instead of over it. Writes the outputs in ``out`` first if they are
    missing."""
    if not re.fullmatch(r"[A-Za-z0-9_-]+", name):
        raise FairlatentError(f"--doc-name {name!r}: use letters, digits, '_' and '-' only (it names files)")
    out, doc_dir = Path(out), Path(doc_dir)
    doc_json, doc_figure, doc_md = f"{name}.json", f"{name}_ap_vs_deo.png", f"{name}.md"
    if not (out / JSON_NAME).is_file():
        write_benchmark_outputs(results, out)
    if doc_dir.exists() and not doc_dir.is_dir():
        raise FairlatentError(f"--doc-dir {doc_dir}: not a folder")
    doc_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": doc_dir / doc_json}
    shutil.copyfile(out / JSON_NAME, paths["json"])
    figure = None
    if (out / FIGURE_NAME).is_file():
        paths["figure"] = doc_dir / doc_figure
        shutil.copyfile(out / FIGURE_NAME, paths["figure"])
        figure = doc_figure
    else:
        (doc_dir / doc_figure).unlink(missing_ok=True)
    paths["md"] = doc_dir / doc_md
    previous = paths["md"].read_text() if paths["md"].is_file() else None
    write_text(paths["md"], _doc_text(results_markdown(results, figure=figure), previous, out))
    return paths


__all__ = ["DOC_FIGURE_NAME", "DOC_NAME", "FIGURE_NAME", "JSON_NAME", "plot_ap_vs_deo", "publish_docs",
           "results_record", "write_benchmark_outputs"]
