"""What a generator's latent vector is made of, and how to sample it.

The paper's GANs take ``z ~ N(0, I)``. Other generators the method applies to take structured codes beside
the noise: InfoGAN draws categorical codes (one-hot) and uniform codes in [−1, 1]; conditional tabular GANs
(CTGAN) draw a one-hot category per discrete column. :class:`LatentSpec` describes such a vector, so the
pipeline can sample latents for any of them without knowing which it has.

Layout of a latent vector (``dim`` entries): the ``normal_dim`` N(0, I) entries first, then every code in
order, a categorical code as ``k`` one-hot entries and a uniform code as ``dim`` entries. The normal part is
drawn from the seed's ``"generator-latents"`` stream exactly as before codes existed, so a spec without codes
gives the same latents as fairlatent always has; each code draws from a stream of its own, so adding a code
or changing the truncation leaves the other parts of a seed's latents unchanged.

Truncation (the "truncation trick") applies to the normal part only: each normal entry with |z_i| > τ is
redrawn from N(0, 1) until it falls inside [−τ, τ]. Codes are bounded already (one-hot, or in [−1, 1]), and
truncating a one-hot code would not mean anything.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fairlatent.errors import FairlatentError
from fairlatent.utils.seed import rng


def truncated_normal(generator: np.random.Generator, shape: tuple[int, int], truncation: float | None) -> np.ndarray:
    """Standard-normal float32 array; with ``truncation`` τ every entry outside [−τ, τ] is redrawn until inside.

    Vectorised rejection: each round redraws only the entries still outside, so the expected number of
    rounds is 1 / P(|z| ≤ τ) (≈ 1.5 for τ = 1, ≈ 2.6 for τ = 0.5).
    """
    z = generator.standard_normal(shape, dtype=np.float32)
    if truncation is None:
        return z
    if not truncation > 0:
        raise FairlatentError(f"truncation must be > 0, got {truncation}")
    bad = np.abs(z) > truncation
    while bad.any():
        z[bad] = generator.standard_normal(int(bad.sum()), dtype=np.float32)
        bad = np.abs(z) > truncation
    return z


@dataclass(frozen=True)
class CategoricalCode:
    """A categorical code with ``k`` values, stored one-hot (``k`` entries), drawn uniformly over the values."""

    name: str
    k: int

    def __post_init__(self) -> None:
        if self.k < 2:
            raise FairlatentError(f"categorical code {self.name!r}: needs k ≥ 2 values, got {self.k}")

    @property
    def width(self) -> int:
        return self.k

    def sample(self, generator: np.random.Generator, n: int) -> np.ndarray:
        return np.eye(self.k, dtype=np.float32)[generator.integers(0, self.k, size=n)]


@dataclass(frozen=True)
class UniformCode:
    """A continuous code of ``dim`` entries, each drawn from U(−1, 1) (InfoGAN's continuous codes)."""

    name: str
    dim: int = 1

    def __post_init__(self) -> None:
        if self.dim < 1:
            raise FairlatentError(f"uniform code {self.name!r}: needs dim ≥ 1, got {self.dim}")

    @property
    def width(self) -> int:
        return self.dim

    def sample(self, generator: np.random.Generator, n: int) -> np.ndarray:
        return generator.uniform(-1.0, 1.0, size=(n, self.dim)).astype(np.float32)


Code = CategoricalCode | UniformCode


@dataclass(frozen=True)
class LatentSpec:
    """A latent vector: ``normal_dim`` N(0, I) entries followed by ``codes`` (see the module docstring)."""

    normal_dim: int
    codes: tuple[Code, ...] = ()

    def __post_init__(self) -> None:
        if self.normal_dim < 0 or self.normal_dim + sum(c.width for c in self.codes) < 1:
            raise FairlatentError(f"a latent needs at least one entry (normal_dim={self.normal_dim}, "
                                  f"codes={[c.name for c in self.codes]})")
        names = [c.name for c in self.codes]
        if len(set(names)) != len(names):
            raise FairlatentError(f"latent code names must be distinct, got {names}")
        object.__setattr__(self, "codes", tuple(self.codes))

    @property
    def dim(self) -> int:
        """Total length of a latent vector."""
        return self.normal_dim + sum(c.width for c in self.codes)

    def slices(self) -> dict[str, slice]:
        """Where each part lives in a latent vector: ``"normal"`` and every code by name."""
        out = {"normal": slice(0, self.normal_dim)}
        start = self.normal_dim
        for c in self.codes:
            out[c.name] = slice(start, start + c.width)
            start += c.width
        return out

    def normal_mask(self) -> np.ndarray:
        """Boolean vector over the ``dim`` entries, True on the N(0, I) noise: what an edit may move while
        keeping the codes as drawn (``latent.edit_codes = false``)."""
        mask = np.zeros(self.dim, dtype=bool)
        mask[: self.normal_dim] = True
        return mask

    def sample(self, n: int, seed: int, truncation: float | None = None) -> np.ndarray:
        """``n`` latents (float32 n×dim), a function of ``seed``; ``truncation`` bounds the normal part only."""
        if n < 0:
            raise FairlatentError(f"number of samples must be ≥ 0, got {n}")
        n = int(n)
        parts = [truncated_normal(rng(seed, "generator-latents"), (n, self.normal_dim), truncation)]
        if not self.codes:
            return parts[0]
        parts += [c.sample(rng(seed, f"generator-code-{c.name}"), n) for c in self.codes]
        return np.concatenate(parts, axis=1)

    def check(self, z: np.ndarray) -> np.ndarray:
        """``z`` as an array, refused (naming the expected shape) unless it is a floating n×dim array."""
        z = np.asarray(z)
        if z.ndim != 2 or z.shape[1] != self.dim:
            raise FairlatentError(
                f"latents have shape {z.shape}, expected n×{self.dim} "
                f"(this generator's latent dimension is {self.dim}, got "
                f"{z.shape[-1] if z.ndim else 'a scalar'})"
            )
        if not np.issubdtype(z.dtype, np.floating):
            raise FairlatentError(f"latents must be floating point, got {z.dtype}")
        return z


__all__ = ["CategoricalCode", "Code", "LatentSpec", "UniformCode", "truncated_normal"]
