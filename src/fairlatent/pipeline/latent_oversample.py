"""The pipeline's ``oversample`` stage: new images of the rare (target, protected) cells, decoded by a
class-preserving regularized autoencoder (Mondal et al., AISTATS 2023; :mod:`fairlatent.oversample.rae`).

What ``latent_oversample`` trains on. The four cells of the real train split are the autoencoder's classes,
cell index ``2·t + g`` (t the target label, g the protected label): the encoder and a linear probe learn to
keep every cell's latents — and every convex mix of two latents of one cell — in that cell's region, and a
cell-conditional decoder turns mixed latents back into images. A skewed data set is a long-tailed one over
these cells (skew 0.9: the two "counter-stereotypical" cells hold a tenth of the images), so oversampling
the rare cells with new same-cell images is the de-biasing: the classifier sees as many hats without
glasses as hats with them.

**How many.** ``oversample.target_count`` (default: the largest cell's training count) is the size every
cell is filled up to: a cell of n < target_count real images gets target_count − n decoded images, a cell at
or above it none; nothing is removed. With the default, all four cells end up as large as the largest, so
the target and the protected attribute are independent in the combined set (as the reweighting baseline
makes them by weights). Every decoded image carries its cell's target and protected labels.

**The control** ``oversample.classes = "target"``: the same autoencoder fitted with the target's two values as
its classes, so ``latent_oversample_probe`` scores with a network of the same kind that never saw the protected
attribute; with ``class_sampling = "natural"`` and ``mixer = "none"`` it is trained on what the baseline is
trained on. It tells how much of the probe's DEO cut is the cells' balancing and mixing and how much the
network. Nothing is decoded (``latent_oversample`` is refused with it).

**Refused.** A cell with fewer than 2 training images: a new image is a mix of two different training
latents of its cell. The message names the cell and its count.

Writes ``RUN/oversample/``: ``model/`` (the fitted RAE: safetensors weights, checkpoints, ``log.csv``; an
interrupted stage resumes its training bitwise from the last checkpoint) and ``dataset/`` (the decoded images
as a fairlatent data set, split ``train``). Its key is the section's RAE settings (``checkpoint_every`` and
``log_every`` aside), the target count, the target and protected attributes, and the ``data`` stage's key.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from fairlatent.errors import FairlatentError
from fairlatent.latent.preflight import CELLS

if TYPE_CHECKING:  # pragma: no cover
    from fairlatent.data.dataset import Dataset
    from fairlatent.pipeline.run import Pipeline

#: the cells in RAE class order: class index 2·t + g (the pre-flight's cell names, in the same order)
CELL_KEYS = CELLS
#: what a cell needs at least: sampling mixes two different training latents of the cell
MIN_CELL_IMAGES = 2


def cell_index(t: np.ndarray, g: np.ndarray) -> np.ndarray:
    """The RAE class of each image: ``2·t + g`` (0 = t0_g0, 1 = t0_g1, 2 = t1_g0, 3 = t1_g1)."""
    return 2 * np.asarray(t, dtype=np.int64) + np.asarray(g, dtype=np.int64)


def decode_counts(train_counts: dict[str, int], target_count: int | None) -> tuple[int, dict[str, int]]:
    """``(the count every cell is filled up to, {cell: images to decode})`` (module docstring: the rule)."""
    target = max(train_counts.values()) if target_count is None else int(target_count)
    return target, {c: max(0, target - int(n)) for c, n in train_counts.items()}


def check_cells(train_counts: dict[str, int], target: str, protected: str, where: str) -> None:
    """Refuse a training cell of fewer than :data:`MIN_CELL_IMAGES` images, naming it and its count."""
    small = [(c, n) for c, n in train_counts.items() if n < MIN_CELL_IMAGES]
    if small:
        cells = "; ".join(f"the cell ({target} = {c[1]}, {protected} = {c[4]}) has {n} training "
                          f"image{'s' * (n != 1)}" for c, n in small)
        raise FairlatentError(
            f"latent_oversample: {where}: {cells}; a new image of a cell is decoded from a mix of two "
            f"different training images of that cell, so every (target, protected) cell needs at least "
            f"{MIN_CELL_IMAGES} (use a less skewed train split, or drop latent_oversample from methods)")


def stage_oversample(pipe: "Pipeline") -> None:
    """Fit the RAE on the real train split with the cells as classes and decode the rare cells (module
    docstring)."""
    from fairlatent.data.dataset import write_dataset
    from fairlatent.oversample.rae import fit_rae, load_rae
    from fairlatent.train.engine import cache_dump

    oc = pipe.cfg.oversample
    spec = oc.rae_spec(pipe.cfg.seed)
    key = {"rae": cache_dump(spec, {}), "target_count": oc.target_count, "target": pipe.t,
           "protected": pipe.g}
    if oc.classes != "cells":  # only when set: runs keyed before the setting keep their keys
        key["classes"] = oc.classes
    for run_only in ("checkpoint_every", "log_every"):  # how often, not what: a change retrains nothing
        key["rae"].pop(run_only)

    def fn(stage_dir: Path) -> dict[str, Any]:
        ds = pipe._data()
        tr = ds.split_indices("train")
        t, g = ds.labels(pipe.t, tr), ds.labels(pipe.g, tr)
        cells = cell_index(t, g)
        train_counts = {c: int((cells == k).sum()) for k, c in enumerate(CELL_KEYS)}
        if ds.image_size % 4:
            raise FairlatentError(f"latent_oversample: {ds.path}: images of side {ds.image_size}; the autoencoder "
                                  "halves the side twice, so it must be divisible by 4")
        images = np.asarray(ds.images[tr])
        if oc.classes == "target":  # the control: the target's two values as the classes, nothing decoded
            fit_rae(images, np.asarray(t, dtype=np.int64), stage_dir / "model", spec,
                    class_names=[f"{pipe.t}=0", f"{pipe.t}=1"], resume=True, progress=pipe.progress)
            return {"classes": "target", "train_cells": train_counts, "rae_steps": spec.steps,
                    "class_sampling": spec.class_sampling, "mixer": spec.mixer}
        check_cells(train_counts, pipe.t, pipe.g, f"{ds.path}, split 'train'")
        target, counts = decode_counts(train_counts, oc.target_count)
        names = [f"{pipe.t}={c[1]}, {pipe.g}={c[4]}" for c in CELL_KEYS]
        fit_rae(images, cells, stage_dir / "model", spec, class_names=names, resume=True, progress=pipe.progress)
        model = load_rae(stage_dir / "model")
        new, y = model.sample([counts[c] for c in CELL_KEYS], seed=spec.seed)
        ids = [f"rae_{c}_{i:06d}" for c in CELL_KEYS for i in range(counts[c])]  # sample() decodes cell by cell
        table = pd.DataFrame({"id": ids, "split": "train", pipe.t: y // 2, pipe.g: y % 2})
        write_dataset(stage_dir / "dataset", new, table,
                      {"source": "rae_oversampling", "target": pipe.t, "protected": pipe.g, "cells": CELL_KEYS,
                       "target_count": target, "seed": spec.seed}, overwrite=True)
        # class preservation, measured: the share of decoded images the RAE's own probe puts back in their cell
        in_cell = {c: float((model.predict(new[y == k]) == k).mean()) if counts[c] else None
                   for k, c in enumerate(CELL_KEYS)}
        return {"train_cells": train_counts, "target_count": target,
                "rule": "largest cell" if oc.target_count is None else "oversample.target_count",
                "decoded": counts, "images": int(len(new)), "probe_in_cell": in_cell,
                "rae_steps": spec.steps}

    pipe.stages.run("oversample", key, fn, deps=("data",))


def probe_target_scores(model, images: np.ndarray) -> np.ndarray:
    """P(target = 1) of images by a fitted cell autoencoder's probe (``latent_oversample_probe``): its softmax
    summed over the two target-positive cells (t1_g0, t1_g1), i.e. the protected attribute marginalised out.
    A model fitted on the target alone (``oversample.classes = "target"``, two classes) gives its class-1
    softmax.

    Computed in float64 as sigmoid(logsumexp(logits of t1 cells) − logsumexp(logits of t0 cells)), which is
    that sum exactly and stays in [0, 1]; summing two float32 softmax outputs can exceed 1 by a rounding step,
    which the score metrics (KL's histogram on [0, 1]) refuse."""
    logits = model.predict_logits(images).astype(np.float64)
    if logits.shape[1] == 2:
        pos, neg = logits[:, 1], logits[:, 0]
    elif logits.shape[1] == len(CELL_KEYS):
        pos = np.logaddexp(logits[:, CELL_KEYS.index("t1_g0")], logits[:, CELL_KEYS.index("t1_g1")])
        neg = np.logaddexp(logits[:, CELL_KEYS.index("t0_g0")], logits[:, CELL_KEYS.index("t0_g1")])
    else:
        raise FairlatentError(f"probe_target_scores: a model of {logits.shape[1]} classes; expected the four "
                              "(target, protected) cells or the target's two values")
    return 1.0 / (1.0 + np.exp(neg - pos))


def labelers_read_oversampled(ds: "Dataset", decoded: "Dataset", target: str, protected: str, labelers,
                              threshold: str) -> dict[str, Any]:
    """What :func:`stage_oversample_check` records: the decoded data set ``decoded`` and the real train split of
    ``ds`` read by ``labelers`` (f_t, f_g) at their ``threshold`` kind, per decoded cell
    (:func:`fairlatent.pipeline.run.labeler_cell_reading`); only the real images of the decoded cells are
    scored."""
    from fairlatent.pipeline.run import labeler_cell_reading, labeler_labels, labeler_scores

    def read(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return labeler_labels(labeler_scores(images, labelers, target, protected), labelers, target, protected,
                              threshold)

    t, g = decoded.labels(target), decoded.labels(protected)
    cells = [c for c in CELL_KEYS if ((t == int(c[1])) & (g == int(c[4]))).any()]
    tr = ds.split_indices("train")
    rt, rg = ds.labels(target, tr), ds.labels(protected, tr)
    keep = np.isin(cell_index(rt, rg), [CELL_KEYS.index(c) for c in cells])
    return {"decoded": labeler_cell_reading(*read(np.asarray(decoded.images)), t, g, cells),
            "real": labeler_cell_reading(*read(np.asarray(ds.images[tr[keep]])), rt[keep], rg[keep], cells),
            "threshold": threshold}


def stage_oversample_check(pipe: "Pipeline") -> None:
    """The decoded images read by the pipeline's labelers f_t and f_g, the yardstick the latent pairs (flip and
    keep rates) and the CycleGAN translations are read with: per decoded cell, the share whose f_t label is
    the cell's target, whose f_g label is its protected value, and both (``decoded``); beside it the same
    shares on the real training images of that cell (``real``: what the labelers manage on real ones), at the
    thresholds that label G(z). The RAE's own probe (``probe_in_cell`` of the oversample stage) is trained with
    the encoder, so it can agree with decoded images that no one else would place in their cell; the labelers,
    trained on real images only, can in turn misread decoded ones that are blurred (the ``real`` column tells
    their own error on the cell apart from that). Either way the figure says how a CNN trained on real faces
    sees the decoded cell, which is what the classifier trained on real + decoded images faces.

    A stage of its own after ``oversample`` and ``labeler``, so a finished run gets it without refitting the
    autoencoder; it runs only when the labelers exist (a method that trains on latent pairs is listed)."""
    from fairlatent.data.dataset import load_dataset

    def fn(stage_dir: Path) -> dict[str, Any]:
        return labelers_read_oversampled(pipe._data(), load_dataset(pipe.stages.results["oversample"].dir / "dataset"),
                                         pipe.t, pipe.g, pipe._labelers(), pipe.cfg.latent.threshold)

    pipe.stages.run("oversample_check", {"threshold": pipe.cfg.latent.threshold}, fn,
                    deps=("data", "labeler", "oversample"))


__all__ = ["CELL_KEYS", "MIN_CELL_IMAGES", "cell_index", "check_cells", "decode_counts", "labelers_read_oversampled",
           "probe_target_scores", "stage_oversample", "stage_oversample_check"]
