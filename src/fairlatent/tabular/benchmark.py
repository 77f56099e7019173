"""A resumable tabular benchmark: every (data set, model, seed) fitted, sampled and evaluated, beside the
fairlearn / reweighing competitors on the same splits and seeds.

Layout of ``out``::

    runs/<dataset>_<model>_s<seed>/      the fit (the engine's checkpoint: an interrupted fit resumes)
    results/<dataset>_<model>_s<seed>.json   its evaluation (written atomically; present = done)
    results/<dataset>_competitors_s<seed>.json
    summary.json, summary.md             one row per result: F1/accuracy/AUC (logistic regression, mean of the
                                         three classifiers), DP and EO differences, fidelity, risk difference

Run it again after an interruption: finished results are read back, an unfinished fit continues from its
checkpoint, nothing done is recomputed. The splits are the readers' (Adult: the official test file; COMPAS and
German: seeded by ``seed``), so each model and competitor of one seed sees the same rows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from fairlatent.errors import FairlatentError
from fairlatent.utils.io import claim_output_directory, read_json, write_json, write_text

__all__ = ["DATASET_FILES", "run_tabular_benchmark", "summarise"]

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


def _config(model: str, epochs: int | None, seed: int, small: bool):
    from fairlatent.tabular.synthesizer import config_class

    cfg: dict[str, Any] = {"seed": seed}
    if epochs is not None:
        if model == "ctgan":
            cfg["epochs"] = epochs
        else:
            cfg["plain_epochs"], cfg["fair_epochs"] = epochs // 2, epochs - epochs // 2
    if small:  # German credit has 700 training rows: a batch of 500 would be most of an epoch
        cfg["batch_size"] = 100
    return config_class(model).model_validate(cfg)


def run_tabular_benchmark(out: str | Path, data_dir: str | Path, *, datasets: Sequence[str] = ("adult", "compas", "german"),
                          models: Sequence[str] = ("ctgan", "fairgan"), seeds: Sequence[int] = (0,),
                          epochs: int | None = None, n_boot: int = 200, competitors: bool = True,
                          classifiers: Sequence[str] | None = None, progress: bool = True) -> dict[str, Any]:
    """Run (or continue) the benchmark into ``out``; return the summary."""
    from fairlatent.tabular.evaluate import CLASSIFIERS, evaluate_tables
    from fairlatent.tabular.fair_sampling import fair_training_set
    from fairlatent.tabular.synthesizer import Synthesizer, fit

    out, data_dir = Path(out), Path(data_dir)
    classifiers = tuple(classifiers or CLASSIFIERS)
    claim_output_directory(out, record_format=RECORD)
    write_json(out / "config.json", {"format": RECORD, "datasets": list(datasets), "models": list(models),
                                     "seeds": list(seeds), "epochs": epochs, "n_boot": n_boot,
                                     "classifiers": list(classifiers)})
    (out / "results").mkdir(exist_ok=True)
    for name in datasets:
        for seed in seeds:
            data = _load(name, data_dir, seed)
            for model in models:
                res = out / "results" / f"{name}_{model}_s{seed}.json"
                if res.is_file():
                    continue
                cfg = _config(model, epochs, seed, small=len(data.train) < 2000)
                run = fit(data, out / "runs" / f"{name}_{model}_s{seed}", cfg, progress=progress)
                synth = Synthesizer(run, data)
                syn = synth.sample(len(data.train), seed=seed)
                extra = {"real+fair_synthetic": fair_training_set(synth, data, seed=seed)} if model == "ctgan" else {}
                write_json(res, evaluate_tables(data, {model: syn}, seed=seed, n_boot=n_boot, competitors=False,
                                                classifiers=classifiers, extra_training_sets=extra))
            res = out / "results" / f"{name}_competitors_s{seed}.json"
            if competitors and not res.is_file():
                from fairlatent.tabular.competitors import run_competitors

                write_json(res, run_competitors(data, seed=seed, n_boot=n_boot))
    summary = summarise(out)
    write_json(out / "summary.json", summary)
    write_text(out / "summary.md", _markdown(summary))
    return summary


def _row(eff: dict[str, Any], protected: str) -> dict[str, float]:
    ok = {k: v for k, v in eff.items() if "f1" in v}
    lr = ok.get("logistic_regression", {})
    fair = lr.get("fairness", {}).get(protected, {})
    return {"f1_lr": lr.get("f1", np.nan), "acc_lr": lr.get("accuracy", np.nan), "auc_lr": lr.get("auc", np.nan),
            "f1_mean": float(np.mean([v["f1"] for v in ok.values()])) if ok else np.nan,
            "dp_lr": fair.get("demographic_parity_difference", np.nan),
            "eo_lr": fair.get("equalized_odds_difference", np.nan)}


def summarise(out: str | Path) -> dict[str, Any]:
    """One row per (data set, seed, method) from ``out/results``."""
    rows = []
    for path in sorted((Path(out) / "results").glob("*.json")):
        name, what, seed = path.stem.rsplit("_", 2)[0], path.stem.rsplit("_", 2)[1], path.stem.rsplit("_", 1)[1]
        rep = read_json(path)
        if what == "competitors":
            p = rep["sensitive_feature"]
            for method, v in rep.items():
                if isinstance(v, dict):
                    rows.append({"dataset": name, "seed": seed, "method": method, "protected": p,
                                 **_row({"logistic_regression": v}, p)})
            continue
        p = rep["data"]["protected"][0]["column"]
        rows.append({"dataset": name, "seed": seed, "method": "real", "protected": p,
                     "risk_difference": rep["real"]["risk_difference"][p], **_row(rep["real"]["efficacy"], p)})
        for model, s in rep["synthetic"].items():
            rows.append({"dataset": name, "seed": seed, "method": model, "protected": p,
                         "risk_difference": s["risk_difference"][p], "fidelity_shapes": s["fidelity"]["column_shapes"],
                         "fidelity_pairs": s["fidelity"]["column_pair_trends"], **_row(s["efficacy"], p)})
        for label, s in rep.get("augmented", {}).items():
            rows.append({"dataset": name, "seed": seed, "method": f"{what}:{label}", "protected": p,
                         "risk_difference": s["risk_difference"][p], **_row(s["efficacy"], p)})
    seen, unique = set(), []
    for r in rows:  # "real" appears once per model file
        key = (r["dataset"], r["seed"], r["method"])
        if key not in seen:
            seen.add(key)
            unique.append(r)
    return {"rows": unique}


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
