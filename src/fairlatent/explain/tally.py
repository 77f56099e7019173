"""Pooled counts from which every formula's IoU follows: the tally of pixel *patterns*.

Network dissection's IoU of unit ``u`` and concept ``c`` is pooled over the whole probe set — one intersection
and one union per pair, ``|M_u ∩ L_c| / (|M_u| + |L_c| − |M_u ∩ L_c|)``, not a mean of per-image IoUs — where
``M_u`` is the set of (image, pixel) positions at which the unit's activation map, upsampled bilinearly to
the mask resolution, exceeds its threshold ``T_u``, and ``L_c`` the concept's mask.

Why patterns: a formula's truth at a pixel depends only on which concepts are true there, the pixel's
*pattern* (a K-bit vector). So one pass over the data counts, for every pattern ``p`` that occurs,
``n_p`` = pixels with that pattern and ``m_up`` = those among them where unit ``u`` fires. Then for any formula
``F`` (a truth vector over patterns) ``|F| = Σ_{p∈F} n_p`` and ``|F ∩ M_u| = Σ_{p∈F} m_up``: every IoU the
beam search asks for is a sum over a few thousand patterns instead of a boolean operation over all
``N·H·W`` pixels, and the counts are the same integers, so the IoUs are *exactly* those of the plain search.
ToyFaces at 64 px has a few thousand patterns (part overlaps × attribute combinations) against 41 million
pixels for 10,000 images.

Unit masks are built sparsely: bilinear interpolation is a convex combination, so an upsampled map cannot
exceed its raw maximum, and only maps whose raw maximum exceeds ``T_u`` are upsampled (compexp does the
same). Upsampling is done in float64: each output is a sum of two products per axis of float32 inputs and
weights that are multiples of ``1/(2·scale)``, and with float64 rounding is monotone, so the skip is exact
(no upsampled value ever exceeds the maximum it was skipped for).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import torch

#: Selected maps upsampled at once (bounds memory at ~chunk·H·W·8 bytes).
_UPSAMPLE_CHUNK = 1024
#: Up to this many spatial concepts, pattern ids are looked up in a dense table of 2^K_spatial per
#: attribute combination; above it, through np.unique of 64-bit keys.
_DENSE_SPATIAL_BITS = 12


def bilinear_weights(n_in: int, n_out: int) -> torch.Tensor:
    """``(n_out, n_in)`` float64 matrix of 1-D bilinear interpolation with half-pixel centres
    (``align_corners=False``, edges clamped), the convention of torch's and PIL's bilinear resize: output
    ``i`` samples input coordinate ``(i + 0.5)·n_in/n_out − 0.5``. Every row has at most two non-zero weights
    summing to 1."""
    w = torch.zeros(n_out, n_in, dtype=torch.float64)
    scale = n_in / n_out
    for i in range(n_out):
        src = max((i + 0.5) * scale - 0.5, 0.0)
        j0 = min(int(math.floor(src)), n_in - 1)
        j1 = min(j0 + 1, n_in - 1)
        frac = src - j0 if j0 < n_in - 1 else 0.0
        w[i, j0] += 1.0 - frac
        w[i, j1] += frac
    return w


@functools.lru_cache(maxsize=8)
def _weights(h: int, w: int, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    return bilinear_weights(h, size[0]), bilinear_weights(w, size[1]).T.contiguous()


def upsample_maps(maps: torch.Tensor | np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """Activation maps ``(M, h, w)`` bilinearly upsampled to ``size`` (float64): ``Wy · A · Wxᵀ`` with the
    matrices of :func:`bilinear_weights` — the values of ``F.interpolate(mode="bilinear",
    align_corners=False)`` (tested), computed as two small matrix products, about twice as fast on CPU."""
    t = torch.as_tensor(np.asarray(maps) if isinstance(maps, np.ndarray) else maps).to(torch.float64)
    h, w = t.shape[-2:]
    if (h, w) == tuple(size):
        return t.clone()
    wy, wxt = _weights(int(h), int(w), (int(size[0]), int(size[1])))
    return wy @ (t @ wxt)


@dataclass
class PatternTally:
    """``bits[k, p]``: concept ``k`` true in pattern ``p``; ``pixels[p]`` = n_p; ``hits[u, p]`` = m_up."""

    bits: np.ndarray  # bool (K, P)
    pixels: np.ndarray  # int64 (P,)
    hits: np.ndarray  # int64 (U, P)

    @property
    def unit_pixels(self) -> np.ndarray:
        """|M_u| for every unit."""
        return self.hits.sum(axis=1)

    @property
    def concept_pixels(self) -> np.ndarray:
        """|L_c| for every concept."""
        return self.bits.astype(np.int64) @ self.pixels

    def concept_hits(self) -> np.ndarray:
        """``(U, K)``: |M_u ∩ L_c|."""
        return self.hits @ self.bits.T.astype(np.int64)


def iou_from_counts(inter, size, unit):
    """Pooled IoU ``inter / (size + unit − inter)`` from integer counts (0 when the union is empty); numpy
    arrays or Python ints, the same float64 either way."""
    inter = np.asarray(inter, dtype=np.int64)
    union = np.asarray(size, dtype=np.int64) + np.asarray(unit, dtype=np.int64) - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(union > 0, inter / np.maximum(union, 1), 0.0)
    return out


class PatternCounter:
    """Accumulates a :class:`PatternTally` batch by batch (see the module docstring)."""

    def __init__(self, n_spatial: int, n_image: int, thresholds: np.ndarray, mask_size: tuple[int, int]) -> None:
        self.n_spatial, self.n_image = int(n_spatial), int(n_image)
        self.thresholds = np.asarray(thresholds, dtype=np.float64)
        self.units = len(self.thresholds)
        self.mask_size = (int(mask_size[0]), int(mask_size[1]))
        self._combos: dict[bytes, int] = {}
        self._combo_rows: list[np.ndarray] = []
        self._dense = self.n_spatial <= _DENSE_SPATIAL_BITS
        self._lut = np.full((0, 1 << self.n_spatial), -1, dtype=np.int64) if self._dense else None
        self._keys: dict[int, int] = {}
        self._pattern_combo: list[np.ndarray] = []
        self._pattern_code: list[np.ndarray] = []
        self.n_patterns = 0
        self._pixels = np.zeros(0, dtype=np.int64)
        self._hits = np.zeros((0, self.units), dtype=np.int64)  # (P, U) while counting

    # ---- pattern ids ------------------------------------------------------------------------------------
    def _combo_ids(self, image: np.ndarray) -> np.ndarray:
        b = len(image)
        if self.n_image == 0:
            rows, inv = np.zeros((1, 0), dtype=np.uint8), np.zeros(b, dtype=np.int64)
        else:
            packed = np.packbits(image.astype(bool), axis=1)
            rows, inv = np.unique(packed, axis=0, return_inverse=True)
        ids = np.empty(len(rows), dtype=np.int64)
        for i, row in enumerate(rows):
            key = row.tobytes()
            if key not in self._combos:
                self._combos[key] = len(self._combo_rows)
                self._combo_rows.append(image[np.flatnonzero(inv.reshape(-1) == i)[0]].astype(bool)
                                        if self.n_image else np.zeros(0, bool))
            ids[i] = self._combos[key]
        return ids[inv.reshape(-1)]

    def _spatial_codes(self, spatial: np.ndarray | None, b: int) -> np.ndarray:
        if self.n_spatial == 0:
            return np.zeros((b, *self.mask_size), dtype=np.int64)
        dtype = np.uint8 if self.n_spatial <= 8 else np.int64
        code = np.zeros((b, *self.mask_size), dtype=dtype)
        for k in range(self.n_spatial):  # faster than np.packbits across the part axis
            code |= spatial[:, k].view(np.uint8).astype(dtype, copy=False) << dtype(k)
        return code

    def _new_patterns(self, combos: np.ndarray, codes: np.ndarray) -> np.ndarray:
        ids = np.arange(self.n_patterns, self.n_patterns + len(combos), dtype=np.int64)
        self.n_patterns += len(combos)
        self._pattern_combo.append(combos)
        self._pattern_code.append(codes)
        self._pixels = np.concatenate([self._pixels, np.zeros(len(combos), np.int64)])
        self._hits = np.concatenate([self._hits, np.zeros((len(combos), self.units), np.int64)])
        return ids

    def _pattern_ids(self, combo: np.ndarray, code: np.ndarray) -> np.ndarray:
        """Dense pattern ids ``(B, H, W)`` of pixels with image combination ``combo[b]`` and spatial ``code``."""
        if self._dense:
            if self._lut.shape[0] < len(self._combo_rows):
                grow = len(self._combo_rows) - self._lut.shape[0]
                self._lut = np.concatenate([self._lut, np.full((grow, self._lut.shape[1]), -1, np.int64)])
            ids = self._lut[combo[:, None, None], code]
            unseen = ids < 0
            if unseen.any():
                keys = np.unique(np.broadcast_to(combo[:, None, None], code.shape)[unseen] * self._lut.shape[1]
                                 + code[unseen])
                c, k = np.divmod(keys, self._lut.shape[1])
                self._lut[c, k] = self._new_patterns(c, k)
                ids = self._lut[combo[:, None, None], code]
            return ids
        keys = (combo[:, None, None] << self.n_spatial) | code
        uniq, inv = np.unique(keys, return_inverse=True)
        gid = np.empty(len(uniq), dtype=np.int64)
        fresh = [i for i, k in enumerate(uniq.tolist()) if k not in self._keys]
        if fresh:
            fk = uniq[fresh]
            new = self._new_patterns(fk >> self.n_spatial, fk & ((1 << self.n_spatial) - 1))
            self._keys.update(zip(fk.tolist(), new.tolist()))
        gid[:] = [self._keys[k] for k in uniq.tolist()]
        return gid[inv.reshape(keys.shape)]

    # ---- counting ---------------------------------------------------------------------------------------
    def add(self, acts: torch.Tensor, spatial: np.ndarray | None, image: np.ndarray) -> None:
        """One batch: activations ``(B, U, h, w)`` float32, part masks ``(B, K_s, H, W)`` bool (or None),
        image-level labels ``(B, K_i)`` bool."""
        b = acts.shape[0]
        ids = self._pattern_ids(self._combo_ids(image), self._spatial_codes(spatial, b))
        self._pixels += np.bincount(ids.ravel(), minlength=self.n_patterns)
        t = torch.from_numpy(self.thresholds)
        peak = acts.amax(dim=(2, 3)).double()  # (B, U)
        bi, ui = torch.nonzero(peak > t[None, :], as_tuple=True)
        h, w = self.mask_size
        for s in range(0, len(bi), _UPSAMPLE_CHUNK):
            cb, cu = bi[s:s + _UPSAMPLE_CHUNK], ui[s:s + _UPSAMPLE_CHUNK]
            fire = upsample_maps(acts[cb, cu], (h, w)) > t[cu][:, None, None]
            mi, y, x = torch.nonzero(fire, as_tuple=True)
            if len(mi) == 0:
                continue
            pid = ids[cb[mi].numpy(), y.numpy(), x.numpy()]
            flat = pid * self.units + cu[mi].numpy()
            self._hits += np.bincount(flat, minlength=self.n_patterns * self.units).reshape(self.n_patterns, self.units)

    def result(self) -> PatternTally:
        k = self.n_spatial + self.n_image
        p = self.n_patterns
        bits = np.zeros((k, p), dtype=bool)
        if p:
            combo = np.concatenate(self._pattern_combo)
            code = np.concatenate(self._pattern_code)
            for j in range(self.n_spatial):
                bits[j] = (code >> j) & 1
            if self.n_image:
                rows = np.stack(self._combo_rows)  # (C, K_i)
                bits[self.n_spatial:] = rows[combo].T
        return PatternTally(bits=bits, pixels=self._pixels.copy(), hits=self._hits.T.copy())
