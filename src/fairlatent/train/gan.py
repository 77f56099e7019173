"""Train a GAN on the ``train`` split of a data set, with checkpoints, exact resume and sample grids.

The loop is written out in full (no framework). One training *step* is ``n_critic`` discriminator
updates followed by one generator update, then the exponential moving average (EMA) of the generator
weights::

    D step:  L_D = loss_D(D(x_real), D(G(z)))              [+ λ · GP for WGAN-GP] [+ (γ/2) · R1]
    G step:  L_G = loss_G(D(G(z)))
    EMA:     θ_ema ← β · θ_ema + (1 − β) · θ_G, β = min(decay, (1+t)/(10+t)), t = step − ema_start

Losses (``d_real``, ``d_fake`` are discriminator logits):

- ``ns`` (non-saturating): L_D = softplus(−d_real) + softplus(d_fake), L_G = softplus(−d_fake)
- ``hinge``: L_D = relu(1 − d_real) + relu(1 + d_fake), L_G = −d_fake
- ``wgan-gp``: L_D = d_fake − d_real + λ (‖∇D(x̂)‖₂ − 1)², x̂ = α x_real + (1 − α) x_fake, α ~ U(0, 1);
  L_G = −d_fake (Gulrajani et al. 2017, λ = 10)
- optional R1 for ``ns``/``hinge`` (Mescheder et al. 2018): R1 = E‖∇ₓD(x_real)‖₂², added as (γ/2)·R1;
  with ``r1_every=k`` it is computed every k-th step only and weighted by k (StyleGAN2's lazy form)

InfoGAN (Chen et al. 2016; reference code openai/InfoGAN), on when ``info_categorical`` or
``info_continuous`` is set: the generator's input is [noise, one-hot categorical codes, continuous codes],
D carries a Q head on its trunk, and both updates add λ·(−log Q(c | G(z, c))) for the codes that made
the generated images — λ_cat · cross-entropy of the categorical codes + λ_cont · Gaussian NLL of the
continuous ones (:func:`fairlatent.models.infogan.info_terms`) — to L_D (training D's trunk and Q, on
the fakes of the D step) and to L_G (training G, through the frozen D and Q). The codes of a step are
drawn from the step's generator right after the noise. ``log.csv`` gets ``mi_cat`` (Σ ln K − CE of the
G step: the mutual-information lower bound, ceiling Σ ln K) and ``nll_cont``.

Exact resume: every random number is derived from ``(seed, step)`` rather than from a generator that
runs across steps — the data order of epoch e is ``rng(seed, "gan-order", e)``, the flips of batch b
come from ``rng(seed, "gan-flip", b)``, and all latents and GP mixing weights of step s from
``torch_generator(seed, "gan-step", s)``. The only other state is in the weights, buffers (batch-norm
statistics, spectral-norm power-iteration vectors) and optimiser moments, which the checkpoint stores
exactly, so on CPU a resumed run ends with weights bitwise identical to an uninterrupted one.
"""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from torch import nn
from torch.nn import functional as F

from fairlatent.data.dataset import Dataset, load_dataset
from fairlatent.errors import FairlatentError
from fairlatent.models.gan import SIZES, build_discriminator, build_generator
from fairlatent.models.infogan import codes_to_input, draw_codes, info_terms, mi_lower_bound, q_width
from fairlatent.models.weights import module_tensors, save_tensors
from fairlatent.train.batchnorm import standing_batchnorm_statistics
from fairlatent.train.checkpoint import state_tensors
from fairlatent.train.distributed import DistContext, barrier, convert_batchnorm, init_distributed, wrap
from fairlatent.train.engine import Batch, Callback, DataOrder, Engine, LoopSettings, cache_dump, identity_keys
from fairlatent.utils.device import DeviceName, default_device
from fairlatent.utils.settings import StrictSettings
from fairlatent.utils.images import image_grid, save_png, to_tensor, to_uint8
from fairlatent.utils.io import check_replaceable, claim_output_directory, read_json, write_json
from fairlatent.utils.seed import hash_str, rng, torch_generator

RUN_FORMAT = "fairlatent-gan"
RUN_VERSION = 1
# Values that settings added in a later version had implicitly before (runs written earlier lack them).
LEGACY_VALUES = {
    "width_d": None, "g_final_width": 0, "d_first_width": 0, "d_pack": 1, "r1_gamma": 0.0, "r1_every": 1, "d_spectral_norm": False, "d_minibatch_std": 0,
    "augment": "none", "dp_batchnorm": "global",
    "info_categorical": [], "info_continuous": 0, "info_lambda_cat": 1.0, "info_lambda_cont": 1.0,
    "info_learn_std": False, "precision": "fp32", "fused_optimizer": False,
}  # fmt: skip
# Of those, the ones left out of cache keys at their legacy value (cached GANs predate them).
CACHE_LEGACY = {k: LEGACY_VALUES[k] for k in ("g_final_width", "d_first_width", "d_pack", "r1_gamma", "r1_every",
                                             "dp_batchnorm", "info_categorical", "info_continuous",
                                             "info_lambda_cat", "info_lambda_cont", "info_learn_std",
                                             "precision", "fused_optimizer")}


# Fields that say how a run is carried out, not what it computes: they may change when a run resumes.
RUN_ONLY = {"resume_key": False}


