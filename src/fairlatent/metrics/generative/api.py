"""One entry point for all generative metrics (torch-fidelity style) and the shared feature extraction.

``compute_generative_metrics(real, fake, ...)`` resolves both inputs (:mod:`.inputs`), extracts features
once per input with one extractor (:mod:`.features`; cached on disk when ``cache_dir`` is given), and
computes the requested metrics from those features. ``extract_features`` is public so a caller (the
pipeline report) can extract once and pass :class:`Features` subsets per (target, protected) cell.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from fairlatent.errors import FairlatentError
from fairlatent.metrics.generative.features import FeatureCache, Features, make_extractor
from fairlatent.metrics.generative.fid import MetricNote, fid_from_features
from fairlatent.metrics.generative.inception_score import inception_score
from fairlatent.metrics.generative.inputs import ResolvedSource, resolve_source
from fairlatent.metrics.generative.kid import kernel_inception_distance
from fairlatent.metrics.generative.prdc import compute_prdc
from fairlatent.utils.device import default_device


def resize_images(images: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 N×H×W×3 → N×size×3 by antialiased bilinear resampling (rounded back to uint8)."""
    if images.shape[1:3] == tuple(size):
        return images
    x = torch.from_numpy(np.require(images, requirements=["C", "W"])).permute(0, 3, 1, 2).float()  # no read-only warning
    y = F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False, antialias=True)
    return y.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def _progress(enabled: bool):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                    disable=not enabled, transient=False)


def _check_finite(arr: np.ndarray, where: str) -> np.ndarray:
    arr = np.asarray(arr)
    if not np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float32)
    bad = ~np.isfinite(arr)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise FairlatentError(f"{where}: feature row {row}, column {col} is {arr[row, col]} (NaN/inf features)")
    return arr


def _extract_resolved(src: ResolvedSource, extractor, *, batch_size: int, cache: FeatureCache | None,
                      need_logits: bool, target_size: tuple[int, int] | None, progress: bool,
                      label: str) -> dict[str, np.ndarray]:
    if src.features is not None:
        if need_logits:
            raise FairlatentError(f"{label}: the Inception Score needs logits, but precomputed features were given")
        return {"features": src.features}
    ident = None
    if cache is not None and src.identity is not None:
        ident = FeatureCache.key(f"{src.identity}|size{target_size}", extractor.identity)
        hit = cache.load(ident, need_logits)
        if hit is not None:
            return hit
    parts: dict[str, list[np.ndarray]] = {}
    with _progress(progress) as bar:
        task = bar.add_task(f"{label}: {extractor.name}", total=src.n)
        for a in range(0, src.n, batch_size):
            b = min(src.n, a + batch_size)
            images = src.batch(a, b)
            if target_size is not None:
                images = resize_images(images, target_size)
            out = extractor.extract(images)
            for k, v in out.items():
                parts.setdefault(k, []).append(np.asarray(v))
            bar.advance(task, b - a)
    outputs = {k: np.concatenate(v) for k, v in parts.items()}
    if need_logits and "logits" not in outputs:
        raise FairlatentError(f"the Inception Score needs class logits; extractor {extractor.name} gives none "
                              "(use features='inception')")
    if cache is not None and ident is not None:
        cache.save(ident, outputs, {"data": src.identity, "extractor": extractor.identity, "n": src.n})
    return outputs


def extract_features(
    source: Any,
    extractor: Any = "pixels",
    *,
    n: int | None = None,
    seed: int = 0,
    batch_size: int = 64,
    cache_dir=None,
    classifier=None,
    inception_weights=None,
    image_size: tuple[int, int] | int | None = None,
    return_logits: bool = False,
    device=None,
    progress: bool = False,
):
    """Features (float32 N×D) of any accepted source with one extractor; ``(features, logits)`` with logits.

    ``extractor`` is "domain" | "inception" | "pixels" | an extractor object | a callable. ``image_size``
    resizes images first (an int means square). ``n``/``seed`` apply when the source is a generator.
    """
    ext = make_extractor(extractor, classifier=classifier, inception_weights=inception_weights, seed=seed,
                         device=device)
    src = resolve_source(source, where="source", n=n, seed=seed, batch_size=batch_size, device=device)
    size = (image_size, image_size) if isinstance(image_size, int) else image_size
    if size is None and getattr(ext, "image_size", None):
        size = (ext.image_size, ext.image_size)
    cache = FeatureCache(cache_dir) if cache_dir is not None else None
    out = _extract_resolved(src, ext, batch_size=batch_size, cache=cache, need_logits=return_logits,
                            target_size=size, progress=progress, label="source")
    feats = _check_finite(out["features"], "source")
    return (feats, out["logits"]) if return_logits else feats


