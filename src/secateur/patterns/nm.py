"""N:M semi-structured sparsity: in every run of M consecutive inputs of a row, keep the N best.

2:4 is what NVIDIA Ampere+ sparse tensor cores accelerate (Mishra et al., 2021); 4:8 is a looser
variant that loses less quality. The sparsity is fixed at 1 - N/M.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from secateur.errors import SecateurError
from secateur.patterns.base import Pattern
from secateur.registry import register


@register("pattern", "n:m")
@dataclass(frozen=True)
class NM(Pattern):
    kind: ClassVar[str] = "N:M"
    n: int
    m: int

    def __post_init__(self) -> None:
        if not (1 <= self.n < self.m):
            raise SecateurError(
                f"N:M pattern {self.n}:{self.m} needs 1 <= N < M (keep N of every M weights), e.g. 2:4"
            )

    @property
    def spec(self) -> str:
        return f"{self.n}:{self.m}"

    @property
    def sparsity(self) -> float:
        return 1.0 - self.n / self.m

    def resolve_sparsity(self, requested: float | None) -> float:
        if requested is not None and abs(requested - self.sparsity) > 1e-9:
            raise SecateurError(
                f"pattern {self.spec} always gives sparsity {self.sparsity:g}, but --sparsity {requested:g} "
                f"was asked for: drop --sparsity or pass {self.sparsity:g}"
            )
        return self.sparsity

    def check_shape(self, shape: tuple[int, ...], name: str) -> None:
        if shape[-1] % self.m:
            raise SecateurError(
                f"{name} has {shape[-1]} inputs, not a multiple of M={self.m}: "
                f"choose another N:M pattern or skip this layer"
            )

    def mask(self, scores: torch.Tensor, sparsity: float) -> torch.Tensor:
        rows, cols = scores.shape
        self.check_shape((rows, cols), "a weight matrix")
        groups = scores.reshape(rows, cols // self.m, self.m)
        best = torch.topk(groups, self.n, dim=-1).indices
        keep = torch.zeros_like(groups, dtype=torch.bool).scatter_(-1, best, True)
        return keep.reshape(rows, cols)

    def pruned_per_matrix(self, shape: tuple[int, int], sparsity: float) -> int:
        return shape[0] * (shape[1] // self.m) * (self.m - self.n)

    def sparsity_tolerance(self, shape: tuple[int, int]) -> float:
        return 1e-9  # exact

    def solver_strip_width(self, blocksize: int, cols: int) -> int:
        return self.m

    def structure_violations(self, weight: torch.Tensor) -> int:
        rows, cols = weight.shape
        if cols % self.m:
            return rows * (cols // self.m + 1)
        nonzeros = (weight != 0).reshape(rows, cols // self.m, self.m).sum(-1)
        return int((nonzeros > self.n).sum())
