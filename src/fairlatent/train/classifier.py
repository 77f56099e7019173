"""Training attribute classifiers: BCE-with-logits, Adam, horizontal flips, best epoch by validation AP.

The loop is the shared training engine (:mod:`fairlatent.train.engine`); what is specific to classifiers
is :class:`ClassifierObjective`: each epoch visits a permutation of the training rows of all training sets
concatenated (real + synthetic), gathers each batch straight from the memory-mapped images, flips a random
half horizontally, and takes one Adam step on the (optionally per-sample weighted) BCE loss. After each
epoch it scores the validation split and keeps the weights of the epoch with the best mean average
precision over the attributes; the engine then saves a checkpoint, so an interrupted run resumes where it
stopped and (on CPU) ends with bitwise the same weights. Launched on several processes (torchrun, or
``fairlatent train-classifier --nproc N``) each rank trains on its slice of every batch, with batch-norm
statistics and the loss taken over the global batch: the same weights as one process (to float rounding).

Every random choice comes from ``config.seed`` through named sub-streams (initialisation, shuffling,
flips per epoch), so the same seed gives the same weights on CPU, and resuming needs no saved RNG state.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from sklearn.metrics import average_precision_score

from fairlatent.data.dataset import Dataset, load_dataset
from fairlatent.errors import FairlatentError
from fairlatent.models.classifier import (
    FORMAT_NAME,
    FORMAT_VERSION,
    AttributeClassifier,
)
from fairlatent.models.domain_heads import check_domain_head
from fairlatent.models.weights import save_tensors
from fairlatent.train.checkpoint import has_checkpoint
from fairlatent.train.distributed import DistContext, all_reduce_sum, barrier, convert_batchnorm, init_distributed, wrap
from fairlatent.train.engine import Batch, Callback, DataOrder, Engine, LoopSettings, cache_dump, identity_keys
from fairlatent.train.memory_format import channels_last_trainable, faulty_onednn_convolutions
from fairlatent.models.thresholds import calibrated_threshold, f1_best_threshold
from fairlatent.utils.device import DeviceName, autocast
from fairlatent.utils.settings import StrictSettings
from fairlatent.utils.images import to_tensor
from fairlatent.utils.io import check_replaceable, claim_output_directory, read_json, write_json
from fairlatent.utils.seed import rng, torch_generator

CHECKPOINT_NAME = "checkpoint"  # a directory (see fairlatent.train.checkpoint)


# Settings added after classifiers were cached, at the value that reproduces the earlier behaviour: left out
# of fingerprints and stage keys at that value (fairlatent.train.engine.cache_dump).
CACHE_LEGACY = {"channels_last": True, "dp_batchnorm": "global", "noise_std": 0.0}


class ClassifierConfig(StrictSettings):
    """Hyper-parameters of :func:`train_classifier`.

    The defaults train a ~0.2 M-parameter network on ~14k 32-px images for a few epochs in a couple of
    minutes on two CPU cores; raise ``width``/``depth`` for bigger or harder data.
    """

    model_config = ConfigDict(extra="forbid")

    width: int = Field(16, ge=1, description="channels of the first residual stage")
    depth: int = Field(1, ge=1, description="residual blocks per stage")
    stages: int = Field(3, ge=1, description="residual stages (each after the first halves the resolution)")
    epochs: int = Field(5, ge=1)
    batch_size: int = Field(64, ge=1)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    flip: bool = Field(True, description="random horizontal flips of half of each batch")
    noise_std: float = Field(
        0.0, ge=0.0, le=64.0,
        description="Gaussian pixel-noise augmentation: each training image gets noise of a standard deviation "
                    "drawn uniformly from [0, noise_std] (pixel units of 0–255); 0 = off. For labelers of G(z): "
                    "GAN images are noisier than the real ones a labeler trains on, and a labeler that fires "
                    "on noise mislabels them (benchmarks/probe_labeler_noise.py).")
    seed: int = Field(0, ge=0, description="NumPy seed sequences refuse negative seeds")
    device: DeviceName = Field(None, description="'cpu', 'cuda', …; None: CUDA when available",
                               json_schema_extra={"resume_key": False})
    eval_batch_size: int = Field(512, ge=1, json_schema_extra={"resume_key": False})
    dp_batchnorm: Literal["global", "local"] = Field(
        "global", description="under data parallelism: batch-norm statistics over the global batch (exact: the "
                              "weights of one process) or per rank (no extra communication; see "
                              "benchmarks/bench_data_parallel.py)")
    channels_last: bool = Field(
        True, description="NHWC memory format in training (faster convolutions on CPU; see "
                          "fairlatent.train.distributed.GlobalBatchNorm for its effect on batch-norm gradients); "
                          "on CPU a model narrower than 8 channels trains in NCHW regardless "
                          "(fairlatent.train.memory_format)",
        json_schema_extra={"resume_key": False})

    def cache_key(self) -> dict[str, Any]:
        """The settings that identify a training for stage caching: every field but those still at their
        :data:`CACHE_LEGACY` value (so adding a setting does not retrain every cached classifier)."""
        return cache_dump(self, CACHE_LEGACY)


# ----------------------------------------------------------------------------------------------------------
# Reweighting baseline


def reweighting_weights(target, protected) -> np.ndarray:
    """Per-sample weights that make the target and the protected attribute independent.

    ``w(t, g) = N_t / (2·N_{t,g})`` where ``N_t`` counts samples with target ``t`` and ``N_{t,g}`` those
    with target ``t`` and protected value ``g`` (the reweighting baseline of Ramaswamy et al.). The
    weighted mass of cell ``(t, g)`` is then ``N_{t,g}·w(t, g) = N_t / 2``: each protected group holds half
    of every target class, so under the weights ``P(t, g) = P(t)·½ = P(t)·P(g)``, while the total mass
    (``N``) and the class balance ``P(t)`` are unchanged.

    Parameters
    ----------
    target, protected : arrays of 0/1, shape (N,)

    Returns
    -------
    np.ndarray of float64, shape (N,)

    Raises
    ------
    FairlatentError
        If a value is not 0/1, or a (target, protected) cell is empty while its target class is not: no
        weights can then balance the groups.
    """
    t = np.asarray(target)
    g = np.asarray(protected)
    if t.shape != g.shape or t.ndim != 1:
        raise FairlatentError(f"target and protected must be 1-D of equal length, got {t.shape} and {g.shape}")
    for name, a in (("target", t), ("protected", g)):
        bad = ~np.isin(a, [0, 1])
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise FairlatentError(f"reweighting: {name} row {i}: value {a[i].item()!r} is not 0 or 1")
    w = np.zeros(len(t), dtype=np.float64)
    for tv in (0, 1):
        n_t = int((t == tv).sum())
        for gv in (0, 1):
            cell = (t == tv) & (g == gv)
            n_tg = int(cell.sum())
            if n_tg == 0 and n_t > 0:
                raise FairlatentError(
                    f"reweighting: no sample has target={tv} and protected={gv} (while {n_t} have target={tv}); "
                    "the groups cannot be balanced"
                )
            if n_tg:
                w[cell] = n_t / (2.0 * n_tg)
    return w


# ----------------------------------------------------------------------------------------------------------
# Training data: the train-split rows of several data sets, concatenated


@dataclass
class TrainingRows:
    """The training rows of several data sets as one indexable collection.

    ``source[i]``/``row[i]`` locate global row ``i`` (data set number and row in its images), ``labels`` is
    N×A float32 (0/1, or soft labels from overrides) and ``weights`` N float32 (all ones without weights).
    """

    images: list[np.ndarray]
    source: np.ndarray
    row: np.ndarray
    labels: np.ndarray
    weights: np.ndarray
    domains: np.ndarray | None = None  # int64 group index per row (domain-independent heads), or None

    def __len__(self) -> int:
        return len(self.row)

    def gather(self, index: np.ndarray, flip: np.ndarray | None = None) -> np.ndarray:
        """uint8 images of global rows ``index`` (in that order), with rows where ``flip`` is true mirrored."""
        first = self.images[0]
        out = np.empty((len(index),) + first.shape[1:], dtype=np.uint8)
        src, rows = self.source[index], self.row[index]
        if len(self.images) == 1:
            out[:] = first[rows]
        else:
            for s in np.unique(src):
                m = src == s
                out[m] = self.images[s][rows[m]]
        if flip is not None and flip.any():
            out[flip] = out[flip, :, ::-1]
        return out


def _as_dataset(d: str | os.PathLike | Dataset) -> Dataset:
    return d if isinstance(d, Dataset) else load_dataset(d)


def _override_labels(override: pd.DataFrame, data: Dataset, idx: np.ndarray, attributes: list[str]) -> np.ndarray:
    where = f"label override for {data.path}"
    missing = [a for a in attributes if a not in override.columns]
    if missing:
        raise FairlatentError(f"{where}: no column {', '.join(map(repr, missing))}; columns are {', '.join(map(str, override.columns))}")
    if "id" in override.columns:
        by_id = override.set_index(override["id"].astype(str))
        if by_id.index.has_duplicates:
            raise FairlatentError(f"{where}: duplicate id {by_id.index[by_id.index.duplicated()][0]!r}")
        ids = data.ids[idx]
        absent = ~pd.Index(ids).isin(by_id.index)
        if absent.any():
            raise FairlatentError(f"{where}: no row for id {ids[np.flatnonzero(absent)[0]]!r}")
        values = by_id.loc[ids, attributes]
    else:
        if len(override) != len(idx):
            raise FairlatentError(f"{where}: {len(override)} rows for {len(idx)} training rows (and no 'id' column)")
        values = override[attributes]
    y = values.to_numpy(dtype=np.float64)
    bad = ~(np.isfinite(y) & (y >= 0) & (y <= 1))
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise FairlatentError(f"{where}: row {r}, column {attributes[c]!r}: value {float(y[r, c])} is not in [0, 1]")
    return y.astype(np.float32)


def collect_training_rows(
    datasets: Sequence[Dataset],
    attributes: list[str],
    split: str,
    sample_weights: Sequence[np.ndarray | None] | None,
    label_overrides: Sequence[pd.DataFrame | None] | None,
) -> TrainingRows:
    """Concatenate the ``split`` rows of every data set, with their labels and weights (validated)."""
    for name, seq in (("sample_weights", sample_weights), ("label_overrides", label_overrides)):
        if seq is not None and len(seq) != len(datasets):
            raise FairlatentError(f"{name}: {len(seq)} entries for {len(datasets)} training data sets")
    size = datasets[0].images.shape[1:]
    sources, rows, labels, weights = [], [], [], []
    for k, data in enumerate(datasets):
        if data.images.shape[1:] != size:
            raise FairlatentError(
                f"{data.path}: images are {data.images.shape[1]}×{data.images.shape[2]} but "
                f"{datasets[0].path} has {size[0]}×{size[1]}; all training sets need one image size"
            )
        idx = data.split_indices(split)
        override = label_overrides[k] if label_overrides is not None else None
        if override is not None:
            y = _override_labels(override, data, idx, attributes)
        else:
            data.check_attributes(attributes)
            y = data.table[attributes].to_numpy(dtype=np.float32)[idx]
        w = np.ones(len(idx), dtype=np.float64)
        if sample_weights is not None and sample_weights[k] is not None:
            w = np.asarray(sample_weights[k], dtype=np.float64)
            if w.shape != (len(idx),):
                raise FairlatentError(
                    f"sample_weights[{k}]: shape {w.shape} but {data.path} has {len(idx)} rows in split {split!r}"
                )
            bad = ~(np.isfinite(w) & (w >= 0))
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise FairlatentError(f"sample_weights[{k}] (for {data.path}): row {i}: weight {float(w[i])} is not finite and ≥ 0")
        sources.append(np.full(len(idx), k, dtype=np.int64))
        rows.append(idx)
        labels.append(y)
        weights.append(w)
    w_all = np.concatenate(weights)
    if not (w_all > 0).any():
        raise FairlatentError("sample_weights: every weight is zero; nothing to train on")
    return TrainingRows(
        images=[d.images for d in datasets], source=np.concatenate(sources), row=np.concatenate(rows),
        labels=np.concatenate(labels).astype(np.float32), weights=w_all.astype(np.float32),
    )


# ----------------------------------------------------------------------------------------------------------
# One step, one evaluation


def batch_tensors(
    images: np.ndarray, labels: np.ndarray, weights: np.ndarray | None, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """uint8 images and numpy labels/weights → model-ready tensors on ``device``."""
    x = to_tensor(images, device)
    y = torch.from_numpy(labels).to(device)
    w = None if weights is None else torch.from_numpy(weights).to(device)
    return x, y, w


def weighted_bce(model, x: torch.Tensor, y: torch.Tensor, w: torch.Tensor | None, reduction: str = "mean",
                 domain: torch.Tensor | None = None) -> torch.Tensor:
    """``w_i · mean_a BCE(logit_ia, y_ia)`` over the batch, averaged (``"mean"``) or summed (``"sum"``).

    The batch mean of per-sample losses, each the mean over attributes, scaled by the sample's weight (as
    ``BCEWithLogitsLoss(weight=w)`` does), so a zero-weight sample contributes nothing. With ``domain`` (a
    group index per sample) each sample's logits come from its own group's head; a discriminative head
    (:class:`AttributeClassifier` ``domain_head``) returns cell logits N×2×D×A instead, and the per-attribute
    loss is the cross-entropy of the sample's cell, ``−[y log P(1, d_i) + (1 − y) log P(0, d_i)]`` under a
    softmax over the 2·D cells (y may be soft).
    """
    with autocast(x.device):
        logits = model(x) if domain is None else model(x, domain)
    if logits.dim() == 4:  # discriminative head: cell logits [n, value, group, attribute]
        logp = F.log_softmax(logits.float().flatten(1, 2), dim=1).view_as(logits)
        own = logp[torch.arange(len(x), device=logp.device), :, domain.long()]  # N×2×A: P(0, d_i), P(1, d_i)
        per_sample = -(y * own[:, 1] + (1 - y) * own[:, 0]).mean(dim=1)
    else:
        per_sample = F.binary_cross_entropy_with_logits(logits.float(), y, reduction="none").mean(dim=1)
    if w is not None:
        per_sample = per_sample * w
    return per_sample.sum() if reduction == "sum" else per_sample.mean()


def train_step(
    model: AttributeClassifier,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    w: torch.Tensor | None = None,
    domain: torch.Tensor | None = None,
) -> torch.Tensor:
    """One Adam step on the batch's :func:`weighted_bce` (mean); returns the (detached) loss."""
    loss = weighted_bce(model, x, y, w, domain=domain)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach()


