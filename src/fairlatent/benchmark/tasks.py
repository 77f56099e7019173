"""What every benchmark shares: pipeline runs as specs, their ``done/`` records, the deal over ranks, results.

A benchmark (:mod:`fairlatent.benchmark.celeba`, :mod:`fairlatent.benchmark.toyfaces`) is a list of
:class:`RunSpec` — one :func:`fairlatent.pipeline.run.run_pipeline` each — plus whatever it prepares before
them (shared data, GANs, classifiers). :class:`TaskBenchmark` is the driver they have in common:

* every finished or failed run leaves ``OUT/done/<bucket>__<run>.json`` keyed by the hash of its whole
  pipeline config, so a later invocation (with any number of ranks) skips it; a recorded failure is not
  retried (the pipeline is seeded: the same config fails the same way; delete the record to retry);
* under torchrun (``--nproc N``) each rank takes the next unfinished run nobody has claimed
  (``OUT/done/<bucket>__<run>.claim``, created exclusively; rank 0 clears the claims of an earlier, dead
  invocation before any rank claims) and runs it alone (:func:`fairlatent.train.distributed.single_process`),
  so a rank whose runs are quick takes more of them; rank 0 waits for the others' records on disk (not at a
  barrier: a longer share would outlast the collective timeout);
* a run whose shared work another rank is doing right now (the CelebA benchmark's per-seed translator, hours
  on a CPU) does not wait for it: it first runs its other methods (:meth:`TaskBenchmark.partial_config`),
  then the rank goes on to its next runs, and it is finished after them, when the pipeline's cached stages
  leave only the waiting methods to train;
* rank 0 folds the records into ``results.json`` and rewrites ``results.md`` after every finished run;
* runs finished elsewhere can be adopted from a published ``results.json`` (``adopt_from``): a run is adopted
  only when the published config gives it the very pipeline config this one does, and its record keeps the
  CPU it was computed on, so a benchmark resumed on another machine adds its missing runs beside them.

A subclass supplies :meth:`~TaskBenchmark.prepare`, :meth:`~TaskBenchmark.run_specs`,
:meth:`~TaskBenchmark.pipeline_config` and :meth:`~TaskBenchmark.markdown`, and may add to the results
(:meth:`~TaskBenchmark.extra_results`) and to the closing lines (:meth:`~TaskBenchmark.print_summary`).
"""

from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from rich.console import Console

from fairlatent.benchmark.lock import claim_text
from fairlatent.errors import FairlatentError
from fairlatent.pipeline.stages import StageResult, StageRunner, stable_hash
from fairlatent.train.distributed import DistContext, barrier, init_distributed, single_process
from fairlatent.utils.io import read_json, write_json, write_text
from fairlatent.utils.settings import validate_settings

#: the test metrics a run's summary keeps (a post-processing method has no AP or KL: they are left out)
METRICS = ("AP", "DEO", "BA", "KL", "EOdds")
#: the latent section of a report that the benchmark tables need
LATENT_KEYS = ("h_t_heldout_acc", "h_g_heldout_acc", "cos_theta", "flip_rate_g", "keep_rate_t",
               "agreement_dropped", "pairs", "generated_label_rates")


