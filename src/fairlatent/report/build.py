"""Render a run's report: ``report.html`` (one self-contained file a person can read, images embedded) and
the metric tables printed in the terminal, from ``report.json`` and the files of the run directory.

The numbers come from ``report.json``, written by the pipeline (:mod:`fairlatent.pipeline.summary`); this
module never sees a live pipeline, so the report sits above the pipeline in the layering without a cycle and
a finished run folder can be re-rendered on its own (``build_report(run_dir)``).

Every user-controlled string (attribute names, paths, run names) is HTML-escaped by jinja2's autoescape.
"""

from __future__ import annotations

import base64
import io
import math
import os
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
from markupsafe import Markup
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from fairlatent.errors import FairlatentError
from fairlatent.pipeline.summary import group_rates
from fairlatent.utils.io import read_json, write_text
from fairlatent.utils.json_safe import nulls_with_reasons

REPORT_JSON = "report.json"  # the file fairlatent.pipeline.summary writes

HEADLINE = ["AP", "DEO", "BA", "KL", "DP", "EOdds", "acc", "worst_group_acc"]
# lower is better for the fairness metrics, higher for AP/accuracy
#: the metrics shown per protected attribute when a run has several (``data.protected_extra``)
PER_PROTECTED = ["DEO", "BA", "KL", "EOdds"]
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


NA = "n/a"


def finite(x: Any) -> float | None:
    """``x`` as a float when it is a finite number, else None.

    Why: a report.json holds None where a number is undefined (no generated image with f_g = 0, a metric
    on a split without both groups) and, when written before strict JSON, a bare NaN; neither may reach a
    ``%`` format, and both mean the same to a reader: "n/a".
    """
    if isinstance(x, bool) or not isinstance(x, (int, float, np.integer, np.floating)):
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def fmt_num(x: Any, spec: str = ".3f", na: str = NA) -> str:
    """``x`` formatted with ``spec``, or ``na`` when it is missing or not finite."""
    v = finite(x)
    return na if v is None else format(v, spec)


def fmt_interval(m: dict[str, Any] | None) -> str:
    """``median [lo, hi]`` with one decimal; "n/a" when the median is undefined (an interval alone says
    nothing), the bare median when only the interval is undefined."""
    med = finite((m or {}).get("median"))
    if med is None:
        return NA
    lo, hi = finite(m.get("lo")), finite(m.get("hi"))
    return f"{med:.1f}" if lo is None or hi is None else f"{med:.1f} [{lo:.1f}, {hi:.1f}]"


def fmt_paired(d: dict[str, Any] | None) -> str:
    """``median [lo, hi] (P better)`` of a paired difference, signed; "n/a" when undefined."""
    med = finite((d or {}).get("median"))
    if med is None:
        return NA
    lo, hi, p = finite(d.get("lo")), finite(d.get("hi")), finite(d.get("p_better"))
    text = f"{med:+.1f}" if lo is None or hi is None else f"{med:+.1f} [{lo:+.1f}, {hi:+.1f}]"
    return text if p is None else f"{text} ({p:.0%})"


def best_medians(methods: dict[str, Any], split: str, metrics: list[str]) -> dict[str, float | None]:
    """Per metric, the best defined median over the methods evaluated on ``split`` (None: none defined)."""
    best: dict[str, float | None] = {}
    for metric in metrics:
        vals = [v for r in methods.values() if split in r
                if (v := finite(r[split].get(metric, {}).get("median"))) is not None]
        best[metric] = (min(vals) if metric in LOWER_IS_BETTER else max(vals)) if vals else None
    return best


def _methods_table(title: str, first: str, names: list[str]) -> Table:
    """An empty terminal table: a bold first column ``first``, then one right-aligned column per method."""
    table = Table(title=title)
    # no_wrap: with many methods in a narrow terminal rich would otherwise squeeze the metric names to nothing
    table.add_column(first, style="bold", no_wrap=True)
    for name in names:
        table.add_column(escape(name), justify="right", no_wrap=True)
    return table