@torch.inference_mode()
def predict_scores(model: AttributeClassifier, images: np.ndarray, index: np.ndarray, device, batch_size: int) -> np.ndarray:
    """Sigmoid scores float32 len(index)×A of ``images[index]``, in eval mode and in batches.

    In float32 on every device, as :class:`~fairlatent.models.classifier.ClassifierHandle` scores: the
    thresholds and validation metrics saved with a model are then the ones its handle reproduces (under CUDA's
    bf16 autocast they were not: a test's saved AP 0.9583 read 0.9557 through the handle on an H200).
    """
    was_training = model.training
    model.eval()
    out = []
    for start in range(0, len(index), batch_size):
        x = to_tensor(np.asarray(images[index[start : start + batch_size]]), device)
        out.append(torch.sigmoid(model(x).float()).cpu())
    model.train(was_training)
    return torch.cat(out).numpy()


def average_precisions(y: np.ndarray, scores: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
    """Per-attribute ``average_precision_score`` (optionally sample-weighted)."""
    return np.array(
        [average_precision_score(y[:, a], scores[:, a], sample_weight=weights) for a in range(y.shape[1])]
    )


def validation_metrics(y: np.ndarray, scores: np.ndarray, attributes: list[str], weights: np.ndarray | None):
    """Thresholds and metrics per attribute on validation (AP weighted like epoch selection; the rest unweighted)."""
    thresholds, metrics = {}, {}
    ap = average_precisions(y, scores, weights)
    for a, name in enumerate(attributes):
        yt, s = y[:, a].astype(np.int64), scores[:, a].astype(np.float64)
        cal, f1t = calibrated_threshold(yt, s), f1_best_threshold(yt, s)
        thresholds[name] = {"calibrated": cal, "f1": f1t}
        pred_f1 = s > f1t
        tp = int((pred_f1 & (yt == 1)).sum())
        metrics[name] = {
            "ap": float(ap[a]),
            "accuracy_calibrated": float(((s > cal) == (yt == 1)).mean()),
            "accuracy_f1": float((pred_f1 == (yt == 1)).mean()),
            "accuracy_0.5": float(((s > 0.5) == (yt == 1)).mean()),
            "f1": float(2 * tp / (pred_f1.sum() + yt.sum())) if yt.sum() else 0.0,
            "positives": int(yt.sum()),
            "n": int(len(yt)),
        }
    return thresholds, metrics


# The objective the training engine runs (fairlatent.train.engine): one Adam step per batch, validation at
# every epoch end. Its checkpoint holds the model ("model."), the best epoch's weights ("best."), Adam's state
# ("optim.") and, in JSON, the epoch, the history and the best epoch.


class ClassifierObjective:
    """BCE training of an :class:`AttributeClassifier` with best-epoch selection on validation AP.

    Per-sample flips come from ``rng(seed, "classifier-flip", epoch)`` indexed by the sample's position in
    the epoch's order, so they do not depend on the number of processes. With one process the loss is
    ``mean_i w_i · mean_a BCE`` (:func:`train_step`); with W ranks, rank r computes
    ``W · Σ_{i ∈ r} w_i · mean_a BCE / B`` over its slice of the global batch of B, which DDP's gradient
    average turns into the gradient of the global batch mean, also for a short last batch.
    """

    autocast = True  # bf16 on CUDA: a convnet trained with BCE-with-logits (the loss itself is taken in float32)

    def __init__(self, model: AttributeClassifier, optimizer: torch.optim.Optimizer, data: TrainingRows,
                 config: ClassifierConfig, ctx: DistContext, fingerprint: str, *, channels_last: bool):  # fmt: skip
        self.model, self.optimizer, self.data, self.config, self.ctx = model, optimizer, data, config, ctx
        # the memory format training runs in: config.channels_last unless the model cannot be trained in it here
        self.channels_last = channels_last
        self.fingerprint = fingerprint  # identifies the run in the checkpoint (data, attributes, config)
        self.train_model = wrap(model, ctx)
        self.history: list[dict[str, Any]] = []
        self.best_epoch, self.best_ap = 0, -np.inf
        self.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        self.loss_sum = torch.zeros((), device=ctx.device)
        self._flip_epoch, self._flips = -1, None

    def modules(self) -> dict[str, torch.nn.Module]:
        return {"model": self.model}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"optim": self.optimizer}

    def extra_tensors(self) -> dict[str, torch.Tensor]:
        return {f"best.{k}": v for k, v in self.best_state.items()}

    def load_extra_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        self.best_state = {k[5:]: v.to(self.ctx.device) for k, v in tensors.items() if k.startswith("best.")}

    def extra_state(self) -> dict[str, Any]:
        return {"fingerprint": self.fingerprint, "epoch": len(self.history), "history": self.history, "best_epoch": self.best_epoch,
                "best_ap": self.best_ap}  # fmt: skip

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.history, self.best_epoch, self.best_ap = state["history"], state["best_epoch"], state["best_ap"]

    def _flip(self, epoch: int, positions: np.ndarray) -> np.ndarray | None:
        if not self.config.flip:
            return None
        if epoch != self._flip_epoch:
            self._flip_epoch, self._flips = epoch, rng(self.config.seed, "classifier-flip", epoch).random(len(self.data)) < 0.5
        return self._flips[positions]

    def _add_noise(self, x: torch.Tensor, step: int, batch: Batch) -> torch.Tensor:
        """``x`` plus Gaussian noise of a per-image std ~ U(0, noise_std) (of 255), from a stream of (seed,
        step) drawn for the whole global batch and sliced to this rank's part, so N processes add what one
        process adds; images stay in [-1, 1]."""
        gen = torch_generator(self.config.seed, "classifier-noise", step)
        n, shape = batch.global_size, tuple(x.shape[1:])
        sigma = torch.rand(n, generator=gen) * (self.config.noise_std / 127.5)
        noise = torch.randn((n, *shape), generator=gen) * sigma.view(n, 1, 1, 1)
        x = (x + noise[batch.part].to(x.device)).clamp_(-1.0, 1.0)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def train_step(self, step: int, batches: list[Batch]) -> dict[str, torch.Tensor]:
        (batch,) = batches
        self.model.train()
        images = self.data.gather(batch.rows, self._flip(batch.epoch, batch.positions))
        x, y, w = batch_tensors(images, self.data.labels[batch.rows], self.data.weights[batch.rows], self.ctx.device)
        if self.config.noise_std > 0:
            x = self._add_noise(x, step, batch)
        if not self.channels_last:
            x = x.contiguous()
        d = None if self.data.domains is None else torch.from_numpy(self.data.domains[batch.rows]).to(self.ctx.device)
        if not self.ctx.distributed:
            loss = train_step(self.model, self.optimizer, x, y, w, domain=d)
            self.loss_sum += loss * len(batch.rows)
            return {"loss": loss}
        share = weighted_bce(self.train_model, x, y, w, reduction="sum", domain=d) / batch.global_size
        self.optimizer.zero_grad(set_to_none=True)
        (share * self.ctx.world).backward()  # DDP averages over ranks: the global batch mean's gradient
        self.optimizer.step()
        share = share.detach()
        self.loss_sum += share * batch.global_size
        return {"loss": share}

    def end_epoch(self, val_images, val_idx, val_y, val_weights, attributes: list[str], progress: bool) -> None:
        """Validation after an epoch: history, best weights (rank 0 scores; every rank sums the loss)."""
        n = len(self.data)
        loss = float(all_reduce_sum(self.loss_sum, self.ctx)) / n
        self.loss_sum = torch.zeros((), device=self.ctx.device)
        if not self.ctx.is_main:
            self.history.append({"epoch": len(self.history) + 1})
            return
        scores = predict_scores(self.model, val_images, val_idx, self.ctx.device, self.config.eval_batch_size)
        ap = average_precisions(val_y, scores, val_weights)
        epoch = len(self.history) + 1
        self.history.append(dict(epoch=epoch, train_loss=loss, val_mean_ap=float(ap.mean()),
                                 val_ap={a: float(v) for a, v in zip(attributes, ap)}))  # fmt: skip
        if ap.mean() > self.best_ap:
            self.best_ap, self.best_epoch = float(ap.mean()), epoch
            self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        if progress:
            from rich.console import Console

            Console(stderr=True).print(f"epoch {epoch}: train loss {loss:.4f}, val mean AP {ap.mean():.4f}")


