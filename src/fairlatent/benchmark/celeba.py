"""The CelebA benchmark: the paper's protocol (REFERENCE §1) on real faces, at the scale of one machine.

Top to bottom (``run_celeba_benchmark``):

1. ``shared/data``       CelebA → 64×64 paper crop, identity-disjoint train/val/test split
2. ``shared/targets``    the paper's 26 targets with ≥ ``min_positives`` positive training images in each
                         protected group (printed with the counts)
3. ``shared/gan``        one GAN on the real train split, reused by every target
4. ``shared/protected``  one protected-attribute classifier f_g, reused by every target
5. ``targets/<t>/seed<s>`` the de-biasing pipeline (:mod:`fairlatent.pipeline.run`) per target and seed, with
                         the shared generator and f_g; f_t is the target's reweighting classifier (the
                         group-balanced labeler; see ``LatentConfig.target_labeler``); every method evaluated
                         with the bootstrap metrics; G(z)/G(z') quality per (target, protected) cell
6. ``skew/<t>_s<k>``     the paper's robustness check: the train split of one target subsampled to skews
                         0.5/0.7/0.9 at a fixed size, every method again
7. ``results.json`` and ``results.md`` rewritten after every finished target (a restart skips finished work:
   every stage is cached by :class:`fairlatent.pipeline.stages.StageRunner`)
"""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_serializer, field_validator, model_validator
from rich.console import Console
from rich.table import Table

from fairlatent.benchmark.paper import CATEGORY, PAPER_TARGETS
from fairlatent.errors import FairlatentError
from fairlatent.pipeline.config import EvaluationConfig, LatentConfig
from fairlatent.pipeline.methods import method_names
from fairlatent.pipeline.stages import StageRunner
from fairlatent.train.classifier import ClassifierConfig
from fairlatent.train.gan import GANConfig
from fairlatent.utils.io import read_json, write_json, write_text

METRICS = ("AP", "DEO", "BA", "KL")

# The benchmark's own defaults of its model sections: sized so 19 targets + the skew sweep fit ~2 h on 2 CPU
# cores (see docs/benchmarks/celeba.md). A section given in the config (or by --set) is laid over these.
SECTION_DEFAULTS: dict[str, dict[str, Any]] = {
    "gan": {"arch": "dcgan", "width": 32, "steps": 6000, "batch_size": 64},
    "classifier": {"width": 16, "epochs": 8},
    # paper: 10k latents to fit, 5k held out; 5k pairs = 10k synthetic images beside ~6k real
    "latent": {"n_fit": 10000, "n_holdout": 5000, "n_pairs": 5000},
    "evaluation": {"n_boot": 500, "n_generative": 3000},
}