def metric_table(methods: dict[str, Any], split: str, metrics: list[str] = HEADLINE) -> Table:
    """The terminal table: one row per metric, one column per method, ``median [95 % interval]``.

    Metrics run down the rows so the table stays readable in an 80-column terminal with several methods.
    """
    names = [m for m, res in methods.items() if split in res]
    table = _methods_table(f"{split}: median [95% bootstrap interval]; percent, KL in nats", "metric", names)
    for metric in metrics:
        arrow = "↓" if metric in LOWER_IS_BETTER else "↑"
        table.add_row(f"{DISPLAY.get(metric, metric)} {arrow}",
                      *[fmt_interval(methods[n][split].get(metric)) for n in names])
    return table


def protected_attributes(report: dict[str, Any]) -> list[str]:
    """Every protected attribute of a run with extra ones (the main one first); empty for a run without."""
    extra = report.get("protected_extra") or []
    return [report["protected"], *extra] if extra else []


def protected_table(methods: dict[str, Any], split: str, attributes: list[str],
                    metrics: list[str] = PER_PROTECTED) -> Table:
    """The terminal table of a run with several protected attributes: one row per metric and attribute, one
    column per method, ``median [95 % interval]`` (as :func:`metric_table`); then, per attribute, the paired
    ΔDEO against the baseline on the same resamples (``–`` for the baseline itself)."""
    names = [m for m, res in methods.items() if split in (res.get("by_protected") or {}).get(attributes[0], {})]
    table = _methods_table(f"{split}: fairness per protected attribute; median [95% bootstrap interval]",
                           "metric (protected)", names)
    for metric in metrics:
        arrow = "↓" if metric in LOWER_IS_BETTER else "↑"
        for a in attributes:
            table.add_row(escape(f"{DISPLAY.get(metric, metric)} {arrow} ({a})"),
                          *[fmt_interval(((methods[n]["by_protected"].get(a) or {}).get(split) or {}).get(metric))
                            for n in names])
    if any("by_protected_vs_baseline" in methods[n] for n in names):
        for a in attributes:
            table.add_row(escape(f"ΔDEO vs baseline ({a})"), *[
                "–" if "by_protected_vs_baseline" not in methods[n]
                else fmt_paired(((methods[n]["by_protected_vs_baseline"].get(a) or {}).get(split) or {}).get("DEO"))
                for n in names])
    return table


def render_html(report: dict[str, Any], figures: dict[str, str], *, run_dir: str,
                missing: dict[str, str] | None = None, sections: dict[str, str] | None = None,
                rates: dict[str, dict[str, Any]] | None = None) -> str:
    """The self-contained HTML page. Every string from the report is escaped (jinja2 autoescape).

    ``missing`` maps a figure that could not be drawn to the reason, shown in its place as "n/a (reason)".
    Every number goes through ``fmt_num`` / ``fmt_interval`` / ``fmt_paired``, which print "n/a" for None
    and NaN: a None reaching ``'%.3f' %`` is a TypeError after the whole pipeline has run, and every stage
    is cached, so each rerun would fail the same way. ``sections`` maps a name to an HTML fragment fairlatent
    rendered itself (already escaped, :func:`report_sections`), inserted as it is. ``rates``: per split, the
    rates by protected group (:func:`group_rates`); a split without them shows no such table.
    """
    env = jinja2.Environment(loader=jinja2.PackageLoader("fairlatent.report", "templates"),
                             autoescape=jinja2.select_autoescape(["html", "j2"], default=True),
                             undefined=jinja2.StrictUndefined)
    env.filters["interval"] = fmt_interval
    env.filters["paired"] = fmt_paired
    env.filters["num"] = fmt_num
    env.filters["signed"] = fmt_signed
    evaluation = report["methods"]
    splits = [s for s in ("test", "test_balanced") if any(s in r for r in evaluation.values())]
    protected = str(report.get("protected"))
    return env.get_template("report.html.j2").render(
        report=report, figures=figures, missing=missing or {}, metrics=HEADLINE, lower_is_better=LOWER_IS_BETTER,
        run_dir=run_dir, splits=splits, best={s: best_medians(evaluation, s, HEADLINE) for s in splits}, na=NA,
        protected_all=protected_attributes(report), protected_metrics=PER_PROTECTED,
        sections={k: Markup(v) for k, v in (sections or {}).items()},
        rates={s: rates_rows(r, protected) for s, r in (rates or {}).items()})


