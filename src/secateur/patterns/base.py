"""The Pattern interface: scores in, keep-mask out.

A pattern turns an importance score per weight into a boolean keep-mask of the same shape. It owns
the question "which weights compete with which" (a row, a group of M inputs, a tile), and it can
check afterwards that a weight matrix really has its structure.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import torch

# Every kind of pattern, in the order users meet them; a method lists the ones it takes.
PATTERN_KINDS = ("unstructured", "N:M", "block", "tiered")


class Pattern(ABC):
    """Masks from scores. Subclasses are frozen dataclasses so they can be compared and saved."""

    # What a method lists among the patterns it takes (see pruning.method.PruningMethod.patterns).
    kind: ClassVar[str]

    # Whether zeros beyond the mask keep the structure valid (unstructured, N:M: yes; blocks: a
    # zero outside a pruned tile is not a block pattern). SparseGPT asks before zeroing dead inputs.
    extra_zeros_allowed = True

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

    def configured(self, config: object) -> Pattern:
        """This pattern with the settings it reads from a PruneConfig (tiered: --tiers, --topk)."""
        return self

    def check_shape(self, shape: tuple[int, ...], name: str) -> None:  # noqa: B027 - optional hook
        """Raise SecateurError if a matrix of this shape cannot take the pattern."""

    def sparsity_tolerance(self, shape: tuple[int, int]) -> float:
        """How far below the target a correct mask may fall (rounding of its comparison groups)."""
        return 1.0 / shape[1]

    def conforming_zeros(self, weight: torch.Tensor) -> int:
        """Zeros that sit where the pattern allows pruning (all of them, unless it has units)."""
        return int((weight == 0).sum())

    def structure_details(self, weight: torch.Tensor) -> dict[str, int]:
        """Extra per-matrix facts for reports (tiles kept/pruned for block patterns)."""
        return {}

    # SparseGPT chooses its mask inside the column loop, one strip of columns at a time, from
    # saliencies w²/[H⁻¹]²_jj of the already-updated weights (Frantar & Alistarh, 2023, §3.3).
    def solver_strip_width(self, blocksize: int, cols: int) -> int:
        """Columns whose mask is chosen together, when the solver reaches the first of them."""
        return blocksize

    def solver_mask(self, saliency: torch.Tensor, sparsity: float) -> torch.Tensor:
        """Keep-mask for one strip of columns, from its OBS saliencies (rows, width)."""
        return self.mask(saliency, sparsity)


def pruned_count(total: int, sparsity: float) -> int:
    """How many of `total` competing weights a fraction `sparsity` removes.

    Rounds down, as Wanda's `int(cols * sparsity)` does, but forgives float noise such as
    0.29 * 100 = 28.999999999999996 so that asking for 29% of 100 weights prunes 29.
    """
    return int(total * sparsity + 1e-9)
