"""The Pattern interface: scores in, keep-mask out.

A pattern turns an importance score per weight into a boolean keep-mask of the same shape. It owns
the question "which weights compete with which" (a row, a group of M inputs, a tile), and it can
check afterwards that a weight matrix really has its structure.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch


class Pattern(ABC):
    """Masks from scores. Subclasses are frozen dataclasses so they can be compared and saved."""

    @property
    @abstractmethod
    def spec(self) -> str:
        """The string that parses back into this pattern, e.g. 'unstructured' or '2:4'."""

    @abstractmethod
    def resolve_sparsity(self, requested: float | None) -> float:
        """The sparsity this pattern will produce, given what the user asked for (None: not given).

        Raises SecateurError when the request cannot be honoured, never silently changes it.
        """

    @abstractmethod
    def mask(self, scores: torch.Tensor, sparsity: float) -> torch.Tensor:
        """scores: (out_features, in_features), any float dtype. Returns a bool keep-mask, same shape."""

    @abstractmethod
    def structure_violations(self, weight: torch.Tensor) -> int:
        """How many comparison groups of `weight` hold more nonzeros than the pattern allows (0 = valid)."""

    @abstractmethod
    def pruned_per_matrix(self, shape: tuple[int, int], sparsity: float) -> int:
        """How many weights `mask` removes from a matrix of this shape (the verification target)."""

    def check_shape(self, shape: tuple[int, ...], name: str) -> None:  # noqa: B027 - optional hook
        """Raise SecateurError if a matrix of this shape cannot take the pattern."""


def pruned_count(total: int, sparsity: float) -> int:
    """How many of `total` competing weights a fraction `sparsity` removes.

    Rounds down, as Wanda's `int(cols * sparsity)` does, but forgives float noise such as
    0.29 * 100 = 28.999999999999996 so that asking for 29% of 100 weights prunes 29.
    """
    return int(total * sparsity + 1e-9)