class GANConfig(StrictSettings):
    """Everything that determines a GAN run.

    Defaults are sized for ToyFaces 32 px on two CPU cores (a DCGAN of width 32 runs ≈ 26 steps/s of
    batch 64 there, channels_last); ``benchmarks/gan_quality.py`` measures the attribute-rate bar. The
    minibatch-std feature of D (group 4, ~3 % of a step) is on by default: without it the generator
    over-produced blond hair (44 % vs 30 %); with it blond is within ±3 points, but the bar is not met —
    the 2-pixel earrings stay under-produced (−13 to −19 points) and hats/bangs drift by 5–10 points
    from run to run (even a floating-point-level change of the code moves single gaps by ~4 points).

    Later measurements (one thread; see ``benchmarks/gan_quality.py --second-judge``), none of which met
    the ±5-point bar on every attribute, so the defaults are unchanged: TTUR (lr_g 2e-4, lr_d 6e-4),
    Adam β₁ = 0, ``g_final_width=16`` (5000 steps, same time) and ``d_first_width=8`` (5000 steps, ~+4 %
    time) all left a worst gap of 11–18 points on seed 0. ``d_first_width=8`` brought the earring rate
    within the bar on seed 0 (−2 points) but to +24 on seed 1 (worst gap 26): the rate is decided by
    faint smudges near the judge's low calibrated threshold (0.10). With every setting tried, ≤ 5 % of
    generated faces get an earring score > 0.9 against 29 % of real ones — the GAN does not draw
    convincing earrings at this budget. Two independently trained judges (both ~100 % on real images)
    also disagree on 15–23 % of generated faces for Smiling / Mouth_Slightly_Open (rates differ by up to
    17 points), so for the mouth attributes a ±5 bar is decided by the judge, not the GAN.

    A third round (two threads, ``benchmarks/gan_quality.py --every``) found no setting either: the
    default, trained on to 9,000 steps (1.5× the budget), holds Wearing_Earrings at −17 to −21 and
    Smiling at +8 to +11 from step 4,000 on (more time does not close the gaps); PacGAN packing
    (``d_pack`` 2 and 4), R1 with the ns loss (γ 0.1 and 1, lazy every 4 steps), batch 32 for 10,000 steps, lr_d 1e-4, a
    resize-convolution output layer and the SN-ResNet pair (width 16) all kept earrings 9–30 points low,
    with ≤ 1 % of generated faces scored > 0.9 for earrings. Drawing the earrings and mouth of the data
    set 50 % larger (a test of "the details are too small") did not help either (earrings −9, mouth
    attributes +16).
    """

    model_config = ConfigDict(extra="forbid")

    arch: Literal["dcgan", "resnet", "infogan_mnist"] = Field(
        "dcgan", description="dcgan | resnet (SN-ResNet D) | infogan_mnist (InfoGAN's reference MNIST networks: "
                             "FC 1024 layers, batch norm in G, D and Q; width 64 = the reference)")
    loss: Literal["hinge", "ns", "wgan-gp"] = "hinge"
    size: int | None = Field(None, description="image size; None = the data set's")
    latent_dim: int = Field(128, ge=1)
    width: int = Field(32, ge=1, description="channels of the last hidden generator layer (infogan_mnist: every "
                                             "layer scales with it; 64 = the reference's sizes)")
    width_d: int | None = Field(None, ge=1, description="channels of the first discriminator layer; None = width")
    g_final_width: int = Field(
        0, ge=0, description="DCGAN generator: hidden channels at full resolution before a 3×3 conv to RGB; 0 = none"
    )
    d_first_width: int = Field(
        0, ge=0, description="DCGAN discriminator: channels of a 3×3 conv at full resolution before the first stride-2 conv; 0 = none"
    )
    d_pack: int = Field(1, ge=1, description="PacGAN packing: D judges runs of this many images as one input; 1 = off")
    d_spectral_norm: bool = Field(False, description="spectral normalisation in the DCGAN discriminator")
    d_minibatch_std: int = Field(
        4, ge=0, description="group size of the DCGAN discriminator's minibatch-std feature; 0 = off (SN-ResNet and infogan_mnist D: none)"
    )
    augment: Literal["none", "translation"] = Field(
        "none", description="differentiable augmentation of every image D sees (real and fake)"
    )
    steps: int = Field(6000, ge=1, json_schema_extra=RUN_ONLY)
    batch_size: int = Field(64, ge=1)
    lr_g: float = Field(4e-4, gt=0)
    lr_d: float = Field(4e-4, gt=0)
    betas: tuple[Annotated[float, Field(ge=0, lt=1)], Annotated[float, Field(ge=0, lt=1)]] = (0.5, 0.999)
    r1_gamma: float = Field(0.0, ge=0, description="γ of the R1 penalty (γ/2)·E‖∇D(real)‖² added to D's loss; 0 = off")
    r1_every: int = Field(1, ge=1, description="apply R1 every this many steps, scaled by it (lazy regularisation)")
    n_critic: int = Field(1, ge=1, description="discriminator updates per generator update")
    gp_weight: float = Field(10.0, ge=0, description="λ of the WGAN-GP gradient penalty")
    ema: bool = True
    ema_decay: float = Field(0.999, ge=0, lt=1)
    ema_start: int = Field(0, ge=0, description="step before which the EMA simply copies G")
    checkpoint_every: int = Field(500, ge=1, json_schema_extra=RUN_ONLY)
    sample_every: int = Field(500, ge=1, json_schema_extra=RUN_ONLY)
    log_every: int = Field(50, ge=1, json_schema_extra=RUN_ONLY)
    seed: int = Field(0, ge=0, description="NumPy seed sequences refuse negative seeds")
    device: DeviceName = Field(None, json_schema_extra=RUN_ONLY)
    flip: bool = True
    dp_batchnorm: Literal["global", "local"] = Field(
        "global", description="under data parallelism: batch-norm statistics over the global batch (exact, one "
                              "all-reduce per layer and pass) or per rank (DDP's usual choice, no extra communication)")
    channels_last: bool = Field(True, description="NHWC memory format (faster convolutions on CPU)",
                                json_schema_extra=RUN_ONLY)
    # Speed at the cost of float32's rounding (both off by default, so earlier runs stay reproducible)
    precision: Literal["fp32", "bf16"] = Field(
        "fp32", description="bf16: every training step under bfloat16 autocast, on CPU too (weights, optimiser "
                            "state and losses stay float32); pays on CPUs with bf16 units (AMX, AVX-512 BF16)")
    fused_optimizer: bool = Field(False, description="Adam's fused kernel (one pass over all parameters: faster; "
                                                     "rounds differently from the default per-tensor loop)")
    # InfoGAN (off by default; at their defaults these settings are in no cache key)
    info_categorical: list[Annotated[int, Field(ge=2)]] = Field(
        default_factory=list, description="InfoGAN: number of categories of each categorical code (MNIST: [10])")
    info_continuous: int = Field(0, ge=0, description="InfoGAN: number of U(−1, 1) continuous codes (MNIST: 2)")
    info_lambda_cat: float = Field(1.0, ge=0, description="InfoGAN: λ of the categorical codes' cross-entropy")
    info_lambda_cont: float = Field(
        1.0, ge=0, description="InfoGAN: λ of the continuous codes' Gaussian NLL (reference: 1 with σ fixed at 1; "
                               "the paper suggests smaller, e.g. 0.1, when σ is learned)")
    info_learn_std: bool = Field(False, description="InfoGAN: Q predicts the continuous codes' log-std (reference: fixed σ = 1)")

    @property
    def infogan(self) -> bool:
        """Whether InfoGAN's codes and Q head are on."""
        return bool(self.info_categorical) or self.info_continuous > 0

    def cache_key(self) -> dict:
        """The settings that identify a run for stage caching (:mod:`fairlatent.pipeline.stages`).

        Settings added after caches existed (``g_final_width``, ``d_first_width``, …) are left out while they
        hold the value that reproduces the earlier behaviour, so adding a setting does not retrain every
        cached GAN.
        """
        return cache_dump(self, CACHE_LEGACY)

    @field_validator("size")
    @classmethod
    def _size_ok(cls, v: int | None) -> int | None:
        if v is not None and v not in SIZES:
            raise ValueError(f"size must be one of {SIZES}, got {v}")
        return v

    @model_validator(mode="after")
    def _minibatch_std_ok(self) -> "GANConfig":
        k = self.d_minibatch_std
        if k > 1 and self.arch == "dcgan" and self.batch_size % k:
            raise ValueError(
                f"d_minibatch_std={k} needs a batch_size divisible by it (got batch_size={self.batch_size}); "
                f"choose another batch size, or d_minibatch_std=0 to turn the feature off"
            )
        if self.g_final_width and self.arch != "dcgan":
            raise ValueError(f"g_final_width applies to the DCGAN generator only; set it to 0 for arch={self.arch!r}")
        if self.d_first_width and self.arch != "dcgan":
            raise ValueError(f"d_first_width applies to the DCGAN discriminator only; set it to 0 for arch={self.arch!r}")
        if self.d_pack > 1:
            if self.arch != "dcgan":
                raise ValueError(f"d_pack applies to the DCGAN discriminator only; set it to 1 for arch={self.arch!r}")
            per_half = self.batch_size // self.d_pack
            if self.batch_size % self.d_pack or (k > 1 and per_half % k):
                raise ValueError(
                    f"d_pack={self.d_pack} needs a batch_size divisible by it"
                    + (f" into a number of packs divisible by d_minibatch_std={k}" if k > 1 else "")
                    + f" (got batch_size={self.batch_size})"
                )
        if self.arch == "infogan_mnist":  # its D has batch norm (see InfoGANMNISTDiscriminator)
            if self.loss == "wgan-gp":
                raise ValueError("arch='infogan_mnist' has batch norm in D, which WGAN-GP's per-sample gradient "
                                 "penalty excludes; use loss='ns' (the reference's) or 'hinge'")
            if self.d_spectral_norm:
                raise ValueError("d_spectral_norm applies to the DCGAN discriminator only; arch='infogan_mnist' "
                                 "uses batch norm (set d_spectral_norm=false)")
            if self.batch_size < 2:
                raise ValueError("arch='infogan_mnist' has batch norm: batch_size must be at least 2")
        if self.precision == "bf16" and (self.loss == "wgan-gp" or self.r1_gamma > 0):
            raise ValueError("precision='bf16' is for the hinge and ns losses without R1: the gradient penalties' "
                             "double backward has not been validated in bf16 (set precision='fp32')")
        if self.infogan and self.d_pack > 1:
            raise ValueError("InfoGAN's Q head reads one image per discriminator input; set d_pack=1")
        if self.r1_gamma > 0 and self.loss == "wgan-gp":
            raise ValueError("r1_gamma is for the hinge and ns losses; WGAN-GP has its own penalty (gp_weight)")
        return self


