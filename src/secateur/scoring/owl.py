"""OWL's settings and its pure arithmetic: outlier ratios of scores, and the per-layer sparsities
they give (Yin et al., 2024, arXiv:2310.05175). The pass over the layers is `secateur.pruning.owl`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from secateur.errors import SecateurError


@dataclass(frozen=True)
class OwlSettings:
    outlier_multiple: float  # M
    spread: float  # λ

    @classmethod
    def parse(cls, text: str) -> OwlSettings:
        """'5,0.08' -> M=5, λ=0.08."""
        try:
            m, lam = (float(part) for part in str(text).split(","))
        except ValueError:
            raise SecateurError(f"--owl takes M,lambda such as 5,0.08; got {text!r}") from None
        if m <= 0:
            raise SecateurError(f"--owl M must be positive, got {m:g}")
        return cls(m, lam)

    def check(self, sparsity: float) -> None:
        if not 0.0 <= self.spread <= sparsity:
            raise SecateurError(f"--owl lambda {self.spread:g} must lie in [0, sparsity] = [0, {sparsity:g}]")
        if sparsity + self.spread >= 1.0:
            raise SecateurError(
                f"--owl lambda {self.spread:g} would push some layers to sparsity "
                f"{sparsity + self.spread:g} >= 1; use lambda < {1 - sparsity:g}"
            )


def outlier_ratio(scores: list[torch.Tensor], multiple: float) -> float:
    """Fraction of all the layer's scores above `multiple` x their mean."""
    flat = torch.cat([s.flatten() for s in scores])
    return float((flat > multiple * flat.mean()).float().mean())


def allocate(
    ratios: dict[int, float], sizes: dict[int, int], target: float, spread: float
) -> dict[int, float]:
    """Per-layer sparsity in [target - spread, target + spread], size-weighted mean = target."""
    layers = sorted(ratios)
    values = torch.tensor([ratios[i] for i in layers], dtype=torch.float64)
    weights = torch.tensor([sizes[i] for i in layers], dtype=torch.float64)
    span = float(values.max() - values.min())
    if span == 0.0:
        return dict.fromkeys(layers, target)
    density = (values - values.min()) / span * (2 * spread)  # more outliers, more density
    density = density - (density * weights).sum() / weights.sum() + (1.0 - target)
    sparsity = (1.0 - density).clamp(0.0, 1.0 - 1e-6)
    return {i: float(s) for i, s in zip(layers, sparsity, strict=True)}
