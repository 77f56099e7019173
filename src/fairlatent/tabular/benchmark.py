"""A resumable tabular benchmark: every (data set, model, seed) fitted, sampled and evaluated, beside the
fairlearn / reweighing competitors on the same splits and seeds.

Layout of ``out``::

    runs/<dataset>_<model>_s<seed>/      the fit (the engine's checkpoint: an interrupted fit resumes)
    results/<dataset>_<model>_s<seed>.json   its evaluation (written atomically; present = done)
    results/<dataset>_competitors_s<seed>.json
    summary.json, summary.md             one row per result (F1/accuracy/AUC of logistic regression and the
                                         mean F1 of the three classifiers, DP and EO differences with their
                                         bootstrap intervals, fidelity, risk difference, seconds per stage) and
                                         the mean ± sd over seeds per (data set, method)

:func:`write_outputs` turns a summary into ``tabular.md`` and ``tabular.json`` (``--doc-dir``), with the
published figures beside ours and a verdict on each of the issue's targets computed from the rows.

Run it again after an interruption: finished results are read back, an unfinished fit continues from its
checkpoint, nothing done is recomputed. The splits are the readers' (Adult: the official test file; COMPAS and
German: seeded by ``seed``), so each model and competitor of one seed sees the same rows.
"""

from __future__ import annotations

from pathlib import Path
import math
import time
from typing import Any, Mapping, Sequence

import numpy as np

from fairlatent.errors import FairlatentError
from fairlatent.utils.io import claim_output_directory, read_json, write_json, write_text

__all__ = ["DATASET_FILES", "MODELS", "epochs_for", "run_tabular_benchmark", "summarise", "aggregate"]

DATASET_FILES = {"adult": "adult.data", "compas": "compas-scores-two-years.csv", "german": "german.data"}
RECORD = "fairlatent-tabular-benchmark"


def _load(name: str, data_dir: Path, seed: int):
    from fairlatent.tabular.readers import load_table

    if name not in DATASET_FILES:
        raise FairlatentError(f"unknown data set {name!r}; one of {sorted(DATASET_FILES)}")
    path = data_dir / DATASET_FILES[name]
    if not path.is_file():
        raise FairlatentError(f"{path}: not found (the {name} file is expected in --data-dir)")
    return load_table(path, fmt=name, seed=seed)


def epochs_for(epochs: int | Mapping[str, int] | None, dataset: str) -> int | None:
    """The epoch count of ``dataset``: one number for all, or a mapping by data set (absent: the default)."""
    if epochs is None or isinstance(epochs, int):
        return epochs
    return epochs.get(dataset)


#: The benchmark's models: a name → (the model, settings that differ from its defaults). ``fairgan`` is the
#: paper's (D2 minimax); ``fairgan_dp`` swaps D2 for TabFairGAN's demographic-parity penalty on ŷ.
MODELS: dict[str, tuple[str, dict[str, Any]]] = {
    "ctgan": ("ctgan", {}),
    "fairgan": ("fairgan", {}),
    "fairgan_dp": ("fairgan", {"fair_loss": "demographic_parity"}),
}


def _config(variant: str, epochs: int | None, seed: int, small: bool):
    from fairlatent.tabular.synthesizer import config_class

    if variant not in MODELS:
        raise FairlatentError(f"unknown model {variant!r}; one of {sorted(MODELS)}")
    model, settings = MODELS[variant]
    cfg: dict[str, Any] = {"seed": seed, **settings}
    if epochs is not None:
        if model == "ctgan":
            cfg["epochs"] = epochs
        else:
            cfg["plain_epochs"], cfg["fair_epochs"] = epochs // 2, epochs - epochs // 2
    if small:  # German credit has 700 training rows: a batch of 500 would be most of an epoch
        cfg["batch_size"] = 100
    return config_class(model).model_validate(cfg)


def _epochs_of(cfg) -> int:
    return int(cfg.epochs) if cfg.model == "ctgan" else int(cfg.plain_epochs + cfg.fair_epochs)


def _check_reusable(path: Path, epochs: int) -> bool:
    """True when ``path`` holds a finished result of the same epoch count; a different count is an error."""
    if not path.is_file():
        return False
    got = read_json(path).get("epochs")
    if got is not None and int(got) != epochs:
        raise FairlatentError(f"{path}: a result of {got} epochs, and this call asks for {epochs}; "
                              "use another --out, or remove the file to recompute it")
    return True


