"""FairGAN (Xu, Yuan, Zhang & Wu, IEEE Big Data 2018) on the project's training engine.

The generator is conditioned on the protected attribute: ``(x̂, ŷ) = G(z, s)`` with ``s`` drawn from its
training distribution, so generated rows are ``(x̂, ŷ, s)``. Two discriminators:

- ``D1`` tells real ``(x, y, s)`` from generated ``(x̂, ŷ, s)`` (the standard GAN value ``V1``);
- ``D2`` predicts ``s`` from generated ``(x̂, ŷ)`` only (``V2 = E_{s=priv} log D2 + E_{s≠priv} log(1 − D2)``).

``min_G max_{D1,D2} V1 + λ V2``: the generator is trained against both, so that at the optimum the generated
``(x̂, ŷ)`` carry no information about ``s`` (the paper's statistical-parity guarantee for classifiers trained
on the synthetic data). Training has the paper's two phases: ``plain_epochs`` with ``D1`` only (a plain
conditional GAN), then ``fair_epochs`` with ``D2`` and the fairness term, weight ``fairness_weight`` (λ, paper
λ = 1). ``fair_loss="minimax"`` is the paper's generator term ``λ·V2`` (G minimises D2's log-likelihood);
``"confusion"`` instead trains G towards D2 = ½ (cross-entropy against ½, bounded), a common stabilisation.
``"demographic_parity"`` replaces D2 by the penalty TabFairGAN uses (Rajabi & Garibay 2022):
``λ · |E[ŷ⁺ | s = priv] − E[ŷ⁺ | s ≠ priv]|`` over the batch, ŷ⁺ the generator's (Gumbel-softmax) output for
the positive target category. It asks only for what risk difference measures (ŷ independent of s), not for
features that hide s, so realism is not traded against hiding attributes such as ``relationship`` that
encode ``sex`` in Adult.

Deviations, stated: the paper encodes rows with a pre-trained autoencoder (medGAN style) and a discrete
table; here rows use CTGAN's encoding (mode-specific normalisation, Gumbel-softmax outputs, τ = 0.2) and
CTGAN's residual generator, so the two models differ only in what the issue compares (conditioning and the
fairness discriminator). Losses are the standard (non-saturating for G) GAN cross-entropies. A protected
attribute with more than two values conditions G on all its values; D2 predicts privileged vs the rest.

Determinism and resume as for CTGAN: draws from ``(seed, "fairgan-step", step)`` and the engine's checkpointed
global RNG (Gumbel noise); real rows follow the engine's :class:`DataOrder` (epochs without replacement).
"""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
import torch
from pydantic import Field
from torch import nn
from torch.nn import functional as F

from fairlatent.tabular.ctgan import CTGANGenerator, activate
from fairlatent.tabular.transformer import TableTransformer
from fairlatent.utils.settings import StrictSettings
from fairlatent.utils.seed import rng, torch_generator

__all__ = ["FairGANConfig", "MLPDiscriminator", "FairGANObjective"]

RUN_ONLY = {"resume_key": False}
Width = Annotated[int, Field(ge=1)]


class FairGANConfig(StrictSettings):
    """Every setting of a FairGAN run."""

    model: Literal["fairgan"] = "fairgan"
    protected: str | None = Field(None, description="the protected attribute s (default: the data set's first)")
    embedding_dim: int = Field(128, ge=1)
    generator_dims: tuple[Width, ...] = (256, 256)
    discriminator_dims: tuple[Width, ...] = (256, 256)
    batch_size: int = Field(500, ge=1)
    plain_epochs: int = Field(150, ge=0, description="phase 1: D1 only")
    fair_epochs: int = Field(150, ge=0, description="phase 2: D1 and the fairness discriminator D2")
    fairness_weight: float = Field(1.0, ge=0, description="λ of the fairness term")
    fair_loss: Literal["minimax", "confusion", "demographic_parity"] = "minimax"
    lr_g: float = Field(2e-4, gt=0)
    lr_d: float = Field(2e-4, gt=0)
    betas: tuple[Annotated[float, Field(ge=0, lt=1)], Annotated[float, Field(ge=0, lt=1)]] = (0.5, 0.9)
    weight_decay: float = Field(1e-6, ge=0)
    tau: float = Field(0.2, gt=0)
    max_modes: int = Field(10, ge=1)
    weight_threshold: float = Field(0.005, ge=0, lt=1)
    seed: int = Field(0, ge=0)
    checkpoint_every: int = Field(500, ge=1, json_schema_extra=RUN_ONLY)
    log_every: int = Field(50, ge=1, json_schema_extra=RUN_ONLY)


class MLPDiscriminator(nn.Module):
    """Linear → LeakyReLU(0.2) per width, then Linear → 1 logit."""

    def __init__(self, in_dim: int, dims: tuple[int, ...]):
        super().__init__()
        layers, d = [], in_dim
        for w in dims:
            layers += [nn.Linear(d, w), nn.LeakyReLU(0.2)]
            d = w
        layers.append(nn.Linear(d, 1))
        self.seq = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.seq(x).squeeze(1)