def machine_description() -> dict[str, Any]:
    """The machine a run is computed on. ``cpu_capability`` is the vector instruction set torch dispatches to
    (``AVX2``, ``AVX512``, …): CPUs that share a model string (``AMD EPYC`` in a VM) can differ in it, and then
    in the bits of every result (oneDNN and ATen pick other kernels), so it tells such machines apart."""
    import torch

    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cpu_capability": torch.backends.cpu.get_cpu_capability(), "cores": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "python": platform.python_version(), "torch": torch.__version__}


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
            if "val" in res["paired_vs_baseline"]:  # the validation check's figures (runs since it exists)
                methods[m]["vs_baseline_val"] = {k: v for k, v in res["paired_vs_baseline"]["val"].items()
                                                 if k in METRICS}
        if "by_protected" in res:  # data.protected_extra: the fairness metrics for every protected attribute
            methods[m]["by_protected"] = {a: {k: {q: v[k][q] for q in ("median", "lo", "hi")} for k in METRICS
                                              if k in v} for a, per in res["by_protected"].items()
                                          if (v := per.get("test")) is not None}
        if "by_protected_vs_baseline" in res:
            methods[m]["by_protected_vs_baseline"] = {a: {k: d for k, d in per["test"].items() if k in METRICS}
                                                      for a, per in res["by_protected_vs_baseline"].items()
                                                      if "test" in per}
    out: dict[str, Any] = {"methods": methods, "cells": report["data"]["cells"], "timings_s": report["timings_s"]}
    if report.get("protected_extra"):
        out["protected_extra"] = report["protected_extra"]
    if "latent" in report:
        lat = report["latent"]
        out["latent"] = {k: lat[k] for k in LATENT_KEYS}
        multi = (lat.get("edits") or {}).get("multi_protected", {}).get("by_edit")
        if multi:  # latent_debias_multi: what each of its edits did on the images
            out["latent"]["multi_edits"] = {name: {k: e[k] for k in ("flip", "keep", "flip_rate", "keep_rate",
                                                                      "did_all_rate") if k in e}
                                            for name, e in multi.items()}
        if "labeler_check" in lat:  # each labeler's accuracy in its worst real validation cell
            from fairlatent.latent.preflight import worst_cells

            check = lat["labeler_check"]
            out["latent"]["labeler_worst_cell"] = {
                who: None if w is None else {"cell": w[0], "acc": w[1]}
                for who, w in worst_cells(check["accuracy"], check["counts"]).items()}
    if report.get("translations"):  # what the image-space counterfactuals did, read as the latent pairs are
        out["translations"] = {k: report["translations"][k] for k in ("images", "flip_rate_g", "keep_rate_t")
                               if k in report["translations"]}
    if report.get("oversample_check"):  # latent_oversample's decoded cells as the labelers read them
        out["oversample_check"] = {side: {c: d["in_cell"] for c, d in report["oversample_check"][side].items()}
                                   for side in ("decoded", "real")}
    if "generative" in report:
        out["generative"] = report["generative"]["rows"]
    if report.get("preflight") is not None:
        out["preflight"] = preflight_summary(report)
    return out


def preflight_summary(report: dict[str, Any]) -> dict[str, Any]:
    """The run's pre-flight verdict, re-derived from its checks and its config by today's rule
    (:func:`fairlatent.latent.preflight.blocks`), so a report written before the rule existed reads the same
    way: ``passed`` (no failed check blocks a listed method), ``failed`` (every failed check), ``blocking``
    (those that block), ``by_method`` (per method trained on pairs, whether none blocks it). A report written
    before the verified-rate check existed gets it from its own figures (``latent.edits``)."""
    from fairlatent.latent.preflight import Check, PreflightBounds, preflight_checks, verdict
    from fairlatent.pipeline.config import stored_latent_value
    from fairlatent.pipeline.methods import pair_uses

    cfg = report["config"]
    uses = pair_uses(cfg["methods"], stored_latent_value(cfg["latent"], "pair_filter"))
    checks = [Check(**{k: c[k] for k in ("name", "value", "bound", "kind", "passed", "message")})
              for c in report["preflight"]["checks"]]
    names = {c.name for c in checks}
    floor = PreflightBounds(min_verified_rate=stored_latent_value(cfg["latent"], "preflight_min_verified_rate"))
    for edit, st in ((report.get("latent") or {}).get("edits") or {}).items():
        tag = "" if edit == "complementary" else f"[{edit}]"
        if f"verified_rate{tag}" not in names and "by_edit" not in st and st.get("pairs") and "verified_kept" in st:
            checks += preflight_checks(bounds=floor, verified_rate=st["verified_kept"] / st["pairs"], edit=edit)
    run_verdict = verdict(checks, uses)
    return {"passed": run_verdict["passed"], "failed": [c.name for c in checks if not c.passed],
            "blocking": run_verdict["blocking"], "by_method": run_verdict["by_method"]}


#: Name prefixes of the pre-flight checks measured on an edit's rendered pairs (they come last in a report).
EDIT_CHECKS = ("flip_rate_g", "keep_rate_t", "verified_rate")