def run_tabular_benchmark(out: str | Path, data_dir: str | Path, *, datasets: Sequence[str] = ("adult", "compas", "german"),
                          models: Sequence[str] = tuple(MODELS), seeds: Sequence[int] = (0,),
                          epochs: int | Mapping[str, int] | None = None, n_boot: int = 200, competitors: bool = True,
                          classifiers: Sequence[str] | None = None, progress: bool = True,
                          log=None) -> dict[str, Any]:
    """Run (or continue) the benchmark into ``out``; return the summary.

    ``epochs``: one count for every data set, or a mapping data set → count (others: the models' defaults).
    """
    from fairlatent.tabular.evaluate import CLASSIFIERS, evaluate_tables
    from fairlatent.tabular.fair_sampling import fair_training_set
    from fairlatent.tabular.synthesizer import Synthesizer, fit
    from fairlatent.train.engine import training_seconds

    out, data_dir = Path(out), Path(data_dir)
    classifiers = tuple(classifiers or CLASSIFIERS)
    if set(models) - set(MODELS):
        raise FairlatentError(f"unknown model(s) {sorted(set(models) - set(MODELS))}; one of {sorted(MODELS)}")
    unknown = sorted(set(datasets) - set(DATASET_FILES))
    if unknown:
        raise FairlatentError(f"unknown data set(s) {unknown}; one of {sorted(DATASET_FILES)}")
    if isinstance(epochs, Mapping) and set(epochs) - set(datasets):
        raise FairlatentError(f"epochs given for {sorted(set(epochs) - set(datasets))}, not among --datasets {list(datasets)}")
    claim_output_directory(out, record_format=RECORD)
    write_json(out / "config.json", {"format": RECORD, "datasets": list(datasets), "models": list(models),
                                     "seeds": list(seeds), "epochs": epochs, "n_boot": n_boot,
                                     "classifiers": list(classifiers)})
    (out / "results").mkdir(exist_ok=True)
    say = log or (lambda _msg: None)
    for name in datasets:
        for seed in seeds:
            data = _load(name, data_dir, seed)
            for model in models:
                res = out / "results" / f"{name}_{model}_s{seed}.json"
                cfg = _config(model, epochs_for(epochs, name), seed, small=len(data.train) < 2000)
                if _check_reusable(res, _epochs_of(cfg)):
                    continue
                run_dir = out / "runs" / f"{name}_{model}_s{seed}"
                t0 = time.perf_counter()
                fit(data, run_dir, cfg, progress=progress)
                fit_s = training_seconds(run_dir / "log.csv", time.perf_counter() - t0)
                t0 = time.perf_counter()
                synth = Synthesizer(run_dir, data)
                syn = synth.sample(len(data.train), seed=seed)
                extra = {"real+fair_synthetic": fair_training_set(synth, data, seed=seed)} if model == "ctgan" else {}
                sample_s = time.perf_counter() - t0
                t0 = time.perf_counter()
                rep = evaluate_tables(data, {model: syn}, seed=seed, n_boot=n_boot, competitors=False,
                                      classifiers=classifiers, extra_training_sets=extra)
                rep["epochs"] = _epochs_of(cfg)
                rep["seconds"] = {"fit": round(fit_s, 1), "sample": round(sample_s, 1),
                                  "evaluate": round(time.perf_counter() - t0, 1)}
                write_json(res, rep)
                say(f"{name} {model} seed {seed}: done ({rep['seconds']})")
            res = out / "results" / f"{name}_competitors_s{seed}.json"
            if competitors and not res.is_file():
                from fairlatent.tabular.competitors import run_competitors

                t0 = time.perf_counter()
                rep = run_competitors(data, seed=seed, n_boot=n_boot)
                rep["seconds"] = {"fit_and_evaluate": round(time.perf_counter() - t0, 1)}
                write_json(res, rep)
                say(f"{name} competitors seed {seed}: done")
    summary = summarise(out)
    write_json(out / "summary.json", summary)
    write_text(out / "summary.md", _markdown(summary))
    return summary


_METHOD_ORDER = {m: i for i, m in enumerate(("real", "ctgan", "ctgan:real+fair_synthetic", "fairgan", "fairgan_dp",
                                             "reweighing", "expgrad_dp", "expgrad_eo", "threshold_optimizer"))}
METRICS = ("f1_mean", "f1_lr", "acc_lr", "auc_lr", "dp_lr", "eo_lr", "risk_difference", "fidelity_shapes",
           "fidelity_pairs", "dcr_ratio")


