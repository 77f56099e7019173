"""CTGAN's conditional vector and training-by-sampling (Xu et al. 2019, §4.3).

For a batch, each row gets a **discrete column** chosen uniformly at random and a **category** of it drawn
with probability ∝ log(frequency + 1) (``log_frequency=True``, the reference default; ∝ frequency otherwise).
The conditional vector is the concatenation of one one-hot block per discrete column, all zeros except the
chosen category; the mask says which column was chosen (for the generator's conditional cross-entropy).
The real rows shown to the discriminator are drawn uniformly among the training rows holding the chosen
category ("training-by-sampling"), so rare categories are seen often enough to be learnt.

For unconditional sampling after training (:meth:`ConditionalSampler.original_condvec`) the category is drawn
∝ its real frequency (a uniform column, then its empirical distribution), so every column's marginal is the
data's; the reference draws it ∝ log frequency there too, which over-produces rare categories.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from fairlatent.tabular.transformer import Span

__all__ = ["ConditionalSampler"]


class ConditionalSampler:
    """Conditional vectors and matching real rows, from the encoded training data (or category counts only)."""

    def __init__(self, spans: Sequence[Span], counts: Sequence[np.ndarray], log_frequency: bool = True,
                 rows: list[list[np.ndarray]] | None = None):  # fmt: skip
        self.discrete = [s for s in spans if s.kind == "category"]
        self.counts = [np.asarray(c, dtype=np.float64) for c in counts]
        self.log_frequency = log_frequency
        self.rows = rows
        widths = [s.width for s in self.discrete]
        self.offsets = np.concatenate([[0], np.cumsum(widths)]).astype(np.int64)
        self.dim = int(self.offsets[-1])
        k = max(widths, default=0)
        self.probs = np.zeros((len(self.discrete), k))
        self.real_probs = np.zeros((len(self.discrete), k))
        for j, c in enumerate(self.counts):
            f = np.log(c + 1.0) if log_frequency else c
            self.probs[j, : len(c)] = f / f.sum()
            self.real_probs[j, : len(c)] = c / c.sum()

    @classmethod
    def from_data(cls, data: np.ndarray, spans: Sequence[Span], log_frequency: bool = True) -> "ConditionalSampler":
        rows, counts = [], []
        for s in (s for s in spans if s.kind == "category"):
            codes = data[:, s.start:s.stop].argmax(axis=1)
            rows.append([np.flatnonzero(codes == k) for k in range(s.width)])
            counts.append(np.bincount(codes, minlength=s.width))
        return cls(spans, counts, log_frequency, rows)

    @property
    def n_discrete(self) -> int:
        return len(self.discrete)

    def _draw(self, probs: np.ndarray, col: np.ndarray, g: np.random.Generator) -> np.ndarray:
        cum = np.cumsum(probs[col], axis=1)
        u = g.random(len(col))[:, None]
        return np.minimum((cum < u * cum[:, -1:]).sum(axis=1), (probs[col] > 0).sum(axis=1) - 1)

    def condvec(self, col: np.ndarray, opt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(conditional vectors ``n × dim``, mask ``n × n_discrete``) for column indices and categories."""
        n = len(col)
        cond = np.zeros((n, self.dim), dtype=np.float32)
        cond[np.arange(n), self.offsets[col] + opt] = 1.0
        mask = np.zeros((n, self.n_discrete), dtype=np.float32)
        mask[np.arange(n), col] = 1.0
        return cond, mask

    def sample_condvec(self, n: int, g: np.random.Generator):
        """Training: (cond, mask, column index, category index) of ``n`` rows; ``None`` without discrete columns."""
        if not self.n_discrete:
            return None
        col = g.integers(0, self.n_discrete, size=n)
        opt = self._draw(self.probs, col, g)
        cond, mask = self.condvec(col, opt)
        return cond, mask, col, opt

    def original_condvec(self, n: int, g: np.random.Generator) -> np.ndarray | None:
        """Sampling: a uniform column and a category ∝ its real frequency (see the module docstring)."""
        if not self.n_discrete:
            return None
        col = g.integers(0, self.n_discrete, size=n)
        return self.condvec(col, self._draw(self.real_probs, col, g))[0]

    def sample_rows(self, col: np.ndarray, opt: np.ndarray, g: np.random.Generator) -> np.ndarray:
        """A training row holding category ``opt[i]`` of column ``col[i]``, uniformly, for each ``i``."""
        assert self.rows is not None, "built from counts only: no rows to sample"
        u = g.random(len(col))
        return np.array([self.rows[c][o][int(x * len(self.rows[c][o]))] for c, o, x in zip(col, opt, u)],
                        dtype=np.int64)
