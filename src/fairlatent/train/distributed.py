"""Data-parallel training on ``torch.distributed``: the process group, module wrapping, batch norm across ranks.

A training command runs on N processes when started by ``torchrun`` (which sets ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``), or when given ``--nproc N``, which re-launches the same
command under ``torch.distributed.run`` (:func:`launch`). Multi-node runs use torchrun's own rendezvous
options (``--nnodes``, ``--node-rank``, ``--rdzv-backend c10d --rdzv-endpoint HOST:PORT``) with the
output and data directories on a file system every node sees: every rank reads the data set and, on
resume, the checkpoint; only rank 0 writes.

Conventions (nanoGPT's, made explicit):

- **backend** gloo on CPU, NCCL on CUDA (one GPU per process, ``cuda:LOCAL_RANK``);
- **one wrapper per trainable module** (:func:`wrap`), so a GAN's generator and discriminator synchronise
  their gradients separately; the raw module stays reachable (:func:`unwrap`) for checkpoints (no
  ``module.`` prefix in any saved key), for forward passes that must not trigger a gradient reduction
  (the discriminator inside the generator's step, gradient penalties), and for EMA copies;
- **batch norm across ranks**: :func:`convert_batchnorm` replaces every ``BatchNorm`` by
  :class:`GlobalBatchNorm`, which computes its training statistics over the *global* batch with a
  differentiable all-reduce. torch's ``SyncBatchNorm`` only runs on GPUs; this one runs on gloo and NCCL
  alike, and makes N ranks with B/N images each compute what one process computes on the B images, which
  the CI test checks for the classifier (same weights to 1e-5). In evaluation mode it is a plain batch norm;
- **writes from rank 0 only** (:attr:`DistContext.is_main`);
- **random streams**: every random draw of a step is made for the global batch from streams derived from
  ``(seed, step)`` and each rank takes its slice (see :mod:`fairlatent.train.engine`), so each rank's
  numbers are a pure function of the seed, its rank and the world size, and the data order does not
  depend on the number of processes.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import warnings
from dataclasses import dataclass
from typing import Iterator, Sequence

import torch
import torch.distributed as dist
from torch import nn

from fairlatent.errors import FairlatentError
from fairlatent.utils.device import default_device


# torch 2.13 flags both APIs used here as deprecated; their replacements are not equivalent yet (the
# differentiable all-reduce has no non-deprecated public form, and forward_sync_buffers=False still syncs
# buffers at construction), so the warnings are silenced rather than followed.
warnings.filterwarnings("ignore", message=r".*torch\.distributed\.nn\.functional\.all_reduce is deprecated", category=FutureWarning)
warnings.filterwarnings("ignore", message=r".*`broadcast_buffers` is deprecated", category=FutureWarning)


@dataclass(frozen=True)
class DistContext:
    """Where this process stands: its rank among ``world`` processes, and its device."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes files, prints and shows progress."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1

    def shard(self, n: int) -> slice:
        """This rank's contiguous slice of ``n`` items: rank r gets items [⌊rn/W⌋, ⌊(r+1)n/W⌋)."""
        return slice(self.rank * n // self.world, (self.rank + 1) * n // self.world)


def env_world_size() -> int:
    """``WORLD_SIZE`` as set by torchrun (1 when not launched by it)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        raise FairlatentError(f"WORLD_SIZE={os.environ['WORLD_SIZE']!r} is not a whole number") from None


_LOCAL_ONLY = [0]  # > 0 inside single_process()


@contextlib.contextmanager
def single_process() -> Iterator[None]:
    """Train on this process alone inside the block, even when launched by torchrun.

    A task-parallel job (a benchmark that shards independent runs over its ranks) uses the process group
    for some steps and trains other models rank by rank; inside this block :func:`init_distributed`
    returns a one-process context, so those trainings neither wait for nor talk to the other ranks.
    """
    _LOCAL_ONLY[0] += 1
    try:
        yield
    finally:
        _LOCAL_ONLY[0] -= 1


def init_distributed(device: str | None = None) -> DistContext:
    """Join the process group torchrun set up (once per process) and return this rank's context.

    Without torchrun's environment (or inside :func:`single_process`) this is a single process on
    ``default_device(device)``. Under torchrun the backend is NCCL when the device is CUDA and gloo
    otherwise; CUDA ranks use ``cuda:LOCAL_RANK``.
    """
    world = env_world_size()
    if world <= 1 or _LOCAL_ONLY[0]:
        dev = default_device(device)
        if world > 1 and dev.type == "cuda" and device is None:  # one GPU per rank also when training alone
            dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        return DistContext(device=dev)
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    dev = default_device(device)
    if dev.type == "cuda":
        dev = torch.device("cuda", local_rank)
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return DistContext(rank=rank, world=world, local_rank=local_rank, device=dev)


def wrap(module: nn.Module, ctx: DistContext) -> nn.Module:
    """``module`` in a DistributedDataParallel wrapper when there are several ranks, else itself.

    ``broadcast_buffers=False``: batch-norm statistics are made identical on every rank by
    :class:`GlobalBatchNorm`, and spectral-norm vectors depend on the (synchronised) weights only. With
    per-rank batch norm (a spec's ``dp_batchnorm = "local"``) each rank keeps running statistics of its own
    slices and rank 0's are saved: DDP's default broadcast of them before every forward pass is one more
    collective per step (measured ~8 % of the 2-process throughput on CPU) and changes no gradient.
    """
    if not ctx.distributed:
        return module
    ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(module, device_ids=ids, broadcast_buffers=False)


def unwrap(module: nn.Module) -> nn.Module:
    """The raw module behind a DDP wrapper (itself when not wrapped)."""
    return module.module if isinstance(module, nn.parallel.DistributedDataParallel) else module


class GlobalBatchNorm(nn.BatchNorm2d):
    """Batch norm whose training statistics are taken over the images of *all* ranks.

    Per channel c, with S = Σ x, Q = Σ x² and M the number of values summed over every rank's batch
    (one differentiable all-reduce of [S, Q, M]): mean = S / M, var = Q / M − mean² (biased, used to
    normalise), running_var updated with the unbiased var · M / (M − 1) — what ``nn.BatchNorm2d`` computes
    on the concatenated batch. The all-reduce's backward sums the gradients of S and Q over ranks, so
    the gradient is that of the global batch too. With one process it is ``nn.BatchNorm2d``.

    Measured against one process (tests/test_distributed.py): outputs, input and weight gradients and
    running statistics agree to float rounding. One caveat found on the way: on CPU, torch's own
    ``BatchNorm2d`` on *channels_last* tensors gives weight gradients ~0.2 % (relative) away from the
    contiguous-format result, while this module's gradients on channels_last match the contiguous
    ones to 3e-8; so one-process and N-process runs in channels_last (the trainers' default) drift apart
    under Adam by ~1e-4 in the weights after a few steps (losses still agree to 1e-5), whereas in
    contiguous format they agree to 1e-5. The single-process path is kept as it is (it is ~20 % faster
    per classifier step than this module without communication, and it keeps earlier runs bitwise
    reproducible).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        from torch.distributed.nn.functional import all_reduce

        xf = x.float()
        local = torch.cat([xf.sum(dim=(0, 2, 3)), xf.square().sum(dim=(0, 2, 3)),
                           xf.new_full((1,), float(x.shape[0] * x.shape[2] * x.shape[3]))])  # fmt: skip
        total = all_reduce(local)
        c = x.shape[1]
        m = total[2 * c]
        mean = total[:c] / m
        var = (total[c : 2 * c] / m - mean.square()).clamp_min(0.0)
        if self.track_running_stats and self.running_mean is not None:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                mom = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.lerp_(mean.detach().to(self.running_mean.dtype), mom)
                unbiased = var.detach() * (m / (m - 1).clamp_min(1.0))
                self.running_var.lerp_(unbiased.to(self.running_var.dtype), mom)
        inv = torch.rsqrt(var + self.eps)
        scale = inv if self.weight is None else inv * self.weight
        shift = -mean * scale if self.bias is None else self.bias - mean * scale
        return (xf * scale[None, :, None, None] + shift[None, :, None, None]).to(x.dtype)


def convert_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every 2-d batch norm in ``module`` (in place) by :class:`GlobalBatchNorm`, keeping its state.

    Parameter and buffer names are unchanged, so checkpoints and weight files are the same either way.
    """
    for name, child in list(module.named_children()):
        if type(child) is nn.BatchNorm2d:
            new = GlobalBatchNorm(child.num_features, child.eps, child.momentum, child.affine, child.track_running_stats)
            new.load_state_dict(child.state_dict())
            new.to(device=child.weight.device if child.weight is not None else None)
            new.train(child.training)
            setattr(module, name, new)
        else:
            convert_batchnorm(child)
    return module


def all_reduce_sum(t: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Σ over ranks of ``t`` (a copy; ``t`` itself when single-process)."""
    if not ctx.distributed:
        return t
    out = t.detach().clone()
    dist.all_reduce(out)
    return out


def gather_to_main(t: torch.Tensor, ctx: DistContext) -> list[torch.Tensor]:
    """Every rank's ``t`` (equal shapes) as a list on every rank; ``[t]`` when single-process."""
    if not ctx.distributed:
        return [t]
    out = [torch.empty_like(t) for _ in range(ctx.world)]
    dist.all_gather(out, t.contiguous())
    return out


def barrier(ctx: DistContext) -> None:
    if ctx.distributed:
        dist.barrier()


def launch(args: Sequence[str], nproc: int, *, module: str = "fairlatent.cli") -> int:
    """Run ``python -m <module> <args>`` on ``nproc`` processes of this machine under torchrun; return its exit code.

    Each process gets ``OMP_NUM_THREADS=1`` unless the caller set it (torchrun's own default too): N
    processes × 1 thread is what the data-parallel benchmark measures on an N-core machine.
    """
    if nproc < 1:
        raise FairlatentError(f"--nproc must be ≥ 1, got {nproc}")
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    cmd = [sys.executable, "-m", "fairlatent.train.torchrun", "--standalone", f"--nproc-per-node={nproc}",
           "-m", module, *args]  # fmt: skip
    return subprocess.call(cmd, env=env)


def strip_nproc(argv: Sequence[str]) -> list[str]:
    """``argv`` without ``--nproc N`` / ``--nproc=N`` (what the launched processes must not see again)."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        if a == "--nproc":
            skip = True
            continue
        if a.startswith("--nproc="):
            continue
        out.append(a)
    return out
