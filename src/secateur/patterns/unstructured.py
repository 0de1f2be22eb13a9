"""Unstructured sparsity, compared within each output row.

Wanda (Sun et al., 2023, §3) ranks each weight against the others feeding the same output neuron
(per-output comparison group); this is the pattern every method uses for "unstructured".
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from secateur.errors import SecateurError
from secateur.patterns.base import Pattern, pruned_count
from secateur.registry import register

DEFAULT_SPARSITY = 0.5


@register("pattern", "unstructured")
@dataclass(frozen=True)
class Unstructured(Pattern):
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
        rows, cols = scores.shape
        k = pruned_count(cols, sparsity)
        keep = torch.ones(rows, cols, dtype=torch.bool, device=scores.device)
        if k:
            # A stable sort makes ties resolve by column index, so masks are reproducible.
            lowest = torch.sort(scores, dim=1, stable=True).indices[:, :k]
            keep.scatter_(1, lowest, False)
        return keep

    def pruned_per_matrix(self, shape: tuple[int, int], sparsity: float) -> int:
        return shape[0] * pruned_count(shape[1], sparsity)

    def structure_violations(self, weight: torch.Tensor) -> int:
        return 0  # any set of zeros is unstructured
