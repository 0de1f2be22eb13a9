"""Unstructured sparsity, compared within each output row.

Wanda (Sun et al., 2023, §3) ranks each weight against the others feeding the same output neuron
(per-output comparison group); this is the pattern every method uses for "unstructured".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from secateur.errors import SecateurError
from secateur.patterns.base import Pattern, pruned_count
from secateur.registry import register

DEFAULT_SPARSITY = 0.5


@register("pattern", "unstructured")
@dataclass(frozen=True)
class Unstructured(Pattern):
    kind: ClassVar[str] = "unstructured"

    @property
    def spec(self) -> str:
        return "unstructured"

    @classmethod
    def from_arg(cls, arg: str | None) -> Unstructured:
        if arg:
            raise SecateurError(f"pattern 'unstructured' takes no argument, got 'unstructured:{arg}'")
        return cls()

    def resolve_sparsity(self, requested: float | None) -> float:
        return DEFAULT_SPARSITY if requested is None else requested

    def mask(self, scores: torch.Tensor, sparsity: float) -> torch.Tensor:
        k = pruned_count(scores.shape[1], sparsity)
        if k == 0:
            return torch.ones_like(scores, dtype=torch.bool)
        return ~lowest_k_per_row(scores, k)

    def pruned_per_matrix(self, shape: tuple[int, int], sparsity: float) -> int:
        return shape[0] * pruned_count(shape[1], sparsity)

    def structure_violations(self, weight: torch.Tensor) -> int:
        return 0  # any set of zeros is unstructured

    def solver_mask(self, saliency: torch.Tensor, sparsity: float) -> torch.Tensor:
        """SparseGPT's adaptive rule: one threshold over the whole strip, so rows may differ."""
        k = pruned_count(saliency.numel(), sparsity)
        if k == 0:
            return torch.ones_like(saliency, dtype=torch.bool)
        return ~lowest_k_per_row(saliency.reshape(1, -1), k).reshape(saliency.shape)


def lowest_k_per_row(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Bool mask of the k lowest scores of each row; ties at the threshold go to the lowest columns.

    The same set a stable sort's first k picks, but a k-th value search plus elementwise ops is
    ~4x faster than sorting every row, and ties stay reproducible across devices (scores of
    quantized weights tie often).
    """
    threshold = torch.kthvalue(scores, k, dim=1, keepdim=True).values
    below = scores < threshold
    ties = scores == threshold
    missing = k - below.sum(1, keepdim=True)
    return below | (ties & (ties.cumsum(1) <= missing))