class CelebABenchmarkConfig(BaseModel):
    """Everything that determines a benchmark run (saved in ``results.json``)."""

    model_config = ConfigDict(extra="forbid")

    root: str = Field(..., description="CelebA folder (images folder or zip + attribute file)")
    targets: list[str] | None = Field(None, description="None: the paper's targets with enough positives")
    protected: str = "Male"
    size: int = Field(64, ge=8)
    seeds: list[int] = Field(default_factory=lambda: [0])
    split_fractions: tuple[float, float, float] = (0.6, 0.1, 0.3)
    limit: int | None = Field(None, ge=10, description="first N labelled images only (tests)")
    min_positives: int = Field(150, ge=1, description="per protected group, in the train split")
    methods: list[str] = Field(default_factory=lambda: ["baseline", "reweighting", "latent_debias",
                                                        "latent_debias_filtered"])
    # the typed sections; each is SECTION_DEFAULTS[name] with what the config sets laid over it, and keeps
    # which keys are set (seed/device default to the benchmark's; the pipeline's own rules apply to latent)
    gan: GANConfig = Field(default_factory=lambda: GANConfig(**SECTION_DEFAULTS["gan"]))
    classifier: ClassifierConfig = Field(default_factory=lambda: ClassifierConfig(**SECTION_DEFAULTS["classifier"]))
    latent: LatentConfig = Field(default_factory=lambda: LatentConfig(**SECTION_DEFAULTS["latent"]))
    evaluation: EvaluationConfig = Field(default_factory=lambda: EvaluationConfig(**SECTION_DEFAULTS["evaluation"]))
    skew_target: str | None = Field("Smiling", description="target of the controlled-skew sweep; None: no sweep")
    skews: list[float] = Field(default_factory=lambda: [0.5, 0.7, 0.9])
    device: str | None = None

    @field_validator("skews")
    @classmethod
    def _skews(cls, v: list[float]) -> list[float]:
        if any(not 0.5 <= s < 1 for s in v):
            raise ValueError(f"skews must be in [0.5, 1), got {v}")
        return v

    @model_validator(mode="before")
    @classmethod
    def _over_defaults(cls, data: Any) -> Any:
        """A section given as a table is laid over the benchmark's defaults of that section, so
        ``--set classifier.lr=1e-3`` changes the learning rate and keeps ``epochs = 8``."""
        if isinstance(data, dict):
            data = dict(data)
            for name, defaults in SECTION_DEFAULTS.items():
                if isinstance(data.get(name), dict):
                    data[name] = {**defaults, **data[name]}
        return data

    @field_validator("methods")
    @classmethod
    def _known_methods(cls, v: list[str]) -> list[str]:
        unknown = [m for m in v if m not in method_names()]
        if unknown:
            raise ValueError(f"unknown method(s) {unknown}; methods are: {', '.join(method_names())}")
        return v

    @field_serializer("gan", "classifier", "latent", "evaluation")
    def _set_keys_only(self, section: BaseModel) -> dict[str, Any]:
        return section.model_dump(include=section.model_fields_set)

    def gan_spec(self) -> GANConfig:
        """The shared GAN's settings: seed/device are the benchmark's first seed and device unless set."""
        g = self.gan
        return GANConfig.model_validate({"seed": self.seeds[0], "device": self.device,
                                         **g.model_dump(include=g.model_fields_set)})

    def classifier_spec(self) -> ClassifierConfig:
        """The shared protected classifier's settings (seed/device as for :meth:`gan_spec`)."""
        c = self.classifier
        return ClassifierConfig.model_validate({"seed": self.seeds[0], "device": self.device,
                                                **c.model_dump(include=c.model_fields_set)})

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v: list[int]) -> list[int]:
        if not v:
            raise ValueError("seeds is empty")
        return list(dict.fromkeys(v))


# ----------------------------------------------------------------------------------------------- helpers
def positives_per_group(ds, targets, protected: str) -> dict[str, dict[str, int]]:
    """Positive training images of each target in each protected group: ``{t: {"g0": n, "g1": n}}``."""
    tr = ds.split_indices("train")
    g = ds.labels(protected, tr)
    return {t: {f"g{b}": int((ds.labels(t, tr)[g == b] == 1).sum()) for b in (0, 1)} for t in targets}


def select_targets(counts: dict[str, dict[str, int]], min_positives: int) -> list[str]:
    """Targets whose positives number at least ``min_positives`` in each protected group."""
    return [t for t, c in counts.items() if min(c.values()) >= min_positives]


def skewed_train_indices(t: np.ndarray, g: np.ndarray, skews: list[float], seed: int) -> dict[float, np.ndarray]:
    """Subsets of a train split with ``P(g = a | t = 1) = P(g = 1 − a | t = 0) = skew`` at one size.

    ``a`` is the group in which the target is more common, so the skew follows the data's own correlation.
    Both classes get ``N`` images, ``N`` the largest size every requested skew can fill from the available
    (t, g) cells; so only the skew changes along the sweep, not the amount of data.
    """
    a = int(t[g == 1].mean() > t[g == 0].mean())
    cells = {(c, b): np.flatnonzero((t == c) & (g == b)) for c in (0, 1) for b in (0, 1)}
    # majority cell of class c: (1, a) for positives, (0, 1 − a) for negatives
    major = {1: (1, a), 0: (0, 1 - a)}
    minor = {1: (1, 1 - a), 0: (0, a)}
    n = min(min(len(cells[major[c]]) / s, len(cells[minor[c]]) / (1 - s)) for c in (0, 1) for s in skews)
    n = int(np.floor(n))
    if n < 10:
        raise FairlatentError(f"too few images in the rarest (target, protected) cell for skews {skews} "
                              f"(each class could hold only {n} images)")
    rng = np.random.default_rng(seed)
    order = {k: rng.permutation(v) for k, v in cells.items()}
    out = {}
    for s in skews:
        n_major = int(round(s * n))
        idx = [order[major[c]][:n_major] for c in (0, 1)] + [order[minor[c]][: n - n_major] for c in (0, 1)]
        out[s] = np.sort(np.concatenate(idx))
    return out


