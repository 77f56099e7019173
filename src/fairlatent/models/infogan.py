"""InfoGAN's latent codes: their layout, the mutual-information loss, latents with chosen codes, and the loader.

InfoGAN (Chen et al., "InfoGAN: Interpretable Representation Learning by Information Maximizing Generative
Adversarial Nets", NeurIPS 2016; reference code github.com/openai/InfoGAN) feeds the generator structured
codes ``c`` beside the noise and maximises a variational lower bound on the mutual information I(c; G(z, c)):

    L_I(G, Q) = E_{c ~ p(c), x ~ G(z, c)} [ log Q(c | x) ] + H(c)  ≤  I(c; G(z, c))

where Q is a recognition network sharing the discriminator's trunk. Both D/Q and G minimise their GAN loss
plus ``λ · (−E log Q(c|x))``: for a categorical code that is the cross-entropy of Q's logits against the
drawn category, for a continuous code the Gaussian negative log-likelihood of the drawn value under Q's
predicted mean (and, optionally, log-std). For a uniform K-way categorical code H(c) = ln K, so the logged
bound ``ln K − CE`` lies in [−∞, ln K] and reaches ln K (≈ 2.303 for K = 10) when Q recovers the code from
every generated image.

Latent layout (a :class:`~fairlatent.models.latent_spec.LatentSpec`): ``latent_dim`` N(0, I) noise entries,
then each categorical code one-hot (named ``cat0``, ``cat1``, …), then each continuous code (``cont0``, …,
one entry each, U(−1, 1)). The generator's input is the whole vector, so a latent returned by
``sample_latents`` regenerates its image with ``decode`` and carries its codes for the latent stages.

Deviation from the reference: the noise is N(0, I) (the reference's MNIST model draws 62 U(−1, 1) entries),
because every fairlatent generator's noise is N(0, I) and the truncation trick and latent edits assume it;
the codes follow the reference (uniform categorical, U(−1, 1) continuous, fixed unit std for Q's Gaussian
by default, λ = 1 for both kinds of code as in the reference's ``info_reg_coeff``).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch
from torch.nn import functional as F

from fairlatent.errors import FairlatentError
from fairlatent.models.latent_spec import CategoricalCode, LatentSpec, UniformCode

LOG_STD_RANGE = (-5.0, 2.0)  # learned log-stds are clamped: an unbounded σ → 0 would send the NLL to −∞


def code_spec(latent_dim: int, categorical: Sequence[int] = (), continuous: int = 0) -> LatentSpec:
    """The latent spec of an InfoGAN generator: N(0, I) noise, one-hot categorical codes, U(−1, 1) codes."""
    codes = [CategoricalCode(f"cat{i}", int(k)) for i, k in enumerate(categorical)]
    codes += [UniformCode(f"cont{j}", 1) for j in range(int(continuous))]
    return LatentSpec(normal_dim=int(latent_dim), codes=tuple(codes))


def code_width(categorical: Sequence[int] = (), continuous: int = 0) -> int:
    """Entries the codes add to the generator's input (one-hot widths plus one per continuous code)."""
    return int(sum(categorical)) + int(continuous)


def q_width(categorical: Sequence[int] = (), continuous: int = 0) -> int:
    """Outputs of Q: the logits of every categorical code, then a mean and a log-std per continuous code."""
    return int(sum(categorical)) + 2 * int(continuous)


def split_q(q: torch.Tensor, categorical: Sequence[int], continuous: int
            ) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:  # fmt: skip
    """Q's flat N×q_width output as (logits of each categorical code, N×C means, N×C log-stds)."""
    if q.shape[-1] != q_width(categorical, continuous):
        raise ValueError(f"Q output has {q.shape[-1]} columns, the codes need {q_width(categorical, continuous)}")
    logits, start = [], 0
    for k in categorical:
        logits.append(q[:, start : start + k])
        start += k
    mean = q[:, start : start + continuous]
    log_std = q[:, start + continuous : start + 2 * continuous]
    return logits, mean, log_std


def draw_codes(g: torch.Generator, n: int, categorical: Sequence[int], continuous: int
               ) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """``(n×len(categorical) int64 categories, n×continuous U(−1, 1) values)`` from ``g``, in that order.

    Training draws the codes of a step from that step's generator right after its noise, so they are a
    pure function of (seed, step) and a resumed run draws the same ones.
    """
    cats = [torch.randint(0, int(k), (n,), generator=g) for k in categorical]
    cat = torch.stack(cats, 1) if cats else torch.zeros(n, 0, dtype=torch.int64)
    cont = torch.rand(n, int(continuous), generator=g) * 2.0 - 1.0
    return cat, cont


