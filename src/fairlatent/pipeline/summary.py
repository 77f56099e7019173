"""The numbers of a finished run, written to ``report.json``, and the files the report reads beside it.

Why here and not in :mod:`fairlatent.report`: assembling the summary needs the run's stage results, its
data set and its generator, all of which the pipeline owns. The report layer sits above the pipeline and must
not reach back into a live :class:`~fairlatent.pipeline.run.Pipeline`; it renders ``report.html`` and the
terminal tables from ``report.json`` and the files named in its ``"files"`` entry (paths relative to the run
directory), so a report can be rebuilt from a run folder alone, on another machine, long after the run.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fairlatent.utils.io import save_npy, write_json
from fairlatent.utils.json_safe import nulls_with_reasons

if TYPE_CHECKING:  # pragma: no cover
    from fairlatent.pipeline.run import Pipeline

REPORT_JSON = "report.json"
# 64 generator samples for the report's sample grid (the generator is not loaded by the report)
GAN_SAMPLES = "gan_samples.npy"
N_GAN_SAMPLES = 64


def label_cells(data, target: str, protected: str) -> dict[str, dict[str, Any]]:
    """Per split: size, P(g = t) and the four (target, protected) cell counts of the real data set."""
    cells = {}
    for split in ("train", "val", "test", "test_balanced"):
        idx = data.split_indices(split, required=False)
        if idx.size:
            tt, gg = data.labels(target, idx), data.labels(protected, idx)
            cells[split] = {"n": int(idx.size), "P(g=t)": float((tt == gg).mean()),
                            **{f"t{a}_g{b}": int(((tt == a) & (gg == b)).sum()) for a in (0, 1) for b in (0, 1)}}
    return cells


def summarize_run(pipe: "Pipeline", total_seconds: float) -> dict[str, Any]:
    """The report dict of a run whose stages have all run (or been skipped): config, data cells, every
    method's evaluation, the latent-space numbers, generative metrics, timings and the report's input files."""
    st = pipe.stages.results
    evaluation = {m: st["evaluate"].outputs[m] for m in pipe.cfg.methods}
    report: dict[str, Any] = {
        "config": pipe.cfg.model_dump(),
        "target": pipe.t,
        "protected": pipe.g,
        "data": {"path": st["data"].outputs["path"], "cells": label_cells(pipe._data(), pipe.t, pipe.g),
                 # data.skew on a data set read from a path: the subsampled splits, requested vs achieved
                 **({"subsampled_from": st["data"].outputs["source"], "skew": st["data"].outputs["skew"]}
                    if "skew" in st["data"].outputs else {})},
        "methods": evaluation,
    }
    if pipe.extra:  # every method's fairness metrics per protected attribute are in methods.<m>.by_protected
        report["protected_extra"] = pipe.extra
    if "hyperplanes" in st:
        hp, pairs = st["hyperplanes"].outputs, st["pairs"].outputs
        comp = pairs.get("complementary", next(iter(pairs.values())))
        report["latent"] = {
            "h_t_heldout_acc": hp["h_t"]["heldout_acc"], "h_g_heldout_acc": hp["h_g"]["heldout_acc"],
            "h_t_fit_acc": hp["h_t"]["fit_acc"], "h_g_fit_acc": hp["h_g"]["fit_acc"],
            "cos_theta": hp["cos_theta"],
            "angle_deg": float(np.degrees(np.arccos(np.clip(hp["cos_theta"], -1, 1)))), "pairs": comp["pairs"],
            "flip_rate_g": comp["flip_rate_g"],
            "keep_rate_t": comp["keep_rate_t"], "p_ft1_given_fg": comp["p_ft1_given_fg"],
            "agreement_dropped": comp["agreement_dropped"], "edits": pairs,
            "labeler_weights": st["labeler"].outputs.get("weights", "none"),
            "generated_label_rates": {"t": st["latents"].outputs["rate_t"], "g": st["latents"].outputs["rate_g"],
                                      "cells": st["latents"].outputs["cells"]},
        }
        if "labeler_check" in st:  # f_t's and f_g's accuracy per (t, g) cell of the real validation images
            report["latent"]["labeler_check"] = st["labeler_check"].outputs
        if "h_extra" in hp:  # the extra protected planes of latent_debias_multi, with their angles to h_t, h_g
            report["latent"]["h_extra"] = {a: {k: v for k, v in h.items() if k not in ("w", "b")}
                                           for a, h in hp["h_extra"].items()}
    if pipe.preflight is not None:
        report["preflight"] = pipe.preflight
    check = validation_check(evaluation)
    if check is not None:
        report["validation_check"] = check
    if "translations" in st:  # what the CycleGAN did to the real images (cyclegan_augment)
        report["translations"] = st["translations"].outputs
    if "oversample" in st:  # latent_oversample: cell counts before and after, what the RAE decoded
        report["oversample"] = st["oversample"].outputs
    if "oversample_check" in st:  # ... and how the labelers f_t, f_g read the decoded cells
        report["oversample_check"] = st["oversample_check"].outputs
    if "generative" in st:
        report["generative"] = st["generative"].outputs
    if "audit" in st:  # the audit stage's summary (pipeline/audit.py); its pictures are in the file named below
        report["audit"] = st["audit"].outputs
    report["timings_s"] = {**pipe.stages.timings(), "total": round(total_seconds, 2)}
    report["files"] = _report_files(pipe)
    return report


def paired_verdict(paired: dict[str, Any] | None) -> str:
    """"raised" / "lowered" when a paired difference's interval lies above / below 0, else "unchanged";
    "undefined" when its bounds are missing or not finite."""
    lo, hi = (paired or {}).get("lo"), (paired or {}).get("hi")
    if not all(isinstance(v, (int, float)) and np.isfinite(v) for v in (lo, hi)):
        return "undefined"
    return "raised" if lo > 0 else "lowered" if hi < 0 else "unchanged"


#: Below this baseline DEO on the validation split (points, the bootstrap median) the check says there is almost
#: nothing to remove. Why 2: on the ToyFaces sweep (docs/benchmarks/toyfaces.md, 36 runs), of the 10 runs whose
#: baseline test DEO was under 2 points the default latent method lowered DEO significantly on 1 and raised it on
#: 3 (the paper's method 0 and 1, reweighting 1 and 1); between 2 and 5 points it lowered 3 of 6 and raised
#: none, and from 5 up lowered 17 of 20. Under 2 points a method's change is at least as likely harm as help.
LITTLE_TO_REMOVE_DEO = 2.0


def validation_check(evaluation: dict[str, Any]) -> dict[str, Any] | None:
    """Which methods raised, lowered or left DEO on the validation split, paired with the baseline on the same
    resamples (the evaluate stage's ``paired_vs_baseline["val"]``); None for a run evaluated without it.

    Why: the pre-flight judges the pairs before any classifier trains; this judges the trained classifiers,
    on images a user may look at before choosing a model, so a method that made the classifier less fair
    there is named in the report. A method is *raised* when the paired 95 % interval of ΔDEO lies above 0,
    *lowered* when it lies below. The validation split is also where each method's threshold is calibrated,
    so these are the figures of the model a user would pick there, not an independent test: the test tables
    stay the ones to quote. Post-processing methods are fitted on validation and get no entry.

    ``little_to_remove`` is true when the baseline's own DEO on that split is under
    :data:`LITTLE_TO_REMOVE_DEO` points: the classifier is already about as fair as the split can show, and a
    method's change is at least as likely to make it less fair as more (measured on the ToyFaces sweep), so
    the report says to keep the baseline unless the test table shows a significant cut.
    """
    rows: dict[str, dict[str, Any]] = {}
    for m, res in evaluation.items():
        paired = ((res.get("paired_vs_baseline") or {}).get("val") or {})
        deo = paired.get("DEO")
        if m == "baseline" or not isinstance(deo, dict):
            continue
        rows[m] = {"verdict": paired_verdict(deo), "DEO": deo, "AP": paired.get("AP")}
    if not rows:
        return None
    baseline = {k: (evaluation.get("baseline", {}).get("val") or {}).get(k) for k in ("DEO", "AP")}
    deo = (baseline["DEO"] or {}).get("median")
    little = isinstance(deo, (int, float)) and bool(np.isfinite(deo)) and deo < LITTLE_TO_REMOVE_DEO
    return {"split": "val", "baseline": baseline, "methods": rows,
            "raised": [m for m, r in rows.items() if r["verdict"] == "raised"],
            "little_to_remove": little, "little_to_remove_below": LITTLE_TO_REMOVE_DEO}


def _report_files(pipe: "Pipeline") -> dict[str, str]:
    """Run-directory-relative paths of what the report draws: the evaluation scores, the complementary pair
    data set, the generator samples and the pre-flight G(z) samples per labelled cell (when the latent
    stages ran), the decoded rare-cell images (when the oversample stage ran), and the audit's HTML section and output folder (when the audit stage ran)."""
    st = pipe.stages.results
    rel = lambda p: str(Path(p).relative_to(pipe.run_dir))  # noqa: E731
    files = {"scores": rel(st["evaluate"].dir / "scores.npz")}
    if "pairs" in st:
        files["pairs"] = rel(st["pairs"].dir / "complementary")
        files["gan_samples"] = GAN_SAMPLES
    if "preflight" in st:
        files["cell_samples"] = rel(st["preflight"].dir / "cell_samples.npz")
    if "translations" in st:
        files["translations"] = rel(st["translations"].dir / "dataset")
    if "oversample" in st and st["oversample"].outputs.get("classes", "cells") == "cells":  # the control decodes none
        files["oversampled"] = rel(st["oversample"].dir / "dataset")
    if "audit" in st:
        from fairlatent.pipeline.audit import EXPLAIN_DIR, SECTION_HTML

        files["audit_section"] = rel(st["audit"].dir / SECTION_HTML)
        files["audit"] = rel(st["audit"].dir / EXPLAIN_DIR)
    return files


def write_summary(pipe: "Pipeline", total_seconds: float) -> dict[str, Any]:
    """Write ``report.json`` (and, after the latent stages, the generator samples it names); return the dict.

    The samples are drawn afresh each time (64 images, a fraction of a second) rather than cached in a stage:
    they depend only on the generator and the seed, which the ``gan`` stage already keys.
    """
    report = strict_report(summarize_run(pipe, total_seconds))
    if "gan_samples" in report["files"]:
        gen = pipe._image_generator()
        samples = gen.decode(gen.sample_latents(N_GAN_SAMPLES, seed=pipe.cfg.seed))
        save_npy(pipe.run_dir / report["files"]["gan_samples"], samples)
    write_json(pipe.run_dir / REPORT_JSON, report)
    return report


def _null_reason(path: str) -> str:
    """Why a value of the report is undefined, from where it sits (see :func:`strict_report`)."""
    parts = path.split(".")
    if parts[0] == "methods" and len(parts) >= 4:
        if parts[2] == "by_protected" and len(parts) >= 6:
            return (f"{parts[5]} for protected attribute {parts[3]} undefined on every resample of {parts[4]} (a "
                    "group of it or a target class is absent)")
        if parts[2] == "by_protected_vs_baseline" and len(parts) >= 6:
            return (f"{parts[5]} difference vs baseline for protected attribute {parts[3]} undefined on every "
                    f"resample of {parts[4]}")
        if parts[2] == "paired_vs_baseline":
            return f"{parts[4] if len(parts) > 4 else '?'} difference vs baseline undefined on every resample"
        return (f"{parts[3]} undefined on every resample of {parts[2]} (a protected group or a target class "
                "is absent)")
    if parts[0] == "audit":
        return "audit figure undefined (a metric undefined on every resample, or a layer without contribution)"
    if parts[0] == "generative":
        return "generative metric undefined (too few samples in this cell)"
    return "undefined"


def strict_report(report: dict[str, Any]) -> dict[str, Any]:
    """``report`` with every NaN/±Infinity as ``null`` and ``report["nulls"]`` naming each with its reason.

    Why before writing: ``report.json`` must be strict JSON (a bare ``NaN`` token is refused by every
    non-Python reader), and the report layer renders null as "n/a". ``None`` values the pipeline sets on
    purpose (P(f_t = 1 | f_g = 0) with no f_g = 0 image) stay None and explain themselves in the report.
    """
    clean, nulls = nulls_with_reasons(report, _null_reason)
    if nulls:
        clean["nulls"] = nulls
    return clean


def group_rates(report: dict[str, Any], run_dir: str | os.PathLike) -> tuple[dict[str, dict[str, Any]], str | None]:
    """Per split and method, the rates of each protected group (:func:`fairlatent.metrics.fairness.
    rates_by_group`) at the method's own threshold, computed as the report's threshold metrics are
    (``score > threshold``; a post-processing method's 0/1 decisions as they are), from the evaluate stage's
    scores file; and the reason when that file cannot be read (the tables are then left out). Point values
    on the whole split: the intervals of the gaps are in the metric tables."""
    from fairlatent.metrics.fairness import rates_by_group

    files = report.get("files", {})
    if "scores" not in files:
        return {}, "report.json names no evaluation scores file"
    path = Path(run_dir) / files["scores"]
    try:
        scores = dict(np.load(path, allow_pickle=False))
    except (OSError, ValueError, EOFError) as exc:
        return {}, f"{path}: {exc}"
    out: dict[str, dict[str, Any]] = {}
    for split in ("test", "test_balanced"):
        if f"_y/{split}" not in scores:
            continue
        y, g = scores[f"_y/{split}"], scores[f"_g/{split}"]
        for m, res in report["methods"].items():
            th = res.get("threshold")
            if f"{m}/{split}" in scores and isinstance(th, (int, float)) and np.isfinite(th):
                pred = scores[f"{m}/{split}"] > th
            elif f"{m}/{split}/decisions" in scores:
                pred = scores[f"{m}/{split}/decisions"] > 0.5
            else:
                continue
            out.setdefault(split, {})[m] = rates_by_group(y, pred.astype(np.int8), sensitive_features=g)
    return out, None


__all__ = ["GAN_SAMPLES", "LITTLE_TO_REMOVE_DEO", "REPORT_JSON", "group_rates", "label_cells", "paired_verdict",
           "strict_report", "summarize_run", "validation_check", "write_summary"]
