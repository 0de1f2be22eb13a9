"""Keeping pruned weights at zero while a model trains.

Two guards, because either alone can fail: gradients of pruned weights are zeroed by tensor hooks
(so AdamW's moments stay zero and weight decay has nothing to decay), and after every optimizer
step the weights are multiplied by their masks again (so nothing that bypasses the gradient, such
as a bf16 round-trip or an optimizer with its own update rule, can revive them). `violations()`
is the check at the end.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from secateur.errors import VerificationError
from secateur.models.adapter import ModelAdapter


@dataclass
class WeightMasks:
    """(name, weight, keep-mask) for every decoder weight that has zeros (a fused expert tensor whole)."""

    entries: list[tuple[str, nn.Parameter, torch.Tensor]]

    @classmethod
    @torch.no_grad()
    def from_zeros(cls, adapter: ModelAdapter) -> WeightMasks:
        """Every weight that is exactly zero now is pruned and must stay zero."""
        entries = []
        for index in range(adapter.num_layers()):
            for name, weight in adapter.weight_parameters(index).items():
                keep = weight != 0
                if not bool(keep.all()):
                    entries.append((name, weight, keep))
        return cls(entries)

    @property
    def pruned(self) -> int:
        return sum(int((~keep).sum()) for _, _, keep in self.entries)

    @contextmanager
    def guarding_gradients(self) -> Iterator[None]:
        handles = [weight.register_hook(_masker(keep)) for _, weight, keep in self.entries]
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()

    @torch.no_grad()
    def apply(self) -> None:
        for _, weight, keep in self.entries:
            weight.mul_(keep.to(weight.device))

    @torch.no_grad()
    def violations(self) -> dict[str, int]:
        """Module name -> pruned weights that are no longer zero (empty when all is well)."""
        found = {}
        for name, weight, keep in self.entries:
            revived = int((weight[~keep.to(weight.device)] != 0).sum())
            if revived:
                found[name] = revived
        return found

    def verify(self) -> None:
        found = self.violations()
        if found:
            name, count = next(iter(found.items()))
            raise VerificationError(
                f"masked fine-tuning revived {sum(found.values())} pruned weights in {len(found)} modules "
                f"(first {name}: {count}); the checkpoint was not written; please report this as a bug"
            )


def _masker(keep: torch.Tensor):
    def hook(grad: torch.Tensor) -> torch.Tensor:
        return grad * keep.to(grad.device, grad.dtype)

    return hook
