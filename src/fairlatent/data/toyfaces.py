"""ToyFaces: the built-in procedural data set of cartoon faces with controlled attribute bias.

Why a toy data set: the de-biasing method needs a target attribute ``t`` and a protected attribute ``g``
whose correlation in the training data is *known and adjustable*, plus ground truth about where each
attribute lives in the image. Real data (CelebA) gives neither. ToyFaces renders faces from a parameter
table, so

* the training skew ``P(g = t)`` is set exactly (stratified counts, not coin flips);
* every attribute is a bold visual part (a hat, glasses, a beard...) that a small CNN can classify and a
  small GAN can learn at 32 px;
* per-pixel part masks come for free, and any face can be re-rendered with one attribute toggled
  (:func:`render_faces` on an edited parameter table), which is how the tests check that each attribute
  changes pixels only inside its own part.

Geometry is written in *face-local units*: the origin is the face centre, one unit is the face half-width
``R`` (in pixels), ``y`` points down. Every shape is a signed distance function ``d`` in those units;
the pixel coverage of a shape is ``clip(0.5 - d * R, 0, 1)``, i.e. a one-pixel linear ramp across the
edge, which antialiases the drawing. Rendering is numpy over whole chunks of faces at once (no per-face
Python loop), so 20,000 faces at 32×32 take seconds.

Labels. Within each split the target and protected attributes each have marginal rate 0.5 and the four
``(t, g)`` cell counts are fixed exactly from the requested skew ``s = P(g = t)``::

    n_agree = round(s * n),  n11 = n_agree // 2,  n00 = n_agree - n11,
    n_disagree = n - n_agree, n10 = n_disagree // 2, n01 = n_disagree - n10,

so the realised skew is within ``1 / (2n)`` of the request at any ``n``. The other attributes get exactly
``round(rate * n)`` positives per split (their :data:`BASE_RATES`), placed at random and therefore
independent of ``t`` and ``g`` in expectation. Optional label noise flips exactly ``round(rate * n)``
labels of an attribute in the train and val splits (the image is unchanged; test splits keep clean labels
so evaluation measures the true attribute); the requested skew refers to the clean labels.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from fairlatent.errors import FairlatentError
from fairlatent.utils.seed import rng as seeded_rng

#: The binary attributes, named after their CelebA counterparts.
ATTRIBUTES: tuple[str, ...] = (
    "Wearing_Hat",
    "Eyeglasses",
    "Smiling",
    "Bangs",
    "Blond_Hair",
    "Wearing_Earrings",
    "Mouth_Slightly_Open",
    "No_Beard",
    "Pale_Skin",
)

#: Positive rate of each attribute when it is neither the target nor the protected attribute. CelebA-like
#: in direction, but raised for the rare ones so every attribute has enough positives to learn from.
BASE_RATES: dict[str, float] = {
    "Wearing_Hat": 0.3,
    "Eyeglasses": 0.3,
    "Smiling": 0.5,
    "Bangs": 0.3,
    "Blond_Hair": 0.3,
    "Wearing_Earrings": 0.3,
    "Mouth_Slightly_Open": 0.5,
    "No_Beard": 0.75,
    "Pale_Skin": 0.35,
}

#: Part masks, in the order of ``masks.npy``'s second axis. A pixel belongs to part ``p`` when at least
#: :data:`MASK_THRESHOLD` of its final colour comes from ``p`` (after alpha compositing of all later
#: layers). Masks can therefore overlap: at antialiased edges, and where skin shows through tinted lenses.
PARTS: tuple[str, ...] = ("background", "face", "hair", "hat", "glasses", "mouth", "beard", "earrings")

MASK_THRESHOLD = 0.25

#: The part each attribute draws (or recolours): toggling the attribute changes pixels only there.
ATTRIBUTE_PARTS: dict[str, str] = {
    "Wearing_Hat": "hat",
    "Eyeglasses": "glasses",
    "Smiling": "mouth",
    "Bangs": "hair",
    "Blond_Hair": "hair",
    "Wearing_Earrings": "earrings",
    "Mouth_Slightly_Open": "mouth",
    "No_Beard": "beard",
    "Pale_Skin": "face",
}

#: Columns of the face parameter table besides the attributes: the unlabelled nuisance variation.
NUISANCE_COLUMNS: tuple[str, ...] = (
    "center_x",  # face centre, fraction of the image width
    "center_y",  # face centre, fraction of the image height
    "scale",  # face half-width R, fraction of the image size
    "bg_r", "bg_g", "bg_b",  # background colour, 0..255
    "skin_tone",  # 0..1: position of the skin colour inside its class (pale / not pale)
    "hair_tone",  # 0..1: position of the hair colour inside its class (blond / dark)
    "hair_width",  # half-width of the hair mass, face units
    "hair_length",  # how far the hair falls below the eyes, face units
    "bangs_phase",  # phase of the wavy lower edge of the bangs
    "hat_color",  # index into HAT_COLORS
    "hat_height",  # crown height, face units
    "earring_color",  # index into EARRING_COLORS
    "beard_tone",  # 0..1 darkness of the beard
)

SPLIT_ORDER = ("train", "val", "test", "test_balanced")

_PALE_SKIN = (np.array([255, 234, 218]), np.array([238, 208, 185]))
_OTHER_SKIN = (np.array([210, 154, 110]), np.array([148, 98, 64]))
_BLOND_HAIR = (np.array([250, 222, 120]), np.array([222, 182, 72]))
_DARK_HAIR = (np.array([26, 20, 20]), np.array([80, 46, 26]))
_BEARD = (np.array([70, 50, 36]), np.array([34, 24, 20]))
HAT_COLORS = np.array([[205, 35, 45], [40, 78, 212], [30, 150, 70], [140, 52, 184], [20, 136, 150]], np.float32)
EARRING_COLORS = np.array([[40, 236, 255], [255, 64, 214], [150, 255, 60]], np.float32)
_EYE = np.array([28, 22, 24], np.float32)
_GLASSES = np.array([18, 18, 22], np.float32)
_LIPS = np.array([128, 28, 40], np.float32)
_MOUTH_OPEN = np.array([52, 8, 16], np.float32)


# --------------------------------------------------------------------------------------------------------
# Signed distance functions (face units; negative inside). Arguments broadcast: pixel grids are c×H×W,
# per-face parameters c×1×1.


def _sd_circle(x, y, cx, cy, r):
    return np.sqrt((x - cx) ** 2 + (y - cy) ** 2) - r


def _sd_ellipse(x, y, cx, cy, a, b):
    """First-order distance to an ellipse: ``(k - 1) / |grad k|`` with ``k = sqrt((dx/a)^2 + (dy/b)^2)``.

    Exact on the boundary's normal to first order, which is all a one-pixel antialiasing ramp needs.
    """
    dx = (x - cx) / a
    dy = (y - cy) / b
    k = np.sqrt(dx * dx + dy * dy)
    grad = np.sqrt((dx / a) ** 2 + (dy / b) ** 2) + 1e-6
    return k * (k - 1.0) / grad


def _sd_box(x, y, cx, cy, hw, hh, radius=0.0):
    """Rounded box of half-size (hw, hh) with corner radius ``radius``."""
    qx = np.abs(x - cx) - hw + radius
    qy = np.abs(y - cy) - hh + radius
    outside = np.sqrt(np.maximum(qx, 0.0) ** 2 + np.maximum(qy, 0.0) ** 2)
    return outside + np.minimum(np.maximum(qx, qy), 0.0) - radius


# --------------------------------------------------------------------------------------------------------
# Parameter table


FAINT_RANGE = (0.05, 0.35)  # strength of a faint attribute: a hat at 5–35 % opacity, a smile 5–35 % bent


def sample_face_params(
    attributes: pd.DataFrame | Mapping[str, np.ndarray],
    seed: int,
    faint: Mapping[str, float] | None = None,
) -> pd.DataFrame:
    """Draw the nuisance parameters for faces with the given attribute labels.

    ``faint`` maps attribute names to the share of faces on which that attribute is drawn faintly: its
    ``salience_<attr>`` column (how strongly it shows, 1 = fully) is drawn from :data:`FAINT_RANGE` for
    that share of faces, chosen at random and independently of every label. Faint positives are
    *ambiguous* images, the situation in which a classifier leans on a correlated attribute instead of the
    evidence (in CelebA, the "inconsistently labelled" attributes). With every attribute bold, a small CNN
    classifies ToyFaces perfectly and no training skew can bias it.

    Parameters
    ----------
    attributes
        One 0/1 column per name in :data:`ATTRIBUTES` (the clean labels the faces must show).
    seed
        Seeds the ``"toyfaces-nuisance"`` stream; the draw for face ``i`` depends only on ``seed`` and
        the number of faces, so the same seed gives the same faces at any resolution.

    Returns
    -------
    DataFrame with the attribute columns followed by :data:`NUISANCE_COLUMNS`; pass it (edited or not) to
    :func:`render_faces`.
    """
    attrs = pd.DataFrame({a: np.asarray(attributes[a], dtype=np.int8) for a in ATTRIBUTES})
    n = len(attrs)
    r = seeded_rng(seed, "toyfaces-nuisance")
    base = r.uniform(85, 235, size=(n, 3))
    bg = 0.55 * base + 0.45 * base.mean(axis=1, keepdims=True)  # muted colours, so parts stand out
    params = {
        "center_x": r.uniform(0.44, 0.56, n),
        "center_y": r.uniform(0.55, 0.62, n),
        "scale": r.uniform(0.25, 0.29, n),
        "bg_r": bg[:, 0],
        "bg_g": bg[:, 1],
        "bg_b": bg[:, 2],
        "skin_tone": r.uniform(0, 1, n),
        "hair_tone": r.uniform(0, 1, n),
        "hair_width": r.uniform(1.14, 1.32, n),
        "hair_length": r.uniform(-0.1, 1.25, n),
        "bangs_phase": r.uniform(0, 2 * np.pi, n),
        "hat_color": r.integers(0, len(HAT_COLORS), n),
        "hat_height": r.uniform(0.75, 0.95, n),
        "earring_color": r.integers(0, len(EARRING_COLORS), n),
        "beard_tone": r.uniform(0, 1, n),
    }
    for k, v in params.items():
        attrs[k] = v.astype(np.int64) if k in ("hat_color", "earring_color") else v.astype(np.float32)
    for attr, share in _normalise_faint(faint).items():
        # own stream per attribute, so adding one never changes the other draws
        rf = seeded_rng(seed, f"toyfaces-faint-{attr}")
        salience = np.ones(n, np.float32)
        chosen = rf.permutation(n)[: int(round(share * n))]
        salience[chosen] = rf.uniform(*FAINT_RANGE, chosen.size)
        attrs[f"salience_{attr}"] = salience
    return attrs


def _normalise_faint(faint: Mapping[str, float] | None) -> dict[str, float]:
    out = {}
    for attr, share in (faint or {}).items():
        _check_attribute(attr, "faint")
        out[attr] = _check_rate(share, f"faint share of {attr}")
    return out


def _lerp(pair, t):
    lo, hi = pair
    return lo[None, :] + (hi - lo)[None, :] * t[:, None]


def _colors(p: pd.DataFrame) -> dict[str, np.ndarray]:
    """Per-face RGB colours (n×3 float32) from the attributes and the tone parameters."""
    skin_t = p["skin_tone"].to_numpy(np.float32)
    hair_t = p["hair_tone"].to_numpy(np.float32)
    pale = p["Pale_Skin"].to_numpy()[:, None] == 1
    blond = p["Blond_Hair"].to_numpy()[:, None] == 1
    skin = np.where(pale, _lerp(_PALE_SKIN, skin_t), _lerp(_OTHER_SKIN, skin_t))
    hair = np.where(blond, _lerp(_BLOND_HAIR, hair_t), _lerp(_DARK_HAIR, hair_t))
    return {
        "bg": p[["bg_r", "bg_g", "bg_b"]].to_numpy(np.float32),
        "skin": skin.astype(np.float32),
        "hair": hair.astype(np.float32),
        "beard": _lerp(_BEARD, p["beard_tone"].to_numpy(np.float32)).astype(np.float32),
        "hat": HAT_COLORS[p["hat_color"].to_numpy()],
        "earring": EARRING_COLORS[p["earring_color"].to_numpy()],
    }


# --------------------------------------------------------------------------------------------------------
# Rendering


def _render_chunk(p: pd.DataFrame, size: int, want_masks: bool) -> tuple[np.ndarray, np.ndarray | None]:
    c = len(p)
    col = {k: v[:, None, None, :] for k, v in _colors(p).items()}

    def face_col(name: str) -> np.ndarray:
        return p[name].to_numpy(np.float32)[:, None, None]

    R = face_col("scale") * size  # face half-width in pixels
    grid = np.arange(size, dtype=np.float32) + 0.5
    x = (grid[None, None, :] - face_col("center_x") * size) / R
    y = (grid[None, :, None] - face_col("center_y") * size) / R
    x, y = np.broadcast_arrays(x, y)  # both c×H×W

    def cover(d: np.ndarray) -> np.ndarray:
        return np.clip(0.5 - d * R, 0.0, 1.0)

    img = np.broadcast_to(col["bg"], (c, size, size, 3)).copy()
    # weight[p] = share of the final pixel colour that comes from part p (the weights sum to 1).
    weight = np.zeros((len(PARTS), c, size, size), np.float32) if want_masks else None
    if want_masks:
        weight[0] = 1.0
    painted = {0}
    part_index = {name: i for i, name in enumerate(PARTS)}

    def paint(coverage: np.ndarray, color: np.ndarray, part: str, opacity: float = 1.0) -> None:
        """Alpha-composite one layer: ``img = img + a * (color - img)`` with ``a = coverage * opacity``.

        Compositing scales every earlier contribution by ``1 - a``, so the weights are updated the same way.
        """
        a = coverage if opacity == 1.0 else coverage * opacity
        img[...] += (color - img) * a[..., None]
        if want_masks:
            keep = 1.0 - a
            for q in painted:
                weight[q] *= keep
            q = part_index[part]
            weight[q] += a
            painted.add(q)

    def flag(attr: str) -> np.ndarray:
        """The attribute's label times its salience (how strongly it shows; 1 unless drawn faint)."""
        v = p[attr].to_numpy(np.float32)
        if f"salience_{attr}" in p.columns:
            v = v * p[f"salience_{attr}"].to_numpy(np.float32)
        return v[:, None, None]

    # Hair mass behind the head: a cap above the face plus a curtain falling to ``hair_length``.
    hw = face_col("hair_width")
    length = face_col("hair_length")
    d_cap = _sd_ellipse(x, y, 0.0, -0.22, hw, 1.22)
    top = -0.3
    curtain_hh = np.maximum((length - top) / 2, 0.05)
    d_curtain = _sd_box(x, y, 0.0, top + curtain_hh, hw, curtain_hh, 0.35)
    paint(cover(np.minimum(d_cap, d_curtain)), col["hair"], "hair")

    # Ears, then the face (skin), then eyes.
    d_ears = np.minimum(_sd_ellipse(x, y, -0.98, 0.0, 0.18, 0.25), _sd_ellipse(x, y, 0.98, 0.0, 0.18, 0.25))
    paint(cover(d_ears), col["skin"], "face")
    d_face = _sd_ellipse(x, y, 0.0, 0.0, 1.0, 1.18)
    paint(cover(d_face), col["skin"], "face")

    # Beard (No_Beard = 0): the lower face and chin, leaving skin around the mouth.
    d_beard = np.maximum(_sd_ellipse(x, y, 0.0, 0.02, 1.04, 1.24), 0.12 - y)
    d_beard = np.maximum(d_beard, -_sd_ellipse(x, y, 0.0, 0.5, 0.56, 0.27))
    paint(cover(d_beard) * (1.0 - flag("No_Beard")), col["beard"], "beard")

    d_eyes = np.minimum(_sd_circle(x, y, -0.38, -0.1, 0.12), _sd_circle(x, y, 0.38, -0.1, 0.12))
    paint(cover(d_eyes), _EYE, "face")

    # Mouth. Smiling: corners raised (a parabola); otherwise flat. Open: a dark filled shape.
    smile = flag("Smiling")
    open_ = flag("Mouth_Slightly_Open")
    y0, w, bend, half_t = 0.5, 0.4, 0.3, 0.075
    curve = y0 + smile * bend * (0.5 - (x / w) ** 2)  # corners at y0 - bend/2, centre at y0 + bend/2
    slope = smile * bend * (-2.0 * x / (w * w))
    d_line = np.maximum(np.abs(y - curve) / np.sqrt(1.0 + slope * slope) - half_t, np.abs(x) - w)
    # open + smiling: a "D" between the corner line and the lower curve; open + neutral: an oval.
    d_grin = np.maximum(np.maximum(y0 - bend / 2 - half_t - y, y - curve - half_t), np.abs(x) - w)
    d_oval = _sd_ellipse(x, y, 0.0, y0, 0.3, 0.17)
    d_open = smile * d_grin + (1.0 - smile) * d_oval
    paint(cover(d_line) * (1.0 - open_), _LIPS, "mouth")
    paint(cover(d_open) * open_, _MOUTH_OPEN, "mouth")

    # Bangs: hair in front of the forehead down to a wavy edge above the eyes.
    wave = -0.44 + 0.05 * np.cos(9.0 * x + face_col("bangs_phase"))
    d_bangs = np.maximum(_sd_ellipse(x, y, 0.0, -0.22, np.minimum(hw, 1.12), 1.22), y - wave)
    paint(cover(d_bangs) * flag("Bangs"), col["hair"], "hair")

    # Eyeglasses: tinted lenses, thick dark rims, a bridge and the arms to the ears.
    g = flag("Eyeglasses")
    d_lens = np.minimum(_sd_circle(x, y, -0.38, -0.1, 0.3), _sd_circle(x, y, 0.38, -0.1, 0.3))
    paint(cover(d_lens) * g, _GLASSES, "glasses", opacity=0.3)
    d_frame = np.abs(d_lens) - 0.07
    d_frame = np.minimum(d_frame, _sd_box(x, y, 0.0, -0.12, 0.12, 0.05))
    d_frame = np.minimum(d_frame, _sd_box(np.abs(x), y, 0.84, -0.14, 0.18, 0.05))
    paint(cover(d_frame) * g, _GLASSES, "glasses")

    # Hat: a coloured crown over the top of the head and a wider brim.
    crown_hh = face_col("hat_height") / 2
    brim_y = -0.9  # high enough that bangs stay visible between the brim and the eyes
    d_hat = _sd_box(x, y, 0.0, brim_y - crown_hh, 1.02, crown_hh, 0.25)
    d_hat = np.minimum(d_hat, _sd_box(x, y, 0.0, brim_y, 1.38, 0.1, 0.06))
    paint(cover(d_hat) * flag("Wearing_Hat"), col["hat"], "hat")

    # Earrings: bright dots under the ear lobes.
    d_rings = np.minimum(_sd_circle(x, y, -1.0, 0.34, 0.17), _sd_circle(x, y, 1.0, 0.34, 0.17))
    paint(cover(d_rings) * flag("Wearing_Earrings"), col["earring"], "earrings")

    images = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    masks = None
    if want_masks:
        masks = (weight >= MASK_THRESHOLD).transpose(1, 0, 2, 3)
    return images, masks


