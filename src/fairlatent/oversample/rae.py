"""Training and using the class-preserving regularized autoencoder for minority oversampling.

Mondal et al., "Minority Oversampling for Imbalanced Data via Class-Preserving
Regularized Auto-Encoders", AISTATS 2023; reference code github.com/arnabkmondal/OversamplingRAE
(``code/osrae.py``, TensorFlow). This is a re-implementation on the project's training engine
(:mod:`fairlatent.train.engine`: checkpoints, bitwise resume, ``log.csv``), not a copy.

**Why it works.** Every batch holds *same-class pairs* drawn class-balanced (each class equally likely,
however few images it has: the minority classes are oversampled at the level of pairs). Both images are
encoded; a mixer network proposes convex weights α (softmax over two components, from the two latents,
Gaussian noise and the class) and z_mix = α₀z₁ + α₁z₂. The encoder and a *linear* probe are trained so that
real latents **and** mixed latents are classified as their class: a linear classifier's decision regions
are convex, so the class regions of the latent space become closed under same-class mixing and new
minority points can be drawn there. The mixer is trained *against* the probe (cross-entropy towards a
randomly permuted label), so it proposes the hardest mixes, which the encoder then learns to keep in
class. A class-conditional decoder turns latents back into images; it is trained to make its outputs be
re-encoded into their class, and adversarially (conditional WGAN-GP) to look real.

**One engine step** is one step of the reference's loop (``period`` = 5):

- *main step* (``step % period == 0``, ``step > 0``; every step when ``adversarial`` is off): with
  x = [x₁; x₂], x̂ = Dec(Enc(x), y), x_gen = Dec(z_mix, y),

  - encoder + probe (AdamW): ``clf_weight`` · CE(probe([Enc(x); z_mix]), y) + ``recon_weight`` · MAE(x, x̂)
    (reference 5 and 0.01);
  - decoder (Adam): CE(probe(Enc([x_gen; x̂])), y) (the re-encoded class loss) + ``decoder_recon_weight`` ·
    MAE(x, x̂) (reference: 0 — its decoder sees no reconstruction gradient; the CPU profiles turn it on);
  - mixer (Adam): CE(probe(z_mix), permuted y);
  - EMA (decay 0.99) of encoder, decoder and probe;
- *adversarial step* (the other steps): the decoder (its own Adam, β = (0.5, 0.9)) minimises −C([x_gen; x̂], y),
  then ``n_critic`` critic updates on fresh batches: C(fake) − C(real) + λ · GP (λ = 10); EMA of the decoder.

With ``augment`` on, A(·) (:mod:`fairlatent.oversample.augment`) is applied as the reference applies it:
x̂ = Dec(Enc(A(x)), y) and the probe classifies Enc(A(x)); the decoded images are re-encoded and scored by
the critic as A([x_gen; x̂]); the critic's reals are A(x). With ``"adaptive"`` each critic update moves p.

The EMA encoder + EMA probe is the classifier; EMA encoder + mixer + EMA decoder make the samples. Their
batch-norm statistics are recomputed exactly after training (:meth:`RAETrainer.final_modules`).

**Departures from the reference, all stated:** the saved modules get standing batch-norm statistics
(``standing_statistics``, on by default; the reference keeps the EMA-averaged moving statistics). The
reference augments real and decoded images with an adaptive augmenter (ADA-style): ``augment = "adaptive"``
does the same (:mod:`fairlatent.oversample.augment`, which states how its warp differs), but the default is
``"off"`` (runs recorded before it had none; the CPU profiles have no critic to adapt p to, and use
``"fixed"`` where they augment). Its gradient-penalty interpolation weight is
drawn from N(0, 1); here from U(0, 1) as in Gulrajani et al. The reference's AdamW (TensorFlow Addons)
decays weights by ``weight_decay`` per step, not scaled by the learning rate; PyTorch scales by it, so the
encoder's optimiser gets ``encoder_weight_decay / lr`` to decay by the same amount per step.

**Determinism.** Pairs of step s come from ``rng(seed, "rae-pairs", s, k)``, noise, permutations and GP
weights from ``torch_generator(seed, "rae-step", s)``; dropout draws from the global RNG, which the engine
seeds and checkpoints. So a resumed run is bitwise identical to an uninterrupted one on CPU.
"""

from __future__ import annotations

import copy
import os
import shutil
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np
import torch
from pydantic import Field, field_validator, model_serializer, model_validator
from torch import nn
from torch.nn import functional as F

