"""A CycleGAN translator between the two groups of a protected attribute (Zhu et al., ICCV 2017).

Image-space counterfactuals: an unpaired translator trained on the real ``train`` images, group 0
(protected = 0) against group 1 (protected = 1). Each real training image translated to the other group
(keeping its target label) is a counterfactual for the classifier, the image-space counterpart of
latent_debias's G(z′). The translator depends on the protected attribute only, so one translator per
(data set, protected attribute, seed) serves every target attribute.

The objective is the paper's (sec. 3 and 7.1), with the reference defaults of
junyanz/pytorch-CycleGAN-and-pix2pix (``models/cycle_gan_model.py``, ``models/networks.py``,
``util/image_pool.py``, ``options/train_options.py``). With G: 0→1, F: 1→0 and discriminators D₁ (judges
group-1 images) and D₀::

    L_G = LS(D₁(G(a)), 1) + LS(D₀(F(b)), 1)                                 adversarial (least squares)
        + λ₀ ‖F(G(a)) − a‖₁ + λ₁ ‖G(F(b)) − b‖₁                             cycle consistency, λ = 10 each
        + λ_id · (λ₁ ‖G(b) − b‖₁ + λ₀ ‖F(a) − a‖₁)                          identity, λ_id = 0.5
    L_D₁ = ½ [LS(D₁(b), 1) + LS(D₁(pool₁(G(a))), 0)],  L_D₀ likewise

(LS(x, t) = mean (x − t)²; the vanilla loss is BCE-with-logits). One step updates both generators with
one Adam, then both discriminators with another (Adam lr 2e-4, β = (0.5, 0.999)), on fakes drawn from an
image history pool of 50 (Shrivastava et al. 2017): once full, each new fake is returned with probability
½ and otherwise swapped for a random stored one, which is returned instead. The learning rate is
constant, then decays linearly to 0 over the last ``decay_fraction`` (½) of the steps.

Steps and epochs. The groups differ in size; as in the reference's unaligned data set, an *epoch* is a
pass over the **larger** group (``n_large // batch_size`` steps), while the smaller group runs through
its own permutations, several per epoch. Each group has its own :class:`~fairlatent.train.engine.
DataOrder` (stream ``"cyclegan-order-<g>"``); step s takes batch s of each.

Exact resume: every random number of step s is drawn from ``(seed, s)`` streams — the flips of group g
from ``rng(seed, "cyclegan-flip", g, s)``, the pool draws from ``torch_generator(seed, "cyclegan-pool",
g, s)`` (a uniform and an index per image, drawn whether used or not, so the stream does not depend on the
pool's fill) — and the pools' images are part of the checkpoint (``extra_tensors``); instance norm keeps
no running statistics. A resumed CPU run ends bitwise identical to an uninterrupted one.

What a run does not support: data parallelism (a run under torchrun is refused; the reference trains on
batch 1, where a second process has nothing to split).
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Annotated, Literal, Mapping

import numpy as np
import torch
from pydantic import Field, model_validator
from torch import nn
from torch.nn import functional as F

from fairlatent.data.dataset import Dataset, load_dataset
from fairlatent.errors import FairlatentError
from fairlatent.models.cyclegan import PatchDiscriminator, ResnetTranslator, check_translator_size
from fairlatent.models.weights import load_module_state, load_tensors, module_tensors, save_tensors
from fairlatent.train.distributed import init_distributed
from fairlatent.train.engine import Batch, Callback, DataOrder, Engine, LoopSettings, identity_keys
from fairlatent.utils.device import DeviceName, default_device
from fairlatent.utils.images import image_grid, save_png, to_tensor, to_uint8
from fairlatent.utils.io import check_replaceable, claim_output_directory, read_json, write_json
from fairlatent.utils.schema import Schema, check_object
from fairlatent.utils.seed import hash_str, rng, torch_generator
from fairlatent.utils.settings import StrictSettings, validate_settings

__all__ = [
    "CycleGANConfig",
    "ImagePool",
    "CycleGANTrainer",
    "CycleGANObjective",
    "Translator",
    "train_translator",
    "load_translator",
    "translate_dataset",
    "translator_groups",
    "gan_loss",
    "lr_factor",
    "RUN_FORMAT",
    "WEIGHTS_FILE",
    "RECORD_FILE",
]

RUN_FORMAT = "fairlatent-translator"
RUN_VERSION = 1
RECORD_FILE = "translator.json"
WEIGHTS_FILE = "translator.safetensors"
DEFAULT_STEPS = 10_000

# Fields that say how a run is carried out, not what it computes. steps and epochs are here because the run
# is identified by the number of steps they resolve to (``total_steps``, which sets the learning-rate
# schedule and is a resume key): ``steps=None`` and ``steps=10000`` are the same run.
RUN_ONLY = {"resume_key": False}


class CycleGANConfig(StrictSettings):
    """Everything that determines a translator run; the defaults are the reference's except the width.

    ``width`` 16 (reference ``ngf = ndf = 64``) keeps a 32-px step of batch 1 on one CPU thread at
    0.13–0.18 s (measured on a 2-core machine shared with another job; width 64: 0.8–1.2 s); ``n_blocks`` 6 is the reference's for images up to 128 px (fewer suit 32 px). ``steps`` /
    ``epochs``: at most one may be given; neither means ``DEFAULT_STEPS`` (10,000 steps of batch 1; the
    reference's 200 epochs of a several-thousand-image set would be ~10⁶ steps, days on a CPU).
    """

    width: int = Field(16, ge=1, description="generator channels at full resolution (reference ngf = 64)")
    width_d: int | None = Field(None, ge=1, description="discriminator channels of the first layer; None = width")
    n_blocks: int = Field(6, ge=0, description="residual blocks of the generator (reference: 6 at ≤128 px, 9 at 256)")
    d_layers: int | None = Field(None, ge=1, description="stride-2 layers of the PatchGAN; None = scaled to the image")
    gan_loss: Literal["lsgan", "vanilla"] = Field("lsgan", description="least squares (reference) or BCE")
    lambda_cycle_0: float = Field(10.0, ge=0, description="weight of ‖F(G(a)) − a‖₁ (reference lambda_A)")
    lambda_cycle_1: float = Field(10.0, ge=0, description="weight of ‖G(F(b)) − b‖₁ (reference lambda_B)")
    lambda_identity: float = Field(0.5, ge=0, description="identity loss weight, relative to the cycle weights")
    lr: float = Field(2e-4, gt=0)
    betas: tuple[Annotated[float, Field(ge=0, lt=1)], Annotated[float, Field(ge=0, lt=1)]] = (0.5, 0.999)
    pool_size: int = Field(50, ge=0, description="image history pool per direction; 0 = none")
    batch_size: int = Field(1, ge=1)
    decay_fraction: float = Field(0.5, ge=0, le=1, description="share of steps (at the end) of linear lr decay to 0")
    flip: bool = Field(True, description="mirror each training image left-right with probability ½")
    steps: int | None = Field(None, ge=1, json_schema_extra=RUN_ONLY)
    epochs: int | None = Field(None, ge=1, json_schema_extra=RUN_ONLY,
                               description="passes over the larger group (instead of steps)")
    seed: int = Field(0, ge=0)
    checkpoint_every: int = Field(500, ge=1, json_schema_extra=RUN_ONLY)
    log_every: int = Field(50, ge=1, json_schema_extra=RUN_ONLY)
    sample_every: int = Field(1000, ge=1, json_schema_extra=RUN_ONLY)
    device: DeviceName = Field(None, json_schema_extra=RUN_ONLY)

    @model_validator(mode="after")
    def _one_length(self) -> "CycleGANConfig":
        if self.steps is not None and self.epochs is not None:
            raise ValueError(f"give steps ({self.steps}) or epochs ({self.epochs}), not both")
        return self

    def total_steps(self, steps_per_epoch: int) -> int:
        """The run's length in steps: ``steps``, or ``epochs × steps_per_epoch``, or ``DEFAULT_STEPS``."""
        if self.epochs is not None:
            return self.epochs * steps_per_epoch
        return self.steps if self.steps is not None else DEFAULT_STEPS


# Settings a resumed run must share with its checkpoint (see RUN_ONLY), plus what the data determines.
RESUME_KEYS = identity_keys(CycleGANConfig) + ("total_steps", "protected", "size", "n_train_0", "n_train_1",
                                               "data_fingerprint")


# --- losses and the schedule -------------------------------------------------------------------------


def gan_loss(kind: str, logits: torch.Tensor, target_is_real: bool) -> torch.Tensor:
    """Mean GAN loss of a map of patch logits against an all-real or all-fake target.

    ``lsgan``: mean (x − t)² with t = 1 (real) or 0 (fake) (Mao et al. 2017; the reference default, which
    the paper found more stable than the log loss); ``vanilla``: BCE-with-logits against t.
    """
    target = torch.full_like(logits, 1.0 if target_is_real else 0.0)
    if kind == "lsgan":
        return F.mse_loss(logits, target)
    if kind == "vanilla":
        return F.binary_cross_entropy_with_logits(logits, target)
    raise ValueError(f"unknown GAN loss {kind!r}")


def lr_factor(step: int, total: int, decay_fraction: float) -> float:
    """Learning-rate multiplier of 0-based ``step`` of ``total``: 1, then linear decay over the last
    ``n = round(decay_fraction · total)`` steps, ``min(1, (total − step) / (n + 1))``.

    The reference's ``linear`` policy per step instead of per epoch: the first decayed step has n/(n+1),
    the last 1/(n+1), and the rate after it would be 0.
    """
    n = int(round(decay_fraction * total))
    return min(1.0, (total - step) / (n + 1))


# --- the history pool -------------------------------------------------------------------------------


class ImagePool:
    """The last generated images, shown to a discriminator in place of new ones half the time.

    Shrivastava et al. (2017), reference ``util/image_pool.py``: while fewer than ``size`` images are
    stored, each query image is stored and returned; after that, with probability ½ it is returned
    unchanged, otherwise a uniformly chosen stored image is returned and the query image takes its place.
    The draws come from the generator passed to :meth:`query` (one uniform and one index per image, always
    both), so a run that seeds it per step is reproducible and resumable given the stored images.
    """

    def __init__(self, size: int):
        self.size = int(size)
        self.images: list[torch.Tensor] = []

    def query(self, images: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        if self.size == 0:
            return images
        images = images.detach()
        out = []
        for img in images:
            u = float(torch.rand((), generator=g))
            j = int(torch.randint(self.size, (), generator=g))
            if len(self.images) < self.size:
                self.images.append(img.clone())
                out.append(img)
            elif u > 0.5:
                out.append(self.images[j])
                self.images[j] = img.clone()
            else:
                out.append(img)
        return torch.stack(out)

    def state(self, shape: tuple[int, ...]) -> torch.Tensor:
        """The stored images as one K×C×H×W tensor (K = 0 while empty)."""
        return torch.stack(self.images) if self.images else torch.zeros((0, *shape))

    def load_state(self, stored: torch.Tensor) -> None:
        if len(stored) > self.size:
            raise FairlatentError(f"checkpoint holds {len(stored)} pooled images but pool_size is {self.size}")
        self.images = [x.clone() for x in stored]


# --- the models and one step ------------------------------------------------------------------------


class CycleGANTrainer:
    """The two translators (``G_01``: group 0 → 1, ``G_10``: 1 → 0), two discriminators (``D_1`` judges
    group-1 images, ``D_0`` group-0 ones), their two optimisers and two pools, with :meth:`train_step`."""

    def __init__(self, config: CycleGANConfig, size: int, total_steps: int, device: torch.device | None = None):
        self.config, self.size, self.total_steps = config, check_translator_size(size), total_steps
        self.device = device or default_device(config.device)
        c = config
        # Initial weights from the seed alone, without touching the caller's global RNG.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(hash_str(f"cyclegan-init-{c.seed}"))
            self.G_01 = ResnetTranslator(size, c.width, c.n_blocks)
            self.G_10 = ResnetTranslator(size, c.width, c.n_blocks)
            self.D_1 = PatchDiscriminator(size, c.width_d or c.width, c.d_layers)
            self.D_0 = PatchDiscriminator(size, c.width_d or c.width, c.d_layers)
        for m in self.modules().values():
            m.to(self.device)
        self.opt_g = torch.optim.Adam([*self.G_01.parameters(), *self.G_10.parameters()], lr=c.lr, betas=tuple(c.betas))
        self.opt_d = torch.optim.Adam([*self.D_1.parameters(), *self.D_0.parameters()], lr=c.lr, betas=tuple(c.betas))
        self.pool_1, self.pool_0 = ImagePool(c.pool_size), ImagePool(c.pool_size)  # fakes of group 1, of group 0

    def modules(self) -> dict[str, nn.Module]:
        return {"G_01": self.G_01, "G_10": self.G_10, "D_1": self.D_1, "D_0": self.D_0}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"opt_g": self.opt_g, "opt_d": self.opt_d}

    def set_lr(self, step: int) -> float:
        lr = self.config.lr * lr_factor(step, self.total_steps, self.config.decay_fraction)
        for opt in (self.opt_g, self.opt_d):
            for group in opt.param_groups:
                group["lr"] = lr
        return lr

    def generator_losses(self, a: torch.Tensor, b: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
        """The generator objective's terms (weighted as they enter L_G), and the fakes G(a), F(b)."""
        c = self.config
        fake_b, fake_a = self.G_01(a), self.G_10(b)
        terms = {
            "g_01": gan_loss(c.gan_loss, self.D_1(fake_b), True),
            "g_10": gan_loss(c.gan_loss, self.D_0(fake_a), True),
            "cycle_0": c.lambda_cycle_0 * F.l1_loss(self.G_10(fake_b), a),
            "cycle_1": c.lambda_cycle_1 * F.l1_loss(self.G_01(fake_a), b),
        }
        if c.lambda_identity > 0:  # the reference skips the identity passes at weight 0
            terms["idt_1"] = c.lambda_identity * c.lambda_cycle_1 * F.l1_loss(self.G_01(b), b)
            terms["idt_0"] = c.lambda_identity * c.lambda_cycle_0 * F.l1_loss(self.G_10(a), a)
        else:
            terms["idt_1"] = terms["idt_0"] = torch.zeros((), device=a.device)
        return terms, fake_b, fake_a

    def discriminator_loss(self, D: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        """½ [loss(D(real), real) + loss(D(fake), fake)]: halved, as in the reference, to slow D relative to G."""
        k = self.config.gan_loss
        return 0.5 * (gan_loss(k, D(real), True) + gan_loss(k, D(fake.detach()), False))

    def train_step(self, step: int, a: torch.Tensor, b: torch.Tensor) -> dict[str, torch.Tensor]:
        """One generator update and one discriminator update on group-0 images ``a`` and group-1 images ``b``."""
        self.set_lr(step)
        for D in (self.D_1, self.D_0):
            D.requires_grad_(False)  # the G step needs gradients through D, not of D
        terms, fake_b, fake_a = self.generator_losses(a, b)
        loss_g = sum(terms.values())
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_g.step()
        for D in (self.D_1, self.D_0):
            D.requires_grad_(True)
        seed = self.config.seed
        pooled_b = self.pool_1.query(fake_b, torch_generator(seed, "cyclegan-pool", 1, step))
        pooled_a = self.pool_0.query(fake_a, torch_generator(seed, "cyclegan-pool", 0, step))
        loss_d1 = self.discriminator_loss(self.D_1, b, pooled_b)
        loss_d0 = self.discriminator_loss(self.D_0, a, pooled_a)
        self.opt_d.zero_grad(set_to_none=True)
        (loss_d1 + loss_d0).backward()  # disjoint parameters: the same gradients as two backward passes
        self.opt_d.step()
        out = {"loss_d1": loss_d1, "loss_d0": loss_d0, **{f"loss_{k}": v for k, v in terms.items()}}
        return {k: v.detach() for k, v in out.items()}

    # --- the pools as checkpoint tensors ---
    def extra_tensors(self) -> dict[str, torch.Tensor]:
        shape = (3, self.size, self.size)
        return {"pool_1.images": self.pool_1.state(shape), "pool_0.images": self.pool_0.state(shape)}

    def load_extra_tensors(self, tensors: Mapping[str, torch.Tensor]) -> None:
        for name, pool in (("pool_1", self.pool_1), ("pool_0", self.pool_0)):
            key = f"{name}.images"
            if key not in tensors:
                raise FairlatentError(f"checkpoint lacks {key}: not a translator checkpoint")
            pool.load_state(tensors[key].to(self.device))


class GroupSource:
    """The training images of one group, batch by batch, in [-1, 1], a pure function of (seed, batch)."""

    def __init__(self, images: np.ndarray, rows: np.ndarray, group: int, config: CycleGANConfig, device: torch.device):
        self.images, self.rows, self.group, self.device = images, rows, group, device
        self.seed, self.flip = config.seed, config.flip
        self.order = DataOrder(len(rows), config.batch_size, seed=config.seed, stream=f"cyclegan-order-{group}",
                               drop_last=True)  # fmt: skip

    def gather(self, index: int) -> torch.Tensor:
        batch = self.order.batch(index)
        x = to_tensor(np.asarray(self.images[self.rows[batch.rows]]), self.device)
        if self.flip:
            mirror = rng(self.seed, "cyclegan-flip", self.group, index).random(len(batch.rows)) < 0.5
            x = torch.where(torch.from_numpy(mirror).to(self.device)[:, None, None, None], x.flip(3), x)
        return x


class CycleGANObjective:
    """The translator pair as the engine sees it: batch s of each group's order, one trainer step."""

    autocast = False  # float32 everywhere (the reference trains in float32)

    def __init__(self, trainer: CycleGANTrainer, source_0: GroupSource, source_1: GroupSource):
        self.trainer, self.sources = trainer, (source_0, source_1)

    def modules(self) -> dict[str, nn.Module]:
        return self.trainer.modules()

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return self.trainer.optimizers()

    def extra_tensors(self) -> dict[str, torch.Tensor]:
        return self.trainer.extra_tensors()

    def load_extra_tensors(self, tensors: Mapping[str, torch.Tensor]) -> None:
        self.trainer.load_extra_tensors(tensors)

    def train_step(self, step: int, batches: list[Batch]) -> dict[str, torch.Tensor]:
        index = batches[0].index
        a, b = (s.gather(index) for s in self.sources)
        return self.trainer.train_step(step, a, b)


# --- data -------------------------------------------------------------------------------------------


def translator_groups(ds: Dataset, protected: str, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """Row indices of ``split`` in group 0 and in group 1 of ``protected``; an empty group is an error
    naming the attribute, the split and the value missing."""
    ds.check_attributes([protected])
    idx = ds.split_indices(split)
    g = ds.labels(protected, idx)
    rows = (idx[g == 0], idx[g == 1])
    for value, r in enumerate(rows):
        if len(r) == 0:
            elsewhere = int((ds.labels(protected) == value).sum())
            where = (f"{elsewhere} in other splits" if elsewhere else "none in the whole data set")
            raise FairlatentError(
                f"{ds.path}: protected attribute {protected!r} takes the single value {1 - value} in the "
                f"{split} split ({len(idx)} images; {protected}={value}: no {split} images, {where}); "
                f"a translator needs {split} images of both groups"
            )
    return rows


def _data_fingerprint(ds: Dataset, rows: np.ndarray) -> str:
    """Content identity of the training data: attributes.csv, meta.json, the image array's shape and the
    bytes of up to 1024 evenly spaced training images (cheap even for a large memory-mapped set)."""
    h = hashlib.sha256()
    for name in ("attributes.csv", "meta.json"):
        h.update((ds.path / name).read_bytes())
    h.update(repr(ds.images.shape).encode())
    pick = np.sort(rows)[np.linspace(0, len(rows) - 1, min(len(rows), 1024)).astype(np.int64)]
    h.update(np.ascontiguousarray(ds.images[pick]).tobytes())
    return h.hexdigest()[:16]


def _check_images(ds: Dataset) -> int:
    h, w = ds.images.shape[1:3]
    if h != w:
        raise FairlatentError(f"{ds.path}/images.npy: images are {h}×{w}; the translator needs square images")
    try:
        return check_translator_size(int(h))
    except ValueError as exc:
        raise FairlatentError(f"{ds.path}/images.npy: {exc}") from None


# --- the job ----------------------------------------------------------------------------------------


class _RecordSchema(Schema):
    format: str
    protected: str
    size: int
    step: int
    done: bool
    config: dict


def _record(config: CycleGANConfig, run_cfg: dict, data: Path, step: int, done: bool) -> dict:
    return {
        "format": RUN_FORMAT,
        "version": RUN_VERSION,
        "done": done,
        "step": step,
        "total_steps": run_cfg["total_steps"],
        "data": str(data),
        "data_fingerprint": run_cfg["data_fingerprint"],
        "protected": run_cfg["protected"],
        "size": run_cfg["size"],
        "n_train_0": run_cfg["n_train_0"],
        "n_train_1": run_cfg["n_train_1"],
        "steps_per_epoch": run_cfg["steps_per_epoch"],
        "config": config.model_dump(mode="json"),
    }


def _is_translator_run(path: Path) -> bool:
    try:
        rec = read_json(path / RECORD_FILE)
    except FairlatentError:
        return False
    return isinstance(rec, dict) and rec.get("format") == RUN_FORMAT


def _finished(out_dir: Path, run_cfg: dict) -> bool:
    """Whether ``out_dir`` holds this very run, finished. Another finished run is not returned: training
    then resumes from its checkpoint, which names the setting that differs (or starts afresh without one)."""
    if not (out_dir / RECORD_FILE).is_file():
        return False
    rec = read_json(out_dir / RECORD_FILE)
    if not isinstance(rec, dict) or rec.get("format") != RUN_FORMAT:
        raise FairlatentError(f"{out_dir / RECORD_FILE}: not a fairlatent translator record; choose another --out")
    if not (rec.get("done") and rec.get("step") == run_cfg["total_steps"] and (out_dir / WEIGHTS_FILE).is_file()):
        return False
    saved = {**rec.get("config", {}), **{k: rec.get(k) for k in RESUME_KEYS if k in rec}}
    return all(saved.get(k) == run_cfg.get(k) for k in RESUME_KEYS)


def _refuse_other_runs(out_dir: Path) -> None:
    """A folder of another fairlatent run (a GAN's, a classifier's) is fairlatent's too, but neither resumed
    from (its checkpoint has other modules) nor cleared by ``resume=False``: refused, naming what it holds."""
    found = []
    if (out_dir / "config.json").is_file():
        found.append("config.json")
    ck = out_dir / "checkpoint" / "config.json"
    if ck.is_file():
        saved = read_json(ck)
        if not (isinstance(saved, dict) and "protected" in saved and "data_fingerprint" in saved):
            found.append("checkpoint/ of another kind of run")
    if found:
        raise FairlatentError(f"--out {out_dir}: holds another fairlatent run ({', '.join(found)}), not a translator; "
                              "choose a new folder for the translator")


def _sample_rows(rows: np.ndarray, n: int = 8) -> np.ndarray:
    return np.sort(rows)[np.linspace(0, len(rows) - 1, min(n, len(rows))).astype(np.int64)]


def train_translator(data, protected: str, out_dir, config: CycleGANConfig | None = None, *, resume: bool = True,
                     progress: bool = True, stop_at_step: int | None = None) -> Path:  # fmt: skip
    """Train a CycleGAN translator between the groups of ``protected`` on ``data``'s train split; return ``out_dir``.

    ``out_dir`` layout: ``translator.json`` (record: protected attribute, data fingerprint, group sizes,
    config, steps; ``"done": true`` once finished), ``translator.safetensors`` (``G_01.*`` and ``G_10.*``,
    what :func:`load_translator` reads), ``checkpoint/`` (full state incl. discriminators, optimisers and
    pools), ``samples/step_XXXXXX.png`` (rows: group-0 images, their translations, group-1 images, theirs)
    and ``log.csv``. With ``resume`` a run continues from ``checkpoint/`` bitwise identically (CPU); a
    finished run of the same settings is returned as is. ``resume=False`` discards what an earlier run
    wrote there. ``stop_at_step`` stops early (leaving a checkpoint), as an interruption would.
    """
    config = config or CycleGANConfig()
    data, out_dir = Path(data), Path(out_dir)
    ctx = init_distributed(config.device)
    if ctx.distributed:
        raise FairlatentError("train-translator runs on one process; start it without torchrun (or inside "
                              "fairlatent.train.distributed.single_process())")
    ds = load_dataset(data)
    size = _check_images(ds)
    rows_0, rows_1 = translator_groups(ds, protected)
    for value, r in enumerate((rows_0, rows_1)):
        if len(r) < config.batch_size:
            raise FairlatentError(f"{ds.path}: batch_size {config.batch_size} exceeds the {len(r)} train images of "
                                  f"group {protected}={value}")
    train_rows = np.concatenate([rows_0, rows_1])
    # Small sets (the usual case) are read into memory once; larger ones stay memory-mapped.
    if ds.images[:1].nbytes * len(train_rows) < 2**30:
        keep = np.sort(train_rows)
        loaded = np.asarray(ds.images[keep])
        remap = np.full(len(ds.images), -1, np.int64)
        remap[keep] = np.arange(len(keep))
        images, rows_0m, rows_1m = loaded, remap[rows_0], remap[rows_1]
    else:
        images, rows_0m, rows_1m = ds.images, rows_0, rows_1
    steps_per_epoch = max(len(rows_0), len(rows_1)) // config.batch_size
    total = config.total_steps(steps_per_epoch)
    run_cfg = {**config.model_dump(mode="json"), "total_steps": total, "protected": protected, "size": size,
               "n_train_0": len(rows_0), "n_train_1": len(rows_1), "steps_per_epoch": steps_per_epoch,
               "data_fingerprint": _data_fingerprint(ds, train_rows)}  # fmt: skip
    claim_output_directory(out_dir, recognise=_is_translator_run)
    _refuse_other_runs(out_dir)
    if resume and _finished(out_dir, run_cfg):
        return out_dir
    samples_dir = out_dir / "samples"
    if not resume:
        check_replaceable(out_dir / "checkpoint", True)  # delete only what fairlatent wrote
        shutil.rmtree(out_dir / "checkpoint", ignore_errors=True)
        shutil.rmtree(samples_dir, ignore_errors=True)
        for name in ("log.csv", WEIGHTS_FILE, RECORD_FILE):
            (out_dir / name).unlink(missing_ok=True)

    trainer = CycleGANTrainer(config, size, total, device=ctx.device)
    sources = (GroupSource(images, rows_0m, 0, config, trainer.device), GroupSource(images, rows_1m, 1, config, trainer.device))
    larger = sources[0] if len(rows_0) >= len(rows_1) else sources[1]
    shown = [to_tensor(np.asarray(images[_sample_rows(r)]), trainer.device) for r in (rows_0m, rows_1m)]

    def save_grid(step: int) -> None:
        with torch.no_grad():
            rows = [shown[0], trainer.G_01(shown[0]), shown[1], trainer.G_10(shown[1])]
        n = max(len(r) for r in rows)
        grid = np.concatenate([np.pad(to_uint8(r), ((0, n - len(r)), (0, 0), (0, 0), (0, 0)), constant_values=255)
                               for r in rows])  # fmt: skip
        save_png(samples_dir / f"step_{step:06d}.png", image_grid(grid, nrow=n), scale=max(1, 128 // size))

    engine = Engine(
        CycleGANObjective(trainer, *sources), larger.order, out_dir,
        LoopSettings(steps=total, checkpoint_every=config.checkpoint_every, log_every=config.log_every,
                     name="CycleGAN"),
        ctx=ctx, run_config=run_cfg, resume_keys=RESUME_KEYS,
        callbacks=[Callback(save_grid, every=config.sample_every, at_end=True)], progress=progress,
    )  # fmt: skip
    if resume:
        engine.restore()
    write_json(out_dir / RECORD_FILE, _record(config, run_cfg, data, engine.start_step, False))
    final = engine.run(stop_at_step=stop_at_step)
    if final < total:
        write_json(out_dir / RECORD_FILE, _record(config, run_cfg, data, final, False))
        return out_dir
    save_tensors(out_dir / WEIGHTS_FILE, {**module_tensors(trainer.G_01, "G_01"), **module_tensors(trainer.G_10, "G_10")})
    write_json(out_dir / RECORD_FILE, _record(config, run_cfg, data, final, True))
    return out_dir


# --- using a trained translator ---------------------------------------------------------------------


class Translator:
    """A trained translator pair: :meth:`translate` maps uint8 images of one group to the other.

    Attributes: ``protected`` (the attribute whose groups it translates between), ``config``
    (:class:`CycleGANConfig`), ``size`` (image side), ``record`` (``translator.json``), ``source``.
    """

    def __init__(self, G_01: nn.Module, G_10: nn.Module, *, protected: str, config: CycleGANConfig, size: int,
                 device: torch.device, source: Path, record: dict | None = None):  # fmt: skip
        self.generators = {1: G_01.to(device).eval(), 0: G_10.to(device).eval()}  # by the group translated *to*
        self.protected, self.config, self.size, self.device = protected, config, size, device
        self.source, self.record = Path(source), dict(record or {})

    def translate(self, images: np.ndarray, to_group: int, *, batch_size: int = 64) -> np.ndarray:
        """uint8 N×S×S×3 images of group ``1 − to_group`` → their translations into group ``to_group``
        (uint8, same shape). Batched, eval mode, no gradients; each image is translated on its own
        (instance norm), so the batch size does not change the result."""
        if to_group not in (0, 1):
            raise FairlatentError(f"to_group must be 0 or 1, got {to_group!r}")
        images = np.asarray(images) if not isinstance(images, np.ndarray) else images
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (self.size, self.size, 3):
            raise FairlatentError(f"{self.source}: the translator takes uint8 N×{self.size}×{self.size}×3 images, got "
                                  f"{images.dtype} {tuple(images.shape)}")
        G = self.generators[to_group]
        out = np.empty(images.shape, np.uint8)
        with torch.inference_mode():
            for i in range(0, len(images), batch_size):
                out[i : i + batch_size] = to_uint8(G(to_tensor(images[i : i + batch_size], self.device)))
        return out

    def __repr__(self) -> str:
        return f"Translator({self.source}, protected={self.protected!r}, size={self.size})"


def load_translator(path, *, device: str | torch.device | None = None) -> Translator:
    """Open a finished translator run directory written by :func:`train_translator`."""
    path = Path(path)
    if not path.is_dir():
        raise FairlatentError(f"{path}: no such translator run directory")
    if not (path / RECORD_FILE).is_file():
        raise FairlatentError(f"{path}: not a fairlatent translator run (no {RECORD_FILE})")
    rec = check_object(read_json(path / RECORD_FILE), _RecordSchema, str(path / RECORD_FILE))
    if rec["format"] != RUN_FORMAT:
        raise FairlatentError(f"{path / RECORD_FILE}: not a translator record (format={rec['format']!r})")
    if not rec["done"] or not (path / WEIGHTS_FILE).is_file():
        raise FairlatentError(f"{path}: the translator run is not finished (step {rec['step']}); train it to the end first")
    config = validate_settings(CycleGANConfig, rec["config"], str(path / RECORD_FILE))
    dev = default_device(str(device) if device is not None else None)
    try:
        G_01 = ResnetTranslator(rec["size"], config.width, config.n_blocks)
        G_10 = ResnetTranslator(rec["size"], config.width, config.n_blocks)
    except ValueError as exc:
        raise FairlatentError(f"{path / RECORD_FILE}: {exc}") from None
    tensors = load_tensors(path / WEIGHTS_FILE)
    load_module_state(G_01, tensors, "G_01", source=path / WEIGHTS_FILE)
    load_module_state(G_10, tensors, "G_10", source=path / WEIGHTS_FILE)
    return Translator(G_01, G_10, protected=rec["protected"], config=config, size=rec["size"], device=dev,
                      source=path, record=rec)  # fmt: skip


def translate_dataset(translator: Translator, data, split: str = "train", *, batch_size: int = 64
                      ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Every image of ``split`` translated to the other group of ``translator.protected``.

    Returns ``(images, target_group)``: uint8 N×S×S×3 translations in the order of
    ``data.split_indices(split)``, and the int64 group each was translated into (1 − its own group).
    Memory: the output array plus one batch (images are read from the memory map batch by batch).
    """
    ds = data if isinstance(data, Dataset) else load_dataset(data)
    ds.check_attributes([translator.protected])
    size = _check_images(ds)
    if size != translator.size:
        raise FairlatentError(f"{ds.path}/images.npy: images are {size} px but the translator {translator.source} "
                              f"was trained on {translator.size}-px images")
    idx = ds.split_indices(split)
    target = 1 - ds.labels(translator.protected, idx)
    out = np.empty((len(idx), size, size, 3), np.uint8)
    for lo in range(0, len(idx), batch_size):
        chunk = np.asarray(ds.images[idx[lo : lo + batch_size]])
        t = target[lo : lo + batch_size]
        for g in (0, 1):
            m = t == g
            if m.any():
                out[lo : lo + batch_size][m] = translator.translate(chunk[m], g, batch_size=batch_size)
    return out, target