def _root_fingerprint(root: Path) -> list[tuple[str, int]]:
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    return [(str(p.relative_to(root) if p != root else p.name), p.stat().st_size) for p in files[:200]]


def machine_description() -> dict[str, Any]:
    import torch

    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "python": platform.python_version(), "torch": torch.__version__}


# ----------------------------------------------------------------------------------------------- the run
class CelebABenchmark:
    def __init__(self, cfg: CelebABenchmarkConfig, out: str | os.PathLike, *, console: Console | None = None,
                 progress: bool = True, after_run: Callable[[Path], Any] | None = None) -> None:
        self.cfg = cfg
        self.after_run = after_run
        self.out = Path(out)
        self.console = console or Console()
        self.progress = progress
        self.shared = StageRunner(self.out / "shared", self.console)
        self.results_path = self.out / "results.json"
        prev = read_json(self.results_path) if self.results_path.is_file() else {}
        # results of finished targets survive a restart even when their run folders are pruned
        self.results: dict[str, Any] = {"runs": prev.get("runs", {}), "skew": prev.get("skew", {}),
                                        "failed": prev.get("failed", {})}

    # -------------------------------------------------------------- shared stages
    def stage_data(self) -> None:
        from fairlatent.data.celeba import convert_celeba
        from fairlatent.data.dataset import load_dataset

        root = Path(self.cfg.root)
        if not root.exists():
            raise FairlatentError(f"--root {root}: no such CelebA folder or file")
        c = self.cfg
        key = {"root": str(root.resolve()), "files": _root_fingerprint(root), "size": c.size,
               "fractions": list(c.split_fractions), "seed": c.seeds[0], "limit": c.limit}

        def fn(stage_dir: Path) -> dict[str, Any]:
            path, _ = convert_celeba(stage_dir / "dataset", root, overwrite=True, size=c.size, split="identity",
                                     fractions=c.split_fractions, seed=c.seeds[0], limit=c.limit,
                                     progress=self.progress)
            table = load_dataset(path).table
            return {"path": str(path.resolve()), "n": int(len(table)),
                    "splits": {k: int(v) for k, v in table["split"].value_counts().items()}}

        self.shared.run("data", key, fn)

    def data(self):
        from fairlatent.data.dataset import load_dataset

        return load_dataset(self.shared.results["data"].outputs["path"])

    def stage_targets(self) -> list[str]:
        c = self.cfg
        ds = self.data()
        ds.check_attributes([c.protected])
        candidates = c.targets or [t for t in PAPER_TARGETS if t in ds.attribute_names and t != c.protected]
        ds.check_attributes(candidates)
        counts = positives_per_group(ds, candidates, c.protected)
        chosen = candidates if c.targets else select_targets(counts, c.min_positives)
        table = Table(title=f"positive training images per {c.protected} group (≥ {c.min_positives} in each "
                            f"to qualify)")
        for col in ("target", "category", f"{c.protected}=0", f"{c.protected}=1", "used"):
            table.add_column(col, justify="left" if col in ("target", "category") else "right")
        for t, n in counts.items():
            table.add_row(t, CATEGORY.get(t, "–"), str(n["g0"]), str(n["g1"]), "yes" if t in chosen else "no")
        self.console.print(table)
        self.console.print(f"{len(chosen)} targets: {', '.join(chosen)}")
        if not chosen:
            raise FairlatentError(f"no target has {c.min_positives} positive training images in each "
                                  f"{c.protected} group; lower --min-positives or pass --targets")
        short = [t for t in chosen if min(counts[t].values()) < c.min_positives]
        if short:
            self.console.print(f"[yellow]targets below {c.min_positives} positives in a group (kept because "
                               f"asked for): {', '.join(short)}[/]")
        self.results["targets"] = {"chosen": chosen, "counts": counts, "min_positives": c.min_positives}
        return chosen

    def stage_gan(self) -> None:
        from fairlatent.train.gan import train_gan

        gcfg = self.cfg.gan_spec()

        def fn(stage_dir: Path) -> dict[str, Any]:
            train_gan(self.shared.results["data"].outputs["path"], stage_dir / "model", gcfg, resume=True,
                      progress=self.progress)
            return {"path": str((stage_dir / "model").resolve())}

        self.shared.run("gan", gcfg.cache_key(), fn, deps=("data",))

    def stage_protected(self) -> None:
        from fairlatent.train.classifier import train_classifier

        ccfg = self.cfg.classifier_spec()

        def fn(stage_dir: Path) -> dict[str, Any]:
            train_classifier([self.shared.results["data"].outputs["path"]], [self.cfg.protected],
                             stage_dir / "model", ccfg, progress=self.progress)
            return {"path": str((stage_dir / "model").resolve())}

        self.shared.run("protected", ccfg.model_dump(), fn, deps=("data",))

    # -------------------------------------------------------------- per-target pipelines
    def pipeline_config(self, target: str, seed: int, data_path: str, name: str):
        from fairlatent.pipeline.config import validate_config

        c = self.cfg
        return validate_config({
            "seed": seed, "name": name, "device": c.device,
            "data": {"source": "path", "path": data_path, "target": target, "protected": c.protected},
            "generator": {"path": self.shared.results["gan"].outputs["path"]},
            "classifier": c.model_dump()["classifier"],
            "latent": {"target_labeler": "reweighting",
                       "protected_labeler": self.shared.results["protected"].outputs["path"],
                       **c.model_dump()["latent"]},
            "methods": c.methods,
            "evaluation": {"generative_metrics": True, **c.model_dump()["evaluation"]},
        }, where=f"benchmark config for {name}")

    def _run_one(self, bucket: str, key: str, target: str, seed: int, data_path: str, run_dir: Path,
                 extra: dict[str, Any]) -> None:
        """One pipeline run; its summary (or its failure) goes into ``results[bucket][key]`` and to disk."""
        from fairlatent.pipeline.run import run_pipeline

        t0 = time.perf_counter()
        cfg = self.pipeline_config(target, seed, data_path, f"celeba_{key.replace('/', '_')}")
        try:
            report = run_pipeline(cfg, run_dir, console=self.console, progress=self.progress)
            if self.after_run is not None:
                self.after_run(run_dir)
        except FairlatentError as exc:  # one target's failure (e.g. a GAN that never draws it) is a result too
            self.console.print(f"[red]{key} failed:[/] {exc}")
            self.results["failed"][key] = str(exc)
            self.save()
            return
        self.results["failed"].pop(key, None)
        self.results[bucket][key] = {**summarize_report(report), "target": target, "seed": seed, **extra,
                                     "wall_s": round(time.perf_counter() - t0, 1)}
        self.save()

    def stage_skew_data(self, target: str) -> dict[float, str]:
        from fairlatent.data.dataset import write_dataset

        c = self.cfg

        def fn(stage_dir: Path) -> dict[str, Any]:
            ds = self.data()
            tr = ds.split_indices("train")
            subsets = skewed_train_indices(ds.labels(target, tr), ds.labels(c.protected, tr), c.skews, c.seeds[0])
            rest = np.flatnonzero(ds.table["split"].to_numpy() != "train")
            out: dict[str, Any] = {}
            for s, sub in subsets.items():
                idx = np.sort(np.concatenate([tr[sub], rest]))
                path = stage_dir / f"skew_{s:g}"
                write_dataset(path, np.asarray(ds.images[idx]), ds.table.iloc[idx].reset_index(drop=True),
                              {**ds.meta, "skew_of": {"target": target, "protected": c.protected, "skew": s,
                                                      "train_images": int(len(sub))}}, overwrite=True)
                out[f"{s:g}"] = {"path": str(path.resolve()), "train_images": int(len(sub))}
            return out

        res = self.shared.run(f"skew_data_{target}", {"target": target, "skews": c.skews, "seed": c.seeds[0]}, fn,
                              deps=("data",))
        return {float(k): v["path"] for k, v in res.outputs.items()}

    # -------------------------------------------------------------- driver
    def save(self) -> None:
        from fairlatent.benchmark.markdown import results_markdown

        self.results["config"] = self.cfg.model_dump()
        self.results["machine"] = machine_description()
        self.results["shared_timings_s"] = self.shared.timings()
        write_json(self.results_path, self.results)
        write_text(self.out / "results.md", results_markdown(self.results))

    def run(self) -> dict[str, Any]:
        t0 = time.perf_counter()
        self.out.mkdir(parents=True, exist_ok=True)
        self.stage_data()
        targets = self.stage_targets()
        self.stage_gan()
        self.stage_protected()
        self.save()
        data_path = self.shared.results["data"].outputs["path"]
        for seed in self.cfg.seeds:
            for target in targets:
                self.console.rule(f"[bold]target {target} · seed {seed}")
                self._run_one("runs", f"{target}/seed{seed}", target, seed, data_path,
                              self.out / "targets" / target / f"seed{seed}", {"category": CATEGORY.get(target)})
        if self.cfg.skew_target:
            st = self.cfg.skew_target
            for s, path in self.stage_skew_data(st).items():
                self.console.rule(f"[bold]skew sweep: {st} at skew {s:g}")
                self._run_one("skew", f"{st}/skew{s:g}", st, self.cfg.seeds[0], path,
                              self.out / "skew" / f"{st}_s{s:g}", {"skew": s})
        self.results["total_s"] = round(time.perf_counter() - t0, 1)
        self.save()
        from fairlatent.benchmark.markdown import averages_table

        self.console.print(averages_table(self.results, self.cfg.methods))
        self.console.print(f"results: {self.results_path} and {self.out / 'results.md'}")
        return self.results


