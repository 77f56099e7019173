"""Improved precision/recall (Kynkäänniemi et al. 2019) and density/coverage (Naeem et al. 2020), chunked.

With real features X (N×D), fake features Y (M×D) and NND_k(·) the distance to a point's k-th nearest
neighbour in its own set (the point itself excluded),

- precision = (1/M) Σ_j 1[∃ i: d(Xᵢ, Yⱼ) ≤ NND_k(Xᵢ)]        (k = ``k_pr``, 3 by default)
- recall    = (1/N) Σ_i 1[∃ j: d(Xᵢ, Yⱼ) ≤ NND_k(Yⱼ)]
- density   = (1/kM) Σ_j Σ_i 1[d(Xᵢ, Yⱼ) ≤ NND_k(Xᵢ)]        (k = ``k_dc``, 5 by default)
- coverage  = (1/N) Σ_i 1[min_j d(Xᵢ, Yⱼ) ≤ NND_k(Xᵢ)]

Difference from the ``prdc`` package: prdc tests membership with a strict ``<``, so a fake sample that
coincides with a real one is "outside" a ball of radius 0 and identical sets get coverage 0 when there
are duplicates — and a sample lying exactly on a ball's boundary is excluded. Here membership is ``≤`` (as
in Kynkäänniemi's definition and torch-fidelity); on continuous data ties have probability 0 and the two
agree. prdc also uses one k for all four metrics; here precision/recall and density/coverage take their
own k (pass ``k_pr=k_dc=5`` to compare).

Why chunked: prdc materialises three full N×M distance matrices (10k × 10k: ~1.7 GiB; 50k × 50k: ~30 GB).
Here squared distances are computed block by block as ‖x‖² + ‖y‖² − 2 x·y with one float32 matmul per
block (torch, so CUDA is used when given), k-th neighbour radii are kept as a running top-(k+1) per row,
and the cross pass keeps only per-sample counters — memory is O((N + M)·D + block). Within-set blocks are
computed once for the upper triangle and used for both their rows and their columns.

Round-off: the matmul formula has float32 cancellation error of order 1e-6·(‖x‖² + ‖y‖²); features are
centred on the real mean first (shrinking norms), and squared distances below 1e-5·(‖x‖² + ‖y‖²) — a
relative distance of about 0.3 %, far below any nearest-neighbour distance in practice — are set to exactly
0, so exact duplicates compare as equal (they would otherwise get a spurious tiny positive distance).
"""

from __future__ import annotations

import numpy as np
import torch

from fairlatent.errors import FairlatentError

SNAP_RELATIVE = 1e-5
BLOCK_ELEMENTS = 16 * 1024 * 1024  # float32 entries per distance block (64 MiB)


