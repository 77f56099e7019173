"""One training engine under every model: the loop, the data order, checkpoints, resume, logs, progress.

A model supplies an :class:`Objective`: its modules and optimisers by name, and ``train_step`` over the
batches of one step. The engine owns everything else, once:

- **step and epoch counting** and the **data order** (:class:`DataOrder`): epoch e visits the training
  rows in ``rng(seed, stream, e).permutation(n)``, cut into global batches; each rank takes its contiguous
  slice of every global batch, so the order is the same for any number of processes;
- **checkpoints** every ``checkpoint_every`` steps and at the end (:mod:`fairlatent.train.checkpoint`:
  an atomic directory with every module's and optimiser's tensors under the objective's names — raw
  modules, never a ``module.`` prefix — the global RNG state of every rank, and a JSON record of the
  step, the data-order position, elapsed time and the objective's own state), written by rank 0 only;
- **bitwise resume**: a run restarted from its checkpoint does exactly what the uninterrupted run does,
  because every random number of a step comes from ``(seed, step)`` streams and the rest of the state
  is in the checkpoint (checked by tests for every trainer, on one process and on two);
- ``log.csv`` (step, the objective's losses averaged over the log interval and over ranks, training
  images/s, elapsed seconds), a rich progress bar, and callbacks every K steps or at epoch ends
  (sample grids, validation) that run on rank 0.

What the engine does not know: what a batch holds (the objective gathers its rows), the losses, the
models. A training job (``train_gan``, ``train_classifier``) builds the objective and the order, calls
:meth:`Engine.run`, then writes its final artefacts.
"""

from __future__ import annotations

import csv
import io
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol, Sequence

import numpy as np
import torch
from torch import nn

from fairlatent.errors import FairlatentError
from fairlatent.train.checkpoint import (
    has_checkpoint,
    load_checkpoint,
    load_module_state,
    load_optimizer_state,
    save_checkpoint,
    state_tensors,
)
from fairlatent.train.distributed import DistContext, all_reduce_sum, gather_to_main
from fairlatent.utils.device import autocast
from fairlatent.utils.io import read_json, write_text
from fairlatent.utils.seed import rng
from fairlatent.utils.threads import rebalance as rebalance_threads

def training_seconds(log_csv: str | Path, fallback: float = float("nan")) -> float:
    """Training seconds of a run, the last ``elapsed_s`` of its ``log.csv``.

    Elapsed time is carried through checkpoints, so this is the run's whole training time even when it was
    resumed, or when a finished run is reused and the caller's own clock read 0.
    """
    try:
        with Path(log_csv).open() as fh:
            rows = list(csv.DictReader(fh))
        return float(rows[-1]["elapsed_s"])
    except (OSError, KeyError, IndexError, ValueError, TypeError):
        return fallback


# --- the data order ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Batch:
    """This rank's part of global batch ``index``.

    ``rows`` are indices into the training rows (this rank's slice of the global batch, in order),
    ``positions`` their positions in the epoch's permutation (per-sample random streams of an epoch are
    indexed by them), ``part`` this rank's slice of the global batch, of ``global_size`` rows.
    """

    index: int
    epoch: int
    rows: np.ndarray
    positions: np.ndarray
    part: slice
    global_size: int


