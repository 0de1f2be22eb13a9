"""OWL: outlier-weighted layer-wise sparsity (Yin et al., 2024, arXiv:2310.05175).

Layers whose Wanda scores hold more outliers (scores above M times the layer's mean score) matter
more, so they are pruned less. Each layer's outlier ratio is measured on the dense model (the
calibration activations flow through unpruned layers), mapped linearly onto [target - λ,
target + λ] (most outliers -> least sparsity), and shifted so the sparsity over all targeted
weights is exactly the requested one.
"""

from __future__ import annotations

import torch

from secateur.calibration.capture import LayerInputs
from secateur.calibration.pipeline import LayerContext, run_layers
from secateur.models.adapter import ModelAdapter
from secateur.pruning.statistics import layer_statistics
from secateur.scoring.owl import outlier_ratio
from secateur.scoring.wanda import Wanda


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
        stats, _ = layer_statistics(wanda, ctx)  # an expert no token reaches: its magnitudes
        scores = [wanda.score(linear.weight, stats[role]) for role, linear in ctx.linears.items()]
        ratios[ctx.index] = outlier_ratio(scores, multiple)

    run_layers(
        adapter,
        visit,
        inputs=inputs,
        device=device,
        show_progress=show_progress,
        desc="OWL outliers",
        changes=False,  # only reads: a streamed model's layers are not written (nor marked done)
    )
    return ratios
