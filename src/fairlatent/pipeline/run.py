"""The latent de-biasing pipeline, top to bottom (Ramaswamy et al., CVPR 2021; REFERENCE §1).

Stages, each cached in its own folder of the run directory (see :mod:`fairlatent.pipeline.stages`):

1. ``data``       the real data set (ToyFaces rendered here, or a user's data set referenced by content hash)
2. ``gan``        a GAN trained on the real train split (or a given trained generator, ``[generator]``)
3. ``labeler``    f_t and f_g: by default one classifier for both, trained on real data; f_g may be a given
                  classifier (``latent.protected_labeler``, shared by a benchmark's targets) and f_t a method's
                  trained target classifier (``latent.target_labeler``)
4. ``latents``    latents z ~ N(0, I), G(z) rendered and labelled by f_t, f_g (F1-best thresholds)
5. ``hyperplanes`` linear h_t, h_g fitted on ``n_fit`` latents, accuracy on ``n_holdout`` held-out latents
6. ``pairs``      z' for ``n_pairs`` further latents; G(z), G(z') stored losslessly with their latents;
                  what the edit achieved measured on the images (f_g flip rate, f_t keep rate)
   ``preflight``  checks before any classifier trains on synthetic data (:mod:`fairlatent.latent.preflight`):
                  cell rates of the labelled G(z) vs real, h_t/h_g held-out accuracy, |cos θ|, flip and keep
                  rates, the labelers per real cell; a failure that can make a listed method's pairs wrong
                  warns (every run) and, with ``latent.strict``, stops the run; one that cannot is said as a
                  caution (:func:`fairlatent.latent.preflight.blocks`). The geometry is checked before the
                  pairs are rendered, the edit after. Stores G(z) samples per cell.
   ``oversample`` only for ``latent_oversample``: a class-preserving autoencoder fitted on the real train split
                  with the four (target, protected) cells as classes decodes new images of the rare cells
                  (:mod:`fairlatent.pipeline.latent_oversample`)
7. ``train_<m>``  one target classifier per method (baseline, reweighting, latent_debias, ablations)
8. ``evaluate``   calibrated threshold on val, bootstrap metrics on test and test_balanced
9. ``generative`` FID/KID/precision/recall/density/coverage of G(z) and G(z') against real train images
10. ``report``    report.json (:mod:`fairlatent.pipeline.summary`); report.html and the terminal tables are
                  rendered from it by :func:`fairlatent.report.build_report`, a layer above
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
from rich.console import Console

from fairlatent.data.dataset import Dataset, load_dataset, write_dataset
from fairlatent.errors import FairlatentError
from fairlatent.pipeline.config import PipelineConfig
from fairlatent.pipeline.methods import MethodContext, get_method, no_edit_alternatives_sentence, pair_uses
from fairlatent.pipeline.stages import StageRunner
from fairlatent.train.classifier import reweighting_weights
from fairlatent.utils.io import claim_output_directory, file_sha256, save_npy, write_json

EVAL_SPLITS = ("test", "test_balanced")
# the metrics that depend on the protected attribute: reported per protected attribute (data.protected_extra)
PROTECTED_METRICS = ("DEO", "BA", "KL", "DP", "EOpp", "EOdds", "worst_group_acc")
# G(z) images per labelled (target, protected) cell drawn for the report's pre-flight grids
CELL_SAMPLES = 16


def _fingerprint(path: Path, small: tuple[str, ...] = ("meta.json", "attributes.csv"),
                 large: tuple[str, ...] = ("images.npy", "masks.npy")) -> dict[str, Any]:
    """Identity of something a user hands in (a data set, a trained model): content hash of its small files,
    size and mtime of its large ones. A file (TorchScript) is hashed whole."""
    import hashlib

    ident: dict[str, Any] = {"path": str(path.resolve())}
    if path.is_file():
        ident["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
        return ident
    for name in small:
        if (path / name).is_file():
            ident[name] = hashlib.sha256((path / name).read_bytes()).hexdigest()[:16]
    for name in large:
        f = path / name
        if f.is_file():
            st = f.stat()
            ident[name] = [st.st_size, int(st.st_mtime)]
    return ident


# a trained model's identity: its small metadata files, and the content of its weight files
_MODEL_FILES = ("config.json", "state.json", "thresholds.json")
_WEIGHT_FILES = ("model.safetensors", "generator.safetensors", "ema.safetensors", "tensors.safetensors")

# (resolved path, size, mtime_ns, ctime_ns, inode) -> SHA-256: each weight file is hashed once per process
_HASH_CACHE: dict[tuple, str] = {}


def _content_hash(f: Path) -> str:
    """SHA-256 of a file's bytes, cached by its stat identity.

    ``st_ctime_ns`` is in the key because a user can restore size and mtime after overwriting weights
    (``cp -p``, ``touch -r``, a retrain that happens to give the same size within one mtime tick) but cannot
    set ctime: a rewritten file always misses the cache and is hashed again.
    """
    st = f.stat()
    key = (str(f.resolve()), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
    if key not in _HASH_CACHE:
        _HASH_CACHE[key] = file_sha256(f)
    return _HASH_CACHE[key]


def _model_fingerprint(path: Path) -> dict[str, Any]:
    """Identity of a given trained model (a generator or classifier directory, or a TorchScript file): its
    metadata files and the SHA-256 of its weights' bytes, so a retrained or replaced model — even one with
    the same size and mtime — changes the keys of every stage that used it."""
    ident = _fingerprint(path, small=_MODEL_FILES, large=())
    if path.is_dir():
        for name in _WEIGHT_FILES:
            if (path / name).is_file():
                ident[name] = _content_hash(path / name)[:16]
    return ident


def _cells(t: np.ndarray, g: np.ndarray) -> dict[str, int]:
    return {f"t{a}_g{b}": int(((t == a) & (g == b)).sum()) for a in (0, 1) for b in (0, 1)}


class Pipeline:
    """One run of the de-biasing pipeline. ``run()`` executes (or skips) every stage and returns the report."""

    def __init__(self, config: PipelineConfig, run_dir: str | os.PathLike, *, console: Console | None = None,
                 progress: bool = True) -> None:
        self.cfg = config
        self.run_dir = Path(run_dir)
        self.console = console or Console()
        self.progress = progress
        self.stages = StageRunner(self.run_dir, self.console)
        self.t = config.data.target
        self.g = config.data.protected
        self.extra = list(config.data.protected_extra)  # further protected attributes (data.protected_extra)
        self.preflight: dict[str, Any] | None = None  # set by stage_preflight

    # ------------------------------------------------------------------ helpers
    def _gan_config(self):
        return self.cfg.gan_spec()

    def _classifier_config(self):
        return self.cfg.classifier_spec()

    def _data(self) -> Dataset:
        return load_dataset(self.stages.results["data"].outputs["path"])

    # ------------------------------------------------------------------ stages
    def stage_data(self) -> None:
        d = self.cfg.data
        if d.source == "path":
            path = Path(d.path)
            ds = load_dataset(path)
            ds.check_attributes([self.t, self.g])
            for split in ("train", "val", "test"):
                ds.split_indices(split)
            cfg = {"fingerprint": _fingerprint(path)}
            wanted = d.subsampling()
            if wanted:  # in the key only when subsampling, so a plain data set keeps the key it always had
                cfg["subsample"] = {"skews": wanted, "train_size": d.train_size,
                                    "seed": self.cfg.seed if d.seed is None else d.seed}

                def fn(stage_dir: Path) -> dict[str, Any]:
                    return self._write_skewed(ds, stage_dir / "dataset", wanted, cfg["subsample"]["seed"])
            else:
                def fn(stage_dir: Path) -> dict[str, Any]:
                    return {"path": str(path.resolve())}
        else:
            from fairlatent.data.toyfaces import make_toyfaces

            # protected_extra names columns ToyFaces renders anyway: not in the key, so naming one re-renders nothing
            params = d.model_dump(exclude={"source", "path", "train_size", "protected_extra"})
            params["seed"] = self.cfg.seed if d.seed is None else d.seed
            cfg = params

            def fn(stage_dir: Path) -> dict[str, Any]:
                out = stage_dir / "dataset"
                if not out.exists():
                    make_toyfaces(out, n=d.n, size=d.size, target=self.t, protected=self.g, skew=d.skew,
                                  val_skew=d.val_skew, test_skew=d.test_skew, label_noise=d.label_noise or None,
                                  faint=d.faint or None, split_fractions=d.split_fractions,
                                  seed=params["seed"], progress=self.progress)
                return {"path": str(out.resolve())}

        self.stages.run("data", cfg, fn)
        ds = self._data()
        ds.check_attributes([self.t, self.g])
        missing = [a for a in self.extra if a not in ds.attribute_names]
        if missing:  # a path data set's columns are known only now (ToyFaces' were checked at load time)
            raise FairlatentError(f"data.protected_extra: {ds.path} has no attribute "
                                  f"{', '.join(map(repr, missing))}; attributes are: {', '.join(ds.attribute_names)}")
        self._check_evaluation_splits(ds)

    def _write_skewed(self, ds: Dataset, out: Path, wanted: dict[str, float], seed: int) -> dict[str, Any]:
        """The data set at ``ds`` with the splits of ``wanted`` subsampled to their skews, written to ``out``.

        One definition of skew (:mod:`fairlatent.data.skew`): both target classes the same size and
        ``P(g = a | t = 1) = P(g = 1 − a | t = 0) = skew``, the direction ``a`` taken from the *original* train
        split (the protected group where the target is more common) for every split. The train split has
        ``data.train_size`` images (default: the largest the skew allows); val and test, when asked, the largest
        their skew allows. Other splits (test_balanced, and any split not asked) are copied as they are.
        Returns the stage outputs: the path, the direction and, per subsampled split, the request, the sizes
        before and after and what was achieved (:func:`fairlatent.data.skew.skew_summary`).
        """
        from fairlatent.data.skew import skew_direction, skew_summary, skewed_indices
        from fairlatent.utils.seed import rng

        d = self.cfg.data
        tr = ds.split_indices("train")
        a = skew_direction(ds.labels(self.t, tr), ds.labels(self.g, tr))
        keep = np.ones(len(ds), dtype=bool)
        report: dict[str, Any] = {}
        key = {"train": "data.skew", "val": "data.val_skew", "test": "data.test_skew"}
        for split, s in wanted.items():
            idx = ds.split_indices(split)
            t, g = ds.labels(self.t, idx), ds.labels(self.g, idx)
            per_class = d.train_size // 2 if split == "train" and d.train_size is not None else None
            size = f" at data.train_size = {d.train_size}" if per_class is not None else ""
            sub = skewed_indices(t, g, [s], rng(seed, "data-skew", split), per_class=per_class, direction=a,
                                 min_per_class=10, what=f"{key[split]} = {s:g}{size} ({ds.path}, split {split!r}, "
                                                        f"{self.t} / {self.g})",
                                 names=(self.t, self.g))[s]
            keep[idx] = False
            keep[idx[sub]] = True
            report[split] = {"requested": s, "available": int(idx.size),
                             **skew_summary(t[sub], g[sub], a)}
        rows = np.flatnonzero(keep)
        meta = {**ds.meta, "subsampled_from": {
            "path": str(ds.path.resolve()), "target": self.t, "protected": self.g, "direction": a,
            "seed": seed, "skews": wanted, "train_size": d.train_size}}
        for k in ("format", "version", "n", "image_size", "attributes", "splits", "parts"):
            meta.pop(k, None)
        write_dataset(out, np.asarray(ds.images[rows]), ds.table.iloc[rows].reset_index(drop=True), meta,
                      masks=ds.masks(rows) if ds.has_masks else None,
                      part_names=ds.part_names if ds.has_masks else None,
                      latents=np.asarray(ds.latents[rows]) if ds.latents is not None else None, overwrite=True)
        return {"path": str(out.resolve()), "source": str(ds.path.resolve()), "direction": a, "skew": report}

    def _check_evaluation_splits(self, ds: Dataset) -> None:
        """Refuse an evaluation split where the target or the protected attribute has a single value.

        Why here, before any training: with only positives AP is 100 whatever the scores, TPR gaps and
        equalized odds are undefined (NaN), and with one protected group there is no gap to measure; the
        numbers would look like results. ``test_balanced`` is optional, so the same case is an error there
        too rather than a silently dropped split: the user asked for it by having it.
        """
        for split in EVAL_SPLITS:
            idx = ds.split_indices(split, required=split == "test")
            if not idx.size:
                continue
            for attr in (self.t, self.g, *self.extra):
                values = np.unique(ds.labels(attr, idx))
                if values.size < 2:
                    raise FairlatentError(
                        f"{ds.path}: split {split!r} has only {attr} = {int(values[0])} ({idx.size} rows): one "
                        f"class, so AP, DEO and equalized odds are meaningless there; evaluation needs both "
                        f"values of {attr!r} in {split!r}")

    def _generator(self):
        from fairlatent.models.generator import load_generator

        g = self.cfg.generator
        path = self.stages.results["gan"].outputs["path"]
        if g is not None and Path(path).is_file():
            return load_generator(path, latent_dim=g.latent_dim, output_range=g.output_range, device=self.cfg.device)
        return load_generator(path, device=self.cfg.device)

    def _image_generator(self):
        """The generator, refused unless it outputs images: the labelers f_t, f_g are image classifiers.

        The latent stages are written against :class:`fairlatent.models.generator.Generator`
        (``sample_latents`` / ``decode``), so only this check stands between them and a tabular generator."""
        from fairlatent.models.generator import require_images

        return require_images(self._generator(), "labelling generated samples with the image classifiers f_t, f_g")

    def _decode(self, gen, z: np.ndarray) -> np.ndarray:
        """G(z) for unconditional latents, ``latent.batch_size`` latents per call."""
        bs = self.cfg.latent.batch_size
        return np.concatenate([gen.decode(z[i : i + bs]) for i in range(0, len(z), bs)]) if len(z) else \
            gen.decode(z)

    def stage_gan(self) -> None:
        from fairlatent.train.gan import train_gan

        if self.cfg.generator is not None:  # a given generator: record its identity, train nothing
            path = Path(self.cfg.generator.path)
            if not path.exists():
                raise FairlatentError(f"generator.path {path}: no such GAN run directory or TorchScript file")
            self.stages.run("gan", {"given": self.cfg.generator.model_dump(), "fingerprint": _model_fingerprint(
                path)},
                lambda stage_dir: {"path": str(path.resolve()), "given": True})
            self._generator()  # fail now, not after the labeler has trained, if it cannot be loaded
            return
        gcfg = self._gan_config()

        def fn(stage_dir: Path) -> dict[str, Any]:
            train_gan(self.stages.results["data"].outputs["path"], stage_dir / "model", gcfg,
                      resume=True, progress=self.progress)
            return {"path": str((stage_dir / "model").resolve())}

        self.stages.run("gan", gcfg.cache_key(), fn, deps=("data",))

    def stage_labeler(self) -> None:
        """f_t and f_g: by default one two-output classifier trained on the real train split.

        ``latent.protected_labeler`` gives f_g (a trained classifier of the protected attribute, e.g. one shared
        by every target of a benchmark); ``latent.target_labeler = "baseline" | "reweighting"`` takes f_t from
        that method's trained target classifier (the reference labels with its baseline classifiers). The
        labeler trained here then learns only what is still missing, or nothing.

        With ``latent.labeler_weights = "balanced"`` (default) it is trained with the group-balanced weights
        of the reweighting baseline. The reference trains it on the skewed data as is; its labels of
        ambiguous generated images then follow the protected attribute, h_t leans toward h_g, and the pairs
        carry the very shortcut the method is meant to remove (measured on the demo: cos θ 0.90, f_t kept on
        55 % of pairs, latent_debias DEO 5.6 vs baseline 6.6). ``"none"`` reproduces the reference.
        """
        from fairlatent.models.classifier import load_classifier
        from fairlatent.train.classifier import train_classifier

        lc = self.cfg.latent
        ccfg = self.cfg.labeler_spec()
        weighting = lc.labeler_weights
        own = ([self.t] if lc.target_labeler == "own" else []) + ([self.g] if lc.protected_labeler is None else [])
        deps: tuple[str, ...] = ("data",)
        given: dict[str, Any] = {}
        if lc.target_labeler != "own":
            self.stage_train(lc.target_labeler)
            deps += (f"train_{lc.target_labeler}",)
            given["t"] = self.stages.results[f"train_{lc.target_labeler}"].outputs["path"]
        if lc.protected_labeler is not None:
            path = Path(lc.protected_labeler)
            clf = load_classifier(path)
            if self.g not in clf.attributes:
                raise FairlatentError(f"latent.protected_labeler {path}: predicts {clf.attributes}, not the "
                                      f"protected attribute {self.g!r}")
            given["g"] = str(path.resolve())
        cfg = {"own": own, "given_g": _model_fingerprint(Path(given["g"]))
               if "g" in given else None, "target_labeler": lc.target_labeler}
        if own:
            cfg.update({"classifier": ccfg.cache_key(), "weights": weighting})

        def fn(stage_dir: Path) -> dict[str, Any]:
            out: dict[str, Any] = {"weights": weighting if own else "given", **given}
            if not own:
                return out
            data = self.stages.results["data"].outputs["path"]
            weights = None
            if weighting == "balanced":
                ds = self._data()
                tr = ds.split_indices("train")
                weights = [reweighting_weights(ds.labels(self.t, tr), ds.labels(self.g, tr))]
            train_classifier([data], own, stage_dir / "model", ccfg, sample_weights=weights, progress=self.progress)
            path = str((stage_dir / "model").resolve())
            return {**out, **{k: path for k, a in (("t", self.t), ("g", self.g)) if a in own}, "path": path}

        self.stages.run("labeler", cfg, fn, deps=deps)

    def stage_labeler_check(self) -> None:
        """f_t's and f_g's accuracy on the real validation images of each (target, protected) cell, at the
        thresholds that label G(z): the pre-flight's labeler check (:func:`fairlatent.latent.preflight.
        labeler_checks`). Validation, not test: the check decides whether to trust the run before it is
        evaluated, and the labelers' thresholds were already chosen there."""
        def fn(stage_dir: Path) -> dict[str, Any]:
            f_t, f_g = self._labelers()
            return labeler_cell_accuracy(self._data(), self.t, self.g, f_t, f_g, self.cfg.latent.threshold)

        self.stages.run("labeler_check", {"threshold": self.cfg.latent.threshold}, fn, deps=("data", "labeler"))

    def _labelers(self):
        """(f_t, f_g) classifier handles of this run's labeler stage (:func:`load_labelers`)."""
        return load_labelers(self.stages.results["labeler"].outputs)

    def _score(self, images: np.ndarray, labelers) -> np.ndarray:
        """N×2 scores (f_t, f_g) of images."""
        return labeler_scores(images, labelers, self.t, self.g)

    def _label(self, scores: np.ndarray, labelers) -> tuple[np.ndarray, np.ndarray]:
        """Binary (t, g) labels of N×2 scores at each labeler's validation threshold (``latent.threshold``)."""
        return labeler_labels(scores, labelers, self.t, self.g, self.cfg.latent.threshold)

    # ------------------------------------------------------------------ further protected attributes
    def stage_labelers_extra(self) -> None:
        """One protected labeler per attribute of ``data.protected_extra`` (stage ``labeler_<attribute>``), made
        the way f_g is: the classifier ``latent.protected_labeler`` names when it predicts that attribute, else
        one trained on the real train split with the labeler's settings and, under ``latent.labeler_weights =
        "balanced"``, the weights that make the target and *this* attribute independent. Separate stages, not
        outputs of ``labeler``, so a run without extra attributes keeps the labeler's key and model."""
        from fairlatent.models.classifier import load_classifier
        from fairlatent.train.classifier import train_classifier

        lc = self.cfg.latent
        ccfg = self.cfg.labeler_spec()
        given_clf = None
        if lc.protected_labeler is not None:
            given_clf = load_classifier(lc.protected_labeler)
        for attr in self.extra:
            if given_clf is not None and attr in given_clf.attributes:
                path = Path(lc.protected_labeler)
                self.stages.run(f"labeler_{attr}", {"attribute": attr, "given": _model_fingerprint(path)},
                                lambda stage_dir, p=path: {"path": str(p.resolve()), "given": True})
                continue

            def fn(stage_dir: Path, attr: str = attr) -> dict[str, Any]:
                weights = None
                if lc.labeler_weights == "balanced":
                    ds = self._data()
                    tr = ds.split_indices("train")
                    weights = [reweighting_weights(ds.labels(self.t, tr), ds.labels(attr, tr))]
                train_classifier([self.stages.results["data"].outputs["path"]], [attr], stage_dir / "model", ccfg,
                                 sample_weights=weights, progress=self.progress)
                return {"path": str((stage_dir / "model").resolve()), "weights": lc.labeler_weights}

            self.stages.run(f"labeler_{attr}", {"attribute": attr, "target": self.t, "classifier": ccfg.cache_key(),
                                                "weights": lc.labeler_weights}, fn, deps=("data",))

    def _extra_labelers(self) -> list:
        """The classifier handles of the extra protected attributes, in ``data.protected_extra``'s order."""
        from fairlatent.models.classifier import load_classifier

        return [load_classifier(self.stages.results[f"labeler_{a}"].outputs["path"]) for a in self.extra]

    def _score_extra(self, images: np.ndarray, labelers) -> np.ndarray:
        """N×k scores of images by the extra protected labelers."""
        return np.stack([f.predict_scores(images)[:, f.attributes.index(a)] for a, f in zip(self.extra, labelers)],
                        axis=1)

    def _label_extra(self, scores: np.ndarray, labelers) -> np.ndarray:
        """N×k binary labels of N×k extra scores at each labeler's ``latent.threshold``."""
        kind = self.cfg.latent.threshold
        th = np.array([f.thresholds[a][kind] for a, f in zip(self.extra, labelers)])
        return (scores > th[None, :]).astype(np.int64)

    def stage_latents_extra(self) -> None:
        """The labels of the latents stage's G(z) for each extra protected attribute (``scores.npy``, N×k),
        rendered again from the stored latents so the latents stage keeps its key."""
        def fn(stage_dir: Path) -> dict[str, Any]:
            z = np.load(self.stages.results["latents"].dir / "z.npy")
            gen = self._image_generator()
            labelers = self._extra_labelers()
            bs = self.cfg.latent.batch_size
            scores = np.concatenate([self._score_extra(gen.decode(z[i : i + bs]), labelers)
                                     for i in range(0, len(z), bs)])
            labels = self._label_extra(scores, labelers)
            save_npy(stage_dir / "scores.npy", scores.astype(np.float32))
            return {"attributes": self.extra, "rates": {a: float(labels[:, k].mean()) for k, a in enumerate(self.extra)}}

        self.stages.run("latents_extra", {"attributes": self.extra, "threshold": self.cfg.latent.threshold}, fn,
                        deps=("latents", *(f"labeler_{a}" for a in self.extra)))

    def _extra_labels(self) -> np.ndarray:
        """N×k labels of the latents stage's G(z) for the extra protected attributes."""
        return self._label_extra(np.load(self.stages.results["latents_extra"].dir / "scores.npy"),
                                 self._extra_labelers())

    def stage_latents(self) -> None:
        lc = self.cfg.latent
        n = lc.n_fit + lc.n_holdout + lc.n_pairs
        cfg = {"n": n, "truncation": lc.truncation, "threshold": lc.threshold, "seed": self.cfg.seed}

        def fn(stage_dir: Path) -> dict[str, Any]:
            gen = self._image_generator()
            labeler = self._labelers()
            from fairlatent.utils.seed import hash_str

            z = gen.sample_latents(n, seed=self.cfg.seed + hash_str("latents") % 10_000, truncation=lc.truncation)
            _, scores = self._render_and_score(gen, labeler, z, "labelling G(z)", keep_images=False)
            t_lab, g_lab = self._label(scores, labeler)
            save_npy(stage_dir / "z.npy", z.astype(np.float32))
            save_npy(stage_dir / "scores.npy", scores.astype(np.float32))
            return {"n": n, "rate_t": float(t_lab.mean()), "rate_g": float(g_lab.mean()),
                    "cells": _cells(t_lab, g_lab)}

        self.stages.run("latents", cfg, fn, deps=("gan", "labeler"))

    def _render_and_score(self, gen, labeler, z: np.ndarray, what: str, *,
                          keep_images: bool) -> tuple[np.ndarray | None, np.ndarray]:
        """Decode G(z) batch by batch and score every image with the labeler: ``(images or None, scores)``.

        Images are kept only when asked: the latents stage needs just the scores of its 25k+ images.
        """
        from rich.progress import Progress

        bs = self.cfg.latent.batch_size
        images, scores = [], []
        with Progress(console=self.console, disable=not self.progress, transient=True) as prog:
            task = prog.add_task(what, total=len(z))
            for i in range(0, len(z), bs):
                imgs = gen.decode(z[i : i + bs])
                if keep_images:
                    images.append(imgs)
                scores.append(self._score(imgs, labeler))
                prog.advance(task, len(imgs))
        return (np.concatenate(images) if keep_images else None), np.concatenate(scores)

    def _latent_arrays(self):
        d = self.stages.results["latents"].dir
        z = np.load(d / "z.npy")
        scores = np.load(d / "scores.npy")
        labeler = self._labelers()
        t_lab, g_lab = self._label(scores, labeler)
        return z, t_lab, g_lab, labeler

    def stage_hyperplanes(self) -> None:
        from fairlatent.latent import DOMAIN_EDIT, cell_balanced_weights, fit_domain_hyperplanes, fit_hyperplane

        lc = self.cfg.latent
        cfg = {"n_fit": lc.n_fit, "n_holdout": lc.n_holdout, "method": lc.hyperplane, "seed": self.cfg.seed}
        if lc.plane_weights != "none":  # in the key only when set, so earlier runs keep theirs
            cfg["plane_weights"] = lc.plane_weights
        domain = DOMAIN_EDIT in self._edits_needed()
        if domain:
            cfg["domain"] = True
        multi = self.cfg.needs_multi()
        deps: tuple[str, ...] = ("latents",)
        if multi:  # one plane per extra protected attribute, in the key (and read) only when an edit needs them
            cfg["protected_extra"] = self.extra
            deps += ("latents_extra",)

        def fn(stage_dir: Path) -> dict[str, Any]:
            z, t_lab, g_lab, _ = self._latent_arrays()
            fit, ho = slice(0, lc.n_fit), slice(lc.n_fit, lc.n_fit + lc.n_holdout)
            weights = cell_balanced_weights(t_lab[fit], g_lab[fit]) if lc.plane_weights == "cells" else None
            out: dict[str, Any] = {}
            labels = [("t", self.t, t_lab), ("g", self.g, g_lab)]
            if multi:
                e_lab = self._extra_labels()
                labels += [(a, a, e_lab[:, k]) for k, a in enumerate(self.extra)]
            extra: dict[str, Any] = {}
            for name, attr, y in labels:
                for part, sl in (("fit", fit), ("holdout", ho)):
                    if len(np.unique(y[sl])) < 2:
                        who = f"f_{name}" if name in ("t", "g") else f"the {attr} labeler"
                        raise FairlatentError(
                            f"every generated image in the {part} set got the same {attr} label from {who}: "
                            "the generator does not cover both values of this attribute (train the GAN longer, "
                            "or check the labeler)")
                h = fit_hyperplane(z[fit].astype(np.float64), y[fit], method=lc.hyperplane,
                                   holdout=(z[ho].astype(np.float64), y[ho]), seed=self.cfg.seed,
                                   sample_weight=weights)
                record = {"w": h.w.tolist(), "b": float(h.b), "fit_acc": float(h.fit_accuracy),
                          "heldout_acc": float(h.heldout_accuracy)}
                if name in ("t", "g"):
                    out[f"h_{name}"] = record
                else:
                    extra[attr] = record
            w_t, w_g = np.array(out["h_t"]["w"]), np.array(out["h_g"]["w"])
            out["cos_theta"] = float(w_t @ w_g)
            if multi:  # each extra plane's angle with h_t and h_g (the edit's guard is on the whole set's span)
                for record in extra.values():
                    w = np.array(record["w"])
                    record.update({"cos_t": float(w @ w_t), "cos_g": float(w @ w_g)})
                out["h_extra"] = extra
            if domain:  # one target plane per protected group, fitted on the latents f_g put in that group
                planes = fit_domain_hyperplanes(
                    z[fit].astype(np.float64), t_lab[fit], g_lab[fit], name=self.t, method=lc.hyperplane,
                    seed=self.cfg.seed, holdout=(z[ho].astype(np.float64), t_lab[ho], g_lab[ho]))
                out["h_t_by_group"] = {str(k): {"w": h.w.tolist(), "b": float(h.b), "fit_acc": float(h.fit_accuracy),
                                                "heldout_acc": h.heldout_accuracy, "cos_theta": float(h.w @ w_g)}
                                       for k, h in planes.items()}
            return out

        self.stages.run("hyperplanes", cfg, fn, deps=deps)

    def _plane(self, record: dict[str, Any]):
        """A :class:`~fairlatent.latent.Hyperplane` from the hyperplanes stage's record of it."""
        from fairlatent.latent import Hyperplane

        return Hyperplane(w=np.array(record["w"], dtype=np.float64), b=record["b"], fit_accuracy=record["fit_acc"],
                          heldout_accuracy=record["heldout_acc"], method=self.cfg.latent.hyperplane)

    def _hyperplanes(self):
        o = self.stages.results["hyperplanes"].outputs
        return self._plane(o["h_t"]), self._plane(o["h_g"])

    def _extra_planes(self) -> dict:
        """The extra protected planes of the hyperplanes stage, ``{attribute: Hyperplane}`` (labelled by name)."""
        from dataclasses import replace

        return {a: replace(self._plane(h), name=a)
                for a, h in self.stages.results["hyperplanes"].outputs["h_extra"].items()}

    def _domain_planes(self):
        """The per-group target planes of the hyperplanes stage, ``{0: Hyperplane, 1: Hyperplane}``."""
        return {int(k): self._plane(h) for k, h in self.stages.results["hyperplanes"].outputs["h_t_by_group"].items()}

    @staticmethod
    def _target_score_change(z: np.ndarray, zp: np.ndarray, g_z: np.ndarray, h_t, planes=None) -> float:
        """max |target score of z' − that of z| under the edit's own rule: on h_t, or, given the domain edit's
        per-group ``planes``, on the new group's plane against the old group's (0 up to rounding when the edit
        holds the target)."""
        zp = zp.astype(np.float64)
        if planes is None:
            return float(np.abs((zp - z) @ h_t.w).max())
        change = [np.abs(planes[1 - a].decision(zp[g_z == a]) - planes[a].decision(z[g_z == a]))
                  for a in (0, 1) if (g_z == a).any()]
        return float(np.concatenate(change).max())

    def _edits_needed(self) -> list[str]:
        return self.cfg.edits_needed()

    def _pair_sets(self) -> dict[str, list[str]]:
        """Per edit, the pair filters whose set is written: every edit's ``all``; complementary's ``agree``
        always (as ever); any other filter a listed method trains on."""
        edits = self._edits_needed()
        sets = {e: ["all"] for e in edits}
        if "complementary" in sets:
            sets["complementary"].append("agree")
        for name in self.cfg.methods:
            m = self.cfg.method(name)
            if m.edit in sets and m.pair_filter not in sets[m.edit]:
                sets[m.edit].append(m.pair_filter)
        return sets

    def stage_pairs(self) -> None:
        from fairlatent.latent import (DOMAIN_EDIT, MULTI_EDIT, agreement_mask, complementary_latents_domain,
                                       edit_latents, verified_mask)
        from fairlatent.pipeline.methods import pair_set_name

        lc = self.cfg.latent
        edits = self._edits_needed()
        pair_sets = self._pair_sets()
        cfg: dict[str, Any] = {"edits": edits, "min_sin": lc.min_sin, "n_pairs": lc.n_pairs}
        # in the key only where they differ from the fixed default (complementary's agreement set), so runs
        # cached before a filter existed keep their key
        agree = sorted(e for e, f in pair_sets.items() if "agree" in f and e != "complementary")
        if agree:
            cfg["filtered"] = sorted(set(agree) | ({"complementary"} & set(edits)))
        verified = sorted(e for e, f in pair_sets.items() if "verified" in f)
        if verified:
            cfg["verified"] = verified
        deps: tuple[str, ...] = ("hyperplanes",)
        if MULTI_EDIT in edits:  # the extra attributes and their planes are keyed by the hyperplanes stage
            cfg["multi_flip"] = lc.multi_flip
            deps += ("latents_extra",)
        if not lc.edit_codes:  # in the key only when set, so earlier runs keep theirs
            cfg["edit_codes"] = False

        def fn(stage_dir: Path) -> dict[str, Any]:
            z_all, t_all, g_all, labeler = self._latent_arrays()
            h_t, h_g = self._hyperplanes()
            start = lc.n_fit + lc.n_holdout
            z = z_all[start:].astype(np.float64)
            t_z, g_z = t_all[start:], g_all[start:]
            gen = self._image_generator()
            editable = None if lc.edit_codes else _noise_entries(gen)
            imgs_z = self._decode(gen, z.astype(np.float32))
            out: dict[str, Any] = {}
            for edit in edits:
                if edit == MULTI_EDIT:
                    out[edit] = self._multi_pairs(stage_dir / pair_set_name(edit, "all"), z, t_z, g_z, imgs_z, gen,
                                                  labeler)
                    continue
                planes = None
                if edit == DOMAIN_EDIT:  # each latent's target score kept on its new group's own plane
                    planes = self._domain_planes()
                    zp = complementary_latents_domain(z, g_z, planes, h_g, min_sin=lc.min_sin).astype(np.float32)
                else:
                    zp = edit_latents(z, h_t, h_g, kind=edit, min_sin=lc.min_sin,
                                      editable=editable).astype(np.float32)
                imgs_p, scores_p = self._render_and_score(gen, labeler, zp, f"labelling G(z') [{edit}]",
                                                          keep_images=True)
                t_p, g_p = self._label(scores_p, labeler)
                n = len(z)
                flip = float((g_p != g_z).mean())
                keep = float((t_p == t_z).mean())
                agree = agreement_mask(t_z, t_p)
                verified = verified_mask(t_z, t_p, g_z, g_p)
                # what the synthetic set looks like to the classifiers: P(f_t = 1 | f_g = g) over G(z) ∪ G(z')
                t_syn = np.concatenate([t_z, t_p])
                g_syn = np.concatenate([g_z, g_p])
                p_t_given_g = {f"g{b}": float(t_syn[g_syn == b].mean()) if (g_syn == b).any() else None
                               for b in (0, 1)}
                stats = {"pairs": n, "flip_rate_g": flip, "keep_rate_t": keep,
                         "agreement_kept": int(agree.sum()), "agreement_dropped": int((~agree).sum()),
                         "verified_kept": int(verified.sum()),
                         "p_ft1_given_fg": p_t_given_g,
                         "latent_target_score_change": self._target_score_change(z, zp, g_z, h_t, planes),
                         "mean_edit_norm": float(np.linalg.norm(zp - z, axis=1).mean())}
                kept_by_filter = {"all": np.arange(n), "agree": np.flatnonzero(agree),
                                  "verified": np.flatnonzero(verified)}
                for pair_filter in pair_sets[edit]:
                    keep_idx = kept_by_filter[pair_filter]
                    name = pair_set_name(edit, pair_filter)
                    if len(keep_idx) == 0:
                        raise FairlatentError(
                            f"pairs stage: no pair of the {edit} edit passes the {pair_filter!r} filter (of {n}: "
                            f"f_g flipped on {flip:.1%}, f_t held on {keep:.1%}); the edit does not do on the "
                            f"images what it does in latent space — see the pre-flight checks")
                    ids = [f"z{i:06d}" for i in keep_idx] + [f"zp{i:06d}" for i in keep_idx]
                    table = pd.DataFrame({
                        "id": ids, "split": "train",
                        "group_id": np.concatenate([keep_idx, keep_idx]).astype(str),
                        # both G(z) and G(z') take z's target label; z' takes the flipped protected label
                        self.t: np.concatenate([t_z[keep_idx], t_z[keep_idx]]),
                        self.g: np.concatenate([g_z[keep_idx], 1 - g_z[keep_idx]]),
                    })
                    write_dataset(stage_dir / name, np.concatenate([imgs_z[keep_idx], imgs_p[keep_idx]]), table,
                                  {"source": "latent_pairs", "edit": edit, "filtered": pair_filter != "all",
                                   "pair_filter": pair_filter,
                                   "target": self.t, "protected": self.g, "seed": self.cfg.seed},
                                  latents=np.concatenate([z[keep_idx], zp[keep_idx]]).astype(np.float32),
                                  overwrite=True)
                out[edit] = stats
            return out

        self.stages.run("pairs", cfg, fn, deps=deps)

    def _multi_pairs(self, out_dir: Path, z: np.ndarray, t_z: np.ndarray, g_z: np.ndarray, imgs_z: np.ndarray, gen,
                     labeler) -> dict[str, Any]:
        """The multi-protected edit's pair set (``latent.multi_flip``) written to ``out_dir``; its statistics.

        The set holds G(z) once, then G(z'_e) for each edit e of the mode, all with z's target label; each
        protected attribute carries the labeler's label of G(z), flipped (1 − label) on the images of the edits
        that flip it and kept on the others: the convention of the complementary set, where G(z') carries the
        flipped protected label whatever the images show. Measured: per edit, on the images, the share of pairs
        whose label flipped for each flipped attribute and held for the target and each kept attribute (and for
        all of them at once), and, in latent space, the largest change of each kept score and the largest
        |s' + s| of each flipped score (0 up to rounding: the closed form is exact).
        """
        from dataclasses import replace

        from fairlatent.latent import MULTI_EDIT, multi_protected_edits, multi_protected_jobs

        lc = self.cfg.latent
        h_t, h_g = self._hyperplanes()
        h_t = replace(h_t, name=self.t)
        planes = {self.g: replace(h_g, name=self.g), **self._extra_planes()}
        mode = self.g if lc.multi_flip == "one" else lc.multi_flip
        jobs = multi_protected_jobs(list(planes), mode)
        zps = multi_protected_edits(z, h_t, planes, mode, min_sin=lc.min_sin)
        start = lc.n_fit + lc.n_holdout
        prot_z = {self.g: g_z, **{a: lab for a, lab in zip(self.extra, self._extra_labels()[start:].T)}}
        extra_labelers = self._extra_labelers()
        n = len(z)
        images, latents = [imgs_z], [z]
        ids = [f"z{i:06d}" for i in range(n)]
        cols: dict[str, list[np.ndarray]] = {self.t: [t_z], **{a: [lab] for a, lab in prot_z.items()}}
        by_edit: dict[str, Any] = {}
        for j, (key, flip) in enumerate(jobs.items()):
            zp = zps[key]
            imgs_p, scores_p = self._render_and_score(gen, labeler, zp.astype(np.float32),
                                                      f"labelling G(z') [{MULTI_EDIT}: {key}]", keep_images=True)
            t_p, g_p = self._label(scores_p, labeler)
            prot_p = {self.g: g_p, **{a: lab for a, lab in
                                      zip(self.extra, self._label_extra(self._score_extra(imgs_p, extra_labelers),
                                                                        extra_labelers).T)}}
            changed = {a: prot_p[a] != prot_z[a] for a in planes}
            held_t = t_p == t_z
            did = held_t & np.all([changed[a] if a in flip else ~changed[a] for a in planes], axis=0)
            flipped_all = np.all([changed[a] for a in flip], axis=0)
            kept_all = held_t & np.all([~changed[a] for a in planes if a not in flip] or [np.ones(n, bool)], axis=0)
            score_change = {self.t: float(np.abs(h_t.decision(zp) - h_t.decision(z)).max())}
            for a, h in planes.items():  # kept: s' = s; flipped: s' = −s
                d, dp = h.decision(z), h.decision(zp)
                score_change[a] = float(np.abs(dp + d).max() if a in flip else np.abs(dp - d).max())
            by_edit[key] = {
                "flip": list(flip), "keep": [a for a in planes if a not in flip],
                "flip_rate": {a: float(changed[a].mean()) for a in flip},
                "keep_rate": {self.t: float(held_t.mean()),
                              **{a: float((~changed[a]).mean()) for a in planes if a not in flip}},
                "flip_rate_all": float(flipped_all.mean()), "keep_rate_all": float(kept_all.mean()),
                "did_all_rate": float(did.mean()),
                "latent_score_change": score_change,
                "mean_edit_norm": float(np.linalg.norm(zp - z, axis=1).mean())}
            images.append(imgs_p)
            latents.append(zp)
            ids += [f"zp{j}_{i:06d}" for i in range(n)]
            cols[self.t].append(t_z)
            for a in planes:
                cols[a].append(1 - prot_z[a] if a in flip else prot_z[a])
        table = pd.DataFrame({"id": ids, "split": "train",
                              "group_id": np.tile(np.arange(n), len(jobs) + 1).astype(str),
                              **{c: np.concatenate(v) for c, v in cols.items()}})
        write_dataset(out_dir, np.concatenate(images), table,
                      {"source": "latent_pairs", "edit": MULTI_EDIT, "filtered": False, "pair_filter": "all",
                       "multi_flip": lc.multi_flip, "edits": [{"key": k, "flip": f} for k, f in jobs.items()],
                       "target": self.t, "protected": self.g, "protected_extra": self.extra,
                       "seed": self.cfg.seed},
                      latents=np.concatenate(latents).astype(np.float32), overwrite=True)
        t_syn, g_syn = table[self.t].to_numpy(), table[self.g].to_numpy()
        stats = [v for v in by_edit.values()]
        return {"pairs": n, "images": int(len(table)), "multi_flip": lc.multi_flip,
                # the preflight's and the summary's figures, averaged over the edits: every edit's flipped
                # attributes flipped / its target and kept attributes held, on the images
                "flip_rate_g": float(np.mean([e["flip_rate_all"] for e in stats])),
                "keep_rate_t": float(np.mean([e["keep_rate_all"] for e in stats])),
                "agreement_kept": int(sum(round(e["keep_rate"][self.t] * n) for e in stats)),
                "agreement_dropped": int(sum(n - round(e["keep_rate"][self.t] * n) for e in stats)),
                "verified_kept": int(sum(round(e["did_all_rate"] * n) for e in stats)),
                "p_ft1_given_fg": {f"g{b}": float(t_syn[g_syn == b].mean()) if (g_syn == b).any() else None
                                   for b in (0, 1)},
                "latent_target_score_change": max(e["latent_score_change"][self.t] for e in stats),
                "mean_edit_norm": float(np.mean([e["mean_edit_norm"] for e in stats])),
                "by_edit": by_edit}

    # ------------------------------------------------------------------ pre-flight (fairlatent.latent.preflight)
    def _preflight_geometry(self):
        """Cell rates of the labelled G(z) against the real train split, h_t/h_g held-out accuracy, cos θ."""
        from fairlatent.latent.preflight import extra_plane_checks, labeler_checks, preflight_checks
        from fairlatent.pipeline.summary import label_cells

        real = label_cells(self._data(), self.t, self.g)["train"]
        hp = self.stages.results["hyperplanes"].outputs
        bounds = self.cfg.latent.preflight_bounds()
        checks = preflight_checks(bounds=bounds,
                                  generated_cells=self.stages.results["latents"].outputs["cells"], real_cells=real,
                                  heldout_acc_t=hp["h_t"]["heldout_acc"], heldout_acc_g=hp["h_g"]["heldout_acc"],
                                  cos_theta=hp["cos_theta"])
        # the further planes an edit uses: the extra protected attributes', and the per-group target planes
        planes = dict(hp.get("h_extra", {}))
        planes.update({f"t[{self.g}={k}]": {"heldout_acc": r["heldout_acc"], "cos_g": r["cos_theta"]}
                       for k, r in hp.get("h_t_by_group", {}).items() if r.get("heldout_acc") is not None})
        checks += extra_plane_checks(planes, bounds=bounds)
        lab = self.stages.results.get("labeler_check")
        if lab is not None:
            checks += labeler_checks(lab.outputs["accuracy"], lab.outputs["counts"], bounds=bounds,
                                     split=lab.outputs["split"])
        return checks

    def _preflight_edits(self):
        """f_g flip rate and f_t keep rate on the rendered pairs, for every edit a method trains on."""
        from fairlatent.latent.preflight import preflight_checks

        checks = []
        for edit, stats in self.stages.results["pairs"].outputs.items():
            if "by_edit" in stats:  # the multi-protected edit: one pair of checks per edit of its mode, where
                # "flipped" is every attribute it flips and "held" the target and every protected one it keeps
                for key, e in stats["by_edit"].items():
                    checks += preflight_checks(bounds=self.cfg.latent.preflight_bounds(),
                                               flip_rate_g=e["flip_rate_all"], keep_rate_t=e["keep_rate_all"],
                                               verified_rate=e["did_all_rate"],
                                               edit=f"{edit}: flip {'+'.join(e['flip'])}")
                continue
            checks += preflight_checks(bounds=self.cfg.latent.preflight_bounds(), flip_rate_g=stats["flip_rate_g"],
                                       keep_rate_t=stats["keep_rate_t"],
                                       verified_rate=stats["verified_kept"] / max(stats["pairs"], 1), edit=edit)
        return checks

    def _pair_uses(self) -> dict[str, tuple[str, str]]:
        """Per listed method that trains on pairs, (its edit, its pair filter): what decides which failed
        checks block it (:func:`fairlatent.latent.preflight.blocks`)."""
        return pair_uses(self.cfg.methods, self.cfg.latent.pair_filter)

    def _preflight_gate(self, checks) -> None:
        """Warn about each failed check (every run, cached or not) — a warning when it blocks a listed method,
        a caution when it does not; with ``latent.strict`` stop here on a blocking one, naming the methods
        these checks do not concern (a refusal should say what can still be run)."""
        from fairlatent.latent.preflight import blocking, strict_failure_message, warn_failed

        uses = list(self._pair_uses().values())
        warn_failed(checks, uses)
        if self.cfg.latent.strict and blocking(checks, uses):
            raise FairlatentError(f"{strict_failure_message(checks, uses)}. "
                                  f"Instead: {no_edit_alternatives_sentence()}")

    def stage_preflight(self) -> None:
        """The checks' record for the report, and a few G(z) per labelled cell (so a person can see what
        f_t, f_g call each cell): ``preflight/cell_samples.npz``, up to ``CELL_SAMPLES`` images per cell, the
        first latents of the latents stage that fall in the cell."""
        from fairlatent.latent.preflight import CELLS, blocks, verdict

        bounds = self.cfg.latent.preflight_bounds()
        checks = self._preflight_geometry() + self._preflight_edits()
        cfg = {"bounds": vars(bounds), "cell_samples": CELL_SAMPLES}

        def fn(stage_dir: Path) -> dict[str, Any]:
            z, t_lab, g_lab, _ = self._latent_arrays()
            gen = self._image_generator()
            arrays = {}
            for c in CELLS:
                a, b = int(c[1]), int(c[4])
                idx = np.flatnonzero((t_lab == a) & (g_lab == b))[:CELL_SAMPLES]
                if idx.size:
                    arrays[c] = self._decode(gen, z[idx].astype(np.float32))
            with open(stage_dir / "cell_samples.npz.tmp", "wb") as fh:
                np.savez(fh, **arrays)
            os.replace(stage_dir / "cell_samples.npz.tmp", stage_dir / "cell_samples.npz")
            return {}

        self.stages.run("preflight", cfg, fn, deps=("data", "latents", "hyperplanes", "pairs"))
        # the checks are recomputed each run from the cached figures (cheap): they follow the current bounds
        uses = self._pair_uses()
        run_verdict = verdict(checks, uses)
        self.preflight = {"passed": run_verdict["passed"], "strict": self.cfg.latent.strict,
                          "checks": [{**c.to_dict(), "blocks": blocks(c, uses.values())} for c in checks],
                          "by_method": run_verdict["by_method"]}

    def _method_context(self) -> MethodContext:
        pairs = self.stages.results.get("pairs")
        translations = self.stages.results.get("translations")
        oversampled = self.stages.results.get("oversample")
        return MethodContext(data_path=self.stages.results["data"].outputs["path"],
                             pairs_dir=pairs.dir if pairs is not None else None, target=self.t, protected=self.g,
                             translations=str(translations.dir / "dataset") if translations is not None else None,
                             oversampled=str(oversampled.dir / "dataset") if oversampled is not None else None,
                             load_dataset=load_dataset)

    # ------------------------------------------------------------------ image-space counterfactuals (CycleGAN)
    def stage_translator(self) -> None:
        """A CycleGAN between the protected groups of the real train split (:mod:`fairlatent.train.cyclegan`).
        It depends on the data and the protected attribute only, not on the target."""
        from fairlatent.train.cyclegan import load_translator, train_translator
        from fairlatent.train.engine import cache_dump

        if self.cfg.translator_path is not None:  # a given translator: check it fits, record its identity
            path = Path(self.cfg.translator_path)
            given = load_translator(path)  # names the path if it is missing, unfinished or not a translator
            if given.protected != self.g:
                raise FairlatentError(f"translator_path {path}: the translator maps between the groups of "
                                      f"{given.protected!r}, but this run's protected attribute is {self.g!r}")
            size = self._data().images.shape[1]
            if given.size != size:
                raise FairlatentError(f"translator_path {path}: the translator was trained on {given.size}-px "
                                      f"images, but this run's images are {size} px")
            ident = {"record": given.record, "weights": _content_hash(path / "translator.safetensors")[:16]}
            self.stages.run("translator", {"given": str(path.resolve()), "fingerprint": ident},
                            lambda stage_dir: {"path": str(path.resolve()), "given": True}, deps=("data",))
            return
        tcfg = self.cfg.translator_spec()
        key = {"translator": cache_dump(tcfg, {}), "steps": tcfg.steps, "epochs": tcfg.epochs, "protected": self.g}

        def fn(stage_dir: Path) -> dict[str, Any]:
            train_translator(self.stages.results["data"].outputs["path"], self.g, stage_dir / "model", tcfg,
                             resume=True, progress=self.progress)
            return {"path": str((stage_dir / "model").resolve())}

        self.stages.run("translator", key, fn, deps=("data",))

    def stage_translations(self) -> None:
        """Every real training image translated to the other protected group, keeping its target label; what
        the translation did, read by the labelers as on G(z'): the share whose f_g label flipped and whose f_t
        label held (against the labels of the original), and FID/KID/precision/recall/density/coverage of the
        translations against the real images of the group they were translated into (the labeler's features)."""
        from fairlatent.train.cyclegan import load_translator, translate_dataset

        def fn(stage_dir: Path) -> dict[str, Any]:
            ds = self._data()
            tr = ds.split_indices("train")
            translator = load_translator(self.stages.results["translator"].outputs["path"])
            images, to_group = translate_dataset(translator, ds, "train")
            labelers = self._labelers()  # their predict_scores scores in batches
            t_x, g_x = self._label(self._score(np.asarray(ds.images[tr]), labelers), labelers)
            t_tx, g_tx = self._label(self._score(images, labelers), labelers)
            table = pd.DataFrame({"id": [f"tx_{i}" for i in ds.ids[tr]], "split": "train",
                                  "group_id": ds.table["group_id"].to_numpy()[tr].astype(str)
                                  if "group_id" in ds.table.columns else ds.ids[tr].astype(str),
                                  self.t: ds.labels(self.t, tr), self.g: to_group})
            write_dataset(stage_dir / "dataset", images, table,
                          {"source": "cyclegan_translations", "protected": self.g, "target": self.t,
                           "seed": self.cfg.seed}, overwrite=True)
            stats = {"images": int(len(images)), "flip_rate_g": float((g_tx != g_x).mean()),
                     "keep_rate_t": float((t_tx == t_x).mean()),
                     "flip_rate_g_vs_truth": float((g_tx == to_group).mean()),
                     "quality": self._translation_quality(ds, images, to_group)}
            return stats

        self.stages.run("translations", {"labels": self.cfg.latent.threshold, "seed": self.cfg.seed}, fn,
                        deps=("data", "translator", "labeler"))

    def _translation_quality(self, ds: Dataset, images: np.ndarray, to_group: np.ndarray) -> list[dict[str, Any]]:
        """FID/KID/P/R/D/C of the translations into each group against that group's real training images, in
        the labeler's penultimate features (as the pipeline measures G(z))."""
        from fairlatent.models.classifier import load_classifier
        from fairlatent.pipeline.generative_report import metric_row

        clf = load_classifier(self.stages.results["labeler"].outputs["g"])
        tr = ds.split_indices("train")
        g_real = ds.labels(self.g, tr)
        n = self.cfg.evaluation.n_generative
        rng = np.random.default_rng(self.cfg.seed)
        rows = []
        for grp in (0, 1):
            real_idx = np.sort(rng.choice(tr[g_real == grp], size=min(n, int((g_real == grp).sum())), replace=False))
            fake_idx = np.flatnonzero(to_group == grp)
            fake_idx = np.sort(rng.choice(fake_idx, size=min(n, fake_idx.size), replace=False))
            # the handle's features() extracts in batches
            rows.append(metric_row(f"T(x) into {self.g}={grp}", clf.features(np.asarray(ds.images[real_idx])),
                                   clf.features(images[fake_idx]), self.cfg.seed))
        return rows

    def stage_train(self, method: str) -> None:
        """Train the target classifier of one registered method (:mod:`fairlatent.pipeline.methods`)."""
        from fairlatent.train.classifier import train_classifier

        spec = self.cfg.method(method)
        ccfg = self._classifier_config()
        deps = ("data", "pairs") if spec.needs_pairs else ("data", "translations") if spec.translated else ("data",)
        if spec.oversampled:
            deps = ("data", "oversample")

        def fn(stage_dir: Path) -> dict[str, Any]:
            ctx = self._method_context()
            ts = spec.training_sets(ctx)
            val_weights = None
            if spec.balanced_val:  # the paper selects augmented models by group-balanced validation AP
                ds = self._data()
                va = ds.split_indices("val")
                val_weights = reweighting_weights(ds.labels(self.t, va), ds.labels(self.g, va))
            train_classifier(ts.sets, [self.t], stage_dir / "model", ccfg, val_set=ctx.data_path,
                             sample_weights=ts.weights, val_weights=val_weights, progress=self.progress,
                             domain_attribute=self.g if spec.domain_heads else None,
                             domain_head=spec.domain_heads or "independent")
            return {"path": str((stage_dir / "model").resolve())}

        config: dict[str, Any] = {"method": method, "classifier": ccfg.cache_key()}
        if spec.needs_pairs:  # the name alone does not say which pairs (latent_debias's follow latent.pair_filter)
            config["pairs"] = spec.pair_set
        self.stages.run(f"train_{method}", config, fn, deps=deps)

    def stage_evaluate(self) -> None:
        from fairlatent.metrics.bootstrap import bootstrap_metrics, paired_difference
        from fairlatent.metrics.fairness import calibrated_threshold

        from fairlatent.metrics.bootstrap import ALL_METRICS
        from fairlatent.train.postprocess import fit_threshold_optimizer, predict_post_processed

        ev = self.cfg.evaluation
        deps = tuple(f"train_{m}" for m in self.cfg.methods if get_method(m).trains)
        # "val": every scored method is also bootstrapped on the validation split, beside the baseline on the
        # same resamples (the validation check of the report: a method that raised DEO there is named before
        # anyone reads test)
        cfg = {"n_boot": ev.n_boot, "ci": ev.ci, "seed": self.cfg.seed, "paired": True, "val": True}
        post = [m for m in self.cfg.methods if get_method(m).post_process is not None]
        if post:  # they train nothing, so no dependency names them: the key must
            cfg["post_processed"] = post
        probed = [m for m in self.cfg.methods if get_method(m).probe_scored]
        if probed:  # scored by the oversample stage's autoencoder (in the key only when listed)
            cfg["probe_scored"] = probed
            deps = (*deps, "oversample")
        if self.extra:  # in the key only when set, so a run without extra protected attributes keeps its key
            cfg["protected_extra"] = self.extra
        # decisions, not scores: AP and the score distributions' KL do not apply to post-processed methods
        decision_metrics = tuple(k for k in ALL_METRICS if k not in ("AP", "KL"))

        def fn(stage_dir: Path) -> dict[str, Any]:
            ds = self._data()
            results: dict[str, Any] = {}
            scores_out: dict[str, np.ndarray] = {}
            # (method, split) -> bootstrap samples; (method, split, attribute) for an extra protected attribute
            samples: dict[tuple[str, ...], dict[str, np.ndarray]] = {}
            # read each evaluation split once; every method is scored on the same images
            va = ds.split_indices("val")
            val_images, val_y, val_g = np.asarray(ds.images[va]), ds.labels(self.t, va), ds.labels(self.g, va)
            scores_out["_y/val"], scores_out["_g/val"] = val_y, val_g
            splits: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
            extra_g: dict[str, dict[str, np.ndarray]] = {}  # split -> extra protected attribute -> labels
            for split in EVAL_SPLITS:
                idx = ds.split_indices(split, required=split == "test")
                if idx.size:
                    splits[split] = (np.asarray(ds.images[idx]), ds.labels(self.t, idx), ds.labels(self.g, idx))
                    scores_out[f"_y/{split}"], scores_out[f"_g/{split}"] = splits[split][1:]
                    extra_g[split] = {a: ds.labels(a, idx) for a in self.extra}
                    for a, lab in extra_g[split].items():
                        scores_out[f"_protected/{a}/{split}"] = lab

            def by_protected(m: str, split: str, y: np.ndarray, s: np.ndarray, th: float,
                             metrics: tuple[str, ...]) -> None:
                """The fairness metrics of one method's scores (or decisions) on one split for every protected
                attribute: the main one's are those just computed, each extra one's bootstrapped on the same
                resamples (same seed, same split size), its samples kept for the paired differences."""
                if not self.extra:
                    return
                per = results[m].setdefault("by_protected", {a: {} for a in (self.g, *self.extra)})
                per[self.g][split] = {k: v for k, v in results[m][split].items() if k in PROTECTED_METRICS}
                for a, g_a in extra_g[split].items():
                    per[a][split], samples[m, split, a] = bootstrap_metrics(
                        y, s, sensitive_features=g_a, threshold=th, n_boot=ev.n_boot, ci=ev.ci, seed=self.cfg.seed,
                        metrics=tuple(k for k in metrics if k in PROTECTED_METRICS), return_samples=True)
            val_scores: dict[str, np.ndarray] = {}
            for m in self.cfg.methods:
                spec = get_method(m)
                if not spec.scores:
                    continue
                score = self._scorer(m)
                val_scores[m] = score(val_images)
                th = float(calibrated_threshold(val_y, val_scores[m]))
                results[m] = {"threshold": th}
                # validation, at the threshold calibrated on it: the model selection a user would make there
                results[m]["val"], samples[m, "val"] = bootstrap_metrics(
                    val_y, val_scores[m], sensitive_features=val_g, threshold=th, n_boot=ev.n_boot, ci=ev.ci,
                    seed=self.cfg.seed, return_samples=True)
                scores_out[f"{m}/val"] = val_scores[m]
                for split, (images, y, g) in splits.items():
                    s = score(images)
                    results[m][split], samples[m, split] = bootstrap_metrics(
                        y, s, sensitive_features=g, threshold=th, n_boot=ev.n_boot, ci=ev.ci, seed=self.cfg.seed,
                        return_samples=True)
                    scores_out[f"{m}/{split}"] = s
                    by_protected(m, split, y, s, th, ALL_METRICS)
            for m in self.cfg.methods:  # post-processing of the baseline's scores (fitted on val)
                spec = get_method(m)
                if spec.post_process is None:
                    continue
                # fitted on val, so it gets no validation figures (they would be in-sample)
                opt = fit_threshold_optimizer(val_scores["baseline"], val_y, val_g, constraints=spec.post_process)
                results[m] = {"threshold": None, "post_processing": {
                    "of": "baseline", "constraints": spec.post_process, "objective": "balanced_accuracy_score",
                    "not_applicable": ["AP", "KL"]}}
                for split, (_, y, g) in splits.items():
                    decisions = predict_post_processed(opt, scores_out[f"baseline/{split}"], g, seed=self.cfg.seed)
                    # 0/1 decisions above the threshold 0.5 are the decisions themselves
                    results[m][split], samples[m, split] = bootstrap_metrics(
                        y, decisions.astype(np.float64), sensitive_features=g, threshold=0.5, n_boot=ev.n_boot,
                        ci=ev.ci, seed=self.cfg.seed, metrics=decision_metrics, return_samples=True)
                    scores_out[f"{m}/{split}/decisions"] = decisions
                    by_protected(m, split, y, decisions.astype(np.float64), 0.5, decision_metrics)
            # every method was scored on the same resamples of each split: compare each with the baseline
            if "baseline" in self.cfg.methods:
                for m in self.cfg.methods:
                    if m == "baseline":
                        continue
                    results[m]["paired_vs_baseline"] = {
                        split: paired_difference(samples[m, split], samples["baseline", split], ci=ev.ci)
                        for split in (*EVAL_SPLITS, "val") if (m, split) in samples}
                    if self.extra:  # the same comparison for every protected attribute (the main one's is above)
                        results[m]["by_protected_vs_baseline"] = {
                            self.g: {split: {k: v for k, v in paired.items() if k in PROTECTED_METRICS}
                                     for split, paired in results[m]["paired_vs_baseline"].items()},
                            **{a: {split: paired_difference(samples[m, split, a], samples["baseline", split, a],
                                                            ci=ev.ci)
                                   for split in EVAL_SPLITS if (m, split, a) in samples} for a in self.extra}}
            with open(stage_dir / "scores.npz.tmp", "wb") as fh:
                np.savez(fh, **scores_out)
            os.replace(stage_dir / "scores.npz.tmp", stage_dir / "scores.npz")
            return results

        self.stages.run("evaluate", cfg, fn, deps=deps)

    def _scorer(self, method: str) -> Callable[[np.ndarray], np.ndarray]:
        """The function that gives ``method``'s target scores of images: its trained classifier's, or, for a
        probe-scored method, the oversample stage's autoencoder's P(target = 1)."""
        from fairlatent.models.classifier import load_classifier

        if get_method(method).probe_scored:
            from fairlatent.oversample.rae import load_rae
            from fairlatent.pipeline.latent_oversample import probe_target_scores

            model = load_rae(self.stages.results["oversample"].dir / "model")
            return lambda images: probe_target_scores(model, images)
        clf = load_classifier(self.stages.results[f"train_{method}"].outputs["path"])
        return lambda images: clf.predict_scores(images)[:, 0]

    def stage_generative(self) -> None:
        ev = self.cfg.evaluation
        if not ev.generative_metrics or "pairs" not in self.stages.results:
            return
        if "complementary" not in self.stages.results["pairs"].outputs:
            # measured on the complementary pairs only (G(z) and G(z') halves); a run whose methods train on
            # other edits alone has none
            self.console.print("[dim]stage generative: no complementary pairs in this run, skipped[/]")
            return
        from fairlatent.pipeline.generative_report import generative_metrics_by_cell

        cfg = {"n": ev.n_generative, "seed": self.cfg.seed}

        def fn(stage_dir: Path) -> dict[str, Any]:
            return generative_metrics_by_cell(
                real=self._data(), pairs=load_dataset(self.stages.results["pairs"].dir / "complementary"),
                labeler_dir=self.stages.results["labeler"].outputs["g"], target=self.t, protected=self.g,
                n=ev.n_generative, seed=self.cfg.seed, cache_dir=stage_dir / "cache", progress=self.progress)

        self.stages.run("generative", cfg, fn, deps=("pairs", "labeler"))

    # ------------------------------------------------------------------ driver
    def run(self) -> dict[str, Any]:
        t0 = time.perf_counter()
        # a folder of the user's is refused untouched; a run folder from before the marker, by its data stage
        claim_output_directory(self.run_dir, recognise=lambda d: (d / "data" / "stage.json").is_file())
        write_json(self.run_dir / "config.json", self.cfg.model_dump())
        self.stage_data()
        needs_latent = self.cfg.needs_pairs()
        if needs_latent:
            self.stage_gan()
        if needs_latent or self.cfg.needs_translations():
            self.stage_labeler()
        if needs_latent:
            self.stage_labeler_check()
        multi = self.cfg.needs_multi()
        if multi:
            self.stage_labelers_extra()
        if self.cfg.needs_translations():
            self.stage_translator()
            self.stage_translations()
        if needs_latent:
            self.stage_latents()
            if multi:
                self.stage_latents_extra()
            self.stage_hyperplanes()
            # the geometry before rendering pairs (strict stops here, before the cost of the pairs), the edit after
            self._preflight_gate(self._preflight_geometry())
            self.stage_pairs()
            self._preflight_gate(self._preflight_edits())
            self.stage_preflight()
        if self.cfg.needs_oversample():  # only when a method asks: other runs keep their stages and keys
            from fairlatent.pipeline.latent_oversample import stage_oversample, stage_oversample_check

            stage_oversample(self)
            # the decoded images as the labelers read them (none are decoded by the classes = 'target' control)
            if "labeler" in self.stages.results and self.cfg.oversample.classes == "cells":
                stage_oversample_check(self)
        for m in self.cfg.methods:
            if get_method(m).trains:
                self.stage_train(m)
        self.stage_evaluate()
        if self.cfg.audit.enabled:
            from fairlatent.pipeline.audit import stage_audit

            stage_audit(self)
        if needs_latent:
            self.stage_generative()
        from fairlatent.pipeline.summary import write_summary

        # report.json only: report.html and the terminal tables are the report layer's (fairlatent.report)
        return write_summary(self, total_seconds=time.perf_counter() - t0)


def load_labelers(outputs: dict[str, Any]):
    """(f_t, f_g) classifier handles from a labeler stage's outputs (``t``, ``g``: model paths); the same
    handle twice when one network labels both."""
    from fairlatent.models.classifier import load_classifier

    f_t = load_classifier(outputs["t"])
    return f_t, (f_t if outputs["g"] == outputs["t"] else load_classifier(outputs["g"]))


def labeler_scores(images: np.ndarray, labelers, target: str, protected: str) -> np.ndarray:
    """N×2 scores of images: f_t's of ``target``, f_g's of ``protected`` (one network may be both)."""
    f_t, f_g = labelers
    s_t = f_t.predict_scores(images)
    s_g = s_t if f_g is f_t else f_g.predict_scores(images)
    return np.stack([s_t[:, f_t.attributes.index(target)], s_g[:, f_g.attributes.index(protected)]], axis=1)


def _noise_entries(gen) -> np.ndarray:
    """The edit's ``editable`` mask under ``latent.edit_codes = false``: the generator's N(0, I) entries; refused
    for a generator without codes (a given one: the config cannot know it before it is loaded)."""
    spec = gen.latent_spec
    if not spec.codes:
        raise FairlatentError(f"latent.edit_codes = false holds the generator's codes fixed in the edit, but the "
                              f"generator {getattr(gen, 'source', '')} has no codes (its latent is {spec.dim} "
                              f"N(0, I) entries): leave latent.edit_codes at true")
    return spec.normal_mask()


def labeler_labels(scores: np.ndarray, labelers, target: str, protected: str,
                   threshold: str) -> tuple[np.ndarray, np.ndarray]:
    """Binary (t, g) labels of N×2 :func:`labeler_scores`, each at its labeler's ``threshold`` kind."""
    f_t, f_g = labelers
    th_t, th_g = f_t.thresholds[target][threshold], f_g.thresholds[protected][threshold]
    return (scores[:, 0] > th_t).astype(np.int64), (scores[:, 1] > th_g).astype(np.int64)


def labeler_cell_reading(t_hat: np.ndarray, g_hat: np.ndarray, t: np.ndarray, g: np.ndarray,
                         cells) -> dict[str, dict[str, Any]]:
    """Per cell of ``cells`` (names ``t<a>_g<b>``): how many images carry its labels (``t``, ``g``), and the
    shares of them whose labeler labels ``t_hat`` / ``g_hat`` are the cell's target (``t_agree``), protected
    value (``g_agree``) and both (``in_cell``); None for a cell without images. The labelers' per-cell
    accuracy on real images (:func:`labeler_cell_accuracy`) and their reading of decoded ones
    (:func:`fairlatent.pipeline.latent_oversample.labelers_read_oversampled`) are both this."""
    out: dict[str, dict[str, Any]] = {}
    for c in cells:
        a, b = int(c[1]), int(c[4])
        rows = (t == a) & (g == b)
        n = int(rows.sum())
        out[c] = {"images": n, "t_agree": float((t_hat[rows] == a).mean()) if n else None,
                  "g_agree": float((g_hat[rows] == b).mean()) if n else None,
                  "in_cell": float(((t_hat[rows] == a) & (g_hat[rows] == b)).mean()) if n else None}
    return out


def labeler_cell_accuracy(ds: Dataset, target: str, protected: str, f_t, f_g, threshold: str,
                          split: str = "val") -> dict[str, Any]:
    """f_t's accuracy on ``target`` and f_g's on ``protected`` among the real ``split`` images of each
    (target, protected) cell, each labeler thresholded at its own ``threshold`` kind (as G(z) is labelled):
    ``{"split", "accuracy": {"t": {cell: acc}, "g": {cell: acc}}, "counts": {cell: images}}`` (a cell with no
    image has no accuracy). What the pre-flight's labeler check reads (:func:`fairlatent.latent.preflight.
    labeler_checks`)."""
    from fairlatent.latent.preflight import CELLS

    idx = ds.split_indices(split, required=False)
    acc: dict[str, dict[str, float]] = {"t": {}, "g": {}}
    counts: dict[str, int] = {}
    if len(idx):
        scores = labeler_scores(np.asarray(ds.images[idx]), (f_t, f_g), target, protected)
        t_hat, g_hat = labeler_labels(scores, (f_t, f_g), target, protected, threshold)
        per = labeler_cell_reading(t_hat, g_hat, ds.labels(target, idx), ds.labels(protected, idx), CELLS)
        for c, r in per.items():
            counts[c] = r["images"]
            if r["images"]:
                acc["t"][c], acc["g"][c] = r["t_agree"], r["g_agree"]
    return {"split": split, "accuracy": acc, "counts": counts}


def run_pipeline(config: PipelineConfig, run_dir: str | os.PathLike, *, console: Console | None = None,
                 progress: bool = True) -> dict[str, Any]:
    """Run (or resume) the whole pipeline in ``run_dir``; return the report dict (also in report.json).

    ``fairlatent.report.build_report(run_dir)`` then renders report.html and prints the tables. One run per
    folder at a time: the folder's lock (:mod:`fairlatent.utils.lock`) refuses a second, naming the first."""
    from fairlatent.utils.lock import folder_lock

    with folder_lock(run_dir, what="fairlatent run", hint="; or choose another --out"):
        return Pipeline(config, run_dir, console=console, progress=progress).run()


__all__ = ["labeler_cell_accuracy", "labeler_cell_reading", "labeler_labels", "labeler_scores", "load_labelers",
           "Pipeline", "run_pipeline"]