def _fingerprint(payload: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _array_digest(a) -> str | None:
    if a is None:
        return None
    if isinstance(a, pd.DataFrame):
        return hashlib.sha256(pd.util.hash_pandas_object(a, index=True).to_numpy().tobytes()).hexdigest()[:16]
    return hashlib.sha256(np.ascontiguousarray(np.asarray(a, dtype=np.float64)).tobytes()).hexdigest()[:16]


# ----------------------------------------------------------------------------------------------------------
# The training job


def _refuse_one_class(data: TrainingRows, attributes: list[str], datasets: Sequence[Dataset], split: str) -> None:
    """Refuse to train an attribute whose training rows are all of one class.

    Why: the loss is then minimised by a constant, training "succeeds" without a word, and the model's
    scores say nothing about the attribute; every metric computed from it later is meaningless. Soft labels
    count by the side of 0.5 they fall on. Sample weights are not consulted: zero weights on one class are
    a deliberate choice of the caller (and tested as such), a one-class split is a data problem.
    """
    for a, name in enumerate(attributes):
        hard = data.labels[:, a] >= 0.5
        if hard.all() or not hard.any():
            where = ", ".join(str(d.path) for d in datasets)
            raise FairlatentError(
                f"{where}: split {split!r} has only {'positives' if hard.all() else 'negatives'} for {name!r} "
                f"({hard.size} rows): one class, nothing to learn; a classifier needs both classes")


def _domain_indices(datasets: Sequence[Dataset], attribute: str, split: str) -> np.ndarray:
    """The 0/1 group of every training row (concatenated like :func:`collect_training_rows`; data sets hold
    only 0/1 attribute values), refusing a group without rows: its head would never train."""
    out = []
    for data in datasets:
        data.check_attributes([attribute])
        out.append(data.labels(attribute, data.split_indices(split)).astype(np.int64))
    domains = np.concatenate(out)
    for d in (0, 1):
        if not (domains == d).any():
            raise FairlatentError(f"domain attribute {attribute!r}: no training row has {attribute} = {d} in split "
                                  f"{split!r}; the head of that group would never train")
    return domains


def train_classifier(
    train_sets: Sequence[str | os.PathLike | Dataset],
    attributes: Sequence[str],
    out_dir: str | os.PathLike,
    config: ClassifierConfig | None = None,
    *,
    val_set: str | os.PathLike | Dataset | None = None,
    train_split: str = "train",
    val_split: str = "val",
    sample_weights: Sequence[np.ndarray | None] | None = None,
    val_weights: np.ndarray | None = None,
    label_overrides: Sequence[pd.DataFrame | None] | None = None,
    domain_attribute: str | None = None,
    domain_head: str = "independent",
    progress: bool = True,
    overwrite: bool = False,
    stop_after_epoch: int | None = None,
) -> Path:
    """Train one multi-attribute classifier and write ``config.json`` + ``model.safetensors`` to ``out_dir``.

    Parameters
    ----------
    train_sets : data set paths or loaded :class:`Dataset` objects
        Their ``train_split`` rows are concatenated (e.g. real data plus synthetic sets, whose rows are all
        in ``train``).
    attributes : names of the attributes to predict (one logit each).
    out_dir : directory for the model; while training it holds ``checkpoint/`` (replaced after
        every epoch), and rerunning the same call resumes from it. A completed directory is returned as is
        when the call is identical, and is an error otherwise unless ``overwrite=True``.
    config : :class:`ClassifierConfig`
    val_set : data set whose ``val_split`` rows choose the best epoch and the thresholds (default: the
        first training set).
    sample_weights : one array per training set (or None for all ones), aligned with its ``train_split``
        rows; multiplies each sample's loss (e.g. :func:`reweighting_weights`).
    val_weights : per-validation-row weights used as ``sample_weight`` of ``average_precision_score`` when
        choosing the best epoch (e.g. so both protected groups count equally within each class).
    label_overrides : one DataFrame (or None) per training set with the attribute columns, matched to rows
        by an ``id`` column when present, else aligned with the ``train_split`` rows; values in [0, 1]
        (soft labels allowed). Use it to label synthetic images with another classifier's predictions.
    domain_attribute : a 0/1 column of every training set (the protected attribute): train one head per
        group, each image through its own group's head, and score with the mean of the heads
        (domain-independent training, Wang et al. 2020; :class:`AttributeClassifier`'s ``domains``).
    domain_head : with ``domain_attribute``, ``"independent"`` (those heads) or ``"discriminative"``: one softmax
        over the (value, group) cells, trained on each image's cell and scored with the group summed out
        (domain-discriminative training, Wang et al. 2020; :class:`AttributeClassifier`'s ``domain_head``).
    progress : show a rich progress bar.
    overwrite : discard a finished model or a checkpoint of a different run in ``out_dir``.
    stop_after_epoch : stop (leaving the checkpoint) after this many epochs in total; used to test resuming.

    Returns
    -------
    Path of ``out_dir``.
    """
    config = config or ClassifierConfig()
    attributes = list(attributes)
    if not attributes:
        raise FairlatentError("train_classifier: no attributes given")
    dup = {a for a in attributes if attributes.count(a) > 1}
    if dup:
        raise FairlatentError(f"train_classifier: attribute {sorted(dup)[0]!r} given twice")
    if not train_sets:
        raise FairlatentError("train_classifier: no training data sets given")
    datasets = [_as_dataset(d) for d in train_sets]
    data = collect_training_rows(datasets, attributes, train_split, sample_weights, label_overrides)
    _refuse_one_class(data, attributes, datasets, train_split)
    check_domain_head(domain_head, "train_classifier")  # before anything is written
    if domain_head != "independent" and domain_attribute is None:
        raise FairlatentError(f"train_classifier: domain_head {domain_head!r} needs a domain_attribute (the groups "
                              "whose cells it learns)")
    if domain_attribute is not None:
        data.domains = _domain_indices(datasets, domain_attribute, train_split)
    image_size = int(datasets[0].images.shape[1])
    if datasets[0].images.shape[2] != image_size:
        raise FairlatentError(f"{datasets[0].path}: images must be square, got {datasets[0].images.shape[1:3]}")

    val_data = datasets[0] if val_set is None else _as_dataset(val_set)
    if val_data.images.shape[1:] != datasets[0].images.shape[1:]:
        raise FairlatentError(f"{val_data.path}: validation images are {val_data.images.shape[1:3]}, training {datasets[0].images.shape[1:3]}")
    val_data.check_attributes(attributes)
    val_idx = val_data.split_indices(val_split)
    val_y = val_data.table[attributes].to_numpy(dtype=np.int64)[val_idx]
    for a, name in enumerate(attributes):
        if val_y[:, a].min() == val_y[:, a].max():
            raise FairlatentError(
                f"{val_data.path}: split {val_split!r} has only {'positives' if val_y[0, a] else 'negatives'} "
                f"for {name!r}; AP and thresholds need both classes"
            )
    if val_weights is not None:
        val_weights = np.asarray(val_weights, dtype=np.float64)
        if val_weights.shape != (len(val_idx),) or not (np.isfinite(val_weights) & (val_weights >= 0)).all():
            raise FairlatentError(
                f"val_weights: need {len(val_idx)} finite non-negative weights (rows of split {val_split!r} of "
                f"{val_data.path}), got shape {val_weights.shape}"
            )

    out_dir = Path(out_dir)
    fingerprint = _fingerprint(dict(
        config=cache_dump(config, CACHE_LEGACY, identity_keys(ClassifierConfig)), attributes=attributes,
        train_sets=[(str(Path(d.path).resolve()), len(d)) for d in datasets],
        val=(str(Path(val_data.path).resolve()), val_split),
        train_split=train_split, sample_weights=[_array_digest(w) for w in (sample_weights or [])],
        val_weights=_array_digest(val_weights), label_overrides=[_array_digest(o) for o in (label_overrides or [])],
        **({"domain_attribute": domain_attribute} if domain_attribute is not None else {}),
        **({"domain_head": domain_head} if domain_head != "independent" else {}),
    ))  # fmt: skip
    ctx = init_distributed(config.device)
    ckpt_path, config_path = out_dir / CHECKPOINT_NAME, out_dir / "config.json"
    # a folder of the user's is refused untouched, by every rank alike; rank 0 marks it
    claim_output_directory(out_dir, record_format=FORMAT_NAME, write=ctx.is_main)
    if config_path.is_file() and not overwrite:
        done = read_json(config_path)
        if isinstance(done, dict) and done.get("fingerprint") == fingerprint and (out_dir / "model.safetensors").is_file():
            return out_dir
        raise FairlatentError(f"{out_dir} already holds a different trained classifier; pass --overwrite (overwrite=True in Python) or choose another directory")
    if ctx.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        if overwrite:
            check_replaceable(ckpt_path, True)  # delete only what fairlatent wrote
            record = read_json(config_path) if config_path.is_file() else None
            if config_path.is_file() and (not isinstance(record, dict) or record.get("format") != FORMAT_NAME):
                raise FairlatentError(f"{config_path} is not a fairlatent classifier record; refusing to replace "
                                      "it even with overwrite: choose another directory")
            config_path.unlink(missing_ok=True)
            shutil.rmtree(ckpt_path, ignore_errors=True)
    barrier(ctx)
    saved_state = read_json(ckpt_path / "state.json") if has_checkpoint(ckpt_path) else None
    if saved_state is not None and (not isinstance(saved_state, dict) or saved_state.get("fingerprint") != fingerprint):
        raise FairlatentError(
            f"{ckpt_path}: checkpoint of a different training run (other data, attributes or config); "
            "pass --overwrite (overwrite=True in Python) or choose another directory"
        )

    with torch.random.fork_rng(devices=[]):  # initialise from the config seed without touching global RNG
        torch.manual_seed(int(rng(config.seed, "classifier-init").integers(0, 2**62)))
        model = AttributeClassifier(len(attributes), image_size, config.width, config.depth, config.stages,
                                    domains=1 if domain_attribute is None else 2, domain_head=domain_head)
    if ctx.distributed and config.dp_batchnorm == "global":
        convert_batchnorm(model)  # statistics over the global batch (fairlatent.train.distributed)
    # channels_last: images arrive as NHWC, and convolutions in that layout are faster (bench_classifier.py);
    # a model too narrow for oneDNN's channels_last kernels on CPU trains in NCHW (fairlatent.train.memory_format)
    channels_last = config.channels_last and channels_last_trainable(model, ctx.device)
    if config.channels_last and not channels_last and ctx.is_main and progress:
        print(f"classifier: training in NCHW, not channels_last: on CPU oneDNN's channels_last kernel for "
              f"{', '.join(faulty_onednn_convolutions(model))} (1x1, strided, under 8 input channels) corrupts "
              f"memory (fairlatent.train.memory_format)", flush=True)
    model.to(ctx.device, memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    objective = ClassifierObjective(model, optimizer, data, config, ctx, fingerprint, channels_last=channels_last)

    order = DataOrder(len(data), config.batch_size, seed=config.seed, stream="classifier-shuffle", drop_last=False, ctx=ctx)
    per_epoch = order.per_epoch
    engine = Engine(
        objective, order, out_dir,
        LoopSettings(steps=config.epochs * per_epoch, checkpoint_every=config.epochs * per_epoch + 1,
                     log_every=max(1, per_epoch // 10), name="classifier", checkpoint_at_epoch_end=True),
        ctx=ctx, run_config={"fingerprint": fingerprint}, progress=progress,
        callbacks=[Callback(lambda step: objective.end_epoch(val_data.images, val_idx, val_y, val_weights, attributes,
                                                             progress), at_epoch_end=True)],
    )  # fmt: skip
    engine.restore()
    t0 = time.perf_counter()
    stop = None if stop_after_epoch is None else stop_after_epoch * per_epoch
    final = engine.run(stop_at_step=stop)
    if final < engine.loop.steps or not ctx.is_main:
        barrier(ctx)  # every rank returns once rank 0 has written the finished model
        return out_dir

    # Final artefacts: best-epoch weights, thresholds and metrics on validation.
    best_state = objective.best_state
    model.load_state_dict(best_state)
    scores = predict_scores(model, val_data.images, val_idx, ctx.device, config.eval_batch_size)
    thresholds, metrics = validation_metrics(val_y, scores, attributes, val_weights)
    save_tensors(out_dir / "model.safetensors", best_state)
    write_json(config_path, dict(
        format=FORMAT_NAME, version=FORMAT_VERSION, attributes=attributes, image_size=image_size,
        arch=model.arch(), thresholds=thresholds, val_metrics=metrics, best_epoch=objective.best_epoch,
        history=objective.history, train_config=config.model_dump(), fingerprint=fingerprint,
        train_sets=[str(d.path) for d in datasets], train_rows=int(len(data)), train_split=train_split,
        val_set=str(val_data.path), val_split=val_split, val_weighted=val_weights is not None,
        sample_weighted=sample_weights is not None, domain_attribute=domain_attribute,
        **({"domain_head": domain_head} if domain_attribute is not None else {}), world_size=ctx.world,
        train_seconds_last_session=time.perf_counter() - t0,
    ))  # fmt: skip
    shutil.rmtree(ckpt_path, ignore_errors=True)
    barrier(ctx)
    return out_dir
