"""A model's geometry: attention heads and the prunable widths of each decoder layer.

The adapter reads them from the Hugging Face config and the layer's modules (`ModelAdapter.geometry`,
`ModelAdapter.layer_shape`); structured pruning plans and slices with them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class AttentionGeometry:
    num_heads: int
    num_kv_heads: int
    head_dim: int

    @property
    def gqa_ratio(self) -> int:
        """Query heads per KV head (1 = plain multi-head attention)."""
        return self.num_heads // self.num_kv_heads


@dataclass(frozen=True)
class LayerShape:
    """A decoder layer's prunable widths (they differ between layers once a model is pruned)."""

    hidden: int
    num_kv_heads: int
    gqa_ratio: int
    head_dim: int
    intermediate: int
    attention_bias: bool = False
    mlp_bias: bool = False
    mlp_inputs: int = 2  # projections a channel is a row of: gate and up (1 for OPT's fc1)

    @property
    def num_heads(self) -> int:
        return self.num_kv_heads * self.gqa_ratio

    def attention_group_cost(self) -> int:
        """Parameters one attention group holds: q rows, k and v rows, o columns, biases."""
        q_width = self.gqa_ratio * self.head_dim
        cost = 2 * q_width * self.hidden + 2 * self.head_dim * self.hidden
        if self.attention_bias:
            cost += q_width + 2 * self.head_dim
        return cost

    def mlp_group_cost(self) -> int:
        return (self.mlp_inputs + 1) * self.hidden + (self.mlp_inputs if self.mlp_bias else 0)

    def prunable_params(self) -> int:
        return self.num_kv_heads * self.attention_group_cost() + self.intermediate * self.mlp_group_cost()


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())  # tied weights count once