class FairGANObjective:
    """One step: a D1 update (and in phase 2 a D2 update), then one generator update."""

    autocast = False

    def __init__(self, config: FairGANConfig, transformer: TableTransformer, data: np.ndarray | None,
                 s_codes: np.ndarray | None, s_counts: np.ndarray, privileged: int, fair_from_step: int,
                 positive_at: int | None = None):
        if config.fair_loss == "demographic_parity" and positive_at is None and data is not None:
            raise ValueError("fair_loss='demographic_parity' needs positive_at, the encoded column of y = positive")
        self.config, self.transformer, self.positive_at = config, transformer, positive_at
        self.spans = transformer.spans
        self.data = torch.from_numpy(data) if data is not None else None
        self.s_codes = torch.from_numpy(np.array(s_codes, dtype=np.int64)) if s_codes is not None else None
        self.s_probs = np.asarray(s_counts, np.float64) / np.sum(s_counts)
        self.k, self.privileged, self.fair_from_step = len(s_counts), privileged, fair_from_step
        c, dim = config, transformer.dim
        with torch.random.fork_rng():
            torch.manual_seed(int(rng(c.seed, "fairgan-init").integers(0, 2**62)))
            self.G = CTGANGenerator(c.embedding_dim + self.k, c.generator_dims, dim)
            self.D1 = MLPDiscriminator(dim + self.k, c.discriminator_dims)
            self.D2 = MLPDiscriminator(dim, c.discriminator_dims)
        kw = dict(betas=tuple(c.betas), weight_decay=c.weight_decay)
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=c.lr_g, **kw)
        self.opt_d1 = torch.optim.Adam(self.D1.parameters(), lr=c.lr_d, **kw)
        self.opt_d2 = torch.optim.Adam(self.D2.parameters(), lr=c.lr_d, **kw)

    def modules(self) -> dict[str, nn.Module]:
        return {"G": self.G, "D1": self.D1, "D2": self.D2}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"opt_g": self.opt_g, "opt_d1": self.opt_d1, "opt_d2": self.opt_d2}

    def draw_s(self, n: int, g: np.random.Generator) -> torch.Tensor:
        u = g.random(n)[:, None]
        return torch.from_numpy(np.minimum((np.cumsum(self.s_probs)[None, :] < u).sum(1), self.k - 1))

    def onehot(self, s: torch.Tensor) -> torch.Tensor:
        return F.one_hot(s.long(), self.k).float()

    def generate(self, z: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        return activate(self.G(torch.cat([z, self.onehot(s)], 1)), self.spans, self.config.tau)

    def train_step(self, step: int, batches) -> dict[str, torch.Tensor]:
        c = self.config
        fair = step >= self.fair_from_step and c.fairness_weight > 0
        rows = torch.from_numpy(batches[0].rows)
        n = len(rows)
        g, tg = rng(c.seed, "fairgan-step", step), torch_generator(c.seed, "fairgan-step", step)
        self.G.train()
        real, s_real = self.data[rows], self.s_codes[rows]
        z, s_fake = torch.randn(n, c.embedding_dim, generator=tg), self.draw_s(n, g)
        priv = (s_fake == self.privileged).float()
        with torch.no_grad():
            fake = self.generate(z, s_fake)
        self.D1.requires_grad_(True), self.D2.requires_grad_(True)
        d_real = self.D1(torch.cat([real, self.onehot(s_real)], 1))
        d_fake = self.D1(torch.cat([fake, self.onehot(s_fake)], 1))
        loss_d1 = F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real)) + \
            F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake))
        self.opt_d1.zero_grad(set_to_none=True)
        loss_d1.backward()
        self.opt_d1.step()
        loss_d2 = torch.zeros(())
        if fair and c.fair_loss != "demographic_parity":
            loss_d2 = F.binary_cross_entropy_with_logits(self.D2(fake), priv)
            self.opt_d2.zero_grad(set_to_none=True)
            loss_d2.backward()
            self.opt_d2.step()
        self.D1.requires_grad_(False), self.D2.requires_grad_(False)
        z = torch.randn(n, c.embedding_dim, generator=tg)
        fake = self.generate(z, s_fake)
        d_fake = self.D1(torch.cat([fake, self.onehot(s_fake)], 1))
        loss_g = F.binary_cross_entropy_with_logits(d_fake, torch.ones_like(d_fake))
        fair_term = torch.zeros(())
        if fair and c.fair_loss == "demographic_parity":
            y_pos = fake[:, self.positive_at]
            p, u = priv > 0.5, priv <= 0.5
            if p.any() and u.any():
                fair_term = (y_pos[p].mean() - y_pos[u].mean()).abs()
        elif fair:
            logits = self.D2(fake)
            if c.fair_loss == "minimax":  # G minimises V2 = D2's log-likelihood, i.e. maximises its BCE
                fair_term = -F.binary_cross_entropy_with_logits(logits, priv)
            else:
                fair_term = F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, 0.5))
        total = loss_g + c.fairness_weight * fair_term
        self.opt_g.zero_grad(set_to_none=True)
        total.backward()
        self.opt_g.step()
        return {"loss_d1": loss_d1.detach(), "loss_d2": loss_d2.detach(), "loss_g": loss_g.detach(),
                "fair_term": fair_term.detach()}