class DataOrder:
    """Which training rows each global batch holds, a pure function of ``(seed, stream, batch index)``.

    Epoch ``e`` visits the ``n`` rows in ``rng(seed, stream, e).permutation(n)`` in batches of
    ``batch_size``; with ``drop_last`` the remainder is skipped that epoch (``n // batch_size`` batches),
    otherwise the last batch is short (``ceil(n / batch_size)`` batches). Under data parallelism every
    rank computes the same global batch and keeps :meth:`DistContext.shard` of it.
    """

    def __init__(self, n: int, batch_size: int, *, seed: int, stream: str, drop_last: bool,
                 ctx: DistContext | None = None):  # fmt: skip
        if n < 1:
            raise FairlatentError("no training rows")
        if drop_last and batch_size > n:
            raise FairlatentError(f"batch_size {batch_size} exceeds the {n} training images")
        self.n, self.batch_size, self.seed, self.stream, self.drop_last = n, batch_size, seed, stream, drop_last
        self.ctx = ctx or DistContext()
        self.per_epoch = n // batch_size if drop_last else -(-n // batch_size)
        self._epoch, self._perm = -1, np.empty(0, dtype=np.int64)

    def permutation(self, epoch: int) -> np.ndarray:
        if epoch != self._epoch:
            self._epoch, self._perm = epoch, rng(self.seed, self.stream, epoch).permutation(self.n)
        return self._perm

    def batch(self, index: int) -> Batch:
        epoch, b = divmod(index, self.per_epoch)
        lo = b * self.batch_size
        positions = np.arange(lo, min(lo + self.batch_size, self.n))
        part = self.ctx.shard(len(positions))
        positions = positions[part]
        return Batch(index=index, epoch=epoch, rows=self.permutation(epoch)[positions], positions=positions,
                     part=part, global_size=min(self.batch_size, self.n - lo))  # fmt: skip

    def state(self, step: int, batches_per_step: int) -> dict[str, Any]:
        """The data-order position after ``step`` steps (recorded in checkpoints; resume recomputes it)."""
        nxt = step * batches_per_step
        return {"stream": self.stream, "n": self.n, "batch_size": self.batch_size, "drop_last": self.drop_last,
                "next_batch": nxt, "epoch": nxt // self.per_epoch, "batch_in_epoch": nxt % self.per_epoch}


def identity_keys(spec: type) -> tuple[str, ...]:
    """The fields of a pydantic training spec that identify what a run computes.

    Every field takes part unless it is marked ``json_schema_extra={"resume_key": False}`` (how often to
    log or checkpoint, the device, the number of steps): a checkpoint resumes only under a spec that agrees
    on all identity keys, and a field added later takes part without being listed anywhere else.
    """
    return tuple(name for name, f in spec.model_fields.items()
                 if not (isinstance(f.json_schema_extra, dict) and f.json_schema_extra.get("resume_key") is False))


def cache_dump(spec: Any, legacy: Mapping[str, Any], include: Sequence[str] | None = None) -> dict[str, Any]:
    """``spec.model_dump()`` (of ``include`` only, when given) without the fields that hold their legacy value.

    ``legacy`` maps settings added after runs were cached to the value that reproduces the behaviour before
    them: left out at that value, a new setting changes no existing cache key, fingerprint or stage key (no
    retraining of cached models); set to anything else, it is part of the key like every other field.
    """
    dump = spec.model_dump(include=set(include) if include is not None else None)
    return {k: v for k, v in dump.items() if not (k in legacy and v == legacy[k])}


# --- what a model supplies ---------------------------------------------------------------------------


class Objective(Protocol):
    """A model's training objective, as the engine sees it.

    ``modules()``/``optimizers()`` name the raw (unwrapped) modules and optimisers whose state the checkpoint
    holds. ``train_step(step, batches)`` takes one optimisation step over ``batches`` (``batches_per_step``
    of them, e.g. n_critic for a GAN) and returns scalar losses as *this rank's share of the global batch
    mean* (they are summed over ranks for the log). ``autocast = True`` runs the step under bf16 autocast on
    CUDA, and on CPU only with ``autocast_cpu = True`` too (:func:`~fairlatent.utils.device.autocast`).
    Optional: ``extra_state()``/``load_extra_state(state)`` (JSON-able loop state, e.g. a classifier's best
    epoch) and ``extra_tensors()``/``load_extra_tensors(t)``.
    """

    def modules(self) -> Mapping[str, nn.Module]: ...

    def optimizers(self) -> Mapping[str, torch.optim.Optimizer]: ...

    def train_step(self, step: int, batches: Sequence[Batch]) -> Mapping[str, torch.Tensor]: ...


@dataclass
class Callback:
    """``fn(step)`` after every ``every``-th step (``every=0``: never), at epoch ends, and/or after the last step.

    Callbacks run on every rank (validation may need all of them); guard writes with ``ctx.is_main``.
    """

    fn: Callable[[int], None]
    every: int = 0
    at_epoch_end: bool = False
    at_end: bool = False


@dataclass
class LoopSettings:
    """How long to train and how often to write: the engine's part of a training spec."""

    steps: int
    batches_per_step: int = 1
    checkpoint_every: int = 500
    log_every: int = 50
    name: str = "train"
    checkpoint_at_epoch_end: bool = False


# --- the engine --------------------------------------------------------------------------------------


@dataclass
class Engine:
    """Runs an :class:`Objective` over a :class:`DataOrder` in ``out_dir`` with checkpoints and resume.

    ``run_config`` is stored with every checkpoint; on resume the keys in ``resume_keys`` must have the
    same value in the saved one (another architecture, seed or batch size cannot continue a run), and
    ``legacy_values`` gives the value a key had implicitly in checkpoints written before it existed.
    """

    objective: Any
    order: DataOrder
    out_dir: Path
    loop: LoopSettings
    ctx: DistContext = field(default_factory=DistContext)
    run_config: Mapping[str, Any] = field(default_factory=dict)
    resume_keys: Sequence[str] = ()
    legacy_values: Mapping[str, Any] = field(default_factory=dict)
    callbacks: list[Callback] = field(default_factory=list)
    progress: bool = True

    def __post_init__(self) -> None:
        self.out_dir = Path(self.out_dir)
        self.ckpt_dir = self.out_dir / "checkpoint"
        self.log_path = self.out_dir / "log.csv"
        self.log_rows: list[dict[str, Any]] = []
        self.elapsed0 = 0.0
        self.start_step = 0
        self._rng_state: dict[str, torch.Tensor] = {}

    # --- checkpoint state ---
    def tensors(self) -> dict[str, torch.Tensor]:
        """Every tensor of the run state: modules, optimisers, the objective's extras and each rank's RNG."""
        obj = self.objective
        out = state_tensors(obj.modules(), obj.optimizers())
        if hasattr(obj, "extra_tensors"):
            out.update(obj.extra_tensors())
        for r, state in enumerate(gather_to_main(torch.get_rng_state(), self.ctx)):
            out[f"_rng.rank{r}.torch_cpu"] = state
        if self.ctx.device.type == "cuda":
            for r, state in enumerate(gather_to_main(torch.cuda.get_rng_state(self.ctx.device).to(self.ctx.device), self.ctx)):
                out[f"_rng.rank{r}.torch_cuda"] = state.cpu()
        return out

    def save(self, step: int, elapsed: float) -> None:
        tensors = self.tensors()  # every rank takes part in gathering the RNG states
        if not self.ctx.is_main:
            return
        state = {"step": step, "elapsed_s": elapsed, "world_size": self.ctx.world,
                 "data_order": self.order.state(step, self.loop.batches_per_step)}  # fmt: skip
        if hasattr(self.objective, "extra_state"):
            state.update(self.objective.extra_state())
        save_checkpoint(self.ckpt_dir, tensors, dict(self.run_config), state)
        self._write_log()

    def _check_resume_config(self, saved: Mapping[str, Any]) -> None:
        """Keys a checkpoint predates must hold the value they had implicitly (``legacy_values``). A key the
        run config leaves out (a spec may omit settings at their legacy value from its dump) holds that value."""
        for k in self.resume_keys:
            if k not in saved and k in self.legacy_values and \
                    self.run_config.get(k, self.legacy_values[k]) != self.legacy_values[k]:
                raise FairlatentError(
                    f"{self.ckpt_dir}: checkpoint was made with {k}={self.legacy_values[k]!r} (it predates the "
                    f"setting) but the configuration has {k}={self.run_config.get(k)!r}; use a new output "
                    "directory or start afresh"
                )

    def restore(self) -> int:
        """Load the checkpoint of ``out_dir`` if there is one; return the step training resumes from (0: none)."""
        if not has_checkpoint(self.ckpt_dir):
            return 0
        saved_cfg = read_json(self.ckpt_dir / "config.json")
        if not isinstance(saved_cfg, dict):
            raise FairlatentError(f"{self.ckpt_dir / 'config.json'}: expected a JSON object {{...}}; the checkpoint "
                                  "is damaged (delete the checkpoint folder to start over)")
        self._check_resume_config(saved_cfg)
        must_match = [k for k in self.resume_keys if k in saved_cfg]
        tensors, _, state = load_checkpoint(self.ckpt_dir, expect_config=self.run_config, must_match=must_match)
        if int(state.get("world_size", 1)) != self.ctx.world:
            raise FairlatentError(
                f"{self.ckpt_dir}: checkpoint was written by {state.get('world_size', 1)} process(es), this run has "
                f"{self.ctx.world}; resume with the same number of processes (the batch-norm statistics and the "
                "per-rank random streams depend on it), or start afresh"
            )
        obj = self.objective
        src = self.ckpt_dir
        for name, m in obj.modules().items():
            load_module_state(m, tensors, name, source=src)
        for name, o in obj.optimizers().items():
            dev = self.ctx.device
            part = {k: (v if k.endswith(".step") else v.to(dev)) for k, v in tensors.items() if k.startswith(f"{name}.")}
            load_optimizer_state(o, part, name, source=src)
        if hasattr(obj, "load_extra_tensors"):
            obj.load_extra_tensors(tensors)
        if hasattr(obj, "load_extra_state"):
            obj.load_extra_state(state)
        self._rng_state = {k.rsplit(".", 1)[1]: v for k, v in tensors.items() if k.startswith(f"_rng.rank{self.ctx.rank}.")}
        self.start_step = int(state["step"])
        self.elapsed0 = float(state.get("elapsed_s", 0.0))
        if self.start_step > self.loop.steps:
            raise FairlatentError(f"{self.ckpt_dir}: checkpoint is at step {self.start_step}, beyond steps={self.loop.steps}")
        self.log_rows = self._read_log(self.start_step)
        return self.start_step

    # --- log.csv ---
    def _read_log(self, upto: int) -> list[dict[str, Any]]:
        if not self.log_path.is_file():
            return []
        rows = list(csv.DictReader(io.StringIO(self.log_path.read_text())))
        return [r for r in rows if int(r["step"]) <= upto]

    def _write_log(self) -> None:
        if not self.log_rows:
            return
        columns = list(self.log_rows[-1].keys())
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(self.log_rows)
        write_text(self.log_path, buf.getvalue())

    # --- the loop ---
    def run(self, *, stop_at_step: int | None = None) -> int:
        """Train from the current step to ``loop.steps`` (or ``stop_at_step``); return the last step done.

        A checkpoint is written every ``checkpoint_every`` steps, at epoch ends when asked, and after the
        last step, so a run stopped early (``stop_at_step``, an exception, a kill) resumes exactly.

        The global torch RNG (which torch seeds at random in every new process) is, for the duration of
        the run, seeded from ``(seed, "engine-global", rank)`` on a fresh start and restored from the
        checkpoint on resume, so an objective that draws from it (dropout, say) is reproducible and
        resumable too; the caller's own global RNG state is left as it was.
        """
        devices = [self.ctx.device] if self.ctx.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            if self._rng_state:
                torch.set_rng_state(self._rng_state["torch_cpu"])
                if devices and "torch_cuda" in self._rng_state:
                    torch.cuda.set_rng_state(self._rng_state["torch_cuda"], self.ctx.device)
            else:
                seed = int(rng(self.order.seed, "engine-global", self.ctx.rank).integers(0, 2**62))
                torch.manual_seed(seed)
            return self._run(stop_at_step)

    def _run(self, stop_at_step: int | None) -> int:
        loop, ctx, obj = self.loop, self.ctx, self.objective
        last = loop.steps if stop_at_step is None else min(loop.steps, stop_at_step)
        per_epoch_steps = self.order.per_epoch // loop.batches_per_step if loop.checkpoint_at_epoch_end else 0
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        bar = Progress(TextColumn(loop.name), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"),
                       TimeElapsedColumn(), TimeRemainingColumn(), disable=not (self.progress and ctx.is_main))  # fmt: skip
        t0 = time.perf_counter()
        t_log, step_log = t0, self.start_step
        sums: dict[str, torch.Tensor] = {}
        images = 0
        with bar:
            task = bar.add_task("", total=loop.steps, completed=self.start_step)
            for step in range(self.start_step, last):
                batches = [self.order.batch(step * loop.batches_per_step + k) for k in range(loop.batches_per_step)]
                images += sum(b.global_size for b in batches)
                with autocast(ctx.device, enabled=bool(getattr(obj, "autocast", False)),
                              on_cpu=bool(getattr(obj, "autocast_cpu", False))):  # fmt: skip
                    losses = obj.train_step(step, batches)
                rebalance_threads()  # auto thread count follows the jobs sharing the CPUs (a clock read but every 5 s)
                for k, v in losses.items():
                    sums[k] = sums[k] + v if k in sums else v
                done = step + 1
                epoch_end = bool(per_epoch_steps) and done % per_epoch_steps == 0
                if done % loop.log_every == 0 or done == loop.steps or epoch_end:
                    now = time.perf_counter()
                    k = done - step_log
                    row: dict[str, Any] = {"step": done, "epoch": round(done * loop.batches_per_step / self.order.per_epoch, 3)}
                    for name, v in sums.items():
                        row[name] = round(float(all_reduce_sum(v, ctx)) / k, 5)
                    row["images_per_s"] = round(images / max(now - t_log, 1e-9), 1)
                    row["elapsed_s"] = round(self.elapsed0 + now - t0, 2)
                    self.log_rows.append(row)
                    desc = "  ".join(f"{n} {row[n]:.3f}" for n in sums)
                    bar.update(task, description=f"{desc}  {row['images_per_s']:.0f} img/s")
                    t_log, step_log, sums, images = now, done, {}, 0
                bar.update(task, completed=done)
                for cb in self.callbacks:
                    if (cb.every and done % cb.every == 0) or (cb.at_epoch_end and epoch_end):
                        cb.fn(done)
                if (done % loop.checkpoint_every == 0 or epoch_end) and done != last:
                    self.save(done, self.elapsed0 + time.perf_counter() - t0)
        final = max(self.start_step, last)
        if final == loop.steps:
            for cb in self.callbacks:
                if cb.at_end and not ((cb.every and final % cb.every == 0) or (cb.at_epoch_end and per_epoch_steps
                                                                                and final % per_epoch_steps == 0)):
                    cb.fn(final)
        self.save(final, self.elapsed0 + time.perf_counter() - t0)
        return final