def summarize_report(report: dict[str, Any]) -> dict[str, Any]:
    """The part of a pipeline report the benchmark tables need (full report stays in the run folder)."""
    methods = {}
    for m, res in report["methods"].items():
        test = res["test"]
        methods[m] = {k: {q: test[k][q] for q in ("median", "lo", "hi")} for k in METRICS if k in test}
        methods[m]["threshold"] = res["threshold"]
        if "paired_vs_baseline" in res:
            methods[m]["vs_baseline"] = {k: v for k, v in res["paired_vs_baseline"]["test"].items()
                                         if k in METRICS}
    out: dict[str, Any] = {"methods": methods, "cells": report["data"]["cells"], "timings_s": report["timings_s"]}
    if "latent" in report:
        lat = report["latent"]
        out["latent"] = {k: lat[k] for k in ("h_t_heldout_acc", "h_g_heldout_acc", "cos_theta", "flip_rate_g",
                                             "keep_rate_t", "agreement_dropped", "pairs", "generated_label_rates")}
    if "generative" in report:
        out["generative"] = report["generative"]["rows"]
    return out


def run_celeba_benchmark(cfg: CelebABenchmarkConfig, out: str | os.PathLike, *, console: Console | None = None,
                         progress: bool = True, after_run: Callable[[Path], Any] | None = None) -> dict[str, Any]:
    """Run (or resume) the CelebA benchmark in ``out``; return the results (also ``results.json``/``.md``).

    ``after_run(run_dir)`` is called after each pipeline run that finished (its ``report.json`` written); the
    CLI passes :func:`fairlatent.report.build_report` there. The benchmark cannot import the report itself:
    the two are independent siblings above the pipeline, and the layer above (the CLI) composes them."""
    return CelebABenchmark(cfg, out, console=console, progress=progress, after_run=after_run).run()


__all__ = ["CelebABenchmarkConfig", "run_celeba_benchmark", "skewed_train_indices", "select_targets",
           "positives_per_group"]
