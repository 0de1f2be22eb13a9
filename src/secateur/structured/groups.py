"""Structured groups: what must be removed together so the model keeps working, and what it costs.

Attention group i (GQA-aware): KV head i (its head_dim rows of k_proj and v_proj, biases included),
the `ratio` query heads that share it (their rows of q_proj) and the matching input columns of
o_proj. MLP group c: row c of gate_proj and up_proj and column c of down_proj. With plain MHA the
ratio is 1 and a group is one head.

Everything here is a pure function of tensors and sizes.
"""

from __future__ import annotations

import torch

from secateur.models.geometry import LayerShape

ATTENTION, MLP = "attention", "mlp"


def q_rows(kv_heads: torch.Tensor, shape: LayerShape) -> torch.Tensor:
    """Rows of q_proj (= columns of o_proj) belonging to the given KV groups, in order."""
    width = shape.gqa_ratio * shape.head_dim
    return (kv_heads.unsqueeze(1) * width + torch.arange(width)).flatten()


def kv_rows(kv_heads: torch.Tensor, shape: LayerShape) -> torch.Tensor:
    """Rows of k_proj and v_proj belonging to the given KV groups, in order."""
    return (kv_heads.unsqueeze(1) * shape.head_dim + torch.arange(shape.head_dim)).flatten()


def attention_group_sums(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    o: torch.Tensor,
    shape: LayerShape,
    biases: tuple[torch.Tensor | None, ...] = (None, None, None),
) -> torch.Tensor:
    """Per-weight importances of q/k/v/o (their weights' shapes) -> (num_kv_heads,) fp32 group sums."""
    groups = shape.num_kv_heads
    total = q.float().sum(1).reshape(groups, -1).sum(1)
    total += k.float().sum(1).reshape(groups, -1).sum(1) + v.float().sum(1).reshape(groups, -1).sum(1)
    total += o.float().sum(0).reshape(groups, -1).sum(1)
    for bias in biases:
        if bias is not None:
            total += bias.float().reshape(groups, -1).sum(1)
    return total


def mlp_group_sums(gate: torch.Tensor | None, up: torch.Tensor, down: torch.Tensor) -> torch.Tensor:
    """Per-weight importances of gate/up/down -> (intermediate,) fp32 channel sums (OPT: no gate)."""
    total = up.float().sum(1) + down.float().sum(0)
    return total if gate is None else total + gate.float().sum(1)