# Settings a resumed run must share with its checkpoint: every field not marked RUN_ONLY, and the number of
# training images (derived from the spec, so a new field takes part without being listed anywhere).
RESUME_KEYS = identity_keys(GANConfig) + ("n_train",)


# --- losses ----------------------------------------------------------------------------------------


def discriminator_loss(kind: str, d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    """Mean discriminator loss over the batch (see module docstring for the formulas), in float32 whatever the
    logits' dtype (bf16 under ``precision = "bf16"``; ``.float()`` of a float32 tensor is the tensor itself)."""
    d_real, d_fake = d_real.float(), d_fake.float()
    if kind == "ns":
        return F.softplus(-d_real).mean() + F.softplus(d_fake).mean()
    if kind == "hinge":
        return F.relu(1.0 - d_real).mean() + F.relu(1.0 + d_fake).mean()
    if kind == "wgan-gp":
        return d_fake.mean() - d_real.mean()
    raise ValueError(f"unknown GAN loss {kind!r}")


def generator_loss(kind: str, d_fake: torch.Tensor) -> torch.Tensor:
    """Mean generator loss: softplus(−d_fake) for ``ns``, −d_fake for ``hinge`` and ``wgan-gp`` (in float32)."""
    d_fake = d_fake.float()
    if kind == "ns":
        return F.softplus(-d_fake).mean()
    return -d_fake.mean()


def gradient_penalty(D: nn.Module, real: torch.Tensor, fake: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """E[(‖∇ₓ D(x̂)‖₂ − 1)²] at x̂ = α·real + (1 − α)·fake (α per sample, shape N×1×1×1)."""
    x_hat = (alpha * real + (1.0 - alpha) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(D(x_hat).sum(), x_hat, create_graph=True)
    return (grad.flatten(1).norm(2, dim=1) - 1.0).pow(2).mean()


def r1_penalty(D: nn.Module, real: torch.Tensor) -> torch.Tensor:
    """E[‖∇ₓ D(x)‖₂²] over real images x (Mescheder et al. 2018): penalises D's slope on the data."""
    x = real.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(D(x).sum(), x, create_graph=True)
    return grad.square().flatten(1).sum(1).mean()


def translate(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Shift each image of ``x`` (N×C×H×W) by ``shift[n] = (dy, dx)`` whole pixels, filling with zeros.

    The "translation" policy of DiffAugment (Zhao et al. 2020): applied to real *and* generated images,
    and differentiable w.r.t. ``x``, so the discriminator cannot memorise exact pixel positions while
    the generator still learns the un-augmented distribution. out[n, :, i, j] = x[n, :, i − dy, j − dx].
    """
    n, _, h, w = x.shape
    r = int(shift.abs().max()) if shift.numel() else 0
    padded = F.pad(x, (r, r, r, r))
    iy = torch.arange(h, device=x.device)[None, :] + r - shift[:, :1]  # N×H
    ix = torch.arange(w, device=x.device)[None, :] + r - shift[:, 1:]  # N×W
    out = padded[torch.arange(n, device=x.device)[:, None, None], :, iy[:, :, None], ix[:, None, :]]  # N×H×W×C
    return out.permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last if x.is_contiguous(
        memory_format=torch.channels_last) else torch.contiguous_format)  # fmt: skip


# --- data ------------------------------------------------------------------------------------------


class BatchSource:
    """The training images of a global batch as a float tensor in [-1, 1], a pure function of (seed, batch).

    The order is the engine's :class:`~fairlatent.train.engine.DataOrder` with stream ``"gan-order"`` and
    ``drop_last``: epoch ``e`` visits the images in ``rng(seed, "gan-order", e).permutation(n)`` in
    ``n // batch_size`` full batches (the remainder is skipped that epoch). Half the images of batch ``b``
    (chosen by ``rng(seed, "gan-flip", b)`` over the global batch) are mirrored left-right when ``flip``
    is on. Under data parallelism each rank gathers its slice of the global batch only.
    """

    def __init__(self, images: np.ndarray, batch_size: int, *, seed: int, flip: bool, device: torch.device,
                 channels_last: bool = True, rows: np.ndarray | None = None, ctx: DistContext | None = None):  # fmt: skip
        self.rows = np.arange(len(images)) if rows is None else np.asarray(rows)
        self.order = DataOrder(len(self.rows), batch_size, seed=seed, stream="gan-order", drop_last=True, ctx=ctx)
        self.images, self.batch_size, self.seed, self.flip = images, batch_size, seed, flip
        self.device, self.channels_last = device, channels_last
        self.per_epoch = self.order.per_epoch

    def gather(self, batch: Batch) -> torch.Tensor:
        """This rank's images of ``batch`` (N×3×H×W in [-1, 1]), flipped where the global batch's draw says."""
        x = to_tensor(self.images[self.rows[batch.rows]], self.device)
        if self.flip:
            mirror = rng(self.seed, "gan-flip", batch.index).random(batch.global_size)[batch.part] < 0.5
            x = torch.where(torch.from_numpy(mirror).to(self.device)[:, None, None, None], x.flip(3), x)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def __call__(self, b: int) -> torch.Tensor:
        return self.gather(self.order.batch(b))


# --- the models and one training step --------------------------------------------------------------


class GANTrainer:
    """Generator, discriminator, EMA generator and their optimisers, with :meth:`train_step`.

    Under data parallelism (``ctx.world > 1``) G and D are each wrapped for gradient synchronisation
    (:func:`~fairlatent.train.distributed.wrap`), their batch norms (G's; D's and Q's with
    ``infogan_mnist``) compute global-batch statistics (unless ``dp_batchnorm="local"``), and
    every random draw of a step is made for the global batch and sliced (``shard``), so a rank's latents,
    penalty weights and shifts are those its images would get in a one-process run. ``G``, ``D`` and
    ``G_ema`` are always the raw modules (what checkpoints and :meth:`tensors` hold).
    """

    def __init__(self, config: GANConfig, size: int, device: torch.device | None = None,
                 ctx: DistContext | None = None):  # fmt: skip
        self.config, self.size = config, size
        self.ctx = ctx or DistContext(device=device or default_device(config.device))
        self.device = device or self.ctx.device
        c = config
        # Initial weights (and spectral-norm start vectors, drawn from the global RNG at construction)
        # come from the seed alone, without disturbing the caller's global RNG.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(hash_str(f"gan-init-{c.seed}"))
            self.G = build_generator(c.arch, size=size, latent_dim=c.latent_dim + c.info_continuous
                                     + sum(c.info_categorical), width=c.width, final_width=c.g_final_width)  # fmt: skip
            self.D = build_discriminator(c.arch, size=size, width=c.width_d or c.width,
                                         spectral_norm=c.d_spectral_norm, minibatch_std=c.d_minibatch_std,
                                         first_width=c.d_first_width, pack=c.d_pack,
                                         q_dim=q_width(c.info_categorical, c.info_continuous))  # fmt: skip
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False) if c.ema else None
        if self.ctx.distributed and c.dp_batchnorm == "global":
            convert_batchnorm(self.G)
            convert_batchnorm(self.D)
        fmt = torch.channels_last if c.channels_last else torch.contiguous_format
        for m in (self.G, self.D, self.G_ema):
            if m is not None:
                m.to(self.device, memory_format=fmt)
        self.G_train, self.D_train = wrap(self.G, self.ctx), wrap(self.D, self.ctx)
        # a D with batch norm normalises the real and the generated half of its D-step batch apart, as if
        # called on each alone (the reference InfoGAN's two D calls); under data parallelism with global
        # batch norm each half's statistics are over that half of the global batch
        self._d_groups = {"groups": 2} if getattr(self.D, "batch_groups", False) else {}
        fused = {"fused": True} if c.fused_optimizer else {}
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=c.lr_g, betas=tuple(c.betas), **fused)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=c.lr_d, betas=tuple(c.betas), **fused)
        self.last_stats: dict[str, torch.Tensor] = {}  # InfoGAN: the last step's mi_cat and nll_cont

    def _z(self, g: torch.Generator, n: int, part: slice | None = None) -> torch.Tensor:
        """Latents of ``n`` global-batch images, this rank's ``part`` of them (with InfoGAN: with the codes)."""
        return self._zc(g, n, part)[0]

    def _noise(self, g: torch.Generator, n: int) -> torch.Tensor:
        """The noise of ``n`` latents: N(0, I), as every fairlatent generator's (the truncation trick and the
        latent edits assume it). One method so that an ablation can swap the distribution alone
        (``benchmarks/infogan_mnist_uniform_noise.py``: the InfoGAN reference's U(−1, 1))."""
        return torch.randn(n, self.config.latent_dim, generator=g)

    def _zc(self, g: torch.Generator, n: int, part: slice | None = None
            ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor] | None]:  # fmt: skip
        """``(latents, codes)`` of ``n`` global-batch images, this rank's ``part``; ``codes`` is None without
        InfoGAN, else (categories n×len(info_categorical), continuous n×info_continuous). The noise is drawn
        first, exactly as without codes, then the codes (:func:`~fairlatent.models.infogan.draw_codes`)."""
        c = self.config
        z = self._noise(g, n)
        codes = None
        if c.infogan:
            cat, cont = draw_codes(g, n, c.info_categorical, c.info_continuous)
            z = torch.cat([z, codes_to_input(cat, cont, c.info_categorical)], dim=1)
            if part is not None:
                cat, cont = cat[part], cont[part]
            codes = (cat.to(self.device), cont.to(self.device))
        return (z if part is None else z[part]).to(self.device), codes

    def _info_loss(self, q: torch.Tensor, codes: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(λ_cat·CE + λ_cont·NLL, CE, NLL) of the drawn ``codes`` under Q's outputs ``q``."""
        c = self.config
        ce, nll = info_terms(q, codes[0], codes[1], c.info_categorical, c.info_continuous, c.info_learn_std)
        return c.info_lambda_cat * ce + c.info_lambda_cont * nll, ce, nll

    def _augment(self, g: torch.Generator, x: torch.Tensor, n: int | None = None, part: slice | None = None,
                 halves: int = 1) -> torch.Tensor:  # fmt: skip
        """``x`` as D should see it: unchanged, or shifted by up to size/8 pixels per image ("translation").

        ``x`` holds ``halves`` runs (real, fake) of this rank's ``part`` of ``n`` global images each; the
        shifts are drawn for the global layout and sliced, as for the latents.
        """
        if self.config.augment == "none":
            return x
        r = self.size // 8
        if n is None:
            return translate(x, torch.randint(-r, r + 1, (x.shape[0], 2), generator=g).to(self.device))
        s = torch.randint(-r, r + 1, (halves * n, 2), generator=g)
        s = torch.cat([s[h * n : (h + 1) * n][part] for h in range(halves)])
        return translate(x, s.to(self.device))

    def train_step(self, step: int, reals: list[torch.Tensor], shard: tuple[slice, int] | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
        """``len(reals)`` (= n_critic) D updates, one G update, one EMA update; returns (L_D, L_G) detached.

        ``shard = (part, n)``: the ``reals`` are this rank's ``part`` of a global batch of ``n`` (None: the
        whole batch). Every draw of the step comes from ``torch_generator(seed, "gan-step", step)`` for the
        global batch, in the same order whatever the number of ranks.
        """
        c, G, D = self.config, self.G, self.D
        g = torch_generator(c.seed, "gan-step", step)
        D.requires_grad_(True)
        for real in reals:
            part, n = shard if shard is not None else (slice(None), real.shape[0])
            with torch.no_grad():
                z, codes = self._zc(g, n, part)
                fake = G(z)
            # one pass over real and fake: a single spectral-norm power iteration
            x = self._augment(g, torch.cat([real, fake]), n, part, halves=2)
            k = real.shape[0] // c.d_pack  # logits of the real images (or of their packs) come first
            if codes is None:
                logits = self.D_train(x, **self._d_groups)
                loss_d = discriminator_loss(c.loss, logits[:k], logits[k:])
            else:  # InfoGAN: Q (on D's trunk) learns to read the codes back from the fakes
                logits, q = self.D_train(x, with_q=True, **self._d_groups)
                loss_d = discriminator_loss(c.loss, logits[:k], logits[k:]) + self._info_loss(q[k:], codes)[0]
            if c.loss == "wgan-gp":
                alpha = torch.rand(n, 1, 1, 1, generator=g)[part].to(self.device)
                loss_d = loss_d + c.gp_weight * gradient_penalty(D, real, fake, alpha)
            if c.r1_gamma > 0 and step % c.r1_every == 0:  # lazy R1: every r1_every steps, weighted by it
                loss_d = loss_d + 0.5 * c.r1_gamma * c.r1_every * r1_penalty(D, self._augment(g, real, n, part))
            self.opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            self.opt_d.step()
        D.requires_grad_(False)  # the G step needs gradients through D (the raw one: no reduction), not for D
        part, n = shard if shard is not None else (slice(None), reals[-1].shape[0])
        z, codes = self._zc(g, n, part)
        x = self._augment(g, self.G_train(z), n, part)
        if codes is None:
            loss_g = generator_loss(c.loss, D(x))
        else:  # InfoGAN: G is also rewarded for images whose codes Q can read (the MI lower bound)
            logits, q = D(x, with_q=True)
            info, ce, nll = self._info_loss(q, codes)
            loss_g = generator_loss(c.loss, logits) + info
            self.last_stats = {"mi_cat": ce.new_tensor(mi_lower_bound(0.0, c.info_categorical)) - ce.detach()}
            if c.info_continuous:
                self.last_stats["nll_cont"] = nll.detach()
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_g.step()
        if self.G_ema is not None:
            self.update_ema(step)
        return loss_d.detach(), loss_g.detach()

    @torch.no_grad()
    def update_ema(self, step: int) -> None:
        """θ_ema ← β·θ_ema + (1 − β)·θ_G with β = min(decay, (1 + t) / (10 + t)), t = step − ema_start.

        The warm-up of β (as in TensorFlow's ``ExponentialMovingAverage`` with ``num_updates``) keeps the
        average from being dominated by the untrained early weights, which makes short runs blurry.
        Before ``ema_start`` the EMA is a copy of G. Buffers (batch-norm statistics) are copied.
        """
        t = step - self.config.ema_start
        decay = min(self.config.ema_decay, (1.0 + t) / (10.0 + t)) if t >= 0 else 0.0
        # one fused (foreach) kernel over all tensors instead of a Python loop of small ones
        torch._foreach_lerp_(list(self.G_ema.parameters()), list(self.G.parameters()), 1.0 - decay)
        torch._foreach_copy_(list(self.G_ema.buffers()), list(self.G.buffers()))

    @torch.no_grad()
    def recalibrate_ema_batchnorm(self, n_batches: int = 16) -> None:
        """Recompute the EMA generator's batch-norm statistics from its own activations ("standing stats").

        The EMA weights are an average over many steps, so the running statistics copied from G do not
        match them; in eval mode that mismatch washes out colours and contrast. Here the statistics are
        the exact mean and variance over ``n_batches`` batches of fixed latents (cumulative averaging,
        ``momentum=None``), a deterministic function of the weights and the seed. G's training is
        unaffected: the next EMA update copies G's buffers again.
        """
        G = self.G_ema
        if G is None or not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in G.modules()):
            return
        g = torch_generator(self.config.seed, "gan-bn-recalibration")
        with standing_batchnorm_statistics(G):
            for _ in range(n_batches):
                G(self._z(g, self.config.batch_size))

    @property
    def downstream_generator(self) -> nn.Module:
        """The generator used after training: the EMA one when enabled."""
        return self.G_ema if self.G_ema is not None else self.G

    @torch.no_grad()
    def render(self, z: torch.Tensor) -> np.ndarray:
        """Images of the downstream generator in eval mode (batch-independent), as uint8 N×H×W×3."""
        G = self.downstream_generator
        was_training = G.training
        G.eval()
        try:
            return to_uint8(G(z.to(self.device)))
        finally:
            G.train(was_training)

    # --- what the engine checkpoints (raw modules: no "module." prefix) ---
    def modules(self) -> dict[str, nn.Module]:
        out = {"G": self.G, "D": self.D}
        if self.G_ema is not None:
            out["G_ema"] = self.G_ema
        return out

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"opt_g": self.opt_g, "opt_d": self.opt_d}

    def tensors(self) -> dict[str, torch.Tensor]:
        """Every module's and optimiser's tensors, as the checkpoint names them."""
        return state_tensors(self.modules(), self.optimizers())


class GANObjective:
    """The GAN as the training engine sees it: gather each batch, take a :meth:`GANTrainer.train_step`.

    Losses are returned as this rank's share of the global mean (each rank's mean / world size).
    """

    def __init__(self, trainer: GANTrainer, source: BatchSource):
        self.trainer, self.source = trainer, source
        # float32 by default, on CUDA too: the gradient penalties' double backward has not been validated in
        # bf16 (GPU runs cannot be tested in CI here). ``precision = "bf16"`` turns autocast on, CPU included.
        self.autocast = self.autocast_cpu = trainer.config.precision == "bf16"

    def modules(self) -> dict[str, nn.Module]:
        return self.trainer.modules()

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return self.trainer.optimizers()

    def train_step(self, step: int, batches: list[Batch]) -> dict[str, torch.Tensor]:
        reals = [self.source.gather(b) for b in batches]
        shard = (batches[0].part, batches[0].global_size) if self.trainer.ctx.distributed else None
        loss_d, loss_g = self.trainer.train_step(step, reals, shard=shard)
        w = self.trainer.ctx.world
        out = {"loss_d": loss_d / w, "loss_g": loss_g / w}
        if self.trainer.config.infogan:  # the MI lower bound and the continuous NLL of the G step
            out.update({k: v / w for k, v in self.trainer.last_stats.items()})
        return out


# --- the job ---------------------------------------------------------------------------------------


def _training_images(ds: Dataset, config: GANConfig) -> tuple[np.ndarray, np.ndarray, int]:
    """(image array, row indices of the train split in it, size), validating the image size."""
    idx = ds.split_indices("train")
    h, w = ds.images.shape[1:3]
    if h != w:
        raise FairlatentError(f"{ds.path}/images.npy: images are {h}×{w}; the GAN needs square images")
    if config.size is not None and config.size != h:
        raise FairlatentError(
            f"{ds.path}/images.npy: images are {h}×{w} but the GAN config has size={config.size}; "
            f"resize the data set or leave size unset"
        )
    if h not in SIZES:
        raise FairlatentError(f"{ds.path}/images.npy: image size {h} is not supported (sizes: {SIZES})")
    # Small sets (the usual case) are read into memory once; larger ones stay memory-mapped and each
    # batch reads only its rows.
    if ds.images[:1].nbytes * len(idx) < 2**30:
        return np.asarray(ds.images[idx]), np.arange(len(idx)), int(h)
    return ds.images, idx, int(h)


def _check_world(config: GANConfig, world: int) -> None:
    """Each rank's share of a batch must keep packs and minibatch-std groups whole (real and fake apart)."""
    if world <= 1:
        return
    per, k, m = config.batch_size // world, config.d_minibatch_std, config.d_pack
    if config.batch_size % world or per % m or (k > 1 and (per // m) % k):
        raise FairlatentError(
            f"batch_size={config.batch_size} on {world} processes: each process's share must be a whole number "
            f"divisible by d_pack={m}" + (f" into a number of packs divisible by d_minibatch_std={k}" if k > 1 else "")
            + "; choose another batch size or number of processes"
        )


def _run_record(config: GANConfig, size: int, n_train: int, data: Path, step: int, done: bool, world: int) -> dict:
    return {
        "format": RUN_FORMAT,
        "version": RUN_VERSION,
        "done": done,
        "step": step,
        "data": str(data),
        "n_train": n_train,
        "world_size": world,
        "generator": "ema" if config.ema else "plain",
        "config": {**config.model_dump(mode="json"), "size": size},
    }


def fixed_sample_latents(config: GANConfig, n: int = 64) -> torch.Tensor:
    """The latents of the periodic sample grids (the same for every grid of a run).

    With InfoGAN and a categorical code: one row of 8 per category of the first categorical code, the
    first continuous code swept over [−1, 1] along the row (the same noise everywhere), so the grids show
    what the codes control; with continuous codes only, 8 rows of noise with that sweep.
    """
    g = torch_generator(config.seed, "gan-grid")
    if not config.infogan:
        return torch.randn(n, config.latent_dim, generator=g)
    from fairlatent.models.infogan import code_spec, latents_with_codes, sweep_latents

    spec = code_spec(config.latent_dim, config.info_categorical, config.info_continuous)
    values = np.linspace(-1.0, 1.0, 8)
    sweep = "cont0" if config.info_continuous else None
    if config.info_categorical:
        noise = torch.randn(1, config.latent_dim, generator=g).numpy()
        return torch.from_numpy(sweep_latents(spec, noise, sweep, values))
    noise = torch.randn(8, config.latent_dim, generator=g).numpy().repeat(8, axis=0)
    return torch.from_numpy(latents_with_codes(spec, noise, continuous={"cont0": np.tile(values, 8)}))


def _finished(out_dir: Path, config: GANConfig, run_cfg: dict) -> bool:
    """Whether ``out_dir`` holds this very run, finished (an error if it holds another finished run)."""
    if not (out_dir / "config.json").is_file():
        return False
    rec = read_json(out_dir / "config.json")
    if not isinstance(rec, dict) or rec.get("format") != RUN_FORMAT:
        raise FairlatentError(f"{out_dir / 'config.json'}: not a fairlatent GAN run record; choose another --out")
    if not (rec.get("done") and rec.get("step") == config.steps and (out_dir / "generator.safetensors").is_file()):
        return False
    saved = {**LEGACY_VALUES, **rec["config"]}
    keys = [k for k in RESUME_KEYS if k != "n_train"]
    if {k: saved.get(k) for k in keys} != {k: run_cfg[k] for k in keys}:
        raise FairlatentError(
            f"{out_dir}: holds a finished run with another configuration; use another --out or --no-resume"
        )
    return True


def train_gan(data, out_dir, config: GANConfig | None = None, *, resume: bool = True, progress: bool = True,
              stop_at_step: int | None = None) -> Path:  # fmt: skip
    """Train a GAN on ``data``'s train split into ``out_dir``; return ``out_dir``.

    ``out_dir`` layout: ``config.json`` (run record, ``"done": true`` once finished),
    ``generator.safetensors`` (EMA weights when ``ema``, what :func:`~fairlatent.models.generator.
    load_generator` loads), ``checkpoint/`` (latest full state), ``samples/step_XXXXXX.png`` (8×8 grids
    of fixed latents) and ``log.csv`` (step, epoch, losses, training images/s, elapsed seconds).

    The loop is the shared :class:`~fairlatent.train.engine.Engine`; launched by torchrun (or
    ``fairlatent train-gan --nproc N``) it trains data-parallel, each rank on its slice of every batch,
    rank 0 writing. With ``resume`` (default) a run continues from ``checkpoint/`` and ends bitwise
    identical (CPU, same number of processes) to an uninterrupted run; a finished run with the same
    ``steps`` is returned as is. ``resume=False`` discards the previous checkpoint, samples and log.
    ``stop_at_step`` stops early (leaving a checkpoint), as an interruption would.
    """
    config = config or GANConfig()
    data, out_dir = Path(data), Path(out_dir)
    ctx = init_distributed(config.device)
    _check_world(config, ctx.world)
    ds = load_dataset(data)
    images, rows, size = _training_images(ds, config)
    n_train = len(rows)
    run_cfg = {**config.model_dump(mode="json"), "size": size, "n_train": n_train}
    samples_dir = out_dir / "samples"
    # a folder of the user's is refused untouched, by every rank alike; rank 0 marks it
    claim_output_directory(out_dir, record_format=RUN_FORMAT, write=ctx.is_main)
    if resume and _finished(out_dir, config, run_cfg):
        return out_dir
    if ctx.is_main:
        if not resume:
            check_replaceable(out_dir / "checkpoint", True)  # delete only what fairlatent wrote
            for p in (out_dir / "checkpoint", samples_dir):
                shutil.rmtree(p, ignore_errors=True)
            for p in (out_dir / "log.csv", out_dir / "generator.safetensors"):
                p.unlink(missing_ok=True)
    barrier(ctx)  # nobody reads a checkpoint rank 0 is about to discard

    trainer = GANTrainer(config, size, ctx=ctx)
    source = BatchSource(images, config.batch_size, seed=config.seed, flip=config.flip, device=trainer.device,
                         channels_last=config.channels_last, rows=rows, ctx=ctx)  # fmt: skip
    grid_z = fixed_sample_latents(config)

    def save_grid(step: int) -> None:
        if ctx.is_main:
            trainer.recalibrate_ema_batchnorm()
            grid = image_grid(trainer.render(grid_z), nrow=8)
            save_png(samples_dir / f"step_{step:06d}.png", grid, scale=max(1, 128 // size))

    engine = Engine(
        GANObjective(trainer, source), source.order, out_dir,
        LoopSettings(steps=config.steps, batches_per_step=config.n_critic, checkpoint_every=config.checkpoint_every,
                     log_every=config.log_every, name="GAN"),
        ctx=ctx, run_config=run_cfg, resume_keys=RESUME_KEYS, legacy_values=LEGACY_VALUES,
        callbacks=[Callback(save_grid, every=config.sample_every, at_end=True)], progress=progress,
    )  # fmt: skip
    start = engine.restore() if resume else 0
    if ctx.is_main:
        write_json(out_dir / "config.json", _run_record(config, size, n_train, data, start, False, ctx.world))
    final = engine.run(stop_at_step=stop_at_step)
    if final < config.steps or not ctx.is_main:
        return _done(out_dir, ctx)
    trainer.recalibrate_ema_batchnorm()
    save_tensors(out_dir / "generator.safetensors", module_tensors(trainer.downstream_generator, "G"))
    write_json(out_dir / "config.json", _run_record(config, size, n_train, data, final, True, ctx.world))
    return _done(out_dir, ctx)


def _done(out_dir: Path, ctx: DistContext) -> Path:
    barrier(ctx)  # every rank returns once rank 0 has written the finished run
    return out_dir
