"""Image augmentation of the class-preserving autoencoder's reference code, with a fixed or adaptive probability.

Mondal et al.'s reference code (github.com/arnabkmondal/OversamplingRAE, ``code/osrae.py``,
``AdaptiveAugmenter``: the Keras example of Karras et al.'s adaptive discriminator augmentation, ADA, 2020)
augments each image, with probability p, before the encoder classifies it and before the critic scores it.
That matters for a long-tailed set more than anywhere: a class of 8 training images is 8 points to the
encoder without it. The ops, in the reference's order (:data:`OPS`), on images in [0, 1]:

- ``flip``: horizontal flip with probability ½;
- ``translation``: a shift of up to ±12.5 % of the side on each axis;
- ``rotation``: up to ±0.125 turns (±45°);
- ``zoom``: zooming in by up to 25 %, independently per axis (Keras' ``RandomZoom((-0.25, 0))``);
- ``brightness``: + U(−½, ½); ``saturation``: the deviation from the channel mean × U(0, 2); ``contrast``:
  the deviation from the image mean × U(½, 3⁄2) (DiffAugment's colour ops, as the reference);
- ``cutout``: a square of half the side, at a uniform position, set to 0 (DiffAugment's ``rand_cutout``).

An image is then either the augmented one (probability p) or the original. With ``adaptive`` p starts at 0
and follows the critic: after each critic update p ← clip(p + (a − target) / integration, 0, 1), where a is
the share of real images the critic scores above 0 (target 0.85, integration 1,000 updates, as the
reference), so p grows while the critic tells real from decoded too easily.

**Where this differs from the reference:** the three geometric ops are one affine warp (rotation ∘ zoom plus
the shift) resampled once, bilinearly with reflected borders; Keras applies them one after another (the shift
with nearest-neighbour sampling), resampling three times. Every random number comes from the caller's
``torch.Generator``, so a step is a pure function of its seed.

Not every op suits every data set: a mirrored 2, 3 or 7 is not a digit, and the colour ops reach images that
are white strokes on black. The imbalance benchmark's augmented profile therefore uses the geometric ops
(:data:`GEOMETRIC`), and says so beside its figures.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch.nn import functional as F

__all__ = ["GEOMETRIC", "OPS", "adapt_probability", "augment", "check_ops"]

OPS = ("flip", "translation", "rotation", "zoom", "brightness", "saturation", "contrast", "cutout")
GEOMETRIC = ("translation", "rotation", "zoom")

MAX_TRANSLATION = 0.125  # of the side
MAX_ROTATION = 0.125  # of a turn
MAX_ZOOM = 0.25  # zoom-in
CUTOUT_RATIO = 0.5


def check_ops(ops: Sequence[str]) -> list[str]:
    """``ops`` as a list, refused (ValueError naming the op) when one is unknown or repeated, or none is given."""
    ops = list(ops)
    if not ops:
        raise ValueError(f"no augmentation op given; choose from {', '.join(OPS)}")
    for op in ops:
        if op not in OPS:
            raise ValueError(f"unknown augmentation op {op!r}; choose from {', '.join(OPS)}")
    if len(set(ops)) != len(ops):
        raise ValueError(f"augmentation ops repeated: {ops}")
    return ops


def _geometric(x: torch.Tensor, g: torch.Generator, ops: set[str]) -> torch.Tensor:
    n = x.shape[0]
    angle = (torch.rand(n, generator=g) * 2 - 1) * MAX_ROTATION * 2 * math.pi if "rotation" in ops else torch.zeros(n)
    if "zoom" in ops:  # sampling the input on a grid MAX_ZOOM smaller magnifies the image
        sx, sy = 1 - torch.rand(n, generator=g) * MAX_ZOOM, 1 - torch.rand(n, generator=g) * MAX_ZOOM
    else:
        sx = sy = torch.ones(n)
    if "translation" in ops:  # affine_grid's coordinates span [-1, 1]: a shift of f·side is 2f
        tx = (torch.rand(n, generator=g) * 2 - 1) * MAX_TRANSLATION * 2
        ty = (torch.rand(n, generator=g) * 2 - 1) * MAX_TRANSLATION * 2
    else:
        tx = ty = torch.zeros(n)
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.stack([torch.stack([cos * sx, -sin * sy, tx], 1), torch.stack([sin * sx, cos * sy, ty], 1)], 1)
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def _cutout(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    n, _, h, w = x.shape
    ch, cw = int(h * CUTOUT_RATIO + 0.5), int(w * CUTOUT_RATIO + 0.5)
    # DiffAugment: the square's centre offset is uniform over [0, side + 1 - size % 2), clipped at the border
    oy = torch.randint(0, h + (1 - ch % 2), (n,), generator=g).view(n, 1, 1) - ch // 2
    ox = torch.randint(0, w + (1 - cw % 2), (n,), generator=g).view(n, 1, 1) - cw // 2
    rows, cols = torch.arange(h).view(1, h, 1), torch.arange(w).view(1, 1, w)
    inside = (rows >= oy) & (rows < oy + ch) & (cols >= ox) & (cols < ox + cw)
    return x * (~inside).unsqueeze(1).to(x.dtype)


def augment(x: torch.Tensor, g: torch.Generator, p: float, ops: Sequence[str]) -> torch.Tensor:
    """Each image of ``x`` (N×C×H×W in [0, 1]) augmented by ``ops`` with probability ``p``, else left as it is.

    Draws nothing from ``g`` when ``p`` is 0, so switching augmentation off leaves every other random
    stream of a training step where it was. Differentiable in ``x`` (the decoder's outputs pass through it).
    """
    if p <= 0:
        return x
    chosen = set(ops)
    n = x.shape[0]
    out = x
    if "flip" in chosen:
        flip = (torch.rand(n, generator=g) < 0.5).view(n, 1, 1, 1)
        out = torch.where(flip, out.flip(3), out)
    if chosen & set(GEOMETRIC):
        out = _geometric(out, g, chosen)
    if "brightness" in chosen:
        out = out + (torch.rand(n, 1, 1, 1, generator=g) - 0.5)
    if "saturation" in chosen:
        mean = out.mean(1, keepdim=True)
        out = (out - mean) * (torch.rand(n, 1, 1, 1, generator=g) * 2) + mean
    if "contrast" in chosen:
        mean = out.mean((1, 2, 3), keepdim=True)
        out = (out - mean) * (torch.rand(n, 1, 1, 1, generator=g) + 0.5) + mean
    if "cutout" in chosen:
        out = _cutout(out, g)
    if p >= 1:
        return out
    take = (torch.rand(n, generator=g) < p).view(n, 1, 1, 1)
    return torch.where(take, out, x)


def adapt_probability(p: float, real_scores: torch.Tensor, target: float = 0.85, integration: int = 1000) -> float:
    """ADA's update after one critic step: p + (share of ``real_scores`` > 0 − ``target``) / ``integration``,
    clipped to [0, 1]. The reference counts a score of exactly 0 as half right (½(1 + sign)); so does this."""
    accuracy = float((0.5 * (1 + torch.sign(real_scores.detach().float()))).mean())
    return min(1.0, max(0.0, p + (accuracy - target) / integration))
