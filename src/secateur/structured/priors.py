"""H-GSP priors: scale each group's importance/cost score by how much its layer or sub-block matters.

With influence I (1 - cos(input, output), see `influence.py`), B = ln(1 + max(I - ε, 0)) and
temperature T, the final score is S · B^T: T = 0 switches the priors off, larger T protects
influential blocks (the first and last layers, typically) more strongly. Each layer is either
layer-dominant (its attention and MLP groups both take the layer's influence) or block-dominant
(attention groups take the attention block's influence, MLP groups the MLP block's). τ decides:
layers with influence below τ are layer-dominant; τ = 0 makes every layer block-dominant, τ = inf
every layer layer-dominant, and unset τ is the 25th percentile of the layers' influence.
ε shrinks small influences to zero, so blocks that barely change the residual stream go first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Priors:
    attention: dict[int, float]  # layer -> multiplier for its attention groups
    mlp: dict[int, float]
    tau: float | None  # the threshold used (None when T = 0)
    layer_dominant: dict[int, bool]


def resolve_tau(layer_influence: dict[int, float], tau: float | None) -> float:
    if tau is not None:
        return tau
    values = torch.tensor(sorted(layer_influence.values()), dtype=torch.float64)
    return float(torch.quantile(values, 0.25))


def hgsp_priors(
    influence: dict[int, dict[str, float]], temperature: float, tau: float | None, epsilon: float
) -> Priors:
    """influence: layer -> {"layer", "attention", "mlp"} block influences."""
    if temperature == 0:
        ones = dict.fromkeys(influence, 1.0)
        return Priors(ones, dict(ones), None, dict.fromkeys(influence, False))
    threshold = resolve_tau({i: v["layer"] for i, v in influence.items()}, tau)

    def multiplier(value: float) -> float:
        return math.log1p(max(value - epsilon, 0.0)) ** temperature

    attention, mlp, dominant = {}, {}, {}
    for layer, values in influence.items():
        dominant[layer] = values["layer"] < threshold
        attention[layer] = multiplier(values["layer"] if dominant[layer] else values["attention"])
        mlp[layer] = multiplier(values["layer"] if dominant[layer] else values["mlp"])
    return Priors(attention, mlp, threshold, dominant)
