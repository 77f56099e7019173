"""The CelebA benchmark: the paper's protocol (REFERENCE §1) on real faces, at the scale of one machine.

Top to bottom (``run_celeba_benchmark``):

Shared work lives in one *shared set* per seed (``seed_scope = "all"``, the default:
``shared/seed<s>/…``, so every seed draws its own split, GAN and f_g) or in one set for every seed
(``seed_scope = "pipeline"``: ``shared/…`` from the first seed, the layout of earlier versions; seeds then
resample only the pipeline — its classifiers, latent draws and bootstrap — and never the GAN).

1. ``<set>/data``        CelebA → 64×64 paper crop, identity-disjoint train/val/test split (seeded)
2. targets               the paper's 26 targets with ≥ ``min_positives`` positive training images in each
                         protected group in every set's split (printed with the counts)
3. ``<set>/gan``         one GAN on the set's real train split, reused by every target of that seed
4. ``<set>/protected``   one protected-attribute classifier f_g, reused by every target of that seed
5. ``targets/<t>/seed<s>`` the de-biasing pipeline (:mod:`fairlatent.pipeline.run`) per target and seed, with
                         the seed's generator and f_g; f_t is the target's reweighting classifier (the
                         group-balanced labeler; see ``LatentConfig.target_labeler``); every method evaluated
                         with the bootstrap metrics; G(z)/G(z') quality per (target, protected) cell
6. ``skew/<t>_s<k>``     the paper's robustness check (first seed): the train split of one target
                         subsampled to skews 0.5/0.7/0.9 at a fixed size, every method again
7. ``results.json``, ``results.md``, ``celeba.json`` (the machine-readable record) and ``ap_vs_deo.png``
   (:mod:`fairlatent.benchmark.publish`) rewritten after every finished run (a restart skips finished work:
   every stage is cached by :class:`fairlatent.pipeline.stages.StageRunner`, and every finished or failed
   run leaves ``done/<run>.json``, keyed by its pipeline config, so it is not started again); with
   ``doc_dir`` the three documents are copied there at the end (``celeba.md``, ``celeba.json``,
   ``celeba_ap_vs_deo.png``)

Task-parallel (``fairlatent benchmark celeba --nproc N``, i.e. under torchrun): the shared GANs and f_g's are
trained data-parallel by all ranks together; the data and skew subsets are written by rank 0 while the
others wait; each rank takes the next unclaimed (target, seed) or skew run and runs it alone
(:func:`fairlatent.train.distributed.single_process`); a run whose seed's translator another rank is training
first trains its other methods and is finished later; rank 0 merges the results.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, Literal

import numpy as np
from pydantic import Field, field_validator, model_validator
from rich.console import Console
from rich.table import Table

from fairlatent.benchmark.paper import CATEGORY, PAPER_TARGETS
from fairlatent.benchmark.settings import BenchmarkSettings
from fairlatent.benchmark.tasks import RunSpec, TaskBenchmark
from fairlatent.data.skew import skewed_train_indices
from fairlatent.errors import FairlatentError
from fairlatent.pipeline.config import validate_config
from fairlatent.pipeline.methods import get_method
from fairlatent.pipeline.stages import StageRunner, stable_hash
from fairlatent.train.classifier import ClassifierConfig
from fairlatent.train.cyclegan import CycleGANConfig
from fairlatent.train.distributed import DistContext, barrier
from fairlatent.train.gan import GANConfig
from fairlatent.utils.io import read_json, write_json


# The benchmark's own defaults of its model sections: sized so 19 targets + the skew sweep fit ~2 h on 2 CPU
# cores (see docs/benchmarks/celeba.md). A section given in the config (or by --set) is laid over these.
SECTION_DEFAULTS: dict[str, dict[str, Any]] = {
    "gan": {"arch": "dcgan", "width": 32, "steps": 6000, "batch_size": 64},
    "classifier": {"width": 16, "epochs": 8},
    # paper: 10k latents to fit, 5k held out; 5k pairs = 10k synthetic images beside ~6k real. pair_filter
    # "all": latent_debias is the paper's method here, to stand beside the paper's figures; list
    # latent_debias_verified for what latent_debias trains at its default
    "latent": {"n_fit": 10000, "n_holdout": 5000, "n_pairs": 5000, "pair_filter": "all"},
    "evaluation": {"n_boot": 500, "n_generative": 3000},
}


class CelebABenchmarkConfig(BenchmarkSettings):
    """Everything that determines a benchmark run (saved in ``results.json``)."""

    # the typed sections (gan, classifier, latent, evaluation) are SECTION_DEFAULTS[name] with what the config
    # sets laid over it (seed/device default to the benchmark's; the pipeline's own rules apply to latent)
    section_defaults: ClassVar[dict[str, dict[str, Any]]] = SECTION_DEFAULTS

    root: str = Field(..., description="CelebA folder (images folder or zip + attribute file)")
    targets: list[str] | None = Field(None, description="None: the paper's targets with enough positives")
    protected: str = "Male"
    protected_extra: list[str] = Field(
        default_factory=list, description="further protected attributes (data.protected_extra of every run): "
                                          "their fairness metrics for every method, and latent_debias_multi's edits")
    size: int = Field(64, ge=8)
    seed_scope: Literal["all", "pipeline"] = Field(
        "all", description="all: every seed draws its own split, GAN and protected classifier f_g; pipeline: "
                           "one split/GAN/f_g (first seed) shared by every seed, seeds resample the pipeline only")
    split_fractions: tuple[float, float, float] = (0.6, 0.1, 0.3)
    limit: int | None = Field(None, ge=10, description="first N labelled images only (tests)")
    min_positives: int = Field(150, ge=1, description="per protected group, in the train split")
    skew_target: str | None = Field("Smiling", description="target of the controlled-skew sweep; None: no sweep")
    skews: list[float] = Field(default_factory=lambda: [0.5, 0.7, 0.9])

    @field_validator("skews")
    @classmethod
    def _skews(cls, v: list[float]) -> list[float]:
        if any(not 0.5 <= s < 1 for s in v):
            raise ValueError(f"skews must be in [0.5, 1), got {v}")
        return v

    @model_validator(mode="after")
    def _seeded_sections(self) -> "CelebABenchmarkConfig":
        if self.seed_scope == "all" and len(self.seeds) > 1:
            fixed = [f"{name}.seed" for name in ("gan", "classifier") if "seed" in getattr(self, name).model_fields_set]
            if fixed:
                raise ValueError(f"{' and '.join(fixed)} would give every seed the same shared models, which "
                                 f"seed_scope 'all' draws per seed; drop it, or use seed_scope 'pipeline'")
        return self

    def shared_seeds(self) -> list[int]:
        """The seeds that own a shared set (split, GAN, f_g): every seed, or only the first one."""
        return list(self.seeds) if self.seed_scope == "all" else [self.seeds[0]]

    def gan_spec(self, seed: int | None = None) -> GANConfig:
        """A shared GAN's settings: seed (default: the first seed) and device are the benchmark's unless set."""
        g = self.gan
        return GANConfig.model_validate({"seed": self.seeds[0] if seed is None else seed, "device": self.device,
                                         **g.model_dump(include=g.model_fields_set)})

    def translator_spec(self, seed: int | None = None) -> CycleGANConfig:
        """A shared translator's settings (seed/device as for :meth:`gan_spec`)."""
        t = self.translator
        return CycleGANConfig.model_validate({"seed": self.seeds[0] if seed is None else seed,
                                              "device": self.device, **t.model_dump(include=t.model_fields_set)})

    def needs_translator(self) -> bool:
        """Whether a method trains on translated real images (then every seed set has one translator)."""
        return any(get_method(m).translated for m in self.methods)

    def classifier_spec(self, seed: int | None = None) -> ClassifierConfig:
        """A shared protected classifier's settings (seed/device as for :meth:`gan_spec`)."""
        c = self.classifier
        return ClassifierConfig.model_validate({"seed": self.seeds[0] if seed is None else seed,
                                                "device": self.device, **c.model_dump(include=c.model_fields_set)})


