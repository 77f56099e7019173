"""CTGAN (Xu, Skoularidou, Cuesta-Infante & Veeramachaneni, NeurIPS 2019) on the project's training engine.

Following the paper and the reference implementation's defaults:

- data: mode-specific normalisation + one-hot (:mod:`fairlatent.tabular.transformer`);
- conditional vector with training-by-sampling (:mod:`fairlatent.tabular.sampler`);
- generator: ``z`` (128) ⊕ cond → residual blocks ``h ⊕ ReLU(BN(Linear(h)))`` of widths (256, 256) → Linear;
  outputs ``tanh`` for the scalars and Gumbel-softmax (τ = 0.2) for modes and categories;
- discriminator (critic) with PacGAN (pac = 10 rows judged as one input): Linear → LeakyReLU(0.2) →
  Dropout(0.5) for widths (256, 256), then Linear → 1; input rows are data ⊕ cond;
- WGAN-GP (λ = 10; the penalty's norm over each pack), generator loss ``−D(G(z, c)) + CE(c)`` where CE is
  the conditional cross-entropy of the chosen column's logits against the requested category, summed over
  the chosen columns and divided by the batch;
- Adam lr 2e-4, betas (0.5, 0.9), weight decay 1e-6 for both; batch 500; 300 epochs of
  ``max(n_train // batch, 1)`` steps.

Determinism and resume: every random draw of a step that is not the global torch RNG (latents, conditional
vectors, real rows, GP mixing weights) comes from ``(seed, "ctgan-step", step)``; dropout and Gumbel noise use
the global torch RNG, which the engine seeds and checkpoints. So a resumed run ends bitwise equal (CPU, same
thread count) to an uninterrupted one. The engine's :class:`DataOrder` only counts steps and epochs here:
real rows are drawn by training-by-sampling, with replacement, as in the reference.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import torch
from pydantic import Field, model_validator
from torch import nn
from torch.nn import functional as F

from fairlatent.errors import FairlatentError
from fairlatent.tabular.sampler import ConditionalSampler
from fairlatent.tabular.table import TabularData
from fairlatent.tabular.transformer import Span, TableTransformer
from fairlatent.utils.settings import StrictSettings
from fairlatent.utils.seed import rng, torch_generator

__all__ = ["CTGANConfig", "Residual", "CTGANGenerator", "CTGANDiscriminator", "activate", "conditional_loss",
           "pac_gradient_penalty", "CTGANObjective", "train_ctgan"]

RUN_ONLY = {"resume_key": False}
Width = Annotated[int, Field(ge=1)]


class CTGANConfig(StrictSettings):
    """Every setting of a CTGAN run (defaults: the paper's and the reference implementation's)."""

    model: Literal["ctgan"] = "ctgan"
    embedding_dim: int = Field(128, ge=1, description="latent dimension")
    generator_dims: tuple[Width, ...] = (256, 256)
    discriminator_dims: tuple[Width, ...] = (256, 256)
    pac: int = Field(10, ge=1, description="PacGAN: rows the critic judges together")
    batch_size: int = Field(500, ge=1)
    epochs: int = Field(300, ge=1, json_schema_extra=RUN_ONLY)
    lr_g: float = Field(2e-4, gt=0)
    lr_d: float = Field(2e-4, gt=0)
    betas: tuple[Annotated[float, Field(ge=0, lt=1)], Annotated[float, Field(ge=0, lt=1)]] = (0.5, 0.9)
    weight_decay: float = Field(1e-6, ge=0)
    gp_weight: float = Field(10.0, ge=0)
    tau: float = Field(0.2, gt=0, description="Gumbel-softmax temperature")
    discriminator_steps: int = Field(1, ge=1)
    log_frequency: bool = True
    max_modes: int = Field(10, ge=1)
    weight_threshold: float = Field(0.005, ge=0, lt=1)
    dropout: float = Field(0.5, ge=0, lt=1)
    seed: int = Field(0, ge=0)
    checkpoint_every: int = Field(500, ge=1, json_schema_extra=RUN_ONLY)
    log_every: int = Field(50, ge=1, json_schema_extra=RUN_ONLY)

    @model_validator(mode="after")
    def _pac_divides(self) -> "CTGANConfig":
        if self.batch_size % self.pac:
            raise ValueError(f"batch_size={self.batch_size} must be divisible by pac={self.pac}")
        return self


# --- modules ---------------------------------------------------------------------------------------


class Residual(nn.Module):
    """``x ⊕ ReLU(BN(Linear(x)))``: the output has ``in + out`` features."""

    def __init__(self, i: int, o: int):
        super().__init__()
        self.fc, self.bn = nn.Linear(i, o), nn.BatchNorm1d(o)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([F.relu(self.bn(self.fc(x))), x], dim=1)


class CTGANGenerator(nn.Module):
    def __init__(self, in_dim: int, dims: tuple[int, ...], data_dim: int):
        super().__init__()
        layers, d = [], in_dim
        for w in dims:
            layers.append(Residual(d, w))
            d += w
        self.body = nn.Sequential(*layers)
        self.out = nn.Linear(d, data_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.body(x))


class CTGANDiscriminator(nn.Module):
    """PacGAN critic: ``pac`` consecutive rows are concatenated into one input (the batch must divide)."""

    def __init__(self, in_dim: int, dims: tuple[int, ...], pac: int, dropout: float = 0.5):
        super().__init__()
        self.pac, self.pacdim = pac, in_dim * pac
        layers, d = [], self.pacdim
        for w in dims:
            layers += [nn.Linear(d, w), nn.LeakyReLU(0.2), nn.Dropout(dropout)]
            d = w
        layers.append(nn.Linear(d, 1))
        self.seq = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] % self.pac:
            raise ValueError(f"{x.shape[0]} rows are not divisible by pac={self.pac}")
        return self.seq(x.reshape(-1, self.pacdim))


def activate(raw: torch.Tensor, spans: list[Span], tau: float) -> torch.Tensor:
    """tanh on the scalar spans, Gumbel-softmax (temperature ``tau``, global torch RNG) on the others."""
    parts = []
    for s in spans:
        x = raw[:, s.start:s.stop]
        parts.append(torch.tanh(x) if s.activation == "tanh" else F.gumbel_softmax(x, tau=tau))
    return torch.cat(parts, dim=1)


def conditional_loss(raw: torch.Tensor, cond: torch.Tensor, mask: torch.Tensor, spans: list[Span]) -> torch.Tensor:
    """Σ over rows and discrete columns of mask · CE(logits of the column, requested category), / batch size."""
    discrete = [s for s in spans if s.kind == "category"]
    losses, at = [], 0
    for s in discrete:
        target = cond[:, at:at + s.width].argmax(dim=1)
        losses.append(F.cross_entropy(raw[:, s.start:s.stop], target, reduction="none"))
        at += s.width
    return (torch.stack(losses, dim=1) * mask).sum() / raw.shape[0]


def pac_gradient_penalty(D: nn.Module, real: torch.Tensor, fake: torch.Tensor, alpha: torch.Tensor,
                         pac: int) -> torch.Tensor:  # fmt: skip
    """E[(‖∇D(x̂)‖₂ − 1)²] over packs, x̂ = α real + (1−α) fake with one α per pack (``alpha``: n/pac × 1)."""
    a = alpha.repeat_interleave(pac, dim=0)
    x_hat = (a * real + (1 - a) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(D(x_hat).sum(), x_hat, create_graph=True)
    return (grad.reshape(-1, pac * real.shape[1]).norm(2, dim=1) - 1).pow(2).mean()


# --- the objective ---------------------------------------------------------------------------------


class CTGANObjective:
    """The CTGAN training step as the engine sees it (one step = ``discriminator_steps`` critic updates + one
    generator update)."""

    autocast = False

    def __init__(self, config: CTGANConfig, transformer: TableTransformer, data: np.ndarray | None,
                 sampler: ConditionalSampler):  # fmt: skip
        self.config, self.transformer, self.sampler = config, transformer, sampler
        self.data = torch.from_numpy(data) if data is not None else None
        self.spans = transformer.spans
        c, dim = config, transformer.dim
        with torch.random.fork_rng():
            torch.manual_seed(int(rng(c.seed, "ctgan-init").integers(0, 2**62)))
            self.G = CTGANGenerator(c.embedding_dim + sampler.dim, c.generator_dims, dim)
            self.D = CTGANDiscriminator(dim + sampler.dim, c.discriminator_dims, c.pac, c.dropout)
        kw = dict(betas=tuple(c.betas), weight_decay=c.weight_decay)
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=c.lr_g, **kw)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=c.lr_d, **kw)

    def modules(self) -> dict[str, nn.Module]:
        return {"G": self.G, "D": self.D}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"opt_g": self.opt_g, "opt_d": self.opt_d}

    def _cond(self, n: int, g: np.random.Generator):
        out = self.sampler.sample_condvec(n, g)
        if out is None:
            return None, None, None, None
        cond, mask, col, opt = out
        return torch.from_numpy(cond), torch.from_numpy(mask), col, opt

    def _with(self, x: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        return x if cond is None else torch.cat([x, cond], dim=1)

    def train_step(self, step: int, batches) -> dict[str, torch.Tensor]:
        c, G, D, n = self.config, self.G, self.D, self.config.batch_size
        g = rng(c.seed, "ctgan-step", step)
        tg = torch_generator(c.seed, "ctgan-step", step)
        G.train(), D.train()
        D.requires_grad_(True)
        for _ in range(c.discriminator_steps):
            z = torch.randn(n, c.embedding_dim, generator=tg)
            cond, _, col, opt = self._cond(n, g)
            if cond is None:
                rows, cond_real = g.integers(0, len(self.data), size=n), None
            else:
                perm = g.permutation(n)
                rows, cond_real = self.sampler.sample_rows(col[perm], opt[perm], g), cond[perm]
            with torch.no_grad():
                fake = activate(G(self._with(z, cond)), self.spans, c.tau)
            real_c, fake_c = self._with(self.data[rows], cond_real), self._with(fake, cond)
            loss_w = D(fake_c).mean() - D(real_c).mean()
            alpha = torch.rand(n // c.pac, 1, generator=tg)
            pen = pac_gradient_penalty(D, real_c, fake_c, alpha, c.pac)
            loss_d = loss_w + c.gp_weight * pen
            self.opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            self.opt_d.step()
        D.requires_grad_(False)
        z = torch.randn(n, c.embedding_dim, generator=tg)
        cond, mask, _, _ = self._cond(n, g)
        raw = G(self._with(z, cond))
        adv = -D(self._with(activate(raw, self.spans, c.tau), cond)).mean()
        ce = conditional_loss(raw, cond, mask, self.spans) if cond is not None else torch.zeros(())
        loss_g = adv + ce
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_g.step()
        return {"loss_d": loss_w.detach(), "gp": pen.detach(), "loss_g": adv.detach(), "cond_ce": ce.detach()}


def train_ctgan(data: TabularData, out: str | Path, config: CTGANConfig | None = None, *, resume: bool = True,
                progress: bool = True, stop_at_step: int | None = None) -> Path:
    """Train CTGAN on ``data.train`` into the run directory ``out`` (layout: :mod:`fairlatent.tabular.run`)."""
    from fairlatent.tabular.synthesizer import fit_run

    return fit_run(data, Path(out), config or CTGANConfig(), resume=resume, progress=progress,
                   stop_at_step=stop_at_step)