def with_late_labeler_check(report: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    """``report`` with the pre-flight's labeler check added from the run's own ``labeler_check`` stage, when
    the report predates the check and the stage was run on the finished run since
    (``benchmarks/labeler_check_posthoc.py --write``, which runs the pipeline's stage under the pipeline's key):
    its figures go to ``latent.labeler_check`` and its checks, at the run's own floor, to ``preflight.checks``,
    as the pipeline would have written them. A report that has the check, or a run without the stage, is
    returned as it is."""
    from fairlatent.latent.preflight import PreflightBounds, labeler_checks
    from fairlatent.pipeline.config import stored_latent_value

    latent = report.get("latent")
    record = run_dir / "labeler_check" / "stage.json"
    if latent is None or "labeler_check" in latent or not record.is_file():
        return report
    stage = read_json(record)
    if not stage.get("done"):
        return report
    out = stage["outputs"]
    report = {**report, "latent": {**latent, "labeler_check": out}}
    pf = report.get("preflight")
    if pf is not None:
        floor = stored_latent_value(report["config"]["latent"], "preflight_min_labeler_acc")
        checks = labeler_checks(out["accuracy"], out["counts"], bounds=PreflightBounds(min_labeler_acc=floor),
                                split=out.get("split", "val"))
        # where the pipeline puts them: after the planes' checks, before the edits' (flip, keep, verified)
        old = list(pf["checks"])
        at = next((i for i, c in enumerate(old) if c["name"].startswith(EDIT_CHECKS)), len(old))
        report["preflight"] = {**pf, "checks": old[:at] + [c.to_dict() for c in checks] + old[at:]}
    return report


@dataclass(frozen=True)
class RunSpec:
    """One pipeline run of a benchmark (CelebA: a (target, seed) run or a skew run; ToyFaces: a (pair, seed)
    run). ``data_path``, ``gan`` and ``protected`` are shared artefacts, or None when the run makes its own."""

    bucket: str  # "runs" or "skew"
    key: str  # "Smiling/seed0", "Smiling/skew0.7"
    target: str
    seed: int
    data_path: str | None
    run_dir: Path
    gan: str | None
    protected: str | None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def record_name(self) -> str:
        return f"{self.bucket}__{self.key.replace('/', '__')}.json"


def claim_name(spec: RunSpec) -> str:
    """The file in ``OUT/done`` by which one rank claims a run (removed when the invocation ends)."""
    return spec.record_name.removesuffix(".json") + ".claim"


def must_be_done(name: str) -> Callable[[Path], dict[str, Any]]:
    """A stage function for ranks other than 0: the stage must already be finished (rank 0 wrote it)."""
    def fn(stage_dir: Path) -> dict[str, Any]:
        raise FairlatentError(f"{stage_dir}: stage {name} was to be written by rank 0 but is not finished")

    return fn


class TaskBenchmark:
    """The shared driver (see the module docstring). ``buckets`` name the groups of runs in the results."""

    buckets: tuple[str, ...] = ("runs",)

    def __init__(self, cfg: Any, out: str | os.PathLike, *, console: Console | None = None,
                 progress: bool = True, after_run: Callable[[Path], Any] | None = None,
                 ctx: DistContext | None = None, run_nothing: bool = False,
                 adopt_from: str | os.PathLike | None = None) -> None:
        self.cfg = cfg
        self.adopt_from = None if adopt_from is None else Path(adopt_from)
        self.after_run = after_run
        # rewrite the results from the runs finished earlier and run none (after an upgrade changed how a
        # run is summarised, or to read a sweep while another process runs it on a copy of its records)
        self.run_nothing = run_nothing
        self.out = Path(out)
        self.console = console or Console()
        self.ctx = ctx or init_distributed(cfg.device)
        # rank 0 speaks for the shared stages; the other ranks only print their own pipeline runs
        self.shared_console = self.console if self.ctx.is_main else Console(quiet=True)
        self.progress = progress and self.ctx.is_main
        self.results_path = self.out / "results.json"
        self.done_dir = self.out / "done"
        prev = read_json(self.results_path) if self.results_path.is_file() else {}
        # results of finished runs survive a restart even when their run folders are pruned
        self.results: dict[str, Any] = {**{b: prev.get(b, {}) for b in self.buckets},
                                        "failed": prev.get("failed", {}),
                                        # a rewrite keeps the wall time of the last invocation that ran runs
                                        **({"total_s": prev["total_s"]} if run_nothing and "total_s" in prev
                                           else {})}
        self.specs: list[RunSpec] = []
        self.keys: dict[str, str] = {}
        self.legacy_keys: dict[str, str | None] = {}

    # -------------------------------------------------------------- what a subclass supplies
    def prepare(self) -> Any:
        """The shared work before the runs; its return value goes to :meth:`run_specs`."""
        self.out.mkdir(parents=True, exist_ok=True)

    def run_specs(self, prepared: Any) -> list[RunSpec]:
        raise NotImplementedError

    def pipeline_config(self, spec: RunSpec):
        raise NotImplementedError

    def markdown(self, results: dict[str, Any]) -> str:
        raise NotImplementedError

    def extra_results(self) -> dict[str, Any]:
        """More entries of ``results.json`` (e.g. the shared stages' timings)."""
        return {}

    def write_outputs(self, results: dict[str, Any]) -> None:
        """More files rank 0 writes beside ``results.json`` each time it is rewritten, before ``results.md``
        (so the markdown can link to what exists), e.g. a machine-readable record or a figure."""

    def print_summary(self) -> None:
        """What rank 0 prints when every run has finished (after the results' paths)."""

    def before_run(self, spec: RunSpec, *, wait: bool = True) -> bool:
        """Shared work that only the runs need and that the first run to need it does, on its own rank while
        the ranks with other runs go on (e.g. the CelebA benchmark's per-seed translator); called on one
        process (inside :func:`~fairlatent.train.distributed.single_process`) just before the run. True when
        the work is done (by this call or earlier); with ``wait=False``, False at once, having done nothing,
        while another process is doing it (the driver then runs :meth:`partial_config` first)."""
        return True

    def partial_config(self, spec: RunSpec):
        """The run's pipeline config without the methods that need the shared work another process is doing
        (asked when :meth:`before_run` said so), or None when no method would be left. The driver runs it
        first and the whole run later: every stage is cached by its own config, so the whole run then trains
        only the methods left out, and its figures are those of a run made in one go (tested)."""
        return None

    def run_result(self, spec: RunSpec, report: dict[str, Any]) -> dict[str, Any]:
        """What a finished run contributes to the results: the report's summary and, from the run's scores,
        each method's rates by protected group on test (``rates_by_group``: which group a method moved)."""
        from fairlatent.pipeline.summary import group_rates

        out = {**summarize_report(report), "target": spec.target, "seed": spec.seed, **spec.extra}
        rates, _ = group_rates(report, spec.run_dir)  # a run without its scores file keeps its other figures
        for m, by_group in rates.get("test", {}).items():
            if m in out["methods"]:
                out["methods"][m]["rates_by_group"] = {str(a): v for a, v in by_group.items()}
        return out

    # -------------------------------------------------------------- stages across ranks
    def _on_main(self, runner: StageRunner, name: str, config: Any, fn: Callable[[Path], dict[str, Any]],
                 deps: tuple[str, ...] = ()) -> StageResult:
        """A stage written by rank 0 alone while the others wait; then every rank reads its record."""
        if self.ctx.is_main:
            res = runner.run(name, config, fn, deps)
        barrier(self.ctx)
        if not self.ctx.is_main:
            res = runner.run(name, config, must_be_done(name), deps)
        return res

    def _collective(self, runner: StageRunner, name: str, config: Any, train: Callable[[Path], dict[str, Any]],
                    deps: tuple[str, ...] = ()) -> StageResult:
        """A stage whose training is data-parallel: every rank calls ``train(stage_dir)`` together; rank 0
        prepares the folder and keeps the stage record (one process: a plain cached stage)."""
        ctx = self.ctx
        if not ctx.distributed:
            return runner.run(name, config, train, deps)
        done = runner.finished(name, runner.key(name, config, deps)) is not None
        barrier(ctx)  # every rank has looked before rank 0 touches the folder
        if not done:
            if ctx.is_main:
                def fn(stage_dir: Path) -> dict[str, Any]:
                    barrier(ctx)  # the folder is ready (a stale one cleared)
                    return train(stage_dir)

                runner.run(name, config, fn, deps)
            else:
                barrier(ctx)
                train(runner.run_dir / name)
            barrier(ctx)  # rank 0 has written stage.json
        if ctx.is_main and not done:
            return runner.results[name]
        return runner.run(name, config, must_be_done(name), deps)

    # -------------------------------------------------------------- records of runs
    def run_key(self, spec: RunSpec) -> str:
        """What identifies a finished run: its whole pipeline config (data, generator, f_g, settings)."""
        return stable_hash(self.pipeline_config(spec).model_dump(mode="json"))

    def legacy_key(self, spec: RunSpec) -> str | None:
        """The key an older version of this code gave the same run, before settings were added whose value in
        this config reproduces what it did (:meth:`fairlatent.pipeline.config.PipelineConfig.legacy_dump`);
        None when this config departs from the old behaviour."""
        old = self.pipeline_config(spec).legacy_dump()
        return None if old is None else stable_hash(old)

    def adopt(self) -> list[str]:
        """Write ``done/`` records for the runs that ``adopt_from`` (a benchmark's ``results.json``, e.g. the
        published ``docs/benchmarks/toyfaces.json``) has finished and this folder has not: the published
        figures become this folder's, and the run is not repeated. A published run is adopted only when the
        published config makes it the same pipeline config as this benchmark does (same key): a run of other
        settings would be silently wrong beside the new ones. The record keeps the run's machine, or that of
        the invocation that wrote the published file when the run itself predates the field (said so in the
        record). Returns the adopted runs' keys; rank 0 only (the caller holds the others at a barrier).
        The published config's keys are computed by a twin benchmark that has not prepared anything, so this
        serves benchmarks whose :meth:`pipeline_config` needs no prepared state: ToyFaces (each run makes its
        own GAN), not CelebA (its runs name the folder's shared stages), which offers no ``--adopt``."""
        path = self.adopt_from
        pub = read_json(path)
        if not isinstance(pub, dict) or not isinstance(pub.get("config"), dict):
            raise FairlatentError(f"{path}: not a benchmark's results.json (no 'config' object in it)")
        twin_cfg = validate_settings(type(self.cfg), pub["config"], f"{path} (its 'config')")
        twin = type(self)(twin_cfg, self.out, console=Console(quiet=True), ctx=self.ctx, run_nothing=True)
        written = pub.get("machine") or {}
        adopted, other = [], []
        for spec in self.specs:
            entry = pub.get(spec.bucket, {}).get(spec.key)
            if not isinstance(entry, dict) or self.record(spec) is not None:
                continue
            try:
                same = twin.run_key(spec) == self.keys[spec.key]
            except (FairlatentError, KeyError, StopIteration, ValueError):  # e.g. a pair it lacks
                same = False
            if not same:
                other.append(spec.key)
                continue
            machine = entry.get("machine") or {**written, "recorded": "of the invocation that wrote the file; "
                                               "the run predates per-run machines"}
            self.done_dir.mkdir(parents=True, exist_ok=True)
            write_json(self.done_dir / spec.record_name,
                       {"key": self.keys[spec.key], "status": "done", "result": entry, "machine": machine,
                        "adopted_from": str(path.resolve()), "finished": time.time()})
            adopted.append(spec.key)
        self.shared_console.print(f"adopted {len(adopted)} finished runs from {path}"
                                  + (f"; {len(other)} published runs have other settings and were not adopted: "
                                     + ", ".join(other) if other else ""))
        return adopted

    def _key_matches(self, rec: dict[str, Any] | None, spec: RunSpec) -> bool:
        return rec is not None and rec.get("key") in (self.keys.get(spec.key), self.legacy_keys.get(spec.key))

    def record(self, spec: RunSpec) -> dict[str, Any] | None:
        path = self.done_dir / spec.record_name
        return read_json(path) if path.is_file() else None

    def finished(self, spec: RunSpec) -> bool:
        """Whether the run has a record of this very config (or of its legacy key). A recorded failure counts
        too: the pipeline is seeded, so the same config fails the same way again (delete ``done/<run>.json``
        to retry)."""
        rec = self.record(spec)
        return self._key_matches(rec, spec) and rec.get("status") in ("done", "failed")

    def _run_one(self, spec: RunSpec, key: str, *, wait: bool = True) -> bool:
        """One pipeline run; its summary (or its failure) goes to ``done/<run>.json`` (and, on rank 0, into
        the merged results). With ``wait=False``: False, having run and recorded nothing, while another
        process does the run's shared work (:meth:`before_run`)."""
        from fairlatent.pipeline.run import run_pipeline

        t0 = time.perf_counter()
        # the machine goes with each run: bits are reproducible on one kind of CPU only, and a benchmark that
        # spans sittings can span machines
        stamp = {"key": key, "rank": self.ctx.rank, "world": self.ctx.world, "started": time.time(),
                 "machine": machine_description()}
        try:
            with single_process():
                if not self.before_run(spec, wait=wait):
                    return False
                self.console.rule(f"[bold]{spec.key}" + (f" · rank {self.ctx.rank}" if self.ctx.distributed
                                                         else ""))
                report = run_pipeline(self.pipeline_config(spec), spec.run_dir, console=self.console,
                                      progress=self.progress)
                if self.after_run is not None:
                    self.after_run(spec.run_dir)
        except FairlatentError as exc:  # one run's failure (e.g. a GAN that never draws a cell) is a result too
            self.console.print(f"[red]{spec.key} failed:[/] {exc}")
            write_json(self.done_dir / spec.record_name, {**stamp, "status": "failed", "error": str(exc),
                                                          "finished": time.time()})
        else:
            result = {**self.run_result(spec, report), "wall_s": round(time.perf_counter() - t0, 1),
                      "rank": self.ctx.rank}
            write_json(self.done_dir / spec.record_name, {**stamp, "status": "done", "result": result,
                                                          "finished": time.time()})
        if self.ctx.is_main:
            self.save()
        return True

    def _run_partial(self, spec: RunSpec, cfg: Any) -> None:
        """The run without the methods that wait for shared work (see :meth:`partial_config`); no record."""
        from fairlatent.pipeline.run import run_pipeline

        waiting = ", ".join(m for m in self.pipeline_config(spec).methods if m not in cfg.methods)
        self.console.rule(f"[bold]{spec.key}[/] · first without {waiting} (its shared work is being done elsewhere)"
                          + (f" · rank {self.ctx.rank}" if self.ctx.distributed else ""))
        try:
            with single_process():
                run_pipeline(cfg, spec.run_dir, console=self.console, progress=self.progress)
        except FairlatentError as exc:  # the whole run will meet it again and record it
            self.console.print(f"[yellow]{spec.key}: the part without the waiting methods stopped:[/] {exc}")

    def _claim(self, spec: RunSpec) -> bool:
        """Claim the run for this rank: True for exactly one of the ranks that try (an exclusive create)."""
        try:
            fd = os.open(self.done_dir / claim_name(spec), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(claim_text(self.ctx.rank, os.getpid()))
        return True

    def _clear_claims(self) -> None:
        for path in self.done_dir.glob("*.claim"):
            path.unlink(missing_ok=True)

    # -------------------------------------------------------------- results
    def merge(self) -> None:
        """Fold every run's record into the results (a record of another config is left for its rerun)."""
        for spec in self.specs:
            rec = self.record(spec)
            if not self._key_matches(rec, spec):
                continue
            if rec["status"] == "done":
                self.results["failed"].pop(spec.key, None)
                self.results[spec.bucket][spec.key] = {**rec["result"], **self._fresh_summary(spec),
                                                       **({"machine": rec["machine"]} if "machine" in rec else {})}
            else:
                self.results[spec.bucket].pop(spec.key, None)
                self.results["failed"][spec.key] = rec["error"]

    def _fresh_summary(self, spec: RunSpec) -> dict[str, Any]:
        """The run's summary re-read from its ``report.json`` when it is there, so a record written by an
        older version of this code gains what the summary holds now (e.g. the pre-flight verdict) without a
        rerun; the record's own figures stand where the report is missing or unreadable."""
        path = spec.run_dir / "report.json"
        if not path.is_file():
            return {}
        try:
            return self.run_result(spec, with_late_labeler_check(read_json(path), spec.run_dir))
        except (FairlatentError, KeyError, TypeError, ValueError):
            return {}

    def save(self) -> None:
        self.merge()
        if self.specs:  # the plan, for `fairlatent benchmark status` (which reads the folder, not this process)
            self.results["planned"] = [
                {"run": s.key, "bucket": s.bucket, "record": s.record_name, "key": self.keys.get(s.key),
                 **({"legacy_key": self.legacy_keys[s.key]} if self.legacy_keys.get(s.key) else {})}
                for s in self.specs]
        self.results["config"] = self.cfg.model_dump()
        self.results["machine"] = {**machine_description(), "ranks": self.ctx.world}
        self.results.update(self.extra_results())
        write_json(self.results_path, self.results)
        self.write_outputs(self.results)
        write_text(self.out / "results.md", self.markdown(self.results))

    # -------------------------------------------------------------- driver
    def run(self) -> dict[str, Any]:
        t0 = time.perf_counter()
        ctx = self.ctx
        prepared = self.prepare()
        self.specs = self.run_specs(prepared)
        self.keys = {spec.key: self.run_key(spec) for spec in self.specs}
        self.legacy_keys = {spec.key: self.legacy_key(spec) for spec in self.specs}
        if ctx.is_main:
            if self.adopt_from is not None:
                self.adopt()
            self.save()
        if self.adopt_from is not None:
            barrier(ctx)  # every rank sees the adopted records before it lists the unfinished runs
        todo = [spec for spec in self.specs if not self.finished(spec)]
        if ctx.is_main and not self.run_nothing:  # claims of an earlier invocation that died (the lock says so)
            self.done_dir.mkdir(parents=True, exist_ok=True)
            self._clear_claims()
        barrier(ctx)  # every rank has listed the unfinished runs, and the old claims are gone, before any claim
        skipped = len(self.specs) - len(todo)
        if self.run_nothing:
            self.shared_console.print(f"{len(self.specs)} runs: {skipped} finished earlier, {len(todo)} not run "
                                      "(run nothing: results rewritten from the finished ones)")
            todo = []
        else:
            self.shared_console.print(f"{len(self.specs)} runs: {skipped} finished earlier, {len(todo)} to run"
                                      + (f" over {ctx.world} ranks" if ctx.distributed else ""))
        deferred = []
        for spec in todo:
            if not self._claim(spec):
                continue
            # taking the shared work (or finding it done) and deciding to run whole are one step: a probe
            # followed by a waiting take let another rank take it in between, and this one idled for hours
            if self._run_one(spec, self.keys[spec.key], wait=False):
                continue
            partial = self.partial_config(spec)
            if partial is not None:
                self._run_partial(spec, partial)
            deferred.append(spec)
        for spec in deferred:  # before_run now waits for the shared work; the cached stages are not redone
            self._run_one(spec, self.keys[spec.key])
        if not ctx.is_main:
            return self.results
        # rank 0 waits for the other ranks' records on disk rather than at a barrier: a rank whose share
        # takes longer would outlast the process group's collective timeout (a rank that dies takes the
        # whole torchrun job with it, so this does not wait for ever)
        while not all(self.finished(spec) for spec in todo):
            time.sleep(1.0)
        if not self.run_nothing:  # the last invocation that ran something keeps its wall time
            self.results["total_s"] = round(time.perf_counter() - t0, 1)
            self._clear_claims()
        self.save()
        self.print_summary()
        self.console.print(f"results: {self.results_path} and {self.out / 'results.md'}")
        return self.results


__all__ = ["LATENT_KEYS", "METRICS", "RunSpec", "TaskBenchmark", "claim_name", "machine_description",
           "must_be_done", "preflight_summary", "summarize_report", "with_late_labeler_check"]