# ----------------------------------------------------------------------------------------------- helpers
def positives_per_group(ds, targets, protected: str) -> dict[str, dict[str, int]]:
    """Positive training images of each target in each protected group: ``{t: {"g0": n, "g1": n}}``."""
    tr = ds.split_indices("train")
    g = ds.labels(protected, tr)
    return {t: {f"g{b}": int((ds.labels(t, tr)[g == b] == 1).sum()) for b in (0, 1)} for t in targets}


def select_targets(counts: dict[str, dict[str, int]], min_positives: int) -> list[str]:
    """Targets whose positives number at least ``min_positives`` in each protected group."""
    return [t for t, c in counts.items() if min(c.values()) >= min_positives]


def _root_fingerprint(root: Path) -> list[tuple[str, int]]:
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    return [(str(p.relative_to(root) if p != root else p.name), p.stat().st_size) for p in files[:200]]


# ----------------------------------------------------------------------------------------------- the run
LAYOUT_NAME = "benchmark_layout.json"


@dataclass
class SharedSet:
    """One seed's shared work (or, with ``seed_scope = "pipeline"``, the one set every seed uses)."""

    seed: int
    runner: StageRunner

    def path(self, stage: str) -> str:
        return self.runner.results[stage].outputs["path"]


class CelebABenchmark(TaskBenchmark):
    buckets = ("runs", "skew")

    def __init__(self, cfg: CelebABenchmarkConfig, out: str | os.PathLike, *, console: Console | None = None,
                 progress: bool = True, after_run: Callable[[Path], Any] | None = None,
                 ctx: DistContext | None = None, command: str | None = None, run_nothing: bool = False) -> None:
        super().__init__(cfg, out, console=console, progress=progress, after_run=after_run, ctx=ctx,
                         run_nothing=run_nothing)
        self.command = command  # the command line of this invocation, recorded in results.json and celeba.json
        if run_nothing:  # the figures are still those of the command that ran the runs: keep it, say who rewrote
            prev = read_json(self.results_path) if self.results_path.is_file() else {}
            self.rewritten_by, self.command = command, prev.get("command", command)
        # running nothing, the shared stages (data, GAN, f_g, skew subsets) are read as they were finished,
        # even by an older version whose keys differ: nothing is trained again
        runner = functools.partial(StageRunner, console=self.shared_console, read_only=run_nothing)
        if self.cfg.seed_scope == "all":
            self.sets = {s: SharedSet(s, runner(self.out / "shared" / f"seed{s}")) for s in cfg.seeds}
        else:
            one = SharedSet(cfg.seeds[0], runner(self.out / "shared"))
            self.sets = {s: one for s in cfg.seeds}

    def shared_sets(self) -> list[SharedSet]:
        """The distinct shared sets, in seed order."""
        return [self.sets[s] for s in self.cfg.shared_seeds()]

    # -------------------------------------------------------------- layout of the folder
    def check_layout(self) -> None:
        """Refuse a folder whose shared sets were laid out for another ``seed_scope`` (rank 0 records it)."""
        path = self.out / LAYOUT_NAME
        if path.is_file():
            made = read_json(path).get("seed_scope")
        elif (self.out / "shared" / "data").is_dir():
            made = "pipeline"  # a folder of an earlier version: one split/GAN/f_g for every seed in shared/
        else:
            made = None
        if made is not None and made != self.cfg.seed_scope:
            how = {"pipeline": "one split, GAN and f_g shared by every seed (shared/data, shared/gan, …)",
                   "all": "a split, GAN and f_g per seed (shared/seed<s>/…)"}
            raise FairlatentError(
                f"{self.out} holds a benchmark with seed_scope {made!r}: {how[made]}; this run asks for "
                f"{self.cfg.seed_scope!r}: {how[self.cfg.seed_scope]}. Continue it with --seed-scope {made}, "
                f"or choose another --out")
        barrier(self.ctx)  # every rank has looked before rank 0 writes
        if self.ctx.is_main and made is None:
            write_json(path, {"seed_scope": self.cfg.seed_scope})

    # -------------------------------------------------------------- shared stages
    def stage_data(self, sset: SharedSet) -> None:
        from fairlatent.data.celeba import convert_celeba
        from fairlatent.data.dataset import load_dataset

        root = Path(self.cfg.root)
        if not root.exists():
            raise FairlatentError(f"--root {root}: no such CelebA folder or file")
        c = self.cfg
        key = {"root": str(root.resolve()), "files": _root_fingerprint(root), "size": c.size,
               "fractions": list(c.split_fractions), "seed": sset.seed, "limit": c.limit}

        def fn(stage_dir: Path) -> dict[str, Any]:
            path, _ = convert_celeba(stage_dir / "dataset", root, overwrite=True, size=c.size, split="identity",
                                     fractions=c.split_fractions, seed=sset.seed, limit=c.limit,
                                     progress=self.progress)
            table = load_dataset(path).table
            return {"path": str(path.resolve()), "n": int(len(table)),
                    "splits": {k: int(v) for k, v in table["split"].value_counts().items()}}

        self._on_main(sset.runner, "data", key, fn)

    def data(self, sset: SharedSet | None = None):
        from fairlatent.data.dataset import load_dataset

        return load_dataset((sset or self.shared_sets()[0]).path("data"))

    def stage_targets(self) -> list[str]:
        """The targets every seed's split qualifies (each set's counts are recorded; the table shows the
        fewest positives over the sets)."""
        c = self.cfg
        by_seed: dict[str, dict[str, dict[str, int]]] = {}
        candidates: list[str] = []
        for sset in self.shared_sets():
            ds = self.data(sset)
            ds.check_attributes([c.protected, *c.protected_extra])
            candidates = c.targets or [t for t in PAPER_TARGETS if t in ds.attribute_names
                                       and t not in (c.protected, *c.protected_extra)]
            ds.check_attributes(candidates)
            by_seed[str(sset.seed)] = positives_per_group(ds, candidates, c.protected)
        counts = {t: {g: min(cs[t][g] for cs in by_seed.values()) for g in ("g0", "g1")} for t in candidates}
        chosen = candidates if c.targets else select_targets(counts, c.min_positives)
        several = len(by_seed) > 1
        table = Table(title=f"positive training images per {c.protected} group (≥ {c.min_positives} in each "
                            f"to qualify" + (f"; fewest over the {len(by_seed)} seeds' splits" if several else "")
                            + ")")
        for col in ("target", "category", f"{c.protected}=0", f"{c.protected}=1", "used"):
            table.add_column(col, justify="left" if col in ("target", "category") else "right")
        for t, n in counts.items():
            table.add_row(t, CATEGORY.get(t, "–"), str(n["g0"]), str(n["g1"]), "yes" if t in chosen else "no")
        self.shared_console.print(table)
        self.shared_console.print(f"{len(chosen)} targets: {', '.join(chosen)}")
        if not chosen:
            raise FairlatentError(f"no target has {c.min_positives} positive training images in each "
                                  f"{c.protected} group; lower --min-positives or pass --targets")
        short = [t for t in chosen if min(counts[t].values()) < c.min_positives]
        if short:
            self.shared_console.print(f"[yellow]targets below {c.min_positives} positives in a group (kept "
                                      f"because asked for): {', '.join(short)}[/]")
        self.results["targets"] = {"chosen": chosen, "counts": counts, "min_positives": c.min_positives,
                                   "counts_by_seed": by_seed}
        return chosen

    def stage_gan(self, sset: SharedSet) -> None:
        from fairlatent.train.gan import train_gan

        gcfg = self.cfg.gan_spec(sset.seed)

        def fn(stage_dir: Path) -> dict[str, Any]:
            train_gan(sset.path("data"), stage_dir / "model", gcfg, resume=True, progress=self.progress)
            return {"path": str((stage_dir / "model").resolve())}

        self._collective(sset.runner, "gan", gcfg.cache_key(), fn, deps=("data",))

    def stage_protected(self, sset: SharedSet) -> None:
        from fairlatent.train.classifier import train_classifier

        ccfg = self.cfg.classifier_spec(sset.seed)

        def fn(stage_dir: Path) -> dict[str, Any]:
            train_classifier([sset.path("data")], [self.cfg.protected], stage_dir / "model", ccfg,
                             progress=self.progress)
            return {"path": str((stage_dir / "model").resolve())}

        self._collective(sset.runner, "protected", ccfg.cache_key(), fn, deps=("data",))

    def translator_dir(self, sset: SharedSet) -> Path:
        """Where the seed set's translator run lives (``<set>/translator/model``), trained or not."""
        return sset.runner.run_dir / "translator" / "model"

    def stage_translator(self, sset: SharedSet, *, wait: bool = True) -> str | None:
        """The seed set's CycleGAN between the protected groups of its real train split: it depends on the
        data and the protected attribute only, so one serves every target (and the skew runs) of the seed.
        Trained by the first run that needs it, on that run's rank, under a file lock the other ranks'
        runs of the same seed wait on (a translator takes far longer than a collective's timeout).
        ``wait=False``: None at once, having done nothing, while another process holds that lock."""
        from fairlatent.train.cyclegan import train_translator
        from fairlatent.train.engine import cache_dump
        from fairlatent.utils.lock import waiting_lock

        tcfg = self.cfg.translator_spec(sset.seed)
        key = {"translator": cache_dump(tcfg, {}), "steps": tcfg.steps, "epochs": tcfg.epochs,
               "protected": self.cfg.protected}

        def fn(stage_dir: Path) -> dict[str, Any]:
            train_translator(sset.path("data"), self.cfg.protected, stage_dir / "model", tcfg, resume=True,
                             progress=self.progress)
            return {"path": str((stage_dir / "model").resolve())}

        with waiting_lock(self.translator_lock(sset), wait=wait) as held:
            if held is None:
                return None
            return sset.runner.run("translator", key, fn, deps=("data",)).outputs["path"]

    def translator_lock(self, sset: SharedSet) -> Path:
        """The file lock held while the seed set's translator is trained (or found finished)."""
        return sset.runner.run_dir / "translator.lock"

    def before_run(self, spec: RunSpec, *, wait: bool = True) -> bool:
        return not self.cfg.needs_translator() or self.stage_translator(self.sets[spec.seed], wait=wait) is not None

    def partial_config(self, spec: RunSpec):
        """While another rank trains the seed's translator, the run's methods that do not use it (see
        :meth:`TaskBenchmark.partial_config`): hours of a CPU core go to them instead of to waiting."""
        if not self.cfg.needs_translator():
            return None
        cfg = self.pipeline_config(spec)
        keep = [m for m in cfg.methods if not get_method(m).translated]
        if not keep:
            return None
        raw = cfg.model_dump(mode="json", exclude_unset=True)
        return validate_config({**raw, "methods": keep},
                               where=f"benchmark config for {cfg.name} (no translator yet)")

    def stage_skew_data(self, target: str, sset: SharedSet | None = None) -> dict[float, str]:
        from fairlatent.data.dataset import write_dataset

        c = self.cfg
        sset = sset or self.sets[c.seeds[0]]

        def fn(stage_dir: Path) -> dict[str, Any]:
            ds = self.data(sset)
            tr = ds.split_indices("train")
            subsets = skewed_train_indices(ds.labels(target, tr), ds.labels(c.protected, tr), c.skews, sset.seed)
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

        res = self._on_main(sset.runner, f"skew_data_{target}", {"target": target, "skews": c.skews,
                                                                  "seed": sset.seed}, fn, deps=("data",))
        return {float(k): v["path"] for k, v in res.outputs.items()}

    # -------------------------------------------------------------- per-target pipelines
    def pipeline_config(self, spec: RunSpec):
        c = self.cfg
        name = f"celeba_{spec.key.replace('/', '_')}"
        return validate_config({
            "seed": spec.seed, "name": name, "device": c.device,
            "data": {"source": "path", "path": spec.data_path, "target": spec.target, "protected": c.protected,
                     # only when set, so the runs keyed before the field existed keep their keys
                     **({"protected_extra": c.protected_extra} if c.protected_extra else {})},
            "generator": {"path": spec.gan},
            "classifier": c.model_dump()["classifier"],
            "latent": {"target_labeler": "reweighting", "protected_labeler": spec.protected,
                       **c.model_dump()["latent"]},
            # the translator section goes in too, so changing it changes the runs' keys
            "translator": c.model_dump()["translator"], "oversample": c.model_dump()["oversample"],
            **({"translator_path": str(self.translator_dir(self.sets[spec.seed]).resolve())}
               if c.needs_translator() else {}),
            "methods": c.methods,
            "evaluation": {"generative_metrics": True, **c.model_dump()["evaluation"]},
        }, where=f"benchmark config for {name}")

    def run_key(self, spec: RunSpec) -> str:
        """What identifies a finished run: its whole pipeline config (data, generator, f_g, settings)."""
        dump = self.pipeline_config(spec).model_dump(mode="json")
        # the benchmark never sets data.skew (its sweep writes subsets itself); before data.skew applied to
        # data sets read from a path, the unset key dumped as ToyFaces' 0.9: keep the keys of finished runs
        if dump["data"].get("skew") is None:
            dump["data"]["skew"] = 0.9
        return stable_hash(dump)

    def run_specs(self, targets: list[str]) -> list[RunSpec]:
        """Every pipeline run, in a fixed order: seeds × targets, then the skew sweep on the first seed."""
        specs = []
        for seed in self.cfg.seeds:
            sset = self.sets[seed]
            for target in targets:
                specs.append(RunSpec("runs", f"{target}/seed{seed}", target, seed, sset.path("data"),
                                     self.out / "targets" / target / f"seed{seed}", sset.path("gan"),
                                     sset.path("protected"), {"category": CATEGORY.get(target)}))
        if self.cfg.skew_target:
            st, seed = self.cfg.skew_target, self.cfg.seeds[0]
            sset = self.sets[seed]
            for s, path in self.stage_skew_data(st, sset).items():
                specs.append(RunSpec("skew", f"{st}/skew{s:g}", st, seed, path, self.out / "skew" / f"{st}_s{s:g}",
                                     sset.path("gan"), sset.path("protected"), {"skew": s}))
        return specs

    def markdown(self, results: dict[str, Any]) -> str:
        from fairlatent.benchmark.markdown import results_markdown
        from fairlatent.benchmark.publish import FIGURE_NAME

        return results_markdown(results, figure=FIGURE_NAME if (self.out / FIGURE_NAME).is_file() else None)

    def write_outputs(self, results: dict[str, Any]) -> None:
        from fairlatent.benchmark.publish import write_benchmark_outputs

        write_benchmark_outputs(results, self.out)

    def extra_results(self) -> dict[str, Any]:
        from fairlatent.benchmark.plain_answers import plain_answers

        return {**({"command": self.command} if self.command else {}),
                **({"rewritten_by": self.rewritten_by} if self.run_nothing and self.rewritten_by else {}),
                "plain_answers": plain_answers(self.results.get("runs", {}), self.cfg.methods), "shared_timings_s": {
            (k if self.cfg.seed_scope == "pipeline" else f"seed{ss.seed}/{k}"): v
            for ss in self.shared_sets() for k, v in ss.runner.timings().items()}}

    def print_summary(self) -> None:
        from fairlatent.benchmark.markdown import averages_table

        self.console.print(averages_table(self.results, self.cfg.methods))

    def prepare(self) -> list[str]:
        """The shared work: every set's data, the targets, every set's GAN and f_g; returns the targets."""
        self.out.mkdir(parents=True, exist_ok=True)
        self.check_layout()
        for sset in self.shared_sets():
            self.stage_data(sset)
        targets = self.stage_targets()
        for sset in self.shared_sets():
            self.stage_gan(sset)
            self.stage_protected(sset)
        return targets