def compute_generative_metrics(
    real: Any,
    fake: Any,
    *,
    fid: bool = True,
    kid: bool = True,
    isc: bool = False,
    prdc: bool = True,
    features: Any = "domain",
    k_pr: int = 3,
    k_dc: int = 5,
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
    isc_splits: int = 10,
    n_fake: int | None = None,
    seed: int = 0,
    batch_size: int = 64,
    cache_dir=None,
    inception_weights=None,
    classifier=None,
    pixels_dim: int | None = None,
    device=None,
    progress: bool = True,
) -> dict[str, Any]:
    """FID, KID, IS, precision/recall and density/coverage of ``fake`` against ``real``.

    Parameters
    ----------
    real, fake
        Data set directory, :class:`~.inputs.DatasetSelection`, uint8 image array, ``.npy`` file,
        generator (handle, directory or :class:`~.inputs.GeneratorSamples`; ``n_fake`` samples from ``seed``),
        or precomputed features (:class:`Features` / float N×D array).
    features
        "domain" (classifier penultimate layer; needs ``classifier``), "inception" (needs local weights),
        "pixels" (optionally projected to ``pixels_dim``) or an extractor object / callable.
    k_pr, k_dc
        Neighbourhood sizes for precision/recall (3, Kynkäänniemi) and density/coverage (5, Naeem).

    Returns
    -------
    dict
        ``features`` (extractor name), ``n_real``, ``n_fake``, ``feature_dim`` and the requested metrics:
        ``fid``; ``kid_mean``/``kid_std``; ``isc_mean``/``isc_std`` (of the fake set); ``precision``,
        ``recall``, ``density``, ``coverage``.
    """
    dev = default_device(device) if not isinstance(device, torch.device) else device
    # Resolve first, then decide on an extractor: features precomputed in a .npy file need none, so they
    # must not demand a classifier (domain features) or Inception weights.
    src_real = resolve_source(real, where="real", seed=seed, batch_size=batch_size, device=dev)
    src_fake = resolve_source(fake, where="fake", n=n_fake, seed=seed, batch_size=batch_size, device=dev)
    if (src_real.features is None) != (src_fake.features is None):
        raise FairlatentError("real and fake must both be precomputed features, or both images/data/generators")
    precomputed = src_real.features is not None
    ext = None if precomputed else make_extractor(features, classifier=classifier, inception_weights=inception_weights,
                                                  pixels_dim=pixels_dim, seed=seed, device=dev)
    for name, s in (("real", src_real), ("fake", src_fake)):
        if s.n < 2:
            raise FairlatentError(f"{name}: at least 2 samples are needed, got {s.n} ({s.description})")

    target = None
    if ext is not None:
        if getattr(ext, "image_size", None):
            target = (ext.image_size, ext.image_size)
        elif ext.fixed_size:
            target = src_real.image_shape
        shapes = {src_real.image_shape, src_fake.image_shape} - {None}
        if len(shapes) > 1:
            where = f"to {target[0]}×{target[1]}" if target else "by the extractor"
            warnings.warn(MetricNote(f"real images are {src_real.image_shape} but fake images are "
                                     f"{src_fake.image_shape}; both are resized {where} (resampling shifts the "
                                     "metrics a little)"), stacklevel=2)
    cache = FeatureCache(cache_dir) if cache_dir is not None else None
    outs = {}
    for label, src, logits in (("real", src_real, False), ("fake", src_fake, isc)):
        if ext is None:
            if logits:
                raise FairlatentError("the Inception Score needs images (logits), not precomputed features")
            outs[label] = {"features": src.features}
        else:
            outs[label] = _extract_resolved(src, ext, batch_size=batch_size, cache=cache, need_logits=logits,
                                            target_size=target, progress=progress, label=label)
    xr = _check_finite(outs["real"]["features"], "real")
    xf = _check_finite(outs["fake"]["features"], "fake")
    if xr.shape[1] != xf.shape[1]:
        raise FairlatentError(f"feature dimensions differ: real {xr.shape[1]}, fake {xf.shape[1]}")

    result: dict[str, Any] = {
        "features": ext.name if ext is not None else _precomputed_name(real, fake),
        "n_real": int(xr.shape[0]),
        "n_fake": int(xf.shape[0]),
        "feature_dim": int(xr.shape[1]),
    }
    if fid:
        result["fid"] = fid_from_features(xr, xf)
    if kid:
        result["kid_mean"], result["kid_std"] = kernel_inception_distance(
            xr, xf, subsets=kid_subsets, subset_size=kid_subset_size, seed=seed, device=dev)
    if isc:
        result["isc_mean"], result["isc_std"] = inception_score(outs["fake"]["logits"], splits=isc_splits, seed=seed)
    if prdc:
        need = max(k_pr, k_dc) + 1
        if min(len(xr), len(xf)) < need:
            raise FairlatentError(f"precision/recall/density/coverage with k={max(k_pr, k_dc)} need at least "
                                  f"{need} samples per set, got {len(xr)} real and {len(xf)} fake")
        result.update(compute_prdc(xr, xf, k_pr=k_pr, k_dc=k_dc, device=dev))
        result["k_pr"], result["k_dc"] = k_pr, k_dc
    for key, value in list(result.items()):
        if isinstance(value, float) and not math.isfinite(value):
            warnings.warn(MetricNote(f"{key} is undefined ({value}) for these inputs"), stacklevel=2)
    return result


def _precomputed_name(real, fake) -> str:
    names = {getattr(x, "name", "precomputed") for x in (real, fake)}
    return "precomputed:" + "/".join(sorted(names))