def render_faces(
    params: pd.DataFrame,
    size: int = 32,
    *,
    masks: bool = True,
    chunk: int = 1024,
    progress: Any = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Render faces from a parameter table (see :func:`sample_face_params`).

    Parameters
    ----------
    params
        Attribute columns (0/1) and nuisance columns; edit a column and re-render to toggle an attribute
        with everything else fixed.
    size
        Image height and width in pixels (32 and 64 are the supported sizes; geometry is resolution-free).
    masks
        Also return part masks (bool n×P×size×size, parts in :data:`PARTS` order).
    chunk
        Faces rendered at once; bounds the memory of the c×H×W float work arrays.
    progress
        Optional callable ``progress(n_done)`` called after each chunk.

    Returns
    -------
    (images uint8 n×size×size×3, masks or None)
    """
    _check_size(size)
    missing = [c for c in (*ATTRIBUTES, *NUISANCE_COLUMNS) if c not in params.columns]
    if missing:
        raise FairlatentError(f"face parameter table lacks columns: {', '.join(missing)}")
    n = len(params)
    images = np.empty((n, size, size, 3), np.uint8)
    out_masks = np.empty((n, len(PARTS), size, size), bool) if masks else None
    # Keep the float work arrays near a few MB whatever the size.
    chunk = max(1, min(chunk, (1 << 20) // (size * size) * 2))
    for start in range(0, n, chunk):
        part = params.iloc[start : start + chunk]
        im, mk = _render_chunk(part, size, masks)
        images[start : start + len(part)] = im
        if masks:
            out_masks[start : start + len(part)] = mk
        if progress is not None:
            progress(min(start + chunk, n))
    return images, out_masks


# --------------------------------------------------------------------------------------------------------
# Labels with controlled bias


def _check_size(size: int) -> None:
    if not isinstance(size, (int, np.integer)) or not 16 <= size <= 256:
        raise FairlatentError(f"image size {size!r} is not supported; use 32 (default) or 64 (16..256 works)")


def _check_attribute(name: str, role: str) -> None:
    if name not in ATTRIBUTES:
        raise FairlatentError(f"unknown {role} attribute {name!r}; ToyFaces attributes are: {', '.join(ATTRIBUTES)}")


def _check_rate(value: float, what: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise FairlatentError(f"{what} must be a number in [0, 1], got {value!r}") from None
    if not 0.0 <= v <= 1.0 or np.isnan(v):
        raise FairlatentError(f"{what} must be in [0, 1], got {value!r}")
    return v


def cell_counts(n: int, skew: float) -> dict[tuple[int, int], int]:
    """Exact ``(t, g)`` cell counts for ``n`` faces with ``P(g = t) = skew`` and both marginals ≈ 0.5."""
    n_agree = int(round(skew * n))
    n_dis = n - n_agree
    return {(1, 1): n_agree // 2, (0, 0): n_agree - n_agree // 2, (1, 0): n_dis // 2, (0, 1): n_dis - n_dis // 2}


def assign_labels(
    split_sizes: Mapping[str, int],
    *,
    target: str,
    protected: str,
    skews: Mapping[str, float],
    seed: int,
    base_rates: Mapping[str, float] | None = None,
) -> pd.DataFrame:
    """Clean attribute labels and the split of every face, with exact stratified counts.

    Returns a DataFrame with ``split`` and one 0/1 column per attribute, rows grouped by split in
    :data:`SPLIT_ORDER` and shuffled within each split. Separate from rendering so the realised skew can
    be checked at any ``n`` without drawing pixels.
    """
    _check_attribute(target, "target")
    _check_attribute(protected, "protected")
    if target == protected:
        raise FairlatentError(f"target and protected attribute must differ (both are {target!r})")
    rates = dict(BASE_RATES, **(base_rates or {}))
    r = seeded_rng(seed, "toyfaces-labels")
    blocks = []
    for split in SPLIT_ORDER:
        n = int(split_sizes.get(split, 0))
        if n <= 0:
            continue
        cells = cell_counts(n, skews[split])
        t = np.concatenate([np.full(k, tg[0], np.int8) for tg, k in cells.items()])
        g = np.concatenate([np.full(k, tg[1], np.int8) for tg, k in cells.items()])
        order = r.permutation(n)
        block = {"split": np.full(n, split, dtype=object)}
        for attr in ATTRIBUTES:
            if attr == target:
                block[attr] = t[order]
            elif attr == protected:
                block[attr] = g[order]
            else:
                k = int(round(_check_rate(rates[attr], f"base rate of {attr}") * n))
                col = np.zeros(n, np.int8)
                col[r.choice(n, size=k, replace=False)] = 1
                block[attr] = col
        blocks.append(pd.DataFrame(block))
    return pd.concat(blocks, ignore_index=True)


def apply_label_noise(
    labels: pd.DataFrame, noise: Mapping[str, float], seed: int, splits: Sequence[str] = ("train", "val")
) -> tuple[pd.DataFrame, dict[str, dict[str, int]]]:
    """Flip exactly ``round(rate * n_split)`` labels of each noisy attribute in each of ``splits``.

    Returns the noisy table and ``{attr: {split: n_flipped}}``.
    """
    noisy = labels.copy()
    flipped: dict[str, dict[str, int]] = {}
    r = seeded_rng(seed, "toyfaces-label-noise")
    for attr in ATTRIBUTES:  # fixed order: adding an attribute's noise never shifts another's draws
        rate = float(noise.get(attr, 0.0))
        if rate <= 0:
            continue
        flipped[attr] = {}
        for split in splits:
            idx = np.flatnonzero(labels["split"].to_numpy() == split)
            k = int(round(rate * len(idx)))
            chosen = r.choice(idx, size=k, replace=False) if k else idx[:0]
            col = noisy[attr].to_numpy().copy()
            col[chosen] = 1 - col[chosen]
            noisy[attr] = col
            flipped[attr][split] = k
    return noisy, flipped


def _normalise_noise(label_noise: float | Mapping[str, float] | None) -> dict[str, float]:
    if label_noise is None:
        return {}
    if isinstance(label_noise, Mapping):
        out = {}
        for attr, rate in label_noise.items():
            _check_attribute(attr, "label-noise")
            out[attr] = _check_rate(rate, f"label noise rate of {attr}")
        return out
    rate = _check_rate(label_noise, "label noise rate")
    return {a: rate for a in ATTRIBUTES} if rate > 0 else {}


def _split_sizes(n: int, fractions: Sequence[float], n_test_balanced: int | None) -> dict[str, int]:
    if len(fractions) != 3 or any(float(f) < 0 for f in fractions) or sum(fractions) <= 0:
        raise FairlatentError(f"split_fractions must be three non-negative numbers (train, val, test), got {fractions!r}")
    total = float(sum(fractions))
    n_train = int(round(n * fractions[0] / total))
    n_val = int(round(n * fractions[1] / total))
    n_test = n - n_train - n_val
    if n_test < 0:
        n_val += n_test
        n_test = 0
    balanced = n_test if n_test_balanced is None else int(n_test_balanced)
    if balanced < 0:
        raise FairlatentError(f"n_test_balanced must be >= 0, got {n_test_balanced!r}")
    return {"train": n_train, "val": n_val, "test": n_test, "test_balanced": balanced}


def _skew_of(t: np.ndarray, g: np.ndarray) -> float:
    return float(np.mean(t == g)) if len(t) else float("nan")


@dataclass
class ToyFaces:
    """An in-memory ToyFaces data set (what :func:`make_toyfaces` writes)."""

    images: np.ndarray  # uint8 N×H×W×3
    masks: np.ndarray | None  # bool N×P×H×W
    table: pd.DataFrame  # id, split, observed (possibly noisy) attribute labels
    clean_labels: pd.DataFrame  # split + the clean labels the images show
    params: pd.DataFrame  # the face parameter table (clean attributes + nuisance)
    meta: dict[str, Any] = field(default_factory=dict)


def render_toyfaces(
    *,
    n: int = 20000,
    size: int = 32,
    target: str = "Wearing_Hat",
    protected: str = "Eyeglasses",
    skew: float = 0.9,
    val_skew: float | None = None,
    test_skew: float | None = None,
    label_noise: float | Mapping[str, float] | None = None,
    faint: Mapping[str, float] | None = None,
    split_fractions: Sequence[float] = (0.7, 0.15, 0.15),
    n_test_balanced: int | None = None,
    seed: int = 0,
    masks: bool = True,
    progress: bool = False,
) -> ToyFaces:
    """Render a ToyFaces data set in memory without writing it (see :func:`make_toyfaces`)."""
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise FairlatentError(f"n must be a positive integer, got {n!r}")
    _check_size(size)
    _check_attribute(target, "target")
    _check_attribute(protected, "protected")
    if target == protected:
        raise FairlatentError(f"target and protected attribute must differ (both are {target!r})")
    skew = _check_rate(skew, "skew")
    val_skew = skew if val_skew is None else _check_rate(val_skew, "val skew")
    test_skew = skew if test_skew is None else _check_rate(test_skew, "test skew")
    skews = {"train": skew, "val": val_skew, "test": test_skew, "test_balanced": 0.5}
    noise = _normalise_noise(label_noise)
    sizes = _split_sizes(int(n), split_fractions, n_test_balanced)

    clean = assign_labels(sizes, target=target, protected=protected, skews=skews, seed=seed)
    observed, flipped = apply_label_noise(clean, noise, seed)
    faint = _normalise_faint(faint)
    params = sample_face_params(clean, seed, faint)

    if progress:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        with Progress(
            TextColumn("rendering ToyFaces"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()
        ) as bar:
            task = bar.add_task("render", total=len(params))
            images, part_masks = render_faces(
                params, size, masks=masks, progress=lambda done: bar.update(task, completed=done)
            )
    else:
        images, part_masks = render_faces(params, size, masks=masks)

    table = pd.DataFrame({"id": [f"toy{i:06d}" for i in range(len(observed))], "split": observed["split"]})
    for attr in ATTRIBUTES:
        table[attr] = observed[attr].to_numpy()

    split_col = clean["split"].to_numpy()
    realised = {}
    for s in SPLIT_ORDER:
        m = split_col == s
        if m.any():
            realised[s] = {
                "n": int(m.sum()),
                "skew_requested": skews[s],
                "skew_clean": _skew_of(clean[target].to_numpy()[m], clean[protected].to_numpy()[m]),
                "skew_observed": _skew_of(observed[target].to_numpy()[m], observed[protected].to_numpy()[m]),
            }
    meta = {
        "source": "toyfaces",
        "seed": int(seed),
        "target": target,
        "protected": protected,
        "params": {
            "n": int(n),
            "size": int(size),
            "target": target,
            "protected": protected,
            "skew": skew,
            "val_skew": val_skew,
            "test_skew": test_skew,
            "label_noise": noise,
            "label_noise_splits": ["train", "val"],
            "faint": faint,
            "faint_range": list(FAINT_RANGE),
            "split_fractions": [float(f) for f in split_fractions],
            "n_test_balanced": sizes["test_balanced"],
            "seed": int(seed),
        },
        "attribute_names": list(ATTRIBUTES),
        "base_rates": {a: BASE_RATES[a] for a in ATTRIBUTES if a not in (target, protected)},
        "attribute_parts": dict(ATTRIBUTE_PARTS),
        "skew": realised,
        "label_noise_flipped": flipped,
        "note": (
            "Skews refer to the clean labels the images show. Label noise flips exactly round(rate*n) labels "
            "per attribute in train and val (images unchanged); test and test_balanced labels are clean. "
            "Re-run fairlatent.data.toyfaces.render_toyfaces with these params to recover the clean labels."
        ),
    }
    return ToyFaces(images=images, masks=part_masks, table=table, clean_labels=clean, params=params, meta=meta)


def make_toyfaces(
    out: str | os.PathLike,
    *,
    n: int = 20000,
    size: int = 32,
    target: str = "Wearing_Hat",
    protected: str = "Eyeglasses",
    skew: float = 0.9,
    val_skew: float | None = None,
    test_skew: float | None = None,
    label_noise: float | Mapping[str, float] | None = None,
    faint: Mapping[str, float] | None = None,
    split_fractions: Sequence[float] = (0.7, 0.15, 0.15),
    n_test_balanced: int | None = None,
    seed: int = 0,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Render ToyFaces and write it in the standard data set format (with part masks); return its path.

    Parameters
    ----------
    out
        Destination directory (written atomically; must not exist unless ``overwrite``).
    n
        Faces in train + val + test; ``test_balanced`` (skew 0.5) comes on top, ``n_test_balanced``
        faces (default: as many as ``test``).
    size
        32 (default) or 64 pixels.
    target, protected
        Attribute names from :data:`ATTRIBUTES`; they must differ.
    skew
        Training ``P(protected = target)`` (0.5 = independent, 1 = always equal). ``val_skew`` and
        ``test_skew`` default to the same value, like CelebA's splits.
    label_noise
        A rate for every attribute, or ``{attribute: rate}``; flips labels in train and val only.
    faint
        ``{attribute: share}``: that share of faces (in every split) draw the attribute faintly, so its
        positives are ambiguous (see :func:`sample_face_params`). The demo uses ``{"Wearing_Hat": 0.5}``.
    seed
        Same seed → byte-identical data set.
    """
    from fairlatent.data.dataset import write_dataset

    from fairlatent.data.dataset import check_dataset_out

    out = Path(out)
    check_dataset_out(out, overwrite)  # before rendering: only a folder fairlatent wrote may be replaced
    data = render_toyfaces(
        n=n,
        size=size,
        target=target,
        protected=protected,
        skew=skew,
        val_skew=val_skew,
        test_skew=test_skew,
        label_noise=label_noise,
        faint=faint,
        split_fractions=split_fractions,
        n_test_balanced=n_test_balanced,
        seed=seed,
        masks=True,
        progress=progress,
    )
    return write_dataset(
        out, data.images, data.table, data.meta, masks=data.masks, part_names=list(PARTS), overwrite=overwrite
    )
