"""OWL: outlier-weighted layer-wise sparsity (Yin et al., 2024, arXiv:2310.05175).

Layers whose Wanda scores hold more outliers (scores above M times the layer's mean score) matter
more, so they are pruned less. Each layer's outlier ratio is measured on the dense model (the
calibration activations flow through unpruned layers), mapped linearly onto [target - λ,
target + λ] (most outliers -> least sparsity), and shifted so the sparsity over all targeted
weights is exactly the requested one.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from secateur.calibration.capture import LayerInputs
from secateur.calibration.pipeline import LayerContext, run_layers
from secateur.errors import SecateurError
from secateur.models.adapter import ModelAdapter
from secateur.scoring.wanda import Wanda


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


def measure_outlier_ratios(
    adapter: ModelAdapter,
    inputs: LayerInputs,
    layers: frozenset[int],
    multiple: float,
    device: torch.device,
    show_progress: bool = True,
) -> dict[int, float]:
    """One dense pass over the model: Wanda scores of each targeted layer -> its outlier ratio."""
    wanda = Wanda()
    ratios: dict[int, float] = {}

    def visit(ctx: LayerContext) -> None:
        if ctx.index not in layers:
            return
        with wanda.collector(ctx.linears).attached() as stats:
            ctx.observe(stop_after=list(ctx.linears.values())[-1])
        scores = [wanda.score(linear.weight, stats[role]) for role, linear in ctx.linears.items()]
        ratios[ctx.index] = outlier_ratio(scores, multiple)

    run_layers(adapter, visit, inputs=inputs, device=device, show_progress=show_progress, desc="OWL outliers")
    return ratios