def run_celeba_benchmark(cfg: CelebABenchmarkConfig, out: str | os.PathLike, *, console: Console | None = None,
                         progress: bool = True, after_run: Callable[[Path], Any] | None = None,
                         command: str | None = None, doc_dir: str | os.PathLike | None = None,
                         doc_name: str = "celeba", run_nothing: bool = False) -> dict[str, Any]:
    """Run (or resume) the CelebA benchmark in ``out``; return the results (also ``results.json``/``.md``).

    ``after_run(run_dir)`` is called after each pipeline run that finished (its ``report.json`` written); the
    CLI passes :func:`fairlatent.report.build_report` there. The benchmark cannot import the report itself:
    the two are independent siblings above the pipeline, and the layer above (the CLI) composes them.

    ``command`` (the invoking command line) is recorded in the results and the machine-readable record. With
    ``doc_dir``, rank 0 copies the finished benchmark's documents there (:func:`fairlatent.benchmark.publish.
    publish_docs`: ``celeba.md``, ``celeba.json``, ``celeba_ap_vs_deo.png``; another ``doc_name`` replaces
    "celeba" in these names, so a second benchmark's documents go beside the main one's).

    ``run_nothing``: train and run nothing — the shared stages are read as they were finished (by this version
    or an older one) and the results, tables and record are rewritten from the runs finished earlier, each
    re-read from its ``report.json`` (e.g. after an upgrade changed how runs are summarised); the recorded
    ``command`` stays the one that ran them, this one is recorded as ``rewritten_by``.

    Under torchrun every rank calls this together (see the module docstring); rank 0 returns the merged
    results, the other ranks what they know."""
    bench = CelebABenchmark(cfg, out, console=console, progress=progress, after_run=after_run, command=command,
                            run_nothing=run_nothing)
    results = bench.run()
    if doc_dir is not None and bench.ctx.is_main:
        from fairlatent.benchmark.publish import publish_docs

        paths = publish_docs(results, out, doc_dir, doc_name)
        bench.console.print("documents: " + ", ".join(str(p) for p in paths.values()))
    return results


__all__ = ["CelebABenchmark", "CelebABenchmarkConfig", "RunSpec", "SharedSet", "run_celeba_benchmark",
           "skewed_train_indices", "select_targets", "positives_per_group"]