def fmt_signed(d: dict[str, Any] | None) -> str:
    """``median [lo, hi]`` of a difference, signed, one decimal; "n/a" when undefined."""
    med = finite((d or {}).get("median"))
    if med is None:
        return NA
    lo, hi = finite(d.get("lo")), finite(d.get("hi"))
    return f"{med:+.1f}" if lo is None or hi is None else f"{med:+.1f} [{lo:+.1f}, {hi:+.1f}]"


def report_sections(report: dict[str, Any], run_dir: str | os.PathLike) -> tuple[dict[str, str], dict[str, str]]:
    """HTML fragments the run's stages rendered for the report, by name, and the reason for each that cannot
    be shown. Now one: ``audit``, the audit stage's ``<section>`` (its per-unit tables and pictures,
    :func:`fairlatent.explain.render_audit_section`, escaped when it was rendered). A fragment holding a
    script is refused: fairlatent never writes one, so it did not come from the stage."""
    files = report.get("files", {})
    sections: dict[str, str] = {}
    missing: dict[str, str] = {}
    if "audit" in report:
        if "audit_section" not in files:
            missing["audit"] = "report.json names no audit section file"
        else:
            path = Path(run_dir) / files["audit_section"]
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                missing["audit"] = f"{path}: {_reason(exc)}"
            else:
                if "<script" in text.lower():
                    missing["audit"] = f"{path}: holds a script, which the audit stage never writes; not embedded"
                else:
                    sections["audit"] = text
    return sections, missing


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
        table.add_row(escape(name), *[fmt_paired(paired.get(m)) for m in metrics])
    return table


#: the columns of the rates-by-group table: (key in :func:`fairlatent.metrics.fairness.rates_by_group`, header)
RATE_COLUMNS = (("TPR", "TPR"), ("FPR", "FPR"), ("selection_rate", "P(ŷ=1)"))


def rates_rows(rates: dict[str, Any], protected: str) -> tuple[list[str], list[list[str]]]:
    """The header and rows (strings) of one split's rates-by-group table, for the terminal and the page."""
    groups = sorted({a for by_group in rates.values() for a in by_group}, key=str)
    header = ["method"] + [f"{label} {protected}={a}" for _, label in RATE_COLUMNS for a in groups]
    rows = [[name] + [fmt_num((by_group.get(a) or {}).get(key), ".3f") for key, _ in RATE_COLUMNS for a in groups]
            for name, by_group in rates.items()]
    return header, rows


def load_report(run_dir: str | os.PathLike) -> dict[str, Any]:
    """``report.json`` of a finished run (written by :func:`fairlatent.pipeline.summary.write_summary`)."""
    path = Path(run_dir) / REPORT_JSON
    if not path.is_file():
        raise FairlatentError(f"{path}: no report.json; run the pipeline in {run_dir} first (`fairlatent run`)")
    report = read_json(path)
    if not isinstance(report, dict) or not isinstance(report.get("methods"), dict):
        raise FairlatentError(f"{path}: not a fairlatent report (no \"methods\" object)")
    # NaN/±Infinity (bare tokens in a report.json written before strict JSON) as None, as written now
    return nulls_with_reasons(report)[0]