from fairlatent.errors import FairlatentError
from fairlatent.models.weights import load_module_state, load_tensors, module_tensors, save_tensors
from fairlatent.oversample.augment import OPS as AUGMENT_OPS
from fairlatent.oversample.augment import adapt_probability, augment, check_ops
from fairlatent.oversample.data import check_training_labels
from fairlatent.oversample.models import Critic, Decoder, Encoder, Mixer, build_probe, mix
from fairlatent.train.batchnorm import standing_batchnorm_statistics
from fairlatent.train.engine import Batch, DataOrder, Engine, LoopSettings, identity_keys
from fairlatent.utils.io import check_replaceable, claim_output_directory, read_json, write_json
from fairlatent.utils.seed import hash_str, rng, torch_generator
from fairlatent.utils.settings import StrictSettings

__all__ = ["RAEConfig", "RAEModel", "RAETrainer", "fit_rae", "load_rae", "images_to_tensor", "tensor_to_images"]

RUN_FORMAT = "fairlatent-oversample-rae"
RUN_ONLY = {"resume_key": False}


class RAEConfig(StrictSettings):
    """Everything that determines a run. Defaults are the reference code's (MNIST: z 64; use 256 for
    CelebA); ``steps`` there is 100,001 — far beyond a CPU budget, so benchmarks set their own profile."""

    z_dim: int = Field(64, ge=1, description="latent size (reference: 64 MNIST, 256 CelebA)")
    width: int = Field(64, ge=1, description="channels of the first conv layer (the second has twice as many)")
    hidden: int = Field(1024, ge=1, description="units of the dense hidden layers of encoder, decoder, critic")
    mixer_hidden: int = Field(1024, ge=1)
    mixer_layers: int = Field(4, ge=1)
    dropout: float = Field(0.4, ge=0, lt=1)
    mixer: Literal["learned", "random", "none"] = Field(
        "learned", description="convex weights from the mixer network (the method), uniform random ones (the "
                               "autoencoder without the mixer), or no mixing at all")
    batch_size: int = Field(64, ge=2, description="same-class pairs per batch (2× as many images)")
    class_sampling: Literal["balanced", "natural"] = Field(
        "balanced", description="the class of each same-class pair: uniform over the classes (the reference: the "
                                "minority classes oversampled at the level of pairs), or in proportion to the "
                                "classes' training counts (an ablation: the network without class balancing)")
    lr: float = Field(2e-4, gt=0)
    encoder_weight_decay: float = Field(1e-3, ge=0, description="per-step decoupled decay of encoder and probe "
                                                                "(TensorFlow Addons' AdamW convention)")
    clf_weight: float = Field(5.0, ge=0)
    recon_weight: float = Field(0.01, ge=0, description="weight of MAE(x, x̂) in the encoder's loss")
    decoder_recon_weight: float = Field(0.0, ge=0, description="weight of MAE(x, x̂) in the decoder's loss")
    adversarial: bool = Field(True, description="the conditional WGAN-GP decoder term")
    period: int = Field(5, ge=2, description="one main step in every `period` steps; the others adversarial")
    n_critic: int = Field(5, ge=1)
    gp_weight: float = Field(10.0, ge=0)
    ema_decay: float = Field(0.99, ge=0, lt=1)
    standing_statistics: bool = Field(
        True, json_schema_extra=RUN_ONLY,
        description="recompute the saved modules' batch-norm statistics exactly after training (see "
                    "RAETrainer.final_modules); off = the reference's EMA-averaged moving statistics")
    augment: Literal["off", "fixed", "adaptive"] = Field(
        "off",
        description="augmentation of the images the encoder classifies and the critic scores "
                    "(fairlatent.oversample.augment): 'adaptive' (the reference) starts p at 0 and moves it with "
                    "the critic's accuracy on real images, so it needs adversarial = true; 'fixed' uses augment_p "
                    "throughout. Off by default: runs recorded before it existed had none, and the CPU profiles "
                    "have no critic to adapt to")
    augment_p: float = Field(0.5, ge=0, le=1, description="with augment = 'fixed': the share of images augmented")
    augment_ops: list[str] = Field(list(AUGMENT_OPS), description="which ops, in the reference's order: "
                                                                  + ", ".join(AUGMENT_OPS) + " (all: the reference)")
    augment_target: float = Field(0.85, ge=0, le=1, description="with 'adaptive': the critic accuracy p steers to")
    augment_integration: int = Field(1000, ge=1, description="with 'adaptive': critic updates for p to move by 1 "
                                                              "at an accuracy error of 1")
    steps: int = Field(100_001, ge=1, json_schema_extra=RUN_ONLY)
    checkpoint_every: int = Field(1000, ge=1, json_schema_extra=RUN_ONLY)
    log_every: int = Field(50, ge=1, json_schema_extra=RUN_ONLY)
    seed: int = Field(0, ge=0)

    @field_validator("augment_ops")
    @classmethod
    def _known_ops(cls, v: list[str]) -> list[str]:
        return check_ops(v)

    @model_validator(mode="after")
    def _adaptive_needs_critic(self) -> "RAEConfig":
        if self.augment == "adaptive" and not self.adversarial:
            raise ValueError("augment = 'adaptive' moves p with the critic's accuracy, and adversarial = false has no "
                             "critic: set augment = 'fixed' (with augment_p) or 'off', or adversarial = true")
        return self

    @model_serializer(mode="wrap")
    def _dump(self, handler: Any) -> dict[str, Any]:
        # settings added later are left out at the value that reproduces the runs made before them (augmentation
        # off, balanced pairs), so those runs' records and cache keys still match a config that does not ask for them
        out = handler(self)
        if out.get("augment") == "off":
            for key in AUGMENT_KEYS:
                out.pop(key, None)
        if out.get("class_sampling") == "balanced":
            out.pop("class_sampling")
        return out


