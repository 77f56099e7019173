"""The truncation sweep: fidelity and diversity of a generator's samples against the truncation τ.

Lower τ draws latents closer to the mode: samples look more typical (precision, density up) and vary less
(recall, coverage down). The latent stages take a ``latent.truncation``; this sweep is how one is chosen.
It lives in the metrics layer (it is a measurement); ``fairlatent metrics truncation-sweep`` only parses its
arguments, calls it and hands the rows to :mod:`fairlatent.report.truncation` for the table and figure.
"""

from __future__ import annotations

from typing import Any

from fairlatent.errors import FairlatentError


def parse_truncations(text: str) -> list[float | None]:
    """``"0.5,1,none"`` → ``[0.5, 1.0, None]``; ``none``/``inf`` (or an empty item) means untruncated."""
    taus: list[float | None] = []
    for item in text.split(","):
        item = item.strip().lower()
        if item in ("none", "inf", ""):
            taus.append(None)
            continue
        try:
            tau = float(item)
        except ValueError:
            raise FairlatentError(f"--taus: {item!r} is not a number or 'none'") from None
        if not tau > 0:
            raise FairlatentError(f"--taus: truncation {item} must be positive")
        taus.append(tau)
    return taus


def truncation_sweep(generator, real, *, taus, n: int, features="domain", classifier=None, inception_weights=None,
                     seed: int = 0, k_pr: int = 3, k_dc: int = 5, batch_size: int = 64, cache_dir=None,
                     device=None, progress: bool = True) -> list[dict[str, Any]]:
    """FID, precision, recall, density, coverage of ``n`` samples at each truncation τ (None = untruncated).

    Real features are extracted once (cached) and reused; each τ samples ``n`` latents from the same seed.
    Rows: ``{"truncation", "fid", "precision", "recall", "density", "coverage", "features", "n_real", "n_fake"}``.
    """
    from fairlatent.metrics.generative.api import compute_generative_metrics, extract_features
    from fairlatent.metrics.generative.features import Features, make_extractor
    from fairlatent.metrics.generative.inputs import GeneratorSamples

    extractor = make_extractor(features, classifier=classifier, inception_weights=inception_weights, seed=seed,
                               device=device)
    image_size = getattr(generator, "image_size", None)
    real_feats = extract_features(real, extractor, batch_size=batch_size, cache_dir=cache_dir, device=device,
                                  image_size=getattr(extractor, "image_size", None) or
                                  (image_size if extractor.fixed_size else None), progress=progress)
    rows = []
    for tau in taus:
        fake_feats = extract_features(GeneratorSamples(generator, n, seed, tau), extractor, batch_size=batch_size,
                                      cache_dir=cache_dir, device=device, progress=progress,
                                      image_size=getattr(extractor, "image_size", None))
        res = compute_generative_metrics(Features(real_feats), Features(fake_feats), fid=True, kid=False,
                                         prdc=True, k_pr=k_pr, k_dc=k_dc, seed=seed, device=device, progress=False)
        rows.append({"truncation": tau, **{k: res[k] for k in ("fid", "precision", "recall", "density", "coverage")},
                     "features": extractor.name, "n_real": res["n_real"], "n_fake": res["n_fake"]})
    return rows


__all__ = ["parse_truncations", "truncation_sweep"]
