"""H-GSP's collapse threshold ε (the seed's "坍缩阈值"): after planning, a layer left with less than ε
of itself is removed whole.

A layer keeps a fraction of its KV groups and a fraction of its MLP channels; when the mean of the
two is below ε, both sub-blocks go (the layer becomes an identity on the residual stream, as depth
pruning would make it). This adds to what the plan removes: the summary says which layers
collapsed and the parameter count includes them. ε = 0 (the default) collapses nothing.
"""

from __future__ import annotations

from secateur.structured.plan import StructuredPlan


def kept_fraction(layer) -> float:
    """Mean of the kept shares of KV groups and MLP channels (a LayerPlan)."""
    attention = len(layer.kv_heads) / max(layer.num_kv_heads_before, 1)
    mlp = len(layer.channels) / max(layer.intermediate_before, 1)
    return (attention + mlp) / 2


def collapse_layers(
    plan: StructuredPlan, epsilon: float, keep_attention: frozenset[int] = frozenset()
) -> list[int]:
    """Empty every planned layer whose kept fraction is below `epsilon`, in place; returns them.

    `keep_attention`: layers whose attention must stay (vLLM's nemotron-nas needs layer 0's); such
    a layer loses its MLP only."""
    collapsed = []
    for layer in plan.layers:
        if epsilon > 0 and kept_fraction(layer) < epsilon:
            layer.channels = []
            if layer.layer not in keep_attention:
                layer.kv_heads = []
            collapsed.append(layer.layer)
    return collapsed