#: The settings added with augmentation, and the values a checkpoint written before them implies.
AUGMENT_KEYS = ("augment", "augment_p", "augment_ops", "augment_target", "augment_integration")
LEGACY_VALUES = {k: RAEConfig.model_fields[k].default for k in (*AUGMENT_KEYS, "class_sampling")}
RESUME_KEYS = identity_keys(RAEConfig) + ("n_train", "shape", "n_classes")


def images_to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 N×H×W×C → float32 N×C×H×W in [0, 1] (the reference's scale; the decoder ends in a sigmoid)."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(255.0)


def tensor_to_images(x: torch.Tensor) -> np.ndarray:
    """float N×C×H×W in [0, 1] → uint8 N×H×W×C."""
    return x.detach().clamp(0, 1).mul(255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


class PairSampler:
    """Same-class pairs, a pure function of ``(seed, step, k)``.

    The reference refills a pool of 200 pairs per class every 25 steps and draws batches from it, so every
    class is about equally frequent whatever its size; here each pair's class is uniform over the K
    classes (``natural = False``) and its two members are two *different* images of that class (uniformly),
    drawn afresh. With ``natural = True`` the class is that of a uniformly drawn training image, so classes
    come as often as in the data (the ablation ``class_sampling = "natural"``).
    """

    def __init__(self, labels: np.ndarray, n_classes: int, seed: int, stream: str = "rae-pairs",
                 natural: bool = False):
        self.seed, self.k, self.stream, self.natural = seed, n_classes, stream, natural
        self.order = np.argsort(labels, kind="stable")
        self.counts = np.bincount(labels, minlength=n_classes)
        self.starts = np.concatenate([[0], np.cumsum(self.counts)[:-1]])
        self.sorted_labels = np.asarray(labels)[self.order]

    def __call__(self, step: int, k: int, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        r = rng(self.seed, self.stream, step, k)
        if self.natural:
            cls = self.sorted_labels[r.integers(len(self.order), size=n)].astype(np.int64)
        else:
            cls = r.integers(self.k, size=n)
        cnt = self.counts[cls]
        i1 = np.floor(r.random(n) * cnt).astype(np.int64)
        i2 = (i1 + 1 + np.floor(r.random(n) * (cnt - 1)).astype(np.int64)) % cnt  # ≠ i1
        return self.order[self.starts[cls] + i1], self.order[self.starts[cls] + i2], cls


class RAETrainer:
    """The modules, optimisers and one training step (the engine's :class:`Objective`)."""

    def __init__(self, config: RAEConfig, images: np.ndarray, labels: np.ndarray, n_classes: int):
        c = config
        self.config, self.k = c, n_classes
        self.images = images
        self.labels = np.asarray(labels, dtype=np.int64)
        self.size, self.channels = images.shape[1], images.shape[3]
        self.pairs = PairSampler(self.labels, n_classes, c.seed, natural=c.class_sampling == "natural")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(hash_str(f"rae-init-{c.seed}"))
            self.E = Encoder(self.channels, self.size, c.z_dim, c.width, c.hidden, c.dropout)
            self.Dec = Decoder(self.channels, self.size, c.z_dim, n_classes, c.width, c.hidden)
            self.P = build_probe(c.z_dim, n_classes)
            self.M = Mixer(c.z_dim, n_classes, c.mixer_hidden, c.mixer_layers, c.dropout) if c.mixer == "learned" else None
            self.C = Critic(self.channels, self.size, n_classes, c.width, c.hidden) if c.adversarial else None
        self.E_ema = copy.deepcopy(self.E).eval().requires_grad_(False)
        self.Dec_ema = copy.deepcopy(self.Dec).eval().requires_grad_(False)
        self.P_ema = copy.deepcopy(self.P).eval().requires_grad_(False)
        enc_params = list(self.E.parameters()) + list(self.P.parameters())
        self.opt_enc = torch.optim.AdamW(enc_params, lr=c.lr, weight_decay=c.encoder_weight_decay / c.lr)
        self.opt_dec = torch.optim.Adam(self.Dec.parameters(), lr=c.lr)
        self.opt_mix = torch.optim.Adam(self.M.parameters(), lr=c.lr) if self.M is not None else None
        if self.C is not None:
            self.opt_adv = torch.optim.Adam(self.Dec.parameters(), lr=c.lr, betas=(0.5, 0.9))
            self.opt_critic = torch.optim.Adam(self.C.parameters(), lr=c.lr, betas=(0.5, 0.9))
        self.last_critic = 0.0
        # the augmentation probability: fixed, or (adaptive) starting at 0 and moved by each critic update
        self.augment_p = c.augment_p if c.augment == "fixed" else 0.0

    # --- engine protocol ---
    def modules(self) -> dict[str, nn.Module]:
        out = {"E": self.E, "Dec": self.Dec, "P": self.P, "E_ema": self.E_ema, "Dec_ema": self.Dec_ema, "P_ema": self.P_ema}
        if self.M is not None:
            out["M"] = self.M
        if self.C is not None:
            out["C"] = self.C
        return out

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        out = {"opt_enc": self.opt_enc, "opt_dec": self.opt_dec}
        if self.opt_mix is not None:
            out["opt_mix"] = self.opt_mix
        if self.C is not None:
            out.update(opt_adv=self.opt_adv, opt_critic=self.opt_critic)
        return out

    def extra_state(self) -> dict:
        out = {"last_critic": self.last_critic}
        if self.config.augment != "off":
            out["augment_p"] = self.augment_p  # JSON keeps a float's every bit (shortest repr round-trips)
        return out

    def load_extra_state(self, state: dict) -> None:
        self.last_critic = float(state.get("last_critic", 0.0))
        if self.config.augment == "adaptive":
            self.augment_p = float(state.get("augment_p", 0.0))

    # --- pieces of a step ---
    def _augment(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """``x`` through the reference's augmenter at the current probability (as it is when augment is off)."""
        if self.config.augment == "off":
            return x
        return augment(x, g, self.augment_p, self.config.augment_ops)

    def batch(self, step: int, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        a, b, y = self.pairs(step, k, self.config.batch_size)
        return images_to_tensor(self.images[a]), images_to_tensor(self.images[b]), torch.from_numpy(y)

    def weights(self, g: torch.Generator, za: torch.Tensor, zb: torch.Tensor, yy: torch.Tensor) -> torch.Tensor:
        """Convex weights N×2 for mixing ``za`` with ``zb``: the mixer's, or uniform random ones."""
        n = za.shape[0]
        noise = torch.randn(n, self.config.z_dim, generator=g)
        if self.M is not None:
            return self.M(za, zb, noise, yy)
        a = torch.rand(n, 1, generator=g)
        return torch.cat([a, 1 - a], 1)

    def forward(self, g: torch.Generator, x1: torch.Tensor, x2: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every quantity of a step (the reference computes the same forward pass in both kinds of step).

        With augmentation, as the reference: the encoder classifies and reconstructs the augmented real images
        (``x_aug``; the reconstruction is compared with the originals), the mixed pair is encoded unaugmented,
        and the decoded images are augmented before the critic scores them and the encoder re-reads them."""
        x, yy = torch.cat([x1, x2]), torch.cat([y, y])
        out: dict[str, torch.Tensor] = {"x": x, "yy": yy}
        out["x_aug"] = self._augment(x, g)
        z_real = self.E(out["x_aug"])
        out["x_hat"] = self.Dec(z_real, yy)
        logits = [self.P(z_real)]
        if self.config.mixer != "none":
            z1, z2 = self.E(x1), self.E(x2)
            za, zb = torch.cat([z1, z2]), torch.cat([z2, z1])
            z_mix = mix(self.weights(g, za, zb, yy), za, zb)
            out["y_mix"] = self.P(z_mix)
            logits.append(out["y_mix"])
            out["fakes"] = self._augment(torch.cat([self.Dec(z_mix, yy), out["x_hat"]]), g)
            out["y_fakes"] = torch.cat([yy, yy])
        else:
            out["fakes"], out["y_fakes"] = self._augment(out["x_hat"], g), yy
        out["clf"] = F.cross_entropy(torch.cat(logits), yy.repeat(len(logits)))
        out["mae"] = (x - out["x_hat"]).abs().mean()
        return out

    def train_step(self, step: int, batches: Sequence[Batch]) -> dict[str, torch.Tensor]:
        c = self.config
        g = torch_generator(c.seed, "rae-step", step)
        for m in (self.E, self.Dec, self.P) + ((self.M,) if self.M is not None else ()):
            m.train()
        if c.adversarial and (step % c.period != 0 or step == 0):
            return self._adversarial_step(step, g)
        return self._main_step(step, g)

    def _main_step(self, step: int, g: torch.Generator) -> dict[str, torch.Tensor]:
        c = self.config
        o = self.forward(g, *self.batch(step, 0))
        y_fake = self.P(self.E(o["fakes"]))
        fake_clf = F.cross_entropy(y_fake, o["y_fakes"])
        enc_loss = c.clf_weight * o["clf"] + c.recon_weight * o["mae"]
        dec_loss = fake_clf + c.decoder_recon_weight * o["mae"]
        enc_params = list(self.E.parameters()) + list(self.P.parameters())
        dec_params = list(self.Dec.parameters())
        updates = [(self.opt_enc, enc_params, enc_loss), (self.opt_dec, dec_params, dec_loss)]
        mixer_loss = torch.zeros(())
        if "y_mix" in o:
            perm = torch.randperm(len(o["yy"]), generator=g)
            mixer_loss = F.cross_entropy(o["y_mix"], o["yy"][perm])
            if self.M is not None:
                updates.append((self.opt_mix, list(self.M.parameters()), mixer_loss))
        grads = [torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True) for _, params, loss in updates]
        for (opt, params, _), gs in zip(updates, grads):
            for p, gr in zip(params, gs):
                p.grad = gr
            opt.step()
            opt.zero_grad(set_to_none=True)
        self._ema(self.E, self.E_ema)
        self._ema(self.Dec, self.Dec_ema)
        self._ema(self.P, self.P_ema)
        return self._losses(o, fake_clf, mixer_loss, torch.zeros(()))

    def _adversarial_step(self, step: int, g: torch.Generator) -> dict[str, torch.Tensor]:
        c = self.config
        o = self.forward(g, *self.batch(step, 0))
        self.C.requires_grad_(False)
        gen_loss = -self.C(o["fakes"], o["y_fakes"]).mean()
        self.opt_adv.zero_grad(set_to_none=True)
        grads = torch.autograd.grad(gen_loss, list(self.Dec.parameters()))
        for p, gr in zip(self.Dec.parameters(), grads):
            p.grad = gr
        self.opt_adv.step()
        self.opt_adv.zero_grad(set_to_none=True)
        self._ema(self.Dec, self.Dec_ema)
        with torch.no_grad():
            y_fake = self.P(self.E(o["fakes"]))
            fake_clf = F.cross_entropy(y_fake, o["y_fakes"])
        self.C.requires_grad_(True)
        for k in range(1, c.n_critic + 1):
            with torch.no_grad():
                q = self.forward(g, *self.batch(step, k))
            real, fake, yf = q["x_aug"], q["fakes"], q["y_fakes"]  # the critic sees augmented reals, as the fakes
            reals = real.repeat(fake.shape[0] // real.shape[0], 1, 1, 1)
            real_scores = self.C(real, q["yy"])
            loss = self.C(fake, yf).mean() - real_scores.mean()
            alpha = torch.rand(fake.shape[0], 1, 1, 1, generator=g)
            x_hat = (reals + alpha * (fake - reals)).requires_grad_(True)
            (grad,) = torch.autograd.grad(self.C(x_hat, yf).sum(), x_hat, create_graph=True)
            loss = loss + c.gp_weight * (grad.flatten(1).norm(2, dim=1) - 1).pow(2).mean()
            self.opt_critic.zero_grad(set_to_none=True)
            loss.backward()
            self.opt_critic.step()
            self.opt_critic.zero_grad(set_to_none=True)
            if c.augment == "adaptive":
                self.augment_p = adapt_probability(self.augment_p, real_scores, c.augment_target,
                                                   c.augment_integration)
        self.last_critic = float(loss.detach())
        return self._losses(o, fake_clf, torch.zeros(()), gen_loss.detach())

    def _losses(self, o, fake_clf, mixer_loss, gen_loss) -> dict[str, torch.Tensor]:
        out = {"clf": o["clf"].detach(), "mae": o["mae"].detach(), "fake_clf": fake_clf.detach(),
               "mixer": mixer_loss.detach()}
        if self.config.augment != "off":
            out["augment_p"] = torch.tensor(self.augment_p)
        if self.C is not None:
            out.update(gen=gen_loss, critic=torch.tensor(self.last_critic))
        return out

    @torch.no_grad()
    def final_modules(self, n_batches: int = 16) -> dict[str, nn.Module]:
        """Copies of the modules a fitted model keeps (EMA encoder, EMA decoder, EMA probe, mixer), in eval mode.

        With ``standing_statistics`` (the default) their batch-norm statistics are recomputed exactly over
        ``n_batches`` batches of same-class pairs drawn as in training (``class_sampling``), each module on the
        inputs it gets when the model is used: the EMA encoder on training images; the mixer and the EMA decoder
        on the recalibrated encoder's eval-mode latents (as :meth:`RAEModel.sample` feeds them), the decoder on
        real and on mixed latents. Why: the reference averages the moving statistics (Keras momentum 0.99) into
        the EMA like weights; over a CPU budget of a few hundred steps they still carry the initial mean 0 /
        variance 1 and lag the weights, which shifts the classifier's features and fades the decoded images. This is a
        departure from the reference (``standing_statistics = false`` restores it). The training state is
        untouched (copies), so a run extended later resumes bitwise.
        """
        c = self.config
        out = {"E": copy.deepcopy(self.E_ema), "Dec": copy.deepcopy(self.Dec_ema), "P": copy.deepcopy(self.P_ema)}
        if self.M is not None:
            out["M"] = copy.deepcopy(self.M)
        for m in out.values():
            m.eval().requires_grad_(False)
        if not c.standing_statistics:
            return out
        pairs = PairSampler(self.labels, self.k, c.seed, stream="rae-bn-recalibration",
                            natural=c.class_sampling == "natural")
        batches = [pairs(0, i, c.batch_size) for i in range(n_batches)]
        images = [(images_to_tensor(self.images[a]), images_to_tensor(self.images[b]), torch.from_numpy(y))
                  for a, b, y in batches]  # fmt: skip
        E, Dec, M = out["E"], out["Dec"], out.get("M")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(hash_str(f"rae-bn-recalibration-{c.seed}"))  # dropout is active in train mode
            with standing_batchnorm_statistics(E):
                for x1, x2, _ in images:
                    E(torch.cat([x1, x2]))
            latents = [(E(x1), E(x2), y) for x1, x2, y in images]
            g = torch_generator(c.seed, "rae-bn-recalibration")
            noises = [torch.randn(2 * len(y), c.z_dim, generator=g) for _, _, y in latents]
            uniform = [torch.rand(2 * len(y), 1, generator=g) for _, _, y in latents]
            if M is not None:
                with standing_batchnorm_statistics(M):
                    for (z1, z2, y), noise in zip(latents, noises):
                        M(torch.cat([z1, z2]), torch.cat([z2, z1]), noise, torch.cat([y, y]))
            with standing_batchnorm_statistics(Dec):
                for (z1, z2, y), noise, a in zip(latents, noises, uniform):
                    za, zb, yy = torch.cat([z1, z2]), torch.cat([z2, z1]), torch.cat([y, y])
                    Dec(za, yy)
                    if c.mixer != "none":
                        alpha = M(za, zb, noise, yy) if M is not None else torch.cat([a, 1 - a], 1)
                        Dec(mix(alpha, za, zb), yy)
        return out

    @torch.no_grad()
    def _ema(self, src: nn.Module, dst: nn.Module) -> None:
        """θ_ema ← d·θ_ema + (1 − d)·θ for parameters and float buffers (Keras' ``weights`` include the BN
        moving statistics, so the reference averages those too); integer buffers are copied."""
        d = self.config.ema_decay
        for a, b in zip(dst.parameters(), src.parameters()):
            a.lerp_(b, 1 - d)
        for a, b in zip(dst.buffers(), src.buffers()):
            a.lerp_(b, 1 - d) if a.is_floating_point() else a.copy_(b)


# --- the trained model ---------------------------------------------------------------------------


class RAEModel:
    """A fitted model: EMA encoder + probe (the classifier), mixer + EMA decoder (the sampler), and the
    training latents by class (what :meth:`sample` mixes)."""

    def __init__(self, config: RAEConfig, n_classes: int, size: int, channels: int, class_names: Sequence[str],
                 latents: torch.Tensor, latent_labels: torch.Tensor):  # fmt: skip
        c = config
        self.config, self.n_classes, self.size, self.channels = c, n_classes, size, channels
        self.class_names = list(class_names)
        self.encoder = Encoder(channels, size, c.z_dim, c.width, c.hidden, c.dropout).eval()
        self.decoder = Decoder(channels, size, c.z_dim, n_classes, c.width, c.hidden).eval()
        self.probe = build_probe(c.z_dim, n_classes).eval()
        self.mixer = Mixer(c.z_dim, n_classes, c.mixer_hidden, c.mixer_layers, c.dropout).eval() if c.mixer == "learned" else None
        self.latents, self.latent_labels = latents, latent_labels

    def modules(self) -> dict[str, nn.Module]:
        out = {"E": self.encoder, "Dec": self.decoder, "P": self.probe}
        if self.mixer is not None:
            out["M"] = self.mixer
        return out

    @torch.no_grad()
    def encode(self, images: np.ndarray, batch: int = 512) -> torch.Tensor:
        return torch.cat([self.encoder(images_to_tensor(images[i : i + batch])) for i in range(0, len(images), batch)])

    @torch.no_grad()
    def predict(self, images: np.ndarray) -> np.ndarray:
        """Class indices from the linear probe on the encoder's latents (the method's classifier)."""
        return self.predict_logits(images).argmax(1)

    @torch.no_grad()
    def predict_logits(self, images: np.ndarray) -> np.ndarray:
        """N × classes logits of the probe on the encoder's latents."""
        return self.probe(self.encode(images)).numpy()

    @torch.no_grad()
    def decode(self, z: torch.Tensor, y: torch.Tensor, batch: int = 512) -> np.ndarray:
        return np.concatenate([tensor_to_images(self.decoder(z[i : i + batch], y[i : i + batch]))
                               for i in range(0, len(z), batch)]) if len(z) else np.zeros((0, self.size, self.size, self.channels), np.uint8)

    @torch.no_grad()
    def mixed_latents(self, cls: int, n: int, seed: int = 0) -> torch.Tensor:
        """``n`` new latents of class ``cls``: mixes of two different training latents of that class with the
        mixer's convex weights (uniform random ones for a model trained without the mixer)."""
        pool = self.latents[self.latent_labels == cls]
        if len(pool) < 2:
            raise FairlatentError(f"class {self.class_names[cls]!r} has {len(pool)} training latents; sampling mixes "
                                  "two of the same class")
        r = rng(seed, "rae-sample", cls)
        i1 = r.integers(len(pool), size=n)
        i2 = (i1 + 1 + r.integers(len(pool) - 1, size=n)) % len(pool)
        z1, z2 = pool[i1], pool[i2]
        g = torch_generator(seed, "rae-sample-noise", cls)
        noise = torch.randn(n, self.config.z_dim, generator=g)
        if self.mixer is not None:
            alpha = self.mixer(z1, z2, noise, torch.full((n,), cls, dtype=torch.long))
        else:
            a = torch.rand(n, 1, generator=g)
            alpha = torch.cat([a, 1 - a], 1)
        return mix(alpha, z1, z2)

    def sample(self, counts: Sequence[int], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Decoded new images: ``counts[c]`` of class c (uint8 N×H×W×C, labels N)."""
        if len(counts) != self.n_classes:
            raise FairlatentError(f"sample: {len(counts)} counts for a model of {self.n_classes} classes")
        zs, ys = [], []
        for c, n in enumerate(counts):
            if n > 0:
                zs.append(self.mixed_latents(c, int(n), seed))
                ys.append(torch.full((int(n),), c, dtype=torch.long))
        if not zs:
            return np.zeros((0, self.size, self.size, self.channels), np.uint8), np.zeros(0, np.int64)
        y = torch.cat(ys)
        return self.decode(torch.cat(zs), y), y.numpy()

    def balance_counts(self) -> list[int]:
        """How many samples each class needs to reach the largest class's training count."""
        counts = np.bincount(self.latent_labels.numpy(), minlength=self.n_classes)
        return (counts.max() - counts).tolist()


def _finished_record(out_dir: Path, run_cfg: dict) -> bool:
    try:
        rec = read_json(out_dir / "config.json")
    except (FairlatentError, OSError, ValueError):
        return False
    return isinstance(rec, dict) and rec.get("done") is True and rec.get("run") == run_cfg


def fit_rae(images: np.ndarray, labels: np.ndarray, out_dir: str | os.PathLike, config: RAEConfig | None = None, *,
            class_names: Sequence[str] | None = None, resume: bool = True, progress: bool = True,
            stop_at_step: int | None = None) -> Path:
    """Train on ``images`` (uint8 N×H×W×C, side divisible by 4) and ``labels`` into ``out_dir``.

    Layout: ``config.json`` (run record; ``"done": true`` when finished), ``model.safetensors`` (EMA encoder,
    EMA decoder, EMA probe, mixer), ``latents.safetensors`` (training latents and labels, for sampling),
    ``checkpoint/``, ``log.csv``. A run resumes from its checkpoint bitwise; a finished run is returned as is.
    """
    config = config or RAEConfig()
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1] != images.shape[2] or images.shape[1] % 4:
        raise FairlatentError(f"images: expected uint8 N×H×W×C, square with a side divisible by 4; got "
                              f"{images.dtype} {images.shape}")
    labels = np.asarray(labels)
    if len(labels) != len(images):
        raise FairlatentError(f"{len(images)} images but {len(labels)} labels")
    k = check_training_labels(labels, class_names=class_names)
    names = list(class_names) if class_names is not None else [str(i) for i in range(k)]
    out_dir = Path(out_dir)
    run_cfg = {**config.model_dump(mode="json"), "n_train": len(images), "shape": list(images.shape[1:]),
               "n_classes": k}
    claim_output_directory(out_dir, record_format=RUN_FORMAT)
    if resume and _finished_record(out_dir, run_cfg):
        return out_dir
    if not resume:
        check_replaceable(out_dir / "checkpoint", True)
        shutil.rmtree(out_dir / "checkpoint", ignore_errors=True)
        for name in ("log.csv", "model.safetensors", "latents.safetensors"):
            (out_dir / name).unlink(missing_ok=True)
    trainer = RAETrainer(config, images, labels.astype(np.int64), k)
    order = DataOrder(len(images), config.batch_size, seed=config.seed, stream="rae-order", drop_last=False)
    engine = Engine(trainer, order, out_dir,
                    LoopSettings(steps=config.steps, checkpoint_every=config.checkpoint_every,
                                 log_every=config.log_every, name="RAE"),
                    run_config=run_cfg, resume_keys=RESUME_KEYS, legacy_values=LEGACY_VALUES,
                    progress=progress)  # fmt: skip
    if resume:
        engine.restore()
    record = {"format": RUN_FORMAT, "run": run_cfg, "class_names": names, "done": False}
    write_json(out_dir / "config.json", record)
    final = engine.run(stop_at_step=stop_at_step)
    if final < config.steps:
        return out_dir
    tensors = {}
    for name, m in trainer.final_modules().items():
        tensors.update(module_tensors(m, name))
    save_tensors(out_dir / "model.safetensors", tensors)
    model = _model_from(config, run_cfg, names, torch.zeros(0, config.z_dim), torch.zeros(0, dtype=torch.long))
    for name, m in model.modules().items():
        load_module_state(m, tensors, name, source=out_dir / "model.safetensors")
    z = model.encode(images)
    save_tensors(out_dir / "latents.safetensors", {"z": z, "y": torch.from_numpy(labels.astype(np.int64))})
    write_json(out_dir / "config.json", {**record, "done": True, "steps_done": final})
    return out_dir


def _model_from(config: RAEConfig, run_cfg: dict, names: Sequence[str], z: torch.Tensor, y: torch.Tensor) -> RAEModel:
    h, _, ch = run_cfg["shape"]
    return RAEModel(config, int(run_cfg["n_classes"]), int(h), int(ch), names, z, y)


def load_rae(model_dir: str | os.PathLike) -> RAEModel:
    """A fitted model from ``fit_rae``'s output folder (a missing or unfinished one is named)."""
    model_dir = Path(model_dir)
    if not (model_dir / "config.json").is_file():
        raise FairlatentError(f"{model_dir}: no config.json; not an oversampling model folder (fairlatent oversample fit)")
    rec = read_json(model_dir / "config.json")
    if not isinstance(rec, dict) or rec.get("format") != RUN_FORMAT:
        raise FairlatentError(f"{model_dir}/config.json: not an oversampling model record")
    if rec.get("done") is not True:
        raise FairlatentError(f"{model_dir}: training has not finished (rerun `fairlatent oversample fit` to resume)")
    run = dict(rec["run"])
    config = RAEConfig(**{k: v for k, v in run.items() if k in RAEConfig.model_fields})
    lat = load_tensors(model_dir / "latents.safetensors")
    model = _model_from(config, run, rec["class_names"], lat["z"], lat["y"])
    tensors = load_tensors(model_dir / "model.safetensors")
    for name, m in model.modules().items():
        load_module_state(m, tensors, name, source=model_dir / "model.safetensors")
    return model