def _row(eff: dict[str, Any], protected: str) -> dict[str, Any]:
    ok = {k: v for k, v in eff.items() if "f1" in v}
    lr = ok.get("logistic_regression", {})
    fair = lr.get("fairness", {}).get(protected, {})
    row = {"f1_lr": lr.get("f1", math.nan), "acc_lr": lr.get("accuracy", math.nan), "auc_lr": lr.get("auc", math.nan),
           "f1_mean": float(np.mean([v["f1"] for v in ok.values()])) if ok else math.nan,
           "dp_lr": fair.get("demographic_parity_difference", math.nan),
           "eo_lr": fair.get("equalized_odds_difference", math.nan)}
    for key, short in (("demographic_parity_difference_ci", "dp_lr_ci"), ("equalized_odds_difference_ci", "eo_lr_ci")):
        if key in fair:
            row[short] = list(fair[key])
    return row


def summarise(out: str | Path) -> dict[str, Any]:
    """One row per (data set, seed, method) from ``out/results``, and their mean ± sd over seeds."""
    rows = []
    for path in sorted((Path(out) / "results").glob("*.json")):
        name, rest = path.stem.split("_", 1)  # data set names have no underscore; model names may
        what, seed = rest.rsplit("_s", 1)[0], int(rest.rsplit("_s", 1)[1])
        rep = read_json(path)
        secs = rep.get("seconds", {})
        if what == "competitors":
            p = rep["sensitive_feature"]
            for method, v in rep.items():
                if isinstance(v, dict) and method != "seconds":
                    rows.append({"dataset": name, "seed": seed, "method": method, "protected": p,
                                 **_row({"logistic_regression": v}, p)})
            continue
        p = rep["data"]["protected"][0]["column"]
        base = {"dataset": name, "seed": seed, "protected": p, "epochs": rep.get("epochs")}
        rows.append({**base, "method": "real", "epochs": None, "risk_difference": rep["real"]["risk_difference"][p],
                     **_row(rep["real"]["efficacy"], p)})
        for model, s in rep["synthetic"].items():
            rows.append({**base, "method": model, "risk_difference": s["risk_difference"][p],
                         "fidelity_shapes": s["fidelity"]["column_shapes"],
                         "fidelity_pairs": s["fidelity"]["column_pair_trends"],
                         "dcr_ratio": s.get("privacy", {}).get("median_ratio", math.nan),
                         "seconds": secs, **_row(s["efficacy"], p)})
        for label, s in rep.get("augmented", {}).items():
            rows.append({**base, "method": f"{what}:{label}", "risk_difference": s["risk_difference"][p],
                         **_row(s["efficacy"], p)})
    seen, unique = set(), []
    for r in rows:  # "real" appears once per model file
        key = (r["dataset"], r["seed"], r["method"])
        if key not in seen:
            seen.add(key)
            unique.append(r)
    return {"rows": unique, "aggregate": aggregate(unique)}


def aggregate(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Mean, sample standard deviation (ddof 1; null for one seed) and seed count of every metric, per
    (data set, method): data sets in first-seen order, and within each the real rows first, then the
    generative models, then the competitors."""
    groups: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    order = len(_METHOD_ORDER)
    for r in sorted(rows, key=lambda r: (datasets.index(r["dataset"]), _METHOD_ORDER.get(r["method"], order))):
        groups.setdefault((r["dataset"], r["method"]), []).append(r)
    out = []
    for (name, method), rs in groups.items():
        entry: dict[str, Any] = {"dataset": name, "method": method, "seeds": sorted(r["seed"] for r in rs)}
        for m in METRICS:
            vals = np.array([r[m] for r in rs if isinstance(r.get(m), (int, float)) and not math.isnan(r[m])], float)
            if len(vals):
                entry[m] = {"mean": float(vals.mean()), "sd": float(vals.std(ddof=1)) if len(vals) > 1 else None,
                            "n": int(len(vals))}
        stages: dict[str, list[float]] = {}
        for r in rs:
            for k, v in (r.get("seconds") or {}).items():
                stages.setdefault(k, []).append(float(v))
        if stages:
            entry["seconds"] = {k: float(np.mean(v)) for k, v in stages.items()}
        out.append(entry)
    return out


def _markdown(summary: dict[str, Any]) -> str:
    cols = ["dataset", "seed", "method", "protected", "f1_lr", "f1_mean", "acc_lr", "auc_lr", "dp_lr", "eo_lr",
            "risk_difference", "fidelity_shapes", "fidelity_pairs"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in summary["rows"]:
        cells = []
        for c in cols:
            v = r.get(c, "")
            cells.append(f"{v:.3f}" if isinstance(v, float) else str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