def codes_to_input(cat: torch.Tensor, cont: torch.Tensor, categorical: Sequence[int]) -> torch.Tensor:
    """The code part of the generator's input: each category one-hot, then the continuous values."""
    parts = [F.one_hot(cat[:, i], int(k)).to(cont.dtype) for i, k in enumerate(categorical)]
    return torch.cat([*parts, cont], dim=1)


def info_terms(q: torch.Tensor, cat: torch.Tensor, cont: torch.Tensor, categorical: Sequence[int], continuous: int,
               learn_std: bool = False) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """``(CE, NLL)``: the batch-mean cross-entropy summed over categorical codes, and the batch-mean Gaussian
    negative log-likelihood summed over continuous codes, of the drawn codes under Q's output ``q``.

    NLL per value: log σ + (c − μ)² / (2σ²) + ½ ln 2π, with σ = 1 unless ``learn_std`` (the reference's
    MNIST model fixes σ = 1, which makes the term a squared error; a learned log-std is clamped to
    :data:`LOG_STD_RANGE`). Either is ≥ 0 up to the constant and equals −E log Q(c|x) exactly.
    """
    logits, mean, log_std = split_q(q, categorical, continuous)
    ce = q.new_zeros((), dtype=torch.float32)  # float32 whatever Q's dtype (bf16 under precision = "bf16")
    for i, lg in enumerate(logits):
        ce = ce + F.cross_entropy(lg.float(), cat[:, i])
    nll = q.new_zeros((), dtype=torch.float32)
    if continuous:
        ls = log_std.float().clamp(*LOG_STD_RANGE) if learn_std else torch.zeros_like(mean, dtype=torch.float32)
        z = (cont - mean.float()) * torch.exp(-ls)
        nll = (ls + 0.5 * z.square() + 0.5 * math.log(2 * math.pi)).sum(1).mean()
    return ce, nll


def mi_lower_bound(ce: torch.Tensor | float, categorical: Sequence[int]) -> float:
    """Σ ln K_i − CE: the bound on I(c_cat; G(z, c)) for uniform categorical codes (ceiling Σ ln K_i)."""
    return float(sum(math.log(k) for k in categorical)) - float(ce)


def latents_with_codes(spec: LatentSpec, noise: np.ndarray, categories: Mapping[str, int | Sequence[int]] | None = None,
                       continuous: Mapping[str, float | Sequence[float]] | None = None) -> np.ndarray:  # fmt: skip
    """Full latents (float32 n×spec.dim) from ``noise`` (n×normal_dim) and chosen codes.

    ``categories`` maps a categorical code's name (``cat0``) to one category or one per row;
    ``continuous`` maps a continuous code's name (``cont0``) to a value or one per row. Codes not given
    are set to category 0 and value 0 (the centre of U(−1, 1)). The result decodes to the image these
    codes and this noise make, e.g. one row per category with the same noise.
    """
    noise = np.asarray(noise, dtype=np.float32)
    if noise.ndim != 2 or noise.shape[1] != spec.normal_dim:
        raise FairlatentError(f"noise has shape {noise.shape}, expected n×{spec.normal_dim}")
    n = len(noise)
    categories, continuous = dict(categories or {}), dict(continuous or {})
    known = {c.name for c in spec.codes}
    unknown = (set(categories) | set(continuous)) - known
    if unknown:
        raise FairlatentError(f"no code named {', '.join(sorted(unknown))}; codes are {', '.join(sorted(known))}")
    out = np.zeros((n, spec.dim), dtype=np.float32)
    out[:, : spec.normal_dim] = noise
    sl = spec.slices()
    for code in spec.codes:
        s = sl[code.name]
        if isinstance(code, CategoricalCode):
            if code.name in continuous:
                raise FairlatentError(f"{code.name} is categorical; give it in categories")
            idx = np.broadcast_to(np.asarray(categories.get(code.name, 0), dtype=np.int64), (n,))
            if idx.size and (idx.min() < 0 or idx.max() >= code.k):
                raise FairlatentError(f"{code.name}: categories must be in 0…{code.k - 1}")
            out[np.arange(n), s.start + idx] = 1.0
        else:
            if code.name in categories:
                raise FairlatentError(f"{code.name} is continuous; give it in continuous")
            out[:, s] = np.broadcast_to(np.asarray(continuous.get(code.name, 0.0), dtype=np.float32), (n,))[:, None]
    return out