def report_figures(report: dict[str, Any], run_dir: str | os.PathLike) -> tuple[dict[str, str], dict[str, str]]:
    """The report's figures as base64 PNGs, and the reason for each figure that could not be drawn.

    Drawn from files in the run directory that ``report["files"]`` names: score histograms and metric bars
    (evaluation scores), the G(z)/G(z') pairs (the pair data set), generator samples, and real training
    images (the data set at ``report["data"]["path"]``). A figure whose input is gone (a moved data set, a
    deleted stage folder) or unusable is left out with its reason, shown as "n/a" in the page: the numbers
    in report.json are still worth a report.
    """
    from fairlatent.data.dataset import load_dataset
    from fairlatent.report import plots

    run_dir = Path(run_dir)
    files = report.get("files", {})
    methods = list(report["methods"])
    t, g = report["target"], report["protected"]
    figures: dict[str, str] = {}
    missing: dict[str, str] = {}

    def draw(name: str, fn) -> None:
        try:
            figures[name] = _png_b64(fn())
        except (FairlatentError, OSError, KeyError, ValueError) as exc:
            missing[name] = _reason(exc)

    scores = None
    if "scores" not in files:
        missing["hist_test"] = missing["bars_test"] = "report.json names no evaluation scores file"
    else:
        try:
            scores = dict(np.load(run_dir / files["scores"], allow_pickle=False))
        except (OSError, ValueError, EOFError) as exc:
            missing["hist_test"] = missing["bars_test"] = f"{run_dir / files['scores']}: {_reason(exc)}"
    for split in ("test", "test_balanced"):
        if scores is None or f"_y/{split}" not in scores:
            continue
        draw(f"hist_{split}", lambda: plots.score_histograms(
            # a post-processed method has decisions, not scores: no histogram of its own
            {m: scores[f"{m}/{split}"] for m in methods if f"{m}/{split}" in scores}, scores[f"_y/{split}"],
            scores[f"_g/{split}"],
            target=t, protected=g))
        draw(f"bars_{split}", lambda: plots.metric_bars(report["methods"], ["AP", "DEO", "BA", "KL"], split))
    if "pairs" in files:
        def pairs_png() -> bytes:
            pds = load_dataset(run_dir / files["pairs"])
            n = len(pds) // 2
            if n == 0:
                raise FairlatentError("the pair data set is empty (the agreement filter dropped every pair)")
            rng = np.random.default_rng(report["config"]["seed"])
            pick = np.sort(rng.choice(n, size=min(16, n), replace=False))
            imgs = np.stack([np.asarray(pds.images[i]) for i in pick] + [np.asarray(pds.images[n + i]) for i in pick])
            # row 1: G(z), row 2: G(z') — column k is one pair
            return _grid_png(imgs, nrow=len(pick), scale=max(1, 96 // imgs.shape[1]))

        draw("pairs", pairs_png)
    if "translations" in files:  # cyclegan_augment: real training images x and their translations T(x)
        def translations_png() -> bytes:
            tds = load_dataset(run_dir / files["translations"])
            real = load_dataset(report["data"]["path"])
            tr = real.split_indices("train")
            if len(tds) != len(tr):
                raise FairlatentError(f"{files['translations']} holds {len(tds)} images for {len(tr)} real training "
                                      "images; the data set changed since the run")
            rng = np.random.default_rng(report["config"]["seed"])
            pick = np.sort(rng.choice(len(tr), size=min(16, len(tr)), replace=False))
            imgs = np.concatenate([np.asarray(real.images[tr[pick]]), np.asarray(tds.images[pick])])
            # row 1: real x, row 2: T(x) in the other protected group — column k is one image
            return _grid_png(imgs, nrow=len(pick), scale=max(1, 96 // imgs.shape[1]))

        draw("translations", translations_png)
    if "gan_samples" in files:
        def samples_png() -> bytes:
            from fairlatent.utils.arrays import load_npy

            samples = load_npy(run_dir / files["gan_samples"], mmap=False)
            return _grid_png(samples, nrow=16, scale=max(1, 64 // samples.shape[1]))

        draw("gan_samples", samples_png)

    if "cell_samples" in files:  # the pre-flight's G(z) per labelled (target, protected) cell
        from fairlatent.latent.preflight import CELLS

        cell_samples: dict[str, np.ndarray] | None = None
        try:
            with np.load(run_dir / files["cell_samples"], allow_pickle=False) as npz:
                cell_samples = {k: npz[k] for k in npz.files}
        except (OSError, ValueError, EOFError) as exc:
            for c in CELLS:
                missing[f"cell_{c}"] = f"{run_dir / files['cell_samples']}: {_reason(exc)}"
        for c in CELLS if cell_samples is not None else ():
            if c not in cell_samples:
                missing[f"cell_{c}"] = "f_t, f_g put no generated image in this cell"
                continue
            imgs = cell_samples[c]
            draw(f"cell_{c}", lambda imgs=imgs: _grid_png(imgs, nrow=8, scale=max(1, 48 // imgs.shape[1])))

    if "oversampled" in files:  # latent_oversample: the RAE's decoded images of each rare (target, protected) cell
        from fairlatent.latent.preflight import CELLS

        decoded = report.get("oversample", {}).get("decoded", {})
        try:
            ods = load_dataset(run_dir / files["oversampled"])
            o_t, o_g = ods.labels(t), ods.labels(g)
        except (FairlatentError, OSError, KeyError, ValueError) as exc:
            ods = None
            for c in CELLS:
                missing[f"oversample_{c}"] = f"{run_dir / files['oversampled']}: {_reason(exc)}"
        for c in CELLS if ods is not None else ():
            rows = np.flatnonzero((o_t == int(c[1])) & (o_g == int(c[4])))[:16]  # the first 16 of the cell
            if not rows.size:
                missing[f"oversample_{c}"] = ("none decoded: the cell already holds the target count"
                                              if decoded.get(c) == 0 else "no decoded image of this cell")
                continue
            draw(f"oversample_{c}", lambda rows=rows: _grid_png(np.asarray(ods.images[rows]), nrow=8,
                                                                 scale=max(1, 48 // ods.image_size)))

    def real_png() -> bytes:
        data = load_dataset(report["data"]["path"])
        real_idx = data.split_indices("train")[:64]
        return _grid_png(np.asarray(data.images[np.sort(real_idx)]), nrow=16, scale=max(1, 64 // data.image_size))

    draw("real_samples", real_png)
    return figures, missing


def _reason(exc: BaseException) -> str:
    """One line saying why a figure is missing (a FairlatentError already names its file)."""
    if isinstance(exc, FileNotFoundError) and exc.filename:
        return f"{exc.filename}: no such file"
    if isinstance(exc, KeyError):
        return f"no {exc.args[0]!r} in the run's files"
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def print_summary(report: dict[str, Any], run_dir: str | os.PathLike, console: Console,
                  rates: dict[str, dict[str, Any]] | None = None) -> None:
    """The terminal view of a report: metric and paired tables per split, the latent line, the report path.
    ``rates``: :func:`group_rates` when the caller has it already (read from the run's scores when None).

    Paths and names are printed as text, not rich markup (a run folder may be called ``run[/b]``)."""
    evaluation = report["methods"]
    if rates is None:
        rates, _ = group_rates(report, run_dir)
    for split in ("test", "test_balanced"):
        if not any(split in r for r in evaluation.values()):
            continue
        console.print(metric_table(evaluation, split))
        if any("paired_vs_baseline" in r for r in evaluation.values()):
            console.print(paired_table(evaluation, split))
        if protected_attributes(report):
            console.print(protected_table(evaluation, split, protected_attributes(report)))
        if rates.get(split):
            header, rows = rates_rows(rates[split], str(report.get("protected")))
            table = Table(title=f"{split}: rates by group at each method's threshold (DEO is the TPR gap)")
            for i, h in enumerate(header):
                table.add_column(escape(h), style="bold" if i == 0 else None, justify="left" if i == 0 else "right",
                                 no_wrap=i == 0)
            for row in rows:
                table.add_row(*map(escape, row))
            console.print(table)
    if "latent" in report:
        lat = report["latent"]
        pct = lambda k: fmt_num(lat.get(k), ".1%")  # noqa: E731
        console.print(escape(f"latent: h_t held-out acc {fmt_num(lat.get('h_t_heldout_acc'))}, h_g held-out acc "
                             f"{fmt_num(lat.get('h_g_heldout_acc'))}, cos θ {fmt_num(lat.get('cos_theta'))}; "
                             f"{lat.get('pairs', NA)} pairs, f_g flipped {pct('flip_rate_g')}, "
                             f"f_t kept {pct('keep_rate_t')}"))
        multi = (lat.get("edits") or {}).get("multi_protected")
        if isinstance(multi, dict) and isinstance(multi.get("by_edit"), dict):
            for key, e in multi["by_edit"].items():  # latent_debias_multi: what each of its edits did on the images
                if isinstance(e, dict):
                    console.print(escape(
                        f"  multi edit flip {'+'.join(map(str, e.get('flip') or [key]))}: every flipped label "
                        f"flipped on {fmt_num(e.get('flip_rate_all'), '.1%')}, target and kept labels held on "
                        f"{fmt_num(e.get('keep_rate_all'), '.1%')} of {multi.get('pairs', NA)} pairs"), soft_wrap=True)
    for line in validation_lines(report.get("validation_check")):
        console.print(escape(line), soft_wrap=True)
    pre = report.get("preflight")
    if isinstance(pre, dict) and isinstance(pre.get("checks"), list):
        bad = [c for c in pre["checks"] if isinstance(c, dict) and not c.get("passed")]
        block = [c for c in bad if c.get("blocks", True)]  # reports before cautions existed: every failure blocked
        caution = [c for c in bad if not c.get("blocks", True)]
        console.print(escape(f"pre-flight: {len(pre['checks']) - len(bad)} of {len(pre['checks'])} checks passed"
                             + (f"; failed: {', '.join(str(c.get('name')) for c in block)}" if block else "")
                             + (f"; cautions (block no listed method): {', '.join(str(c.get('name')) for c in caution)}"
                                if caution else "")))
    over = report.get("oversample")
    if isinstance(over, dict) and over.get("classes") == "target":
        console.print(escape(f"oversample: the control, an autoencoder on {report.get('target')} alone "
                             f"(class sampling "
                             f"{over.get('class_sampling', NA)}, mixer {over.get('mixer', NA)}); nothing decoded"),
                      soft_wrap=True)
    if isinstance(over, dict) and isinstance(over.get("decoded"), dict):
        console.print(escape(f"oversample: decoded {over.get('images', NA)} images up to "
                             f"{over.get('target_count', NA)} per cell ({', '.join(f'{c} +{n}' for c, n in over['decoded'].items())})"),
                      soft_wrap=True)
    check = report.get("oversample_check")
    if isinstance(check, dict) and isinstance(check.get("decoded"), dict):
        real = check.get("real") or {}
        read = [f"{c} {fmt_num(d.get('in_cell'), '.0%')} (real {fmt_num(real.get(c, {}).get('in_cell'), '.0%')})"
                for c, d in check["decoded"].items()]
        console.print(escape("oversample: f_t and f_g put in their cell: " + ", ".join(read)), soft_wrap=True)
    audit = report.get("audit")
    if isinstance(audit, dict) and isinstance(audit.get("models"), dict):
        for line in audit_lines(audit):
            console.print(escape(line), soft_wrap=True)
    total = fmt_num(report.get("timings_s", {}).get("total"), ".0f")
    console.print(escape(f"report: {Path(run_dir) / 'report.html'}  ({total} s)"), soft_wrap=True)


def validation_lines(check: Any) -> list[str]:
    """The terminal's reading of the validation check (``report.json`` ``validation_check``): the methods that
    raised DEO on the validation split, with their paired ΔDEO, or that none did; nothing for a run without it."""
    if not isinstance(check, dict) or not isinstance(check.get("methods"), dict):
        return []
    raised = [m for m in check.get("raised") or [] if m in check["methods"]]
    if raised:
        lines = [f"validation check: {m} RAISED DEO on the validation split, ΔDEO "
                 f"{fmt_paired(check['methods'][m].get('DEO'))} against the baseline" for m in raised]
    else:
        lines = [f"validation check: no method raised DEO on the validation split "
                 f"({len(check['methods'])} compared with the baseline)"]
    if check.get("little_to_remove"):
        lines.append(little_to_remove_line(check))
    return lines


def little_to_remove_line(check: dict[str, Any]) -> str:
    """The validation check's warning that the baseline had almost no gap to remove (``little_to_remove``)."""
    deo = (check.get("baseline") or {}).get("DEO")
    return (f"validation check: the baseline's DEO on the validation split is only {fmt_interval(deo)} points "
            f"(under {fmt_num(check.get('little_to_remove_below'), 'g')}): there is almost nothing to remove, and "
            f"on such runs methods raised DEO at least as often as they lowered it; keep the baseline unless the test "
            f"table shows a significant cut")


def audit_lines(audit: dict[str, Any]) -> list[str]:
    """The audit in the terminal: one line per audited classifier (layer, units explained, detectors, units
    detecting the protected attribute, and the target's DEO change with them zeroed)."""
    st = audit.get("settings") or {}
    lines = [f"audit: units detecting {audit.get('protected')} (concepts: "
             f"{', '.join(map(str, audit.get('protected_concepts') or [])) or NA}), {st.get('probe_images', NA)} "
             f"probe images, quantile {st.get('quantile', NA)}"]
    for name, m in audit["models"].items():
        if not isinstance(m, dict):
            continue
        prot = m.get("protected_units")
        line = (f"  {name}: layer {m.get('layer', NA)}, {m.get('explained_units', NA)}/{m.get('units', NA)} units "
                f"explained, {m.get('detector_units', NA)} detectors, "
                f"{len(prot) if isinstance(prot, list) else NA} detect {audit.get('protected')}")
        deo = ((m.get("differences") or {}).get("ablated") or {}).get("DEO")
        if deo is not None:
            line += f"; ΔDEO with them zeroed {fmt_signed(deo)} pts"
        lines.append(line)
    return lines


def build_report(run_dir: str | os.PathLike, *, console: Console | None = None) -> dict[str, Any]:
    """Render ``run_dir/report.html`` from ``run_dir/report.json`` and the run's files, print the tables to
    ``console`` (a new one when None) and return the report dict. Needs no live pipeline: any finished run
    folder can be re-rendered."""
    report = load_report(run_dir)
    figures, missing = report_figures(report, run_dir)
    sections, missing_sections = report_sections(report, run_dir)
    rates, _ = group_rates(report, run_dir)  # an unreadable scores file is already named under the histograms
    html = render_html(report, figures, run_dir=str(run_dir), missing={**missing, **missing_sections},
                       sections=sections, rates=rates)
    write_text(Path(run_dir) / "report.html", html)
    print_summary(report, run_dir, console or Console(), rates=rates)
    return report


__all__ = ["HEADLINE", "LOWER_IS_BETTER", "NA", "RATE_COLUMNS", "audit_lines", "best_medians", "build_report", "finite",
           "fmt_interval", "fmt_num", "fmt_paired", "fmt_signed", "group_rates", "little_to_remove_line", "load_report",
           "metric_table", "paired_table", "print_summary", "protected_attributes", "protected_table", "rates_rows",
           "render_html", "report_figures", "report_sections", "validation_lines"]
