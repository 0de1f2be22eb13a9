"""H-GSP priors: scale each group's importance/cost score by how much its layer or sub-block matters.

With influence I (1 - cos(input, output), see `influence.py`), B = ln(1 + I) and temperature T,
the final score is S · B^T (the seed's formula): T = 0 switches the priors off, larger T protects
influential blocks (the first and last layers, typically) more strongly. Each layer is either
layer-dominant (its attention and MLP groups both take the layer's influence) or block-dominant
(attention groups take the attention block's influence, MLP groups the MLP block's). τ decides:
layers with influence below τ are layer-dominant; τ = 0 makes every layer block-dominant, τ = inf
every layer layer-dominant, and unset τ is the 25th percentile of the layers' influence.
(The seed's ε is not part of the score: it collapses layers after planning, see `collapse.py`.)

Block influence compares the residual stream before and after the sub-block (attention: h_in with
h_in + attn_out; MLP: h_mid with h_out). The seed says "the block's input and output" without
saying which states; its authors' code compares a module's input with its raw output. Mixing
layer-dominant and block-dominant layers in one table compares layer influences with block ones:
on SmolLM2 attention influences are about half the MLP's, which is why T = 1 removes many KV groups
with Taylor importance (docs/benchmarks.md measures it).
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


def hgsp_priors(influence: dict[int, dict[str, float]], temperature: float, tau: float | None) -> Priors:
    """influence: layer -> {"layer", "attention", "mlp"} block influences."""
    if temperature == 0:
        ones = dict.fromkeys(influence, 1.0)
        return Priors(ones, dict(ones), None, dict.fromkeys(influence, False))
    threshold = resolve_tau({i: v["layer"] for i, v in influence.items()}, tau)

    def multiplier(value: float) -> float:
        return math.log1p(value) ** temperature

    attention, mlp, dominant = {}, {}, {}
    for layer, values in influence.items():
        dominant[layer] = values["layer"] < threshold
        attention[layer] = multiplier(values["layer"] if dominant[layer] else values["attention"])
        mlp[layer] = multiplier(values["layer"] if dominant[layer] else values["mlp"])
    return Priors(attention, mlp, threshold, dominant)
