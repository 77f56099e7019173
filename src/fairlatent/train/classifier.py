"""Training attribute classifiers: BCE-with-logits, Adam, horizontal flips, best epoch by validation AP.

The loop is deliberately plain (no framework, no DataLoader): each epoch draws a permutation of the
training rows of all training sets concatenated (real + synthetic), gathers each batch straight from the
memory-mapped images, flips a random half horizontally, and takes one Adam step on the (optionally
per-sample weighted) BCE loss. After each epoch it scores the validation split and keeps the weights of
the epoch with the best mean average precision over the attributes, then saves a checkpoint, so an
interrupted run resumes where it stopped and (on CPU) ends with bitwise the same weights.

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
from typing import Any, Sequence

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
from fairlatent.train.checkpoint import (
    load_checkpoint,
    load_module_state,
    load_optimizer_state,
    module_tensors,
    optimizer_tensors,
    has_checkpoint,
    save_checkpoint,
)
from fairlatent.models.thresholds import calibrated_threshold, f1_best_threshold
from fairlatent.utils.device import autocast, default_device
from fairlatent.utils.images import to_tensor
from fairlatent.utils.io import atomic_file, write_json
from fairlatent.utils.seed import rng

CHECKPOINT_NAME = "checkpoint"  # a directory (see fairlatent.train.checkpoint)


class ClassifierConfig(BaseModel):
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
    seed: int = 0
    device: str | None = Field(None, description="'cpu', 'cuda', …; None: CUDA when available")
    eval_batch_size: int = Field(512, ge=1)


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


def train_step(
    model: AttributeClassifier,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    w: torch.Tensor | None = None,
) -> torch.Tensor:
    """One Adam step on the batch; returns the (detached) loss.

    ``loss = mean_i w_i · mean_a BCE(logit_ia, y_ia)``: the batch mean of per-sample losses, each the mean
    over attributes, scaled by the sample's weight (as ``BCEWithLogitsLoss(weight=w)`` does), so a
    zero-weight sample contributes nothing.
    """
    with autocast(x.device):
        logits = model(x)
    per_sample = F.binary_cross_entropy_with_logits(logits.float(), y, reduction="none").mean(dim=1)
    loss = (per_sample * w).mean() if w is not None else per_sample.mean()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach()


@torch.inference_mode()
def predict_scores(model: AttributeClassifier, images: np.ndarray, index: np.ndarray, device, batch_size: int) -> np.ndarray:
    """Sigmoid scores float32 len(index)×A of ``images[index]``, in eval mode and in batches."""
    was_training = model.training
    model.eval()
    out = []
    for start in range(0, len(index), batch_size):
        x = to_tensor(np.asarray(images[index[start : start + batch_size]]), device)
        with autocast(x.device):
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


# Checkpoints (fairlatent.train.checkpoint): model, best-epoch weights and Adam state in safetensors, the
# loop state (epoch, history, best epoch) in JSON, the whole directory replaced atomically every epoch.


def _save_checkpoint(path: Path, model, best_state, optimizer, state: dict[str, Any]) -> None:
    tensors = module_tensors(model, "model")
    tensors.update({f"best.{k}": v for k, v in best_state.items()})
    tensors.update(optimizer_tensors(optimizer, "optim"))
    save_checkpoint(path, tensors, {"fingerprint": state["fingerprint"]}, state)


def _load_checkpoint(path: Path, model, optimizer, device, fingerprint: str):
    """Restore model and Adam state in place; return ``(best-epoch weights, loop state)``."""
    tensors, _, state = load_checkpoint(path)
    if state.get("fingerprint") != fingerprint:
        raise FairlatentError(
            f"{path}: checkpoint of a different training run (other data, attributes or config); "
            "pass overwrite=True (CLI: --overwrite) or choose another directory"
        )
    load_module_state(model, tensors, "model", source=path)
    best = {k[5:]: v.to(device) for k, v in tensors.items() if k.startswith("best.")}
    optim = {k: (v if k.endswith(".step") else v.to(device)) for k, v in tensors.items() if k.startswith("optim.")}
    load_optimizer_state(optimizer, optim, "optim", source=path)
    return best, state


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
        config=config.model_dump(exclude={"device", "eval_batch_size"}), attributes=attributes,
        train_sets=[(str(Path(d.path).resolve()), len(d)) for d in datasets],
        val=(str(Path(val_data.path).resolve()), val_split),
        train_split=train_split, sample_weights=[_array_digest(w) for w in (sample_weights or [])],
        val_weights=_array_digest(val_weights), label_overrides=[_array_digest(o) for o in (label_overrides or [])],
    ))
    ckpt_path, config_path = out_dir / CHECKPOINT_NAME, out_dir / "config.json"
    if config_path.is_file() and not overwrite:
        done = json.loads(config_path.read_text(encoding="utf-8"))
        if done.get("fingerprint") == fingerprint and (out_dir / "model.safetensors").is_file():
            return out_dir
        raise FairlatentError(f"{out_dir} already holds a different trained classifier; pass overwrite=True (CLI: --overwrite) or choose another directory")
    out_dir.mkdir(parents=True, exist_ok=True)
    if overwrite:
        config_path.unlink(missing_ok=True)
        shutil.rmtree(ckpt_path, ignore_errors=True)

    device = default_device(config.device)
    with torch.random.fork_rng(devices=[]):  # initialise from the config seed without touching global RNG
        torch.manual_seed(int(rng(config.seed, "classifier-init").integers(0, 2**62)))
        model = AttributeClassifier(len(attributes), image_size, config.width, config.depth, config.stages)
    # channels_last: images arrive as NHWC, and convolutions in that layout are faster (bench_classifier.py)
    model.to(device, memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)

    start_epoch, history, best_epoch, best_ap = 0, [], 0, -np.inf
    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    if has_checkpoint(ckpt_path):  # resume
        best, state = _load_checkpoint(ckpt_path, model, optimizer, device, fingerprint)
        best_state, start_epoch, history = best, state["epoch"], state["history"]
        best_epoch, best_ap = state["best_epoch"], state["best_ap"]

    n, bs = len(data), config.batch_size
    n_batches = (n + bs - 1) // bs
    last_epoch = config.epochs if stop_after_epoch is None else min(config.epochs, stop_after_epoch)
    t0 = time.perf_counter()
    bar = _progress(progress)
    with bar:
        task = bar.add_task("classifier", total=(last_epoch - start_epoch) * n_batches)
        for epoch in range(start_epoch, last_epoch):
            model.train()
            order = rng(config.seed, "classifier-shuffle", epoch).permutation(n)
            flips = rng(config.seed, "classifier-flip", epoch).random(n) < 0.5 if config.flip else None
            loss_sum = torch.zeros((), device=device)
            for b in range(n_batches):
                idx = order[b * bs : (b + 1) * bs]
                images = data.gather(idx, None if flips is None else flips[b * bs : (b + 1) * bs])
                x, y, w = batch_tensors(images, data.labels[idx], data.weights[idx], device)
                loss_sum += train_step(model, optimizer, x, y, w) * len(idx)
                bar.update(task, advance=1, description=f"epoch {epoch + 1}/{config.epochs}")
            scores = predict_scores(model, val_data.images, val_idx, device, config.eval_batch_size)
            ap = average_precisions(val_y, scores, val_weights)
            history.append(dict(epoch=epoch + 1, train_loss=float(loss_sum) / n, val_mean_ap=float(ap.mean()),
                                val_ap={a: float(v) for a, v in zip(attributes, ap)}))
            if ap.mean() > best_ap:
                best_ap, best_epoch = float(ap.mean()), epoch + 1
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            if progress:
                bar.console.print(f"epoch {epoch + 1}: train loss {history[-1]['train_loss']:.4f}, val mean AP {ap.mean():.4f}")
            _save_checkpoint(ckpt_path, model, best_state, optimizer, dict(
                fingerprint=fingerprint, epoch=epoch + 1, history=history, best_epoch=best_epoch, best_ap=best_ap))
    if last_epoch < config.epochs:
        return out_dir

    # Final artefacts: best-epoch weights, thresholds and metrics on validation.
    model.load_state_dict(best_state)
    scores = predict_scores(model, val_data.images, val_idx, device, config.eval_batch_size)
    thresholds, metrics = validation_metrics(val_y, scores, attributes, val_weights)
    from safetensors.torch import save_file

    with atomic_file(out_dir / "model.safetensors") as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in best_state.items()}, str(tmp))
    write_json(config_path, dict(
        format=FORMAT_NAME, version=FORMAT_VERSION, attributes=attributes, image_size=image_size,
        arch=model.arch(), thresholds=thresholds, val_metrics=metrics, best_epoch=best_epoch,
        history=history, train_config=config.model_dump(), fingerprint=fingerprint,
        train_sets=[str(d.path) for d in datasets], train_rows=int(n), train_split=train_split,
        val_set=str(val_data.path), val_split=val_split, val_weighted=val_weights is not None,
        sample_weighted=sample_weights is not None, train_seconds_last_session=time.perf_counter() - t0,
    ))
    shutil.rmtree(ckpt_path, ignore_errors=True)
    return out_dir


def _progress(enabled: bool):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        TimeRemainingColumn(), disable=not enabled,
    )
