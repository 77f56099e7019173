"""GAN training speed: the job's step (``GANTrainer.train_step`` fed by ``BatchSource``) vs a minimal loop.

Both sides train the same DCGAN (same initial weights, same memory format) on the same images with the
same hinge loss, batch size and (when the config enables it) translation augmentation of D's inputs;
the hand-written loop has no seeded per-step generators, no per-batch seeded flips, no EMA and no loss
bookkeeping — it is the floor. Rounds alternate between the two so a
shared, busy CPU slows both alike; the figure of merit is the ratio job/minimal (≥ 0.95: the job adds no
meaningful overhead). Also compares channels_last vs the default memory format for the job's step.

    python benchmarks/bench_gan.py [--sizes 32 64] [--steps 8] [--rounds 3] [--batch-size 64] [--threads N]
"""

from __future__ import annotations

import argparse
import copy
import json
import time

import numpy as np
import torch
from torch.nn import functional as F

from fairlatent.train.gan import BatchSource, GANConfig, GANObjective, GANTrainer, translate
from fairlatent.utils.device import autocast
from fairlatent.utils.images import to_tensor


def job_runner(cfg: GANConfig, size: int, images: np.ndarray):
    """The job's step as the training engine takes it: fed by ``BatchSource``, under the autocast the engine
    enters for a ``GANObjective`` (none at the default ``precision = "fp32"``)."""
    tr = GANTrainer(cfg, size)
    src = BatchSource(images, cfg.batch_size, seed=cfg.seed, flip=cfg.flip, device=tr.device,
                      channels_last=cfg.channels_last)  # fmt: skip
    obj = GANObjective(tr, src)
    state = {"step": 0}

    def run(n: int) -> None:
        for _ in range(n):
            s = state["step"]
            with autocast(tr.device, enabled=obj.autocast, on_cpu=obj.autocast_cpu):
                loss_d, loss_g = tr.train_step(s, [src(s)])
            state["step"] = s + 1
        float(loss_d), float(loss_g)

    return tr, run


def minimal_runner(tr_template: GANTrainer, cfg: GANConfig, images: np.ndarray):
    """The same networks, trained by the shortest reasonable PyTorch loop."""
    G, D = copy.deepcopy(tr_template.G), copy.deepcopy(tr_template.D)
    opt_g = torch.optim.Adam(G.parameters(), lr=cfg.lr_g, betas=cfg.betas)
    opt_d = torch.optim.Adam(D.parameters(), lr=cfg.lr_d, betas=cfg.betas)
    B, L = cfg.batch_size, cfg.latent_dim
    fmt = torch.channels_last if cfg.channels_last else torch.contiguous_format
    perm = np.random.default_rng(0).permutation(len(images))
    state = {"pos": 0}
    r = images.shape[1] // 8

    def aug(x):
        return translate(x, torch.randint(-r, r + 1, (len(x), 2))) if cfg.augment == "translation" else x

    def run(n: int) -> None:
        for _ in range(n):
            p = state["pos"] % (len(images) // B)
            real = to_tensor(images[perm[p * B : (p + 1) * B]]).contiguous(memory_format=fmt)
            state["pos"] += 1
            with torch.no_grad():
                fake = G(torch.randn(B, L))
            out = D(aug(torch.cat([real, fake])))
            loss_d = F.relu(1 - out[:B]).mean() + F.relu(1 + out[B:]).mean()
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
            D.requires_grad_(False)
            loss_g = -D(aug(G(torch.randn(B, L)))).mean()
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()
            D.requires_grad_(True)
        float(loss_d.detach()), float(loss_g.detach())

    return run


def timed(run, steps: int) -> float:
    t = time.perf_counter()
    run(steps)
    return steps / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[32, 64])
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--width", type=int, default=None, help="default: GANConfig's")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="GANConfig override (JSON value)")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: unchanged)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()} (absolute figures depend on CPU load)")
    for size in args.sizes:
        images = np.random.default_rng(0).integers(0, 256, (512, size, size, 3), dtype=np.uint8)
        extra = {} if args.width is None else {"width": args.width}
        extra.update({k: json.loads(v) for k, _, v in (item.partition("=") for item in args.set)})
        cfg = GANConfig(batch_size=args.batch_size, **extra)
        runners = {}
        tr, runners["job (channels_last)"] = job_runner(cfg, size, images)
        runners["minimal loop (channels_last)"] = minimal_runner(tr, cfg, images)
        cfg_std = cfg.model_copy(update={"channels_last": False})
        _, runners["job (contiguous NCHW)"] = job_runner(cfg_std, size, images)
        for run in runners.values():
            run(2)  # warm-up: kernel selection, allocator
        rates = {k: [] for k in runners}
        for _ in range(args.rounds):
            for name, run in runners.items():
                rates[name].append(timed(run, args.steps))
        med = {k: float(np.median(v)) for k, v in rates.items()}
        print(f"\n{size}×{size}, DCGAN width {cfg.width}, batch {cfg.batch_size}, hinge, EMA {cfg.ema}, "
              f"D minibatch-std {cfg.d_minibatch_std}, augment {cfg.augment}:")  # fmt: skip
        for name, r in med.items():
            print(f"  {name:<30} {r:7.2f} steps/s  {r * cfg.batch_size:8.0f} img/s   rounds: "
                  + " ".join(f"{x:.2f}" for x in rates[name]))  # fmt: skip
        print(f"  ratio job/minimal               {med['job (channels_last)'] / med['minimal loop (channels_last)']:.3f}")
        print(f"  ratio channels_last/NCHW        {med['job (channels_last)'] / med['job (contiguous NCHW)']:.3f}")


if __name__ == "__main__":
    main()