def _sq_dists(a: torch.Tensor, na: torch.Tensor, b: torch.Tensor, nb: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances between rows of a and b, clipped at 0, near-zero snapped to 0."""
    scale = na[:, None] + nb[None, :]
    d2 = torch.addmm(scale, a, b.T, beta=1.0, alpha=-2.0)
    # one pass both clips negatives (round-off) and snaps near-duplicates: threshold ≥ 0
    d2.masked_fill_(d2 <= scale.mul_(SNAP_RELATIVE), 0.0)
    return d2


def _merge_smallest(best: torch.Tensor, cand: torch.Tensor, kk: int) -> torch.Tensor:
    both = torch.cat([best, cand], dim=1)
    return torch.topk(both, kk, dim=1, largest=False, sorted=True).values


def kth_neighbour_sq_radii(x: torch.Tensor, ks: tuple[int, ...], block: int | None = None) -> dict[int, torch.Tensor]:
    """Squared distance from each row of x to its k-th nearest other row, for each k in ``ks``.

    The point itself (distance 0) is the 1st smallest, so the radius is the (k+1)-th smallest entry of the
    row — prdc's convention, which also makes exact duplicates count as neighbours.
    """
    n = x.shape[0]
    kk = max(ks) + 1
    if n < kk:
        raise FairlatentError(f"nearest-neighbour radius with k={max(ks)} needs at least {kk} samples, got {n}")
    nx = (x * x).sum(dim=1)
    b = block or max(256, min(n, int(np.sqrt(BLOCK_ELEMENTS))))
    best = torch.full((n, kk), float("inf"), dtype=x.dtype, device=x.device)
    for i0 in range(0, n, b):
        i1 = min(n, i0 + b)
        for j0 in range(i0, n, b):
            j1 = min(n, j0 + b)
            d2 = _sq_dists(x[i0:i1], nx[i0:i1], x[j0:j1], nx[j0:j1])
            if j0 == i0:
                d2.diagonal().zero_()  # a point's distance to itself is exactly 0
            k_rows = min(kk, j1 - j0)
            best[i0:i1] = _merge_smallest(best[i0:i1], torch.topk(d2, k_rows, dim=1, largest=False).values, kk)
            if j0 != i0:
                k_cols = min(kk, i1 - i0)
                cols = torch.topk(d2, k_cols, dim=0, largest=False).values.T
                best[j0:j1] = _merge_smallest(best[j0:j1], cols, kk)
            del d2
    return {k: best[:, k].clone() for k in ks}


def _as_tensor(name: str, x: np.ndarray) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim != 2:
        raise FairlatentError(f"{name} features must be N×D, got shape {arr.shape}")
    return arr


@torch.inference_mode()
def compute_prdc(
    real: np.ndarray,
    fake: np.ndarray,
    *,
    k_pr: int = 3,
    k_dc: int = 5,
    device: torch.device | str = "cpu",
    block_elements: int | None = None,
) -> dict[str, float]:
    """Precision, recall (k = ``k_pr``), density and coverage (k = ``k_dc``) of fake against real features.

    Returns ``{"precision", "recall", "density", "coverage"}`` as floats. See the module docstring for the
    formulas, the ``≤`` convention and the memory bound.
    """
    real = _as_tensor("real", real)
    fake = _as_tensor("fake", fake)
    if real.shape[1] != fake.shape[1]:
        raise FairlatentError(f"feature dimensions differ: real {real.shape} vs fake {fake.shape}")
    if min(k_pr, k_dc) < 1:
        raise FairlatentError(f"k must be ≥ 1 (k_pr={k_pr}, k_dc={k_dc})")
    centre = real.mean(axis=0, dtype=np.float64).astype(np.float32)
    x = torch.from_numpy(np.asarray(real, dtype=np.float32) - centre).to(device)
    y = torch.from_numpy(np.asarray(fake, dtype=np.float32) - centre).to(device)
    n, m = x.shape[0], y.shape[0]
    elements = block_elements or BLOCK_ELEMENTS
    sq_block = max(256, int(np.sqrt(elements)))

    rx = kth_neighbour_sq_radii(x, tuple(sorted({k_pr, k_dc})), block=sq_block)
    ry = kth_neighbour_sq_radii(y, (k_pr,), block=sq_block)[k_pr]
    rx_pr, rx_dc = rx[k_pr], rx[k_dc]

    nx = (x * x).sum(dim=1)
    ny = (y * y).sum(dim=1)
    in_real_ball = torch.zeros(m, dtype=torch.bool, device=x.device)  # precision
    density_count = torch.zeros(m, dtype=torch.float64, device=x.device)
    real_recalled = torch.zeros(n, dtype=torch.bool, device=x.device)  # recall
    min_to_fake = torch.full((n,), float("inf"), dtype=x.dtype, device=x.device)  # coverage
    rows = max(1, elements // max(n, 1))
    for j0 in range(0, m, rows):
        j1 = min(m, j0 + rows)
        d2 = _sq_dists(y[j0:j1], ny[j0:j1], x, nx)  # fake block × all real
        in_real_ball[j0:j1] = (d2 <= rx_pr[None, :]).any(dim=1)
        density_count[j0:j1] = (d2 <= rx_dc[None, :]).sum(dim=1, dtype=torch.float64)
        real_recalled |= (d2 <= ry[j0:j1, None]).any(dim=0)
        min_to_fake = torch.minimum(min_to_fake, d2.min(dim=0).values)
        del d2
    return {
        "precision": float(in_real_ball.double().mean()),
        "recall": float(real_recalled.double().mean()),
        "density": float(density_count.sum() / (k_dc * m)),
        "coverage": float((min_to_fake <= rx_dc).double().mean()),
    }