def sweep_latents(spec: LatentSpec, noise: np.ndarray, sweep: str | None, values: Sequence[float],
                  category_code: str = "cat0") -> np.ndarray:  # fmt: skip
    """The latents of a category × sweep grid: row r holds category r of ``category_code``, column j sets
    the continuous code ``sweep`` to ``values[j]`` (other codes 0); ``noise`` is one vector (1×normal_dim,
    the same everywhere, so only the codes change along rows and columns) or one per column."""
    code = next((c for c in spec.codes if c.name == category_code), None)
    if not isinstance(code, CategoricalCode):
        raise FairlatentError(f"no categorical code {category_code!r} in this latent spec")
    k, m = code.k, len(values)
    noise = np.asarray(noise, dtype=np.float32)
    noise = np.broadcast_to(noise if len(noise) == m else noise[:1], (m, spec.normal_dim))
    rows = np.repeat(np.arange(k), m)
    cont = {sweep: np.tile(np.asarray(values, dtype=np.float32), k)} if sweep else {}
    return latents_with_codes(spec, np.tile(noise, (k, 1)), {category_code: rows}, cont)


def predict_codes(D: torch.nn.Module, images: np.ndarray, categorical: Sequence[int], continuous: int,
                  batch_size: int = 500, device: torch.device | str | None = None) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Q's reading of real images: ``(n×len(categorical) argmax categories, n×continuous means)``, on
    ``device`` (default: where D's weights are, so a discriminator trained on CUDA reads on CUDA).

    This is how InfoGAN's categorical code is scored on MNIST (the paper's "5 % error"): Q, trained on
    generated images only, classifies the real digits, and the categories are matched to the labels.
    """
    from fairlatent.utils.images import to_tensor

    if device is None:
        device = next(D.parameters()).device
    was = D.training
    D.eval()
    cats, means = [], []
    try:
        with torch.inference_mode():
            for i in range(0, len(images), batch_size):
                q = D.predict_q(to_tensor(np.asarray(images[i : i + batch_size]), device))
                logits, mean, _ = split_q(q.float(), categorical, continuous)
                cats.append(torch.stack([lg.argmax(1) for lg in logits], 1).cpu().numpy() if logits
                            else np.zeros((len(q), 0), np.int64))  # fmt: skip
                means.append(mean.cpu().numpy())
    finally:
        D.train(was)
    return np.concatenate(cats), np.concatenate(means)


def load_infogan(path: str | os.PathLike, device: str | torch.device | None = None):
    """A :class:`~fairlatent.models.generator.GeneratorHandle` of a finished InfoGAN run directory whose
    latent spec holds the codes (noise, ``cat*`` one-hot, ``cont*``): its ``sample_latents`` returns the
    codes with the noise and its ``decode`` regenerates the images."""
    from fairlatent.models.gan import build_generator
    from fairlatent.models.generator import GeneratorHandle
    from fairlatent.models.weights import load_module_state, load_tensors
    from fairlatent.utils.device import default_device
    from fairlatent.utils.io import read_json

    path = Path(path)
    rec = read_json(path / "config.json") if (path / "config.json").is_file() else None
    if not isinstance(rec, dict) or rec.get("format") != "fairlatent-gan":
        raise FairlatentError(f"{path}: not a fairlatent GAN run (config.json)")
    cfg = rec["config"]
    cats, n_cont = list(cfg.get("info_categorical", [])), int(cfg.get("info_continuous", 0))
    if not cats and not n_cont:
        raise FairlatentError(f"{path}: not an InfoGAN run (no info_categorical / info_continuous codes); "
                              "open it with load_generator")
    if not (path / "generator.safetensors").is_file():
        raise FairlatentError(f"{path}: the run has not finished (no generator.safetensors)")
    spec = code_spec(cfg["latent_dim"], cats, n_cont)
    dev = default_device(str(device) if device is not None else None)
    G = build_generator(cfg["arch"], size=cfg["size"], latent_dim=spec.dim, width=cfg["width"],
                        final_width=cfg.get("g_final_width", 0))  # fmt: skip
    load_module_state(G, load_tensors(path / "generator.safetensors"), "G", source=path / "generator.safetensors")
    G.to(dev).eval().requires_grad_(False)
    return GeneratorHandle(G, latent_spec=spec, output_range="[-1,1]", device=dev, source=path,
                           image_size=int(cfg["size"]))  # fmt: skip


__all__ = ["code_spec", "code_width", "codes_to_input", "draw_codes", "info_terms", "latents_with_codes",
           "load_infogan", "mi_lower_bound", "predict_codes", "q_width", "split_q", "sweep_latents"]
