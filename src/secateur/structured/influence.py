"""Block influence (ShortGPT, Men et al., 2024): how much a layer or sub-block changes the residual stream.

influence = 1 - E_tokens[cos(input, output)]: a layer whose output points where its input did
contributes little. Measured for the whole layer (input -> output), the attention sub-block
(input -> input + attention) and the MLP sub-block (input + attention -> output), all from hooks on
one forward of the layer, accumulated in fp32.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn


def _tensor(value):
    return value[0] if isinstance(value, (tuple, list)) else value


@dataclass
class InfluenceMeter:
    """Sums of per-token cosine similarities for one layer."""

    sums: dict[str, float] = field(default_factory=lambda: {"layer": 0.0, "attention": 0.0, "mlp": 0.0})
    tokens: int = 0

    def add(self, h_in: torch.Tensor, attention_out: torch.Tensor, h_out: torch.Tensor) -> None:
        h_in, h_out = h_in.float(), h_out.float()
        h_mid = h_in + attention_out.float()
        for key, (a, b) in {
            "layer": (h_in, h_out),
            "attention": (h_in, h_mid),
            "mlp": (h_mid, h_out),
        }.items():
            self.sums[key] += float(F.cosine_similarity(a, b, dim=-1).sum())
        self.tokens += h_in.numel() // h_in.shape[-1]

    def reduce(self) -> None:
        """Sum over the processes of a distributed run (each saw its share of the windows)."""
        from secateur.distributed import all_sum, all_sum_number

        keys = sorted(self.sums)
        totals = all_sum(torch.tensor([self.sums[k] for k in keys], dtype=torch.float64))
        self.sums = dict(zip(keys, totals.tolist(), strict=True))
        self.tokens = all_sum_number(self.tokens)

    def influence(self) -> dict[str, float]:
        return {key: 1.0 - total / max(self.tokens, 1) for key, total in self.sums.items()}

    @contextmanager
    def attached(self, layer: nn.Module, attention: nn.Module) -> Iterator[InfluenceMeter]:
        seen: dict[str, torch.Tensor] = {}

        def on_input(module, args, kwargs):
            seen["in"] = args[0] if args else kwargs["hidden_states"]

        def on_attention(module, args, output):
            seen["attention"] = _tensor(output)

        def on_output(module, args, output):
            self.add(seen.pop("in"), seen.pop("attention"), _tensor(output))

        handles = [
            layer.register_forward_pre_hook(on_input, with_kwargs=True),
            attention.register_forward_hook(on_attention),
            layer.register_forward_hook(on_output),
        ]
        try:
            yield self
        finally:
            for handle in handles:
                handle.remove()
