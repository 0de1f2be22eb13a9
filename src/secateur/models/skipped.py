"""A removed sub-block: what stands in for an attention or MLP block that lost every group.

LLaMA-style decoder layers add each sub-block's output to the residual stream; a block with no
heads or no channels left contributes nothing, so instead of a zero-width matmul it is replaced by
this module, which returns a scalar zero (broadcast by the residual add, costing nothing).
"""

from __future__ import annotations

import torch
from torch import nn


class SkippedBlock(nn.Module):
    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind

    def forward(self, hidden_states: torch.Tensor, *args, **kwargs):
        zero = hidden_states.new_zeros(())
        return (zero, None) if self.kind == "attention" else zero

    def extra_repr(self) -> str:
        return f"removed {self.kind}"
