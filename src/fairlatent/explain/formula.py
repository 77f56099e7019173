"""Logical formulas over concepts, as searched by Compositional Explanations of Neurons (Mu & Andreas, 2020).

Why a class of its own: the beam search builds every formula *left-deep*, one concept at a time — a formula
``f`` of length ``n`` grows to ``(f OR c)``, ``(f AND c)`` or ``(f AND NOT c)`` — so a formula is a leaf
(one concept index) or ``(op, left formula, right concept)``. Formulas are immutable and hashable, and two
formulas are equal when they are written the same way: the search treats ``(A OR B)`` and ``(B OR A)`` as
different formulas, as compexp does (it never simplifies).

``length`` counts the concepts (the reference's ``--length 3`` = three concepts). ``penalty_length`` is the
reference's ``len()``, in which ``NOT c`` counts 2; the optional complexity penalty multiplies a formula's
IoU by ``penalty ** (penalty_length - 1)``, exactly as compexp (``FORMULA_COMPLEXITY_PENALTY``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

#: The binary operators, in the order the search enumerates them (compexp: Or, And, And+Not).
OPS: tuple[str, ...] = ("OR", "AND", "AND NOT")


@dataclass(frozen=True)
class Formula:
    """A leaf (``op is None``: the concept ``right``) or ``(left op right)`` with ``right`` a concept index."""

    right: int
    op: str | None = None
    left: "Formula | None" = None

    @staticmethod
    def leaf(concept: int) -> "Formula":
        return Formula(int(concept))

    def combine(self, op: str, concept: int) -> "Formula":
        if op not in OPS:
            raise ValueError(f"unknown operator {op!r}")
        return Formula(int(concept), op, self)

    @property
    def is_leaf(self) -> bool:
        return self.op is None

    @property
    def length(self) -> int:
        """Number of concepts in the formula."""
        return 1 if self.left is None else self.left.length + 1

    @property
    def penalty_length(self) -> int:
        """compexp's ``len(formula)``: concepts plus one per ``NOT``."""
        own = 2 if self.op == "AND NOT" else 1
        return own if self.left is None else self.left.penalty_length + own

    def concepts(self) -> list[int]:
        """Concept indices in order of appearance (a concept may appear twice)."""
        return [self.right] if self.left is None else self.left.concepts() + [self.right]

    def negated_concepts(self) -> list[int]:
        """Concepts that appear only under ``AND NOT``."""
        below = [] if self.left is None else self.left.negated_concepts()
        return below + [self.right] if self.op == "AND NOT" else below

    def evaluate(self, bits: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
        """The formula's truth given each concept's truth ``bits[k]`` (boolean arrays of one shape)."""
        value = np.asarray(bits[self.right], dtype=bool)
        if self.left is None:
            return value
        left = self.left.evaluate(bits)
        if self.op == "OR":
            return left | value
        if self.op == "AND":
            return left & value
        return left & ~value

    def _text(self, names: Sequence[str]) -> str:
        if self.left is None:
            return str(names[self.right])
        return f"({self.left._text(names)} {self.op} {names[self.right]})"

    def to_str(self, names: Sequence[str]) -> str:
        """``(hair OR hat) AND NOT glasses``: fully parenthesised, without the outermost pair."""
        text = self._text(names)
        return text[1:-1] if self.left is not None else text


def parse_formula(text: str, names: Sequence[str]) -> Formula:
    """Read back what :meth:`Formula.to_str` wrote (left-deep formulas only; concept names without spaces
    around the operators' words)."""
    index = {n: i for i, n in enumerate(names)}
    s = text.strip()

    def parse(s: str) -> Formula:
        s = s.strip()
        depth = 0
        # the last top-level operator splits "left OP right"; right is a concept name
        for pos in range(len(s) - 1, -1, -1):
            ch = s[pos]
            if ch == ")":
                depth += 1
            elif ch == "(":
                depth -= 1
            elif depth == 0:
                for op in ("AND NOT", "OR", "AND"):
                    tok = f" {op} "
                    if s[pos:].startswith(tok):
                        left, right = s[:pos], s[pos + len(tok):]
                        if left.startswith("(") and left.endswith(")"):
                            left = left[1:-1]
                        return parse(left).combine(op, index[right.strip()])
        if s not in index:
            raise KeyError(s)
        return Formula.leaf(index[s])

    return parse(s)
